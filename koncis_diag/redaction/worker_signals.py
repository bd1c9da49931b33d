"""Signals around worker processes: held while they start, then theirs to handle.

A worker is forked with its parent's handlers. A Ctrl-C or SIGTERM arriving between the fork
and the worker installing its own handlers would run the parent's handler in the worker
(which raises, or ignores further signals and leaves an orphan). So the parent holds both
signals while it starts workers (``signals_held``) and hands the mask to restore to each
worker, which installs its handlers before taking them (``worker_takes_signals``).

The parent also holds them around calls that take a lock its cleanup needs again
(``multiprocessing.Queue.put``): the CLI's handler raises, and raising between a lock's
acquire and its ``with`` block leaves the lock taken for good.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

HELD = {signal.SIGINT, signal.SIGTERM}

Mask = Optional[set]


@contextmanager
def signals_held() -> Iterator[Mask]:
    """Hold Ctrl-C and SIGTERM in the block; yields the mask that was in force before (None
    where the platform has no ``pthread_sigmask``), restored on the way out."""
    block = getattr(signal, "pthread_sigmask", None)
    mask = block(signal.SIG_BLOCK, HELD) if block is not None else None
    try:
        yield mask
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def worker_takes_signals(mask: Mask) -> None:
    """In a worker started under ``signals_held``: Ctrl-C is the parent's to handle (ignored
    here), SIGTERM ends the worker, and the held signals are delivered only now."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the kernel kills this worker when its parent dies, even by SIGKILL (the OOM
    killer), so no worker outlives the run holding the mapping open; a parent already gone
    (the race before the call) ends it at once."""
    creator = multiprocessing.parent_process()  # the pid it had before the fork
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if creator is not None and os.getppid() != creator.pid:
        os._exit(1)  # re-parented already (to init or a subreaper): the parent is gone
