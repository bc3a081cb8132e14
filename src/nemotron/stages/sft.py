"""Stage entry point: fine-tune a model artifact on an sft-data artifact and publish the result as a model artifact.

Run inside a job as `python -m nemotron.stages.sft --config config.yaml` (under torchrun for several
processes). Re-running the same config resumes from the run's newest checkpoint; a new run starts
from the weights of `run.model` with a fresh optimizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nemotron.training.sft.config import SftConfig

if TYPE_CHECKING:
    from nemotron.training.sft.answers import Answer

STAGE = "sft"


def main(argv: list[str] | None = None) -> None:
    from nemotron.stages.training_outcome import conclude
    from nemotron.stages.training_start import open_training_stage
    from nemotron.training.sft.inputs import resolve_inputs
    from nemotron.training.sft.runner import run_sft

    start = open_training_stage(argv, SftConfig, STAGE, resolve_inputs)
    config, evaluation = start.config, start.evaluation
    result = run_sft(config, start.inputs, start.identity, start.registry, on_checkpoint=start.publish)
    if result.report:
        evaluation.update(answers_summary(config, result.report, result.report_at_start))
    if conclude(result, start.publish) and result.report:
        before = evaluation.get("exact_match_at_start")
        shown = f" ({before:.0%} before fine-tuning)" if before is not None else ""
        print(
            f"held-out answers (greedy, {config.answers.split} split): exact match "
            f"{evaluation['exact_match']:.0%}{shown}"
        )
        for answer in result.report:
            mark = "ok " if answer.exact else "-- "
            print(f"{mark}{answer.prompt[-60:]!r} -> {answer.answer!r} (reference {answer.reference!r})", flush=True)


def answers_summary(config: SftConfig, answers: list[Answer], at_start: list[Answer] | None) -> dict[str, Any]:
    """What the model artifact's metadata records of the held-out answers."""
    from nemotron.training.sft.answers import exact_match

    summary: dict[str, Any] = {
        "split": config.answers.split,
        "answers": len(answers),
        "exact_match": exact_match(answers),
    }
    if at_start:
        summary["exact_match_at_start"] = exact_match(at_start)
    return summary


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
