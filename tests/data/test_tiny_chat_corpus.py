"""The shipped tiny SFT chat corpus and RL prompts (recipes/nano3/assets/{chat,rl}-tiny): generated, well formed,
held out, correct."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron.data.blend_spec import load_blend_spec

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_tiny_chat_corpus.py"
CHAT = REPO / "recipes" / "nano3" / "assets" / "chat-tiny"
RL = REPO / "recipes" / "nano3" / "assets" / "rl-tiny"
LIBRARY = REPO / "recipes" / "nano3" / "assets" / "corpus-tiny" / "python-library.jsonl"
SPLITS = ("train", "valid", "test")

# "7+8=15, 4+3+1=8, so 47+38=85": units, tens with the carry (or borrow), the result
ANSWER_RE = re.compile(r"^(\d+)([+-])(\d)=(\d+), (\d)[+-](\d)[+-]([01])=(-?\d+), so (\d+)([+-])(\d+)=(\d+)$")
MODULE_RE = re.compile(r'^Which Python module is documented as "(.+)"\?$')


def _records(split: str, folder: Path = CHAT) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def _problems(record: dict) -> set[tuple[str, int, int]]:
    """The arithmetic problems a record answers; addition as an unordered pair."""
    found = set()
    for message in record["messages"]:
        match = ANSWER_RE.match(message["content"]) if message["role"] == "assistant" else None
        if match:
            a, op, b = int(match[9]), match[10], int(match[11])
            found.add((op, *sorted((a, b))) if op == "+" else (op, a, b))
    return found


def _user_turns(record: dict) -> set[str]:
    return {m["content"] for m in record["messages"] if m["role"] == "user"}


def test_shipped_files_equal_the_generator_output():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_mode_fails_on_a_stale_file(tmp_path):
    folders = ("--out-dir", str(tmp_path / "chat"), "--rl-out-dir", str(tmp_path / "rl"))
    subprocess.run([sys.executable, str(SCRIPT), *folders], check=True, capture_output=True)
    for stale in ("chat", "rl"):
        with (tmp_path / stale / "test.jsonl").open("a") as f:
            f.write("{}\n")
        done = subprocess.run([sys.executable, str(SCRIPT), "--check", *folders], capture_output=True, text=True)
        assert done.returncode == 1
        assert f"{tmp_path / stale}: out of date: test.jsonl" in done.stderr


@pytest.mark.parametrize("split", SPLITS)
def test_records_are_openai_chats_ending_in_the_expected_answer(split):
    records = _records(split)
    assert 100 <= len(records) <= 5000
    for record in records:
        assert set(record) == {"messages", "expected_answer", "verifier"}, record
        assert record["verifier"] == "exact_match"
        messages = record["messages"]
        roles = [m["role"] for m in messages]
        if roles[0] == "system":
            roles = roles[1:]
        assert roles and roles == ["user", "assistant"] * (len(roles) // 2), record
        for message in messages:
            assert set(message) == {"role", "content"}
            assert isinstance(message["content"], str) and message["content"] == message["content"].strip() != ""
        last = messages[-1]["content"]
        assert record["expected_answer"] == (last.rsplit("=", 1)[1] if "=" in last else last)  # the final answer


@pytest.mark.parametrize("split", SPLITS)
def test_answers_are_correct(split):
    titles = {}  # description -> module, from the library pages' title lines
    for line in LIBRARY.read_text(encoding="utf-8").splitlines():
        first = json.loads(line)["text"].split("\n", 1)[0]
        match = re.match(r"^`([\w.]+)`(?: —| --|:) (.+)$", first)
        if match:
            titles[match[2]] = match[1]
    arithmetic = 0
    for record in _records(split):
        messages = [m for m in record["messages"] if m["role"] != "system"]
        for question, answer in zip(messages[::2], messages[1::2], strict=True):
            module = MODULE_RE.match(question["content"])
            if module:
                assert titles[module[1]] == answer["content"]
                continue
            match = ANSWER_RE.match(answer["content"])
            assert match, answer
            a, op, b, result = int(match[9]), match[10], int(match[11]), int(match[12])
            assert 10 <= a <= 99 and 10 <= b <= 99
            assert result == (a + b if op == "+" else a - b)
            _assert_worked_steps(match, a, op, b)
            assert re.search(rf"\b{a} (\{op}|{'plus' if op == '+' else 'minus'}) {b}\b", question["content"]), question
            arithmetic += 1
    assert arithmetic >= 0.9 * len(_records(split))


def _assert_worked_steps(match: re.Match, a: int, op: str, b: int) -> None:
    """Every step of a worked answer is true: units (with a borrow of 10), then tens with the carry/borrow."""
    (ta, ua), (tb, ub) = divmod(a, 10), divmod(b, 10)
    units_a, units_op, units_b, units = int(match[1]), match[2], int(match[3]), int(match[4])
    tens_a, tens_b, carry, tens = int(match[5]), int(match[6]), int(match[7]), int(match[8])
    assert units_op == op and (tens_a, tens_b, units_b) == (ta, tb, ub)
    if op == "+":
        assert units_a == ua and units == ua + ub and carry == units // 10 and tens == ta + tb + carry
        assert tens * 10 + units % 10 == a + b
    else:
        assert carry == int(ua < ub) and units_a == ua + 10 * carry and units == units_a - ub
        assert tens == ta - tb - carry and tens * 10 + units == a - b


def test_valid_and_test_questions_are_held_out_from_train():
    train = _records("train")
    train_problems = set().union(*map(_problems, train))
    train_questions = set().union(*map(_user_turns, train))
    seen: set = set()
    for split in ("valid", "test"):
        records = _records(split)
        problems = set().union(*map(_problems, records))
        questions = set().union(*map(_user_turns, records))
        assert problems and not problems & train_problems, split
        assert not problems & seen, "valid and test share problems"
        assert not {q for q in questions if MODULE_RE.match(q)} & train_questions, split
        seen |= problems


def test_blend_lists_the_training_file():
    blend = load_blend_spec(CHAT / "blend.json")
    assert [(d.name, Path(d.path), d.text_field) for d in blend.datasets] == [
        ("chat-tiny", (CHAT / "train.jsonl").resolve(), "messages")
    ]


QUESTION_RE = re.compile(r"^(?:What is |Compute )?(\d+) (\+|-|plus|minus) (\d+)(?:\?|\.| = \?)$")


def _rl_problem(record: dict) -> tuple[str, int, int]:
    """The problem an RL prompt asks, as `_problems` gives it; checks the prompt's form and expected answer."""
    *system, user = record["messages"]
    assert [m["role"] for m in system] in ([], ["system"]) and user["role"] == "user", record
    match = QUESTION_RE.match(user["content"])
    assert match, user
    a, op, b = int(match[1]), {"plus": "+", "minus": "-"}.get(match[2], match[2]), int(match[3])
    assert 10 <= a <= 99 and 10 <= b <= 99
    assert record["expected_answer"] == str(a + b if op == "+" else a - b) and int(record["expected_answer"]) >= 0
    return (op, *sorted((a, b))) if op == "+" else (op, a, b)


def test_rl_prompts_are_questions_without_replies_held_out_from_every_chat_problem():
    chat = set().union(*(set().union(*map(_problems, _records(split))) for split in SPLITS))
    system_prompts = {m["content"] for r in _records("train") for m in r["messages"] if m["role"] == "system"}
    seen: set = set()
    for split in SPLITS:
        records = _records(split, RL)
        assert 100 <= len(records) <= 5000
        problems = set()
        for record in records:
            assert set(record) == {"messages", "expected_answer", "verifier"} and record["verifier"] == "exact_match"
            assert {m["content"] for m in record["messages"][:-1]} <= system_prompts
            problems.add(_rl_problem(record))
        assert len(problems) == len(records), f"{split}: a problem asked twice"
        assert not problems & chat, f"{split}: problems of chat-tiny"
        assert not problems & seen, f"{split}: problems of another RL split"
        seen |= problems
    assert len(seen) == 4000


def test_rl_blend_lists_the_prompt_file():
    blend = load_blend_spec(RL / "blend.json")
    assert [(d.name, Path(d.path), d.text_field) for d in blend.datasets] == [
        ("rl-tiny", (RL / "train.jsonl").resolve(), "messages")
    ]
