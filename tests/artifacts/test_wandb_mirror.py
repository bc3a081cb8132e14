"""Mirroring to W&B: a real offline run (its .wandb file is read back), online lineage against a
stand-in for the W&B server, failures, and everything working without wandb."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import pytest

from nemotron.artifacts import (
    ArtifactError,
    ArtifactKind,
    Lineage,
    PretrainDataMeta,
    TokenCounts,
    TokenizerInfo,
    mirrors_from_environment,
    publish_with_mirrors,
)
from nemotron.artifacts.wandb_mirror import WandbMirror

META = PretrainDataMeta(
    dtype="uint16", splits={"train": TokenCounts(2, 10, 20)}, tokenizer=TokenizerInfo("tok", vocab_size=64)
)


def publish(registry, mirrors, name="data", inputs=(), aliases=(), lineage=None):
    with registry.staging(name) as staging:
        (staging.path / "blend.json").write_text('{"train": [1.0, "train/a"]}')
        (staging.path / "train").mkdir()
        (staging.path / "train" / "a.bin").write_bytes(b"\x01\x00" * 10)
        return publish_with_mirrors(
            registry,
            mirrors,
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=lineage or Lineage(stage="data-prep-pretrain", job_name="job-7", job_id="77", inputs=inputs),
            metadata=META,
            files={"blend": "blend.json"},
            aliases=aliases,
        )


def wandb_records(run_dir: Path, wanted=("run", "artifact"), wait_s: float = 60.0) -> list:
    """Records of an offline run's .wandb file, once it holds the `wanted` record types.

    The file is written by wandb's own service process, which may still be flushing it when
    `run.finish()` has returned (seen on a loaded machine): shut the service down, then poll."""
    import wandb

    wandb.teardown()
    deadline = time.monotonic() + wait_s
    while True:
        records = read_wandb_file(run_dir)
        seen = {r.WhichOneof("record_type") for r in records}
        if set(wanted) <= seen or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def read_wandb_file(run_dir: Path) -> list:
    """Records of an offline run's .wandb file (LevelDB-style log: 7-byte header, 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("run-*.wandb")
    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if (kind == 0 and length == 0) or pos + 7 + length > len(raw):  # end, or a record still being written
            break
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch) -> Path:
    """Offline W&B writing under this test's folder: wandb's process-wide setup (which keeps the first
    WANDB_DIR it saw, e.g. another test's) is torn down first, so the environment below applies."""
    wandb = pytest.importorskip("wandb")
    wandb.teardown()
    for name in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    return tmp_path / "wandb-dir"


def test_offline_mirror_logs_artifact_by_reference(registry, offline_wandb, capsys):
    upstream = publish(registry, [], name="raw")  # not mirrored: an input artifact
    mirror = WandbMirror(project="nemotron-test")
    artifact = publish(registry, [mirror], inputs=(upstream.ref, "/corpus/a.jsonl"), aliases=("golden",))
    assert artifact.ref == "data:v1"
    assert registry.resolve("data:golden").version == 1

    (run_dir,) = (offline_wandb / "wandb").glob("offline-run-*")
    records = wandb_records(run_dir)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "nemotron-test" and run.job_type == "data-prep-pretrain" and run.display_name == "job-7"
    (logged,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert logged.name == "data" and logged.type == "pretrain-data"
    assert sorted(logged.aliases) == ["golden", "latest", "nemotron-v1"]
    metadata = json.loads(logged.metadata)
    assert metadata["dtype"] == "uint16" and metadata["tokenizer"]["vocab_size"] == 64
    assert metadata["nemotron"]["ref"] == "data:v1"
    assert metadata["nemotron"]["path"] == str(artifact.path)
    assert metadata["nemotron"]["lineage"]["inputs"] == ["raw:v1", "/corpus/a.jsonl"]
    entries = {e.path: e for e in logged.manifest.contents}
    assert set(entries) == {"artifact.json", "blend.json", "train/a.bin"}
    assert entries["train/a.bin"].ref == (artifact.path / "train" / "a.bin").as_uri()
    assert entries["train/a.bin"].size == 20
    assert entries["artifact.json"].ref == (artifact.path / "artifact.json").as_uri()


def test_offline_mirror_returns_what_it_logged(registry, offline_wandb):
    upstream = publish(registry, [], name="raw")
    mirror = WandbMirror(project="p", entity=None)
    artifact = publish(registry, [], inputs=(upstream.ref,))
    record = mirror.mirror(artifact, registry=registry)
    assert record.offline and record.target == "p"
    assert (record.name, record.type) == ("data", "pretrain-data")
    assert record.aliases == ("latest", "nemotron-v1")
    assert record.used == () and record.skipped_inputs == ("raw:nemotron-v1",)  # offline: no lookups
    assert set(record.references) == {"artifact.json", "blend.json", "train/a.bin"}
    assert record.metadata["splits"]["train"]["tokens"] == 10


class StandInRun:
    """The W&B server side, replaced: records use_artifact/log_artifact; knows some logged artifacts."""

    offline = False

    def __init__(self, known=(), fail_log=False):
        self.known, self.fail_log = set(known), fail_log
        self.used: list[tuple[str, str]] = []
        self.logged: list = []

    def use_artifact(self, name, type=None):
        if name not in self.known:
            raise ValueError(f"artifact {name} not found in project")
        self.used.append((name, type))

    def log_artifact(self, artifact, aliases=None):
        if self.fail_log:
            raise ConnectionError("server unreachable")
        self.logged.append((artifact, aliases))
        return artifact

    def finish(self):
        raise AssertionError("a run passed in must not be finished by the mirror")


def test_online_lineage_declares_inputs_with_use_artifact(registry, capsys):
    pytest.importorskip("wandb")
    base = publish(registry, [], name="base")
    other = publish(registry, [], name="other")
    run = StandInRun(known={"base:nemotron-v1"})
    artifact = publish(
        registry,
        [WandbMirror(project="p", entity="team", run=run)],
        inputs=(base.ref, other.ref, "tokenizer:gpt2", "/raw/x.jsonl"),
    )
    assert run.used == [("base:nemotron-v1", "pretrain-data")]
    ((logged, aliases),) = run.logged
    assert aliases == ["latest", "nemotron-v1"]
    assert logged.name == "data" and logged.type == "pretrain-data"
    assert logged.metadata["nemotron"]["ref"] == artifact.ref
    refs = {name: entry.ref for name, entry in logged.manifest.entries.items()}
    assert refs["blend.json"] == (artifact.path / "blend.json").as_uri()
    assert "W&B lineage: input other:v1 not found in W&B" in capsys.readouterr().err


def test_mirror_failure_keeps_the_local_version_and_says_how_to_retry(registry):
    pytest.importorskip("wandb")
    with pytest.raises(ArtifactError) as err:
        publish(registry, [WandbMirror(project="p", run=StandInRun(fail_log=True))])
    message = str(err.value)
    assert "data:v1 is published" in message and "server unreachable" in message
    assert "nemotron artifacts mirror data:v1" in message
    assert registry.resolve("data:latest").version == 1


# -- without wandb ---------------------------------------------------------------------------


@pytest.fixture
def no_wandb(monkeypatch):
    """wandb unimportable in this process (import fails, find_spec returns None)."""
    for name in list(sys.modules):
        if name == "wandb" or name.startswith("wandb."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "wandb", None)


def test_no_wandb_section_needs_no_wandb(registry, no_wandb, monkeypatch):
    monkeypatch.delenv("NEMOTRON_WANDB_PROJECT", raising=False)
    mirrors = mirrors_from_environment()
    assert mirrors == []
    assert publish(registry, mirrors).ref == "data:v1"


def test_wandb_requested_but_not_installed_is_a_clear_error(no_wandb):
    with pytest.raises(ArtifactError) as err:
        mirrors_from_environment({"NEMOTRON_WANDB_PROJECT": "nano3"})
    message = str(err.value)
    assert "NEMOTRON_WANDB_PROJECT=nano3" in message and "wandb package is not installed" in message
    assert "pip install" in message and "[wandb]" in message


def test_mirrors_from_environment_reads_launcher_variables():
    pytest.importorskip("wandb")
    (mirror,) = mirrors_from_environment({"NEMOTRON_WANDB_PROJECT": "nano3", "NEMOTRON_WANDB_ENTITY": "team"})
    assert isinstance(mirror, WandbMirror) and mirror.target == "team/nano3"
    (mirror,) = mirrors_from_environment({"NEMOTRON_WANDB_PROJECT": "nano3"})
    assert mirror.entity is None and mirror.describe() == "W&B nano3"


def test_importing_the_artifacts_package_does_not_import_wandb(tmp_path):
    import subprocess

    code = (
        "import sys, nemotron.artifacts, nemotron.artifacts.wandb_mirror, nemotron.artifacts.mirrors\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wandb', 'torch')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
