"""Mixed bf16 on the CPU (model.precision=bf16): fp32 weights and optimizer, bf16 matrix products through
autocast in training, evaluation and generation; numerically close to fp32 on a real megatron-core model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
from nemotron.training.engine.engines import build_engine
from nemotron.training.engine.objective import NextTokenObjective
from nemotron.training.inference.backend import SamplingParams
from nemotron.training.inference.megatron_backend import generator_for
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.model.precision import cpu_mixed_bf16, describe_precision, weights_dtype
from nemotron.training.optim.optimizer import OptimizerConfig

FP32 = ModelConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    vocab_size=512,
    seq_length=16,
    make_vocab_size_divisible_by=128,
    precision="fp32",
)
BF16 = dataclasses.replace(FP32, precision="bf16")


def batches(n: int, size: int = 4) -> list[dict]:
    generator = torch.Generator().manual_seed(3)
    found = []
    for _ in range(n):
        ids = torch.randint(0, 500, (size, FP32.seq_length + 1), generator=generator)
        found.append(
            {
                "tokens": ids[:, :-1],
                "labels": ids[:, 1:],
                "loss_mask": torch.ones(size, FP32.seq_length),
                "position_ids": torch.arange(FP32.seq_length).expand(size, -1),
            }
        )
    return found


@pytest.fixture
def engines():
    """An fp32 and a mixed-bf16 CpuEngine with the same starting weights."""
    context = init_distributed(ParallelConfig(), seed=7)
    made = [
        build_engine(model, ParallelConfig(), OptimizerConfig(lr=1e-3), context, 4, NextTokenObjective())
        for model in (FP32, BF16)
    ]
    weights = {k: v for k, v in made[0].unwrapped_model().state_dict().items() if "extra_state" not in k}
    made[1].unwrapped_model().load_state_dict(weights, strict=False)
    yield made
    destroy_distributed()


def linear_output_dtypes(model: torch.nn.Module, run, layer: torch.nn.Module | None = None) -> set[torch.dtype]:
    """The dtypes a linear layer (default: the first MLP projection) produced while `run()` ran."""
    seen: set[torch.dtype] = set()
    layer = layer if layer is not None else model.decoder.layers[0].mlp.linear_fc1
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.add(out[0].dtype))
    try:
        run()
    finally:
        handle.remove()
    return seen


def test_the_precision_says_what_the_weights_are_and_how_they_compute():
    assert cpu_mixed_bf16(BF16, "cpu") and not cpu_mixed_bf16(FP32, "cpu")
    assert not cpu_mixed_bf16(dataclasses.replace(FP32, precision="auto"), "cpu")  # auto stays fp32 on the CPU
    assert not cpu_mixed_bf16(BF16, "cuda:0")  # a GPU builds bf16 weights instead
    assert weights_dtype(BF16, "cpu") == torch.float32 and weights_dtype(BF16, "cuda:0") == torch.bfloat16
    assert describe_precision(BF16, "cpu").startswith("bf16 mixed") and describe_precision(FP32, "cpu") == "fp32"


def test_a_mixed_bf16_train_step_keeps_fp32_weights_and_follows_fp32_closely(engines):
    fp32, bf16 = engines
    data = batches(4)
    dtypes = linear_output_dtypes(bf16.unwrapped_model(), lambda: bf16.train_step(iter(data[:2]), 2))
    assert dtypes == {torch.bfloat16}  # the matrix products ran in bf16, the backward pass with them
    assert linear_output_dtypes(fp32.unwrapped_model(), lambda: fp32.train_step(iter(data[:2]), 2)) == {torch.float32}
    model = bf16.unwrapped_model()  # the logits stay fp32: bf16 rounding of them slowed the tiny SFT's convergence
    assert linear_output_dtypes(model, lambda: bf16.eval_step(iter(data[:2]), 2), model.output_layer) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(
        state.dtype == torch.float32
        for per_param in bf16.optimizer.state.values()
        for state in per_param.values()
        if torch.is_tensor(state) and state.is_floating_point()
    )
    second_fp32 = fp32.train_step(iter(data[2:]), 2)
    second_bf16 = bf16.train_step(iter(data[2:]), 2)
    assert not second_bf16.skipped and abs(second_bf16.loss - second_fp32.loss) < 0.02 * second_fp32.loss
    evaluated = bf16.eval_step(iter(data[:2]), 2)
    assert abs(evaluated.loss - fp32.eval_step(iter(data[:2]), 2).loss) < 0.02 * evaluated.loss


def test_generation_from_a_mixed_bf16_model_computes_in_bf16(engines):
    _, bf16 = engines
    model = bf16.unwrapped_model()
    generator = generator_for(model, BF16, max_batch_size=4)
    params = SamplingParams(max_new_tokens=5, temperature=0.0, seed=1)
    completions: list = []
    dtypes = linear_output_dtypes(model, lambda: completions.extend(generator.generate([[1, 2, 3], [4, 5]], params)))
    assert dtypes == {torch.bfloat16}
    assert [len(c.token_ids) for c in completions] == [5, 5]
