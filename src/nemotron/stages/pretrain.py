"""Stage entry point: pretrain a GPT model on a pretrain-data artifact and publish it as a model artifact.

Run inside a job as `python -m nemotron.stages.pretrain --config config.yaml` (under torchrun for
several processes). Re-running the same config resumes from the run's newest checkpoint.
"""

from __future__ import annotations

from nemotron.training.pretrain.config import PretrainConfig

STAGE = "pretrain"


def main(argv: list[str] | None = None) -> None:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.runtime import load_stage_config
    from nemotron.stages.training_outcome import checkpoint_publisher, conclude
    from nemotron.training.pretrain.runner import run_pretraining
    from nemotron.training.run.session import RunIdentity

    config, context = load_stage_config(argv, PretrainConfig, "pretrain")
    mirrors = mirrors_from_environment()  # fail early, not after hours of training
    registry = FileRegistry(default_registry_root())
    publish = checkpoint_publisher(registry, mirrors, config.model_artifact_name, context, STAGE)
    result = run_pretraining(
        config, RunIdentity(STAGE, context.job_name, context.config_sha256), registry, on_checkpoint=publish
    )
    if conclude(result, publish) and result.sample is not None:
        print(f"sample (greedy, {config.sample.tokens} tokens): {result.sample!r}", flush=True)


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
