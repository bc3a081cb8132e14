"""Stage entry point: fine-tune a model artifact on an sft-data artifact and publish the result as a model artifact.

Run inside a job as `python -m nemotron.stages.sft --config config.yaml` (under torchrun for several
processes). Re-running the same config resumes from the run's newest checkpoint; a new run starts
from the weights of `run.model` with a fresh optimizer.
"""

from __future__ import annotations

from nemotron.training.sft.config import SftConfig

STAGE = "sft"


def main(argv: list[str] | None = None) -> None:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.runtime import load_stage_config
    from nemotron.stages.training_outcome import checkpoint_publisher, conclude
    from nemotron.training.run.session import RunIdentity
    from nemotron.training.sft.answers import exact_match
    from nemotron.training.sft.inputs import resolve_inputs
    from nemotron.training.sft.runner import run_sft

    config, context = load_stage_config(argv, SftConfig, "sft")
    mirrors = mirrors_from_environment()  # fail early, not after hours of training
    registry = FileRegistry(default_registry_root())
    inputs = resolve_inputs(config, registry)
    publish = checkpoint_publisher(
        registry, mirrors, config.model_artifact_name, context, STAGE, inputs=(inputs.start_source,)
    )
    identity = RunIdentity(STAGE, context.job_name, context.config_sha256)
    result = run_sft(config, inputs, identity, registry, on_checkpoint=publish)
    if conclude(result, publish) and result.report:
        answers = result.report
        print(f"held-out answers (greedy, {config.answers.split} split): exact match {exact_match(answers):.0%}")
        for answer in answers:
            mark = "ok " if answer.exact else "-- "
            print(f"{mark}{answer.prompt[-60:]!r} -> {answer.answer!r} (reference {answer.reference!r})", flush=True)


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
