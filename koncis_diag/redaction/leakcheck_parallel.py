"""The leak check on several cores: ``leak_check_parallel``.

This process reads every source once, in order, in the same line-aligned pieces as one core
does (``leakcheck._batches``), and forked worker processes scan them; findings come back merged
in source order, identical to ``leak_check``.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

from koncis_diag.errors import RedactionError
from koncis_diag.redaction.leakcheck import (
    MAX_FINDINGS,
    MAX_FINDINGS_PER_SOURCE,
    Finding,
    LazySource,
    LeakSource,
    _batches,
    _opened,
    _scan_piece,
    _sequential,
)
from koncis_diag.redaction.worker_signals import signals_held, worker_takes_signals

if TYPE_CHECKING:
    from koncis_diag.redaction.engine import Engine
    from koncis_diag.redaction.redactor import Redactor

log = logging.getLogger("koncis_diag.redaction")

#: Below this many bytes in all, starting worker processes costs more than it saves.
MIN_PARALLEL_BYTES = 4 * 1024 * 1024
IN_FLIGHT_PER_JOB = 2  # pieces read and not yet merged, per job: bounds memory
_STOP_SECONDS = 5.0


def leak_check_parallel(
    sources: Sequence[LeakSource],
    redactor: Redactor,
    jobs: int,
    *,
    max_findings: Optional[int] = MAX_FINDINGS,
    min_bytes: int = MIN_PARALLEL_BYTES,
) -> list[Finding]:
    """``leak_check`` on ``jobs`` processes: the same findings in the same order. Sources are
    what ``leak_check`` takes, or ``LazySource``s; they are read here, once, in order.
    ``max_findings=None``: no overall limit (the per-source one stays). One core when
    ``jobs`` is 1, when ``fork`` is unavailable, or below ``min_bytes`` in all.

    The workers are forked before the first source is opened (they inherit the leak engine:
    nothing is pickled), so call it while no other thread runs. They ignore Ctrl-C; any error
    or interruption here terminates them before it propagates. A worker that dies fails the
    check with ``RedactionError``."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    engine = redactor.leak_engine()  # built here, before the workers are forked
    if (
        jobs == 1
        or "fork" not in multiprocessing.get_all_start_methods()
        or _total_size(sources, min_bytes) < min_bytes
    ):
        return _sequential(sources, engine, max_findings)
    workers = _Workers()
    reader = _Reader(sources)
    try:
        try:
            workers.start(engine, jobs)
        except OSError as err:  # no process could be started (limits): one core will do
            workers.terminate()
            log.info("leak check on one core: %s", err)
            return _sequential(sources, engine, max_findings)
        findings = _merge(reader, workers, jobs, max_findings)
        workers.close()
    except BaseException:
        workers.terminate()
        raise
    finally:
        reader.close()
    return findings


def _total_size(sources: Sequence[LeakSource], enough: int) -> int:
    """The sources' size, counted until ``enough``; a stream of unknown size counts as large."""
    total = 0
    for item in sources:
        if total >= enough:
            break
        if isinstance(item, LazySource):
            total += item.size
        elif isinstance(item, (bytes, bytearray)):
            total += len(item)
        elif isinstance(item, (str, Path)):
            try:
                total += os.stat(item).st_size
            except OSError:
                pass  # reported when its turn comes
        else:
            try:
                total += os.fstat(item.fileno()).st_size
            except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
                total += len(item.getbuffer()) if isinstance(item, io.BytesIO) else enough
    return total


# ------------------------------------------------------------------------- parallel


class _Piece:
    """One piece of a source on its way through a worker, or the error reading it met."""

    __slots__ = ("data", "error", "findings", "line_base", "name", "source")

    def __init__(
        self,
        source: int,
        name: str = "",
        data: Optional[bytes] = None,
        line_base: int = 0,
        error: Optional[Exception] = None,
    ) -> None:
        self.source = source
        self.name = name
        self.data = data  # None once sent to a worker
        self.line_base = line_base
        self.error = error
        self.findings: Optional[list[Finding]] = None

    @property
    def done(self) -> bool:
        return self.findings is not None or self.error is not None


class _Reader:
    """The sources' pieces, in order, each source read sequentially (a staged file may be
    decrypted on the fly). A problem opening or reading a source is kept in a piece and raised
    only when the merge gets there: one core would not meet it past a limit either."""

    def __init__(self, sources: Sequence[LeakSource]) -> None:
        self._sources = sources
        self._number = -1
        self._name = ""
        self._handle: Optional[IO[bytes]] = None
        self._owned = False
        self._pieces: Optional[Iterator[bytes]] = None
        self._line_base = 0
        self.last: Optional[int] = None  # no source after this one is wanted
        self.skipped: set[int] = set()  # sources whose findings are complete
        self.exhausted = False

    def wanted(self, source: int) -> bool:
        return source not in self.skipped and (self.last is None or source <= self.last)

    def skip(self, source: int) -> None:
        """Nothing more is needed from ``source``: stop reading it."""
        self.skipped.add(source)
        if source == self._number and self._pieces is not None:
            self.close()

    def next(self) -> Optional[_Piece]:
        while not self.exhausted:
            if self._pieces is None:
                number = self._number + 1
                if number >= len(self._sources) or not self.wanted(number):
                    self.exhausted = True
                    break
                self._number, self._line_base = number, 0
                try:
                    self._name, self._handle, self._owned = _opened(self._sources[number], number)
                except Exception as err:
                    return _Piece(number, error=err)
                self._pieces = _batches(self._handle)
            try:
                piece = next(self._pieces, None)
                if piece is None:
                    self.close()
                    continue
            except Exception as err:
                self._pieces = None  # a source that failed is not read further
                try:
                    self.close()
                except Exception:
                    pass  # the first error is the one reported
                return _Piece(self._number, error=err)
            found = _Piece(self._number, self._name, piece, self._line_base)
            self._line_base += piece.count(b"\n")
            return found
        return None

    def close(self) -> None:
        handle, owned = self._handle, self._owned
        self._handle, self._pieces = None, None
        if handle is not None and owned:
            handle.close()


def _merge(
    reader: _Reader, workers: _Workers, jobs: int, max_findings: Optional[int]
) -> list[Finding]:
    """Keep at most ``IN_FLIGHT_PER_JOB × jobs`` pieces between reading and merging; merge
    in order with the limits of ``_sequential``."""
    pending: deque[_Piece] = deque()
    limit = IN_FLIGHT_PER_JOB * jobs
    findings: list[Finding] = []
    current, in_source = -1, 0
    while True:
        while len(pending) < limit:
            piece = reader.next()
            if piece is None:
                break
            pending.append(piece)
        workers.dispatch(pending, reader.wanted)
        while pending and pending[0].done:
            piece = pending.popleft()
            if piece.source != current:
                if max_findings is not None and len(findings) >= max_findings:
                    return findings[:max_findings]
                current, in_source = piece.source, 0
            if in_source >= MAX_FINDINGS_PER_SOURCE:
                continue  # one core stopped reading this source here
            if piece.error is not None:
                raise piece.error
            assert piece.findings is not None
            taken = piece.findings[: MAX_FINDINGS_PER_SOURCE - in_source]
            findings.extend(taken)
            in_source += len(taken)
            if in_source >= MAX_FINDINGS_PER_SOURCE:
                reader.skip(current)
            if max_findings is not None and len(findings) >= max_findings:
                reader.last = current  # one core finishes this source, then stops
        if not pending and reader.exhausted:
            break
        if workers.busy:
            workers.wait()
    return findings if max_findings is None else findings[:max_findings]


class _Worker:
    __slots__ = ("conn", "piece", "process")

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        conn: multiprocessing.connection.Connection,
    ) -> None:
        self.process = process
        self.conn = conn
        self.piece: Optional[_Piece] = None  # the one it is scanning


class _Workers:
    """Forked processes scanning one piece at a time, each over its own pipe (a dead worker
    is seen at once: its pipe ends, its sentinel fires)."""

    def __init__(self) -> None:
        self._workers: list[_Worker] = []

    def start(self, engine: Engine, jobs: int) -> None:
        """Fork ``jobs`` workers. On failure, ``terminate`` stops those already started."""
        context = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # a child would write buffered output again
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        with signals_held() as mask:
            for number in range(jobs):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_worker_main,
                    args=(engine, theirs, [*(w.conn for w in self._workers), ours], mask),
                    name=f"koncis-leakcheck-{number}",
                    daemon=True,
                )
                self._workers.append(_Worker(process, ours))
                try:
                    process.start()
                finally:
                    theirs.close()

    @property
    def busy(self) -> bool:
        return any(w.piece is not None for w in self._workers)

    def dispatch(self, pending: deque[_Piece], wanted: Callable[[int], bool]) -> None:
        """Send the first pieces not yet sent to the idle workers, in order."""
        idle = [w for w in self._workers if w.piece is None]
        for piece in pending:
            if piece.data is None:
                continue  # sent already, or an error
            if not wanted(piece.source):
                piece.data, piece.findings = None, []
                continue
            if not idle:
                break
            worker = idle.pop(0)
            try:
                worker.conn.send((piece.name, piece.data, piece.line_base))
            except OSError:
                raise RedactionError(self._stopped(worker)) from None
            piece.data, worker.piece = None, piece

    def wait(self) -> None:
        """Until at least one busy worker is done. Raises when a worker died."""
        busy = {w.conn: w for w in self._workers if w.piece is not None}
        sentinels = {w.process.sentinel: w for w in self._workers}
        ready = multiprocessing.connection.wait([*busy, *sentinels])
        for conn in ready:
            worker = busy.get(conn)  # type: ignore[call-overload]
            if worker is None or worker.piece is None:
                continue
            try:
                found, error = worker.conn.recv()
            except (EOFError, OSError):
                raise RedactionError(self._stopped(worker)) from None
            if error is not None:
                raise RedactionError(f"{worker.piece.name}: leak check failed: {error}")
            worker.piece.findings, worker.piece = found, None
        for sentinel in ready:
            if sentinel in sentinels:
                raise RedactionError(self._stopped(sentinels[sentinel]))

    @staticmethod
    def _stopped(worker: _Worker) -> str:
        worker.process.join(_STOP_SECONDS)
        return (
            f"a leak-check worker stopped unexpectedly (exit code {worker.process.exitcode}):"
            " the leak check is incomplete"
        )

    def close(self) -> None:
        """Let idle workers leave; terminate them when some are still busy."""
        if self.busy:
            self.terminate()
            return
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._workers:
            worker.process.join(_STOP_SECONDS)
        self.terminate()

    def terminate(self) -> None:
        started = [w for w in self._workers if w.process.pid is not None]
        for worker in started:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in started:
            worker.process.join(_STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        for worker in self._workers:
            worker.conn.close()
        self._workers = []


def _worker_main(
    engine: Engine,
    conn: multiprocessing.connection.Connection,
    parent_ends: list[multiprocessing.connection.Connection],
    mask: Optional[set[int]],
) -> None:
    """Scan pieces until told to stop (``None``) or the parent is gone."""
    worker_takes_signals(mask)
    for end in parent_ends:
        end.close()  # so that this pipe ends when the parent dies
    # (the pseudonym store keeps the inherited SQLite connection untouched: pseudonyms.py)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        name, piece, line_base = task
        try:
            reply: tuple[Any, Optional[str]] = (
                _scan_piece(engine, name, piece, line_base, MAX_FINDINGS_PER_SOURCE),
                None,
            )
        except Exception as err:
            reply = (None, f"{type(err).__name__}: {err}")
        try:
            conn.send(reply)
        except OSError:
            return
