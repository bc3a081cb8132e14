"""The policy's greedy answers to held-out prompts, scored by their verifiers: RL's before/during/after measure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nemotron.training.rl.prompts import RlPrompt


@dataclass(frozen=True)
class HeldOutAnswer:
    prompt: str
    expected: str
    answer: str
    reward: float


@dataclass(frozen=True)
class HeldOutResult:
    """Mean reward of greedy answers (for an exact-match verifier: the accuracy) and the answers."""

    accuracy: float
    answers: tuple[HeldOutAnswer, ...]


def greedy_held_out(
    prompts: Sequence[RlPrompt],
    generate: Callable[[Sequence[Sequence[int]]], list[list[int]]],
    score: Callable[[RlPrompt, list[int]], tuple[float, bool]],
    decode: Callable[[Sequence[int]], str],
) -> HeldOutResult:
    """Answer every prompt greedily (`generate`: prompts -> completion ids) and score each answer."""
    if not prompts:
        return HeldOutResult(float("nan"), ())
    completions = generate([p.prompt_ids for p in prompts])
    answers = []
    for prompt, ids in zip(prompts, completions, strict=True):
        reward, _ = score(prompt, ids)
        answers.append(HeldOutAnswer(decode(prompt.prompt_ids), prompt.expected_answer, decode(ids), reward))
    return HeldOutResult(sum(a.reward for a in answers) / len(answers), tuple(answers))
