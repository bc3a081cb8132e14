"""From the SFT data prep config to an SftRequest (blend, settings hash, folder), and its launch preflight."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.stages.chat_prep_request import build_chat_request, check_chat_inputs

if TYPE_CHECKING:
    from nemotron.data.sft_prep import SftRequest
    from nemotron.env import Profile
    from nemotron.stages.data_prep_sft_config import DataPrepSftConfig

# SFT records are read whole (`messages`, optional `tools`); the blend's text_field is not used.
MESSAGES_FIELD = "messages"


def build_sft_request(config: DataPrepSftConfig, registry_root: Path, template_hash: str, tokenizer: str) -> SftRequest:
    """The run's request; `tokenizer` is the tokenizer's fingerprint (data_prep_request.tokenizer_fingerprint)."""
    from nemotron.data.sft_prep import SftRequest
    from nemotron.data.sft_shard import SftSettings

    # what decides the shards' bytes (packing settings decide only the packed files)
    return build_chat_request(
        config,
        registry_root,
        MESSAGES_FIELD,
        template_hash,
        tokenizer,
        {"last_turn_only": config.last_turn_only},
        lambda fractions, settings_hash: SftSettings(
            fractions, config.last_turn_only, config.pack_size, config.packing, config.overflow, settings_hash
        ),
        SftRequest,
    )


def check_sft_inputs(config: DataPrepSftConfig, profile: Profile) -> list[str]:
    """The stage's launch preflight: blend file, local tokenizer folder, output_dir and the chat template,
    checked as the job checks them (the values were checked with the config, DataPrepSftConfig).

    On Slurm, a path not visible from here may still exist on the cluster: a note for the dry run instead
    of an error; so is the tokenizer's own template when the tokenizer is not a folder here.
    """
    return check_chat_inputs(config, MESSAGES_FIELD, profile)
