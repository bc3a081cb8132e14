"""From the SFT data prep config to an SftRequest (blend, settings hash, folder), and its launch preflight."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.stages.data_prep_request import check_prep_inputs, default_workers

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
        "datasets": [{k: v for k, v in asdict(d).items() if k != "weight"} for d in blend.datasets],
        "tokenizer": tokenizer,
        "chat_template": template_hash,
        "split": asdict(config.split),
        "last_turn_only": config.last_turn_only,
        "num_shards": config.num_shards,
    }
    settings_hash = hashlib.sha256(json.dumps(deciding, sort_keys=True).encode()).hexdigest()
    settings = SftSettings(
        fractions, config.last_turn_only, config.pack_size, config.packing, config.overflow, settings_hash
    )
    data_dir = (
        Path(config.output_dir).expanduser()
        if config.output_dir
        else registry_root / config.artifact_name / "data" / settings_hash[:16]
    )
    workers = default_workers(config.workers)
    return SftRequest(blend, settings, data_dir, config.num_shards, workers, config.force, config.max_bad_records)


def check_sft_inputs(config: DataPrepSftConfig, profile: Profile) -> list[str]:
    """The stage's launch preflight: blend file, local tokenizer folder, output_dir and the chat template,
    checked as the job checks them (the values were checked with the config, DataPrepSftConfig).

    On Slurm, a path not visible from here may still exist on the cluster: a note for the dry run instead
    of an error; so is the tokenizer's own template when the tokenizer is not a folder here.
    """
    from nemotron.data.chat_template import SHIPPED_TEMPLATES, TOKENIZER_TEMPLATE, load_chat_template

    tokenizer = config.tokenizer.name_or_path
    notes = check_prep_inputs(config.blend_path, MESSAGES_FIELD, tokenizer, config.output_dir, profile)
    source = config.chat_template
    if source == TOKENIZER_TEMPLATE and not Path(tokenizer).expanduser().is_dir():
        notes.append(f"chat_template 'tokenizer': the template of {tokenizer} is not checked here; the job loads it")
    elif (
        profile.executor == "slurm"
        and source not in (*SHIPPED_TEMPLATES, TOKENIZER_TEMPLATE)
        and not Path(source).expanduser().exists()
    ):
        notes.append(f"chat_template {source} is not visible here; the job reads it on the cluster")
    else:
        load_chat_template(source, tokenizer)
    return notes
