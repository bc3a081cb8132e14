"""The RL launch preflight: the prompts fit the model, every verifier resolves, then the shared training checks."""

from __future__ import annotations

from nemotron.artifacts import FileRegistry, default_registry_root
from nemotron.config.errors import ConfigError
from nemotron.env import Profile
from nemotron.training.rl.config import RlConfig
from nemotron.training.run.preflight import check_checkpoint_dir, check_training_run, data_tokenizer_notes


def check_rl(cfg: RlConfig, profile: Profile) -> list[str]:
    """ConfigError/ArtifactError for a config the job would reject, with the job's message; the dry run's notes.

    `run.data` and `run.model` were pinned and kind-checked at launch (the catalog's `StageInput`).
    """
    from nemotron.artifacts.kinds import RLDataMeta
    from nemotron.data.verifiers import check_verifier_names
    from nemotron.training.rl.runner import resolve_inputs

    if cfg.parallel.pipeline != 1 or cfg.parallel.context != 1:
        raise ConfigError(
            "config keys 'parallel.pipeline' / 'parallel.context' must be 1 for RL: sampling needs the whole "
            f"model and whole sequences in each process (got {cfg.parallel.pipeline} / {cfg.parallel.context})"
        )
    inputs = resolve_inputs(cfg, FileRegistry(default_registry_root()))
    notes = data_tokenizer_notes(
        inputs.data.ref, inputs.tokenizer, inputs.start, inputs.start_source, cfg.model.vocab_size, "RL"
    )
    meta = inputs.data.typed_metadata()
    if isinstance(meta, RLDataMeta):
        check_verifier_names(sorted(meta.verifiers))
        longest = meta.prompt_tokens.max if meta.prompt_tokens is not None else None
        if longest is not None and longest + cfg.generation.max_new_tokens > cfg.model.seq_length:
            raise ConfigError(
                f"{inputs.data.ref} has prompts of up to {longest} tokens: with generation.max_new_tokens="
                f"{cfg.generation.max_new_tokens} they exceed model.seq_length={cfg.model.seq_length}; lower "
                "generation.max_new_tokens or prepare the data with a smaller max_prompt_tokens"
            )
    check_training_run(cfg, profile)
    return notes + check_checkpoint_dir(cfg, profile)
