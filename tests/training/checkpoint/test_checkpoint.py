"""Distributed checkpoints: layout, atomic commit, pruning, `latest`, corruption errors and data-parallel resharding."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import checkpoint_worker as worker
import numpy as np
import pytest
import torch
import torch.distributed as dist
from megatron.core.dist_checkpointing.mapping import ShardedObject, ShardedTensor
from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

from nemotron.config.errors import ConfigError
from nemotron.training.checkpoint.layout import (
    INFO_FILE,
    CheckpointError,
    CheckpointInfo,
    latest_checkpoint,
    read_checkpoint_info,
)
from nemotron.training.checkpoint.rng import restore_rng, rng_sharded_state, rng_state
from nemotron.training.checkpoint.store import load_checkpoint, save_checkpoint
from nemotron.training.distributed.parallel import TORCHRUN_VARS, destroy_distributed, init_distributed
from nemotron.training.errors import TrainingError
from nemotron.training.model.config import ParallelConfig

WORKER_PATH = Path(__file__).resolve().parents[1] / "checkpoint_worker.py"


def tiny_state(value: float) -> dict:
    """A sharded dict without a model: one sharded tensor plus plain values (common.pt)."""
    return {"w": ShardedTensor.from_rank_offsets("w", torch.full((4, 3), value)), "plain": {"value": value}}


def tiny_request() -> dict:
    return {"w": ShardedTensor.from_rank_offsets("w", torch.zeros(4, 3))}


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- layout, commit and `latest` (no model; also the no-process-group path) -------------------------


def test_checkpoint_error_is_a_training_error_not_a_config_error():
    assert issubclass(CheckpointError, TrainingError) and not issubclass(CheckpointError, ConfigError)


def test_save_without_a_process_group_writes_the_documented_layout(tmp_path):
    assert not dist.is_initialized()
    info = save_checkpoint(tmp_path / "ckpt", 100, tiny_state(1.5), {"run": "demo", "tokens": 12}, keep_last=None)
    assert not dist.is_initialized(), "the temporary one-process group is torn down again"

    folder = tmp_path / "ckpt" / "iter_0000100"
    assert info == CheckpointInfo(path=folder, iteration=100, metadata={"run": "demo", "tokens": 12})
    assert (tmp_path / "ckpt" / "latest").read_text() == "iter_0000100\n"
    written = json.loads((folder / INFO_FILE).read_text())
    assert written == {"format_version": 1, "iteration": 100, "run": "demo", "tokens": 12}
    names = {path.name for path in folder.iterdir()}
    assert {"metadata.json", "common.pt", ".metadata", INFO_FILE} <= names
    assert any(name.startswith("__") and name.endswith(".distcp") for name in names)
    assert sorted(path.name for path in (tmp_path / "ckpt").iterdir()) == ["iter_0000100", "latest"]

    assert latest_checkpoint(tmp_path / "ckpt") == info
    assert read_checkpoint_info(folder) == info
    loaded = load_checkpoint(info, tiny_request())
    assert torch.equal(loaded["w"], torch.full((4, 3), 1.5)) and loaded["plain"] == {"value": 1.5}


def test_no_checkpoint_means_none(tmp_path):
    assert latest_checkpoint(tmp_path / "absent") is None
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "iter_0000007.partial").mkdir()
    (tmp_path / "iter_0000008").mkdir()  # no info file: not a checkpoint
    assert latest_checkpoint(tmp_path) is None


class _FailsWhenPickled:
    def __reduce__(self):
        raise RuntimeError("disk full (simulated)")


def test_a_failed_save_leaves_the_previous_checkpoint_and_latest_untouched(tmp_path):
    root = tmp_path / "ckpt"
    save_checkpoint(root, 1, tiny_state(1.0), {}, keep_last=1)
    before = tree_digest(root)

    broken = {**tiny_state(2.0), "bad": ShardedObject("bad", _FailsWhenPickled(), (1,), (0,), replica_id=0)}
    with pytest.raises(
        CheckpointError, match=r"iter_0000002 failed: .*disk full.*iter_0000002\.partial was removed.*untouched"
    ):
        save_checkpoint(root, 2, broken, {}, keep_last=1)
    assert not (root / "iter_0000002.partial").exists() and not (root / "iter_0000002").exists()
    assert tree_digest(root) == before
    assert latest_checkpoint(root).iteration == 1

    save_checkpoint(root, 3, tiny_state(3.0), {}, keep_last=None)
    assert sorted(path.name for path in root.iterdir()) == ["iter_0000001", "iter_0000003", "latest"]


def test_resaving_an_iteration_replaces_it(tmp_path):
    root = tmp_path / "ckpt"
    save_checkpoint(root, 5, tiny_state(1.0), {"attempt": 1}, keep_last=None)
    save_checkpoint(root, 5, tiny_state(2.0), {"attempt": 2}, keep_last=None)
    assert sorted(path.name for path in root.iterdir()) == ["iter_0000005", "latest"]
    info = latest_checkpoint(root)
    assert info.metadata == {"attempt": 2}
    assert torch.equal(load_checkpoint(info, tiny_request())["w"], torch.full((4, 3), 2.0))


def test_a_resave_interrupted_between_its_two_renames_keeps_the_old_version(tmp_path):
    root = tmp_path / "ckpt"
    save_checkpoint(root, 5, tiny_state(1.0), {"attempt": 1}, keep_last=None)
    # The state a crash leaves after the old folder was moved aside and before the new one was renamed.
    os.replace(root / "iter_0000005", root / "iter_0000005.replaced")
    shutil.copytree(root / "iter_0000005.replaced", root / "iter_0000005.partial")

    info = latest_checkpoint(root)
    assert (info.iteration, info.metadata, info.path.name) == (5, {"attempt": 1}, "iter_0000005.replaced")
    assert torch.equal(load_checkpoint(info, tiny_request())["w"], torch.full((4, 3), 1.0))

    save_checkpoint(root, 6, tiny_state(2.0), {}, keep_last=None)
    assert sorted(path.name for path in root.iterdir()) == ["iter_0000005", "iter_0000006", "latest"]
    assert read_checkpoint_info(root / "iter_0000005").metadata == {"attempt": 1}


def test_keep_last_prunes_older_complete_checkpoints(tmp_path):
    root = tmp_path / "ckpt"
    for iteration in (1, 2, 3, 4):
        save_checkpoint(root, iteration, tiny_state(float(iteration)), {}, keep_last=2)
    assert sorted(path.name for path in root.iterdir()) == ["iter_0000003", "iter_0000004", "latest"]

    save_checkpoint(root, 5, tiny_state(5.0), {}, keep_last=None)
    assert len(list(root.glob("iter_*"))) == 3, "keep_last=None keeps everything"

    # An older iteration saved last is what `latest` names: pruning keeps it even if it is not among the newest.
    save_checkpoint(root, 2, tiny_state(2.0), {}, keep_last=1)
    assert (root / "latest").read_text() == "iter_0000002\n"
    assert sorted(path.name for path in root.glob("iter_*")) == ["iter_0000002", "iter_0000005"]


def test_missing_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    root = tmp_path / "ckpt"
    save_checkpoint(root, 10, tiny_state(1.0), {}, keep_last=None)
    save_checkpoint(root, 20, tiny_state(2.0), {}, keep_last=None)
    (root / "latest").unlink()  # e.g. killed between the rename and the `latest` update
    (root / "iter_0000030").mkdir()  # incomplete: no info file
    (root / "iter_0000040.partial").mkdir()
    assert latest_checkpoint(root).path == root / "iter_0000020"


def test_latest_naming_a_missing_folder_is_an_error(tmp_path):
    root = tmp_path / "ckpt"
    save_checkpoint(root, 1, tiny_state(1.0), {}, keep_last=None)
    (root / "latest").write_text("iter_0000009\n")
    with pytest.raises(CheckpointError) as err:
        latest_checkpoint(root)
    message = str(err.value)
    assert str(root / "iter_0000009") in message and "does not exist" in message
    assert "checkpoint.resume=false" in message and "checkpoint.load" in message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("no_info", "has no nemotron_checkpoint.json"),
        ("garbage_info", "unreadable"),
        ("bad_version", "format_version 99"),
        ("garbage_latest", "not an iter_XXXXXXX folder name"),
    ],
)
def test_latest_pointing_at_a_broken_folder_is_an_error(tmp_path, damage, expected):
    root = tmp_path / "ckpt"
    save_checkpoint(root, 1, tiny_state(1.0), {}, keep_last=None)
    info_file = root / "iter_0000001" / INFO_FILE
    if damage == "no_info":
        info_file.unlink()
    elif damage == "garbage_info":
        info_file.write_text("{not json")
    elif damage == "bad_version":
        info_file.write_text(json.dumps({"format_version": 99, "iteration": 1}))
    else:
        (root / "latest").write_text("../elsewhere\n")
    with pytest.raises(CheckpointError, match=expected) as err:
        latest_checkpoint(root)
    assert str(root) in str(err.value)


def test_read_checkpoint_info_rejects_what_is_not_a_complete_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint_info(tmp_path / "iter_0000001")
    (tmp_path / "iter_0000001").mkdir()
    with pytest.raises(CheckpointError, match="save never completed"):
        read_checkpoint_info(tmp_path / "iter_0000001")
    (tmp_path / "iter_0000001" / INFO_FILE).write_text(json.dumps({"format_version": 1, "iteration": 2}))
    with pytest.raises(CheckpointError, match="folder name says iteration 1"):
        read_checkpoint_info(tmp_path / "iter_0000001")
    with pytest.raises(CheckpointError, match="unfinished save"):
        load_checkpoint(tmp_path / "iter_0000003.partial", tiny_request())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(iteration=-1), "iteration must be an integer"),
        (dict(keep_last=0), "keep_last must be a positive integer"),
        (dict(metadata={"iteration": 3}), "reserved"),
        (dict(metadata={"when": object()}), "not JSON-serialisable"),
    ],
)
def test_bad_save_arguments_fail_before_anything_is_written(tmp_path, kwargs, expected):
    arguments = {"iteration": 1, "metadata": {}, "keep_last": None, **kwargs}
    with pytest.raises(CheckpointError, match=expected):
        save_checkpoint(tmp_path / "ckpt", sharded_state_dict=tiny_state(1.0), **arguments)
    assert not (tmp_path / "ckpt").exists()


# --- RNG --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_rng_sharded_state_is_one_object_per_model_parallel_rank(dist_group):
    state = rng_sharded_state()
    assert isinstance(state, ShardedObject) and state.key == "rng_state"
    assert (state.global_shape, state.global_offset, state.replica_id) == ((1, 1), (0, 0), 0)


@pytest.mark.integration
def test_restore_rng_rewinds_every_generator(dist_group):
    saved = rng_state()

    def draw():
        with get_cuda_rng_tracker().fork():
            tracked = torch.rand(3)
        return random.random(), float(np.random.rand()), torch.rand(3), tracked

    first = draw()
    restore_rng(saved)
    second = draw()
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    with pytest.raises(CheckpointError, match="rng_state"):
        restore_rng({"torch": 1})


# --- real model + optimizer ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_round_trip_restores_weights_optimizer_scheduler_data_and_rng(dist_group, tmp_path, tie):
    model, optimizer, scheduler = worker.build_state(seed=1, tie=tie)
    worker.train(model, optimizer, scheduler, 2)
    state = worker.sharded_state(model, optimizer, scheduler, worker.DATA_POSITION)
    saved = save_checkpoint(tmp_path / "ckpt", 2, state, {"tokens": 64}, keep_last=3)
    expected = worker.snapshot(model, optimizer, scheduler)
    next_rand = torch.rand(4)

    fresh = worker.build_state(seed=2, tie=tie)
    before = worker.snapshot(*fresh)
    assert not all(torch.equal(expected["weights"][k], before["weights"][k]) for k in expected["weights"])

    info = latest_checkpoint(tmp_path / "ckpt")
    assert info == saved
    loaded = load_checkpoint(info, worker.sharded_state(*fresh, {}))
    data = worker.restore(*fresh, loaded)
    worker.assert_same(expected, worker.snapshot(*fresh))
    assert all(float(v) == 2.0 for k, v in worker.snapshot(*fresh)["moments"].items() if k.endswith("/step"))
    assert fresh[2].current_step == 2
    assert data == worker.DATA_POSITION
    assert torch.equal(torch.rand(4), next_rand), "the RNG continues where the saved run was"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A real model + optimizer checkpoint, saved once; tests damage copies of it."""
    root = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as mp:
        for name in TORCHRUN_VARS:
            mp.delenv(name, raising=False)
        init_distributed(ParallelConfig(), seed=1)
    try:
        parts = worker.build_state(seed=1, tie=False)
        worker.train(*parts, 1)
        save_checkpoint(root, 1, worker.sharded_state(*parts, worker.DATA_POSITION), {}, keep_last=None)
    finally:
        destroy_distributed()
    return root / "iter_0000001"


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "deleted shard": (lambda f: _first(f, "__*.distcp").unlink(), r"shard file .*__0_0\.distcp is missing"),
    "truncated shard": (lambda f: _truncate(_first(f, "__*.distcp")), r"__0_0\.distcp is truncated"),
    "truncated .metadata": (lambda f: _truncate(f / ".metadata"), r"\.metadata is missing or corrupted"),
    "garbage .metadata": (
        lambda f: (f / ".metadata").write_bytes(b"\x80garbage" * 10),
        r"\.metadata is missing or corrupted",
    ),
    "garbage common.pt": (lambda f: (f / "common.pt").write_bytes(b"garbage" * 50), r"common\.pt is corrupted"),
    "truncated common.pt": (lambda f: _truncate(f / "common.pt"), r"common\.pt is corrupted"),
    "deleted metadata.json": (lambda f: (f / "metadata.json").unlink(), r"metadata\.json is missing"),
    # same size, other bytes: only torch's reader finds out, and reports it as a CheckpointException (a
    # BaseException holding every rank's traceback); the error is one line with the first rank's failure
    "scrambled shard": (
        lambda f: _first(f, "__*.distcp").write_bytes(b"\xff" * _first(f, "__*.distcp").stat().st_size),
        r"^loading checkpoint [^\n]* failed \(rank 0: \w+: [^\n]*\); its files are damaged[^\n]*$",
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_files_are_reported_with_the_folder_and_file(dist_group, pristine, tmp_path, damage):
    corrupt, expected = damage
    folder = tmp_path / pristine.name
    shutil.copytree(pristine, folder)
    corrupt(folder)
    parts = worker.build_state(seed=3, tie=False)
    with pytest.raises(CheckpointError, match=expected) as err:
        load_checkpoint(folder, worker.sharded_state(*parts, {}))
    assert str(folder) in str(err.value)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (dict(ffn_hidden_size=256), r"tensors have other shapes \(decoder\.layers\.mlp\.linear_fc1\.weight"),
        (dict(num_layers=3), r"decoder\.layers\..*checkpoint \(2, .*this run \(3, "),
        (dict(qk_layernorm=True), r"requested keys are not in it \(.*q_layernorm"),
    ],
    ids=["ffn-size", "num-layers", "qk-layernorm"],
)
def test_a_different_model_config_is_named_as_the_cause(dist_group, pristine, changes, expected):
    parts = worker.build_state(seed=3, tie=False, **changes)
    with pytest.raises(CheckpointError, match=expected) as err:
        load_checkpoint(pristine, worker.sharded_state(*parts, {}))
    message = str(err.value)
    assert str(pristine) in message and "model config differs" in message


@pytest.mark.integration
def test_non_strict_load_skips_keys_the_checkpoint_lacks(dist_group, pristine):
    model, _, _ = worker.build_state(seed=3, tie=False, qk_layernorm=True)
    loaded = load_checkpoint(pristine, {"model": model.sharded_state_dict()}, strict=False)
    assert "decoder.layers.0.self_attention.linear_proj.weight" in loaded["model"]
    assert not any("q_layernorm" in key for key in loaded["model"])


@pytest.mark.integration
def test_loading_only_the_model_from_a_full_checkpoint(dist_group, pristine):
    model, _, _ = worker.build_state(seed=3, tie=False)
    loaded = load_checkpoint(pristine, {"model": model.sharded_state_dict()})
    assert set(loaded) >= {"model", "data"}  # plain values come along; optimizer tensors are not read
    model.load_state_dict(loaded["model"])


# --- processes: a killed save, and other data-parallel sizes -------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_job(mode: str, root: Path, out: Path, nprocs: int, *, tie: bool = False, timeout: float = 180) -> list[int]:
    """Run checkpoint_worker.py as `nprocs` ranks (torchrun-style variables when > 1); returns exit codes."""
    out.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    port = str(_free_port())
    procs = []
    for rank in range(nprocs):
        env = dict(base)
        if nprocs > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(nprocs), LOCAL_RANK=str(rank))
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        command = [sys.executable, str(WORKER_PATH), mode, str(root), str(out), *(["--tie"] if tie else [])]
        with open(out / f"log{rank}.txt", "w") as log:  # files, not pipes: an orphaned helper cannot block us
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        return [proc.wait(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _logs(out: Path) -> str:
    return "\n".join(path.read_text()[-3000:] for path in sorted(out.glob("log*.txt")))


def _end_orphans(out: Path) -> None:
    listed = out / worker.CHILDREN_FILE
    for pid in (int(line) for line in listed.read_text().split()) if listed.exists() else ():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.integration
def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    root, out = tmp_path / "ckpt", tmp_path / "out"
    try:
        codes = run_job("crash", root, out, 1)
    finally:
        _end_orphans(out)
    assert codes == [3], _logs(out)
    assert (out / "saved_first").exists() and not (out / "survived").exists()
    assert (root / "latest").read_text() == "iter_0000001\n"
    assert (root / "iter_0000002.partial").is_dir() and not (root / "iter_0000002").exists()
    assert latest_checkpoint(root).iteration == 1

    with pytest.MonkeyPatch.context() as mp:
        for name in TORCHRUN_VARS:
            mp.delenv(name, raising=False)
        init_distributed(ParallelConfig(), seed=1)
    try:
        parts = worker.build_state(seed=5, tie=False)
        loaded = load_checkpoint(latest_checkpoint(root), worker.sharded_state(*parts, {}))
        assert loaded["data"] == worker.DATA_POSITION
        save_checkpoint(root, 3, worker.sharded_state(*parts, {}), {}, keep_last=None)
    finally:
        destroy_distributed()
    assert sorted(path.name for path in root.iterdir()) == ["iter_0000001", "iter_0000003", "latest"]


@pytest.mark.integration
def test_saved_with_two_data_parallel_ranks_loads_into_one(tmp_path, dist_group):
    root, out = tmp_path / "ckpt", tmp_path / "out"
    assert run_job("save", root, out, 2) == [0, 0], _logs(out)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2))
    worker.assert_same(rank0, rank1)  # data-parallel replicas hold identical state

    info = latest_checkpoint(root)
    assert info.metadata == {"data_parallel": 2}
    parts = worker.build_state(seed=7, tie=False)
    data = worker.restore(*parts, load_checkpoint(info, worker.sharded_state(*parts, {})))
    worker.assert_same(rank0, worker.snapshot(*parts))
    assert data == worker.DATA_POSITION
    assert torch.equal(torch.rand(4), rank0["next_rand"])


@pytest.mark.integration
def test_saved_with_one_data_parallel_rank_loads_into_two(tmp_path, dist_group):
    root, out = tmp_path / "ckpt", tmp_path / "out"
    parts = worker.build_state(seed=1, tie=True)
    worker.train(*parts, 2)
    save_checkpoint(root, 2, worker.sharded_state(*parts, worker.DATA_POSITION), {"data_parallel": 1}, keep_last=None)
    expected = worker.snapshot(*parts)
    next_rand = torch.rand(4)

    assert run_job("load", root, out, 2, tie=True) == [0, 0], _logs(out)
    for rank in range(2):
        actual = torch.load(out / f"rank{rank}.pt", weights_only=False)
        worker.assert_same(expected, actual)
        assert actual["data"] == worker.DATA_POSITION
        assert actual["info"].iteration == 2
        assert torch.equal(actual["next_rand"], next_rand), f"rank {rank} got another RNG state"
