"""The eval launch preflight: every model and data artifact resolves, fits the models, and lm-eval can run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nemotron.artifacts import FileRegistry, default_registry_root
from nemotron.config.errors import ConfigError
from nemotron.env import Profile
from nemotron.training.evaluation.config import EvalConfig
from nemotron.training.evaluation.inputs import (
    EvalInputs,
    EvalModel,
    decoding_tokenizer_missing,
    perplexity_length,
    resolve_inputs,
)
from nemotron.training.evaluation.lm_eval_tasks import INSTALL as LM_EVAL_INSTALL
from nemotron.training.evaluation.lm_eval_tasks import TOKENIZER_FIX
from nemotron.training.run.preflight import data_tokenizer_notes

DATA_KINDS = {"pretrain": "pretrain", "sft": "SFT", "rl": "RL"}  # measure -> the data prep that makes its data


def check_eval(cfg: EvalConfig, profile: Profile) -> list[str]:
    """ConfigError/ArtifactError for a config the job would reject, with the job's message; the dry run's notes.

    Model and data references were pinned and kind-checked at launch (the catalog's `StageInput`).
    """
    inputs = resolve_inputs(cfg, FileRegistry(default_registry_root()))
    notes: list[str] = []
    for model in inputs.models:
        for measure, artifact in inputs.data.items():
            tokenizer, kind = inputs.tokenizer(measure), DATA_KINDS[measure]
            vocab = model.config.vocab_size
            notes += data_tokenizer_notes(artifact.ref, tokenizer, model.checkpoint, model.label, vocab, kind)
    check_splits(cfg, inputs)
    check_lengths(cfg, inputs)
    if "rl" in inputs.data:
        notes += _check_rl_data(inputs, profile)
    if cfg.lm_eval.tasks:
        notes += check_lm_eval(cfg, inputs.models, profile)
    return notes


def check_splits(cfg: EvalConfig, inputs: EvalInputs) -> None:
    """ConfigError when a configured split is missing from its data artifact."""
    if "pretrain" in inputs.data:
        inputs.check_pretrain_split(cfg.perplexity.split, "perplexity.split")
    if "sft" in inputs.data:
        inputs.split_file("sft", cfg.sft_loss.split, "sft_loss.split")
    if "rl" in inputs.data:
        inputs.split_file("rl", cfg.rl.split, "rl.split")


def check_lengths(cfg: EvalConfig, inputs: EvalInputs) -> None:
    """ConfigError when a model cannot read the configured sequences, packed rows or prompts and answers."""
    from nemotron.artifacts.kinds import RLDataMeta, SftDataMeta

    shortest = min(inputs.models, key=lambda model: model.config.seq_length)
    limit = shortest.config.seq_length
    if "pretrain" in inputs.data and perplexity_length(cfg, inputs) > limit:
        raise ConfigError(
            f"perplexity.seq_length={cfg.perplexity.seq_length} is longer than the sequence of {shortest.label} "
            f"({limit}); set perplexity.seq_length <= {limit}, or null for the shortest model's"
        )
    sft = inputs.data.get("sft")
    sft_meta = sft.typed_metadata() if sft is not None else None
    if sft is not None and isinstance(sft_meta, SftDataMeta) and sft_meta.seq_length and sft_meta.seq_length > limit:
        raise ConfigError(
            f"{sft.ref} packs rows of up to {sft_meta.seq_length} tokens but {shortest.label} reads {limit}; "
            f"evaluate it on SFT data prepared with pack_size={limit} (nemotron nano3 data prep sft)"
        )
    rl = inputs.data.get("rl")
    rl_meta = rl.typed_metadata() if rl is not None else None
    if rl is not None and isinstance(rl_meta, RLDataMeta) and rl_meta.prompt_tokens is not None:
        longest = rl_meta.prompt_tokens.max
        if longest + cfg.rl.max_new_tokens > limit:
            raise ConfigError(
                f"{rl.ref} has prompts of up to {longest} tokens: with rl.max_new_tokens={cfg.rl.max_new_tokens} "
                f"they exceed the sequence of {shortest.label} ({limit}); set rl.max_new_tokens <= "
                f"{max(limit - longest, 1)} or prepare the data with a smaller max_prompt_tokens"
            )


def _check_rl_data(inputs: EvalInputs, profile: Profile) -> list[str]:
    """Every verifier of the rl-data resolves; its tokenizer (which decodes the answers) is a folder here."""
    from nemotron.artifacts.kinds import RLDataMeta
    from nemotron.data.verifiers import check_verifier_names

    artifact = inputs.data["rl"]
    meta = artifact.typed_metadata()
    if isinstance(meta, RLDataMeta):
        check_verifier_names(sorted(meta.verifiers))
    tokenizer = inputs.tokenizer("rl")
    if tokenizer is not None and Path(tokenizer.name_or_path).is_dir():
        return []
    if profile.executor == "slurm":
        where = tokenizer.name_or_path if tokenizer is not None else "none recorded"
        return [f"the tokenizer of {artifact.ref} ({where}) is not a folder here: the job must find it on the cluster"]
    raise ConfigError(decoding_tokenizer_missing(artifact.ref, tokenizer))


def check_lm_eval(cfg: EvalConfig, models: tuple[EvalModel, ...], profile: Profile) -> list[str]:
    """lm-eval is installed, `include_path` is a folder, every model exports to Hugging Face with a tokenizer.

    On Slurm the job's Python and filesystem are the cluster's: what is missing here is a note, not an error.
    """
    from nemotron.training.export.hf import ExportError, check_exportable

    notes: list[str] = []

    def missing_here(problem: str, fix: str) -> None:
        if profile.executor != "slurm":
            raise ConfigError(f"{problem}; {fix}")
        notes.append(f"{problem} here: the job must find it on the cluster")

    if importlib.util.find_spec("lm_eval") is None:
        missing_here(
            f"lm_eval.tasks is set ({', '.join(cfg.lm_eval.tasks)}) but lm-eval is not installed in this Python",
            f"{LM_EVAL_INSTALL}, or set lm_eval.tasks=[]",
        )
    include = cfg.lm_eval.include_path
    if include is not None and not Path(include).expanduser().is_dir():
        missing_here(
            f"lm_eval.include_path={include!r} is not a folder",
            "give the folder of your task YAML files (an absolute path), or null",
        )
    for model in models:
        try:
            check_exportable(model.config)
        except ExportError as err:
            raise ConfigError(f"lm-eval runs on a Hugging Face export of {model.label}: {err}") from None
        if model.tokenizer_dir is None:
            missing_here(model.no_tokenizer(), TOKENIZER_FIX)
    return notes
