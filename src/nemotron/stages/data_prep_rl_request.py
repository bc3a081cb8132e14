"""From the RL data prep config to an RlRequest (blend, settings hash, folder), and its launch preflight."""

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
    from nemotron.data.rl_prep import RlRequest
    from nemotron.env import Profile
    from nemotron.stages.data_prep_rl_config import DataPrepRlConfig

# RL records are read whole (`messages` or `question`, `expected_answer`, ...); the blend's text_field is not used.
PROMPT_FIELD = "messages"


def build_rl_request(config: DataPrepRlConfig, registry_root: Path, template_hash: str, tokenizer: str) -> RlRequest:
    """The run's request; `tokenizer` is the tokenizer's fingerprint (data_prep_request.tokenizer_fingerprint)."""
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.rl_prep import RlRequest
    from nemotron.data.rl_shard import RlSettings
    from nemotron.data.splits import SplitFractions

    blend = load_blend_spec(config.blend_path, default_text_field=PROMPT_FIELD)
    fractions = SplitFractions(config.split.valid_fraction, config.split.test_fraction, config.split.seed)
    deciding = {  # what decides the shards' bytes
        "datasets": dataset_identities(blend),
        "tokenizer": tokenizer,
        "chat_template": template_hash,
        "split": asdict(config.split),
        "max_prompt_tokens": config.max_prompt_tokens,
        "default_verifier": config.default_verifier,
        "num_shards": config.num_shards,
    }
    settings_hash = hash_settings(deciding)
    settings = RlSettings(fractions, config.max_prompt_tokens, config.default_verifier.strip(), settings_hash)
    data_dir = data_folder(config.output_dir, registry_root, config.artifact_name, settings_hash)
    workers = default_workers(config.workers)
    return RlRequest(blend, settings, data_dir, config.num_shards, workers, config.force, config.max_bad_records)


def check_rl_inputs(config: DataPrepRlConfig, profile: Profile) -> list[str]:
    """The stage's launch preflight: blend file, local tokenizer folder, output_dir, the chat template and
    `default_verifier` (resolved: a `module:function` is imported), checked as the job checks them (the values
    were checked with the config, DataPrepRlConfig).

    On Slurm, a path not visible from here may still exist on the cluster: a note for the dry run instead of
    an error; so is the tokenizer's own template when the tokenizer is not a folder here, and a verifier that
    needs what is not installed here (its module, or math-verify).
    """
    from nemotron.data.verifiers import BUILTIN_VERIFIERS, VerifierError, check_verifier_names

    tokenizer = config.tokenizer.name_or_path
    notes = check_prep_inputs(config.blend_path, PROMPT_FIELD, tokenizer, config.output_dir, profile)
    notes += check_chat_template_source(config.chat_template, tokenizer, profile)
    verifier = config.default_verifier.strip()
    try:
        check_verifier_names([verifier])
    except VerifierError as err:
        unknown = verifier not in BUILTIN_VERIFIERS and ":" not in verifier
        if profile.executor != "slurm" or unknown:
            raise VerifierError(f"config key 'default_verifier': {err}") from None
        notes.append(f"default_verifier does not resolve here ({err}); the job resolves it on the cluster")
    return notes
