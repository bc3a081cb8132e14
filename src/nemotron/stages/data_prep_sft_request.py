"""From the SFT data prep config to an SftRequest (blend, settings hash, folder), and its launch preflight."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.stages.data_prep_request import (
    check_chat_template_source,
    check_prep_inputs,
    data_folder,
    dataset_identities,
    default_workers,
    hash_settings,
)

if TYPE_CHECKING:
    from nemotron.data.sft_prep import SftRequest
    from nemotron.env import Profile
    from nemotron.stages.data_prep_sft_config import DataPrepSftConfig

# SFT records are read whole (`messages`, optional `tools`); the blend's text_field is not used.
MESSAGES_FIELD = "messages"


def build_sft_request(config: DataPrepSftConfig, registry_root: Path, template_hash: str, tokenizer: str) -> SftRequest:
    """The run's request; `tokenizer` is the tokenizer's fingerprint (data_prep_request.tokenizer_fingerprint)."""
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.sft_prep import SftRequest
    from nemotron.data.sft_shard import SftSettings
    from nemotron.data.splits import SplitFractions

    blend = load_blend_spec(config.blend_path, default_text_field=MESSAGES_FIELD)
    fractions = SplitFractions(config.split.valid_fraction, config.split.test_fraction, config.split.seed)
    deciding = {  # what decides the shards' bytes (packing settings decide only the packed files)
        "datasets": dataset_identities(blend),
        "tokenizer": tokenizer,
        "chat_template": template_hash,
        "split": asdict(config.split),
        "last_turn_only": config.last_turn_only,
        "num_shards": config.num_shards,
    }
    settings_hash = hash_settings(deciding)
    settings = SftSettings(
        fractions, config.last_turn_only, config.pack_size, config.packing, config.overflow, settings_hash
    )
    data_dir = data_folder(config.output_dir, registry_root, config.artifact_name, settings_hash)
    workers = default_workers(config.workers)
    return SftRequest(blend, settings, data_dir, config.num_shards, workers, config.force, config.max_bad_records)


def check_sft_inputs(config: DataPrepSftConfig, profile: Profile) -> list[str]:
    """The stage's launch preflight: blend file, local tokenizer folder, output_dir and the chat template,
    checked as the job checks them (the values were checked with the config, DataPrepSftConfig).

    On Slurm, a path not visible from here may still exist on the cluster: a note for the dry run instead
    of an error; so is the tokenizer's own template when the tokenizer is not a folder here.
    """
    tokenizer = config.tokenizer.name_or_path
    notes = check_prep_inputs(config.blend_path, MESSAGES_FIELD, tokenizer, config.output_dir, profile)
    return notes + check_chat_template_source(config.chat_template, tokenizer, profile)
