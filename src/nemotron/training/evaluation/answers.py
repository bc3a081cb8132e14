"""Answers to verifiable prompts (an rl-data split): greedy accuracy, mean sampled reward and pass@k, samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nemotron.training.evaluation.config import RlSection
from nemotron.training.inference.answers import HeldOutAnswer, Scorer, Vocabulary, greedy_held_out
from nemotron.training.inference.backend import GenerationBackend, SamplingParams
from nemotron.training.inference.prompts import Prompt


@dataclass(frozen=True)
class RlScores:
    """Greedy accuracy (mean verifier reward of the greedy answers) and, with k samples per prompt, the mean
    sampled reward and pass@k (the share of prompts with at least one sample of reward 1)."""

    prompts: int
    greedy_accuracy: float
    answers: tuple[HeldOutAnswer, ...]
    samples_per_prompt: int = 0
    sampled_reward: float | None = None
    pass_at_k: float | None = None

    def metrics(self) -> dict[str, float]:
        found = {"rl_prompts": float(self.prompts), "rl_greedy_accuracy": self.greedy_accuracy}
        if self.sampled_reward is not None and self.pass_at_k is not None:
            found["rl_sampled_reward"] = self.sampled_reward
            found[f"rl_pass@{self.samples_per_prompt}"] = self.pass_at_k
        return found


def score_answers(
    prompts: Sequence[Prompt],
    backend: GenerationBackend,
    section: RlSection,
    vocabulary: Vocabulary,
    score: Scorer,
) -> RlScores:
    """Greedy answers to every prompt, then `section.samples_per_prompt` sampled answers to each, scored."""
    stops = vocabulary.stop_ids
    held_out = greedy_held_out(prompts, backend, section.max_new_tokens, section.seed, score, vocabulary)
    k = section.samples_per_prompt
    if k == 0:
        return RlScores(len(prompts), held_out.accuracy, held_out.answers)
    params = SamplingParams(section.max_new_tokens, section.temperature, section.top_p, stops, section.seed)
    repeated = [prompt for prompt in prompts for _ in range(k)]  # each copy is seeded by its own index
    completions = backend.generate([prompt.prompt_ids for prompt in repeated], params)
    rewards = [score(prompt, completion.token_ids)[0] for prompt, completion in zip(repeated, completions, strict=True)]
    solved = sum(max(rewards[i * k : (i + 1) * k]) >= 1.0 for i in range(len(prompts)))
    return RlScores(
        len(prompts),
        held_out.accuracy,
        held_out.answers,
        samples_per_prompt=k,
        sampled_reward=sum(rewards) / len(rewards),
        pass_at_k=solved / len(prompts),
    )
