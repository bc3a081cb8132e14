"""Interrupted data prep resumes: kill a worker or the whole stage, corrupt a shard, force, rerun.

Every interrupted run is finished by a rerun and must end byte-identical to an uninterrupted run
with the same settings. Workers are frozen (SIGSTOP) while they hold a half-written shard, so a
kill always lands mid-run whatever the machine's speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CORPUS = REPO / "recipes/nano3/assets/corpus-tiny"
STAGE_MODULE = "nemotron.stages.data_prep_pretrain"
NAME = "test-data"
NUM_SHARDS = 8
SPLITS = ("train", "valid", "test")
PARTIAL = re.compile(r"\.(?:bin|idx)\.tmp(\d+)$")  # a shard file being written by process <pid>
PLANNED = re.compile(rf"{NUM_SHARDS} shards planned, (\d+) of {NUM_SHARDS} already done, (\d+) to do")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two JSONL datasets of about 3 MB each (the shipped corpus' paragraphs, repeated with variants)."""
    root = tmp_path_factory.mktemp("corpus")
    datasets = []
    for name, weight in (("python-tutorial", 0.4), ("python-library", 0.6)):
        paragraphs = [
            p
            for line in (SHIPPED_CORPUS / f"{name}.jsonl").read_text().splitlines()
            for p in json.loads(line)["text"].split("\n\n")
            if p.strip()
        ]
        size, index = 0, 0
        with open(root / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            while size < 3_000_000:
                round_, paragraph = divmod(index, len(paragraphs))
                text = paragraphs[paragraph] + (f" (variant {round_})" if round_ else "")
                line = json.dumps({"text": text}) + "\n"
                handle.write(line)
                size += len(line.encode())
                index += 1
        datasets.append({"name": name, "path": f"{name}.jsonl", "weight": weight})
    (root / "blend.json").write_text(json.dumps({"datasets": datasets}))
    return root / "blend.json"


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory, stage_config, prep_stage) -> tuple[Path, Path]:
    """An uninterrupted run: (data folder, registry)."""
    root = tmp_path_factory.mktemp("clean")
    data, registry = root / "data", root / "registry"
    out = prep_stage(stage_config(root / "config.yaml", corpus, data), registry)
    assert f"{NUM_SHARDS} shards planned, 0 of {NUM_SHARDS} already done" in out
    assert f"published {NAME}:v1" in out
    return data, registry


# -- helpers -------------------------------------------------------------------------------------


def shard_files(data: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data)): p.read_bytes()
        for split in SPLITS
        for p in sorted((data / split).rglob("*"))
        if p.is_file() and p.suffix in (".bin", ".idx")
    }


def receipts(data: Path) -> list[Path]:
    return sorted((data / "receipts").glob("*/shard_*.json"))


def receipt_contents(data: Path) -> dict[str, bytes]:
    """Receipts as bytes: nothing in them (no timing) differs between identical runs."""
    return {str(path.relative_to(data)): path.read_bytes() for path in receipts(data)}


def published_blend(registry: Path, data: Path) -> str:
    """The published blend.json with the data folder written as <data> (its shards are outside the registry)."""
    text = (registry / NAME / "v1" / "blend.json").read_text()
    assert str(data) in text
    return text.replace(str(data), "<data>")


def assert_same_as_clean(data: Path, registry: Path, clean: tuple[Path, Path]) -> None:
    clean_data, clean_registry = clean
    expected = shard_files(clean_data)
    assert len(expected) > 2 * NUM_SHARDS
    assert shard_files(data) == expected
    assert receipt_contents(data) == receipt_contents(clean_data)
    assert published_blend(registry, data) == published_blend(clean_registry, clean_data)


MARK_NS = 10**18  # 2001: a receipt (or shard file) rewritten by the rerun gets a newer mtime


def mark(paths: list[Path]) -> None:
    """Date the files back: still valid, and a rewritten one shows by its mtime."""
    for path in paths:
        os.utime(path, ns=(MARK_NS, MARK_NS))


def redone(data: Path) -> list[str]:
    return [str(p.relative_to(data / "receipts")) for p in receipts(data) if p.stat().st_mtime_ns != MARK_NS]


def published_data(registry: Path, version: str = "v1") -> dict[str, list[tuple[float, bytes, bytes]]]:
    """split -> (weight, .bin bytes, .idx bytes) of every shard the published blend.json lists."""
    folder = registry / NAME / version
    out = {}
    for split, entry in json.loads((folder / "blend.json").read_text()).items():
        pairs = zip(entry[::2], entry[1::2], strict=True)
        out[split] = [(w, (folder / f"{p}.bin").read_bytes(), (folder / f"{p}.idx").read_bytes()) for w, p in pairs]
    return out


def partial_writers(data: Path) -> set[int]:
    """Processes that have a shard file open under a temporary name (pids from the names)."""
    pids = set()
    for split in SPLITS:
        if (data / split).is_dir():
            for path in (data / split).rglob("*"):
                match = PARTIAL.search(path.name)
                if match:
                    pids.add(int(match.group(1)))
    return pids


@contextlib.contextmanager
def stage_process(config: Path, registry: Path, logs: Path):
    """The stage as its own process group (stdout/stderr to files); the group is killed if left running."""
    env = {**os.environ, "NEMOTRON_ARTIFACTS_ROOT": str(registry), "HF_HUB_OFFLINE": "1"}
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", STAGE_MODULE, "--config", str(config)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def output(logs: Path) -> str:
    return f"stdout:\n{(logs / 'stdout').read_text()}\nstderr:\n{(logs / 'stderr').read_text()}"


def freeze_worker_mid_shard(proc: subprocess.Popen, data: Path, logs: Path) -> int:
    """SIGSTOP a worker of the stage while it is writing a shard; returns its pid.

    A worker is caught when, once stopped, it still has a shard file under its temporary name:
    its receipt for that shard cannot appear until it is continued.
    """
    while True:
        assert proc.poll() is None, f"the stage ended before a worker was caught mid-shard\n{output(logs)}"
        try:
            workers = {child.pid for child in psutil.Process(proc.pid).children()}
        except psutil.NoSuchProcess:
            continue
        for pid in sorted(partial_writers(data) & workers):
            os.kill(pid, signal.SIGSTOP)
            worker = psutil.Process(pid)
            while worker.status() != psutil.STATUS_STOPPED:
                time.sleep(0.001)
            if pid in partial_writers(data):
                return pid
            os.kill(pid, signal.SIGCONT)  # it finished that shard meanwhile; catch it in the next
        time.sleep(0.002)


def wait_for_receipts(proc: subprocess.Popen, data: Path, count: int, logs: Path) -> int:
    while len(receipts(data)) < count:
        assert proc.poll() is None, f"the stage ended with {len(receipts(data))} receipts\n{output(logs)}"
        time.sleep(0.005)
    return len(receipts(data))


def planned(out: str) -> tuple[int, int]:
    match = PLANNED.search(out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


# -- kills ---------------------------------------------------------------------------------------


def test_a_killed_worker_fails_the_stage_and_a_rerun_resumes_to_identical_bytes(
    corpus, clean, tmp_path, stage_config, prep_stage, registry_versions
):
    data, registry = tmp_path / "data", tmp_path / "registry"
    # two workers, one document per batch (batching must not change the bytes either)
    config = stage_config(tmp_path / "kill.yaml", corpus, data, workers=2, batch_size=1)
    with stage_process(config, registry, tmp_path) as proc:
        worker = freeze_worker_mid_shard(proc, data, tmp_path)
        finished = wait_for_receipts(proc, data, 1, tmp_path)  # the other worker goes on
        assert finished < NUM_SHARDS
        os.kill(worker, signal.SIGKILL)
        code = proc.wait(timeout=300)
    stderr = (tmp_path / "stderr").read_text()
    assert code == 1, output(tmp_path)
    assert "error: a data prep worker died" in stderr and "re-run the stage to resume" in stderr, stderr
    assert "Traceback" not in stderr
    assert registry_versions(registry, NAME) == []
    left = len(receipts(data))
    assert finished <= left < NUM_SHARDS
    assert worker in partial_writers(data)  # its half-written shard stays behind under a temporary name

    out = prep_stage(stage_config(tmp_path / "resume.yaml", corpus, data), registry)
    assert planned(out) == (left, NUM_SHARDS - left)  # finished shards are not redone
    assert f"published {NAME}:v1" in out
    assert_same_as_clean(data, registry, clean)


def test_killing_the_whole_stage_then_rerunning_gives_identical_bytes(
    corpus, clean, tmp_path, stage_config, prep_stage, registry_versions
):
    data, registry = tmp_path / "data", tmp_path / "registry"
    config = stage_config(tmp_path / "kill.yaml", corpus, data, workers=2, batch_size=1)
    with stage_process(config, registry, tmp_path) as proc:
        worker = freeze_worker_mid_shard(proc, data, tmp_path)
        wait_for_receipts(proc, data, 3, tmp_path)
        os.killpg(proc.pid, signal.SIGKILL)  # stage, workers, everything: no chance to clean up
        code = proc.wait(timeout=60)
    assert code == -signal.SIGKILL
    assert registry_versions(registry, NAME) == []
    left = len(receipts(data))
    assert 3 <= left < NUM_SHARDS
    assert worker in partial_writers(data)

    out = prep_stage(stage_config(tmp_path / "resume.yaml", corpus, data), registry)
    assert planned(out) == (left, NUM_SHARDS - left)
    assert_same_as_clean(data, registry, clean)
    assert worker not in partial_writers(data)  # redoing a shard removes the killed run's temporary files


# -- damaged or forced reruns ----------------------------------------------------------------------


def test_corrupt_shards_are_redone_beside_the_damaged_files(clean, corpus, tmp_path, stage_config, prep_stage):
    """A repair never writes over a file a published version may point at: new bytes get a new name."""
    data, registry = tmp_path / "data", tmp_path / "registry"
    shutil.copytree(clean[0], data)
    mark(receipts(data))
    truncated = data / "train" / "python-library" / "shard_00001.bin"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    flipped = data / "valid" / "python-tutorial" / "shard_00002.idx"
    content = bytearray(flipped.read_bytes())
    content[len(content) // 2] ^= 0xFF
    flipped.write_bytes(bytes(content))  # same size, other bytes
    stale = data / "train" / "python-tutorial" / "shard_00000.bin.tmp999999"
    stale.write_bytes(b"left by a killed run")

    out = prep_stage(stage_config(tmp_path / "config.yaml", corpus, data), registry)
    assert planned(out) == (NUM_SHARDS - 2, 2)
    assert redone(data) == ["python-library/shard_00001.json", "python-tutorial/shard_00002.json"]
    assert published_data(registry) == published_data(clean[1])
    blend = (registry / NAME / "v1" / "blend.json").read_text()
    assert "python-library/shard_00001.g1" in blend and "python-tutorial/shard_00002.g1" in blend
    assert truncated.stat().st_size < (data / "train" / "python-library" / "shard_00001.g1.bin").stat().st_size
    assert flipped.read_bytes() == bytes(content)  # the damaged files are left as they were
    assert stale.read_bytes() == b"left by a killed run"


def test_force_redoes_every_shard(clean, corpus, tmp_path, stage_config, prep_stage):
    data, registry = tmp_path / "data", tmp_path / "registry"
    shutil.copytree(clean[0], data)
    files = [p for split in SPLITS for p in (data / split).rglob("*") if p.is_file()]
    mark(receipts(data) + files)
    out = prep_stage(stage_config(tmp_path / "config.yaml", corpus, data, force=True), registry)
    assert planned(out) == (0, NUM_SHARDS)
    assert len(redone(data)) == NUM_SHARDS
    assert_same_as_clean(data, registry, clean)
    # the same bytes came out: the files a published version may point at were not even rewritten
    assert {p.stat().st_mtime_ns for p in files} == {MARK_NS}


def test_an_unchanged_rerun_through_the_cli_publishes_nothing(run_cli, nemotron_home, registry_versions):
    prep = ("nano3", "data", "prep", "pretrain", "-c", "tiny", "workers=1")
    first = run_cli(*prep, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "published nano3-pretrain-data-tiny:v1" in first.stdout
    again = run_cli(*prep, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 shards planned, 4 of 4 already done, 0 to do" in again.stdout
    assert "nothing changed: nano3-pretrain-data-tiny:v1 already holds this data" in again.stdout
    assert "published" not in again.stdout
    assert registry_versions(nemotron_home / "artifacts", "nano3-pretrain-data-tiny") == ["v1"]
