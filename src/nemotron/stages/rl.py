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
    from nemotron.stages.training_outcome import conclude
    from nemotron.stages.training_start import open_training_stage
    from nemotron.training.rl.runner import resolve_inputs, run_rl

    start = open_training_stage(argv, RlConfig, STAGE, resolve_inputs)
    config, evaluation = start.config, start.evaluation
    result = run_rl(config, start.inputs, start.identity, start.registry, on_checkpoint=start.publish)
    if result.report is not None:
        evaluation.update(held_out_summary(config, result.report, result.report_at_start))
    if conclude(result, start.publish) and result.report is not None:
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
