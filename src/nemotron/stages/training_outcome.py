"""Around every training run: publish checkpoints as model artifacts, requeue or fail when stopped."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.artifacts.mirrors import Mirror
    from nemotron.stages.runtime import JobContext
    from nemotron.training.checkpoint.layout import CheckpointInfo
    from nemotron.training.run.session import TrainingResult


def checkpoint_publisher(
    registry: FileRegistry,
    mirrors: list[Mirror],
    name: str,
    context: JobContext,
    stage: str,
    inputs: Sequence[str] = (),
    evaluation: Mapping[str, Any] | None = None,
) -> Callable[[CheckpointInfo], None]:
    """Publish a checkpoint as the next version of model artifact `name` (once: a republish is a no-op).

    `inputs`: lineage beyond the checkpoint's data artifact (e.g. the model fine-tuning started from);
    `evaluation`: read when a checkpoint is published (the stage fills it once it measured the model).
    """
    from nemotron.stages.model_publish import publish_model_checkpoint, published_version

    def publish(info: CheckpointInfo) -> None:
        current = published_version(registry, name, info)
        if current is not None:
            print(f"nothing new to publish: {current.ref} already holds {info.path}", flush=True)
            return
        artifact = publish_model_checkpoint(
            registry,
            mirrors,
            name,
            info.path,
            info.metadata,
            context,
            stage,
            loss=info.metadata["train_state"].get("last_loss"),
            inputs=inputs,
            evaluation=evaluation,
        )
        print(f"published {artifact.ref} (step {artifact.metadata['step']}) at {artifact.path}", flush=True)

    return publish


def conclude(result: TrainingResult, publish: Callable[[CheckpointInfo], None]) -> bool:
    """On the main rank: publish a finished run's checkpoint (True), or requeue / exit 1 for a stopped one.

    Returns False on other ranks and after a successful requeue (the job ends quietly, Slurm restarts it).
    """
    from nemotron.training.distributed.preemption import requeue_slurm_job

    if not result.is_main:
        return False
    if result.finished:
        if result.checkpoint is not None:
            publish(result.checkpoint)
        return True
    where = result.checkpoint.path if result.checkpoint else "no checkpoint"
    if result.requeue:
        print(
            f"stopped at step {result.state.iteration} ({result.stop_reason}); checkpoint {where}; "
            "requeueing the job to resume",
            flush=True,
        )
        if requeue_slurm_job():
            return False
        print(
            f"error: the job could not requeue itself; re-run the same command to resume from {where}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)
    print(
        f"error: stopped at step {result.state.iteration} ({result.stop_reason}); checkpoint {where}; "
        "re-run the same command to resume",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(1)
