"""MegatronGenerator under tensor parallelism: 2 gloo ranks (TP=2) sample the same tokens, and those of one rank.

The test runs this file under torchrun with 2 processes. Each builds its half of the model, saves
a checkpoint and generates (greedy and sampled) with the same request; each writes its completions.
The test process checks that the ranks agree, then loads the checkpoint into a TP=1 model
(megatron reshards it) and checks that it generates the same tokens with the same log-probabilities.

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
from nemotron.training.inference.backend import Completion, SamplingParams
from nemotron.training.inference.megatron_backend import MegatronGenerator
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, ParallelConfig

# vocab 250 pads to 256 at TP=1 and TP=2 (a multiple of 128 * 2); the generator samples below 250
MODEL = ModelConfig(
    num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=128,
    vocab_size=250, seq_length=48, make_vocab_size_divisible_by=128,
)  # fmt: skip
REQUESTS = {
    "greedy": SamplingParams(max_new_tokens=12, temperature=0),
    "sampled": SamplingParams(max_new_tokens=12, temperature=0.8, top_p=0.95, seed=7),
}


def _prompts() -> list[list[int]]:
    generator = torch.Generator().manual_seed(9)
    return [torch.randint(0, MODEL.vocab_size, (n,), generator=generator).tolist() for n in (4, 11, 7)]


def _generate(model: torch.nn.Module) -> dict[str, list[Completion]]:
    backend = MegatronGenerator(model, vocab_size=MODEL.vocab_size, max_length=MODEL.seq_length, device="cpu")
    return {name: backend.generate(_prompts(), params) for name, params in REQUESTS.items()}


def _as_lists(completions: dict[str, list[Completion]]) -> dict[str, list[tuple[list[int], list[float], bool]]]:
    return {name: [(c.token_ids, c.logprobs, c.stopped) for c in batch] for name, batch in completions.items()}


@pytest.mark.integration
def test_tensor_parallel_ranks_sample_the_same_tokens_as_one_rank(tmp_path, dist_group):
    from two_ranks import run_two_ranks  # tests/training (conftest): not on the workers' path

    run_two_ranks(__file__, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert ranks[0] == ranks[1]

    model = build_model(MODEL, ParallelConfig(), "cpu")
    model.load_state_dict(load_checkpoint(tmp_path / "model" / checkpoint_name(0), model.sharded_state_dict()))
    single = _as_lists(_generate(model))
    for name in REQUESTS:
        for (tokens, logprobs, stopped), (tp_tokens, tp_logprobs, tp_stopped) in zip(
            single[name], ranks[0][name], strict=True
        ):
            assert tokens == tp_tokens and stopped == tp_stopped, name
            torch.testing.assert_close(torch.tensor(logprobs), torch.tensor(tp_logprobs), rtol=0, atol=1e-4)


def _worker(out_dir: Path) -> None:
    """One of two TP ranks: build half the model, save it, generate, write this rank's completions."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    from nemotron.training.cpu_compat import enable_cpu_compat
    from nemotron.training.distributed.parallel import destroy_distributed, seed_rngs
    from nemotron.training.model.build import gpt_model, layer_spec, transformer_config

    enable_cpu_compat()
    dist.init_process_group("gloo", init_method="env://")
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=2)
    seed_rngs(11)
    model = gpt_model(
        MODEL,
        transformer_config(MODEL, ParallelConfig(tensor=2), "cpu"),
        layer_spec(MODEL, use_transformer_engine=False),
        tensor_parallel=2,
    )
    save_checkpoint(out_dir / "model", 0, model.sharded_state_dict(), {}, keep_last=None)
    torch.save(_as_lists(_generate(model)), out_dir / f"rank{dist.get_rank()}.pt")
    destroy_distributed()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
