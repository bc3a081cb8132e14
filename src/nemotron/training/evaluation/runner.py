"""The eval run: the held-out data prepared once, then each model loaded in turn, measured, and the report written."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from nemotron.artifacts import FileRegistry
from nemotron.lease import take_lease
from nemotron.training.datasets.gpt import TrainingDataError
from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
from nemotron.training.engine.engines import EvalResult
from nemotron.training.evaluation.answers import score_answers
from nemotron.training.evaluation.config import EvalConfig
from nemotron.training.evaluation.inputs import EvalInputs, EvalModel, decoding_tokenizer_missing, perplexity_length
from nemotron.training.evaluation.loading import load_model
from nemotron.training.evaluation.losses import HeldOutBatches, mean_token_loss, pretrain_batches, sft_batches
from nemotron.training.evaluation.report import REPORT_FILE, EvalReport, ModelResult, Sample, write_report
from nemotron.training.inference.answers import Scorer, Vocabulary, verifier_scorer
from nemotron.training.inference.prompts import Prompt, read_prompts
from nemotron.training.model.config import ParallelConfig
from nemotron.training.run.config import run_folder
from nemotron.training.run.inputs import load_hf_tokenizer
from nemotron.training.run.session import RunFolderBusy

HF_SUBDIR = "hf"  # the run folder's Hugging Face exports for lm-eval, one per model while it is measured


@dataclass(frozen=True)
class RlPrompts:
    """The prompts of the RL measures, how their answers are decoded and how they are scored."""

    prompts: list[Prompt]
    vocabulary: Vocabulary
    score: Scorer


@dataclass(frozen=True)
class Measures:
    """What every model is measured on, prepared once (None: not configured)."""

    pretrain: HeldOutBatches | None
    sft: HeldOutBatches | None
    rl: RlPrompts | None
    lm_eval: Any | None  # lm-eval's TaskManager


def rl_prompts(cfg: EvalConfig, inputs: EvalInputs) -> RlPrompts:
    """The first `rl.count` prompts of the rl-data split, with the data's tokenizer and the prompts' verifiers."""
    artifact = inputs.data["rl"]
    prompts = read_prompts(inputs.split_file("rl", cfg.rl.split, "rl.split"), cfg.rl.count)
    if not prompts:
        raise TrainingDataError(f"the {cfg.rl.split} split of {artifact.ref} holds no prompts; choose another rl.split")
    tokenizer = load_hf_tokenizer(inputs.tokenizer("rl"))
    if tokenizer is None:
        raise TrainingDataError(decoding_tokenizer_missing(artifact.ref, inputs.tokenizer("rl")))
    vocabulary = Vocabulary(tokenizer, cfg.rl.stop_tokens)
    return RlPrompts(prompts, vocabulary, verifier_scorer(vocabulary))


def prepare_measures(cfg: EvalConfig, inputs: EvalInputs, folder: Path, registry: FileRegistry) -> Measures:
    """lm-eval's tasks checked first (before any model is loaded), then each configured measure's data."""
    manager = None
    if cfg.lm_eval.tasks:
        from nemotron.training.evaluation.lm_eval_tasks import TOKENIZER_FIX, LmEvalError, task_manager

        manager = task_manager(cfg.lm_eval)
        for model in inputs.models:
            if model.tokenizer_dir is None:
                raise LmEvalError(f"{model.no_tokenizer()} on this machine; {TOKENIZER_FIX}")
    pretrain = None
    if "pretrain" in inputs.data:
        ref, length = inputs.data["pretrain"].ref, perplexity_length(cfg, inputs)
        pretrain = pretrain_batches(cfg.perplexity, ref, length, cfg.seed, folder / "data-cache", registry)
    sft = None
    if "sft" in inputs.data:  # rows padded to the shortest model's sequence (padding changes no loss)
        split_file = inputs.split_file("sft", cfg.sft_loss.split, "sft_loss.split")
        sft = sft_batches(cfg.sft_loss, split_file, inputs.shortest_sequence)
    rl = rl_prompts(cfg, inputs) if "rl" in inputs.data else None
    return Measures(pretrain, sft, rl, manager)


def _loss(model: torch.nn.Module, batches: HeldOutBatches, device: torch.device, key: str) -> EvalResult:
    result = mean_token_loss(model, batches, device)
    if result.tokens == 0:
        raise TrainingDataError(f"{key}: no token of the evaluated data counts towards the loss; evaluate more data")
    return result


def _export_folder(folder: Path, index: int, label: str) -> Path:
    return folder / HF_SUBDIR / f"{index}-{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(label).name)}"


def evaluate_model(
    source: EvalModel,
    index: int,
    cfg: EvalConfig,
    measures: Measures,
    folder: Path,
    device: torch.device,
    say: Callable[[str], None],
) -> ModelResult:
    """Load one model, run every configured measure on it, free it."""
    model = load_model(source, device)
    metrics: dict[str, float] = {}
    samples: tuple[Sample, ...] = ()
    if measures.pretrain is not None:
        result = _loss(model, measures.pretrain, device, "perplexity")
        metrics.update(pretrain_loss=result.loss, pretrain_perplexity=result.perplexity, pretrain_tokens=result.tokens)
        say(f"{source.label}: perplexity {result.perplexity:.2f} (loss {result.loss:.4f}, {result.tokens:,} tokens)")
    if measures.sft is not None:
        result = _loss(model, measures.sft, device, "sft_loss")
        metrics.update(sft_loss=result.loss, sft_tokens=result.tokens)
        say(f"{source.label}: SFT loss {result.loss:.4f} ({result.tokens:,} assistant tokens)")
    if measures.rl is not None:
        rl = measures.rl
        from nemotron.training.inference.megatron_backend import generator_for

        backend = generator_for(model, source.config, cfg.rl.max_batch_size)
        scores = score_answers(rl.prompts, backend, cfg.rl, rl.vocabulary, rl.score)
        metrics.update(scores.metrics())
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.metrics().items() if k != "rl_prompts")
        say(f"{source.label}: {len(rl.prompts)} RL prompts: {shown}")
        samples = tuple(Sample(a.prompt, a.answer, a.expected, a.reward) for a in scores.answers[: cfg.samples])
    if measures.lm_eval is not None:
        from nemotron.training.evaluation.lm_eval_tasks import run_tasks
        from nemotron.training.export.from_checkpoint import export_loaded_hf

        hf = export_loaded_hf(
            model,
            source.config,
            source.checkpoint,
            source.label,
            _export_folder(folder, index, source.label),
            tokenizer_dir=source.tokenizer_dir,
            dtype="float32",
            overwrite=True,
        )
        del model  # lm-eval loads the export
        try:
            found = run_tasks(hf, cfg.lm_eval, measures.lm_eval, str(device))
        finally:
            shutil.rmtree(hf, ignore_errors=True)  # a model's size in fp32: not kept (`model export hf` makes one)
        metrics.update(found)
        say(f"{source.label}: lm-eval " + ", ".join(f"{k} {v:.4f}" for k, v in found.items()))
    return ModelResult(source.label, str(source.checkpoint.path), source.step, metrics, samples)


def measure_settings(cfg: EvalConfig, inputs: EvalInputs) -> dict[str, Any]:
    """The settings of the configured measures (the report's and the eval artifact's record)."""
    settings: dict[str, Any] = {}
    if "pretrain" in inputs.data:
        settings["perplexity"] = {
            **dataclasses.asdict(cfg.perplexity),
            "seq_length": perplexity_length(cfg, inputs),
            "seed": cfg.seed,
        }
    if "sft" in inputs.data:
        settings["sft_loss"] = dataclasses.asdict(cfg.sft_loss)
    if "rl" in inputs.data:
        settings["rl"] = {**dataclasses.asdict(cfg.rl), "stop_tokens": list(cfg.rl.stop_tokens)}
    if cfg.lm_eval.tasks:
        settings["lm_eval"] = {**dataclasses.asdict(cfg.lm_eval), "tasks": list(cfg.lm_eval.tasks)}
    return settings


def run_evaluation(
    cfg: EvalConfig, inputs: EvalInputs, registry: FileRegistry, say: Callable[[str], None] = print
) -> tuple[EvalReport, Path]:
    """Measure every model of `inputs` in this process (alone: no torchrun); write and return the report.

    The run folder (<artifacts root>/../runs/<run_name>: the report, data caches, exports) is leased
    for the run: a second eval of the same run_name fails at once.
    """
    folder = run_folder(cfg.run_name, registry.root)
    lease = take_lease(folder, what=f"eval run {cfg.run_name!r}", error=RunFolderBusy)
    try:
        context = init_distributed(ParallelConfig(), seed=cfg.seed)
        try:
            measures = prepare_measures(cfg, inputs, folder, registry)
            results = []
            for index, source in enumerate(inputs.models):
                results.append(evaluate_model(source, index, cfg, measures, folder, context.device, say))
                if context.device.type == "cuda":
                    torch.cuda.empty_cache()
        finally:
            destroy_distributed()
        report = EvalReport(
            run_name=cfg.run_name,
            data=inputs.refs(),
            settings=measure_settings(cfg, inputs),
            models=tuple(results),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return report, write_report(report, folder / REPORT_FILE)
    finally:
        lease.release()
