"""Stage entry point: measure model artifacts side by side on held-out data and publish the report as an eval artifact.

Run inside a job as `python -m nemotron.stages.evaluation --config config.yaml` (one process; a GPU
when there is one). Re-running the same config (the same pinned models and data) measures nothing
again: it shows the report the earlier run published.
"""

from __future__ import annotations

from nemotron.training.evaluation.config import EvalConfig

STAGE = "eval"


def main(argv: list[str] | None = None) -> None:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.eval_publish import REPORT_ROLE, evaluated_before, publish_eval
    from nemotron.stages.runtime import load_stage_config
    from nemotron.training.evaluation.inputs import resolve_inputs
    from nemotron.training.evaluation.report import format_samples, format_table, read_report
    from nemotron.training.evaluation.runner import run_evaluation

    config, context = load_stage_config(argv, EvalConfig, "evaluation")
    mirrors = mirrors_from_environment()  # fail early, not after the measures
    registry = FileRegistry(default_registry_root())
    inputs = resolve_inputs(config, registry)
    earlier = evaluated_before(registry, config.eval_artifact_name, context.config_sha256)
    if earlier is not None:
        report = read_report(earlier.file(REPORT_ROLE))
        done = f"nothing changed: {earlier.ref} already holds this evaluation ({earlier.path})"
    else:
        report, path = run_evaluation(config, inputs, registry, say=lambda line: print(line, flush=True))
        artifact = publish_eval(registry, mirrors, config.eval_artifact_name, path, report.metadata(), context, STAGE)
        done = f"published {artifact.ref} at {artifact.path} (report: {path})"
    samples = format_samples(report)
    if samples:
        print("\nsamples (greedy):\n" + samples)
    print("\n" + format_table(report) + "\n")
    print(done, flush=True)


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
