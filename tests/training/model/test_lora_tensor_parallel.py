"""LoRA under tensor parallelism: 2 gloo ranks (TP=2) compute the same logits and the same update as one rank.

The test runs this file under torchrun with 2 processes, each holding half of every parallel linear
layer and its adapter slice. They save a checkpoint, take one SGD step on the adapters and save
again. The test process then builds the whole model (TP=1), loads each checkpoint (megatron
reshards it) and checks the logits before and after the step, and that its own SGD step from
the first checkpoint gives the same adapters as the TP=2 step.

The runtime refuses parallel.tensor > 1 on the CPU (it is a GPU layout), so the worker builds the
TP=2 groups itself; megatron-core's tensor-parallel layers and mappings themselves run on gloo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from nemotron.training.checkpoint.layout import checkpoint_name
from nemotron.training.checkpoint.store import load_checkpoint, save_checkpoint
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.model.lora import attach_lora
from nemotron.training.model.lora_settings import COLUMN_PARALLEL, LORA_TARGETS, LoraSettings, is_adapter_key

# vocab 256 is a multiple of 128 * 2: the same padded vocabulary at TP=1 and TP=2
MODEL = ModelConfig(
    num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=128,
    vocab_size=256, seq_length=16, make_vocab_size_divisible_by=128,
)  # fmt: skip
SETTINGS = LoraSettings(rank=4, alpha=8.0, dropout=0.0, target_modules=LORA_TARGETS)
LEARNING_RATE = 0.5


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, MODEL.vocab_size, (2, MODEL.seq_length + 1), generator=torch.Generator().manual_seed(5))
    positions = torch.arange(MODEL.seq_length)[None].expand(2, -1)
    return tokens[:, :-1].contiguous(), positions, tokens[:, 1:].contiguous()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    tokens, positions, _ = _batch()
    with torch.no_grad():
        return model(tokens, positions, None)


def _sgd_step(model: torch.nn.Module) -> None:
    tokens, positions, labels = _batch()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=LEARNING_RATE)
    model(tokens, positions, None, labels=labels).mean().backward()
    optimizer.step()
    optimizer.zero_grad()


def _adapters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if is_adapter_key(name)}


@pytest.mark.integration
def test_tensor_parallel_lora_matches_one_rank_and_reshards(tmp_path, dist_group):
    from two_ranks import run_two_ranks  # tests/training (conftest): not on the workers' path

    run_two_ranks(__file__, tmp_path)
    expected = torch.load(tmp_path / "logits.pt")

    model = build_model(MODEL, ParallelConfig(), "cpu")
    attach_lora(model, SETTINGS, seed=0)
    model.load_state_dict(load_checkpoint(tmp_path / "before" / checkpoint_name(0), model.sharded_state_dict()))
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("lora_b")), "B was loaded"
    torch.testing.assert_close(_logits(model), expected["before"], rtol=1e-5, atol=1e-5)

    _sgd_step(model)  # the same step as the two ranks took, on the whole model
    stepped = _adapters(model)
    torch.testing.assert_close(_logits(model), expected["after"], rtol=1e-4, atol=1e-4)

    model.load_state_dict(load_checkpoint(tmp_path / "after" / checkpoint_name(1), model.sharded_state_dict()))
    torch.testing.assert_close(_logits(model), expected["after"], rtol=1e-4, atol=1e-4)
    loaded = _adapters(model)
    assert loaded.keys() == stepped.keys() and len(loaded) == 2 * len(LORA_TARGETS) * MODEL.num_layers
    for name, value in stepped.items():
        torch.testing.assert_close(loaded[name], value, rtol=1e-4, atol=1e-5, msg=f"{name} after the TP=2 step")


def _worker(out_dir: Path) -> None:
    """One of two TP ranks: build half the model with adapters, save, step, save; rank 0 writes whole logits."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    from nemotron.training.cpu_compat import enable_cpu_compat
    from nemotron.training.distributed.parallel import destroy_distributed, seed_rngs
    from nemotron.training.model.build import gpt_model, layer_spec, transformer_config

    enable_cpu_compat()
    dist.init_process_group("gloo", init_method="env://")
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=2)
    seed_rngs(11)
    parallel = ParallelConfig(tensor=2)
    model = gpt_model(
        MODEL,
        transformer_config(MODEL, parallel, "cpu"),
        layer_spec(MODEL, use_transformer_engine=False),
        tensor_parallel=2,
    )
    attach_lora(model, SETTINGS, seed=0)
    rank = dist.get_rank()
    with torch.no_grad():  # B away from zero, so A's update and the delta matter: a slice per rank, or one whole B
        for name, parameter in model.named_parameters():
            if name.endswith("lora_b"):
                split = any(f".{layer}." in name for layer in COLUMN_PARALLEL)
                generator = torch.Generator().manual_seed(sum(name.encode()) + (1000 * rank if split else 0))
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)

    def whole_logits() -> torch.Tensor:
        part = _logits(model)
        parts = [torch.empty_like(part) for _ in range(2)]
        dist.all_gather(parts, part, group=parallel_state.get_tensor_model_parallel_group())
        return torch.cat(parts, dim=-1)

    save_checkpoint(out_dir / "before", 0, model.sharded_state_dict(), {}, keep_last=None)
    before = whole_logits()
    _sgd_step(model)
    after = whole_logits()
    save_checkpoint(out_dir / "after", 1, model.sharded_state_dict(), {}, keep_last=None)
    if rank == 0:
        torch.save({"before": before, "after": after}, out_dir / "logits.pt")
    destroy_distributed()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
