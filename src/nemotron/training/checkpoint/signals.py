"""Leave the job's signals to the training process while megatron's helper processes of a save start.

Slurm signals every process of a job step (SIGTERM on scancel / preemption / time limit, SIGUSR1 before
the limit), and a terminal's Ctrl-C every process of its group (SIGINT). A checkpoint save starts helper
processes: a spawned multiprocessing Manager that carries the write results, and forked writer processes
(megatron.core.dist_checkpointing.strategies.filesystem_async). Spawned as they are, they die of such
a signal and the save fails (ConnectionRefusedError / BrokenPipeError).

`helpers_keep_out_of_signals()` blocks these signals in the calling thread for the duration of the
save: the helpers inherit the blocked mask (across fork and exec) and keep it, so a signal stays pending
in them, harmless, until they exit. The training process still gets the signal: the kernel hands it to
another of its threads (Python runs the handler in the main thread as always) or, when none can take
it, to this thread once the previous mask is restored at the end of the block. Its handlers
(PreemptionWatcher) only set flags, so the save goes on, and the run stops at the next step boundary
with the checkpoint just saved.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

HELD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})


@contextlib.contextmanager
def helpers_keep_out_of_signals() -> Iterator[None]:
    """Block HELD_SIGNALS in this thread for the block (processes started in it inherit that); then restore.

    Signals that arrive meanwhile are delivered to this process when the block ends.
    """
    from multiprocessing import resource_tracker

    # The resource tracker's first start unblocks SIGINT and SIGTERM again (multiprocessing's own guard
    # around its spawn): start it before blocking, so that nothing inside the block changes the mask.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
