"""Measure training throughput: nemotron's megatron-core engine vs a plain PyTorch Hugging Face Llama.

Both models have the same shape and precision, start from the same weights (the megatron model's
initial weights are copied into the HF model with the exporter's mapping), train on the same
micro-batches with the same optimizer settings, and are measured in the same process:

- nemotron: `build_engine(...).train_step(...)`, megatron-core's forward-backward schedule with the
  per-token loss, gradient accumulation, clipping and AdamW (on the CPU: fp32, torch AdamW);
- HF: `LlamaForCausalLM(LlamaConfig(**hf_config(model)))`, default attention (sdpa); per micro-batch
  the masked cross-entropy of the logits against the already-shifted labels (summed, divided by the
  global batch's loss tokens, as megatron's per-token loss), backward, then clip 1.0 and a torch AdamW
  step with the same decay groups (nemotron's `build_optimizer`).

CPU section (always): the tiny pretraining model of recipes/nano3/stage0_pretrain/config/tiny.yaml
(4 layers, hidden 256) on the tiny pretrain-data artifact, which the script prepares with
`nemotron nano3 data prep pretrain -c tiny` in a temporary NEMOTRON_HOME (or reads from `--registry`).
All micro-batches are read before timing. After `--warmup` untimed steps per model, the `--steps`
timed steps are split into `--rounds` rounds (default one step each); each round times both models
on the same steps, in alternating order (A B, B A, ...) so that load from other processes falls on
both. tokens/s is global batch x sequence length per step over wall time, the median over rounds;
the ratio is nemotron / HF of those medians. Also shown, for a busy machine: the median of the
per-round ratios (slow spells common to both cancel) and the ratio of the best rounds (other load
only slows a round down). The losses of the first and last step show that both train (and agree).

GPU section (only with CUDA): a ~124M-parameter model (12 layers, hidden 768, sequence 2048) on random
token ids (enough to time a step; the loss does not fall much on random data), nemotron's GpuEngine
in bf16 (megatron DDP + distributed optimizer, fp32 main weights) vs the HF model with fp32 weights
under torch.autocast(bfloat16); tokens/s and MFU (nemotron.training.model.flops) of each. On a GPU machine
the tiny section also runs on the GPU, in the same precisions.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --steps 40 --json benchmarks/results/train_throughput.json
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from bench_common import CommandFailed, nemotron_command, write_json

REPO = Path(__file__).resolve().parents[1]
TINY_TRAIN_CONFIG = REPO / "recipes/nano3/stage0_pretrain/config/tiny.yaml"
TINY_DATA = "nano3-pretrain-data-tiny:latest"
# ~124M parameters (GPT-2 small size with SwiGLU: FFN 2048 keeps the MLP at 2 x 4h^2), vocab a multiple of 128.
GPU_MODEL = dict(
    num_layers=12,
    hidden_size=768,
    num_attention_heads=12,
    ffn_hidden_size=2048,
    seq_length=2048,
    vocab_size=50304,
    tie_embeddings=True,
)


# --- data and configs ------------------------------------------------------------------------------


def prepare_tiny_data(tmp: Path, timeout: float) -> Path:
    """Run `nemotron nano3 data prep pretrain -c tiny` with NEMOTRON_HOME in `tmp`; return the registry root."""
    home, workdir, env_file = tmp / "home", tmp / "cwd", tmp / "env.toml"
    workdir.mkdir()
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "NEMOTRON_ARTIFACTS_ROOT"}
    env.update(NEMOTRON_HOME=str(home), NEMOTRON_ENV_FILE=str(env_file))
    cmd = nemotron_command() + ["nano3", "data", "prep", "pretrain", "-c", "tiny"]
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise CommandFailed(
            f"exit status {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout.rstrip()}\n--- stderr ---\n{proc.stderr.rstrip()}"
        )
    return home / "artifacts"


def tiny_recipe() -> tuple[dict, dict, dict, dict]:
    """The model, train, lr and optimizer sections of tiny.yaml (with what it extends), uninterpolated."""
    from omegaconf import OmegaConf

    from nemotron.config.yaml_loader import load_yaml_chain

    cfg, _ = load_yaml_chain(TINY_TRAIN_CONFIG)
    sections = OmegaConf.to_container(cfg, resolve=False)
    return sections["model"], sections["train"], sections["lr"], sections.get("optimizer") or {}


def tiny_model_config(section: dict, vocab_size: int):
    from dataclasses import fields

    from nemotron.training.model.config import ModelConfig

    known = {f.name for f in fields(ModelConfig)} - {"vocab_size", "moe"}
    return ModelConfig(vocab_size=vocab_size, **{k: v for k, v in section.items() if k in known})


def real_batches(
    registry_root: Path,
    data_ref: str,
    seq_length: int,
    global_batch: int,
    micro_batch: int,
    steps: int,
    cache_dir: Path,
) -> tuple[list[list[dict]], int]:
    """`steps` global batches (each a list of micro-batches) from the artifact, and its vocabulary size."""
    from nemotron.artifacts import FileRegistry
    from nemotron.training.datasets.gpt import TrainingDataConfig, build_datasets
    from nemotron.training.datasets.position import MicroBatchIterator

    data_cfg = TrainingDataConfig(
        seq_length=seq_length,
        seed=1234,
        global_batch_size=global_batch,
        micro_batch_size=micro_batch,
        train_iters=steps,
        cache_dir=str(cache_dir),
        artifact_ref=data_ref,
    )
    datasets = build_datasets(data_cfg, registry=FileRegistry(registry_root))
    it = MicroBatchIterator(datasets.train, micro_batch, 0, 1, global_batch_size=global_batch)
    per_step = it.micro_batches_per_step
    batches = [[next(it) for _ in range(per_step)] for _ in range(steps)]
    return batches, datasets.tokenizer.vocab_size


def synthetic_batches(
    vocab_size: int, seq_length: int, global_batch: int, micro_batch: int, steps: int, seed: int = 0
) -> list[list[dict]]:
    """Random token ids, shaped like GPTDataset micro-batches (labels = the next token, every token counted)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    positions = torch.arange(seq_length).unsqueeze(0).expand(micro_batch, -1).contiguous()
    out = []
    for _ in range(steps):
        step = []
        for _ in range(global_batch // micro_batch):
            ids = torch.randint(0, vocab_size, (micro_batch, seq_length + 1), generator=gen)
            step.append(
                {
                    "tokens": ids[:, :-1].contiguous(),
                    "labels": ids[:, 1:].contiguous(),
                    "loss_mask": torch.ones(micro_batch, seq_length),
                    "position_ids": positions,
                    "attention_mask": None,
                }
            )
        out.append(step)
    return out


# --- the two trainers --------------------------------------------------------------------------------


class NemotronTrainer:
    """nemotron's engine (CpuEngine or GpuEngine by device)."""

    name = "nemotron (megatron-core)"

    def __init__(self, model_cfg, optim_cfg, context, micro_batch: int) -> None:
        from nemotron.training.engine.engines import build_engine
        from nemotron.training.engine.objective import NextTokenObjective
        from nemotron.training.model.config import ParallelConfig, resolved_precision

        self.engine = build_engine(model_cfg, ParallelConfig(), optim_cfg, context, micro_batch, NextTokenObjective())
        self.precision = resolved_precision(model_cfg, context.device)

    def step(self, micro_batches: list[dict]) -> float:
        result = self.engine.train_step(iter(micro_batches), len(micro_batches))
        return result.loss

    def weights(self) -> dict:
        return self.engine.unwrapped_model().state_dict()


class HFTrainer:
    """LlamaForCausalLM of the same shape; loss, accumulation, clipping and AdamW written out in plain PyTorch."""

    name = "HF transformers (plain PyTorch)"

    def __init__(self, model_cfg, optim_cfg, device, bf16_autocast: bool, megatron_weights: dict) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        from nemotron.training.export.hf import hf_config, hf_state_dict
        from nemotron.training.optim.optimizer import build_optimizer

        self.device = device
        self.clip = optim_cfg.clip_grad
        self.model = LlamaForCausalLM(LlamaConfig(**hf_config(model_cfg, dtype="float32"))).to(device)
        # Same starting point as the megatron model (weights kept in fp32; autocast does the bf16 compute).
        loaded = self.model.load_state_dict(
            hf_state_dict(megatron_weights, model_cfg, dtype=torch.float32), strict=False
        )
        tied = {"lm_head.weight"} if model_cfg.tie_embeddings else set()
        if set(loaded.missing_keys) - tied or loaded.unexpected_keys:
            raise RuntimeError(
                f"copying the megatron weights into the HF model: missing {loaded.missing_keys}, "
                f"unexpected {loaded.unexpected_keys}"
            )
        if model_cfg.tie_embeddings:
            self.model.tie_weights()
        self.model.train()
        self.optimizer = build_optimizer(self.model, optim_cfg)
        self.autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16_autocast else nullcontext
        self.precision = "fp32 weights + autocast bf16" if bf16_autocast else "fp32"
        self.attention = getattr(self.model.config, "_attn_implementation", None)

    def step(self, micro_batches: list[dict]) -> float:
        import torch
        import torch.nn.functional as F

        self.optimizer.zero_grad(set_to_none=True)
        # megatron's per-token loss: the sum over every counted token of the global batch, over their number.
        total = sum(float(mb["loss_mask"].sum()) for mb in micro_batches)
        loss_sum = torch.zeros((), device=self.device)
        for mb in micro_batches:
            tokens = mb["tokens"].to(self.device, non_blocking=True)
            positions = mb["position_ids"].to(self.device, non_blocking=True)
            mask = mb["loss_mask"].to(self.device, non_blocking=True).reshape(-1).float()
            labels = mb["labels"].to(self.device, non_blocking=True).reshape(-1).masked_fill(mask == 0, 0)
            with self.autocast():
                logits = self.model(input_ids=tokens, position_ids=positions, use_cache=False).logits
            per_token = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels, reduction="none")
            summed = (per_token * mask).sum()
            (summed / max(total, 1.0)).backward()
            loss_sum += summed.detach()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip) if self.clip else None
        if norm is None or math.isfinite(float(norm)):
            self.optimizer.step()
        return float(loss_sum) / max(total, 1.0)


# --- measurement -------------------------------------------------------------------------------------


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    trainers: list,
    batches: list[list[dict]],
    warmup: int,
    rounds: int,
    device,
    tokens_per_step: int,
    log: Callable[[str], None],
) -> list[dict]:
    """Warm up each trainer, then time rounds of equal steps, alternating which trainer goes first."""
    timed = len(batches) - warmup
    per_round = [timed // rounds + (1 if r < timed % rounds else 0) for r in range(rounds)]
    results = [
        {"name": t.name, "precision": t.precision, "losses": [], "round_seconds": [], "round_steps": []}
        for t in trainers
    ]
    for trainer, result in zip(trainers, results, strict=True):
        for batch in batches[:warmup]:
            result["losses"].append(trainer.step(batch))
        synchronize(device)
    start = warmup
    for r, steps in enumerate(per_round):
        order = list(range(len(trainers)))
        if r % 2:
            order.reverse()
        for i in order:
            gc.collect()
            synchronize(device)
            began = time.perf_counter()
            for batch in batches[start : start + steps]:
                results[i]["losses"].append(trainers[i].step(batch))
            synchronize(device)
            results[i]["round_seconds"].append(time.perf_counter() - began)
            results[i]["round_steps"].append(steps)
        start += steps
        this_round = [res["round_steps"][-1] * tokens_per_step / res["round_seconds"][-1] for res in results]
        log(
            f"  round {r + 1}/{rounds}: "
            + "   ".join(
                f"{res['name'].split()[0]} {rate:,.0f} tok/s" for res, rate in zip(results, this_round, strict=True)
            )
        )
    for res in results:
        rates = [s * tokens_per_step / sec for s, sec in zip(res["round_steps"], res["round_seconds"], strict=True)]
        res.update(
            round_tokens_per_s=rates,
            tokens_per_s=statistics.median(rates),
            timed_steps=sum(res["round_steps"]),
            timed_seconds=sum(res["round_seconds"]),
            first_loss=res["losses"][0],
            last_loss=res["losses"][-1],
        )
    return results


def compare(
    label: str, model_cfg, optim_cfg, context, batches: list[list[dict]], micro_batch: int, warmup: int, rounds: int
) -> dict:
    """Build both trainers on `context.device` from the same initial weights and measure them interleaved."""
    import torch

    from nemotron.training.model.config import parameter_count
    from nemotron.training.model.flops import mfu

    device = context.device
    ours = NemotronTrainer(model_cfg, optim_cfg, context, micro_batch)
    hf = HFTrainer(model_cfg, optim_cfg, device, ours.precision == "bf16", ours.weights())
    global_batch = micro_batch * len(batches[0])
    tokens_per_step = global_batch * model_cfg.seq_length
    print(f"\n{label}")
    print(
        f"  model: {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}, {model_cfg.num_attention_heads} "
        f"heads ({model_cfg.query_groups} KV groups), ffn {model_cfg.ffn_size}, vocab {model_cfg.vocab_size}, "
        f"seq {model_cfg.seq_length}, tied embeddings {model_cfg.tie_embeddings}: "
        f"{parameter_count(model_cfg):,} parameters"
    )
    print(
        f"  batch: global {global_batch} x {model_cfg.seq_length} = {tokens_per_step:,} tokens per step, "
        f"{len(batches[0])} micro-batch(es) of {micro_batch}; {warmup} warm-up + {len(batches) - warmup} timed "
        f"steps per model in {rounds} rounds; device {device}, {torch.get_num_threads()} torch threads"
    )
    print(
        f"  precision: nemotron {ours.precision}, HF {hf.precision} (attention: {hf.attention}); "
        f"AdamW lr {optim_cfg.lr:g}, weight decay {optim_cfg.weight_decay:g}, clip {optim_cfg.clip_grad}",
        flush=True,
    )
    results = interleaved([ours, hf], batches, warmup, rounds, device, tokens_per_step, print)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    for res in results:
        res["mfu"] = mfu(res["tokens_per_s"], model_cfg, device_name) if device_name else None
    del ours, hf
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    a, b = results
    ratio = a["tokens_per_s"] / b["tokens_per_s"]
    # Paired estimate: each round's two measurements sit side by side in time, so slow spells cancel out.
    paired = statistics.median(x / y for x, y in zip(a["round_tokens_per_s"], b["round_tokens_per_s"], strict=True))
    best = max(a["round_tokens_per_s"]) / max(b["round_tokens_per_s"])  # load only ever slows a round down
    print(
        f"\n  {'':32}{'tokens/s (median)':>18}{'min':>10}{'max':>10}{'loss first':>12}{'loss last':>11}"
        + (f"{'MFU':>8}" if device_name else "")
    )
    for res in results:
        print(
            f"  {res['name']:<32}{res['tokens_per_s']:18,.0f}{min(res['round_tokens_per_s']):10,.0f}"
            f"{max(res['round_tokens_per_s']):10,.0f}{res['first_loss']:12.4f}{res['last_loss']:11.4f}"
            + (f"{res['mfu']:8.1%}" if res["mfu"] is not None else "")
        )
    print(
        f"  ratio nemotron / HF: {ratio:.3f}x of the medians ({paired:.3f}x median of the per-round ratios, "
        f"{best:.3f}x of the best rounds)"
    )
    print(
        f"  loss difference nemotron - HF (same initial weights and data): first step "
        f"{a['first_loss'] - b['first_loss']:+.2e}, last step {a['last_loss'] - b['last_loss']:+.2e}",
        flush=True,
    )
    return {
        "label": label,
        "device": str(device),
        "device_name": device_name,
        "model": _asdict(model_cfg),
        "parameters": parameter_count(model_cfg),
        "global_batch_size": global_batch,
        "micro_batch_size": micro_batch,
        "tokens_per_step": tokens_per_step,
        "warmup_steps": warmup,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "results": {"nemotron": a, "huggingface": b},
        "ratio_nemotron_over_hf": ratio,
        "median_round_ratio_nemotron_over_hf": paired,
        "best_round_ratio_nemotron_over_hf": best,
    }


def _asdict(cfg) -> dict:
    from dataclasses import asdict

    return asdict(cfg)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "megatron-core", "transformers", "nemotron"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first (default: 3)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default: 20)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds the timed steps are split into, alternating the order of the models "
        "(default: --steps, i.e. the models alternate every step)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=usable_cores(),
        help="torch threads for both models (default: all cores, %(default)s here)",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        help="an artifact registry root (e.g. ~/.nemotron/artifacts) that already holds the tiny "
        "pretrain data; default: prepare it in a temporary NEMOTRON_HOME",
    )
    parser.add_argument("--data", default=TINY_DATA, help=f"the pretrain-data artifact (default: {TINY_DATA})")
    parser.add_argument("--gpu-micro-batch", type=int, default=8, help="GPU section: micro batch (default: 8)")
    parser.add_argument("--gpu-global-batch", type=int, default=32, help="GPU section: global batch (default: 32)")
    parser.add_argument("--skip-gpu", action="store_true", help="do not run the GPU section even with CUDA")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before data prep counts as failed")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    args.rounds = args.steps if args.rounds is None else args.rounds
    if args.warmup < 0 or args.steps < 1 or args.threads < 1 or not 1 <= args.rounds <= args.steps:
        parser.error("need --warmup >= 0, --steps >= 1, --threads >= 1 and 1 <= --rounds <= --steps")
    if args.gpu_micro_batch < 1 or args.gpu_global_batch % args.gpu_micro_batch:
        parser.error("--gpu-global-batch must be a multiple of --gpu-micro-batch")

    # megatron-core warns at import that Apex / Transformer Engine are missing (expected on the CPU).
    warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).*not installed")
    import torch

    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.model.config import ModelConfig, ParallelConfig
    from nemotron.training.optim.optimizer import OptimizerConfig

    torch.set_num_threads(args.threads)
    print(
        f"python:   {sys.executable} ({platform.python_version()}), {os.cpu_count()} CPUs, {args.threads} torch threads"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()), flush=True)
    load_before = load_average()

    sections = []
    tmp = Path(tempfile.mkdtemp(prefix="nemotron-bench-train-"))
    try:
        registry = args.registry.expanduser().resolve() if args.registry else None
        if registry is None:
            started = time.perf_counter()
            try:
                registry = prepare_tiny_data(tmp, args.timeout)
            except CommandFailed as exc:
                print(f"\nERROR: {exc}", file=sys.stderr)
                return 1
            print(
                f"data:     `nemotron nano3 data prep pretrain -c tiny` in {tmp / 'home'} "
                f"({time.perf_counter() - started:.1f} s)"
            )
        else:
            print(f"data:     registry {registry}")

        model_section, train_section, lr_section, optim_section = tiny_recipe()
        global_batch, micro_batch = int(train_section["global_batch_size"]), int(train_section["micro_batch_size"])
        optim_cfg = OptimizerConfig(lr=float(lr_section["lr"]), **optim_section)
        context = init_distributed(ParallelConfig(), seed=1234)  # one process: gloo on the CPU, nccl on a GPU
        try:
            batches, vocab = real_batches(
                registry,
                args.data,
                int(model_section["seq_length"]),
                global_batch,
                micro_batch,
                args.warmup + args.steps,
                tmp / "data-cache",
            )
            tiny_cfg = tiny_model_config(model_section, vocab)
            sections.append(
                compare(
                    f"tiny pretraining model (tiny.yaml) on {args.data}",
                    tiny_cfg,
                    optim_cfg,
                    context,
                    batches,
                    micro_batch,
                    args.warmup,
                    args.rounds,
                )
            )
            if torch.cuda.is_available() and not args.skip_gpu:
                gpu_cfg = ModelConfig(**GPU_MODEL)
                gpu_batches = synthetic_batches(
                    gpu_cfg.vocab_size,
                    gpu_cfg.seq_length,
                    args.gpu_global_batch,
                    args.gpu_micro_batch,
                    args.warmup + args.steps,
                )
                sections.append(
                    compare(
                        "GPU: ~124M-parameter model on random token ids",
                        gpu_cfg,
                        OptimizerConfig(lr=3e-4),
                        context,
                        gpu_batches,
                        args.gpu_micro_batch,
                        args.warmup,
                        args.rounds,
                    )
                )
            else:
                print(
                    "\nno GPU: skipped the GPU measurement"
                    if not torch.cuda.is_available()
                    else "\n--skip-gpu: skipped the GPU measurement"
                )
        finally:
            destroy_distributed()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load_after = load_average()
    if load_before is not None and load_after is not None:
        print(f"\nload average (1 min): {load_before:.1f} before, {load_after:.1f} after, on {usable_cores()} cores")
        if max(load_before, load_after) > usable_cores() and args.threads > 1:
            print(
                "  the machine was busy: with every core's thread shared, threaded steps wait on each other and "
                "vary a lot; --threads 1 gives steadier numbers there"
            )
    print("\nSummary (tokens/s, median over rounds; other load on the machine hits both models alike)")
    for section in sections:
        ours, hf = section["results"]["nemotron"], section["results"]["huggingface"]
        print(
            f"  {section['label']}: nemotron {ours['tokens_per_s']:,.0f}, HF {hf['tokens_per_s']:,.0f}, "
            f"ratio {section['ratio_nemotron_over_hf']:.3f}x (per-round median "
            f"{section['median_round_ratio_nemotron_over_hf']:.3f}x, best rounds "
            f"{section['best_round_ratio_nemotron_over_hf']:.3f}x)"
        )

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
            "data": args.data,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "sections": sections,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
