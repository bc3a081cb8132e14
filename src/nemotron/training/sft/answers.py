"""Greedy answers to held-out chat prompts after fine-tuning, scored by exact match with the reference answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nemotron.data.packing import PackedRow


@dataclass(frozen=True)
class HeldOutPrompt:
    """A conversation cut before its last assistant turn: the prompt's ids and the reference answer's ids."""

    prompt_ids: list[int]
    reference_ids: list[int]


@dataclass(frozen=True)
class Answer:
    prompt: str
    reference: str
    answer: str
    exact: bool


def _last_target_run(mask: np.ndarray) -> tuple[int, int] | None:
    """[start, end) of the last run of loss-mask 1 tokens (the last assistant turn), or None."""
    ones = np.flatnonzero(mask)
    if not len(ones):
        return None
    end = int(ones[-1]) + 1
    start = end - 1
    while start > 0 and mask[start - 1]:
        start -= 1
    return start, end


def held_out_prompts(rows: Sequence[PackedRow], count: int) -> list[HeldOutPrompt]:
    """The first `count` documents of `rows` that have a prompt and a last assistant turn."""
    found: list[HeldOutPrompt] = []
    for row in rows:
        for start, end in row.documents():
            ids, mask = row.input_ids[start:end], row.loss_mask[start:end]
            span = _last_target_run(mask)
            if span is None or span[0] == 0:
                continue
            found.append(HeldOutPrompt(ids[: span[0]].tolist(), ids[span[0] : span[1]].tolist()))
            if len(found) == count:
                return found
    return found


def greedy_answers(
    model: Any,
    prompts: Sequence[HeldOutPrompt],
    decode: Any,
    *,
    vocab_size: int,
    max_length: int,
    max_new_tokens: int,
    device: Any,
) -> list[Answer]:
    """Each prompt's greedy continuation as long as its reference (whose end holds the end-of-turn marker),
    so an exact answer is one that also ends where the reference does."""
    from nemotron.training.model.generate import greedy_tokens

    answers = []
    for prompt in prompts:
        budget = min(len(prompt.reference_ids), max_new_tokens, max_length - len(prompt.prompt_ids))
        new = (
            greedy_tokens(
                model,
                prompt.prompt_ids,
                budget,
                vocab_size=vocab_size,
                max_length=max_length,
                device=device,
            )
            if budget > 0
            else []
        )
        answers.append(
            Answer(decode(prompt.prompt_ids), decode(prompt.reference_ids), decode(new), new == prompt.reference_ids)
        )
    return answers


def exact_match(answers: Sequence[Answer]) -> float:
    return sum(a.exact for a in answers) / len(answers) if answers else float("nan")
