"""A signal to the whole process group during a checkpoint save (scancel, Slurm preemption / time-limit warning).

Slurm signals every process of the job step, so megatron's helper processes of a save in progress (the
spawned multiprocessing Manager that carries the write results, the forked writer processes) get the
signal too. They must leave it to the training process: the save completes, the training process's
PreemptionWatcher records the signal and the run stops with a complete checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from nemotron.training.checkpoint.layout import INFO_FILE, latest_checkpoint
from nemotron.training.checkpoint.signals import HELD_SIGNALS, helpers_keep_out_of_signals
from nemotron.training.checkpoint.store import load_checkpoint
from nemotron.training.distributed.parallel import TORCHRUN_VARS
from nemotron.training.distributed.preemption import TERMINATED, TIME_LIMIT, PreemptionWatcher

WORKER_PATH = Path(__file__).resolve().parent / "save_signal_worker.py"
_spec = importlib.util.spec_from_file_location("save_signal_worker", WORKER_PATH)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def _wait_for(predicate, timeout: float, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the worker exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie still counts as a member: treat as alive
        return True
    return True


def _blocked() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_processes_started_in_the_block_inherit_the_blocked_signals_and_the_mask_is_restored():
    before = _blocked()
    with helpers_keep_out_of_signals():
        assert HELD_SIGNALS <= _blocked()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import signal; print(sorted(map(int, signal.pthread_sigmask(signal.SIG_BLOCK, []))))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    assert HELD_SIGNALS <= set(json.loads(child.stdout))
    assert _blocked() == before


def test_a_signal_during_the_block_reaches_the_process_after_it():
    watcher = PreemptionWatcher().install()
    try:
        with pytest.raises(RuntimeError), helpers_keep_out_of_signals():
            # to this thread: a signal to the process may go to another of its threads (torch's), unblocked
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            time.sleep(0.05)
            assert not watcher.requested  # pending while the helpers could be starting
            raise RuntimeError("the save failed")  # the mask is restored all the same
        time.sleep(0.05)
        assert watcher.requested and watcher.signal_name == "SIGTERM"
    finally:
        watcher.uninstall()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("signum", "reason"), [(signal.SIGTERM, TERMINATED), (signal.SIGUSR1, TIME_LIMIT)], ids=["SIGTERM", "SIGUSR1"]
)
def test_a_save_in_progress_completes_when_the_process_group_is_signalled(tmp_path, signum, reason):
    """Expected: exit 1 with `error: stopped ...` (what the pretrain stage does after a stop), the signal
    recorded by the watcher, iter_0000001 complete, `latest` naming it, and its data loadable."""
    root, out = tmp_path / "ckpt", tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    log = out / "log.txt"
    with open(log, "w") as sink:  # a file, not a pipe: an orphaned helper cannot block us
        proc = subprocess.Popen(
            [sys.executable, str(WORKER_PATH), str(root), str(out), "3"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a Slurm job step
        )
    pgid = proc.pid
    try:
        _wait_for(lambda: (out / "save_started").exists(), 120, proc, "save_started", log)
        # the writers run: the Manager process holding the results queue and the writer processes are alive
        _wait_for(lambda: any(out.glob("writing-*")), 60, proc, "writer process", log)
        os.killpg(pgid, signum)
        code = proc.wait(timeout=120)
        output = log.read_text()
        assert code == 1, f"exit {code}, expected 1 (stopped after a complete save):\n{output[-4000:]}"
        result = json.loads((out / "result.json").read_text())
        assert result["saved"], output[-4000:]
        assert result["signal"] == signal.Signals(signum).name and result["reason"] == reason
        assert "BrokenPipeError" not in output and "Traceback" not in output, output[-4000:]
        assert f"error: stopped at step 1 ({reason})" in output

        folder = root / "iter_0000001"
        assert (folder / INFO_FILE).is_file() and not (root / "iter_0000001.partial").exists()
        assert latest_checkpoint(root).path == folder
        loaded = load_checkpoint(folder, worker.big_request())
        assert torch.equal(loaded["big"], torch.arange(worker.NUMEL, dtype=torch.float32))

        deadline = time.monotonic() + 30  # the helpers end with the training process
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(pgid), "helper processes of the save outlived the training process"
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()
