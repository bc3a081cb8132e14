"""Importing existing blend and checkpoint dirs: referenced in place (no copies), metadata detected."""

from __future__ import annotations

import json
import os

import pytest

from nemotron.artifacts import ArtifactError, ArtifactKind, Lineage, ModelCheckpointMeta, PretrainDataMeta

pytestmark = pytest.mark.integration  # writes real megatron-core bin/idx files


def test_import_blend_dir_references_data_in_place(registry, blend_dir):
    source_inodes = {p: p.stat().st_ino for p in blend_dir.rglob("*") if p.is_file()}
    artifact = registry.import_existing(ArtifactKind.PRETRAIN_DATA, blend_dir, "imported-blend")

    assert artifact.ref == "imported-blend:v1" and artifact.kind is ArtifactKind.PRETRAIN_DATA
    assert artifact.files == {"blend": str(blend_dir / "blend.json")}
    assert artifact.file("blend") == blend_dir / "blend.json"
    assert artifact.file("blend").stat().st_ino == source_inodes[blend_dir / "blend.json"]  # the same file
    assert [p.name for p in artifact.path.iterdir()] == ["artifact.json"]  # nothing copied into the registry
    assert {p: p.stat().st_ino for p in blend_dir.rglob("*") if p.is_file()} == source_inodes  # nothing moved

    manifest = {e.path: e for e in artifact.manifest.entries}
    expected = {str(blend_dir / "blend.json")} | {
        str(blend_dir / split / f"{name}.{ext}")
        for split, name in (("train", "web"), ("train", "code"), ("valid", "web"))
        for ext in ("bin", "idx")
    }
    assert set(manifest) == expected
    assert all(e.in_place and e.sha256 for e in manifest.values())
    assert manifest[str(blend_dir / "train" / "web.bin")].size == 5 * 2  # 5 uint16 tokens

    meta = artifact.typed_metadata()
    assert isinstance(meta, PretrainDataMeta)
    assert meta.dtype == "uint16"
    assert meta.splits["train"].documents == 3 and meta.splits["train"].tokens == 9
    assert meta.splits["train"].bytes == 18
    assert meta.splits["valid"].documents == 1 and meta.splits["valid"].tokens == 2
    assert "test" not in meta.splits  # null in blend.json
    assert meta.tokenizer is None and meta.blend_source == str(blend_dir / "blend.json")
    assert artifact.lineage == Lineage(stage="import", inputs=(str(blend_dir),))
    assert registry.verify(artifact.ref).ok


def test_import_metadata_overrides_detected_values(registry, blend_dir):
    artifact = registry.import_existing(
        ArtifactKind.PRETRAIN_DATA,
        blend_dir,
        "b",
        metadata={"tokenizer": {"name_or_path": "gpt2", "vocab_size": 50257}, "note": "from cluster A"},
        lineage=Lineage(stage="legacy-prep", job_name="old-job", inputs=("/corpus",)),
    )
    meta = artifact.typed_metadata()
    assert meta.tokenizer.name_or_path == "gpt2" and meta.tokenizer.vocab_size == 50257
    assert meta.extra == {"note": "from cluster A"}
    assert artifact.lineage.job_name == "old-job"


def test_verify_after_import_sees_changes_to_the_referenced_data(registry, blend_dir):
    artifact = registry.import_existing(ArtifactKind.PRETRAIN_DATA, blend_dir, "b")
    (blend_dir / "valid" / "web.idx").unlink()
    report = registry.verify(artifact.ref)
    assert report.problems == (f"missing: {blend_dir / 'valid' / 'web.idx'}",)


def test_import_dir_without_blend_json_is_a_clear_error(registry, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"cannot import .*empty as pretrain-data: it has no blend\.json"):
        registry.import_existing(ArtifactKind.PRETRAIN_DATA, tmp_path / "empty", "b")
    assert registry.names() == []


def test_import_blend_with_missing_data_names_the_file(registry, blend_dir):
    (blend_dir / "train" / "code.bin").unlink()
    with pytest.raises(ArtifactError, match=f"data file {blend_dir / 'train' / 'code.bin'} referenced by the blend"):
        registry.import_existing(ArtifactKind.PRETRAIN_DATA, blend_dir, "b")


def test_import_input_blend_spec_is_rejected(registry, tmp_path):
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "blend.json").write_text(json.dumps({"datasets": [{"name": "a", "path": "a.jsonl", "weight": 1}]}))
    with pytest.raises(ArtifactError, match="must be a list alternating weight and path prefix"):
        registry.import_existing(ArtifactKind.PRETRAIN_DATA, spec_dir, "b")


def test_import_checkpoint_root(registry, tmp_path, checkpoint_factory):
    ckpt = checkpoint_factory(tmp_path / "ckpts" / "run7", step=1500)
    inode = (ckpt / "iter_0001500" / "__0_0.distcp").stat().st_ino
    artifact = registry.import_existing(
        ArtifactKind.MODEL_CHECKPOINT, ckpt, "nano3-base", metadata={"tokens_seen": 123, "loss": 2}
    )
    assert artifact.files == {"checkpoint": str(ckpt)}
    assert artifact.file("checkpoint") == ckpt
    assert [p.name for p in artifact.path.iterdir()] == ["artifact.json"]
    assert (ckpt / "iter_0001500" / "__0_0.distcp").stat().st_ino == inode
    meta = artifact.typed_metadata()
    assert meta == ModelCheckpointMeta(step=1500, tokens_seen=123, loss=2.0, format="megatron-dist")
    paths = {e.path for e in artifact.manifest.entries}
    assert str(ckpt / "latest_checkpointed_iteration.txt") in paths
    assert str(ckpt / "iter_0001500" / "__0_0.distcp") in paths
    assert str(ckpt / "iter_0001500" / ".metadata") in paths


def test_import_single_distributed_checkpoint_dir(registry, tmp_path, checkpoint_factory):
    root = checkpoint_factory(tmp_path / "ckpts", step=200, tracker=False)
    artifact = registry.import_existing(ArtifactKind.MODEL_CHECKPOINT, root / "iter_0000200", "c")
    assert artifact.typed_metadata().step == 200
    assert artifact.files == {"checkpoint": str(root / "iter_0000200")}


def test_checkpoint_without_known_step_needs_it_in_metadata(registry, tmp_path, checkpoint_factory):
    root = checkpoint_factory(tmp_path / "ckpts", step=300, tracker=False)
    renamed = root / "final"
    os.rename(root / "iter_0000300", renamed)
    with pytest.raises(ArtifactError, match="missing key 'step'"):
        registry.import_existing(ArtifactKind.MODEL_CHECKPOINT, renamed, "c")
    assert registry.import_existing(ArtifactKind.MODEL_CHECKPOINT, renamed, "c", metadata={"step": 300}).version == 1


def test_import_non_checkpoint_dir_is_a_clear_error(registry, blend_dir):
    with pytest.raises(ArtifactError) as err:
        registry.import_existing(ArtifactKind.MODEL_CHECKPOINT, blend_dir, "c")
    message = str(err.value)
    assert "latest_checkpointed_iteration.txt" in message and "metadata.json" in message and str(blend_dir) in message


def test_import_missing_path_and_unsupported_kind(registry, tmp_path, blend_dir):
    with pytest.raises(ArtifactError, match="not a directory"):
        registry.import_existing(ArtifactKind.PRETRAIN_DATA, tmp_path / "nope", "b")
    with pytest.raises(ArtifactError, match="importing sft-data is not supported yet"):
        registry.import_existing(ArtifactKind.SFT_DATA, blend_dir, "b")


def test_idx_header_reading_agrees_with_megatron(blend_dir):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from nemotron.artifacts.megatron_files import read_indexed

    for prefix in (blend_dir / "train" / "web", blend_dir / "train" / "code", blend_dir / "valid" / "web"):
        ours = read_indexed(prefix)
        theirs = IndexedDataset(str(prefix))
        assert ours.documents == len(theirs.document_indices) - 1
        assert ours.sequences == len(theirs)
        assert ours.tokens == int(theirs.sequence_lengths.sum())
        assert ours.dtype == theirs.index.dtype.__name__
