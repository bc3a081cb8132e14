"""RL as a composition: rl-data prompts, the policy's rollouts, the GRPO objective, a starting model, the session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from nemotron.artifacts import ArtifactKind, FileRegistry
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.datasets.gpt import TrainingDataError
from nemotron.training.distributed.parallel import DistributedContext
from nemotron.training.engine.engines import Engine
from nemotron.training.engine.objective import Batch
from nemotron.training.inference.answers import HeldOutResult, Vocabulary, greedy_held_out, verifier_scorer
from nemotron.training.inference.prompts import Prompt, read_prompts
from nemotron.training.rl.config import RlConfig
from nemotron.training.rl.objective import GrpoObjective
from nemotron.training.rl.rollout import Rollouts
from nemotron.training.run.inputs import StageInputs, resolve_stage_inputs
from nemotron.training.run.session import (
    DataRequest,
    FineTuneStart,
    RunIdentity,
    StageData,
    TrainingResult,
    run_training,
)


def resolve_inputs(cfg: RlConfig, registry: FileRegistry) -> StageInputs:
    """Pin `run.data` (an rl-data artifact) and find the checkpoint `run.model` names."""
    return resolve_stage_inputs(cfg.run.data, cfg.run.model, ArtifactKind.RL_DATA, registry)


def vocabulary(cfg: RlConfig, inputs: StageInputs) -> Vocabulary:
    """The data's tokenizer with the configured stop tokens; an error when its folder is not on this machine."""
    tokenizer = inputs.hf_tokenizer()
    if tokenizer is None:
        raise TrainingDataError(
            f"the tokenizer of {inputs.data.ref} is not a folder on this machine; RL decodes completions to "
            "score them: prepare the RL data with a local tokenizer folder"
        )
    return Vocabulary(tokenizer, cfg.generation.stop_tokens)


def _split_prompts(cfg: RlConfig, inputs: StageInputs, split: str, limit: int | None = None) -> list[Prompt]:
    path = inputs.split_file(split)
    if path is None:
        raise TrainingDataError(f"{inputs.data.ref} has no {split} split; prepare the RL data again")
    return read_prompts(path, limit)


class PolicyVersion:
    """Counts the policy's optimizer steps, so that a held-out measure is not repeated for the same weights."""

    def __init__(self, measure: Callable[[torch.nn.Module, DistributedContext], HeldOutResult] | None) -> None:
        self.measure = measure
        self.steps = 0
        self._last: tuple[int, HeldOutResult] | None = None

    def held_out(self, model: torch.nn.Module, context: DistributedContext) -> HeldOutResult | None:
        if self.measure is None:
            return None
        if self._last is None or self._last[0] != self.steps:
            self._last = (self.steps, self.measure(model, context))
        return self._last[1]


def rl_data(
    cfg: RlConfig, inputs: StageInputs, objective: GrpoObjective, vocabulary: Vocabulary, version: PolicyVersion
) -> Callable[[DataRequest], StageData]:
    """The data factory of RL: rollouts of the current policy on the train prompts, and the held-out accuracy."""

    def build(request: DataRequest) -> StageData:
        from megatron.core import parallel_state

        from nemotron.training.inference.backend import SamplingParams

        context = request.context
        if cfg.grpo.prompts_per_step % context.data:
            raise TrainingDataError(
                f"grpo.prompts_per_step={cfg.grpo.prompts_per_step} must be a multiple of the {context.data} "
                "data-parallel ranks (each takes whole groups)"
            )
        prompts = _split_prompts(cfg, inputs, "train")
        gen = cfg.generation

        def sample(batch: Sequence[Sequence[int]], seed: int) -> list[Any]:
            from nemotron.training.inference.megatron_backend import generator_for

            params = SamplingParams(gen.max_new_tokens, gen.temperature, gen.top_p, vocabulary.stop_ids, seed)
            backend = generator_for(request.model(), cfg.model, cfg.generation.max_batch_size)
            return list(backend.generate(batch, params))

        def logprobs_of(model: torch.nn.Module) -> Callable[[Batch], torch.Tensor]:
            def run(batch: Batch) -> torch.Tensor:
                moved = {k: v.to(context.device) for k, v in batch.items()}
                was_training = model.training
                model.eval()
                with torch.no_grad():
                    values, _ = objective.token_logprobs(objective.forward(model, moved), moved["labels"])
                model.train(was_training)
                return values

            return run

        reference: list[torch.nn.Module] = []

        def reference_logprobs(batch: Batch) -> torch.Tensor:
            if not reference:
                reference.append(_frozen_copy(cfg, inputs.start, context))
            return logprobs_of(reference[0])(batch)

        group = parallel_state.get_data_parallel_group() if context.data > 1 else None

        def reduce_stats(totals: torch.Tensor) -> torch.Tensor:
            if group is not None:
                import torch.distributed as dist

                dist.all_reduce(totals, group=group)
            return totals

        rollouts = Rollouts(
            cfg,
            prompts,
            sample,
            verifier_scorer(vocabulary),
            data_rank=parallel_state.get_data_parallel_rank(),
            data_size=context.data,
            logprobs=lambda batch: logprobs_of(request.model())(batch),
            reference_logprobs=reference_logprobs,
            reduce_stats=reduce_stats,
        )

        def evaluate() -> dict[str, float]:
            result = version.held_out(request.model(), context)
            return {"held_out_accuracy": result.accuracy} if result is not None else {}

        def step_metrics() -> dict[str, float]:
            version.steps += 1
            return rollouts.step_metrics()

        return StageData(
            train_batches=lambda consumed: rollouts.micro_batches(consumed // cfg.train.global_batch_size),
            valid_batches=None,
            ref=inputs.data.ref,
            tokenizer=inputs.tokenizer,
            step_metrics=step_metrics,
            evaluate_metrics=evaluate if version.measure is not None else None,
        )

    return build


def held_out_report(
    cfg: RlConfig, inputs: StageInputs, vocabulary: Vocabulary
) -> Callable[[torch.nn.Module, DistributedContext], HeldOutResult] | None:
    """Greedy answers of the policy to `held_out.count` prompts of `held_out.split` (None: none asked/no split)."""
    if cfg.held_out.count == 0 or inputs.split_file(cfg.held_out.split) is None:
        return None
    prompts = _split_prompts(cfg, inputs, cfg.held_out.split, cfg.held_out.count)
    scorer = verifier_scorer(vocabulary)
    new_tokens = cfg.held_out.max_new_tokens or cfg.generation.max_new_tokens

    def report(model: torch.nn.Module, context: DistributedContext) -> HeldOutResult:
        from nemotron.training.inference.megatron_backend import generator_for

        generator = generator_for(model, cfg.model, cfg.generation.max_batch_size)
        return greedy_held_out(prompts, generator, new_tokens, cfg.train.seed, scorer, vocabulary)

    return report


def _frozen_copy(cfg: RlConfig, start: CheckpointInfo, context: DistributedContext) -> torch.nn.Module:
    """The starting model again (LoRA adapters merged), frozen: the reference of the KL term (built anew:
    megatron models do not deepcopy)."""
    from nemotron.training.checkpoint.merged import merged_model

    model = merged_model(start, cfg.model, cfg.parallel, context.device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def run_rl(
    cfg: RlConfig,
    inputs: StageInputs,
    identity: RunIdentity,
    registry: FileRegistry,
    on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
) -> TrainingResult:
    """GRPO in this process (one of torchrun's, or alone) from `resolve_inputs`; collective over all ranks."""
    objective = GrpoObjective(
        vocab_size=cfg.model.vocab_size,
        temperature=cfg.generation.temperature,
        clip_low=cfg.grpo.clip_low,
        clip_high=cfg.grpo.clip_high,
        aggregation=cfg.grpo.loss_aggregation,
        kl_coef=cfg.grpo.kl_coef,
    )
    vocab = vocabulary(cfg, inputs)
    version = PolicyVersion(held_out_report(cfg, inputs, vocab))

    def report(engine: Engine, context: DistributedContext) -> HeldOutResult | None:
        return version.held_out(engine.unwrapped_model(), context)

    return run_training(
        cfg,
        identity,
        registry,
        rl_data(cfg, inputs, objective, vocab, version),
        objective,
        on_checkpoint,
        fine_tune=FineTuneStart(inputs.start),
        report=report if version.measure is not None else None,
    )
