"""Measure pretraining data prep: throughput vs Hugging Face and gigatoken encoding, peak memory, long documents."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench_common import CommandFailed, nemotron_command, write_json

if TYPE_CHECKING:
    import psutil

REPO = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
TINY_CORPUS = REPO / "recipes/nano3/assets/corpus-tiny"
ARTIFACT = "bench-data"
GOAL_STAGE_OVER_HF = 3.0
GOAL_LONG_PEAK_MB = 1024.0  # peak RSS of the process that tokenizes one --long-mb document
GOAL_LONG_OVER_NORMAL = 0.9  # its tokens/s over the same text as normal documents
LONG_STAGE_ARGS = ["workers=1", "num_shards=1"]  # one process reads, tokenizes and writes: a worker's job
PROGRESS_RATE = re.compile(r"progress: .* ([\d,]+) tokens/s")
SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")


def shipped_documents() -> list[str]:
    texts = []
    for path in sorted(TINY_CORPUS.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def shuffled_documents(target_bytes: int, seed: int) -> Iterator[str]:
    """Copies of the shipped documents, each copy with its sentences shuffled, until `target_bytes` of text."""
    rng = random.Random(seed)
    sources = [SENTENCE_END.split(text) for text in shipped_documents()]
    written = 0
    while True:
        for sentences in sources:
            sentences = sentences[:]
            rng.shuffle(sentences)
            text = " ".join(sentences)
            yield text
            written += len(text.encode("utf-8"))
            if written >= target_bytes:
                return


def write_corpus(path: Path, target_bytes: int, seed: int, one_document: bool = False) -> tuple[int, int]:
    """The shuffled documents as JSONL, one per line or all in one document; returns (documents, text bytes)."""
    texts = list(shuffled_documents(target_bytes, seed))
    if one_document:
        texts = ["\n\n".join(texts)]
    with path.open("w", encoding="utf-8") as out:
        for text in texts:
            out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return len(texts), sum(len(text.encode("utf-8")) for text in texts)


class PeakRss:
    """Peak RSS (VmHWM, Linux) of every process under `pid`, read every `interval` seconds while it runs.

    VmHWM is the process's own high-water mark, so a poll any time between its peak and its exit
    sees the peak. Processes are told apart by command line: pool workers (multiprocessing spawn),
    the stage's job process, and the CLI that launched it.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peaks: dict[int, tuple[str, float]] = {}  # pid -> (role, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, list[float]]:
        """Stop polling; the peaks in MB by role ("job", "worker", "cli"), largest first."""
        self._stop.set()
        self._thread.join()
        by_role: dict[str, list[float]] = {}
        for role, mb in self.peaks.values():
            by_role.setdefault(role, []).append(mb)
        return {role: sorted(mbs, reverse=True) for role, mbs in by_role.items()}

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
            except psutil.Error:
                tree = []
            for proc in tree:
                try:
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                    role = self.peaks[proc.pid][0] if proc.pid in self.peaks else _role(proc, self.pid)
                except (OSError, psutil.Error):
                    continue
                match = re.search(r"VmHWM:\s*(\d+) kB", status)
                if role and match:
                    self.peaks[proc.pid] = (role, max(int(match.group(1)) / 1024, self.peaks.get(proc.pid, ("", 0))[1]))
            self._stop.wait(self.interval)


def _role(proc: psutil.Process, root: int) -> str | None:
    cmdline = " ".join(proc.cmdline())
    if "python" not in cmdline or "resource_tracker" in cmdline:
        return None  # the job's bash wrapper, multiprocessing's resource tracker
    if proc.pid == root:
        return "cli"
    return "worker" if "spawn_main" in cmdline else "job"


def run(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float, peaks: dict[str, list[float]] | None = None
) -> tuple[float, str]:
    """Run `cmd`; (seconds, output). With `peaks`, fill it with the peak RSS of its processes (PeakRss.stop)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    monitor = PeakRss(proc.pid) if peaks is not None else None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise CommandFailed(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from exc
    finally:
        if monitor is not None and peaks is not None:
            peaks.update(monitor.stop())
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise CommandFailed(
            f"exit status {proc.returncode}: {shlex.join(cmd)}\n"
            f"--- stdout ---\n{stdout.rstrip()}\n--- stderr ---\n{stderr.rstrip()}"
        )
    return elapsed, stdout + stderr


def measure_stage(
    blend: Path, tokenizer: Path, stage_args: list[str], tmp: Path, timeout: float, label: str = "stage end to end"
) -> dict:
    """`nemotron nano3 data prep pretrain` as a subprocess; tokens from the published artifact, peak RSS by process."""
    home = tmp / "home"
    workdir = tmp / "cwd"
    workdir.mkdir()
    (tmp / "env.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "NEMOTRON_ARTIFACTS_ROOT"}
    env.update(NEMOTRON_HOME=str(home), NEMOTRON_ENV_FILE=str(tmp / "env.toml"))
    cmd = nemotron_command() + [
        "nano3",
        "data",
        "prep",
        "pretrain",
        "-c",
        "tiny",
        f"blend_path={blend}",
        f"artifact_name={ARTIFACT}",
        f"tokenizer.name_or_path={tokenizer}",
        *stage_args,
    ]
    peaks: dict[str, list[float]] = {}
    seconds, output = run(cmd, env, workdir, timeout, peaks)
    record = json.loads((home / "artifacts" / ARTIFACT / "v1" / "artifact.json").read_text())
    splits = record["metadata"]["splits"]
    tokens = sum(splits[s]["tokens"] for s in ("train", "valid", "test"))
    documents = sum(splits[s]["documents"] for s in ("train", "valid", "test"))
    rates = PROGRESS_RATE.findall(output)
    return {
        "label": label,
        "command": cmd,
        "seconds": seconds,
        "tokens": tokens,
        "documents": documents,
        "tokens_per_s": tokens / seconds,
        # the stage's own rate over its shards (from the pool's start; no CLI, job start or tokenizer check)
        "shard_tokens_per_s": float(rates[-1].replace(",", "")) if rates else None,
        "peak_rss_mb": peaks,
        "backend": record["metadata"].get("tokenizer", {}).get("backend"),
        "output_tail": output[-2000:],
    }


def measure_long_document(
    long_mb: float, seed: int, tokenizer: Path, stage_args: list[str], tmp: Path, timeout: float
) -> tuple[dict, dict]:
    """The stage on `long_mb` MB of documents, then on the same text as one document (LONG_STAGE_ARGS)."""
    results = []
    for one_document in (False, True):
        folder = tmp / ("long-one" if one_document else "long-normal")
        folder.mkdir()
        corpus = folder / "bench.jsonl"
        documents, text_bytes = write_corpus(corpus, int(long_mb * 1e6), seed, one_document=one_document)
        blend = folder / "blend.json"
        blend.write_text(json.dumps({"datasets": [{"name": "bench", "path": str(corpus), "weight": 1.0}]}))
        label = f"{text_bytes / 1e6:,.0f} MB as {'one document' if one_document else f'{documents:,} documents'}"
        results.append(measure_stage(blend, tokenizer, [*LONG_STAGE_ARGS, *stage_args], folder, timeout, label))
        print(f"  measured stage on {label}", flush=True)
    return results[0], results[1]


def tokenizing_peak_mb(result: dict) -> float:
    """Peak RSS of the process that tokenized: the largest worker, else the job process (workers=1)."""
    peaks = result["peak_rss_mb"]
    return max(peaks.get("worker") or peaks.get("job") or [float("nan")])


def describe_peaks(peaks: dict[str, list[float]]) -> str:
    parts = [f"job {peaks['job'][0]:,.0f}"] if peaks.get("job") else []
    if peaks.get("worker"):
        workers = peaks["worker"]
        parts.append(f"workers {', '.join(f'{mb:,.0f}' for mb in workers)} ({len(workers)})")
    return "; ".join(parts) or "not measured (needs Linux /proc)"


def measure_encoder(
    kind: str, corpus: Path, tokenizer: Path, threads: int, batch_docs: int, tmp: Path, timeout: float
) -> dict:
    """One encoder in a fresh interpreter, so RAYON_NUM_THREADS sizes its thread pool."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--encode-only",
        kind,
        "--corpus",
        str(corpus),
        "--tokenizer",
        str(tokenizer),
        "--threads",
        str(threads),
        "--batch-docs",
        str(batch_docs),
    ]
    _, output = run(cmd, env, tmp, timeout)
    return json.loads(output.strip().splitlines()[-1])


def encode_only(kind: str, corpus: Path, tokenizer: Path, threads: int, batch_docs: int) -> dict:
    """Time the encode calls alone (texts already in memory) and count tokens."""
    texts = [json.loads(line)["text"] for line in corpus.open(encoding="utf-8")]
    batches = [texts[i : i + batch_docs] for i in range(0, len(texts), batch_docs)]
    tokenizer_json = str(tokenizer / "tokenizer.json") if tokenizer.is_dir() else str(tokenizer)
    if kind == "huggingface":
        from tokenizers import Tokenizer

        hf = Tokenizer.from_file(tokenizer_json)
        encode = lambda b: sum(len(e.ids) for e in hf.encode_batch(b, add_special_tokens=False))  # noqa: E731
        label = f"HF tokenizers encode_batch, {threads} threads"
    elif kind == "gigatoken":
        import gigatoken

        giga = gigatoken.Tokenizer(tokenizer_json)
        encode = lambda b: len(giga.encode_batch(b, parallel=threads > 1).layout.content)  # noqa: E731
        label = f"gigatoken raw encode_batch, {threads} threads"
    else:
        from nemotron.data.tokenizer import load_tokenizer

        ours = load_tokenizer(str(tokenizer), backend="gigatoken", threads=threads)
        encode = lambda b: len(ours.encode_batch_flat(b).ids)  # noqa: E731
        label = f"nemotron TextTokenizer (gigatoken) encode_batch_flat, {threads} threads"
    encode(batches[0][:8])  # warm-up: thread pool start, first-call setup
    tokens = 0
    started = time.perf_counter()
    for batch in batches:
        tokens += encode(batch)
    seconds = time.perf_counter() - started
    return {
        "label": label,
        "seconds": seconds,
        "tokens": tokens,
        "documents": len(texts),
        "tokens_per_s": tokens / seconds,
    }


def report_long_document(normal: dict, one: dict) -> dict:
    """Print the long-document comparison and its goal line; the numbers for --json."""
    print(f"\nLong documents ({' '.join(LONG_STAGE_ARGS)}: the job process tokenizes; tokens/s over the shards)")
    print(f"{'':2}{'measurement':<40}{'seconds':>9}{'tokens':>14}{'tokens/s':>14}{'peak RSS MB':>13}")
    for r in (normal, one):
        rate = r["shard_tokens_per_s"] or float("nan")
        print(f"  {r['label']:<40}{r['seconds']:9.2f}{r['tokens']:14,}{rate:14,.0f}{tokenizing_peak_mb(r):13,.0f}")
    speed = (one["shard_tokens_per_s"] or float("nan")) / (normal["shard_tokens_per_s"] or float("nan"))
    peak = tokenizing_peak_mb(one)
    print(f"  one document / normal documents (tokens/s)  {speed:8.2f}x")
    verdict = "PASS" if peak < GOAL_LONG_PEAK_MB and speed >= GOAL_LONG_OVER_NORMAL else "MISS"
    print(
        f"goal: one document peaks under {GOAL_LONG_PEAK_MB:,.0f} MB and keeps >= {GOAL_LONG_OVER_NORMAL:.1f}x "
        f"the tokens/s of normal documents: {verdict}"
    )
    return {
        "stage_args": LONG_STAGE_ARGS,
        "normal_documents": normal,
        "one_document": one,
        "one_over_normal_tokens_per_s": speed,
        "goal": {
            "peak_rss_mb_under": GOAL_LONG_PEAK_MB,
            "one_over_normal_at_least": GOAL_LONG_OVER_NORMAL,
            "verdict": verdict,
        },
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("tokenizers", "transformers", "gigatoken", "nemotron"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=200.0, help="MB of text to generate (default: 200)")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=TINY_TOKENIZER,
        help="tokenizer folder with tokenizer.json (default: the shipped tiny tokenizer)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="threads for the HF and gigatoken baselines (default: 2)"
    )
    parser.add_argument("--batch-docs", type=int, default=1024, help="documents per encode call in the baselines")
    parser.add_argument("--stage-args", default="", help='extra stage overrides, e.g. "workers=2 num_shards=16"')
    parser.add_argument(
        "--long-mb",
        type=float,
        default=50.0,
        help="MB of text for the long-document case: as normal documents, then as one document (default: 50; 0: skip)",
    )
    parser.add_argument("--long-stage-args", default="", help="extra overrides for the long-document case only")
    parser.add_argument("--seed", type=int, default=1234, help="seed for the sentence shuffling")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before one command counts as failed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary corpus, blend and NEMOTRON_HOME")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    parser.add_argument("--encode-only", choices=("huggingface", "gigatoken", "nemotron"), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.encode_only:
        print(json.dumps(encode_only(args.encode_only, args.corpus, args.tokenizer, args.threads, args.batch_docs)))
        return 0
    if args.mb <= 0 or args.long_mb < 0 or args.threads < 1 or args.batch_docs < 1:
        parser.error("--mb must be > 0, --long-mb >= 0, --threads and --batch-docs >= 1")
    tokenizer = args.tokenizer.expanduser().resolve()

    tmp = Path(tempfile.mkdtemp(prefix="nemotron-bench-data-"))
    try:
        corpus = tmp / "bench.jsonl"
        started = time.perf_counter()
        documents, text_bytes = write_corpus(corpus, int(args.mb * 1e6), args.seed)
        blend = tmp / "blend.json"
        blend.write_text(json.dumps({"datasets": [{"name": "bench", "path": str(corpus), "weight": 1.0}]}))
        print(f"python:    {sys.executable} ({platform.python_version()}), {os.cpu_count()} CPUs")
        print(f"tokenizer: {tokenizer}")
        print(
            f"corpus:    {corpus} ({documents:,} documents, {text_bytes / 1e6:,.1f} MB of text, "
            f"written in {time.perf_counter() - started:.1f} s)\n",
            flush=True,
        )
        try:
            results = []
            for kind in ("huggingface", "gigatoken", "nemotron"):
                results.append(
                    measure_encoder(kind, corpus, tokenizer, args.threads, args.batch_docs, tmp, args.timeout)
                )
                print(f"  measured {results[-1]['label']}", flush=True)
            hf, giga, ours = results
            results.append(measure_stage(blend, tokenizer, shlex.split(args.stage_args), tmp, args.timeout))
            stage = results[-1]
            print(f"  measured stage end to end ({stage['backend']} backend)", flush=True)
            normal = one = None
            if args.long_mb:
                long_args = shlex.split(args.long_stage_args)
                normal, one = measure_long_document(args.long_mb, args.seed, tokenizer, long_args, tmp, args.timeout)
            print()
        except CommandFailed as exc:
            print(f"\nERROR: {exc}", file=sys.stderr)
            return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'':2}{'measurement':<64}{'seconds':>9}{'tokens':>14}{'tokens/s':>14}")
    for r in (stage, hf, giga, ours):
        print(f"  {r['label']:<64}{r['seconds']:9.2f}{r['tokens']:14,}{r['tokens_per_s']:14,.0f}")
    ratios = {
        "stage_over_hf": stage["tokens_per_s"] / hf["tokens_per_s"],
        "stage_over_gigatoken": stage["tokens_per_s"] / giga["tokens_per_s"],
        "gigatoken_over_hf": giga["tokens_per_s"] / hf["tokens_per_s"],
        "nemotron_wrapper_over_gigatoken": ours["tokens_per_s"] / giga["tokens_per_s"],
    }
    print("\nRatios (tokens/s)")
    print(f"  stage / HF                    {ratios['stage_over_hf']:8.2f}x")
    print(f"  stage / gigatoken raw         {ratios['stage_over_gigatoken']:8.3f}x")
    print(f"  gigatoken raw / HF            {ratios['gigatoken_over_hf']:8.2f}x")
    print(f"  nemotron wrapper / gigatoken  {ratios['nemotron_wrapper_over_gigatoken']:8.3f}x")
    # The stage appends one end-of-document token per document; the encoders do not.
    counts_agree = hf["tokens"] == giga["tokens"] == ours["tokens"] == stage["tokens"] - stage["documents"]
    print(f"\ntoken counts agree (stage minus one EOD per document): {'yes' if counts_agree else 'NO'}")
    goal = "PASS" if ratios["stage_over_hf"] >= GOAL_STAGE_OVER_HF else "MISS"
    print(f"goal: stage >= {GOAL_STAGE_OVER_HF:.0f}x HF ({args.threads} threads): {goal}")
    print(f"\npeak RSS (MB) of the stage end to end: {describe_peaks(stage['peak_rss_mb'])}")
    long_documents = report_long_document(normal, one) if normal and one else None

    if args.json:
        payload = {
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "versions": versions(),
            "tokenizer": str(tokenizer),
            "corpus": {"documents": documents, "text_bytes": text_bytes, "seed": args.seed},
            "threads": args.threads,
            "batch_docs": args.batch_docs,
            "stage_args": args.stage_args,
            "results": {"stage": stage, "huggingface": hf, "gigatoken": giga, "nemotron_wrapper": ours},
            "ratios": ratios,
            "token_counts_agree": counts_agree,
            "goal": {"stage_over_hf_at_least": GOAL_STAGE_OVER_HF, "verdict": goal},
            "long_documents": long_documents,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
