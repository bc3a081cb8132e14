"""A chat prep's (SFT, RL) request from its config, and its launch preflight of blend, tokenizer and template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nemotron.stages.data_prep_request import (
    check_chat_template_source,
    check_prep_inputs,
    data_folder,
    dataset_identities,
    default_workers,
    hash_settings,
)

if TYPE_CHECKING:
    from nemotron.data.blend_spec import BlendSpec
    from nemotron.data.splits import SplitFractions
    from nemotron.env import Profile
    from nemotron.stages.data_prep_config import SplitSection
    from nemotron.stages.data_prep_sft_config import SftTokenizerSection

S = TypeVar("S")
Q = TypeVar("Q")


class ChatPrepKeys(Protocol):
    """The keys the chat preps' configs share (DataPrepSftConfig, DataPrepRlConfig)."""

    @property
    def blend_path(self) -> str: ...
    @property
    def tokenizer(self) -> SftTokenizerSection: ...
    @property
    def chat_template(self) -> str: ...
    @property
    def split(self) -> SplitSection: ...
    @property
    def artifact_name(self) -> str: ...
    @property
    def num_shards(self) -> int: ...
    @property
    def workers(self) -> int | None: ...
    @property
    def force(self) -> bool: ...
    @property
    def max_bad_records(self) -> int: ...
    @property
    def output_dir(self) -> str | None: ...


def build_chat_request(
    config: ChatPrepKeys,
    registry_root: Path,
    text_field: str,
    template_hash: str,
    tokenizer: str,
    deciding: dict[str, Any],
    settings: Callable[[SplitFractions, str], S],
    request: Callable[[BlendSpec, S, Path, int, int, bool, int], Q],
) -> Q:
    """The run's request: `request(blend, settings(fractions, settings hash), data folder, num_shards, workers,
    force, max_bad_records)`; the settings hash covers the datasets, `tokenizer` (its fingerprint), the chat
    template, the split, num_shards and the prep's own `deciding` keys."""
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.splits import SplitFractions

    blend = load_blend_spec(config.blend_path, default_text_field=text_field)
    fractions = SplitFractions(config.split.valid_fraction, config.split.test_fraction, config.split.seed)
    settings_hash = hash_settings(
        {  # what decides the shards' bytes
            "datasets": dataset_identities(blend),
            "tokenizer": tokenizer,
            "chat_template": template_hash,
            "split": asdict(config.split),
            **deciding,
            "num_shards": config.num_shards,
        }
    )
    prep_settings = settings(fractions, settings_hash)
    data_dir = data_folder(config.output_dir, registry_root, config.artifact_name, settings_hash)
    workers = default_workers(config.workers)
    return request(blend, prep_settings, data_dir, config.num_shards, workers, config.force, config.max_bad_records)


def check_chat_inputs(config: ChatPrepKeys, text_field: str, profile: Profile) -> list[str]:
    """The blend file, local tokenizer folder, output_dir and the chat template, checked as the job checks them."""
    tokenizer = config.tokenizer.name_or_path
    notes = check_prep_inputs(config.blend_path, text_field, tokenizer, config.output_dir, profile)
    return notes + check_chat_template_source(config.chat_template, tokenizer, profile)
