"""A pipe config (recipes/<family>/pipe/*.yaml): the stages of a chain, in order, each with its config and overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.config.errors import ConfigError
from nemotron.config.recipes import resolve_config_path
from nemotron.paths import recipes_root
from nemotron.stages.catalog import STAGES, StageSpec
from nemotron.suggest import did_you_mean

CODE_VERSIONS = ("package", "commit")  # what of the code a fingerprint covers (pipe key `code_version`)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PIPE_KEYS = ("code_version", "stages")
_STAGE_KEYS = ("stage", "config", "overrides")


@dataclass(frozen=True)
class PipeStage:
    """One stage of a pipe: its name in the pipe (`sft`), the stage it runs and how it is configured."""

    name: str  # addresses command-line overrides: `sft.train.train_iters=10`
    spec: StageSpec
    config: str  # a built-in config name of the stage, or a path
    overrides: tuple[str, ...] = ()  # from the pipe config, before the command line's


@dataclass(frozen=True)
class PipeConfig:
    """A loaded pipe config: where it came from, its code version policy and its stages in order."""

    path: Path
    family: str
    code_version: str  # "package" | "commit"
    stages: tuple[PipeStage, ...]

    def stage(self, name: str) -> PipeStage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"pipe {self.path} has no stage {name!r}; its stages: {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)


def pipe_config_dir(family: str) -> Path:
    return recipes_root() / family / "pipe"


def load_pipe_config(name_or_path: str, family: str) -> PipeConfig:
    """Load `-c NAME|PATH` of `nemotron <family> pipe`; every problem names the file and key."""
    from omegaconf import OmegaConf

    from nemotron.config.yaml_loader import load_yaml_chain

    path = resolve_config_path(name_or_path, pipe_config_dir(family))
    cfg, chain = load_yaml_chain(path)
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    where = str(chain[-1])
    _unknown_keys(data, _PIPE_KEYS, where, "")
    code_version = data.get("code_version", "package")
    if code_version not in CODE_VERSIONS:
        raise ConfigError(
            f"{where}: code_version={code_version!r}; use 'package' (nemotron's version counts in fingerprints) "
            "or 'commit' (its git commit counts too)"
        )
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, dict) or not raw_stages:
        raise ConfigError(
            f"{where}: 'stages' must map stage names to {{stage: ..., config: ...}}; it is {raw_stages!r}"
        )
    stages = tuple(_stage(name, value, family, where) for name, value in raw_stages.items())
    return PipeConfig(chain[-1], family, str(code_version), stages)


def _stage(name: Any, value: Any, family: str, where: str) -> PipeStage:
    if not isinstance(name, str) or not _STAGE_NAME.match(name):
        raise ConfigError(
            f"{where}: stage name {name!r} must be lower-case letters, digits and '_' (it addresses overrides: "
            "NAME.key=value)"
        )
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: stages.{name} must be a mapping with 'stage' and 'config'; it is {value!r}")
    _unknown_keys(value, _STAGE_KEYS, where, f"stages.{name}.")
    kinds = sorted(key.split("/", 1)[1] for key in STAGES if key.startswith(f"{family}/"))
    kind = value.get("stage")
    spec = STAGES.get(f"{family}/{kind}")
    if spec is None:
        raise ConfigError(
            f"{where}: stages.{name}.stage={kind!r} is not a {family} stage"
            + (did_you_mean(str(kind), kinds) or "")
            + f"; stages: {', '.join(kinds)}"
        )
    config = value.get("config", spec.default_config)
    overrides = value.get("overrides") or []
    if not isinstance(config, str) or not config.strip():
        raise ConfigError(f"{where}: stages.{name}.config must be a config name or path; it is {config!r}")
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise ConfigError(
            f"{where}: stages.{name}.overrides must be a list of 'key=value' strings; it is {overrides!r}"
        )
    if "/" in config and not Path(config).is_absolute():  # a path in a pipe file is relative to that file
        config = str(Path(where).parent / config)
    return PipeStage(name, spec, config, tuple(overrides))


def _unknown_keys(data: dict[Any, Any], allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key '{prefix}{key}'"
                + (did_you_mean(str(key), allowed) or "")
                + f"; a pipe has: {', '.join(prefix + k for k in allowed)}"
            )


def split_overrides(overrides: tuple[str, ...], pipe: PipeConfig) -> dict[str, tuple[str, ...]]:
    """Command-line overrides addressed per stage (`sft.peft.kind=lora`) -> {stage name: (`peft.kind=lora`,)}."""
    per_stage: dict[str, list[str]] = {name: [] for name in pipe.names}
    for text in overrides:
        prefix = re.match(r"^(~|\+\+|\+)?", text)
        sign = prefix.group(0) if prefix else ""
        rest = text[len(sign) :]
        head, dot, tail = rest.partition(".")
        stage = head.split("=", 1)[0]
        if not dot or "=" in head or stage not in per_stage:
            raise ConfigError(
                f"override {text!r}: no stage {stage!r} in pipe {pipe.path.name}."
                + (did_you_mean(stage, pipe.names, sentence=True) if stage else "")
                + f" A pipe's overrides start with a stage name (STAGE.key=value); stages: {', '.join(pipe.names)}"
            )
        per_stage[stage].append(sign + tail)
    return {name: tuple(items) for name, items in per_stage.items()}
