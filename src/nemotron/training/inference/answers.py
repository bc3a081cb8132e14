"""Answers to prompts with a verifiable answer, scored by their records' verifiers (RL's rewards, evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nemotron.training.inference.backend import GenerationBackend, SamplingParams
from nemotron.training.inference.prompts import Prompt

Scorer = Callable[[Prompt, list[int]], tuple[float, bool]]  # (prompt, completion ids) -> (reward, verifier failed)


class Vocabulary:
    """A Hugging Face tokenizer as answering needs it: ids to text for the verifiers, and the ids that end a reply.

    `stop_tokens`: token strings that end a completion (e.g. the chat template's end of turn), besides
    the tokenizer's EOS; those the tokenizer does not know are ignored.
    """

    def __init__(self, tokenizer: Any, stop_tokens: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        stops = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        for token in stop_tokens:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                stops.add(token_id)
        self.stop_ids = tuple(sorted(stops))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


def verifier_scorer(vocabulary: Vocabulary) -> Scorer:
    """Reward of a completion from its record's verifier (resolved once per name); a failing verifier scores 0."""
    from nemotron.data.verifiers import resolve_verifier, score

    verifiers: dict[str, Any] = {}

    def scorer(prompt: Prompt, completion: list[int]) -> tuple[float, bool]:
        if prompt.verifier not in verifiers:
            verifiers[prompt.verifier] = resolve_verifier(prompt.verifier)
        text = vocabulary.decode(completion)
        result = score(verifiers[prompt.verifier], text, prompt.expected_answer, prompt.metadata)
        return result.reward, result.failed

    return scorer


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
    prompts: Sequence[Prompt],
    backend: GenerationBackend,
    max_new_tokens: int,
    seed: int,
    score: Scorer,
    vocabulary: Vocabulary,
) -> HeldOutResult:
    """Answer every prompt greedily (ending at the vocabulary's stop ids) and score each answer."""
    if not prompts:
        return HeldOutResult(float("nan"), ())
    params = SamplingParams(max_new_tokens, 0.0, 1.0, vocabulary.stop_ids, seed)
    completions = backend.generate([p.prompt_ids for p in prompts], params)
    answers = []
    for prompt, completion in zip(prompts, completions, strict=True):
        reward, _ = score(prompt, completion.token_ids)
        decode = vocabulary.decode
        answers.append(
            HeldOutAnswer(decode(prompt.prompt_ids), prompt.expected_answer, decode(completion.token_ids), reward)
        )
    return HeldOutResult(sum(a.reward for a in answers) / len(answers), tuple(answers))
