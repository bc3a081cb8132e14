"""The seeded order in which GRPO takes the prompts of its train split, batch by batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nemotron.training.datasets.gpt import TrainingDataError


@dataclass(frozen=True)
class PromptOrder:
    """Which prompts batch `b` takes: consecutive slices of one seeded permutation per pass over the prompts.

    A pass (epoch) is a permutation of all prompt indices seeded by (seed, epoch); batch b takes the
    `batch_size` indices starting at b * batch_size of the passes laid end to end, so a resumed run
    that knows its batch index takes the same prompts as an uninterrupted one.
    """

    num_prompts: int
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        if self.num_prompts < 1:
            raise TrainingDataError("the rl-data train split has no prompts; prepare the data again")

    def _epoch(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_prompts)

    def batch(self, index: int) -> list[int]:
        start = index * self.batch_size
        picked: list[int] = []
        while len(picked) < self.batch_size:
            epoch, offset = divmod(start + len(picked), self.num_prompts)
            order = self._epoch(epoch)
            take = min(self.batch_size - len(picked), self.num_prompts - offset)
            picked.extend(int(i) for i in order[offset : offset + take])
        return picked
