"""Artifact kinds and each kind's typed metadata: frozen dataclasses with to_dict/from_dict.

Unknown keys are preserved, not rejected: every metadata dataclass has an `extra` dict that
holds keys it does not declare, and `to_dict` writes them back. Records written by newer (or
older) code therefore round-trip unchanged, while declared keys are type-checked.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from nemotron.artifacts.errors import ArtifactError


class ArtifactKind(str, Enum):
    """What an artifact holds; each kind's metadata is documented in docs/artifacts.md."""

    PRETRAIN_DATA = "pretrain-data"
    SFT_DATA = "sft-data"
    RL_DATA = "rl-data"
    MODEL_CHECKPOINT = "model-checkpoint"
    EVAL = "eval"


# the command that makes each kind (named in errors about an artifact of the wrong kind)
MADE_BY: dict[ArtifactKind, str] = {
    ArtifactKind.PRETRAIN_DATA: "nemotron nano3 data prep pretrain",
    ArtifactKind.SFT_DATA: "nemotron nano3 data prep sft",
    ArtifactKind.RL_DATA: "nemotron nano3 data prep rl",
    ArtifactKind.MODEL_CHECKPOINT: "nemotron nano3 pretrain",
    ArtifactKind.EVAL: "nemotron nano3 eval",
}


class _Record:
    """to_dict/from_dict shared by the metadata dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; `extra` keys are merged back at their level."""
        return typing.cast(dict[str, Any], _plain(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "metadata") -> Any:
        """Build from plain data; ArtifactError lists every missing or mistyped key."""
        problems: list[str] = []
        result = _convert(data, cls, "", problems)
        if problems:
            raise ArtifactError(
                f"{where}: metadata does not fit {cls.__name__}: "
                + "; ".join(problems)
                + ". Fix the metadata passed to publish/import (see docs/artifacts.md, 'Kinds')."
            )
        return result


@dataclass(frozen=True)
class TokenizerInfo(_Record):
    """The tokenizer data was tokenized with (or a checkpoint was trained with)."""

    name_or_path: str
    vocab_size: int | None = None
    eod_id: int | None = None
    backend: str | None = None  # e.g. "huggingface"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenCounts(_Record):
    """Counts of one split (or of one dataset in one split) of tokenized pretraining data."""

    documents: int = 0
    tokens: int = 0
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordCounts(_Record):
    """Counts of one split (or of one dataset in one split) of SFT or RL records."""

    records: int = 0
    tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PretrainDataMeta(_Record):
    """`pretrain-data`: Megatron bin/idx files plus blend.json."""

    dtype: str  # numpy dtype of the token ids, e.g. "uint16"
    splits: dict[str, TokenCounts]  # "train"/"valid"/"test" -> totals
    tokenizer: TokenizerInfo | None = None  # None only for imported data whose tokenizer is unknown
    datasets: dict[str, dict[str, TokenCounts]] = field(default_factory=dict)  # dataset -> split -> counts
    settings: dict[str, Any] = field(default_factory=dict)  # what decided the bytes (split seed, eod...)
    bad_records: int = 0  # input records skipped as unusable (empty, malformed)
    blend_source: str | None = None  # the input blend spec
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SftDataMeta(_Record):
    """`sft-data`: conversations tokenized (and usually packed) for supervised fine-tuning."""

    format: str  # e.g. "megatron-packed", "jsonl-chat"
    records: int
    tokens: int | None = None
    tokenizer: TokenizerInfo | None = None
    splits: dict[str, RecordCounts] = field(default_factory=dict)
    datasets: dict[str, dict[str, RecordCounts]] = field(default_factory=dict)
    seq_length: int | None = None
    chat_template: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    bad_records: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LengthStats(_Record):
    """Token lengths of a set of sequences (e.g. the prompts of RL data): mean and longest."""

    mean: float = 0.0
    max: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RLDataMeta(_Record):
    """`rl-data`: prompts (and optional references) for reinforcement learning."""

    format: str  # e.g. "jsonl-prompts"
    records: int
    tokens: int | None = None
    tokenizer: TokenizerInfo | None = None
    splits: dict[str, RecordCounts] = field(default_factory=dict)
    datasets: dict[str, dict[str, RecordCounts]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    bad_records: int = 0
    chat_template: str | None = None  # sha256 of the template the prompts were rendered with
    verifiers: dict[str, int] = field(default_factory=dict)  # verifier name -> prompts (all splits)
    prompt_tokens: LengthStats | None = None  # of the rendered prompts, all splits
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCheckpointMeta(_Record):
    """`model-checkpoint`: a training checkpoint (Megatron distributed format by default)."""

    step: int
    tokens_seen: int | None = None
    architecture: dict[str, Any] = field(default_factory=dict)  # num_layers, hidden_size, ...
    parallelism: dict[str, Any] = field(default_factory=dict)  # tensor/pipeline/... sizes it was saved with
    loss: float | None = None
    format: str = "megatron-dist"
    tokenizer: TokenizerInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalMeta(_Record):
    """`eval`: measures of one or more models on held-out data; the full report is the `report` file."""

    models: list[str]  # the evaluated models (pinned refs or checkpoint folders), in the report's order
    data: dict[str, str] = field(default_factory=dict)  # measure ("pretrain", "sft", "rl") -> data artifact
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> metric -> value
    settings: dict[str, Any] = field(default_factory=dict)  # what decided the numbers (splits, counts, sampling)
    extra: dict[str, Any] = field(default_factory=dict)


KindMetadata = PretrainDataMeta | SftDataMeta | RLDataMeta | ModelCheckpointMeta | EvalMeta

METADATA_TYPES: dict[ArtifactKind, type[KindMetadata]] = {
    ArtifactKind.PRETRAIN_DATA: PretrainDataMeta,
    ArtifactKind.SFT_DATA: SftDataMeta,
    ArtifactKind.RL_DATA: RLDataMeta,
    ArtifactKind.MODEL_CHECKPOINT: ModelCheckpointMeta,
    ArtifactKind.EVAL: EvalMeta,
}


def metadata_type(kind: ArtifactKind) -> type[KindMetadata]:
    return METADATA_TYPES[kind]


def parse_metadata(kind: ArtifactKind, data: dict[str, Any], *, where: str) -> KindMetadata:
    """`data` as `kind`'s metadata dataclass; ArtifactError lists every missing or mistyped key."""
    return typing.cast(KindMetadata, metadata_type(kind).from_dict(data, where=f"{where} ({kind.value})"))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "extra"}
        extra = getattr(value, "extra", {})
        return {**data, **{k: _plain(v) for k, v in extra.items() if k not in data}}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- conversion from plain data ---------------------------------------------------------------

_MISSING = object()


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _convert(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        (member,) = [a for a in args if a is not type(None)]
        return _convert(value, member, key, problems)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a dataclass type (never an instance)
        if not isinstance(value, dict):
            problems.append(f"key '{key}' must be a mapping, got {value!r}")
            return _MISSING
        return _build(tp, value, key, problems)
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            problems.append(f"key '{key}' must be a list, got {value!r}")
            return _MISSING
        item_tp = args[0] if args else Any
        return [_convert(v, item_tp, f"{key}[{index}]", problems) for index, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append(f"key '{key}' must be a mapping, got {value!r}")
            return _MISSING
        item_tp = args[1] if args else Any
        return {str(k): _convert(v, item_tp, _join(key, str(k)), problems) for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    problems.append(f"key '{key}' must be {getattr(tp, '__name__', tp)}, got {value!r}")
    return _MISSING


def _build(cls: type, data: dict[str, Any], key: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
    kwargs: dict[str, Any] = {"extra": {k: v for k, v in data.items() if k not in fields}}
    before = len(problems)
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], _join(key, name), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"missing key '{_join(key, name)}'")
    return cls(**kwargs) if len(problems) == before else _MISSING
