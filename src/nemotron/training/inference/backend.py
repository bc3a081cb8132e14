"""The generation interface: sampling settings, a completion, and the backend protocol (megatron or a server)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from nemotron.training.errors import TrainingError


class GenerationError(TrainingError):
    """A generation request or backend setting is invalid; the message names the value and the fix."""


@dataclass(frozen=True)
class SamplingParams:
    """How to extend each prompt.

    max_new_tokens: at most this many tokens per completion (a backend may stop earlier at its
    length limit). temperature: logits are divided by it before sampling; 0 means greedy (argmax).
    top_p: nucleus sampling, the smallest set of most likely tokens whose probability reaches top_p
    (1.0 = the whole vocabulary; ignored when greedy). stop_ids: a sampled token among these ends
    its completion (the token is kept). seed: the same prompts, settings and seed give the same
    completions.
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not _is_number(self.temperature) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise GenerationError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}")
        if not _is_number(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise GenerationError(f"top_p must be in (0, 1] (1 = no nucleus truncation), got {self.top_p!r}")
        if not isinstance(self.stop_ids, tuple) or not all(_is_int(i) and i >= 0 for i in self.stop_ids):
            raise GenerationError(f"stop_ids must be a tuple of token ids >= 0, got {self.stop_ids!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise GenerationError(f"seed must be an integer >= 0, got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        """Temperature 0: every token is the most likely one."""
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """The tokens generated after one prompt.

    token_ids: the new tokens, the stop token included when `stopped`. logprobs: for each new token,
    its log-probability under the distribution it was sampled from *before* top-p truncation, i.e.
    log_softmax(logits / temperature) (log_softmax(logits) when greedy); the RL loss recomputes
    log-probabilities the same way, from logits / temperature. stopped: the completion ended with
    one of the stop ids (False: it ran out of max_new_tokens or of the backend's length limit).
    """

    token_ids: list[int]
    logprobs: list[float]
    stopped: bool


class GenerationBackend(Protocol):
    """Something that extends token-id prompts: megatron-core in this process, or an inference server."""

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """One completion per prompt, in the order of `prompts`."""
        ...


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
