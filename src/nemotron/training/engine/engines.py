"""The model, optimizer and one training/eval step, through megatron-core's forward-backward schedule.

Two engines share one contract: `CpuEngine` (torch AdamW, gradients summed over data-parallel
ranks with gloo) and `GpuEngine` (megatron-core DDP + distributed optimizer, bf16, any pipeline
schedule). Both run megatron's `get_forward_backward_func()` with the stage's `Objective`
(engine/objective.py) and its per-token loss, so a step's loss is the mean over every counted
token of the global batch, whatever the accumulation or data-parallel split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.pipeline_parallel import get_forward_backward_func

from nemotron.training.distributed.parallel import DistributedContext
from nemotron.training.engine.objective import LOSS_KEY, Batch, LossOutput, Objective
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, ParallelConfig, resolved_precision
from nemotron.training.model.lora import base_part, checkpoint_part, load_part
from nemotron.training.model.precision import compute_autocast
from nemotron.training.optim.optimizer import OptimizerConfig, build_optimizer, clip_gradients


@dataclass(frozen=True)
class StepResult:
    """One optimizer step: mean loss per token over the global batch, tokens counted, grad norm."""

    loss: float
    tokens: int
    grad_norm: float
    skipped: bool  # the update was not applied (non-finite gradients)
    metrics: dict[str, float] = field(default_factory=dict)  # the means of the objective's other reports


@dataclass(frozen=True)
class EvalResult:
    """Mean loss per token over the evaluated batches, and its perplexity."""

    loss: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))


class Engine(Protocol):
    """What the training loop needs from an engine."""

    model_chunks: list[torch.nn.Module]
    optimizer: Any

    def train_step(self, batches: Iterator[Batch], num_microbatches: int) -> StepResult: ...

    def eval_step(self, batches: Iterator[Batch], num_microbatches: int) -> EvalResult: ...

    def sharded_state_dict(self, is_loading: bool = False) -> dict[str, Any]: ...

    def load_sharded_state(self, loaded: dict[str, Any]) -> None: ...

    def load_model_weights(self, model_state: dict[str, Any]) -> None: ...

    def weights_sharded_state_dict(self) -> dict[str, Any]: ...

    def unwrapped_model(self) -> torch.nn.Module: ...


def _forward_step(
    objective: Objective, device: torch.device, data_iterator: Iterator[Batch], model: torch.nn.Module
) -> tuple[Any, Callable[[Any], LossOutput]]:
    """megatron's forward_step_func: one micro-batch on this device through the objective."""
    batch = {
        key: value.to(device, non_blocking=True) for key, value in next(data_iterator).items() if value is not None
    }
    if parallel_state.get_context_parallel_world_size() > 1:  # this rank's balanced sequence chunks
        from megatron.core.utils import get_batch_on_this_cp_rank

        batch = get_batch_on_this_cp_rank(batch)
    return objective.forward(model, batch), partial(objective.loss, batch)


def _reduce_reports(
    reports: list[dict[str, torch.Tensor]], device: torch.device
) -> tuple[float, int, dict[str, float]]:
    """Sum every `[sum, count]` report over micro-batches and data-parallel ranks: the loss, its tokens and the
    means of the objective's other reports (e.g. RL's clip fraction); (nan, 0, {}) off the last stage."""
    keys = sorted({key for report in reports for key in report if key != LOSS_KEY})
    total = torch.zeros(1 + len(keys), 2, dtype=torch.float64, device=device)
    for report in reports:
        total[0] += report[LOSS_KEY].to(device=device, dtype=torch.float64)
        for row, key in enumerate(keys, start=1):
            if key in report:
                total[row] += report[key].to(device=device, dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(total, group=parallel_state.get_data_parallel_group(with_context_parallel=True))
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:  # the last stage holds the loss
            dist.all_reduce(total, group=parallel_state.get_pipeline_model_parallel_group())
    loss_sum, tokens = float(total[0, 0]), int(total[0, 1])
    extra = {key: float(total[row, 0] / total[row, 1]) for row, key in enumerate(keys, start=1) if total[row, 1] > 0}
    return (loss_sum / tokens if tokens else float("nan")), tokens, extra


class _ScheduleEngine:
    """What both engines share: megatron's forward-backward schedule over the model chunks, and evaluation."""

    model_chunks: list[torch.nn.Module]

    def __init__(
        self, model_cfg: ModelConfig, context: DistributedContext, micro_batch_size: int, objective: Objective
    ) -> None:
        self.device = context.device
        self.model_cfg = model_cfg
        self.seq_length = model_cfg.seq_length
        self.micro_batch_size = micro_batch_size
        self.objective = objective

    def _run_schedule(self, batches: Iterator[Batch], num_microbatches: int, forward_only: bool) -> list:
        with compute_autocast(self.model_cfg, self.device):  # the backward pass too (mixed bf16 on the CPU)
            return get_forward_backward_func()(
                forward_step_func=partial(_forward_step, self.objective, self.device),
                data_iterator=batches,
                model=self.model_chunks,
                num_microbatches=num_microbatches,
                seq_length=self.seq_length,
                micro_batch_size=self.micro_batch_size,
                forward_only=forward_only,
            )

    def eval_step(self, batches: Iterator[Batch], num_microbatches: int) -> EvalResult:
        for chunk in self.model_chunks:
            chunk.eval()
        with torch.no_grad():
            reports = self._run_schedule(batches, num_microbatches, forward_only=True)
        for chunk in self.model_chunks:
            chunk.train()
        loss, tokens, _ = _reduce_reports(reports, self.device)
        return EvalResult(loss=loss, tokens=tokens)


class CpuEngine(_ScheduleEngine):
    """On the CPU (fp32, or mixed bf16 with fp32 weights): torch AdamW; data-parallel gradients summed over
    gloo, then divided by tokens."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        parallel: ParallelConfig,
        optim: OptimizerConfig,
        context: DistributedContext,
        micro_batch_size: int,
        objective: Objective,
        prepare_model: Callable[[torch.nn.Module], None] | None = None,
    ) -> None:
        super().__init__(model_cfg, context, micro_batch_size, objective)
        self.clip_grad = optim.clip_grad
        model = build_model(model_cfg, parallel, self.device)
        if prepare_model is not None:
            prepare_model(model)
        model.config.calculate_per_token_loss = True
        model.config.finalize_model_grads_func = self._finalize_grads
        self.model_chunks = [model]
        self.optimizer = build_optimizer(model, optim)
        self._grad_norm = 0.0

    def _finalize_grads(self, model: list[torch.nn.Module], num_tokens: torch.Tensor | None, **_: Any) -> None:
        """Sum gradients and token counts over data-parallel ranks, then divide by the tokens."""
        grads = [grad for chunk in model for p in chunk.parameters() if (grad := p.grad) is not None]
        tokens = (num_tokens if num_tokens is not None else torch.tensor(1)).to(torch.float64)
        if dist.is_initialized() and parallel_state.get_data_parallel_world_size(with_context_parallel=True) > 1:
            group = parallel_state.get_data_parallel_group(with_context_parallel=True)
            flat = torch.cat([grad.reshape(-1) for grad in grads])
            dist.all_reduce(flat, group=group)
            offset = 0
            for grad in grads:
                grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
                offset += grad.numel()
            dist.all_reduce(tokens, group=group)
        scale = 1.0 / max(float(tokens), 1.0)
        for grad in grads:
            grad.mul_(scale)

    def train_step(self, batches: Iterator[Batch], num_microbatches: int) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        reports = self._run_schedule(batches, num_microbatches, forward_only=False)
        norm = clip_gradients(self.model_chunks[0].parameters(), self.clip_grad)
        finite = math.isfinite(norm)
        if finite:
            self.optimizer.step()
        loss, tokens, extra = _reduce_reports(reports, self.device)
        return StepResult(loss=loss, tokens=tokens, grad_norm=norm, skipped=not finite, metrics=extra)

    def sharded_state_dict(self, is_loading: bool = False) -> dict[str, Any]:
        from nemotron.training.checkpoint.optimizer_state import optimizer_sharded_state_dict

        model: Any = self.model_chunks[0]  # a megatron GPTModel (untyped)
        model_state = checkpoint_part(model.sharded_state_dict())
        return {"model": model_state, "optimizer": optimizer_sharded_state_dict(self.optimizer, model_state, model)}

    def load_sharded_state(self, loaded: dict[str, Any]) -> None:
        from nemotron.training.checkpoint.optimizer_state import load_optimizer_state

        load_part(self.unwrapped_model(), loaded["model"])
        load_optimizer_state(self.optimizer, loaded["optimizer"])

    def weights_sharded_state_dict(self) -> dict[str, Any]:
        model: Any = self.model_chunks[0]
        return base_part(model.sharded_state_dict())

    def load_model_weights(self, model_state: dict[str, Any]) -> None:
        """Weights only (a fine-tuning start): the optimizer keeps its fresh state."""
        load_part(self.unwrapped_model(), model_state)

    def unwrapped_model(self) -> torch.nn.Module:
        return self.model_chunks[0]


class GpuEngine(_ScheduleEngine):
    """bf16 on GPUs: megatron-core DDP, its distributed optimizer (fp32 main weights) and grad clipping."""

    model_chunks: list[Any]  # megatron DDP wrappers (untyped)

    def __init__(
        self,
        model_cfg: ModelConfig,
        parallel: ParallelConfig,
        optim: OptimizerConfig,
        context: DistributedContext,
        micro_batch_size: int,
        objective: Objective,
        prepare_model: Callable[[torch.nn.Module], None] | None = None,
    ) -> None:
        from megatron.core.distributed import (
            DistributedDataParallel,
            DistributedDataParallelConfig,
            finalize_model_grads,
        )
        from megatron.core.optimizer import OptimizerConfig as MegatronOptimizerConfig
        from megatron.core.optimizer import get_megatron_optimizer
        from megatron.core.transformer.module import Float16Module

        super().__init__(model_cfg, context, micro_batch_size, objective)
        model = build_model(model_cfg, parallel, self.device)
        if prepare_model is not None:
            prepare_model(model)  # before DDP, which buckets only the parameters that require grad
        config = model.config
        bf16 = resolved_precision(model_cfg, self.device) == "bf16"
        model.cuda(self.device)
        if bf16:
            model = Float16Module(config, model)
        ddp_config = DistributedDataParallelConfig(
            grad_reduce_in_fp32=True,
            overlap_grad_reduce=False,
            use_distributed_optimizer=True,
        )
        ddp = DistributedDataParallel(config, ddp_config, module=model)
        ddp.broadcast_params()  # every data-parallel replica starts from data-parallel rank 0's weights
        self.model_chunks = [ddp]
        self.optimizer = get_megatron_optimizer(
            MegatronOptimizerConfig(
                optimizer="adam",
                lr=optim.lr,
                weight_decay=optim.weight_decay,
                adam_beta1=optim.beta1,
                adam_beta2=optim.beta2,
                adam_eps=optim.eps,
                clip_grad=optim.clip_grad or 0.0,
                bf16=bf16,
                params_dtype=config.params_dtype,
                use_distributed_optimizer=True,
            ),
            self.model_chunks,
        )
        config.calculate_per_token_loss = True
        config.no_sync_func = ddp.no_sync
        config.finalize_model_grads_func = finalize_model_grads
        config.grad_scale_func = self.optimizer.scale_loss

    def train_step(self, batches: Iterator[Batch], num_microbatches: int) -> StepResult:
        for chunk in self.model_chunks:
            chunk.zero_grad_buffer()
        self.optimizer.zero_grad()
        reports = self._run_schedule(batches, num_microbatches, forward_only=False)
        applied, grad_norm, _ = self.optimizer.step()
        norm = float(grad_norm) if grad_norm is not None else float("nan")
        loss, tokens, extra = _reduce_reports(reports, self.device)
        return StepResult(loss=loss, tokens=tokens, grad_norm=norm, skipped=not applied, metrics=extra)

    def sharded_state_dict(self, is_loading: bool = False) -> dict[str, Any]:
        model_state = checkpoint_part(self.model_chunks[0].sharded_state_dict())
        # the canonical per-parameter layout: loadable with other tensor/pipeline/data-parallel sizes
        optimizer_state = self.optimizer.sharded_state_dict(
            model_state, is_loading=is_loading, metadata={"distrib_optim_sharding_type": "fully_reshardable"}
        )
        return {"model": model_state, "optimizer": optimizer_state}

    def load_sharded_state(self, loaded: dict[str, Any]) -> None:
        load_part(self.unwrapped_model(), loaded["model"])
        self.optimizer.load_state_dict(loaded["optimizer"])

    def weights_sharded_state_dict(self) -> dict[str, Any]:
        return base_part(self.model_chunks[0].sharded_state_dict())

    def load_model_weights(self, model_state: dict[str, Any]) -> None:
        """Weights only (a fine-tuning start); the optimizer's fp32 main weights are copied from them."""
        load_part(self.unwrapped_model(), model_state)
        self.optimizer.reload_model_params()

    def unwrapped_model(self) -> torch.nn.Module:
        module = self.model_chunks[0].module
        return getattr(module, "module", module)  # inside Float16Module


def build_engine(
    model_cfg: ModelConfig,
    parallel: ParallelConfig,
    optim: OptimizerConfig,
    context: DistributedContext,
    micro_batch_size: int,
    objective: Objective,
    prepare_model: Callable[[torch.nn.Module], None] | None = None,
) -> Engine:
    """The engine for this process's device, stepping `objective` (needs init_distributed first).

    `prepare_model` changes the built model before its optimizer is made (e.g. attaches LoRA adapters).
    """
    engine_type = GpuEngine if context.device.type == "cuda" else CpuEngine
    return engine_type(model_cfg, parallel, optim, context, micro_batch_size, objective, prepare_model)
