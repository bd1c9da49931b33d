"""Ctrl-C and SIGTERM at every stage of a real collection (docs/reliability.md, "Signals"):
while a large file is collected, at the consent prompt on a real terminal, and while the
archive is written. Each time: the right exit code, one line, no staging folder, no partial
bundle.

To hit a stage for sure, the test freezes the process (SIGSTOP) as soon as the stage is seen
from outside, checks it is still in that stage, then sends the signal and lets it go on
(SIGCONT): the signal is handled in that stage, whatever the machine's speed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, Optional

import pytest

from tests.test_reliability_helpers import (
    STAGING_PREFIX,
    TerminalRun,
    base_env,
    koncis,
    random_words,
    wait_for,
)

MiB = 1024 * 1024
EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
MESSAGES: dict[int, str] = {
    signal.SIGINT: "error: interrupted (Ctrl-C): nothing was written, staging removed\n",
    signal.SIGTERM: "error: interrupted (SIGTERM): nothing was written, staging removed\n",
}


def _staged_files(out: Path) -> list[Path]:
    return [
        path
        for staging in out.glob(STAGING_PREFIX + "*")
        for path in staging.rglob("*")
        if path.is_file()
    ]


def _collecting_big_log(out: Path) -> bool:
    """The big log is being staged: some of it written, the manifest not yet."""
    files = _staged_files(out)
    big = [p for p in files if p.name == "big.log"]
    return (
        bool(big)
        and big[0].stat().st_size > 0
        and not any(p.name == "manifest.json" for p in files)
    )


def _writing_archive(out: Path) -> bool:
    return any(p.name.endswith(".partial") for p in out.iterdir())


def _interrupt_when(
    proc: subprocess.Popen, stage: Callable[[], bool], signum: int
) -> Optional[str]:
    """Freeze the process when ``stage()`` becomes true, check it still is, deliver
    ``signum`` and let it run. None on success, else why the stage was missed."""
    if not wait_for(lambda: stage() or proc.poll() is not None, seconds=120, step=0.0005):
        return "the stage never came"
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        if proc.poll() is not None or not stage():
            return "the stage was over before the process could be frozen"
        os.kill(proc.pid, signum)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    return None


def _collect_big_log(tmp_path: Path, size: int) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"big-{size}" / "big.log"
    log.parent.mkdir()
    log.write_bytes(random_words(size))
    out = tmp_path / f"out-{size}"
    out.mkdir()
    proc = subprocess.Popen(
        koncis("collect", "--files", str(log), "--no-system", "--yes", "-o", str(out)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=base_env(tmp_path / "home"),
        text=True,
    )
    return proc, out


def _interrupted_run(
    tmp_path: Path, signum: int, stage_of: Callable[[Path], bool], sizes: tuple[int, ...]
) -> tuple[subprocess.Popen, str, Path]:
    """Start collections of a growing log until one is caught in the stage (a fast machine
    may finish a small stage between two looks)."""
    missed = ""
    for size in sizes:
        proc, out = _collect_big_log(tmp_path, size)
        problem = _interrupt_when(proc, lambda out=out: stage_of(out), signum)  # type: ignore[misc]
        _, stderr = proc.communicate(timeout=120)
        if problem is None:
            return proc, stderr, out
        missed = problem
    pytest.fail(f"could not interrupt the run in the stage: {missed}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_a_large_file_is_collected(tmp_path: Path, signum: int) -> None:
    proc, stderr, out = _interrupted_run(
        tmp_path, signum, _collecting_big_log, (MiB, 4 * MiB, 16 * MiB)
    )
    assert proc.returncode == EXIT_CODES[signum], stderr
    assert stderr.endswith(MESSAGES[signum])
    assert "Traceback" not in stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_the_archive_is_written(tmp_path: Path, signum: int) -> None:
    proc, stderr, out = _interrupted_run(
        tmp_path, signum, _writing_archive, (2 * MiB, 6 * MiB, 16 * MiB)
    )
    assert proc.returncode == EXIT_CODES[signum], stderr
    assert stderr.endswith(MESSAGES[signum])
    assert "Traceback" not in stderr
    assert list(out.iterdir()) == []  # neither the .partial file nor a bundle nor staging


@pytest.mark.parametrize("how", ["ctrl-c typed", "SIGTERM"])
def test_signal_at_the_consent_prompt_on_a_terminal(tmp_path: Path, how: str) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"2026-11-28 10:00:00,000 INFO user anna@example.com logged in\n")
    out = tmp_path / "out"
    out.mkdir()
    args = ["collect", "--files", str(log), "--no-system", "-o", str(out)]
    run = TerminalRun(args, base_env(tmp_path / "home"))
    try:
        assert run.wait_for_prompt("Collect the items above?"), run.stderr.decode()
        run.type("y\n")
        assert run.wait_for_prompt("Write the bundle?"), run.stderr.decode()
        assert list(out.glob(STAGING_PREFIX + "*")), "staging should exist at the prompt"
        if how == "ctrl-c typed":
            run.type("\x03")  # the terminal turns it into SIGINT for its foreground group
        else:
            run.proc.send_signal(signal.SIGTERM)
        code, stderr = run.finish()
    finally:
        run.close()
    assert code == (130 if how == "ctrl-c typed" else 143), stderr
    assert "Traceback" not in stderr
    # one error line (the prompt that was waiting stays on the screen before it)
    assert (
        stderr.rstrip("\n")
        .splitlines()[-1]
        .endswith(
            "error: interrupted (Ctrl-C): nothing was written, staging removed"
            if how == "ctrl-c typed"
            else "error: interrupted (SIGTERM): nothing was written, staging removed"
        )
    )
    assert list(out.iterdir()) == []


DEFERRED = textwrap.dedent(
    """
    import os, signal
    from koncis_diag.bundle import Staging, deferred_signals
    from koncis_diag.errors import Interrupted

    def handler(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)
    steps = []
    try:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)  # arrives now, is held back
            steps.append("block finished")
        steps.append("after the block")
    except Interrupted:
        steps.append("interrupted")
    print(steps)
    staging = None
    try:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            staging = Staging.create(os.getcwd(), "koncis-diag-t-20261129T000000Z")
    except Interrupted:
        print("interrupted, staging known:", staging is not None)
        staging.cleanup()
    print(sorted(os.listdir(".")))
    """
)


def test_signals_held_back_are_handled_right_after_the_block(tmp_path: Path) -> None:
    """A signal that comes while a temporary file or folder is made is handled once its name
    is known to the cleanup: never lost, never early."""
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=base_env(tmp_path / "home"),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['block finished', 'interrupted']",
        "interrupted, staging known: True",
        "[]",
    ]
