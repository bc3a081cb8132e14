"""Held-out prompts are cut before the last assistant turn; answers are greedy and scored by exact match."""

from __future__ import annotations

import numpy as np

from nemotron.data.packing import PackedRow
from nemotron.training.sft.answers import Answer, exact_match, held_out_prompts


def packed(*documents: tuple[list[int], list[int]]) -> PackedRow:
    ids = np.concatenate([np.asarray(d[0], dtype=np.int32) for d in documents])
    mask = np.concatenate([np.asarray(d[1], dtype=np.uint8) for d in documents])
    starts = np.cumsum([0] + [len(d[0]) for d in documents[:-1]]).astype(np.int32)
    return PackedRow(ids, mask, starts)


def test_the_prompt_ends_where_the_last_assistant_turn_starts():
    two_turns = ([1, 2, 3, 4, 5, 6, 7], [0, 0, 1, 0, 0, 1, 1])
    no_answer = ([8, 9], [0, 0])
    all_answer = ([10, 11], [1, 1])  # nothing to prompt with
    rows = [packed(two_turns, no_answer), packed(all_answer, ([12, 13, 14], [0, 1, 1]))]
    prompts = held_out_prompts(rows, count=5)
    assert [(p.prompt_ids, p.reference_ids) for p in prompts] == [([1, 2, 3, 4, 5], [6, 7]), ([12], [13, 14])]
    assert len(held_out_prompts(rows, count=1)) == 1


def test_exact_match_is_the_share_of_exact_answers():
    answers = [Answer("p", "r", "r", True), Answer("p", "r", "x", False)]
    assert exact_match(answers) == 0.5
    assert np.isnan(exact_match([]))
