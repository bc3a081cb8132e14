"""Measure SFT sequence packing: efficiency and speed of our three algorithms next to TRL's best-fit decreasing."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import write_json

from nemotron.data.packing import PACKING_ALGORITHMS, materialize, plan_packs

REPO = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
TINY_CORPUS = REPO / "recipes/nano3/assets/corpus-tiny"
INSTALL_TRL = "pip install trl  (into this environment; it brings datasets and transformers)"


def lognormal_lengths(count: int, mean: float, sigma: float, seed: int) -> np.ndarray:
    """Token counts drawn from a seeded lognormal (at least 1): many short conversations, a long tail."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=mean, sigma=sigma, size=count).astype(np.int64) + 1


def tiny_corpus_lengths() -> np.ndarray:
    """Token counts of the shipped tiny corpus documents under the tiny tokenizer."""
    from tokenizers import Tokenizer

    texts = []
    for path in sorted(TINY_CORPUS.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = Tokenizer.from_file(str(TINY_TOKENIZER / "tokenizer.json"))
    return np.array([len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)], dtype=np.int64)


def best_time(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of `repeats` runs of `work` and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def synthetic_documents(lengths: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token ids and all-ones loss masks of the given lengths, as views into two flat arrays."""
    total = int(lengths.sum())
    ids = (np.arange(total, dtype=np.int64) % 32000).astype(np.int32)
    mask = np.ones(total, dtype=np.uint8)
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    return [ids[s:e] for s, e in zip(bounds[:-1], bounds[1:], strict=True)], [
        mask[s:e] for s, e in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def measure_ours(lengths: np.ndarray, pack_size: int, seed: int, repeats: int) -> list[dict[str, Any]]:
    ids, masks = synthetic_documents(lengths)
    results = []
    for algorithm in PACKING_ALGORITHMS:
        plan_s, plan = best_time(repeats, lambda a=algorithm: plan_packs(lengths, pack_size, a, seed))
        rows_s, rows = best_time(repeats, lambda p=plan: list(materialize(p, ids, masks)))
        stats = plan.stats()
        assert len(rows) == stats.packs
        results.append(
            {
                "algorithm": algorithm,
                "packs": stats.packs,
                "real_tokens": stats.real_tokens,
                "efficiency": stats.efficiency,
                "plan_s": plan_s,
                "total_s": plan_s + rows_s,
            }
        )
    return results


def measure_trl(trl: Any, lengths: np.ndarray, pack_size: int, repeats: int) -> dict[str, Any] | str:
    """TRL's `pack_dataset(..., strategy="bfd")` on a dataset of the same lengths, or why it could not run."""
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    total = int(lengths.sum())
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    values = (np.arange(total, dtype=np.int64) % 32000).astype(np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    dataset = datasets.Dataset(pa.table({"input_ids": column}))
    datasets.disable_progress_bars()
    try:
        seconds, packed = best_time(repeats, lambda: trl.pack_dataset(dataset, pack_size, strategy="bfd"))
    except TypeError as err:  # a TRL older than the `strategy` argument
        return f"trl {trl.__version__} has no best-fit decreasing packing ({err}); upgrade: pip install -U trl"
    real = int(pc.sum(pc.list_value_length(packed.data.column("input_ids"))).as_py())
    rows = len(packed)
    return {
        "algorithm": f"trl {trl.__version__} bfd",
        "packs": rows,
        "real_tokens": real,
        "efficiency": real / (rows * pack_size) if rows else 0.0,
        "plan_s": None,
        "total_s": seconds,
    }


def report(name: str, lengths: np.ndarray, pack_size: int, ours: list[dict], trl: dict | str | None) -> None:
    over = int((lengths > pack_size).sum())
    print(
        f"\n{name}: {len(lengths):,} documents, {int(lengths.sum()):,} tokens "
        f"(median {int(np.median(lengths)):,}, max {int(lengths.max()):,}, {over:,} over pack_size), "
        f"pack_size {pack_size:,}"
    )
    print(f"  {'algorithm':<24} {'packs':>9} {'real tokens':>13} {'efficiency':>10} {'plan s':>8} {'+rows s':>8}")
    for row in ours + ([trl] if isinstance(trl, dict) else []):
        plan = f"{row['plan_s']:8.3f}" if row["plan_s"] is not None else f"{'-':>8}"
        print(
            f"  {row['algorithm']:<24} {row['packs']:>9,} {row['real_tokens']:>13,} {row['efficiency']:>10.2%} "
            f"{plan} {row['total_s']:8.3f}"
        )
    if isinstance(trl, dict):
        print("  ours / TRL:  efficiency ratio, time ratio (plan + rows vs pack_dataset; < 1 is faster)")
        for row in ours:
            print(
                f"  {row['algorithm']:<24} {row['efficiency'] / trl['efficiency']:.4f}x  "
                f"{row['total_s'] / trl['total_s']:.3f}x"
            )
    elif isinstance(trl, str):
        print(f"  TRL: {trl}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pack-size", type=int, default=4096, help="tokens per packed row (default: 4096)")
    parser.add_argument("--documents", type=int, default=50_000, help="lognormal documents (default: 50,000)")
    parser.add_argument("--mean", type=float, default=6.0, help="lognormal mean of log-length (default: 6.0)")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma of log-length (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lengths and of first_fit_shuffle")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs each; the fastest counts (default: 3)")
    parser.add_argument("--no-trl", action="store_true", help="skip TRL even when it is installed")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.pack_size < 1 or args.documents < 1 or args.repeats < 1:
        parser.error("--pack-size, --documents and --repeats must be >= 1")

    trl = None
    if not args.no_trl:
        try:
            import trl
        except ImportError:
            print(f"TRL is not installed, so only our numbers are printed. To compare: {INSTALL_TRL}")

    sets = {
        f"lognormal(mean={args.mean}, sigma={args.sigma}, seed={args.seed})": lognormal_lengths(
            args.documents, args.mean, args.sigma, args.seed
        ),
        "tiny corpus (recipes/nano3/assets/corpus-tiny, tiny tokenizer)": tiny_corpus_lengths(),
    }
    results: dict[str, Any] = {"pack_size": args.pack_size, "sets": {}}
    for name, lengths in sets.items():
        ours = measure_ours(lengths, args.pack_size, args.seed, args.repeats)
        theirs = measure_trl(trl, lengths, args.pack_size, args.repeats) if trl is not None else None
        report(name, lengths, args.pack_size, ours, theirs)
        results["sets"][name] = {"documents": len(lengths), "ours": ours, "trl": theirs}
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
