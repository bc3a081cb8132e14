"""The dry-run view: resolved config, pinned artifact references, executor settings and the sbatch script."""

from __future__ import annotations

import posixpath
import shlex

from nemotron.execution.launcher import PreparedJob, local_python


def render_dry_run(prepared: PreparedJob, *, waits_for_other_jobs: bool = False) -> str:
    """Everything a run would do, as text with secrets masked; nothing is written or submitted
    (`waits_for_other_jobs`: a pipe's stage submitted with dependencies on other stages' jobs)."""
    from omegaconf import OmegaConf

    from nemotron.env import redact_text

    job, profile = prepared.job, prepared.profile
    sections: list[tuple[str, str]] = []
    chain = " <- ".join(prepared.config_chain[::-1]) if len(prepared.config_chain) > 1 else prepared.config_file
    header = [
        f"stage:     {job.stage}",
        f"config:    {chain}",
        f"overrides: {' '.join(job.provenance.overrides) or '(none)'}",
        f"job name:  {job.name} (a new name is chosen at submission)",
        f"profile:   {job.provenance.profile_name or '(none: runs locally)'} (executor {profile.executor}"
        + (f", from {profile.source})" if profile.source else ")"),
    ]
    sections.append(("job", "\n".join(header)))
    title = (
        "config (config.yaml, resolved when the job starts)"
        if job.resolve_at_start
        else "resolved config (config.yaml)"
    )
    sections.append((title, OmegaConf.to_yaml(OmegaConf.create(job.config)).rstrip()))
    if prepared.artifact_refs:
        refs = [f"{r.key}: {r.requested} -> {r.pinned} ({r.kind})\n  path: {r.path}" for r in prepared.artifact_refs]
        sections.append(("artifact references", "\n".join(refs)))
    if prepared.notes:
        sections.append(("not checked here", "\n".join(f"- {note}" for note in prepared.notes)))
    environment = {**job.env, **{k: "***" for k in job.secret_env}}
    if profile.executor == "slurm":
        from nemotron.execution.slurm_backend import render_sbatch_preview
        from nemotron.execution.slurm_executor import cluster_job_dir

        job_dir = cluster_job_dir(profile, job.name)
        executor = {"profile": profile.to_dict(redacted=True), "job_dir": job_dir, "environment": environment}
        sections.append(("executor (NeMo-Run SlurmExecutor)", OmegaConf.to_yaml(OmegaConf.create(executor)).rstrip()))
        scripts = render_sbatch_preview(profile, job, waits_for_other_jobs=waits_for_other_jobs)
        for task, script in scripts:
            title = "sbatch script" if len(scripts) == 1 else f"sbatch script: {task}"
            sections.append((title, script.rstrip()))
    else:
        from nemotron.execution.records import jobs_root

        config_path = posixpath.join(str(jobs_root() / job.name), "config.yaml")
        executor = {"profile": profile.to_dict(redacted=True), "environment": environment}
        sections.append((f"executor ({profile.executor})", OmegaConf.to_yaml(OmegaConf.create(executor)).rstrip()))
        if profile.executor == "local":  # on one line, as it will run (YAML would fold it)
            command = job.command(local_python(profile), config_path, profile.nproc_per_node)
            sections.append(("command", shlex.join(command)))
    body = "\n\n".join(f"--- {title} ---\n{text}" for title, text in sections)
    body += "\n\n--- dry run: nothing was written or submitted ---\n"
    return redact_text(body, list(job.secret_env.values()))
