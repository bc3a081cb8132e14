"""Stage entry point: pretrain a GPT model on a pretrain-data artifact and publish it as a model artifact.

Run inside a job as `python -m nemotron.stages.pretrain --config config.yaml` (under torchrun for
several processes). Re-running the same config resumes from the run's newest checkpoint.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from nemotron.training.pretrain.config import PretrainConfig

if TYPE_CHECKING:
    from nemotron.training.checkpoint.layout import CheckpointInfo

STAGE = "pretrain"


def main(argv: list[str] | None = None) -> None:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.model_publish import publish_model_checkpoint, published_version
    from nemotron.stages.runtime import load_stage_config
    from nemotron.training.distributed.preemption import requeue_slurm_job
    from nemotron.training.pretrain.runner import run_pretraining
    from nemotron.training.run.session import RunIdentity

    config, context = load_stage_config(argv, PretrainConfig, "pretrain")
    mirrors = mirrors_from_environment()  # fail early, not after hours of training
    registry = FileRegistry(default_registry_root())

    def publish(info: CheckpointInfo) -> None:
        current = published_version(registry, config.model_artifact_name, info)
        if current is not None:
            print(f"nothing new to publish: {current.ref} already holds {info.path}", flush=True)
            return
        artifact = publish_model_checkpoint(
            registry,
            mirrors,
            config.model_artifact_name,
            info.path,
            info.metadata,
            context,
            STAGE,
            loss=info.metadata["train_state"].get("last_loss"),
        )
        print(f"published {artifact.ref} (step {artifact.metadata['step']}) at {artifact.path}", flush=True)

    result = run_pretraining(
        config, RunIdentity(STAGE, context.job_name, context.config_sha256), registry, on_checkpoint=publish
    )
    if not result.is_main:
        return
    if not result.finished:
        where = result.checkpoint.path if result.checkpoint else "no checkpoint"
        if result.requeue:
            print(
                f"stopped at step {result.state.iteration} ({result.stop_reason}); checkpoint {where}; "
                "requeueing the job to resume",
                flush=True,
            )
            if requeue_slurm_job():
                return
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
    if result.checkpoint is not None:
        publish(result.checkpoint)
    if result.sample is not None:
        print(f"sample (greedy, {config.sample.tokens} tokens): {result.sample!r}", flush=True)


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
