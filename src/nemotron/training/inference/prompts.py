"""Prompts with a verifiable answer (an rl-data split): what RL trains on and what evaluation scores."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.training.errors import TrainingError


class PromptDataError(TrainingError):
    """An rl-data split cannot be read as prompts; the message names the file and line and the fix."""


@dataclass(frozen=True)
class Prompt:
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


def read_prompts(path: Path, limit: int | None = None) -> list[Prompt]:
    """The prompts of one split (file or folder of JSONL shards), in file order; at most `limit`."""
    prompts: list[Prompt] = []
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
                        Prompt(
                            id=str(record.get("id", f"{file.name}:{number}")),
                            prompt_ids=tuple(int(i) for i in record["prompt_ids"]),
                            expected_answer=str(record["expected_answer"]),
                            verifier=str(record["verifier"]),
                            metadata=record.get("metadata") or {},
                        )
                    )
                except (ValueError, KeyError, TypeError) as err:
                    raise PromptDataError(
                        f"{file}:{number}: not an rl-data prompt record ({type(err).__name__}: {err}); "
                        "prepare the data again with `nemotron nano3 data prep rl`"
                    ) from err
    return prompts
