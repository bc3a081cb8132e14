"""Stage entry point: GRPO on an rl-data artifact from a model artifact, published as a model artifact.

Run inside a job as `python -m nemotron.stages.rl --config config.yaml` (under torchrun for several
processes). Re-running the same config resumes from the run's newest checkpoint (the same prompt
order); a new run starts from the weights of `run.model` with a fresh optimizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nemotron.training.rl.config import RlConfig

if TYPE_CHECKING:
    from nemotron.training.inference.answers import HeldOutResult

STAGE = "rl"


def main(argv: list[str] | None = None) -> None:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.runtime import load_stage_config
    from nemotron.stages.training_outcome import checkpoint_publisher, conclude
    from nemotron.training.rl.runner import resolve_inputs, run_rl
    from nemotron.training.run.session import RunIdentity

    config, context = load_stage_config(argv, RlConfig, "rl")
    mirrors = mirrors_from_environment()  # fail early, not after hours of training
    registry = FileRegistry(default_registry_root())
    inputs = resolve_inputs(config, registry)
    evaluation: dict[str, Any] = {}  # filled before the final checkpoint is published
    publish = checkpoint_publisher(
        registry, mirrors, config.model_artifact_name, context, STAGE, (inputs.start_source,), evaluation
    )
    identity = RunIdentity(STAGE, context.job_name, context.config_sha256)
    result = run_rl(config, inputs, identity, registry, on_checkpoint=publish)
    if result.report is not None:
        evaluation.update(held_out_summary(config, result.report, result.report_at_start))
    if conclude(result, publish) and result.report is not None:
        before = evaluation.get("accuracy_at_start")
        shown = f" ({before:.0%} before RL)" if before is not None else ""
        print(
            f"held-out answers (greedy, {config.held_out.split} split, {len(result.report.answers)} prompts): "
            f"mean reward {evaluation['accuracy']:.0%}{shown}",
            flush=True,
        )
        for answer in result.report.answers[:8]:
            mark = "ok " if answer.reward >= 1 else "-- "
            print(f"{mark}{answer.prompt[-60:]!r} -> {answer.answer!r} (expected {answer.expected!r})", flush=True)


def held_out_summary(config: RlConfig, result: HeldOutResult, at_start: HeldOutResult | None) -> dict[str, Any]:
    """What the model artifact's metadata records of the held-out answers."""
    summary: dict[str, Any] = {
        "split": config.held_out.split,
        "answers": len(result.answers),
        "accuracy": result.accuracy,
    }
    if at_start is not None:
        summary["accuracy_at_start"] = at_start.accuracy
    return summary


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
