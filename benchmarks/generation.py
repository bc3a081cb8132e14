"""Measure generation throughput: nemotron's MegatronGenerator (megatron KV cache) vs transformers' `generate`.

Model: the tiny pretraining model of recipes/nano3/stage0_pretrain/config/tiny.yaml (4 layers, hidden
256, 4 heads, 2 query groups, ffn 704, seq 128, tied embeddings; vocabulary the tiny tokenizer's
size, 8,192) with random weights (seed 1234), fp32 on the CPU. The same weights go into a
`LlamaForCausalLM` through the exporter's mapping (`export.hf.hf_config` / `hf_state_dict`).

Request: `--prompts` random prompts (default 32) of `--prompt-length` +- `--length-spread` tokens
(default 40 +- 4), each extended by exactly `--new-tokens` tokens (default 64; no stop id), in
batches of each `--batch-sizes` (default 1 and 16), greedy and sampled (temperature 1, top-p 0.9):

- nemotron: `MegatronGenerator(model, max_batch_size=B, kv_cache=K).generate(prompts, SamplingParams(...))`
  (K from `--kv-cache`: `rotated`, the default, nemotron's cache of rotated keys attended with torch's SDPA,
  or `megatron`, megatron-core's StaticInferenceContext; prompts sorted by length and batched);
- transformers: `model.generate(use_cache=True, ...)` per batch of B prompts in the same order,
  left-padded with an attention mask, `do_sample` with the same temperature / top-p and top_k=0,
  `min_new_tokens` = `max_new_tokens` (no early end);
- reference: the no-cache `model.generate.greedy_tokens` (one prompt at a time, the whole sequence
  recomputed every step) on the first `--no-cache-prompts` prompts.

Also timed, to show where the time goes: one decode step of each model alone (its forward pass with
its own KV cache, batch B, after a prefill of --prompt-length tokens): megatron's GPTModel with a
StaticInferenceContext and with the rotated cache, and LlamaForCausalLM with a DynamicCache.

tokens/s is new tokens over wall time. Each case runs `--rounds` times (default 3) after a
warm-up, alternating which of the two goes first; the median over rounds is shown, with the
median of the per-round ratios (load from other processes falls on both). Also shown: how many
greedy completions are the same token for token in both (same weights, so all of them unless a
near-tie flips in the last bits). The goal: the megatron KV cache generates at least as many
tokens/s as transformers' `generate`.

    python benchmarks/generation.py
    python benchmarks/generation.py --threads 1 --rounds 5 --json benchmarks/results/generation.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from bench_common import write_json
from train_throughput import load_average, tiny_model_config, tiny_recipe, usable_cores, versions

REPO = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny/tokenizer.json"
TOP_P = 0.9
GOAL = 1.0  # megatron KV cache tokens/s over transformers generate tokens/s, at least


def tokenizer_vocab_size() -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TINY_TOKENIZER)).get_vocab_size()


def make_prompts(count: int, length: int, spread: int, vocab: int, seed: int) -> list[list[int]]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(length - spread, length + spread + 1, (count,), generator=generator)
    return [torch.randint(0, vocab, (int(n),), generator=generator).tolist() for n in lengths]


def hf_model(model_cfg, megatron_weights: dict):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from nemotron.training.export.hf import hf_config, hf_state_dict

    model = LlamaForCausalLM(LlamaConfig(**hf_config(model_cfg, dtype="float32")))
    loaded = model.load_state_dict(hf_state_dict(megatron_weights, model_cfg, dtype=torch.float32), strict=False)
    tied = {"lm_head.weight"} if model_cfg.tie_embeddings else set()
    if set(loaded.missing_keys) - tied or loaded.unexpected_keys:
        raise RuntimeError(f"HF weights: missing {loaded.missing_keys}, unexpected {loaded.unexpected_keys}")
    if model_cfg.tie_embeddings:
        model.tie_weights()
    return model.eval()


def hf_generate(model, prompts: list[list[int]], batch_size: int, new_tokens: int, sample: bool, seed: int):
    """transformers' generate over batches of `batch_size` left-padded prompts; the new tokens of each prompt."""
    import torch

    torch.manual_seed(seed)
    out = []
    settings = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        use_cache=True,
        pad_token_id=0,
        eos_token_id=None,
        do_sample=sample,
        top_k=0 if sample else None,
        top_p=TOP_P if sample else None,
        temperature=1.0 if sample else None,
    )
    for first in range(0, len(prompts), batch_size):
        batch = prompts[first : first + batch_size]
        width = max(len(p) for p in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        with torch.no_grad():
            generated = model.generate(input_ids=ids, attention_mask=mask, **settings)
        out.extend(generated[:, width:].tolist())
    return out


def decode_step_seconds(model, hf, batch_size: int, prompt_length: int, steps: int, vocab: int) -> dict[str, float]:
    """Seconds per one-token step of each model alone (after a prefill of `prompt_length`), its own KV cache:
    megatron's GPTModel with megatron's StaticInferenceContext and with nemotron's rotated-key cache, and the Llama."""
    import torch
    from megatron.core.inference.contexts import StaticInferenceContext
    from transformers import DynamicCache

    from nemotron.training.inference.cached_attention import CachedAttention

    ids = torch.randint(0, vocab, (batch_size, prompt_length + steps), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(prompt_length + steps).unsqueeze(0).expand(batch_size, -1)
    out = {}
    with torch.no_grad():
        context = StaticInferenceContext(batch_size, prompt_length + steps)
        kwargs = dict(inference_context=context, runtime_gather_output=True)
        model(ids[:, :prompt_length], positions[:, :prompt_length], None, **kwargs)
        context.increment_sequence_len_offset(prompt_length)
        started = time.perf_counter()
        for p in range(prompt_length, prompt_length + steps):
            model(ids[:, p : p + 1], positions[:, p : p + 1], None, **kwargs)
            context.increment_sequence_len_offset(1)
        out["megatron static"] = (time.perf_counter() - started) / steps
        cache = CachedAttention(model, prompt_length + steps)
        with cache.active():
            model(ids[:, :prompt_length], positions[:, :prompt_length], None)
            cache.advance(prompt_length)
            started = time.perf_counter()
            for p in range(prompt_length, prompt_length + steps):
                model(ids[:, p : p + 1], positions[:, p : p + 1], None)
                cache.advance(1)
        out["megatron rotated"] = (time.perf_counter() - started) / steps
        hf_cache = DynamicCache(config=hf.config)
        hf(input_ids=ids[:, :prompt_length], cache=hf_cache, use_cache=True)
        started = time.perf_counter()
        for p in range(prompt_length, prompt_length + steps):
            hf(input_ids=ids[:, p : p + 1], position_ids=positions[:, p : p + 1], cache=hf_cache, use_cache=True)
        out["transformers"] = (time.perf_counter() - started) / steps
    return out


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def compare_case(
    label: str,
    runners: dict[str, Callable[[], list[list[int]]]],
    new_tokens_total: int,
    rounds: int,
) -> dict:
    """Warm each runner up, then time `rounds` rounds in alternating order; tokens/s per runner and the ratio."""
    names = list(runners)
    outputs = {name: runners[name]() for name in names}  # warm-up (and the tokens for the agreement check)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            elapsed, _ = timed(runners[name])
            seconds[name].append(elapsed)
    rates = {name: new_tokens_total / statistics.median(seconds[name]) for name in names}
    ours, theirs = names
    round_ratios = [b / a for a, b in zip(seconds[ours], seconds[theirs], strict=True)]
    result = {
        "label": label,
        "tokens_per_s": rates,
        "round_seconds": seconds,
        "ratio": rates[ours] / rates[theirs],
        "median_round_ratio": statistics.median(round_ratios),
        "same_completions": sum(a == b for a, b in zip(outputs[ours], outputs[theirs], strict=True)),
        "completions": len(outputs[ours]),
    }
    print(
        f"  {label:<28} megatron {rates[ours]:8,.0f} tok/s   transformers {rates[theirs]:8,.0f} tok/s   "
        f"ratio {result['ratio']:.2f}x (per-round median {result['median_round_ratio']:.2f}x)",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    from nemotron.training.inference.megatron_backend import KV_CACHES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32, help="prompts per request (default: 32)")
    parser.add_argument("--prompt-length", type=int, default=40, help="mean prompt length (default: 40)")
    parser.add_argument("--length-spread", type=int, default=4, help="prompt lengths vary by +- this (default: 4)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per prompt (default: 64)")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1, 16], help="batch sizes to compare (default: 1 16)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case (default: 3)")
    parser.add_argument(
        "--kv-cache",
        choices=KV_CACHES,
        default="rotated",
        help="MegatronGenerator's KV cache: nemotron's rotated-key cache or megatron's StaticInferenceContext",
    )
    parser.add_argument(
        "--no-cache-prompts", type=int, default=4, help="prompts for the no-cache greedy_tokens rate (default: 4)"
    )
    parser.add_argument(
        "--threads", type=int, default=usable_cores(), help="torch threads (default: all cores, %(default)s here)"
    )
    parser.add_argument("--seed", type=int, default=1234, help="weights, prompts and sampling seed (default: 1234)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if (
        args.prompts < 1
        or args.new_tokens < 1
        or args.rounds < 1
        or args.threads < 1
        or args.no_cache_prompts < 0
        or not 0 <= args.length_spread < args.prompt_length
        or any(b < 1 for b in args.batch_sizes)
    ):
        parser.error("need positive --prompts/--new-tokens/--rounds/--threads/--batch-sizes, 0 <= spread < length")

    warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).*not installed")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import torch

    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.inference.backend import SamplingParams
    from nemotron.training.inference.megatron_backend import MegatronGenerator
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig
    from nemotron.training.model.generate import greedy_tokens

    torch.set_num_threads(args.threads)
    print(
        f"python:   {sys.executable} ({platform.python_version()}), {os.cpu_count()} CPUs, {args.threads} torch threads"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()), flush=True)
    load_before = load_average()

    model_cfg = tiny_model_config(tiny_recipe()[0], tokenizer_vocab_size())
    if args.prompt_length + args.length_spread + args.new_tokens > model_cfg.seq_length:
        parser.error(f"prompt + new tokens must fit the model's sequence length {model_cfg.seq_length}")
    device = torch.device("cpu")
    context = init_distributed(ParallelConfig(), seed=args.seed)
    cases = []
    step_seconds: dict[int, dict[str, float]] = {}
    try:
        model = build_model(model_cfg, ParallelConfig(), device).eval()
        hf = hf_model(model_cfg, model.state_dict())
        prompts = make_prompts(args.prompts, args.prompt_length, args.length_spread, model_cfg.vocab_size, args.seed)
        total = args.prompts * args.new_tokens
        print(
            f"model:    tiny.yaml ({model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}, vocab "
            f"{model_cfg.vocab_size}), random weights, fp32, {context.device}; HF attention "
            f"{getattr(hf.config, '_attn_implementation', None)}"
        )
        print(
            f"request:  {args.prompts} prompts of {args.prompt_length}+-{args.length_spread} tokens, "
            f"{args.new_tokens} new tokens each, {args.rounds} timed rounds per case\n"
        )
        for batch_size in args.batch_sizes:
            generator = MegatronGenerator(
                model,
                vocab_size=model_cfg.vocab_size,
                max_length=model_cfg.seq_length,
                device=device,
                max_batch_size=batch_size,
                kv_cache=args.kv_cache,
            )
            for mode, sample in (("greedy", False), ("sampled", True)):
                params = SamplingParams(
                    max_new_tokens=args.new_tokens,
                    temperature=1.0 if sample else 0.0,
                    top_p=TOP_P if sample else 1.0,
                    seed=args.seed,
                )

                def ours(params: SamplingParams = params, generator: MegatronGenerator = generator) -> list[list[int]]:
                    return [c.token_ids for c in generator.generate(prompts, params)]

                def theirs(batch_size: int = batch_size, sample: bool = sample) -> list[list[int]]:
                    return hf_generate(hf, prompts, batch_size, args.new_tokens, sample, args.seed)

                case = compare_case(
                    f"batch {batch_size:>3}, {mode}", {"megatron": ours, "transformers": theirs}, total, args.rounds
                )
                case.update(batch_size=batch_size, mode=mode)
                cases.append(case)
            decode_step_seconds(model, hf, batch_size, args.prompt_length, 4, model_cfg.vocab_size)  # warm-up
            steps = [
                decode_step_seconds(model, hf, batch_size, args.prompt_length, args.new_tokens, model_cfg.vocab_size)
                for _ in range(args.rounds)
            ]
            step_ms = {name: 1e3 * statistics.median(s[name] for s in steps) for name in steps[0]}
            step_seconds[batch_size] = step_ms
            print(
                f"  batch {batch_size:>3}, one decode step of the model alone: megatron with its static cache "
                f"{step_ms['megatron static']:.2f} ms, with the rotated cache {step_ms['megatron rotated']:.2f} ms, "
                f"transformers {step_ms['transformers']:.2f} ms",
                flush=True,
            )

        no_cache = None
        if args.no_cache_prompts:
            subset = prompts[: args.no_cache_prompts]

            def recompute() -> None:
                for prompt in subset:
                    greedy_tokens(
                        model,
                        prompt,
                        args.new_tokens,
                        vocab_size=model_cfg.vocab_size,
                        max_length=model_cfg.seq_length,
                        device=device,
                    )

            recompute()
            elapsed, _ = timed(recompute)
            no_cache = len(subset) * args.new_tokens / elapsed
            print(f"\n  no-cache greedy_tokens (1 prompt at a time, {len(subset)} prompts): {no_cache:,.0f} tok/s")
    finally:
        destroy_distributed()

    load_after = load_average()
    if load_before is not None and load_after is not None:
        print(f"\nload average (1 min): {load_before:.1f} before, {load_after:.1f} after, on {usable_cores()} cores")
    print("\nSummary (new tokens/s, median over rounds)")
    for case in cases:
        print(
            f"  batch {case['batch_size']:>3}, {case['mode']:<7}: megatron KV cache / transformers generate: "
            f"{case['ratio']:.2f}x (per-round median {case['median_round_ratio']:.2f}x)"
            + (
                f"; identical greedy completions {case['same_completions']}/{case['completions']}"
                if case["mode"] == "greedy"
                else ""
            )
        )
    for batch_size, step_ms in step_seconds.items():
        print(
            f"  batch {batch_size:>3}, model forward per decode step / transformers': megatron static cache "
            f"{step_ms['megatron static'] / step_ms['transformers']:.2f}x the time, rotated cache "
            f"{step_ms['megatron rotated'] / step_ms['transformers']:.2f}x"
        )
    greedy_1 = next((c for c in cases if c["mode"] == "greedy" and c["batch_size"] == 1), None)
    if no_cache is not None and greedy_1 is not None:
        cached = greedy_1["tokens_per_s"]["megatron"]
        print(f"  megatron KV cache (batch 1, greedy) / no-cache greedy_tokens: {cached / no_cache:.2f}x")
    worst = min(c["ratio"] for c in cases)
    verdict = "MET" if worst >= GOAL else "MISSED"
    print(f"  goal: megatron KV cache at least equal to transformers generate (>= {GOAL:.2f}x): {verdict}")

    if args.json:
        payload = {
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "versions": versions(),
            "load_average_1min": {"before": load_before, "after": load_after},
            "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "cases": cases,
            "no_cache_greedy_tokens_per_s": no_cache,
            "decode_step_ms": step_seconds,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
