"""The real CLI on a pseudo-terminal, for the tests of interactive flows and terminal output.

``on_terminal`` puts the chosen standard streams on one pty of the given size (the others are
pipes), types ``answers`` one by one as prompts appear (a prompt is text ending in one of
``prompt_ends`` followed by a space, on the stream that shows prompts: stderr), and returns
everything that was shown. ``tests/test_reliability_helpers.TerminalRun`` is the other kind: a
controlling terminal, driven step by step, for signals typed as Ctrl-C.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from tests.conftest import cli_env, koncis_cmd

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class Shown:
    code: int
    raw: bytes  # what the terminal received, escapes included
    stdout: str  # what went to stdout when it was a pipe
    stderr: str  # what went to stderr when it was a pipe ("\n" after each typed answer)

    @property
    def text(self) -> str:
        """What the terminal showed, colours removed, line ends as "\\n"."""
        return _ANSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r\n", "\n")

    def screen(self, columns: int, lines: int) -> list[str]:
        """The non-empty lines of the screen as a terminal of this size draws them."""
        import pyte

        screen = pyte.Screen(columns, lines)
        pyte.ByteStream(screen).feed(self.raw)
        return [line.rstrip() for line in screen.display if line.strip()]


def on_terminal(
    args: Sequence[str],
    *,
    answers: Sequence[str] = (),
    on_pty: Sequence[str] = ("stdin", "stdout", "stderr"),
    columns: int = 80,
    lines: int = 500,
    prompt_ends: tuple[str, ...] = ("]", ":"),
    env: Optional[dict[str, str]] = None,
    timeout: float = 120,
) -> Shown:
    """Run ``koncis-diag ARGS`` with the streams named in ``on_pty`` on a terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))

    def stream(name: str, default: int) -> int:
        return slave if name in on_pty else default

    proc = subprocess.Popen(
        list(koncis_cmd(*args)),
        stdin=stream("stdin", subprocess.DEVNULL),
        stdout=stream("stdout", subprocess.PIPE),
        stderr=stream("stderr", subprocess.PIPE),
        env=env if env is not None else cli_env(COLUMNS=str(columns), LINES=str(lines)),
        close_fds=True,
    )
    os.close(slave)
    stdout_fd = proc.stdout.fileno() if proc.stdout is not None else None
    stderr_fd = proc.stderr.fileno() if proc.stderr is not None else None
    received = {fd: bytearray() for fd in (master, stdout_fd, stderr_fd) if fd is not None}
    open_fds = set(received)
    prompts = stderr_fd if stderr_fd is not None else master
    pending, answered = list(answers), 0
    deadline = time.monotonic() + timeout
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(sorted(open_fds), [], [], 0.2)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal (EIO)
                    chunk = b""
                if chunk:
                    received[fd] += chunk
                elif fd != master or proc.poll() is not None:
                    open_fds.discard(fd)
            shown = received[prompts][answered:].decode("utf-8", "replace")
            if pending and shown.endswith(" ") and shown.rstrip(" ").endswith(prompt_ends):
                os.write(master, (pending.pop(0) + "\n").encode())
                if prompts != master:
                    received[prompts] += b"\n"
                answered = len(received[prompts])
            if not ready and proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        os.close(master)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def text_of(fd: Optional[int]) -> str:
        return "" if fd is None else bytes(received[fd]).decode("utf-8", "replace")

    return Shown(code, bytes(received[master]), text_of(stdout_fd), text_of(stderr_fd))
