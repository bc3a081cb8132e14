"""The stages nemotron can run: entry module, recipe config folder and config schema of each."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemotron.paths import recipes_root

if TYPE_CHECKING:
    from nemotron.artifacts.resolution import Resolver


@dataclass(frozen=True)
class StageInput:
    """An artifact a stage reads: the key under `run:` that names it, and its kind.

    `key` may be dotted for a nested section (`data.pretrain` for run.data.pretrain); its value may be
    one reference or a list of them (each is checked), or null when the stage makes the input optional.
    """

    key: str  # e.g. "data" for run.data
    kind: str  # an ArtifactKind value, e.g. "pretrain-data"

    def value_in(self, run_section: dict[str, Any]) -> Any:
        """The raw value at `key` in the `run:` section (None when a part of the key is missing)."""
        value: Any = run_section
        for part in self.key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def check(self, value: Any, registry: Resolver) -> None:
        """ArtifactError when `value` (the raw config value) is a reference to an artifact of another kind."""
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                self._check_one(item, f"run.{self.key}[{index}]", registry)
        else:
            self._check_one(value, f"run.{self.key}", registry)

    def _check_one(self, value: Any, key: str, registry: Resolver) -> None:
        from nemotron.artifacts import ArtifactError, ArtifactKind, ArtifactNotFoundError, ArtifactRef
        from nemotron.artifacts.resolution import require_kind

        if not isinstance(value, str) or "${" in value:
            return  # unset, or an interpolation: checked where it is resolved
        try:
            ref = ArtifactRef.parse(value)  # `name` alone means name:latest, as ${art:...} reads it
        except ArtifactError:
            return  # not a reference: the config schema reports it
        try:
            artifact = registry.resolve(ref)
        except ArtifactNotFoundError as err:
            raise err.at_key(key) from None
        try:
            require_kind(artifact, ArtifactKind(self.kind), ref=value)
        except ArtifactError as err:
            raise ArtifactError(f"config key '{key}': {err}") from None


@dataclass(frozen=True)
class StageSpec:
    """How to run one stage: what the CLI needs to know without importing the stage's code."""

    key: str  # used in job names and lineage, e.g. "data-prep-pretrain"
    family: str  # recipe family, e.g. "nano3"
    title: str
    entry_module: str  # run as `python -m <entry_module> --config <file>` inside the job
    config_subdir: str  # relative to the recipes root
    schema: str  # "module:Class" of the stage's config dataclass
    default_config: str = "default"
    example_override: str = "split.seed=7"  # shown in the command's --help examples
    single_task: bool = True  # data prep: one process; distributed training stages: one per GPU
    # Slurm array size, read from the stage's typed config, of a stage that runs as "shards" array +
    # "finalize" (the stage takes `--phase shards|finalize`); None here or 0 from the config: one job.
    array_size: Callable[[Any], int] | None = None
    # "module:function(config, profile) -> list[str]": raises a NemotronError (ConfigError, DataError, ...) for
    # a config the profile cannot run, with the job's own message; returns notes for the dry run (what it
    # could not check from here, e.g. paths on a cluster's filesystem)
    preflight: str | None = None
    # Slurm: ask for SIGUSR1 `requeue_signal_seconds` before the time limit (a profile's
    # `requeue_signal_seconds` overrides it); the stage saves, requeues its job and exits
    # (nemotron.training.distributed.preemption). Stages that do not handle SIGUSR1 leave this False.
    requeue_on_signal: bool = False
    requeue_signal_seconds: int = 120
    # config keys naming the artifact a run publishes, the first one set wins (messages about a missing
    # artifact name the built-in config that makes it)
    publishes: tuple[str, ...] = ()
    # the artifacts the stage reads (keys under `run:`): their kind is checked at launch, before the
    # config's ${art:...} values are read from them
    inputs: tuple[StageInput, ...] = ()

    def check_inputs(self, run_section: Any, registry: Resolver) -> None:
        """Check each input's reference in the raw `run:` section (None when the config has none)."""
        if not isinstance(run_section, dict):
            return
        for stage_input in self.inputs:
            stage_input.check(stage_input.value_in(run_section), registry)

    def published_name(self, config: dict[str, Any]) -> str | None:
        """The artifact a run of `config` (a plain container) publishes: the first `publishes` key set; a
        data prep sample run (`sample: N`) publishes `<artifact_name>-sample`."""
        from nemotron.stages.data_prep_config import SAMPLE_SUFFIX

        name = next((config[key] for key in self.publishes if isinstance(config.get(key), str)), None)
        sample = config.get("sample")  # data prep: documents per dataset (training configs: a section)
        if name and isinstance(sample, int) and not isinstance(sample, bool) and sample > 0:
            return f"{name}{SAMPLE_SUFFIX}"
        return name

    @property
    def config_dir(self) -> Path:
        return recipes_root() / self.config_subdir

    def load_schema(self) -> type:
        return _load(self.schema)

    def run_preflight(self, config: object, profile: object) -> tuple[str, ...]:
        """Check the typed config against the profile (no-op for stages without a preflight); the notes."""
        if not self.preflight:
            return ()
        return tuple(_load(self.preflight)(config, profile) or ())


def _load(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


NANO3_DATA_PREP_PRETRAIN = StageSpec(
    key="data-prep-pretrain",
    family="nano3",
    title="Tokenize a pretraining blend into Megatron bin/idx data",
    entry_module="nemotron.stages.data_prep_pretrain",
    config_subdir="nano3/stage0_pretrain/config/data_prep",
    schema="nemotron.stages.data_prep_pretrain:DataPrepPretrainConfig",
    array_size=lambda config: config.array_tasks,
    preflight="nemotron.stages.data_prep_request:check_inputs",
    publishes=("artifact_name",),
)

NANO3_DATA_PREP_SFT = StageSpec(
    key="data-prep-sft",
    family="nano3",
    title="Render, mask and pack a chat blend into SFT parquet sequences",
    entry_module="nemotron.stages.data_prep_sft",
    config_subdir="nano3/stage1_sft/config/data_prep",
    schema="nemotron.stages.data_prep_sft_config:DataPrepSftConfig",
    example_override="pack_size=2048",
    array_size=lambda config: config.array_tasks,
    preflight="nemotron.stages.data_prep_sft_request:check_sft_inputs",
    publishes=("artifact_name",),
)

NANO3_DATA_PREP_RL = StageSpec(
    key="data-prep-rl",
    family="nano3",
    title="Render a blend of prompt records (expected answer, verifier) into RL prompt JSONL",
    entry_module="nemotron.stages.data_prep_rl",
    config_subdir="nano3/stage2_rl/config/data_prep",
    schema="nemotron.stages.data_prep_rl_config:DataPrepRlConfig",
    example_override="max_prompt_tokens=512",
    array_size=lambda config: config.array_tasks,
    preflight="nemotron.stages.data_prep_rl_request:check_rl_inputs",
    publishes=("artifact_name",),
)

NANO3_PRETRAIN = StageSpec(
    key="pretrain",
    family="nano3",
    title="Pretrain a GPT model with megatron-core on a pretrain-data artifact",
    entry_module="nemotron.stages.pretrain",
    config_subdir="nano3/stage0_pretrain/config",
    schema="nemotron.training.pretrain.config:PretrainConfig",
    single_task=False,
    preflight="nemotron.training.pretrain.preflight:check_pretrain",
    example_override="train.train_iters=600",
    requeue_on_signal=True,  # the runner's PreemptionWatcher saves; pretrain.py requeues
    publishes=("artifact_name", "run_name"),  # artifact_name null: the run's name
    inputs=(StageInput("data", "pretrain-data"),),
)

NANO3_SFT = StageSpec(
    key="sft",
    family="nano3",
    title="Fine-tune a model artifact on packed chat data (an sft-data artifact)",
    entry_module="nemotron.stages.sft",
    config_subdir="nano3/stage1_sft/config",
    schema="nemotron.training.sft.config:SftConfig",
    single_task=False,
    preflight="nemotron.training.sft.preflight:check_sft",
    example_override="train.train_iters=400",
    requeue_on_signal=True,  # the session's PreemptionWatcher saves; sft.py requeues
    publishes=("artifact_name", "run_name"),
    inputs=(StageInput("data", "sft-data"), StageInput("model", "model-checkpoint")),
)

NANO3_RL = StageSpec(
    key="rl",
    family="nano3",
    title="Improve a model artifact with GRPO on verifiable prompts (an rl-data artifact)",
    entry_module="nemotron.stages.rl",
    config_subdir="nano3/stage2_rl/config",
    schema="nemotron.training.rl.config:RlConfig",
    single_task=False,
    preflight="nemotron.training.rl.preflight:check_rl",
    example_override="train.train_iters=100",
    requeue_on_signal=True,  # the session's PreemptionWatcher saves; rl.py requeues
    publishes=("artifact_name", "run_name"),
    inputs=(StageInput("data", "rl-data"), StageInput("model", "model-checkpoint")),
)

NANO3_EVAL = StageSpec(
    key="eval",
    family="nano3",
    title="Measure model artifacts side by side on held-out data (perplexity, SFT loss, RL reward, lm-eval)",
    entry_module="nemotron.stages.evaluation",
    config_subdir="nano3/stage3_eval/config",
    schema="nemotron.training.evaluation.config:EvalConfig",
    preflight="nemotron.training.evaluation.preflight:check_eval",
    example_override="rl.samples_per_prompt=8",
    publishes=("artifact_name", "run_name"),  # artifact_name null: the run's name
    inputs=(
        StageInput("models", "model-checkpoint"),
        StageInput("data.pretrain", "pretrain-data"),
        StageInput("data.sft", "sft-data"),
        StageInput("data.rl", "rl-data"),
    ),
)

STAGES: dict[str, StageSpec] = {
    f"{spec.family}/{spec.key}": spec
    for spec in (
        NANO3_DATA_PREP_PRETRAIN,
        NANO3_DATA_PREP_SFT,
        NANO3_DATA_PREP_RL,
        NANO3_PRETRAIN,
        NANO3_SFT,
        NANO3_RL,
        NANO3_EVAL,
    )
}


def producer_of(artifact_name: str) -> tuple[StageSpec, str] | None:
    """The stage and built-in config (name) whose run publishes `artifact_name`, or None (reads YAML only)."""
    from omegaconf import OmegaConf

    from nemotron.config import list_configs, load_config
    from nemotron.errors import NemotronError

    for spec in STAGES.values():
        names = list_configs(spec.config_dir)
        for name in sorted(names, key=lambda n: n != spec.default_config):  # the default config first
            try:
                cfg = load_config(name, spec.config_dir).cfg
                published = next(
                    (v for v in (OmegaConf.select(cfg, key, default=None) for key in spec.publishes) if v), None
                )
            except (NemotronError, ValueError, KeyError):  # OmegaConf's errors are ValueError/KeyError kinds
                continue
            if published == artifact_name:
                return spec, name
    return None


def import_hf_model(folder: Path, name: str, registry: Any) -> Any:
    """`nemotron nano3 model import hf`: stages.model_import.import_hf_model (imported when called)."""
    return _load("nemotron.stages.model_import:import_hf_model")(folder, name, registry)
