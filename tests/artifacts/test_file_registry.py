"""FileRegistry: versioned publishing, references, aliases, failure cleanup and concurrent publishers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nemotron.artifacts import Artifact, ArtifactError, ArtifactKind, ArtifactRef, FileRegistry, Lineage
from nemotron.artifacts.file_registry import default_registry_root

REPO = Path(__file__).resolve().parents[2]


def publish(registry: FileRegistry, name: str, payload: str = "data", **metadata) -> Artifact:
    with registry.staging(name) as staging:
        (staging.path / "blend.json").write_text(payload)
        return registry.publish(
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=Lineage(stage="test", job_name="job-1", inputs=("a", "b")),
            metadata=dict(metadata),
            files={"blend": "blend.json"},
        )


@pytest.fixture
def registry(tmp_path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def staging_leftovers(registry: FileRegistry, name: str) -> list[str]:
    staging_root = registry.root / name / ".staging"
    return sorted(p.name for p in staging_root.iterdir()) if staging_root.exists() else []


# -- publishing and resolving ------------------------------------------------------------


def test_publish_creates_consecutive_versions(registry):
    first = publish(registry, "web", payload="one", step=1)
    second = publish(registry, "web", payload="two", step=2)
    assert (first.version, second.version) == (1, 2)
    assert first.ref == "web:v1" and second.ref == "web:v2"
    assert first.path == registry.root / "web" / "v1"
    assert first.file("blend").read_text() == "one"
    assert second.file("blend").read_text() == "two"
    assert second.metadata == {"step": 2}
    assert second.kind is ArtifactKind.PRETRAIN_DATA
    assert second.lineage == Lineage(stage="test", job_name="job-1", inputs=("a", "b"))
    record = json.loads((second.path / "artifact.json").read_text())
    assert record["name"] == "web" and record["kind"] == "pretrain-data" and record["files"] == {"blend": "blend.json"}
    assert [a.version for a in registry.versions("web")] == [1, 2]
    assert registry.names() == ["web"]
    assert staging_leftovers(registry, "web") == []


def test_latest_is_the_highest_version(registry):
    for i in range(3):
        publish(registry, "web", payload=str(i))
    assert registry.resolve("web:latest").version == 3
    assert registry.resolve("web").version == 3  # a bare name means latest
    assert registry.resolve(ArtifactRef("web")).version == 3


def test_latest_skips_incomplete_version_dirs(registry):
    publish(registry, "web")
    (registry.root / "web" / "v7").mkdir()  # no artifact.json: not a complete version
    assert registry.resolve("web").version == 1
    assert [a.version for a in registry.versions("web")] == [1]


def test_resolve_exact_version(registry):
    publish(registry, "web", payload="one")
    publish(registry, "web", payload="two")
    found = registry.resolve("web:v1")
    assert found.version == 1
    assert found.file("blend").read_text() == "one"


def test_alias_set_and_resolve(registry):
    publish(registry, "web", payload="one")
    publish(registry, "web", payload="two")
    registry.set_alias("web:v1", "golden")
    assert registry.resolve("web:golden").version == 1
    publish(registry, "web", payload="three")
    assert registry.resolve("web:golden").version == 1  # aliases do not move with latest
    registry.set_alias("web:latest", "golden")
    assert registry.resolve("web:golden").version == 3
    assert sorted(p.name for p in (registry.root / "web" / "aliases").iterdir()) == ["golden"]  # no temp files


@pytest.mark.parametrize("alias", ["latest", "v1", "v12", "v0"])
def test_reserved_aliases_are_rejected(registry, alias):
    publish(registry, "web")
    with pytest.raises(ArtifactError, match="reserved"):
        registry.set_alias("web:v1", alias)
    assert not (registry.root / "web" / "aliases" / alias).exists()


@pytest.mark.parametrize("alias", ["", "-x", "a/b", "has space"])
def test_invalid_alias_names_are_rejected(registry, alias):
    publish(registry, "web")
    with pytest.raises(ArtifactError, match="invalid artifact name"):
        registry.set_alias("web:v1", alias)


def test_alias_on_missing_version_fails(registry):
    publish(registry, "web")
    with pytest.raises(ArtifactError, match="v1"):
        registry.set_alias("web:v5", "golden")


def test_missing_artifact_lists_existing_names(registry):
    publish(registry, "web")
    publish(registry, "code")
    with pytest.raises(ArtifactError) as err:
        registry.resolve("books:v1")
    message = str(err.value)
    assert "books:v1" in message
    assert "code, web" in message


def test_missing_artifact_in_empty_registry(registry):
    with pytest.raises(ArtifactError, match="artifacts there: none"):
        registry.resolve("books")


def test_missing_version_lists_versions(registry):
    publish(registry, "web")
    publish(registry, "web")
    with pytest.raises(ArtifactError) as err:
        registry.resolve("web:v9")
    assert "web:v9" in str(err.value)
    assert "v1, v2" in str(err.value)


def test_missing_alias_lists_versions_and_aliases(registry):
    publish(registry, "web")
    registry.set_alias("web:v1", "golden")
    with pytest.raises(ArtifactError) as err:
        registry.resolve("web:silver")
    message = str(err.value)
    assert "silver" in message and "v1" in message and "golden" in message and "latest" in message


def test_publish_with_unwritten_file_fails_and_leaves_no_version(registry):
    with pytest.raises(ArtifactError, match="idx.bin"):
        with registry.staging("web") as staging:
            (staging.path / "blend.json").write_text("{}")
            registry.publish(
                staging,
                kind=ArtifactKind.PRETRAIN_DATA,
                lineage=Lineage(stage="test"),
                metadata={},
                files={"blend": "blend.json", "data": "idx.bin"},
            )
    assert registry.versions("web") == []
    assert registry.names() == []
    assert not any(p.name.startswith("v") for p in (registry.root / "web").iterdir())
    assert staging_leftovers(registry, "web") == []
    # the next successful publish is still v1
    assert publish(registry, "web").version == 1


def test_staging_removed_when_block_raises(registry):
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"):
        with registry.staging("web") as staging:
            seen.append(staging.path)
            (staging.path / "partial.bin").write_bytes(b"\0" * 100)
            raise RuntimeError("boom")
    assert seen and not seen[0].exists()
    assert staging_leftovers(registry, "web") == []
    assert registry.versions("web") == []
    with pytest.raises(ArtifactError, match="not found"):
        registry.resolve("web")


def test_list_filters_by_kind(registry):
    publish(registry, "web")
    with registry.staging("ckpt") as staging:
        (staging.path / "weights").write_text("w")
        registry.publish(
            staging,
            kind=ArtifactKind.MODEL_CHECKPOINT,
            lineage=Lineage(stage="pretrain"),
            metadata={},
            files={"weights": "weights"},
        )
    assert [a.ref for a in registry.list()] == ["ckpt:v1", "web:v1"]
    assert [a.ref for a in registry.list(ArtifactKind.MODEL_CHECKPOINT)] == ["ckpt:v1"]
    assert registry.list(ArtifactKind.SFT_DATA) == []


def test_artifact_file_unknown_role(registry):
    artifact = publish(registry, "web")
    with pytest.raises(ArtifactError, match="has no file 'weights'; it has: blend"):
        artifact.file("weights")


def test_corrupt_record_is_reported(registry):
    artifact = publish(registry, "web")
    (artifact.path / "artifact.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        registry.resolve("web:v1")


def test_default_registry_root(monkeypatch, tmp_path):
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(tmp_path / "arts"))
    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    assert default_registry_root() == tmp_path / "arts"
    monkeypatch.delenv("NEMOTRON_ARTIFACTS_ROOT")
    assert default_registry_root() == tmp_path / "home" / "artifacts"


# -- concurrent publishers ---------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nemotron.artifacts import ArtifactKind, FileRegistry, Lineage

    root, name, worker, count, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
    registry = FileRegistry(root)
    deadline = time.monotonic() + 60
    while not go.exists():  # start all publishers at the same moment
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.005)
    for i in range(count):
        with registry.staging(name) as staging:
            (staging.path / "payload.txt").write_text(f"{worker}:{i}")
            artifact = registry.publish(
                staging, kind=ArtifactKind.PRETRAIN_DATA, lineage=Lineage(stage="test", job_name=worker),
                metadata={"worker": worker, "i": i}, files={"payload": "payload.txt"},
            )
        print(artifact.version, flush=True)
    """
)


def test_concurrent_publishers_get_distinct_complete_versions(tmp_path):
    root = tmp_path / "registry"
    go = tmp_path / "go"
    workers, per_worker = 4, 20
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(root), "shared", f"w{n}", str(per_worker), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(workers)
    ]
    time.sleep(0.5)  # let the interpreters start and wait at the gate
    go.write_text("go")
    reported: dict[str, list[int]] = {}
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"worker w{n} failed:\n{err}"
        reported[f"w{n}"] = [int(line) for line in out.split()]

    total = workers * per_worker
    all_reported = sorted(v for versions in reported.values() for v in versions)
    assert all_reported == list(range(1, total + 1)), "each publish must get its own version"
    for versions in reported.values():
        assert versions == sorted(versions) and len(versions) == per_worker

    registry = FileRegistry(root)
    artifacts = registry.versions("shared")
    assert [a.version for a in artifacts] == list(range(1, total + 1))
    seen_payloads = set()
    for artifact in artifacts:
        record = json.loads((artifact.path / "artifact.json").read_text())  # every record is valid JSON
        worker, i = record["metadata"]["worker"], record["metadata"]["i"]
        assert artifact.file("payload").read_text() == f"{worker}:{i}"  # files belong to their record
        assert artifact.version in reported[worker]
        seen_payloads.add((worker, i))
    assert len(seen_payloads) == total
    assert staging_leftovers(registry, "shared") == []
    assert registry.resolve("shared").version == total
    leftovers = [
        p.name for p in (root / "shared").iterdir() if p.name not in {".staging"} and not p.name.startswith("v")
    ]
    assert leftovers == []


# -- references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "selector", "version"),
    [
        ("web", "web", "latest", None),
        ("web:latest", "web", "latest", None),
        ("web:v3", "web", "v3", 3),
        ("web:v0", "web", "v0", 0),
        ("web:golden", "web", "golden", None),
        ("web:", "web", "latest", None),
        ("  web:v2  ", "web", "v2", 2),
        ("nano3-pretrain-data.tiny_2:v10", "nano3-pretrain-data.tiny_2", "v10", 10),
        ("9lives", "9lives", "latest", None),
        ("web:V3", "web", "V3", None),  # case matters: an alias, not a version
    ],
)
def test_ref_parse(text, name, selector, version):
    ref = ArtifactRef.parse(text)
    assert (ref.name, ref.selector, ref.version) == (name, selector, version)
    assert str(ref) == f"{name}:{selector}"


@pytest.mark.parametrize("text", ["", ":v1", "-web", ".hidden", "_x", "web data", "a/b", "../up", "wéb"])
def test_ref_parse_rejects_invalid_names(text):
    with pytest.raises(ArtifactError, match="invalid artifact name"):
        ArtifactRef.parse(text)


@pytest.mark.parametrize("text", ["web:../v1/artifact", "web:a/b"])
def test_ref_parse_rejects_path_like_selectors(text):
    with pytest.raises(ArtifactError):
        ArtifactRef.parse(text)


def test_resolve_path_like_selector_is_an_artifact_error(registry):
    publish(registry, "web")
    registry.set_alias("web:v1", "golden")  # the aliases/ folder exists, so '..' can walk out of it
    with pytest.raises(ArtifactError):
        registry.resolve("web:../v1/artifact.json")


def test_resolve_corrupt_alias_file_is_an_artifact_error(registry):
    publish(registry, "web")
    registry.set_alias("web:v1", "golden")
    (registry.root / "web" / "aliases" / "golden").write_text("garbage\n")
    with pytest.raises(ArtifactError):
        registry.resolve("web:golden")


_HOLD_PUBLISHING = textwrap.dedent(
    """
    import sys, time
    from nemotron.artifacts import FileRegistry
    with FileRegistry(sys.argv[1]).publishing(sys.argv[2]):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def test_a_publisher_waits_for_another_publisher_of_the_name_then_is_refused(tmp_path):
    """Another process decides what the next version of `shared` holds: a publisher waits, then is refused."""
    root = tmp_path / "registry"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_PUBLISHING, str(root), "shared", "3"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ArtifactError, match=rf"artifact 'shared' \(being published\).*pid {holder.pid}"):
            publish(FileRegistry(root, publish_wait_s=0.3), "shared")
        assert FileRegistry(root).versions("shared") == [] and staging_leftovers(FileRegistry(root), "shared") == []
        assert publish(FileRegistry(root, publish_wait_s=60), "shared").version == 1  # after the holder ends
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()
