"""SIGTERM raised as an interrupt while a command follows a job, and the exit status each signal maps to."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from nemotron.interrupts import Terminated, interrupt_exit_code, sigterm_as_interrupt


def test_sigterm_inside_raises_terminated_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_terminated_is_handled_where_ctrl_c_is():
    with pytest.raises(KeyboardInterrupt) as caught, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert interrupt_exit_code(caught.value) == 143
    assert interrupt_exit_code(KeyboardInterrupt()) == 130


def test_outside_the_main_thread_it_changes_nothing():
    seen = []

    def body():
        with sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]
