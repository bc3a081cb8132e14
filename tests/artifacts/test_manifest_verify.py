"""Manifests recorded at publish and `verify`: deleted, truncated and modified files are found."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from nemotron.artifacts import ArtifactError, ArtifactKind, FileRegistry, Lineage


def publish_tree(registry: FileRegistry, name: str = "data", **kwargs):
    with registry.staging(name) as staging:
        (staging.path / "blend.json").write_text('{"train": [1.0, "train/a"]}')
        (staging.path / "train").mkdir()
        (staging.path / "train" / "a.bin").write_bytes(bytes(range(256)) * 4)
        (staging.path / "train" / "a.idx").write_bytes(b"idx" * 10)
        (staging.path / "big.bin").write_bytes(b"\x07" * 5000)
        return registry.publish(
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=Lineage(stage="test"),
            metadata={},
            files={"blend": "blend.json"},
            **kwargs,
        )


@pytest.fixture
def small_limit_registry(tmp_path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry", hash_limit=2048)  # big.bin (5000 B) is "large"


def test_manifest_records_every_staged_file(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    entries = {e.path: e for e in artifact.manifest.entries}
    assert set(entries) == {"blend.json", "train/a.bin", "train/a.idx", "big.bin"}  # not artifact.json
    a_bin = artifact.path / "train" / "a.bin"
    assert entries["train/a.bin"].size == 1024
    assert entries["train/a.bin"].sha256 == hashlib.sha256(a_bin.read_bytes()).hexdigest()
    assert entries["train/a.bin"].mtime_ns is None
    big = entries["big.bin"]
    assert big.size == 5000 and big.sha256 is None
    assert big.mtime_ns == (artifact.path / "big.bin").stat().st_mtime_ns
    record = json.loads((artifact.path / "artifact.json").read_text())
    assert record["manifest"]["hash_limit"] == 2048
    assert record["manifest"]["files"]["big.bin"] == {"size": 5000, "mtime_ns": big.mtime_ns}
    assert set(record["manifest"]["files"]["blend.json"]) == {"size", "sha256"}
    assert artifact.manifest.total_bytes == 1024 + 30 + 5000 + len('{"train": [1.0, "train/a"]}')
    assert "4 files" in artifact.manifest.summary() and "3 with sha256" in artifact.manifest.summary()


def test_default_hash_limit_is_64_mib(tmp_path):
    from nemotron.artifacts import HASH_LIMIT_BYTES

    assert HASH_LIMIT_BYTES == 64 * 1024 * 1024
    artifact = publish_tree(FileRegistry(tmp_path / "r"))
    assert all(e.sha256 for e in artifact.manifest.entries)


def test_verify_passes_on_an_untouched_version(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    report = small_limit_registry.verify("data:latest")
    assert report.ok and report.problems == () and report.warnings == ()
    assert report.ref == artifact.ref and report.checked == 4


def test_verify_finds_a_deleted_file(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    (artifact.path / "train" / "a.idx").unlink()
    report = small_limit_registry.verify(artifact.ref)
    assert not report.ok
    assert report.problems == (f"missing: {artifact.path / 'train' / 'a.idx'}",)


def test_verify_finds_a_truncated_file(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    with open(artifact.path / "big.bin", "r+b") as handle:  # a large (unhashed) file: size still catches it
        handle.truncate(100)
    report = small_limit_registry.verify(artifact.ref)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"size changed: {artifact.path / 'big.bin'}")
    assert "recorded 5000 bytes, now 100" in report.problems[0]


def test_verify_finds_a_modified_small_file_of_the_same_size(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    target = artifact.path / "train" / "a.bin"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime
    report = small_limit_registry.verify(artifact.ref)
    assert len(report.problems) == 1 and report.problems[0].startswith(f"content changed: {target}")


def test_large_file_with_new_mtime_is_a_warning_not_a_failure(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    big = artifact.path / "big.bin"
    os.utime(big, ns=(big.stat().st_atime_ns, big.stat().st_mtime_ns + 5_000_000_000))
    report = small_limit_registry.verify(artifact.ref)
    assert report.ok
    assert len(report.warnings) == 1 and "modification time changed" in report.warnings[0]


def test_in_place_files_are_recorded_by_absolute_path_and_verified(tmp_path, small_limit_registry):
    outside = tmp_path / "lake"
    (outside / "shards").mkdir(parents=True)
    (outside / "shards" / "0.bin").write_bytes(b"a" * 10)
    (outside / "shards" / "1.bin").write_bytes(b"b" * 10)
    (outside / "extra.txt").write_text("ref")
    artifact = publish_tree(
        small_limit_registry,
        references=[outside / "shards"],
    )
    with small_limit_registry.staging("data2") as staging:
        artifact2 = small_limit_registry.publish(
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=Lineage(stage="t"),
            metadata={},
            files={"extra": str(outside / "extra.txt")},
        )
    paths = {e.path for e in artifact.manifest.entries}
    assert {str(outside / "shards" / "0.bin"), str(outside / "shards" / "1.bin")} <= paths
    assert [e.path for e in artifact2.manifest.entries] == [str(outside / "extra.txt")]
    assert artifact2.file("extra") == outside / "extra.txt"
    assert sorted(p.name for p in artifact2.path.iterdir()) == ["artifact.json"]  # nothing copied
    (outside / "shards" / "1.bin").unlink()
    report = small_limit_registry.verify(artifact.ref)
    assert report.problems == (f"missing: {outside / 'shards' / '1.bin'}",)


def test_absolute_path_into_the_staging_dir_is_rejected(small_limit_registry):
    with pytest.raises(ArtifactError, match="inside the staging dir; give it relative"):
        with small_limit_registry.staging("x") as staging:
            (staging.path / "f").write_text("x")
            small_limit_registry.publish(
                staging,
                kind=ArtifactKind.RL_DATA,
                lineage=Lineage(stage="t"),
                metadata={},
                files={"f": str(staging.path / "f")},
            )


def test_missing_in_place_reference_is_an_error(tmp_path, small_limit_registry):
    with pytest.raises(ArtifactError, match=f"in-place reference {tmp_path / 'nope'} does not exist"):
        publish_tree(small_limit_registry, references=[tmp_path / "nope"])
    assert small_limit_registry.names() == []


def test_versions_without_manifest_still_verify_their_files(small_limit_registry):
    artifact = publish_tree(small_limit_registry)
    record_path = artifact.path / "artifact.json"
    record = json.loads(record_path.read_text())
    del record["manifest"]
    record_path.write_text(json.dumps(record))
    reloaded = small_limit_registry.resolve(artifact.ref)
    assert reloaded.manifest is None
    report = small_limit_registry.verify(artifact.ref)
    assert report.ok and "no manifest recorded" in report.warnings[0]
    (artifact.path / "blend.json").unlink()
    assert small_limit_registry.verify(artifact.ref).problems == (f"missing: {artifact.path / 'blend.json'}",)
