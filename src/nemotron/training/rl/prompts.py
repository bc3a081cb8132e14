"""The prompts of an rl-data split, and the seeded order in which GRPO takes them batch by batch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.training.datasets.gpt import TrainingDataError


@dataclass(frozen=True)
class RlPrompt:
    """One prompt: its rendered ids, the answer its verifier checks against, and the record's metadata."""

    id: str
    prompt_ids: tuple[int, ...]
    expected_answer: str
    verifier: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def split_files(path: Path) -> list[Path]:
    """A split's JSONL files: the file itself, or a folder's *.jsonl in name order."""
    if path.is_dir():
        return sorted(path.glob("*.jsonl"))
    return [path]


def read_prompts(path: Path, limit: int | None = None) -> list[RlPrompt]:
    """The prompts of one split (file or folder of JSONL shards), in file order; at most `limit`."""
    prompts: list[RlPrompt] = []
    for file in split_files(path):
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if limit is not None and len(prompts) >= limit:
                    return prompts
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    prompts.append(
                        RlPrompt(
                            id=str(record.get("id", f"{file.name}:{number}")),
                            prompt_ids=tuple(int(i) for i in record["prompt_ids"]),
                            expected_answer=str(record["expected_answer"]),
                            verifier=str(record["verifier"]),
                            metadata=record.get("metadata") or {},
                        )
                    )
                except (ValueError, KeyError, TypeError) as err:
                    raise TrainingDataError(
                        f"{file}:{number}: not an rl-data prompt record ({type(err).__name__}: {err}); "
                        "prepare the data again with `nemotron nano3 data prep rl`"
                    ) from err
    return prompts


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
