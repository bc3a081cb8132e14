"""From the RL data prep config to an RlRequest (blend, settings hash, folder), and its launch preflight."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.stages.chat_prep_request import build_chat_request, check_chat_inputs

if TYPE_CHECKING:
    from nemotron.data.rl_prep import RlRequest
    from nemotron.env import Profile
    from nemotron.stages.data_prep_rl_config import DataPrepRlConfig

# RL records are read whole (`messages` or `question`, `expected_answer`, ...); the blend's text_field is not used.
PROMPT_FIELD = "messages"


def build_rl_request(config: DataPrepRlConfig, registry_root: Path, template_hash: str, tokenizer: str) -> RlRequest:
    """The run's request; `tokenizer` is the tokenizer's fingerprint (data_prep_request.tokenizer_fingerprint)."""
    from nemotron.data.rl_prep import RlRequest
    from nemotron.data.rl_shard import RlSettings

    deciding = {"max_prompt_tokens": config.max_prompt_tokens, "default_verifier": config.default_verifier}
    verifier = config.default_verifier.strip()
    return build_chat_request(
        config,
        registry_root,
        PROMPT_FIELD,
        template_hash,
        tokenizer,
        deciding,
        lambda fractions, settings_hash: RlSettings(fractions, config.max_prompt_tokens, verifier, settings_hash),
        RlRequest,
    )


def check_rl_inputs(config: DataPrepRlConfig, profile: Profile) -> list[str]:
    """The stage's launch preflight: blend file, local tokenizer folder, output_dir, the chat template and
    `default_verifier` (resolved: a `module:function` is imported), checked as the job checks them (the values
    were checked with the config, DataPrepRlConfig).

    On Slurm, a path not visible from here may still exist on the cluster: a note for the dry run instead of
    an error; so is the tokenizer's own template when the tokenizer is not a folder here, and a verifier that
    needs what is not installed here (its module, or math-verify).
    """
    from nemotron.data.verifiers import BUILTIN_VERIFIERS, VerifierError, check_verifier_names

    notes = check_chat_inputs(config, PROMPT_FIELD, profile)
    verifier = config.default_verifier.strip()
    try:
        check_verifier_names([verifier])
    except VerifierError as err:
        unknown = verifier not in BUILTIN_VERIFIERS and ":" not in verifier
        if profile.executor != "slurm" or unknown:
            raise VerifierError(f"config key 'default_verifier': {err}") from None
        notes.append(f"default_verifier does not resolve here ({err}); the job resolves it on the cluster")
    return notes
