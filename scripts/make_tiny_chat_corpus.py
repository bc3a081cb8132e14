"""Generate the tiny SFT chat corpus and RL prompt set of the nano3 "tiny" recipe (recipes/nano3/assets/).

Deterministic (fixed seed, no external data): mostly two-digit addition and subtraction questions
answered in one fixed, worked format ("What is 47 + 38?" -> "7+8=15, 4+3+1=8, so 47+38=85"), a few
two-turn conversations,
a system prompt in some records, and a small share of "which module is documented as ..."
questions taken mechanically from the title lines of the tiny pretraining corpus. The problems of
valid/test never occur in train (addition is matched as an unordered pair), nor do their module
facts. Each record is one OpenAI-style chat plus `expected_answer` (the final assistant reply) and
`verifier` for the RL stage.

The RL prompts (recipes/nano3/assets/rl-tiny/) are two-digit problems of the same kinds, phrasings and
system prompts, as a user turn with no reply, drawn from the problems chat-tiny leaves unused: no RL
problem occurs in any chat-tiny split, nor in another RL split.

    python scripts/make_tiny_chat_corpus.py           # (re)write the files
    python scripts/make_tiny_chat_corpus.py --check   # exit 1 if the shipped files differ
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "recipes" / "nano3" / "assets"
DEFAULT_OUT = ASSETS / "chat-tiny"
DEFAULT_RL_OUT = ASSETS / "rl-tiny"
LIBRARY_CORPUS = ASSETS / "corpus-tiny" / "python-library.jsonl"

SEED = 1234
SPLIT_SIZES = {"test": 200, "valid": 200, "train": 3000}  # records; eval splits draw their problems first
HELD_OUT_FACTS = 8  # module questions per eval split; train gets the rest
MULTI_TURN_SHARE = 0.05
SYSTEM_SHARE = 0.25
RL_SEED = SEED + 1
RL_SPLIT_SIZES = {"test": 200, "valid": 200, "train": 3600}  # prompts
VERIFIER = "exact_match"  # the reply's final answer (after its last "=", else the reply) equals expected_answer

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer briefly.",
    "You are a careful assistant that answers arithmetic questions exactly.",
)
QUESTIONS = ("What is {a} {op} {b}?", "What is {a} {word} {b}?", "Compute {a} {op} {b}.", "{a} {op} {b} = ?")
FOLLOW_UPS = ("And {a} {op} {b}?", "Now compute {a} {op} {b}.")
MODULE_QUESTION = 'Which Python module is documented as "{desc}"?'
OP_WORDS = {"+": "plus", "-": "minus"}
# A library page's first line: "`heapq` — Heap queue algorithm" (also "--" or ":" as separator).
TITLE_RE = re.compile(r"^`([a-z_][\w.]*)`(?: —| --|:) ([^`]+)$")

Problem = tuple[str, int, int]  # (op, a, b): addition with a <= b (either order is asked), subtraction a >= b
Message = dict[str, str]
Record = dict[str, Any]


def all_problems() -> list[Problem]:
    """Every two-digit problem once: a + b as an unordered pair, a - b with a non-negative result."""
    numbers = range(10, 100)
    return [("+", a, b) for a in numbers for b in numbers if a <= b] + [
        ("-", a, b) for a in numbers for b in numbers if a >= b
    ]


def module_facts(corpus: Path = LIBRARY_CORPUS) -> list[tuple[str, str]]:
    """(module, description) from the title lines of the library pages; descriptions are unique."""
    facts: dict[str, str] = {}
    for line in corpus.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        if not doc["id"].endswith("#0"):
            continue
        match = TITLE_RE.match(doc["text"].split("\n", 1)[0])
        if match and match.group(2) not in facts:
            facts[match.group(2)] = match.group(1)
    return sorted((module, desc) for desc, module in facts.items())


def worked_answer(op: str, a: int, b: int) -> str:
    """The answer, worked digit by digit: units, then tens with the carry (or borrow), then the result.

    "7+8=15, 4+3+1=8, so 47+38=85" and "14-9=5, 8-1-1=6, so 84-19=65": every step is a one-digit fact
    a tiny model can learn from a few thousand examples, where the result alone is not.
    """
    (ta, ua), (tb, ub) = divmod(a, 10), divmod(b, 10)
    if op == "+":
        units = ua + ub
        carry = units // 10
        return f"{ua}+{ub}={units}, {ta}+{tb}+{carry}={ta + tb + carry}, so {a}+{b}={a + b}"
    borrow = int(ua < ub)
    units = ua + 10 * borrow
    return f"{units}-{ub}={units - ub}, {ta}-{tb}-{borrow}={ta - tb - borrow}, so {a}-{b}={a - b}"


def arithmetic_turn(rng: random.Random, problem: Problem, templates: tuple[str, ...]) -> tuple[list[Message], str]:
    """One user question, its worked answer, and the result (the expected final answer)."""
    op, a, b = problem
    if op == "+" and rng.random() < 0.5:
        a, b = b, a
    result = a + b if op == "+" else a - b
    question = rng.choice(templates).format(a=a, b=b, op=op, word=OP_WORDS[op])
    turn = [{"role": "user", "content": question}, {"role": "assistant", "content": worked_answer(op, a, b)}]
    return turn, str(result)


def make_record(rng: random.Random, turns: list[Message], answer: str) -> Record:
    """A chat record: an optional system prompt, the turns, and the final answer of the last reply."""
    messages = list(turns)
    if rng.random() < SYSTEM_SHARE:
        messages.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    return {"messages": messages, "expected_answer": answer, "verifier": VERIFIER}


def make_splits(seed: int = SEED) -> dict[str, list[Record]]:
    """The records of each split; problems and module facts are drawn without replacement across splits."""
    return draw_splits(seed)[0]


def draw_splits(seed: int = SEED) -> tuple[dict[str, list[Record]], list[Problem]]:
    """The chat records of each split, and the problems left unused (in their seeded order)."""
    rng = random.Random(seed)
    problems = all_problems()
    rng.shuffle(problems)
    facts = module_facts()
    rng.shuffle(facts)
    splits: dict[str, list[Record]] = {}
    for name, size in SPLIT_SIZES.items():
        n_facts = len(facts) if name == "train" else HELD_OUT_FACTS
        split_facts, facts = facts[:n_facts], facts[n_facts:]
        n_multi = round(size * MULTI_TURN_SHARE)
        n_single = size - n_multi - len(split_facts)
        n_problems = n_single + 2 * n_multi
        if n_problems > len(problems):
            raise SystemExit(f"{name}: needs {n_problems} problems, {len(problems)} left")
        pool, problems = problems[:n_problems], problems[n_problems:]
        records = [make_record(rng, *arithmetic_turn(rng, p, QUESTIONS)) for p in pool[:n_single]]
        for first, second in zip(pool[n_single::2], pool[n_single + 1 :: 2], strict=True):
            turns, _ = arithmetic_turn(rng, first, QUESTIONS)
            more, answer = arithmetic_turn(rng, second, FOLLOW_UPS)
            records.append(make_record(rng, turns + more, answer))
        for module, desc in split_facts:
            question = {"role": "user", "content": MODULE_QUESTION.format(desc=desc)}
            records.append(make_record(rng, [question, {"role": "assistant", "content": module}], module))
        rng.shuffle(records)
        splits[name] = records
    return splits, problems


def make_rl_splits(unused: list[Problem], seed: int = RL_SEED) -> dict[str, list[Record]]:
    """RL prompts of each split: one user question (sometimes after a system prompt) with its expected answer
    and no reply, each from `unused` (the problems chat-tiny does not use), without replacement."""
    rng = random.Random(seed)
    if sum(RL_SPLIT_SIZES.values()) > len(unused):
        raise SystemExit(f"rl: needs {sum(RL_SPLIT_SIZES.values())} problems, {len(unused)} left")
    splits: dict[str, list[Record]] = {}
    for name, size in RL_SPLIT_SIZES.items():
        pool, unused = unused[:size], unused[size:]
        records = []
        for problem in pool:
            turn, answer = arithmetic_turn(rng, problem, QUESTIONS)
            records.append(make_record(rng, turn[:1], answer))  # the question only: the policy answers it
        splits[name] = records
    return splits


def _jsonl(records: list[Record]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()


def _blend(name: str) -> bytes:
    blend = {"datasets": [{"name": name, "path": "train.jsonl", "weight": 1.0, "text_field": "messages"}]}
    return (json.dumps(blend, indent=2, sort_keys=True) + "\n").encode()


def render(splits: dict[str, list[Record]]) -> dict[str, bytes]:
    """File name -> bytes of every generated file (JSONL with sorted keys, blend, README)."""
    files = {f"{name}.jsonl": _jsonl(records) for name, records in splits.items()}
    files["blend.json"] = _blend("chat-tiny")
    rows = []
    for name in ("train", "valid", "test"):
        records = splits[name]
        two_turn = sum(sum(m["role"] == "user" for m in r["messages"]) == 2 for r in records)
        system = sum(r["messages"][0]["role"] == "system" for r in records)
        module = sum(r["messages"][-2]["content"].startswith(MODULE_QUESTION[:10]) for r in records)
        size = len(files[f"{name}.jsonl"])
        rows.append(f"| `{name}.jsonl` | {len(records):,} | {two_turn:,} | {system:,} | {module} | {size:,} |")
    files["README.md"] = README.format(rows="\n".join(rows), seed=SEED).encode()
    return files


README = """\
# chat-tiny: tiny SFT chat corpus

Generated by `python scripts/make_tiny_chat_corpus.py` (seed {seed}); do not edit by hand.
`python scripts/make_tiny_chat_corpus.py --check` exits 1 if these files differ from what the script
writes. No external data: the arithmetic is synthetic and the module questions are taken from the
title lines of `../corpus-tiny/python-library.jsonl` (Python documentation, PSF License; see
`../LICENSE-PSF.txt`). The generated files are under the project's licence.

## Contents

- `train.jsonl`, `valid.jsonl`, `test.jsonl`: one conversation per line, OpenAI chat form:
  `{{"messages": [{{"role": "system", ...}}?, {{"role": "user", "content": "What is 47 + 38?"}},
  {{"role": "assistant", "content": "7+8=15, 4+3+1=8, so 47+38=85"}}], "expected_answer": "85",
  "verifier": "exact_match"}}`. `expected_answer` is the final answer of the last reply; `exact_match`
  means a reply is correct when its final answer (the text after its last `=`, or the whole reply
  when it has none), stripped of surrounding whitespace, equals `expected_answer`.
- Tasks: two-digit addition and subtraction (non-negative results), always answered worked digit by
  digit in one format: units, tens with the carry (`+0`/`+1`) or borrow (`-0`/`-1`), then the result
  (`7+8=15, 4+3+1=8, so 47+38=85`; `14-9=5, 8-1-1=6, so 84-19=65`), with a few question phrasings;
  about 5% two-turn conversations (the second question is a new problem); a system prompt in about a
  quarter of the records; and one `Which Python module is documented as "<title>"?` question per
  module title of the library corpus (answer: the module name).
- Held out: no problem of `valid`/`test` occurs in `train` (`a + b` and `b + a` count as one
  problem), and their module questions are not in `train` either (those test recall of the
  pretraining corpus and are expected to be hard for the tiny model).
- `blend.json`: the training blend (`train.jsonl`, text field `messages`), in the format of the
  pretraining blends.

| file | conversations | two-turn | system prompt | module questions | bytes |
|---|---:|---:|---:|---:|---:|
{rows}
"""


def render_rl(splits: dict[str, list[Record]]) -> dict[str, bytes]:
    """File name -> bytes of every generated RL file (JSONL with sorted keys, blend, README)."""
    files = {f"{name}.jsonl": _jsonl(records) for name, records in splits.items()}
    files["blend.json"] = _blend("rl-tiny")
    rows = []
    for name in ("train", "valid", "test"):
        records = splits[name]
        system = sum(r["messages"][0]["role"] == "system" for r in records)
        questions = [r["messages"][-1]["content"] for r in records]
        plus = sum(("+" in q or " plus " in q) for q in questions)
        size = len(files[f"{name}.jsonl"])
        rows.append(
            f"| `{name}.jsonl` | {len(records):,} | {system:,} | {plus:,} | {len(records) - plus:,} | {size:,} |"
        )
    files["README.md"] = RL_README.format(rows="\n".join(rows), seed=RL_SEED).encode()
    return files


RL_README = """\
# rl-tiny: tiny RL prompt set

Generated by `python scripts/make_tiny_chat_corpus.py` (seed {seed}), with `../chat-tiny`; do not edit
by hand. `python scripts/make_tiny_chat_corpus.py --check` exits 1 if these files differ from what the
script writes. Synthetic, no external data; under the project's licence.

## Contents

- `train.jsonl`, `valid.jsonl`, `test.jsonl`: one prompt per line, OpenAI chat form with no reply:
  `{{"messages": [{{"role": "system", ...}}?, {{"role": "user", "content": "What is 47 + 38?"}}],
  "expected_answer": "85", "verifier": "exact_match"}}`. `exact_match`: a reply is correct when its
  final answer (the text after its last `=`, or the whole reply when it has none), stripped of
  surrounding whitespace, equals `expected_answer` (as for `../chat-tiny`).
- Tasks: two-digit addition and subtraction (non-negative results), in the question phrasings and with
  the system prompts (about a quarter of the prompts) of `../chat-tiny`; no module questions.
- Held out: no problem here occurs in any split of `../chat-tiny` (`a + b` and `b + a` count as one
  problem), nor in another split here.
- `blend.json`: the RL data prep blend (`train.jsonl`, text field `messages`), as `../chat-tiny`'s;
  `nemotron nano3 data prep rl -c tiny` splits it into train/valid/test.

| file | prompts | system prompt | additions | subtractions | bytes |
|---|---:|---:|---:|---:|---:|
{rows}
"""


def _stale(out_dir: Path, files: dict[str, bytes]) -> list[str]:
    return [n for n, data in files.items() if not (out_dir / n).is_file() or (out_dir / n).read_bytes() != data]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="chat corpus folder (default: %(default)s)")
    parser.add_argument(
        "--rl-out-dir", type=Path, default=DEFAULT_RL_OUT, help="RL prompt folder (default: %(default)s)"
    )
    parser.add_argument("--check", action="store_true", help="compare with the files in the folders, write nothing")
    args = parser.parse_args(argv)
    splits, unused = draw_splits()
    outputs = {args.out_dir: render(splits), args.rl_out_dir: render_rl(make_rl_splits(unused))}
    if args.check:
        code = 0
        for out_dir, files in outputs.items():
            stale = _stale(out_dir, files)
            if stale:
                print(f"{out_dir}: out of date: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
                code = 1
            else:
                print(f"{out_dir}: up to date ({len(files)} files)")
        return code
    for out_dir, files in outputs.items():
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (out_dir / name).write_bytes(data)
        print(f"wrote {len(files)} files to {out_dir} ({sum(map(len, files.values())):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
