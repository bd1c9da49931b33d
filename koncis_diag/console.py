"""The one place that knows about the terminal.

Results go to stdout, messages and progress to stderr. Colour and live progress only on a TTY
and never with ``NO_COLOR``; ``--json`` prints one versioned document on stdout and nothing
decorative; ``--quiet`` keeps only warnings and errors. Consoles are created when a command
runs (not at import) so tests can capture output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Optional, Protocol, Union

from rich.console import Console, RenderableType
from rich.markdown import Markdown
from rich.pager import Pager
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

JSON_SCHEMA_VERSION = 1

#: Characters that can move the cursor, erase or reorder what a terminal shows: C0 and C1
#: controls (ESC sequences, carriage return, backspace), bidi overrides and isolates, and
#: zero-width characters.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_UNSAFE_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\n]"
)


def shown(text: str, *, lines: bool = False) -> str:
    """Text from run instructions or from the server, safe to print: every control character,
    bidi override and zero-width character written as ``\\xNN`` or ``\\uNNNN``, so no text
    can move the cursor or draw over what the admin reads. Tabs stay; newlines stay only with
    ``lines`` (multi-line SQL)."""
    pattern = _UNSAFE if lines else _UNSAFE_LINES
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass
class Terminal:
    """Injectable view of the process's streams, so plain-when-piped is testable."""

    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def stdin_is_tty(self) -> bool:
        try:
            return self.stdin is not None and self.stdin.isatty()
        except (ValueError, AttributeError):
            return False

    def stderr_is_tty(self) -> bool:
        try:
            return self.stderr.isatty()
        except (ValueError, AttributeError):
            return False

    def stdout_is_tty(self) -> bool:
        try:
            return self.stdout.isatty()
        except (ValueError, AttributeError):
            return False


class UI:
    """Output policy for one command invocation."""

    def __init__(
        self,
        terminal: Optional[Terminal] = None,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        verbose: int = 0,
    ) -> None:
        self.term = terminal or Terminal()
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        no_color = bool(self.term.environ.get("NO_COLOR"))
        self.out = Console(
            file=self.term.stdout,
            no_color=no_color,
            highlight=False,
            width=_plain_width(self.term.stdout, self.term.environ),
        )
        self.err = Console(
            file=self.term.stderr,
            no_color=no_color,
            highlight=False,
            stderr=True,
            width=_plain_width(self.term.stderr, self.term.environ),
        )

    # ----------------------------------------------------------------- messages (stderr)
    @property
    def interactive(self) -> bool:
        return self.term.stdin_is_tty()

    def info(self, message: str) -> None:
        if not self.quiet and not self.json_mode:
            self.err.print(message, markup=False)

    def detail(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.err.print(message, markup=False, style="dim")

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False, style="yellow")

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False, style="bold red", soft_wrap=True)

    # ------------------------------------------------------------------ results (stdout)
    def emit_json(self, kind: str, payload: Mapping[str, object]) -> None:
        doc = {"schema": JSON_SCHEMA_VERSION, "kind": kind, **payload}
        self.term.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
        self.term.stdout.flush()

    def print(self, renderable: RenderableType = "") -> None:
        """A result on stdout: printed with --quiet too (quiet silences messages, not results)."""
        self.out.print(renderable, markup=False, soft_wrap=True)

    def table(
        self,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        stderr: bool = False,
    ) -> None:
        """A rich table on a terminal; tab-free aligned plain text when piped (rich does that)."""
        table = Table(title=title, title_justify="left", show_lines=False)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in row))
        (self.err if stderr else self.out).print(table)

    def document(self, markdown: str, *, pager: bool = True) -> None:
        """A long Markdown document on stdout. On a terminal: rendered by rich (as written with
        ``NO_COLOR``) and shown through the pager (``$PAGER``, else ``less``); piped: the
        text as written, nothing added."""
        if not self.term.stdout_is_tty():
            self.term.stdout.write(markdown if markdown.endswith("\n") else markdown + "\n")
            self.term.stdout.flush()
            return
        styled = not self.term.environ.get("NO_COLOR")
        renderable: Union[Markdown, Text] = Markdown(markdown) if styled else Text(markdown)
        argv = pager_command(self.term.environ) if pager else None
        if argv is None:
            self.out.print(renderable, soft_wrap=not styled)
            return
        pager_ = CommandPager(argv, self.term.environ, self.term.stdout)
        with self.out.pager(pager_, styles=styled):
            self.out.print(renderable, soft_wrap=not styled)

    # ---------------------------------------------------------------------- questions
    def ask(self, prompt: str) -> str:
        """Read one answer from the terminal. Only called when ``interactive``."""
        self.err.print(prompt, end="", markup=False)
        self.term.stderr.flush()
        line = self.term.stdin.readline()
        if not line:
            return ""
        return line.strip()

    def confirm(self, prompt: str, default: bool = False) -> bool:
        suffix = " [Y/n] " if default else " [y/N] "
        answer = self.ask(prompt + suffix).lower()
        if not answer:
            return default
        return answer in ("y", "yes")

    # ---------------------------------------------------------------------- progress
    @contextmanager
    def progress(
        self, total_bytes: int, description: str = "collecting"
    ) -> Iterator[ProgressReporter]:
        """A live bar on a terminal (one per phase: ``description``), lines otherwise."""
        show_live = self.term.stderr_is_tty() and not self.quiet and not self.json_mode
        if not show_live:
            yield ProgressReporter(None, None, self)
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),  # MiB, as in the plan and the summary
            _SpeedColumn(),
            TextColumn("{task.fields[items]}"),
            TimeElapsedColumn(),
            console=self.err,
            transient=False,
        )
        with progress:
            task = progress.add_task(description, total=max(total_bytes, 1), items="")
            yield ProgressReporter(progress, task, self)


class ProgressFactory(Protocol):
    """What the pipeline opens one progress display per phase with (``UI.progress``)."""

    def __call__(
        self, total_bytes: int, description: str = ...
    ) -> AbstractContextManager[ProgressReporter]: ...


class _SpeedColumn(ProgressColumn):
    """Bytes per second in the units of the rest of the tool (KiB/s, MiB/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_size(speed)}/s", style="progress.data.speed")


class ProgressReporter:
    """What the pipeline reports progress to. Without a live display it prints one line per
    item (unless quiet), so a piped run still shows what happens."""

    def __init__(self, progress: Optional[Progress], task: Optional[TaskID], ui: UI) -> None:
        #: the live bar and its task; None when progress is printed as lines
        self._live = (progress, task) if progress is not None and task is not None else None
        self._ui = ui
        self._done_items: list[str] = []
        self._current = ""

    def phase(self, text: str) -> None:
        """A phase without items (the leak check): the bar's label, or a line when piped."""
        if self._live is not None:
            progress, task = self._live
            progress.update(task, description=text, items="")
        else:
            self._ui.info(f"{text} ...")

    def status(self, text: str) -> None:
        """What the current item is doing while no bytes flow (waiting between thread dumps,
        taking one): on the bar's label; a line with --verbose when piped."""
        label = f"{self._current}: {text}" if self._current else text
        if self._live is not None:
            progress, task = self._live
            progress.update(task, description=label)
        else:
            self._ui.detail(f"  {label}")

    def item_started(self, name: str, index: int, total: int) -> None:
        self._current = name
        if self._live is not None:
            progress, task = self._live
            progress.update(task, description=f"collecting {name}", items=f"item {index}/{total}")
        else:
            self._ui.info(f"[{index}/{total}] collecting {name} ...")

    def advance(self, nbytes: int) -> None:
        if self._live is not None and nbytes:
            progress, task = self._live
            progress.advance(task, nbytes)

    def item_finished(self, name: str, status: str, detail: str = "") -> None:
        if status == "absent":  # an optional item with nothing on this server: quiet
            self._ui.detail(f"  {name}: not present (optional)")
            return
        text = f"  {name}: {status}" + (f" ({detail})" if detail else "")
        if self._live is not None:
            self._live[0].console.print(text, markup=False)
        elif status not in ("ok",):
            self._ui.info(text)
        else:
            self._ui.detail(text)


def pager_command(environ: Mapping[str, str]) -> Optional[list[str]]:
    """``$PAGER`` split like a shell would (no shell runs it; empty: no pager), else ``less``
    or ``more`` when installed, else None."""
    value = environ.get("PAGER")
    if value is not None:
        try:
            return shlex.split(value) or None
        except ValueError:
            return None
    for name in ("less", "more"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


class CommandPager(Pager):
    """Shows text through a pager program, without a shell. ``less`` gets ``LESS=FRX`` unless
    the user set ``LESS`` (colours, and no pager at all for a text that fits the screen). Ctrl-C
    belongs to the pager while it runs; quitting early is not an error."""

    def __init__(self, argv: Sequence[str], environ: Mapping[str, str], fallback: IO[str]) -> None:
        self.argv = list(argv)
        self.environ = dict(environ)
        self.environ.setdefault("LESS", "FRX")
        self.fallback = fallback

    def show(self, content: str) -> None:
        try:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: leave the signals alone
            previous = None
        try:
            try:
                process = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=self._output(), env=self.environ
                )
            except OSError:  # a PAGER that does not run: the text all the same
                self.fallback.write(content)
                self.fallback.flush()
                return
            assert process.stdin is not None
            try:
                process.stdin.write(content.encode("utf-8", "replace"))
                process.stdin.close()
            except BrokenPipeError:
                pass
            process.wait()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _output(self) -> Optional[int]:
        """The pager writes where the text would have gone (stderr for a plan before a
        question): the fallback stream's descriptor, else the inherited stdout."""
        try:
            self.fallback.flush()
            return self.fallback.fileno()
        except (ValueError, AttributeError, OSError):
            return None


def _plain_width(stream: IO[str], environ: Mapping[str, str]) -> Optional[int]:
    """On a terminal rich measures the width itself; piped output is not wrapped at 80
    columns (it goes to files, tickets and grep), only bounded for tables."""
    try:
        if stream.isatty():
            return None
    except (ValueError, AttributeError):
        pass
    try:
        return max(int(environ.get("COLUMNS", "0")), 200)
    except ValueError:
        return 200


def human_size(n: Optional[float]) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
