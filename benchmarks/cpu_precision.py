"""Measure mixed bf16 on the CPU (model.precision=bf16) against fp32: SFT training tokens/s and the losses.

Model: the tiny pretraining model of recipes/nano3/stage0_pretrain/config/tiny.yaml (4 layers, hidden 256,
vocabulary 8,192, seq 128) with the tiny SFT batch (global 16, micro 8), on packed rows of the tiny chat
corpus made by `nemotron nano3 data prep sft -c tiny` in a temporary NEMOTRON_HOME (or `--packed PATH`).
Two CpuEngines in one process, the second starting from the first one's weights: `precision=fp32` and
`precision=bf16` (fp32 weights, AdamW state and logits; the other matrix products in bf16 under autocast).
Their steps are timed interleaved in rounds (train_throughput.interleaved); the speed-up is bf16 tokens/s
over fp32 tokens/s (median over rounds, and median of the per-round ratios). Printed with it: both loss
curves' first and last values and the largest loss difference over the steps, and whether the CPU has
native bf16 matrix units (AMX or AVX512-BF16: without them bf16 is emulated and slower than fp32).

    python benchmarks/cpu_precision.py
    python benchmarks/cpu_precision.py --steps 40 --rounds 4 --json benchmarks/results/cpu_precision.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import warnings
from pathlib import Path

from bench_common import CommandFailed, write_json
from sft_throughput import TINY_TOKENIZER, EngineTrainer, packed_batches
from train_throughput import interleaved, load_average, tiny_model_config, tiny_recipe, usable_cores

GOAL_SPEEDUP = 1.3  # bf16 tokens/s over fp32 tokens/s, at least, on a CPU with native bf16


def native_bf16() -> str | None:
    """The CPU flag that gives fast bf16 matrix products (amx_bf16 or avx512_bf16); None when neither."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return next((flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per engine first (default: 3)")
    parser.add_argument("--steps", type=int, default=24, help="timed steps per engine (default: 24)")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds, alternating the order (default: 6)")
    parser.add_argument("--threads", type=int, default=usable_cores(), help="torch threads (default: all cores)")
    parser.add_argument("--packed", type=Path, help="a packed train.parquet from `data prep sft` (default: make one)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before data prep counts as failed")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).*not installed")
    import torch
    from transformers import AutoTokenizer

    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.engine.engines import build_engine
    from nemotron.training.engine.packed_objective import PackedSequenceObjective
    from nemotron.training.model.config import ParallelConfig
    from nemotron.training.optim.optimizer import OptimizerConfig

    torch.set_num_threads(args.threads)
    flag = native_bf16()
    print(f"python:   {sys.executable}, {os.cpu_count()} CPUs, {args.threads} threads, torch {torch.__version__}")
    print(f"cpu:      native bf16 matrix units: {flag or 'none (bf16 is emulated: expect it slower than fp32)'}")
    load_before = load_average()

    model_section, train_section, lr_section, optim_section = tiny_recipe()
    seq = int(model_section["seq_length"])
    global_batch, micro_batch = int(train_section["global_batch_size"]), int(train_section["micro_batch_size"])
    vocab = len(AutoTokenizer.from_pretrained(str(TINY_TOKENIZER)))
    fp32_cfg = dataclasses.replace(tiny_model_config(model_section, vocab), precision="fp32")
    bf16_cfg = dataclasses.replace(fp32_cfg, precision="bf16")
    optim_cfg = OptimizerConfig(lr=float(lr_section["lr"]), **optim_section)

    steps = args.warmup + args.steps
    try:
        batches, _, _ = packed_batches(args.packed, seq, global_batch, micro_batch, steps, args.timeout)
    except CommandFailed as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    tokens_per_step = global_batch * seq
    print(
        f"batch:    global {global_batch} x {seq} = {tokens_per_step:,} positions per step, micro-batches of "
        f"{micro_batch}; {args.warmup} warm-up + {args.steps} timed steps per engine in {args.rounds} rounds",
        flush=True,
    )

    context = init_distributed(ParallelConfig(), seed=1234)
    try:
        objective = PackedSequenceObjective(thd=False)
        fp32 = build_engine(fp32_cfg, ParallelConfig(), optim_cfg, context, micro_batch, objective)
        bf16 = build_engine(bf16_cfg, ParallelConfig(), optim_cfg, context, micro_batch, objective)
        weights = {k: v for k, v in fp32.unwrapped_model().state_dict().items() if "extra_state" not in k}
        bf16.unwrapped_model().load_state_dict(weights, strict=False)
        trainers = [EngineTrainer("fp32", fp32, batches), EngineTrainer("bf16 (mixed)", bf16, batches)]
        trainers[1].precision = "bf16"
        results = interleaved(
            trainers, list(range(steps)), args.warmup, args.rounds, context.device, tokens_per_step, print
        )
    finally:
        destroy_distributed()

    base, mixed = results
    speedup = mixed["tokens_per_s"] / base["tokens_per_s"]
    paired = statistics.median(
        m / b for m, b in zip(mixed["round_tokens_per_s"], base["round_tokens_per_s"], strict=True)
    )
    drift = max(abs(m - b) for m, b in zip(mixed["losses"], base["losses"], strict=True))
    print(f"\n  {'':16}{'tokens/s (median)':>18}{'min':>10}{'max':>10}{'loss first':>12}{'loss last':>11}")
    for res in results:
        print(
            f"  {res['name']:<16}{res['tokens_per_s']:18,.0f}{min(res['round_tokens_per_s']):10,.0f}"
            f"{max(res['round_tokens_per_s']):10,.0f}{res['first_loss']:12.4f}{res['last_loss']:11.4f}"
        )
    print(f"  speed-up bf16 / fp32: {speedup:.2f}x of the medians ({paired:.2f}x median of the per-round ratios)")
    print(f"  largest loss difference over the {steps} steps: {drift:.4f}")
    if flag:
        verdict = "PASS" if speedup >= GOAL_SPEEDUP else "MISS"
        print(f"goal: mixed bf16 at least {GOAL_SPEEDUP}x fp32 on a CPU with {flag}: {verdict}")
    else:
        print("goal: not applicable (no native bf16 on this CPU; keep model.precision fp32 here)")
    load_after = load_average()
    if load_before is not None and load_after is not None:
        print(f"\nload average (1 min): {load_before:.1f} before, {load_after:.1f} after, on {usable_cores()} cores")

    if args.json:
        write_json(
            args.json,
            {
                "threads": args.threads,
                "native_bf16": flag,
                "steps": args.steps,
                "rounds": args.rounds,
                "results": results,
                "speedup": speedup,
                "speedup_paired": paired,
                "max_loss_difference": drift,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
