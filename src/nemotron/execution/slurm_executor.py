"""Translate a Slurm profile and a stage job into NeMo-Run's SlurmExecutor and Script."""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import Any

from nemotron.env import Profile
from nemotron.execution.errors import ExecutionError
from nemotron.execution.job import Phase, StageJob
from nemotron.execution.job_env import SECRETS_FILE, source_secrets_line
from nemotron.execution.nemo_run_import import import_nemo_run
from nemotron.execution.records import jobs_root
from nemotron.execution.torchrun import RDZV_SETUP, slurm_torchrun_line

LOG_SUBDIR = "logs"  # inside the job dir: sbatch trace and one log per (re)start of the job
TASK_NAME = "main"  # the one task of a single-phase job

# Stages that requeue themselves: the batch shell ignores SIGUSR1 (`scancel --full`, `--signal=B:`
# would otherwise kill it and fail the job); the stage's processes in the job step act on it.
BATCH_IGNORES_USR1 = "trap '' USR1"

# Shell quoting. NeMo-Run 0.11 writes most of what it is given into the sbatch script as it is: `export
# KEY=VALUE` lines, and the srun line's words (its `noquote` is an alias of str, so its shlex.quote never
# applies): the srun options, the container image and mounts, the log path and the command. nemotron hands
# it those words quoted already (`_word`), writes the exports itself (`export_lines`), and keeps
# unquoted only the variables the job expands on purpose: `${SLURM_RESTART_COUNT:-0}` in the log path
# (slurm_log_paths) and the `$SLURM_*`/rendezvous words of the torchrun line (torchrun._EXPANDED).
# NeMo-Run's own folder (NEMORUN_HOME, or the SSH profile's job_dir) it also writes unquoted, into the
# srun line and the sbatch command: that must be a plain path (`_require_plain_path`).


def _word(value: str) -> str:
    """One shell word, quoted as needed (`shlex.quote`)."""
    return shlex.quote(value)


def _command_word(value: str) -> str:
    """A quoted word of the command NeMo-Run passes through `string.Template.safe_substitute` (its executor
    macros) before writing it: `$` doubled so that the substitution gives back the quoted word."""
    return _word(value).replace("$", "$$")


def export_lines(env: dict[str, str]) -> list[str]:
    """`export KEY=VALUE` with each value quoted, names as written (profile names are validated)."""
    return [f"export {key}={_word(value)}" for key, value in env.items()]


@dataclass(frozen=True)
class SlurmTask:
    """One sbatch submission of a job: a phase (or the whole stage) with its executor and script."""

    name: str
    executor: Any  # nemo_run.SlurmExecutor
    script: Any  # nemo_run.Script
    depends_on: str | None = None  # the task that must succeed first


@dataclass(frozen=True)
class SlurmPlan:
    """Where a Slurm job's files live and the NeMo-Run tasks that submit it, in order."""

    job_dir: str  # on the cluster: config.yaml, job.yaml, secrets.env
    tasks: tuple[SlurmTask, ...]


def cluster_job_dir(profile: Profile, job_name: str) -> str:
    """The job's directory as the cluster sees it: the profile's job_dir, or the local jobs root."""
    slurm = profile.slurm
    if slurm and slurm.ssh and not profile.job_dir:
        raise ExecutionError(
            f"profile {profile.name!r} ({profile.source}) submits over SSH but has no 'job_dir'; "
            "set job_dir to a directory on the cluster's shared storage"
        )
    root = profile.job_dir or str(jobs_root())
    return posixpath.join(root, job_name)


def build_slurm_plan(profile: Profile, job: StageJob, *, waits_for_other_jobs: bool = False) -> SlurmPlan:
    """Build (without submitting) the executor and script for `job` on `profile`; `waits_for_other_jobs`:
    its first task depends on other jobs (a pipe's stage), which must cancel it when they fail."""
    run = import_nemo_run()
    slurm = profile.slurm
    if slurm is None:
        raise ExecutionError(f"profile {profile.name!r} is not a Slurm profile (executor = {profile.executor!r})")
    if not slurm.account:
        raise ExecutionError(
            f"profile {profile.name!r} ({profile.source}): key 'account' is required for Slurm submissions; "
            'add account = "<your slurm account>"'
        )
    from nemotron.execution.slurm_log_paths import QuotedSlurmJobDetails  # needs NeMo-Run loaded

    job_dir = cluster_job_dir(profile, job.name)
    _require_plain_path(profile)
    if slurm.ssh:
        tunnel = run.SSHTunnel(
            host=slurm.ssh.host,
            user=slurm.ssh.user or "",
            identity=slurm.ssh.identity,
            port=slurm.ssh.port,
            job_dir=posixpath.join(profile.job_dir or "", "nemo_run"),
        )
    else:
        tunnel = run.LocalTunnel(job_dir="")  # NeMo-Run keeps scripts and logs in its experiment dir
    extra: dict[str, Any] = {key: value for key, value in slurm.sbatch_flags.items()}
    if slurm.reservation:
        extra["reservation"] = slurm.reservation
    mounts = list(slurm.container_mounts)
    if slurm.container_image:  # the job reads its config from the job dir and writes to the registry
        for path in (job_dir.rsplit("/", 1)[0], job.env.get("NEMOTRON_ARTIFACTS_ROOT")):
            if path and not any(m.split(":")[0] == path for m in mounts):
                mounts.append(f"{path}:{path}")
    # the exports NeMo-Run would write from env_vars (unquoted, names upper-cased), in its place: first
    setup = [
        *export_lines({**profile.public_env_vars(), **job.env}),
        source_secrets_line(posixpath.join(job_dir, SECRETS_FILE)),
        *profile.setup,
    ]
    if not job.single_task:
        setup += RDZV_SETUP
    if job.requeue_signal_seconds:
        setup.append(BATCH_IGNORES_USR1)
        # without `B:` Slurm signals the processes of the job steps (verified to reach the stage's
        # Python processes under srun + torchrun), not the batch shell
        extra["signal"] = f"USR1@{job.requeue_signal_seconds}"
    config_path = posixpath.join(job_dir, "config.yaml")
    phases = job.phases or (Phase(TASK_NAME),)
    tasks: list[SlurmTask] = []
    for index, phase in enumerate(phases):
        previous = tasks[-1].name if index else None
        parameters = dict(extra)
        if previous or waits_for_other_jobs:  # a failed predecessor cancels it instead of leaving it pending
            parameters["kill-on-invalid-dep"] = "yes"
        executor = run.SlurmExecutor(
            account=slurm.account,
            partition=slurm.partition,
            job_details=QuotedSlurmJobDetails(
                job_name=job.name if len(phases) == 1 else f"{job.name}-{phase.name}",
                folder=posixpath.join(job_dir, LOG_SUBDIR),
            ),
            time=slurm.time,
            nodes=slurm.nodes,
            ntasks_per_node=slurm.ntasks_per_node,
            gpus_per_node=slurm.gpus_per_node,
            cpus_per_task=slurm.cpus_per_task,
            mem=slurm.mem,
            exclusive=slurm.exclusive or None,
            qos=slurm.qos,
            constraint=slurm.constraint,
            array=f"0-{phase.array_size - 1}" if phase.array_size else None,
            additional_parameters=parameters or None,
            container_image=_word(slurm.container_image) if slurm.container_image else None,
            # NeMo-Run joins the mounts with commas (and adds its own, plain): quoted pieces make one word
            container_mounts=[_word(m) for m in mounts] if slurm.container_image else [],
            env_vars={},  # exported by the setup lines, quoted
            setup_lines="\n".join(setup),
            tunnel=tunnel,
            packager=run.Packager(),  # code comes from the image / virtual environment the profile names
            poll_estimated_start_time=False,
            # NeMo-Run's own --chdir (outside containers) names a folder it never creates; the last
            # --chdir wins, so the job runs in its job dir.
            srun_args=_srun_args(job, profile, job_dir, in_container=bool(slurm.container_image)),
        )
        # NeMo-Run writes `<entrypoint> [-m] <path> <args>` into the srun line as they are: quoted words
        if job.resolve_at_start:  # one quoted word: resolve the config, then the stage (bash -c)
            script = run.Script(
                path="-c", entrypoint="bash", args=[_command_word(_resolving_command(job, profile, job_dir, phase))]
            )
        elif job.single_task:
            script = run.Script(
                path=_command_word(job.entry_module),
                entrypoint=_word(profile.python),
                m=True,
                args=[_command_word(arg) for arg in ("--config", config_path, *phase.args)],
            )
        else:  # one quoted word: the torchrun line, whose `$SLURM_*` words the job step's bash expands
            command = slurm_torchrun_line(
                profile.python, profile.processes_per_node(), job.stage_argv(config_path, phase.args)
            )
            script = run.Script(path="-c", entrypoint="bash", args=[_command_word(command)])
        tasks.append(SlurmTask(phase.name, executor, script, previous))
    return SlurmPlan(job_dir=job_dir, tasks=tuple(tasks))


def _resolving_command(job: StageJob, profile: Profile, job_dir: str, phase: Phase) -> str:
    """A pipe stage's command when its inputs are made by earlier jobs: resolve and check config.yaml
    (start_config; its failure fails the job), then run the stage as it would run otherwise."""
    config_path = posixpath.join(job_dir, "config.yaml")
    resolve = shlex.join(
        [profile.python, "-m", "nemotron.execution.start_config", "--stage", job.stage, "--job-dir", job_dir]
    )
    if job.single_task:
        stage = "exec " + shlex.join([profile.python, *job.stage_argv(config_path, phase.args)])
    else:
        stage = slurm_torchrun_line(
            profile.python, profile.processes_per_node(), job.stage_argv(config_path, phase.args)
        )
    return f"{resolve} || exit 1; {stage}"


def _srun_args(job: StageJob, profile: Profile, job_dir: str, *, in_container: bool) -> list[str] | None:
    args = []
    if job.single_task:  # one copy of a single-process stage, not one per task of the allocation
        args += ["--nodes=1", "--ntasks=1"]
    else:  # one torchrun per node; --ntasks too, or srun keeps the allocation's task count
        slurm = profile.slurm
        nodes = slurm.nodes if slurm else 1
        args += [f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1"]
        if slurm and slurm.cpus_per_task:  # the node's whole CPU share for its torchrun and workers
            args.append(f"--cpus-per-task={slurm.cpus_per_task * (slurm.ntasks_per_node or 1)}")
    if not in_container:
        args += ["--chdir", job_dir]
    return [_word(arg) for arg in args] or None


def _require_plain_path(profile: Profile) -> None:
    """NeMo-Run writes its folder unquoted into the srun line (`--chdir`, container mounts), its `mkdir`
    and the sbatch command: refuse a folder that a shell would split or expand."""
    from nemo_run.config import get_nemorun_home  # loaded with `run`

    slurm = profile.slurm
    if slurm and slurm.ssh:
        path, where = profile.job_dir or "", f"the job_dir of profile {profile.name!r} ({profile.source})"
        fix = "set job_dir to a path of letters, digits and / . _ - + : @ % , ="
    else:
        path, where = get_nemorun_home(), "NeMo-Run's folder (NEMORUN_HOME)"
        fix = "set NEMORUN_HOME to such a path (NeMo-Run keeps its sbatch scripts there)"
    if _word(path) != path:
        raise ExecutionError(
            f"{where} is {path!r}: NeMo-Run writes it into shell commands without quotes, so it must not "
            f"contain spaces or shell characters; {fix}"
        )
