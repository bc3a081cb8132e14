"""The SFT launch preflight: its inputs fit the model (sequence, vocabulary), then the shared training checks."""

from __future__ import annotations

from nemotron.artifacts import FileRegistry, default_registry_root
from nemotron.config.errors import ConfigError
from nemotron.env import Profile
from nemotron.training.run.preflight import check_checkpoint_dir, check_training_run, data_tokenizer_notes
from nemotron.training.sft.config import SftConfig, with_budget
from nemotron.training.sft.inputs import SftInputs, resolve_inputs


def check_sft(cfg: SftConfig, profile: Profile) -> list[str]:
    """ConfigError/ArtifactError for a config the job would reject, with the job's message; the dry run's notes.

    `run.data` and `run.model` were pinned and kind-checked at launch (the catalog's `StageInput`).
    """
    from nemotron.artifacts.kinds import SftDataMeta

    if cfg.parallel.context != 1:
        raise ConfigError(
            f"config key 'parallel.context': SFT packs documents into rows, which context parallelism would split "
            f"across ranks (parallel.context={cfg.parallel.context}); set parallel.context=1"
        )
    inputs = resolve_inputs(cfg, FileRegistry(default_registry_root()))
    meta = inputs.data.typed_metadata()
    pack_size = meta.seq_length if isinstance(meta, SftDataMeta) else None
    if pack_size is not None and pack_size > cfg.model.seq_length:
        raise ConfigError(
            f"{inputs.data.ref} packs rows of up to {pack_size} tokens but the model's sequence is "
            f"{cfg.model.seq_length} (model.seq_length); prepare the data with pack_size={cfg.model.seq_length}"
        )
    notes = _tokenizer_notes(cfg, inputs)
    check_training_run(with_budget(cfg, inputs.train_rows()), profile)
    return notes + check_checkpoint_dir(cfg, profile)


def _tokenizer_notes(cfg: SftConfig, inputs: SftInputs) -> list[str]:
    """ConfigError when the data's token ids cannot be the model's; a note when the tokenizers' names differ."""
    return data_tokenizer_notes(
        inputs.data.ref, inputs.tokenizer, inputs.start, inputs.start_source, cfg.model.vocab_size, "SFT"
    )
