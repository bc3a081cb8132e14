"""Measure SFT data prep: nemotron's render + loss mask next to transformers' apply_chat_template loop.

Input: the records of recipes/nano3/assets/chat-tiny/train.jsonl (3,000 OpenAI-style `messages`
conversations, mostly one user and one assistant turn, some with a system message or several turns;
no tools), repeated `--repeat` times (default 10) so that timings are not dominated by start-up.
One Hugging Face fast tokenizer (`AutoTokenizer` on `--tokenizer`, default the tiny tokenizer; the
object the stage's workers use) and the nano3 template (`load_chat_template("nano3", tokenizer)`)
serve every measurement. In one process, on the records already parsed in memory, each of these
loops runs `--repeats` times (default 3) and the fastest run counts. A run is timed in chunks of
`--chunk` records (default 1,024): each loop takes the chunk in turn (the order alternating between
chunks and repeats) and a loop's time is the sum of its chunks, so that a change of the machine's
load during a repeat weighs on every loop alike. The loops run with TOKENIZERS_PARALLELISM=false
(unless it is set already), as the stage's worker processes do (shard_runner), so that no loop uses
the Rust tokenizer's thread pool (the stage below runs with the environment the script started with):

- **nemotron**: `render_batch_with_mask(conversations, template, tokenizer)` on the records,
  `RENDER_BATCH` (64) at a time, what a shard worker does (`sft_shard._render_item`; the record
  check `validate_conversation`, the split assignment and the Parquet writing are not included).
  Per conversation it renders the whole conversation and every prefix of it as
  `apply_chat_template(..., tokenize=False)` renders them, checks that each is a prefix of the whole,
  cuts the text into masked/unmasked pieces, encodes the pieces (of the whole batch in one call of the
  Rust tokenizer) and checks that each piece's ids decode back to it;
- **nemotron, one call per record**: `render_with_mask(messages, tools, template, tokenizer)` per
  record (the same results, one conversation at a time);
- **transformers, plain**: `tokenizer.apply_chat_template(messages, tools=tools, chat_template=<nano3>,
  tokenize=True)` per record: one render and one tokenization, no loss mask;
- **transformers, with mask**: the same with `return_dict=True, return_assistant_tokens_mask=True`,
  transformers' own assistant mask. The nano3 template has no `{% generation %}` block, and on it
  transformers only warns and returns an all-zero mask; so this variant runs on a copy of the nano3
  template that this script makes by wrapping what an assistant message writes (content, tool calls,
  `<|im_end|>\\n`) in `{% generation %}...{% endgeneration %}`. The script checks that the copy
  renders the same text as the original and counts the records whose ids and mask equal nemotron's.

tokens/s counts the ids produced (the same for all when they agree, which is printed), and
conversations/s the records. The goal line compares nemotron (the worker's batches) with the plain loop
("SFT data prep throughput next to transformers' apply_chat_template + tokenization loop on the same
data: goal at least equal"); the ratios of the one-call-per-record loop and to the masked variant are
printed too.

**Stage end to end** (skipped with `--skip-stage`): `nemotron nano3 data prep sft -c tiny
blend_path=<blend of the repeated records> workers=W` for each W of `--workers` (default 1 and 2),
each as a subprocess in its own temporary NEMOTRON_HOME with an empty env.toml; conversations/s is
the records the published artifact counts (`metadata.records`) over the wall time of the whole command
(CLI, job start, tokenizer and template load, rendering in shards, packing, Parquet, publishing).
The stage's own rate over its shards (its last `progress:` line) is printed too.

`--profile` runs nemotron's loop once more under cProfile and prints the functions with the most
cumulative time (to see what dominates).

    python benchmarks/sft_data_prep.py
    python benchmarks/sft_data_prep.py --repeat 2 --repeats 1        # quick check of the mechanics
    python benchmarks/sft_data_prep.py --profile --json benchmarks/results/sft_data_prep.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import CommandFailed, nemotron_command, write_json

REPO = Path(__file__).resolve().parents[1]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
CHAT_CORPUS = REPO / "recipes/nano3/assets/chat-tiny/train.jsonl"
ARTIFACT = "bench-sft-data"
GOAL_OURS_OVER_PLAIN = 1.0
PROGRESS_RATE = re.compile(r"progress: .* ([\d,]+) tokens/s")
# What the nano3 template writes for a message after its `<|im_start|>role\n` header: wrapped in
# {% generation %} for assistant messages in the copy used by the "with mask" baseline.
BODY_START = "        {%- if message.content is string %}"
BODY_END = "        {{- '<|im_end|>\\n' }}\n"


def load_records(repeat: int) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in CHAT_CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return records * repeat


def generation_template(text: str) -> str:
    """The nano3 template with each assistant message's body inside {% generation %} (same rendered text)."""
    start = text.index(BODY_START)
    end = text.index(BODY_END, start) + len(BODY_END)
    body = text[start:end]
    return (
        text[:start]
        + "        {%- if message.role == 'assistant' %}\n        {%- generation %}\n"
        + body
        + "        {%- endgeneration %}\n        {%- else %}\n"
        + body
        + "        {%- endif %}\n"
        + text[end:]
    )


def check_generation_template(records: list[dict], tokenizer, template, tagged: str) -> dict[str, int]:
    """Records (of one copy of the corpus) on which the tagged copy renders the same text, ids and mask as ours."""
    from nemotron.data.chat_template import render_with_mask

    same_text = same_ids = same_mask = 0
    for record in records:
        messages, tools = record["messages"], record.get("tools")
        plain = tokenizer.apply_chat_template(messages, tools=tools, chat_template=template.text, tokenize=False)
        copy = tokenizer.apply_chat_template(messages, tools=tools, chat_template=tagged, tokenize=False)
        same_text += plain == copy
        hf = tokenizer.apply_chat_template(
            messages,
            tools=tools,
            chat_template=tagged,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ours = render_with_mask(messages, tools, template, tokenizer)
        if isinstance(ours, str):
            continue
        same_ids += list(hf["input_ids"]) == ours.input_ids.tolist()
        same_mask += list(hf["assistant_masks"]) == ours.loss_mask.tolist()
    return {"records": len(records), "same_text": same_text, "same_ids": same_ids, "same_mask": same_mask}


# --- the three loops: each returns (tokens, loss tokens or None, records that failed) ---------------


def ours_loop(records: list[dict], tokenizer, template) -> tuple[int, int | None, int]:
    """What a shard worker does with its records: `render_batch_with_mask`, RENDER_BATCH records at a time."""
    from nemotron.data.chat_template import render_batch_with_mask
    from nemotron.data.sft_shard import RENDER_BATCH

    tokens = loss = failed = 0
    for start in range(0, len(records), RENDER_BATCH):
        batch = [(record["messages"], record.get("tools")) for record in records[start : start + RENDER_BATCH]]
        for result in render_batch_with_mask(batch, template, tokenizer):
            if isinstance(result, str):
                failed += 1
                continue
            tokens += len(result.input_ids)
            loss += int(result.loss_mask.sum())
    return tokens, loss, failed


def ours_single_loop(records: list[dict], tokenizer, template) -> tuple[int, int | None, int]:
    from nemotron.data.chat_template import render_with_mask

    tokens = loss = failed = 0
    for record in records:
        result = render_with_mask(record["messages"], record.get("tools"), template, tokenizer)
        if isinstance(result, str):
            failed += 1
            continue
        tokens += len(result.input_ids)
        loss += int(result.loss_mask.sum())
    return tokens, loss, failed


def plain_loop(records: list[dict], tokenizer, template) -> tuple[int, int | None, int]:
    tokens = 0
    for record in records:
        out = tokenizer.apply_chat_template(
            record["messages"], tools=record.get("tools"), chat_template=template.text, tokenize=True
        )
        ids = out["input_ids"] if hasattr(out, "keys") else out  # a BatchEncoding (transformers 5) or a list
        tokens += len(ids)
    return tokens, None, 0


def masked_loop(records: list[dict], tokenizer, tagged: str) -> tuple[int, int | None, int]:
    tokens = loss = 0
    for record in records:
        out = tokenizer.apply_chat_template(
            record["messages"],
            tools=record.get("tools"),
            chat_template=tagged,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        tokens += len(out["input_ids"])
        loss += sum(out["assistant_masks"])
    return tokens, loss, 0


def measure_loops(
    loops: list[tuple[str, str, Callable[[list[dict]], tuple]]], records: list[dict], repeats: int, chunk: int
) -> list[dict]:
    """Each loop `repeats` times over `records`, the fastest run of each. A run goes chunk by chunk, every loop
    taking each chunk in turn (in the order of the loops, reversed every other chunk and repeat); a loop's run time
    is the sum of its chunks' times and its counts the sums of its chunks' counts."""
    results = [{"name": name, "label": label, "seconds": float("inf"), "runs": []} for name, label, _ in loops]
    starts = range(0, len(records), chunk)
    for r in range(repeats):
        totals = [[0.0, 0, 0, 0] for _ in loops]  # seconds, tokens, loss tokens, failed
        for c, start in enumerate(starts):
            part = records[start : start + chunk]
            order = list(range(len(loops)))
            if (r + c) % 2:
                order.reverse()
            for i in order:
                started = time.perf_counter()
                tokens, loss, failed = loops[i][2](part)
                seconds = time.perf_counter() - started
                total = totals[i]
                total[0] += seconds
                total[1] += tokens
                total[2] = None if loss is None else total[2] + loss
                total[3] += failed
        for res, (seconds, tokens, loss, failed) in zip(results, totals, strict=True):
            res["runs"].append(seconds)
            res.update(tokens=tokens, loss_tokens=loss, failed=failed)
            res["seconds"] = min(res["seconds"], seconds)
        print(
            f"  repeat {r + 1}/{repeats}: " + "   ".join(f"{res['name']} {res['runs'][-1]:.2f} s" for res in results),
            flush=True,
        )
    for res in results:
        res["conversations_per_s"] = len(records) / res["seconds"]
        res["tokens_per_s"] = res["tokens"] / res["seconds"]
    return results


def profile_ours(records: list[dict], tokenizer, template, top: int = 22) -> str:
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    ours_loop(records, tokenizer, template)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- the stage end to end ------------------------------------------------------------------------------


def measure_stage(corpus: Path, workers: int, tokenizer: Path, tmp: Path, timeout: float, environ: dict) -> dict:
    """`nemotron nano3 data prep sft -c tiny` on the repeated records, in a fresh NEMOTRON_HOME, with the
    environment `environ` (this script's as it started)."""
    folder = tmp / f"stage-workers{workers}"
    home, workdir, env_file, blend = folder / "home", folder / "cwd", folder / "env.toml", folder / "blend.json"
    workdir.mkdir(parents=True)
    env_file.write_text("")
    blend.write_text(
        json.dumps({"datasets": [{"name": "chat-tiny", "path": str(corpus), "text_field": "messages", "weight": 1.0}]})
    )
    env = {k: v for k, v in environ.items() if k != "NEMOTRON_ARTIFACTS_ROOT"}
    env.update(NEMOTRON_HOME=str(home), NEMOTRON_ENV_FILE=str(env_file))
    cmd = nemotron_command() + [
        "nano3",
        "data",
        "prep",
        "sft",
        "-c",
        "tiny",
        f"blend_path={blend}",
        f"tokenizer.name_or_path={tokenizer}",
        f"artifact_name={ARTIFACT}",
        f"workers={workers}",
    ]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from exc
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise CommandFailed(
            f"exit status {proc.returncode}: {shlex.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout.rstrip()}\n--- stderr ---\n{proc.stderr.rstrip()}"
        )
    metadata = json.loads((home / "artifacts" / ARTIFACT / "v1" / "artifact.json").read_text())["metadata"]
    splits = metadata["splits"]
    records = int(metadata["records"])
    tokens = sum(int(s.get("tokens", 0)) for s in splits.values())
    rates = PROGRESS_RATE.findall(proc.stdout + proc.stderr)
    return {
        "label": f"stage end to end, workers={workers}",
        "command": cmd,
        "workers": workers,
        "seconds": seconds,
        "records": records,
        "bad_records": metadata.get("bad_records"),
        "tokens": tokens,
        "conversations_per_s": records / seconds,
        "tokens_per_s": tokens / seconds,
        "shard_tokens_per_s": float(rates[-1].replace(",", "")) if rates else None,
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("transformers", "tokenizers", "jinja2", "nemotron"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="copies of the 3,000 tiny chat records (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each in-process loop; the fastest counts")
    parser.add_argument("--chunk", type=int, default=1024, help="records per turn of each loop within a run")
    parser.add_argument("--tokenizer", type=Path, default=TINY_TOKENIZER, help="a Hugging Face tokenizer folder")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts for the stage end to end (default: 1,2)"
    )
    parser.add_argument("--skip-stage", action="store_true", help="measure the in-process loops only")
    parser.add_argument("--profile", action="store_true", help="also profile nemotron's loop once (cProfile)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a stage run counts as failed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary corpus and NEMOTRON_HOMEs")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error("--workers takes comma-separated integers, e.g. 1,2")
    if args.repeat < 1 or args.repeats < 1 or args.chunk < 1 or any(w < 1 for w in workers):
        parser.error("need --repeat >= 1, --repeats >= 1, --chunk >= 1 and workers >= 1")
    stage_environ = dict(os.environ)  # the stage runs as it would from this shell
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as in the stage's workers (shard_runner)

    warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).*not installed")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from nemotron.data.chat_template import load_chat_template

    tokenizer_dir = args.tokenizer.expanduser().resolve()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    template = load_chat_template("nano3", str(tokenizer_dir))
    tagged = generation_template(template.text)
    records = load_records(args.repeat)
    print(f"python:   {sys.executable} ({platform.python_version()}), {os.cpu_count()} CPUs")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"env:      TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}")
    print(
        f"data:     {CHAT_CORPUS.relative_to(REPO)} x {args.repeat} = {len(records):,} conversations; "
        f"tokenizer {tokenizer_dir} ({len(tokenizer):,} tokens, {type(tokenizer).__name__})"
    )
    print(
        f"template: nano3 (sha256 {template.template_hash[:12]}); "
        f"{'has' if '{% generation' in template.text or '{%- generation' in template.text else 'no'} "
        "{% generation %} block, so the masked baseline uses a tagged copy",
        flush=True,
    )

    check = check_generation_template(records[: len(records) // args.repeat], tokenizer, template, tagged)
    print(
        f"tagged copy vs nano3 on {check['records']:,} records: same text {check['same_text']:,}, "
        f"same ids as nemotron {check['same_ids']:,}, same mask as nemotron {check['same_mask']:,}"
    )

    hf_logging.set_verbosity_error()  # apply_chat_template's per-call notices would flood the output
    print(f"\nIn-process loops, best of {args.repeats}, in turns of {args.chunk:,} records:", flush=True)
    loops = [
        ("nemotron", "nemotron render_batch_with_mask (worker)", lambda part: ours_loop(part, tokenizer, template)),
        (
            "per-record",
            "nemotron render_with_mask, one call per record",
            lambda part: ours_single_loop(part, tokenizer, template),
        ),
        (
            "plain",
            "transformers apply_chat_template(tokenize=True)",
            lambda part: plain_loop(part, tokenizer, template),
        ),
        (
            "masked",
            "transformers, return_assistant_tokens_mask",
            lambda part: masked_loop(part, tokenizer, tagged),
        ),
    ]
    results = measure_loops(loops, records, args.repeats, args.chunk)
    ours, single, plain, masked = results

    stages: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="nemotron-bench-sft-prep-"))
    try:
        if not args.skip_stage:
            corpus = tmp / "chat.jsonl"
            with corpus.open("w", encoding="utf-8") as out:
                for record in records:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
            for w in workers:
                print(f"  running the stage with workers={w} ...", flush=True)
                try:
                    stages.append(measure_stage(corpus, w, tokenizer_dir, tmp, args.timeout, stage_environ))
                except CommandFailed as exc:
                    print(f"\nERROR: {exc}", file=sys.stderr)
                    return 1
        profile = profile_ours(records[: len(records) // args.repeat], tokenizer, template) if args.profile else None
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n  {'measurement':<52}{'seconds':>9}{'conv/s':>10}{'tokens':>12}{'tokens/s':>12}{'loss tokens':>13}")
    for res in [*results, *stages]:
        loss = res.get("loss_tokens")
        print(
            f"  {res['label']:<52}{res['seconds']:9.2f}{res['conversations_per_s']:10,.0f}{res['tokens']:12,}"
            f"{res['tokens_per_s']:12,.0f}{(f'{loss:,}' if loss is not None else '-'):>13}"
        )
    for stage in stages:
        if stage["shard_tokens_per_s"]:
            print(
                f"  {stage['label']}: the stage's own rate over its shards {stage['shard_tokens_per_s']:,.0f} tokens/s"
            )
    same_tokens = ours["tokens"] == single["tokens"] == plain["tokens"] == masked["tokens"]
    same_loss = ours["loss_tokens"] == single["loss_tokens"] == masked["loss_tokens"]
    print(
        f"  token counts agree: {'yes' if same_tokens else 'NO'}; loss tokens agree (nemotron, transformers mask): "
        f"{'yes' if same_loss else 'NO'}; nemotron failures {ours['failed']} (one call per record {single['failed']})"
    )
    ratio_plain = plain["seconds"] / ours["seconds"]
    ratio_single = plain["seconds"] / single["seconds"]
    ratio_masked = masked["seconds"] / ours["seconds"]
    print(f"\n  ratio nemotron / transformers plain (conversations/s): {ratio_plain:.3f}x")
    print(f"  ratio nemotron one call per record / transformers plain: {ratio_single:.3f}x")
    print(f"  ratio nemotron / transformers with assistant mask:     {ratio_masked:.3f}x")
    for stage in stages:
        stage_ratio = stage["conversations_per_s"] / plain["conversations_per_s"]
        print(f"  ratio {stage['label']} / transformers plain (conversations/s): {stage_ratio:.3f}x")
    verdict = "PASS" if ratio_plain >= GOAL_OURS_OVER_PLAIN else "MISS"
    print(
        f"goal: nemotron render+mask at least {GOAL_OURS_OVER_PLAIN:.1f}x transformers' apply_chat_template + "
        f"tokenization loop: {verdict}"
    )
    if profile:
        print(f"\ncProfile of nemotron's loop on {len(records) // args.repeat:,} records (cumulative):\n{profile}")

    if args.json:
        payload = {
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "versions": versions(),
            "repeat": args.repeat,
            "repeats": args.repeats,
            "chunk": args.chunk,
            "tokenizers_parallelism": os.environ["TOKENIZERS_PARALLELISM"],
            "conversations": len(records),
            "tagged_template_check": check,
            "loops": results,
            "stages": stages,
            "ratio_ours_over_plain": ratio_plain,
            "ratio_ours_one_call_per_record_over_plain": ratio_single,
            "ratio_ours_over_masked": ratio_masked,
            "goal": {"ours_over_plain_at_least": GOAL_OURS_OVER_PLAIN, "verdict": verdict},
            "profile": profile,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
