"""Shared helpers of the reliability tests (docs/reliability.md), and the proof that the
non-root runner they use really drops root's powers.

Everything here drives the real CLI in subprocesses (``python -m koncis_diag``). Tests that
need permission bits to apply run it as ``nobody`` (root reads and writes everything): the
child gets ``nobody``'s uid/gid before ``exec`` (``subprocess`` ``user=``/``group=``), with an
interpreter ``nobody`` can execute and files in a private folder ``nobody`` owns.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
STAGING_PREFIX = ".koncis-diag-staging-"


def koncis(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "koncis_diag", *args]


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for one CLI run: its own HOME, state and config folders."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    home: Path,
    *,
    timeout: float = 120,
    cwd: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
    **popen: Any,
) -> subprocess.CompletedProcess:
    """``koncis-diag ARGS`` in a subprocess with no terminal; text output captured."""
    return subprocess.run(
        koncis(*args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env if env is not None else base_env(home),
        check=False,
        **popen,
    )


def one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    """The one ``error: ...`` line a failed run ends with (progress lines may come first;
    never a traceback, never a second error line)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert result.stderr.endswith("\n")
    return errors[0][len("error: ") :]


def write_spec(path: Path, name: str, items: str) -> Path:
    """A spec file: ``items`` is the YAML of the ``collect:`` list (indented by two)."""
    path.write_text(f"version: 1\nname: {name}\ncollect:\n{items}", encoding="utf-8")
    return path


def bundles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("koncis-diag-"))


def leftovers(folder: Path) -> list[str]:
    """Everything in the output folder that is not a finished bundle."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if not (p.name.startswith("koncis-diag-") and p.name.endswith((".zip", ".tar.gz")))
    )


def zip_members(path: Path) -> dict[str, bytes]:
    """Member name (below the top folder) -> content."""
    with zipfile.ZipFile(path) as archive:
        return {
            name.split("/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if not name.endswith("/")
        }


def outputs_by_path(members: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """The manifest's item outputs by bundle path."""
    manifest = json.loads(members["manifest.json"])
    return {o["path"]: o for item in manifest["items"] for o in item["outputs"]}


def random_words(size: int, seed: int = 7) -> bytes:
    """Log lines of random lower-case words: compress poorly, and no redaction rule touches
    them (so staged sizes are predictable)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    lines, total = [], 0
    while total < size:
        words = (
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
            for _ in range(rng.randint(6, 14))
        )
        line = ("2026-11-28 10:00:00,000 INFO " + " ".join(words) + "\n").encode()
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


# ------------------------------------------------------------------------- not as root


@dataclass(frozen=True)
class Unprivileged:
    """How to run the CLI without root's powers."""

    python: str
    popen: dict[str, Any]  # user/group/extra_groups for subprocess, or {} when not root
    pythonpath: str

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        return base_env(home, PYTHONPATH=self.pythonpath, **extra)

    def run(
        self, args: Sequence[str], home: Path, timeout: float = 120, **extra_env: str
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            koncis(*args, python=self.python),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=home,
            env=self.env(home, **extra_env),
            check=False,
            **self.popen,
        )


def _site_paths() -> str:
    paths = [str(REPO)]
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if path not in paths:
            paths.append(path)
    return os.pathsep.join(paths)


@functools.lru_cache(maxsize=1)
def unprivileged() -> Optional[Unprivileged]:
    """A way to run the CLI as ``nobody`` (or as ourselves when we are not root), or None."""
    pythonpath = _site_paths()
    if os.geteuid() != 0:
        return Unprivileged(sys.executable, {}, pythonpath)
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    popen: dict[str, Any] = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    # This venv's interpreter may live below /root (0700); a system interpreter of the same
    # version can load the same packages.
    candidates = [sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for python in candidates:
        if not os.path.exists(python):
            continue
        try:
            probe = subprocess.run(
                [python, "-c", "import click, rich, yaml, psutil, koncis_diag.cli.main"],
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, "HOME": "/"},
                capture_output=True,
                timeout=60,
                check=False,
                cwd="/",
                **popen,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return Unprivileged(python, popen, pythonpath)
    return None


def require_unprivileged() -> Unprivileged:
    runner = unprivileged()
    if runner is None:
        pytest.skip(
            "cannot run the CLI as a non-root user here: no 'nobody' account or no Python "
            "interpreter it may execute (the venv lives below a private folder)"
        )
    return runner


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A private folder (random name in the system temp folder) owned by the user the
    unprivileged runner uses; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="koncis-reliability-"))
    try:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        os.chmod(folder, 0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def owned_by_runner(path: Path) -> None:
    """Give ``path`` to the unprivileged runner's user (no-op when we are not root)."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)


def wait_for(condition: Callable[[], bool], seconds: float = 60, step: float = 0.001) -> bool:
    """Poll until ``condition()`` (no timing claim: a generous ceiling, then give up)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# ------------------------------------------------------------------- the runner itself


def test_the_unprivileged_runner_is_subject_to_permission_bits(nobody_dir: Path) -> None:
    runner = require_unprivileged()
    secret = nobody_dir / "root-only.txt"
    secret.write_text("x", encoding="utf-8")
    os.chmod(secret, 0)  # root would read it anyway; nobody (or a non-root owner) cannot
    probe = subprocess.run(
        [runner.python, "-c", f"open({str(secret)!r}).read()"],
        env=runner.env(nobody_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=nobody_dir,
        **runner.popen,
    )
    assert probe.returncode != 0
    assert "PermissionError" in probe.stderr


def test_the_unprivileged_runner_runs_the_cli(nobody_dir: Path) -> None:
    result = require_unprivileged().run(["--version"], nobody_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("koncis-diag, version ")


# ---------------------------------------------------------------- names created in a folder


class CreatedNames:
    """Every name created in a folder while it is watched (Linux inotify, through ctypes):
    proves which temporary names a run used, even those it removed before exiting."""

    _IN_CREATE = 0x00000100
    _IN_MOVED_TO = 0x00000080

    def __init__(self, folder: Path) -> None:
        import ctypes
        import ctypes.util

        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name or "libc.so.6", use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            pytest.skip("inotify is not available here")
        mask = self._IN_CREATE | self._IN_MOVED_TO
        if self._libc.inotify_add_watch(self._fd, os.fsencode(folder), mask) < 0:
            os.close(self._fd)
            pytest.skip("cannot watch the folder with inotify")

    def names(self) -> list[str]:
        """Names created since the watch started, in order (reads and ends the watch)."""
        import struct

        data = b""
        while True:
            try:
                block = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not block:
                break
            data += block
        os.close(self._fd)
        names, offset = [], 0
        while offset + 16 <= len(data):
            _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            raw = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
            names.append(os.fsdecode(raw))
            offset += 16 + length
        return names


# ------------------------------------------------------------------------- on a terminal


class TerminalRun:
    """The CLI with a real terminal: a pty is its controlling terminal (as in an SSH
    session), so typing Ctrl-C makes the kernel send SIGINT to it. Prompts go to stderr (a
    pipe, read here); answers are typed on the terminal."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], umask: Optional[int] = None
    ) -> None:
        import fcntl
        import pty
        import termios

        self.master, slave = pty.openpty()

        def become_terminal_session() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            if umask is not None:
                os.umask(umask)

        self.proc = subprocess.Popen(
            koncis(*args),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=become_terminal_session,
        )
        os.close(slave)
        self.stderr = b""

    def wait_for_prompt(self, text: str, seconds: float = 120) -> bool:
        """Read stderr until ``text`` has been shown and the prompt waits for an answer."""
        import select
        import time

        assert self.proc.stderr is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text.encode() in self.stderr and self.stderr.rstrip(b" ").endswith((b":", b"]")):
                return True
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    return False
                self.stderr += chunk
        return False

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())
        self.stderr += b"\n"  # the answer ends the prompt line

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Exit code and everything written to stderr."""
        _, rest = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, (self.stderr + rest).decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        os.close(self.master)
