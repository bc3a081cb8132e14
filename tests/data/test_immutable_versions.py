"""A published data version never changes: re-runs (forced, repairs, changed inputs) write beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nemotron.artifacts import FileRegistry

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CORPUS = REPO / "recipes/nano3/assets/corpus-tiny"
NAME = "test-data"


@pytest.fixture
def blend(tmp_path) -> Path:
    """The shipped tiny corpus, copied so that a test can change an input file."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SHIPPED_CORPUS, corpus)
    datasets = [{"name": p.stem, "path": p.name, "weight": 1.0} for p in sorted(corpus.glob("*.jsonl"))]
    (corpus / "blend.json").write_text(json.dumps({"datasets": datasets}))
    return corpus / "blend.json"


def version_files(registry: FileRegistry, version: int) -> dict[str, bytes]:
    """Every file in the version's manifest (its blend.json and the shards it lists), as bytes."""
    artifact = registry.resolve(f"{NAME}:v{version}")
    assert artifact.manifest is not None
    return {e.path: e.location(artifact.path).read_bytes() for e in artifact.manifest.entries}


def assert_verifies(registry: FileRegistry, versions: range) -> None:
    for version in versions:
        report = registry.verify(f"{NAME}:v{version}")
        assert report.ok, (version, report.problems)


def test_earlier_versions_verify_and_keep_their_bytes_after_forced_and_changed_reruns(
    blend, tmp_path, stage_config, prep_stage
):
    root = tmp_path / "registry"
    registry = FileRegistry(root)
    config = stage_config(tmp_path / "config.yaml", blend, None, num_shards=4)  # data inside the registry
    assert f"published {NAME}:v1" in prep_stage(config, root)
    v1 = version_files(registry, 1)
    assert not any("receipts" in path or ".lease" in path for path in v1)  # only the data blend.json uses

    forced = stage_config(tmp_path / "forced.yaml", blend, None, num_shards=4, force=True)
    assert f"published {NAME}:v2" in prep_stage(forced, root)
    assert_verifies(registry, range(1, 3))
    assert version_files(registry, 1) == v1
    assert version_files(registry, 2) == v1  # the same bytes at the same places: nothing was rewritten

    # an input changes: its shards come out with other bytes, in files beside the published ones
    library = blend.parent / "python-library.jsonl"
    lines = library.read_text().splitlines()
    library.write_text("\n".join(lines[1:] + lines[:1]) + "\n")
    assert f"published {NAME}:v3" in prep_stage(config, root)
    assert_verifies(registry, range(1, 4))
    assert version_files(registry, 1) == v1
    v3 = version_files(registry, 3)
    assert any(".g1." in path for path in v3), sorted(v3)
    assert v3 != version_files(registry, 2)


def test_a_repaired_shard_leaves_the_published_one_in_place(blend, tmp_path, stage_config, prep_stage):
    root = tmp_path / "registry"
    registry = FileRegistry(root)
    config = stage_config(tmp_path / "config.yaml", blend, None, num_shards=4)
    prep_stage(config, root)
    v1 = version_files(registry, 1)
    receipt = next((root / NAME / "data").rglob("receipts/*/shard_00000.json"))
    receipt.unlink()  # the shard is redone: the same bytes come out, so its files are kept as they are
    out = prep_stage(config, root)
    assert "1 to do" in out and f"nothing changed: {NAME}:v1 already holds this data" in out
    assert_verifies(registry, range(1, 2))
    assert version_files(registry, 1) == v1
