"""Run gently on a production server: lower CPU and I/O priority for the whole run.

Call ``lower_priority`` once, early, from the main thread, before starting threads or worker
processes: on Linux the niceness belongs to the calling thread, and children inherit the
priorities of whoever starts them. Only ever lowers (no privilege is needed for that) and
never fails the run: what could not be changed is said in the returned description.

Modes:

* ``low`` (default): niceness at least 10; I/O best-effort at its lowest level (7). Not the
  idle I/O class: on a disk that is never idle it could starve the collection for hours.
* ``idle``: niceness 19 and the idle I/O class, for a server where only leftovers may be used.
* ``normal``: nothing changes.
"""

from __future__ import annotations

import os

import psutil

MODES = ("low", "idle", "normal")
_NICENESS = {"low": 10, "idle": 19}
_BEST_EFFORT_LOWEST = 7
_CLASS_NAMES = {0: "none", 1: "realtime", 2: "best-effort", 3: "idle"}


def lower_priority(mode: str = "low") -> str:
    """Lower this process's priorities as ``mode`` says; returns a line for the log."""
    if mode not in MODES:
        raise ValueError(f"unknown priority mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "normal":
        return "priority: normal (unchanged)"
    done: list[str] = []
    problems: list[str] = []
    _lower_cpu(_NICENESS[mode], done, problems)
    _lower_io(mode, done, problems)
    text = f"priority: {mode}: " + ", ".join(done) if done else f"priority: {mode}: no change"
    if problems:
        text += "; could not change " + "; ".join(problems)
    return text


def _lower_cpu(target: int, done: list[str], problems: list[str]) -> None:
    try:
        current = os.nice(0)
        if current < target:
            os.nice(target - current)
            done.append(f"CPU niceness {os.nice(0)} (was {current})")
        else:
            done.append(f"CPU niceness {current} (already at least {target})")
    except (AttributeError, OSError) as err:
        problems.append(f"CPU niceness ({_reason(err)})")


def _lower_io(mode: str, done: list[str], problems: list[str]) -> None:
    process = psutil.Process()
    if not hasattr(process, "ionice") or not hasattr(psutil, "IOPRIO_CLASS_IDLE"):
        problems.append("I/O priority (not supported on this system)")
        return
    try:
        before = process.ionice()
        if mode == "idle":
            if before.ioclass != psutil.IOPRIO_CLASS_IDLE:
                process.ionice(psutil.IOPRIO_CLASS_IDLE)
        elif before.ioclass != psutil.IOPRIO_CLASS_IDLE and not (
            before.ioclass == psutil.IOPRIO_CLASS_BE and before.value >= _BEST_EFFORT_LOWEST
        ):
            # ``none`` follows the niceness; realtime and higher best-effort levels are lowered
            process.ionice(psutil.IOPRIO_CLASS_BE, _BEST_EFFORT_LOWEST)
        after = process.ionice()
        done.append(f"I/O {_describe(after)} (was {_describe(before)})")
    except (psutil.Error, OSError, ValueError) as err:
        problems.append(f"I/O priority ({_reason(err)})")


def _describe(ionice: object) -> str:
    ioclass = int(getattr(ionice, "ioclass", 0))
    value = int(getattr(ionice, "value", 0))
    name = _CLASS_NAMES.get(ioclass, str(ioclass))
    return f"{name} {value}" if ioclass in (1, 2) else name


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
