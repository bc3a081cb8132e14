"""Measure SFT training throughput on the CPU: the packed-mask path next to the pretraining path, same model and ids.

Data: packed rows of the tiny chat corpus, made by `nemotron nano3 data prep sft -c tiny
pack_size=<seq>` in a temporary NEMOTRON_HOME (or read from `--packed PATH`, a train.parquet written
by that stage). They are read the way SFT training reads them: `PackedSftDataset` (rows of
`read_packed_parquet`, a seeded order, each laid out by `layout_row`: labels shifted per document,
loss mask on assistant targets, position ids restarting per document, document ids with -1 for
padding) and stacked into micro-batches with the SFT keys (`collate_samples(..., PACKED_BATCH_KEYS)`).
All micro-batches are built before timing.

Model: the tiny pretraining model of recipes/nano3/stage0_pretrain/config/tiny.yaml (4 layers, hidden
256, 4 heads, 2 query groups, ffn 704, seq 128, tied embeddings; vocabulary the tokenizer's size,
8,192) with its global batch 16 and micro batch 8 (2 micro-batches per step), its learning rate and
optimizer settings, fp32 on the CPU. Two engines, both `build_engine(...)` (CpuEngine: megatron-core
GPTModel, megatron's forward-backward schedule, per-token loss, clipping, torch AdamW) in one
process, the second starting from the first one's weights:

- **SFT (packed mask)**: `PackedSequenceObjective(thd=False)`: per micro-batch a block-diagonal
  causal mask [b, 1, s, s] from the document ids, the per-document position ids, and the loss over
  the assistant targets only;
- **pretraining**: `NextTokenObjective()` on the same token ids: plain causal attention (no mask
  passed), position ids 0..s-1, labels the next id in the row (the last position predicts the row's
  first id), every position counted (the cost of the loss does not depend on how many are counted).

After `--warmup` untimed steps each, the `--steps` timed steps are split into `--rounds` rounds
(default one step each); each round times both engines on the same step's data, in alternating
order (A B, B A, ...). tokens/s counts every position, global batch x sequence length per step,
over wall time, the median over rounds; the cost ratio is pretraining tokens/s over SFT tokens/s
(1.10 = the packed path takes 10% longer per step), also as the median of the per-round ratios and
from the best rounds. The goal: "the packed-mask path costs at most 15% more". Printed with it: the
share of positions that are real tokens (not padding) and that count in the loss in the SFT batches,
the losses of the first and last step of each, and the time of `block_causal_mask` alone for one
micro-batch (a part of the packed path's extra work). A check shows that the mask is used: the largest
change of a per-token loss (one forward pass) when each row's documents are merged into one document.

    python benchmarks/sft_throughput.py
    python benchmarks/sft_throughput.py --threads 1 --steps 40 --json benchmarks/results/sft_throughput.json
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_common import CommandFailed, nemotron_command, write_json
from train_throughput import interleaved, load_average, tiny_model_config, tiny_recipe, usable_cores

REPO = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
ARTIFACT = "bench-sft-data"
GOAL_COST_RATIO = 1.15  # SFT seconds per step / pretraining seconds per step, at most


def prepare_packed(tmp: Path, pack_size: int, timeout: float) -> Path:
    """`nemotron nano3 data prep sft -c tiny pack_size=N` with NEMOTRON_HOME in `tmp`; its train.parquet."""
    home, workdir, env_file = tmp / "home", tmp / "cwd", tmp / "env.toml"
    workdir.mkdir()
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "NEMOTRON_ARTIFACTS_ROOT"}
    env.update(NEMOTRON_HOME=str(home), NEMOTRON_ENV_FILE=str(env_file))
    cmd = nemotron_command() + [
        "nano3",
        "data",
        "prep",
        "sft",
        "-c",
        "tiny",
        f"pack_size={pack_size}",
        f"artifact_name={ARTIFACT}",
    ]
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from exc
    if proc.returncode != 0:
        raise CommandFailed(
            f"exit status {proc.returncode}: {shlex.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout.rstrip()}\n--- stderr ---\n{proc.stderr.rstrip()}"
        )
    return home / "artifacts" / ARTIFACT / "v1" / "train.parquet"


def build_batches(
    packed: Path, seq_length: int, global_batch: int, micro_batch: int, steps: int
) -> tuple[list[list[dict]], list[list[dict]], int]:
    """Per step, the SFT micro-batches and the pretraining micro-batches of the same ids; the file's row count."""
    import torch

    from nemotron.training.datasets.packed_sft import PACKED_BATCH_KEYS, PackedSftDataset
    from nemotron.training.datasets.position import collate_samples

    dataset = PackedSftDataset(packed, seq_length, steps * global_batch, seed=1234)
    positions = torch.arange(seq_length).unsqueeze(0).expand(micro_batch, -1).contiguous()
    sft, pretrain = [], []
    sample = 0
    for _ in range(steps):
        sft_step, pretrain_step = [], []
        for _ in range(global_batch // micro_batch):
            batch = collate_samples([dataset[sample + i] for i in range(micro_batch)], PACKED_BATCH_KEYS)
            sample += micro_batch
            tokens = batch["tokens"]
            sft_step.append(batch)
            pretrain_step.append(
                {
                    "tokens": tokens,
                    "labels": torch.roll(tokens, -1, dims=1).contiguous(),
                    "loss_mask": torch.ones(tokens.shape, dtype=torch.float32),
                    "position_ids": positions,
                    "attention_mask": None,
                }
            )
        sft.append(sft_step)
        pretrain.append(pretrain_step)
    return sft, pretrain, len(dataset.rows)


def packed_batches(
    packed: Path | None, seq: int, global_batch: int, micro_batch: int, steps: int, timeout: float
) -> tuple[list[list[dict]], list[list[dict]], int]:
    """build_batches over `packed` (a train.parquet), or over rows `nemotron nano3 data prep sft -c tiny` makes in
    a temporary NEMOTRON_HOME (removed afterwards); CommandFailed when that data prep fails."""
    tmp = Path(tempfile.mkdtemp(prefix="nemotron-bench-sft-"))
    try:
        if packed is None:
            started = time.perf_counter()
            packed = prepare_packed(tmp, seq, timeout)
            print(
                f"data:     `nemotron nano3 data prep sft -c tiny pack_size={seq}` in {tmp / 'home'} "
                f"({time.perf_counter() - started:.1f} s)"
            )
        return build_batches(packed.expanduser().resolve(), seq, global_batch, micro_batch, steps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class EngineTrainer:
    """One engine stepping its own list of per-step micro-batches (the step's index is what `interleaved` passes)."""

    def __init__(self, name: str, engine, batches: list[list[dict]]) -> None:
        self.name, self.engine, self.batches = name, engine, batches
        self.precision = "fp32"

    def step(self, index: int) -> float:
        micro_batches = self.batches[index]
        return self.engine.train_step(iter(micro_batches), len(micro_batches)).loss


def mask_seconds(batch: dict, repeats: int = 50) -> float:
    """Median seconds of `block_causal_mask` for one micro-batch's document ids."""
    from nemotron.training.engine.packed_objective import block_causal_mask

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        block_causal_mask(batch["document_ids"])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mask_effect(model, batch: dict) -> float:
    """Largest change of a per-token loss (forward only) when the row's documents are merged into one: > 0
    shows that the block-diagonal mask reaches megatron's attention (the first document of a row is unchanged)."""
    import torch

    from nemotron.training.engine.packed_objective import PackedSequenceObjective

    objective = PackedSequenceObjective(thd=False)
    merged = dict(batch, document_ids=torch.zeros_like(batch["document_ids"]))
    model.eval()
    with torch.no_grad():
        separate, together = objective.forward(model, batch), objective.forward(model, merged)
    model.train()
    return float((separate - together).abs().max())


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "megatron-core", "nemotron"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per engine first (default: 3)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per engine (default: 30)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds the timed steps are split into, alternating the order of the engines (default: --steps)",
    )
    parser.add_argument(
        "--threads", type=int, default=usable_cores(), help="torch threads (default: all cores, %(default)s here)"
    )
    parser.add_argument("--packed", type=Path, help="a packed train.parquet from `data prep sft` (default: make one)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before data prep counts as failed")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    args.rounds = args.steps if args.rounds is None else args.rounds
    if args.warmup < 0 or args.steps < 1 or args.threads < 1 or not 1 <= args.rounds <= args.steps:
        parser.error("need --warmup >= 0, --steps >= 1, --threads >= 1 and 1 <= --rounds <= --steps")

    warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).*not installed")
    import torch
    from transformers import AutoTokenizer

    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.engine.engines import build_engine
    from nemotron.training.engine.objective import NextTokenObjective
    from nemotron.training.engine.packed_objective import PackedSequenceObjective
    from nemotron.training.model.config import ParallelConfig, parameter_count
    from nemotron.training.optim.optimizer import OptimizerConfig

    torch.set_num_threads(args.threads)
    print(f"python:   {sys.executable} ({platform.python_version()}), {os.cpu_count()} CPUs, {args.threads} threads")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()), flush=True)
    load_before = load_average()

    model_section, train_section, lr_section, optim_section = tiny_recipe()
    seq = int(model_section["seq_length"])
    global_batch, micro_batch = int(train_section["global_batch_size"]), int(train_section["micro_batch_size"])
    vocab = len(AutoTokenizer.from_pretrained(str(TINY_TOKENIZER)))
    model_cfg = tiny_model_config(model_section, vocab)
    optim_cfg = OptimizerConfig(lr=float(lr_section["lr"]), **optim_section)

    steps = args.warmup + args.steps
    try:
        sft_batches, pretrain_batches, rows = packed_batches(
            args.packed, seq, global_batch, micro_batch, steps, args.timeout
        )
    except CommandFailed as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1

    timed = [mb for step in sft_batches[args.warmup :] for mb in step]
    positions = sum(mb["tokens"].numel() for mb in timed)
    real_share = sum(int((mb["document_ids"] >= 0).sum()) for mb in timed) / positions
    loss_share = sum(float(mb["loss_mask"].sum()) for mb in timed) / positions
    documents = statistics.mean(
        int(mb["document_ids"][r].max()) + 1 for mb in timed for r in range(mb["document_ids"].shape[0])
    )
    tokens_per_step = global_batch * seq
    print(
        f"model:    {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}, "
        f"{model_cfg.num_attention_heads} heads ({model_cfg.query_groups} KV groups), ffn {model_cfg.ffn_size}, "
        f"vocab {model_cfg.vocab_size}, seq {seq}, "
        f"tied embeddings {model_cfg.tie_embeddings}: {parameter_count(model_cfg):,} parameters"
    )
    print(
        f"batch:    global {global_batch} x {seq} = {tokens_per_step:,} positions per step, "
        f"{global_batch // micro_batch} micro-batches of {micro_batch}; {args.warmup} warm-up + {args.steps} timed "
        f"steps per engine in {args.rounds} rounds"
    )
    print(
        f"SFT rows: {rows:,} packed rows of <= {seq} tokens; timed batches: {real_share:.1%} of positions real tokens, "
        f"{loss_share:.1%} loss tokens (assistant targets), {documents:.1f} conversations per row",
        flush=True,
    )

    context = init_distributed(ParallelConfig(), seed=1234)
    try:
        sft_engine = build_engine(
            model_cfg, ParallelConfig(), optim_cfg, context, micro_batch, PackedSequenceObjective(thd=False)
        )
        pretrain_engine = build_engine(
            model_cfg, ParallelConfig(), optim_cfg, context, micro_batch, NextTokenObjective()
        )
        weights = {k: v for k, v in sft_engine.unwrapped_model().state_dict().items() if "extra_state" not in k}
        pretrain_engine.unwrapped_model().load_state_dict(weights, strict=False)
        trainers = [
            EngineTrainer("SFT (packed mask)", sft_engine, sft_batches),
            EngineTrainer("pretraining (causal)", pretrain_engine, pretrain_batches),
        ]
        results = interleaved(
            trainers, list(range(steps)), args.warmup, args.rounds, context.device, tokens_per_step, print
        )
        mask_s = mask_seconds(sft_batches[0][0])
        effect = mask_effect(sft_engine.unwrapped_model(), sft_batches[0][0])
    finally:
        destroy_distributed()

    sft, pretrain = results
    cost = pretrain["tokens_per_s"] / sft["tokens_per_s"]
    paired = statistics.median(
        p / s for p, s in zip(pretrain["round_tokens_per_s"], sft["round_tokens_per_s"], strict=True)
    )
    best = max(pretrain["round_tokens_per_s"]) / max(sft["round_tokens_per_s"])
    step_s = tokens_per_step / sft["tokens_per_s"]
    micro_batches = global_batch // micro_batch
    print(f"\n  {'':26}{'tokens/s (median)':>18}{'min':>10}{'max':>10}{'loss first':>12}{'loss last':>11}")
    for res in results:
        print(
            f"  {res['name']:<26}{res['tokens_per_s']:18,.0f}{min(res['round_tokens_per_s']):10,.0f}"
            f"{max(res['round_tokens_per_s']):10,.0f}{res['first_loss']:12.4f}{res['last_loss']:11.4f}"
        )
    print(
        f"  SFT loss tokens/s (assistant targets only): {sft['tokens_per_s'] * loss_share:,.0f} "
        f"({loss_share:.1%} of positions)"
    )
    print(
        f"  cost SFT / pretraining per step: {cost:.3f}x of the medians ({paired:.3f}x median of the per-round "
        f"ratios, {best:.3f}x of the best rounds)"
    )
    print(
        f"  block_causal_mask alone: {mask_s * 1e3:.2f} ms per micro-batch, {micro_batches * mask_s / step_s:.2%} "
        "of an SFT step"
    )
    print(f"  check: the block mask changes per-token losses by up to {effect:.3g} vs one document per row")
    verdict = "PASS" if cost <= GOAL_COST_RATIO else "MISS"
    print(f"goal: the packed-mask path costs at most {GOAL_COST_RATIO - 1:.0%} more than pretraining: {verdict}")

    load_after = load_average()
    if load_before is not None and load_after is not None:
        print(f"\nload average (1 min): {load_before:.1f} before, {load_after:.1f} after, on {usable_cores()} cores")
        if max(load_before, load_after) > usable_cores() and args.threads > 1:
            print("  the machine was busy; --threads 1 gives steadier numbers there")

    if args.json:
        payload = {
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "versions": versions(),
            "load_average_1min": {"before": load_before, "after": load_after},
            "warmup": args.warmup,
            "steps": args.steps,
            "rounds": args.rounds,
            "global_batch_size": global_batch,
            "micro_batch_size": micro_batch,
            "seq_length": seq,
            "vocab_size": vocab,
            "packed_rows": rows,
            "real_token_share": real_share,
            "loss_token_share": loss_share,
            "conversations_per_row": documents,
            "results": {"sft_packed_mask": sft, "pretraining": pretrain},
            "cost_ratio_sft_over_pretraining": cost,
            "median_round_cost_ratio": paired,
            "best_round_cost_ratio": best,
            "block_causal_mask_seconds": mask_s,
            "mask_effect_max_abs_loss_change": effect,
            "goal": {"cost_ratio_at_most": GOAL_COST_RATIO, "verdict": verdict},
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
