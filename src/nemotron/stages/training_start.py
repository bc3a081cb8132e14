"""Open a training stage that starts from a model (SFT, RL): config, registry, inputs, publisher, identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.stages.runtime import JobContext
    from nemotron.training.checkpoint.layout import CheckpointInfo
    from nemotron.training.run.session import RunIdentity


class ModelStageConfig(Protocol):
    """What the opening reads of the stage's config."""

    @property
    def model_artifact_name(self) -> str: ...


class StartInputs(Protocol):
    """What the opening reads of the stage's resolved inputs."""

    @property
    def start_source(self) -> str: ...


C = TypeVar("C", bound=ModelStageConfig)
I = TypeVar("I", bound=StartInputs)  # noqa: E741


@dataclass
class TrainingStart(Generic[C, I]):
    """A training stage as it starts: its config, context, registry and inputs, the checkpoint publisher, the
    run's identity, and the evaluation the stage fills before the final checkpoint is published."""

    config: C
    context: JobContext
    registry: FileRegistry
    inputs: I
    publish: Callable[[CheckpointInfo], None]
    identity: RunIdentity
    evaluation: dict[str, Any] = field(default_factory=dict)


def open_training_stage(
    argv: list[str] | None, schema: type[C], stage: str, resolve: Callable[[C, FileRegistry], I]
) -> TrainingStart[C, I]:
    """Read the config of `stage` (also its module under nemotron.stages) and the mirrors, resolve the inputs, and
    publish checkpoints as `model_artifact_name` with the start model in their lineage."""
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.runtime import load_stage_config
    from nemotron.stages.training_outcome import checkpoint_publisher
    from nemotron.training.run.session import RunIdentity

    config, context = load_stage_config(argv, schema, stage)
    mirrors = mirrors_from_environment()  # fail early, not after hours of training
    registry = FileRegistry(default_registry_root())
    inputs = resolve(config, registry)
    evaluation: dict[str, Any] = {}  # filled before the final checkpoint is published
    publish = checkpoint_publisher(
        registry, mirrors, config.model_artifact_name, context, stage, (inputs.start_source,), evaluation
    )
    identity = RunIdentity(stage, context.job_name, context.config_sha256)
    return TrainingStart(config, context, registry, inputs, publish, identity, evaluation)
