"""Reward verifiers: the built-ins on real replies, user verifiers by `module:function`, failures that never raise."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path

import pytest

from nemotron.data.errors import DataError
from nemotron.data.verifiers import (
    BUILTIN_VERIFIERS,
    Score,
    VerifierError,
    check_verifier_names,
    exact_match,
    final_answer,
    format_match,
    resolve_verifier,
    score,
)

HAS_MATH_VERIFY = importlib.util.find_spec("math_verify") is not None
TINY_REPLY = "7+8=15, 4+3+1=8, so 47+38=85"


# ---- exact_match -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        (TINY_REPLY, "85"),
        ("14-9=5, 8-1-1=6, so 84-19=65<|im_end|>", "65"),
        ("so 47+38=85.", "85"),
        ("so 47+38 = 85 <|im_end|>\n", "85"),
        ("os.path", "os.path"),
        ("  json  ", "json"),
        ("a=b=c", "c"),
        ("", ""),
    ],
)
def test_final_answer_is_the_text_after_the_last_equals_sign(reply, answer):
    assert final_answer(reply) == answer


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (TINY_REPLY, "85"),
        (TINY_REPLY + "<|im_end|>", "85"),
        (TINY_REPLY + ".", "85"),
        ("so 47+38=85.0", "85"),
        ("so 47+38= 85 ", " 85"),
        ("so 600+400=1,000", "1000"),
        ("= +5", "5"),
        ("= -0", "0"),
        ("= 0.50", ".5"),
        ("collections", "collections"),  # no `=`: the whole reply
        ("It is os.path.", "It is os.path"),
    ],
)
def test_exact_match_accepts_the_same_answer_written_differently(reply, expected):
    assert exact_match(reply, expected, {}) == 1.0


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("7+8=15, 4+3+1=8, so 47+38=86", "85"),
        ("7+8=15, 4+3+1=8, so 47+38=85, so 1+1=2", "85"),  # only the last `=` counts
        ("= 1,5", "15"),  # not a grouping of thousands: compared as text
        ("= -5", "5"),
        ("= 85 apples", "85"),
        ("os.path", "os"),
        ("Collections", "collections"),
    ],
)
def test_exact_match_rejects_a_different_answer(reply, expected):
    assert exact_match(reply, expected, {}) == 0.0


@pytest.fixture
def tiny_chat_records() -> list[dict]:
    path = Path(__file__).resolve().parents[2] / "recipes/nano3/assets/chat-tiny/valid.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()[:50]]


def test_exact_match_scores_the_tiny_corpus_answers(tiny_chat_records):
    scored = [exact_match(r["messages"][-1]["content"], r["expected_answer"], r) for r in tiny_chat_records]
    assert scored and all(value == 1.0 for value in scored)


# ---- format ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reward"),
    [
        (TINY_REPLY, 1.0),
        (TINY_REPLY + "<|im_end|>", 1.0),
        ("so 47+38 = 1,000.", 1.0),
        ("so 47+38=", 0.0),
        ("so 47+38=eighty-five", 0.0),
        ("85", 0.0),
        ("47+38=85 is the answer", 0.0),
    ],
)
def test_format_default_wants_a_final_equals_and_number(reply, reward):
    assert format_match(reply, "ignored", {}) == reward


def test_format_reads_its_regex_from_the_record_metadata():
    metadata = {"format_regex": r"^<answer>\d+</answer>$"}
    assert format_match("<answer>85</answer>", "", metadata) == 1.0
    assert format_match(TINY_REPLY, "", metadata) == 0.0


def test_a_bad_format_regex_fails_the_sample_not_the_step():
    result = score(BUILTIN_VERIFIERS["format"], TINY_REPLY, "85", {"format_regex": "(unclosed"})
    assert result.failed and result.reward == 0.0 and "unterminated subpattern" in result.error


# ---- math --------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_MATH_VERIFY, reason="math-verify is not installed (pip install math-verify)")
@pytest.mark.parametrize(
    ("reply", "expected", "reward"),
    [
        ("\\frac{1}{2}", "0.5", 1.0),
        ("The answer is $\\frac{1}{2}$.", "0.5", 1.0),
        ("The answer is \\boxed{85}", "85", 1.0),
        (TINY_REPLY + "<|im_end|>", "85", 1.0),
        ("The answer is $\\frac{1}{3}$", "0.5", 0.0),
        (TINY_REPLY.replace("85", "86"), "85", 0.0),
    ],
)
def test_math_compares_answers_by_value(reply, expected, reward):
    assert resolve_verifier("math")(reply, expected, {}) == reward


@pytest.mark.skipif(not HAS_MATH_VERIFY, reason="math-verify is not installed (pip install math-verify)")
def test_math_works_off_the_main_thread():
    """math-verify's own timeouts use SIGALRM, which a worker thread may not set: the verifier goes without."""
    results: list[float] = []
    worker = threading.Thread(target=lambda: results.append(resolve_verifier("math")("\\frac{1}{2}", "0.5", {})))
    worker.start()
    worker.join()
    assert results == [1.0]


def test_math_without_math_verify_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "math_verify" else real_find_spec(name, *a)
    )
    with pytest.raises(VerifierError, match="pip install math-verify"):
        resolve_verifier("math")
    result = score(BUILTIN_VERIFIERS["math"], "1", "1", {})
    assert result.failed and "pip install math-verify" in result.error


# ---- user verifiers and names ------------------------------------------------------------------


@pytest.fixture
def user_module(tmp_path, monkeypatch) -> str:
    """A module `my_rewards` on sys.path, written as a user would, with good and bad verifiers."""
    (tmp_path / "my_rewards.py").write_text(
        "def half_credit(completion, expected, metadata):\n"
        "    return 1.0 if expected in completion else 0.5 * metadata.get('partial', 0)\n"
        "def boom(completion, expected, metadata):\n"
        "    raise RuntimeError('reward server down')\n"
        "def not_a_number(completion, expected, metadata):\n"
        "    return 'yes'\n"
        "def too_big(completion, expected, metadata):\n"
        "    return 2.0\n"
        "def nan(completion, expected, metadata):\n"
        "    return float('nan')\n"
        "def boolean(completion, expected, metadata):\n"
        "    return completion == expected\n"
        "THRESHOLD = 3\n"
    )
    (tmp_path / "broken_rewards.py").write_text("import not_a_real_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_rewards"
    for name in ("my_rewards", "broken_rewards"):
        sys.modules.pop(name, None)


def test_a_user_verifier_resolves_by_module_and_function(user_module):
    verifier = resolve_verifier(f"{user_module}:half_credit")
    assert verifier(TINY_REPLY, "85", {}) == 1.0
    assert score(verifier, "no answer", "85", {"partial": 1}) == Score(0.5, False, None)


def test_builtins_resolve_by_name():
    assert resolve_verifier("exact_match") is exact_match
    assert resolve_verifier(" format ") is format_match


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("boom", "RuntimeError: reward server down"),
        ("not_a_number", "TypeError: the verifier returned str 'yes', not a number"),
        ("too_big", "ValueError: the verifier returned 2.0, outside [0, 1]"),
        ("nan", "ValueError: the verifier returned nan, outside [0, 1]"),
    ],
)
def test_a_misbehaving_verifier_scores_zero_and_failed(user_module, function, error):
    result = score(resolve_verifier(f"{user_module}:{function}"), TINY_REPLY, "85", {})
    assert result == Score(0.0, True, error)


def test_a_boolean_reward_counts_as_zero_or_one(user_module):
    verifier = resolve_verifier(f"{user_module}:boolean")
    assert score(verifier, "85", "85", {}) == Score(1.0, False, None)
    assert score(verifier, "86", "85", {}) == Score(0.0, False, None)


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("exact-match", ["unknown verifier 'exact-match'", "did you mean 'exact_match'", "exact_match, math, format"]),
        ("rouge", ["unknown verifier 'rouge'", "'package.module:function'"]),
        ("no_such_module_xyz:score", ["module 'no_such_module_xyz' cannot be imported", "PYTHONPATH"]),
        ("broken_rewards:score", ["ModuleNotFoundError", "not_a_real_package_xyz", "cannot be imported"]),
        ("my_rewards:missing", ["has no attribute 'missing'", "fix the function name"]),
        (
            "my_rewards:THRESHOLD",
            ["'THRESHOLD' is not callable (it is int)", "expected_answer, metadata)"],
        ),
        ("my_rewards:", ["not of the form 'package.module:function'"]),
        (":half_credit", ["not of the form 'package.module:function'"]),
    ],
)
def test_bad_names_say_what_is_wrong_and_the_fix(user_module, name, fragments):
    with pytest.raises(VerifierError) as raised:
        resolve_verifier(name)
    assert isinstance(raised.value, DataError)
    message = str(raised.value)
    assert name.strip() in message
    for fragment in fragments:
        assert fragment in message


def test_check_verifier_names_resolves_each_name(user_module, monkeypatch):
    import nemotron.data.verifiers as verifiers

    seen: list[str] = []
    real = verifiers.resolve_verifier
    monkeypatch.setattr(verifiers, "resolve_verifier", lambda name: seen.append(name) or real(name))
    check_verifier_names(["exact_match", f"{user_module}:half_credit", "exact_match", "format"])
    assert seen == ["exact_match", f"{user_module}:half_credit", "format"]
    with pytest.raises(VerifierError, match="unknown verifier 'exactmatch'"):
        check_verifier_names(["exact_match", "exactmatch"])
