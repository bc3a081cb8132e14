"""Fixtures for artifact tests: a registry in tmp_path, real Megatron blend dirs and checkpoint dirs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from nemotron.artifacts import FileRegistry

# documents (token lists) per split and dataset; uint16 token ids
BLEND_DOCS = {
    "train": {"web": [[5, 6, 7], [8, 9]], "code": [[1, 2, 3, 4]]},
    "valid": {"web": [[10, 11]]},
}


def write_indexed(prefix: Path, documents: list[list[int]]) -> None:
    """Write `prefix.bin/.idx` with megatron-core's own builder."""
    warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")
    import numpy as np
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    prefix.parent.mkdir(parents=True, exist_ok=True)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    for doc in documents:
        builder.add_document(torch.tensor(doc, dtype=torch.int64), [len(doc)])
    builder.finalize(f"{prefix}.idx")


def make_blend_dir(path: Path, docs: dict[str, dict[str, list[list[int]]]] = BLEND_DOCS) -> Path:
    """A prepared-data dir as data prep writes it: <split>/<dataset>.bin/.idx plus blend.json."""
    blend: dict[str, list | None] = {"train": None, "valid": None, "test": None}
    for split, datasets in docs.items():
        entries: list = []
        for name, documents in datasets.items():
            write_indexed(path / split / name, documents)
            entries += [1.0 / len(datasets), f"{split}/{name}"]
        blend[split] = entries
    (path / "blend.json").write_text(json.dumps(blend))
    return path


def make_checkpoint_dir(path: Path, step: int = 100, tracker: bool = True) -> Path:
    """The layout Megatron writes: a tracker file and iter_NNNNNNN/ holding a distributed checkpoint."""
    iter_dir = path / f"iter_{step:07d}"
    iter_dir.mkdir(parents=True)
    (iter_dir / "metadata.json").write_text(
        json.dumps(
            {
                "sharded_backend": "torch_dist",
                "sharded_backend_version": 1,
                "common_backend": "torch",
                "common_backend_version": 1,
            }
        )
    )
    (iter_dir / "__0_0.distcp").write_bytes(b"\x01" * 4096)
    (iter_dir / "common.pt").write_bytes(b"\x02" * 100)
    (iter_dir / ".metadata").write_bytes(b"\x03" * 50)
    if tracker:
        (path / "latest_checkpointed_iteration.txt").write_text(f"{step}\n")
    return path


@pytest.fixture
def registry(tmp_path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


@pytest.fixture
def blend_dir(tmp_path) -> Path:
    """A real prepared-data dir (megatron bin/idx + blend.json) outside any registry."""
    return make_blend_dir(tmp_path / "prepared" / "blend-a")


@pytest.fixture
def checkpoint_factory():
    """make_checkpoint_dir(path, step=100, tracker=True)."""
    return make_checkpoint_dir
