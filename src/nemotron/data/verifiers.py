"""Reward verifiers for RL: score a completion against a record's expected answer, by name or `module:function`.

A verifier is `(completion, expected_answer, metadata) -> reward in [0, 1]`. Built-ins:

- `exact_match`: the reply's final answer (the text after its last `=`, or the whole reply when it has
  none; a trailing end-of-turn marker such as `<|im_end|>` and a trailing period dropped, whitespace
  stripped) equals the expected answer. Numbers compare as numbers (`85` = `85.0`, `1,000` = `1000`,
  `+5` = `5`, `-0` = `0`); anything else compares as stripped text.
- `math`: mathematical equivalence by the `math-verify` package (`\\frac{1}{2}` = `0.5`), an optional extra.
- `format`: 1.0 when the reply matches the record's `format_regex` (metadata; default: the reply ends with
  `= <number>`), else 0.0.

A user verifier is named `package.module:function` and resolved with importlib. `score` runs any verifier
so that a bad one costs its sample a reward of 0.0 (marked failed), never the training step.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nemotron.data.errors import DataError
from nemotron.suggest import close_matches

Verifier = Callable[[str, str, Mapping[str, Any]], float]

FORMAT_REGEX_KEY = "format_regex"
# The reply ends with `= <number>` (a trailing period and whitespace allowed): the tiny corpus's answer form.
DEFAULT_FORMAT_REGEX = r"=\s*[+-]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)\.?\s*$"

_END_OF_TURN = re.compile(r"(?:<\|[^<>|\s]+\|>|</s>)\s*$")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:,\d{3})+|\d+)?(?:\.\d*)?")
_MATH_TIMEOUT_S = 5


class VerifierError(DataError):
    """A verifier name does not resolve to a callable; the message names it, what is wrong and the fix."""


@dataclass(frozen=True)
class Score:
    """One completion's reward; `failed` (with `error`, `Type: message`) when the verifier raised or misbehaved."""

    reward: float
    failed: bool
    error: str | None


def strip_end_of_turn(text: str) -> str:
    """`text` without trailing end-of-turn markers (`<|im_end|>`, `<|endoftext|>`, `</s>`) and whitespace."""
    text = text.rstrip()
    while (match := _END_OF_TURN.search(text)) is not None:
        text = text[: match.start()].rstrip()
    return text


def _clean(answer: str) -> str:
    """`answer` without end-of-turn markers, surrounding whitespace and one trailing period."""
    text = strip_end_of_turn(answer).strip()
    return text[:-1].rstrip() if text.endswith(".") else text


def final_answer(completion: str) -> str:
    """The text after the last `=` of a reply (the whole reply when it has none), stripped, no trailing period."""
    return _clean(completion.rsplit("=", 1)[-1])


def _normalised(answer: str) -> Decimal | str:
    """A number as a Decimal (commas of thousands dropped), anything else as stripped text."""
    text = answer.strip()
    if any(c.isdigit() for c in text) and _NUMBER.fullmatch(text):
        return Decimal(text.replace(",", ""))
    return text


def exact_match(completion: str, expected_answer: str, metadata: Mapping[str, Any]) -> float:
    """1.0 when the reply's final answer equals `expected_answer` (numbers compared as numbers), else 0.0."""
    return 1.0 if _normalised(final_answer(completion)) == _normalised(_clean(expected_answer)) else 0.0


def _require_math_verify() -> None:
    if importlib.util.find_spec("math_verify") is None:
        raise VerifierError(
            "verifier 'math' needs the math-verify package, which is not installed: "
            "pip install math-verify (or pip install 'nemotron[rl]')"
        )


def math_equivalent(completion: str, expected_answer: str, metadata: Mapping[str, Any]) -> float:
    """1.0 when math-verify finds the reply's answer equivalent to `expected_answer`, else 0.0."""
    _require_math_verify()
    from math_verify import parse, verify

    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    timeout = _MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold = parse(expected_answer, parsing_timeout=timeout)
    answer = parse(strip_end_of_turn(completion), parsing_timeout=timeout)
    return 1.0 if verify(gold, answer, timeout_seconds=timeout) else 0.0


def format_match(completion: str, expected_answer: str, metadata: Mapping[str, Any]) -> float:
    """1.0 when the reply (end-of-turn markers dropped) matches `format_regex` (re.search), else 0.0."""
    pattern = metadata.get(FORMAT_REGEX_KEY) or DEFAULT_FORMAT_REGEX
    if not isinstance(pattern, str):
        raise TypeError(f"metadata key {FORMAT_REGEX_KEY!r} must be a regex string, got {type(pattern).__name__}")
    return 1.0 if re.search(pattern, strip_end_of_turn(completion)) else 0.0


BUILTIN_VERIFIERS: dict[str, Verifier] = {
    "exact_match": exact_match,
    "math": math_equivalent,
    "format": format_match,
}


def _unknown(name: str) -> VerifierError:
    hint = close_matches(name, BUILTIN_VERIFIERS)
    did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
    return VerifierError(
        f"unknown verifier {name!r}{did_you_mean}: use a built-in ({', '.join(BUILTIN_VERIFIERS)}) "
        "or your own function as 'package.module:function'"
    )


def _user_verifier(name: str) -> Verifier:
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise VerifierError(
            f"verifier {name!r} is not of the form 'package.module:function': name both the module and the function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or whatever the module raises as it runs (SyntaxError, ...)
        raise VerifierError(
            f"verifier {name!r}: module {module_name!r} cannot be imported ({type(err).__name__}: {err}); "
            "install it or put its folder on PYTHONPATH"
        ) from err
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise VerifierError(
                f"verifier {name!r}: module {module_name!r} has no attribute {attribute!r}; "
                "fix the function name after ':'"
            )
        target = getattr(target, part)
    if not callable(target):
        raise VerifierError(
            f"verifier {name!r}: {attribute!r} is not callable (it is {type(target).__name__}); name a function "
            "(completion, expected_answer, metadata) -> float"
        )
    return target


def resolve_verifier(name: str) -> Verifier:
    """The verifier called `name`: a built-in, or a `module:function` imported here; VerifierError otherwise."""
    name = name.strip()
    if name in BUILTIN_VERIFIERS:
        if name == "math":
            _require_math_verify()
        return BUILTIN_VERIFIERS[name]
    if ":" not in name:
        raise _unknown(name)
    return _user_verifier(name)


def check_verifier_names(names: Iterable[str]) -> None:
    """Resolve each distinct name once (a launch-time check); the first that fails raises VerifierError."""
    for name in dict.fromkeys(names):
        resolve_verifier(name)


def score(verifier: Verifier, completion: str, expected: str, metadata: Mapping[str, Any]) -> Score:
    """Run `verifier`; an exception, a non-number, NaN or a reward outside [0, 1] scores 0.0, failed."""
    try:
        reward: object = verifier(completion, expected, metadata)  # typed float, but a user's may return anything
    except Exception as err:  # a user's verifier may raise anything: one sample fails, not the step
        return Score(0.0, True, f"{type(err).__name__}: {err}")
    if not isinstance(reward, numbers.Real):
        return Score(0.0, True, f"TypeError: the verifier returned {type(reward).__name__} {reward!r}, not a number")
    value = float(reward)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        return Score(0.0, True, f"ValueError: the verifier returned {value!r}, outside [0, 1]")
    return Score(value, False, None)
