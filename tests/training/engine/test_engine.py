"""CpuEngine on a real megatron-core GPTModel: per-token loss, accumulation, clipping, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
from nemotron.training.engine.engines import EvalResult, build_engine
from nemotron.training.engine.objective import NextTokenObjective, masked_token_loss
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.optim.optimizer import OptimizerConfig

MODEL = ModelConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    vocab_size=512,
    seq_length=16,
    make_vocab_size_divisible_by=128,
)


def micro_batches(n: int, size: int, seed: int = 0, mask_tail: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(0, 500, (size, MODEL.seq_length + 1), generator=generator)
        mask = torch.ones(size, MODEL.seq_length)
        if mask_tail:
            mask[:, -mask_tail:] = 0
        batches.append(
            {
                "tokens": ids[:, :-1],
                "labels": ids[:, 1:],
                "loss_mask": mask,
                "position_ids": torch.arange(MODEL.seq_length).expand(size, -1),
            }
        )
    return batches


def split(batches: list[dict], size: int) -> list[dict]:
    """The same samples re-cut into micro-batches of `size`."""
    joined = {key: torch.cat([b[key] for b in batches]) for key in batches[0]}
    total = joined["tokens"].shape[0]
    return [{key: value[i : i + size] for key, value in joined.items()} for i in range(0, total, size)]


@pytest.fixture
def engine_factory():
    engines = []

    def make(micro_batch_size: int, clip: float | None = 1.0, lr: float = 1e-3):
        context = init_distributed(ParallelConfig(), seed=7)
        engines.append(context)
        return build_engine(
            MODEL,
            ParallelConfig(),
            OptimizerConfig(lr=lr, clip_grad=clip),
            context,
            micro_batch_size,
            NextTokenObjective(),
        )

    yield make
    destroy_distributed()


def test_masked_token_loss_counts_only_unmasked_tokens():
    losses = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    total, tokens, report = masked_token_loss(mask, losses)
    assert float(total) == 7.0 and int(tokens) == 3
    assert report["lm loss"].tolist() == [7.0, 3.0]


def test_accumulation_gives_the_same_loss_and_gradients_as_one_big_micro_batch(engine_factory):
    data = micro_batches(1, 8, mask_tail=3)
    whole = engine_factory(8, clip=None, lr=1e-30)
    result_whole = whole.train_step(iter(data), 1)
    grads_whole = [p.grad.clone() for p in whole.unwrapped_model().parameters()]
    weights = {k: v.clone() for k, v in whole.unwrapped_model().state_dict().items() if "extra_state" not in k}
    destroy_distributed()

    parts = engine_factory(2, clip=None, lr=1e-30)
    parts.unwrapped_model().load_state_dict(weights, strict=False)
    result_parts = parts.train_step(iter(split(data, 2)), 4)
    grads_parts = [p.grad for p in parts.unwrapped_model().parameters()]
    assert result_whole.tokens == result_parts.tokens == 8 * (MODEL.seq_length - 3)
    assert result_parts.loss == pytest.approx(result_whole.loss, rel=1e-5)
    for a, b in zip(grads_whole, grads_parts, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_repeated_steps_on_one_batch_lower_the_loss(engine_factory):
    engine = engine_factory(4, lr=3e-3)
    data = micro_batches(2, 4)
    losses = [engine.train_step(iter(data), 2).loss for _ in range(15)]
    assert losses[-1] < losses[0] - 1.0, losses
    assert math.isclose(losses[0], math.log(512), rel_tol=0.1)  # uniform start over the (padded) vocab


def test_non_finite_gradients_skip_the_update(engine_factory):
    engine = engine_factory(4)
    model = engine.unwrapped_model()
    before = {k: v.clone() for k, v in model.state_dict().items() if "extra_state" not in k}
    with torch.no_grad():
        model.decoder.final_layernorm.weight.fill_(float("nan"))
    result = engine.train_step(iter(micro_batches(1, 4)), 1)
    assert result.skipped and not math.isfinite(result.grad_norm)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "final_layernorm" not in k)


def test_eval_step_does_not_change_weights_and_reports_perplexity(engine_factory):
    engine = engine_factory(4)
    before = [p.clone() for p in engine.unwrapped_model().parameters()]
    result = engine.eval_step(iter(micro_batches(2, 4)), 2)
    assert isinstance(result, EvalResult) and result.tokens == 2 * 4 * MODEL.seq_length
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    assert all(torch.equal(a, b) for a, b in zip(before, engine.unwrapped_model().parameters(), strict=True))
    assert engine.unwrapped_model().training


class _ReportingObjective(NextTokenObjective):
    """The next-token loss, plus a report of its own: the fraction of label ids below 250 ([sum, count])."""

    def loss(self, batch, output):
        total, tokens, report = super().loss(batch, output)
        low = (batch["labels"] < 250).float()
        return total, tokens, {**report, "low label share": torch.stack([low.sum(), torch.tensor(low.numel())])}


def test_an_objectives_own_reports_are_averaged_over_the_step(engine_factory):
    engine = engine_factory(micro_batch_size=2)
    batches = micro_batches(3, 2, seed=4)
    assert engine.train_step(iter(batches), 3).metrics == {}
    engine.objective = _ReportingObjective()
    result = engine.train_step(iter(batches), 3)
    labels = torch.cat([b["labels"] for b in batches])
    assert result.metrics == {"low label share": pytest.approx(float((labels < 250).float().mean()))}
