"""What `pipe` prints: the plan as a table with each stage's command, and the summary table at the end."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from nemotron.cli.output import columns, literal
from nemotron.cli.stage_command import STAGE_COMMANDS

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.pipeline.plan import PipePlan
    from nemotron.pipeline.records import PipeRecord


def print_plan(plan: PipePlan) -> None:
    """The plan as a table (stage, fingerprint, action and why, artifact), then each stage's command line."""
    literal(
        f"pipe {plan.pipe.path} (fingerprints cover config, inputs and {plan.code}; "
        f"code_version={plan.pipe.code_version})"
    )
    rows = [("STAGE", "FINGERPRINT", "ACTION", "ARTIFACT", "WHY")]
    for stage in plan.stages:
        rows.append((stage.name, stage.fingerprint, stage.action, stage.output_ref, stage.reason))
    columns(rows)
    running = [stage.name for stage in plan.to_run]
    for stage in plan.to_run:
        upstream = sorted((name for name in stage.upstream if name in running), key=running.index)
        after = f" (after {', '.join(upstream)})" if upstream else ""
        literal(f"\n{stage.name}{after}:")
        spec = stage.stage.spec
        command = STAGE_COMMANDS.get(f"{spec.family}/{spec.key}", f"nemotron {spec.family} {spec.key}")
        literal(f"  {command} {shlex.join(['-c', stage.stage.config, *stage.overrides])}")


def print_summary(record: PipeRecord, registry: FileRegistry, wall_seconds: float | None = None) -> None:
    """Per stage: state, time, tokens, final loss or measure, artifact (read from `registry`); with
    `wall_seconds` (the pipe command's own time, locally), the orchestration's share: everything but the
    stages' jobs."""
    from nemotron.artifacts import ArtifactError
    from nemotron.pipeline.summary import artifact_summary

    rows = [("STAGE", "STATE", "TIME", "TOKENS", "RESULT", "ARTIFACT")]
    total = 0.0
    for stage in record.stages:
        tokens, result = "-", "-"
        artifact = stage.artifact
        if artifact or (stage.state == "COMPLETED" and stage.output):
            try:
                found = registry.resolve(artifact or stage.output or "")
                artifact = found.ref
                tokens, result = artifact_summary(found)
            except ArtifactError:
                result = "(artifact not readable)"
        seconds = stage.seconds or 0.0
        total += seconds
        time_text = f"{seconds / 60:.1f} min" if stage.seconds is not None else "-"
        rows.append((stage.name, stage.state, time_text, tokens, result, artifact or "-"))
    literal(f"\npipe {record.name} ({total / 60:.1f} min in stages):")
    columns(rows)
    if wall_seconds is not None and total > 0:
        overhead = wall_seconds - total
        literal(
            f"pipe wall time {wall_seconds / 60:.1f} min: stages {total:.1f} s, orchestration {overhead:.1f} s "
            f"({overhead / total:.1%} of the stages' time: planning, launch checks, submission, following)"
        )
