"""Redaction of one output stream on several cores, byte-identical to one core.

Line formats (log, text, csv) are cut into *segments* of whole lines (about ``chunk_size``)
that worker processes redact, at most ``2 × jobs`` in flight, written back in order. Every
detector is line-bounded, so a fresh stream over a segment gives exactly the bytes one stream
gives, except when a multi-line block (a PEM key) is still open where a segment ends: then the
next segment is redacted again here, resumed in that state. Config formats (xml, properties,
yaml, json, ini, shell) stay on one core, as do streams of one segment and lines longer than a
segment (streamed here through one stream: a 200 MB line never sits in memory).

Workers build their redactor once from a ``RedactorRecipe`` (rules, learnt literals, pseudonym
state and key), with ``fork`` or ``spawn``; the SQLite mapping keeps pseudonyms consistent
across them. Workers ignore Ctrl-C; the parent terminates them when a stream fails or is
dropped, and ``close`` stops them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Generator, Iterable, Iterator
from typing import Optional

from koncis_diag.redaction import Redactor
from koncis_diag.redaction.accel import engine_name
from koncis_diag.redaction.matching import STRUCTURED_FORMATS
from koncis_diag.redaction.stream import RedactionStream
from koncis_diag.redaction.worker_pool import (
    RedactorRecipe,
    Resume,
    SegmentRun,
    WorkerPool,
    redact_segment,
)

log = logging.getLogger("koncis_diag.redaction.parallel")

# Segment size. Measured (30 MB typical log, 2 jobs): 256 KiB, 1 MiB and 4 MiB are equally
# fast within the machine's noise; 4 MiB costs about 30 MB more peak RSS.
DEFAULT_CHUNK = 1024 * 1024
IN_FLIGHT_PER_JOB = 2
MAX_DEFAULT_JOBS = 4

#: For ``plan``'s estimate; measured by bench/run.py on the dense 200 MB log (see its README):
#: one core of each matching engine, and the speed-up of 2 jobs on a busy machine. Update
#: when the engine gets faster.
SINGLE_CORE_BYTES_PER_SECOND = {
    "hyperscan": 7.1e6,
    "python": 2.66e6,
    # 1.2x Hyperscan's CPU time on the dense log (bench/README.md, issue 17 step 2)
    "native": 8.5e6,
}
SPEEDUP = {1: 1.0, 2: 1.6}


def default_jobs() -> int:
    """The cores this process may run on, at most ``MAX_DEFAULT_JOBS``."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(usable, MAX_DEFAULT_JOBS))


def estimate_seconds(total_bytes: int, jobs: int = 1) -> float:
    """Redaction time for ``plan``: measured speed of one core times the measured speed-up."""
    speedup = SPEEDUP.get(jobs, SPEEDUP[max(SPEEDUP)] + 0.6 * (jobs - max(SPEEDUP)))
    return total_bytes / (SINGLE_CORE_BYTES_PER_SECOND[engine_name()] * speedup)


# ---------------------------------------------------------------------------- segments


class _Segments:
    """Runs of whole lines of at most ``size`` bytes; a line longer than that is ``LONG_LINE``
    for ``next``, and ``long_line`` streams it."""

    LONG_LINE = b""  # an empty segment never occurs otherwise

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size
        self._buffer = bytearray()
        self.exhausted = False

    def next(self) -> Optional[bytes]:
        """The next segment, ``LONG_LINE``, or None at the end."""
        while len(self._buffer) < self._size and not self.exhausted:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
            else:
                self._buffer += chunk
        if not self._buffer:
            return None
        if len(self._buffer) < self._size:  # the end of the input
            segment = bytes(self._buffer)
            self._buffer.clear()
            return segment
        cut = self._buffer.rfind(b"\n", 0, self._size) + 1
        if cut == 0:
            return self.LONG_LINE
        segment = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return segment

    def long_line(self) -> Iterator[bytes]:
        """The current line, piece by piece, through its newline; what follows stays."""
        pending = bytes(self._buffer)
        self._buffer.clear()
        while True:
            newline = pending.find(b"\n")
            if newline >= 0:
                self._buffer += pending[newline + 1 :]
                yield pending[: newline + 1]
                return
            if pending:
                yield pending
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                return
            pending = chunk


# ------------------------------------------------------------------------------ public


class RedactedStream:
    """Redacted bytes of one output, in order. ``counts`` (redactions per rule) is complete
    once the iterator is exhausted. ``close()`` stops it early (workers are then restarted)."""

    def __init__(self, generator: Generator[bytes, None, None], counts: Counter) -> None:
        self._generator = generator
        self.counts = counts

    def __iter__(self) -> RedactedStream:
        return self

    def __next__(self) -> bytes:
        return next(self._generator)

    def close(self) -> None:
        self._generator.close()


class ParallelRedaction:
    """Redacts output streams with ``jobs`` worker processes (``jobs=1``: the single-stream
    code path, no process started). Use one per run, as a context manager, with the redactor
    that knows everything learned before collection (a redactor never changes: one derived
    later needs a new ``ParallelRedaction``); workers start with the first stream that can use
    them."""

    def __init__(
        self,
        redactor: Redactor,
        jobs: int = 1,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        start_method: Optional[str] = None,
    ) -> None:
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1 byte")
        self.redactor = redactor
        self.jobs = jobs
        self.chunk_size = chunk_size
        methods = multiprocessing.get_all_start_methods()
        self.start_method = start_method or ("fork" if "fork" in methods else "spawn")
        self._pool: Optional[WorkerPool] = None
        self._supported: Optional[bool] = None

    def __enter__(self) -> ParallelRedaction:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._terminate()

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids if self._pool is not None else []

    def start(self) -> None:
        """Start the workers now rather than with the first stream: call it before opening
        files, so the forked workers do not inherit their descriptors. No-op with one job."""
        if self.jobs > 1 and self._parallel_possible():
            self._workers()

    def close(self) -> None:
        """Stop the workers (at once when a dropped stream left work in flight)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if pool.pending:
                pool.terminate()
            else:
                pool.close()

    def redact_stream(
        self, chunks: Iterable[bytes], fmt: str = "log", source: str = ""
    ) -> RedactedStream:
        counts: Counter = Counter()
        if self.jobs == 1 or fmt in STRUCTURED_FORMATS or not self._parallel_possible():
            return self._sequential(chunks, fmt, source)
        return RedactedStream(self._parallel(iter(chunks), fmt, source, counts), counts)

    # ------------------------------------------------------------------------ internals

    def _parallel_possible(self) -> bool:
        if self._supported is None:
            self._supported = RedactorRecipe.of(self.redactor) is not None
            if not self._supported:
                log.info("parallel redaction unavailable for this redactor: one core")
        return self._supported

    def _sequential(self, chunks: Iterable[bytes], fmt: str, source: str) -> RedactedStream:
        """Exactly what the pipeline did before parallel redaction existed."""
        stream = self.redactor.stream(fmt=fmt, source=source)
        return RedactedStream(_feed_all(stream, chunks), stream.counts)

    def _workers(self) -> WorkerPool:
        if self._pool is not None and self._pool.pending:
            self._terminate()  # work of a stream that was dropped without close()
        if self._pool is None:
            recipe = RedactorRecipe.of(self.redactor)
            assert recipe is not None
            self._pool = WorkerPool(recipe, self.jobs, self.start_method, self.redactor.learned)
        return self._pool

    def _terminate(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    def _parallel(
        self, chunks: Iterator[bytes], fmt: str, source: str, counts: Counter
    ) -> Generator[bytes, None, None]:
        segments = _Segments(chunks, self.chunk_size)
        following = segments.next()
        if segments.exhausted and following:  # one segment: no worker would help
            out, found, last = redact_segment(self.redactor, following, fmt, source)
            counts.update(found)
            yield out + (b"\n" if last is not None and last[1] else b"")
            return
        pool = self._workers()
        in_flight: deque[tuple[int, bytes]] = deque()
        carry: Optional[Resume] = None
        limit = IN_FLIGHT_PER_JOB * self.jobs
        try:
            while following is not None or in_flight:
                while following and len(in_flight) < limit:
                    in_flight.append((pool.submit(following, fmt, source), following))
                    following = segments.next()
                if in_flight:
                    number, raw = in_flight.popleft()
                    out, found, state = pool.result(number)
                    if carry is not None:  # the previous segment ended inside a block
                        out, found, state = redact_segment(self.redactor, raw, fmt, source, carry)
                    carry = state
                    counts.update(found)
                    if out:
                        yield out
                elif following == _Segments.LONG_LINE:
                    run = SegmentRun(self.redactor, fmt, source, carry)
                    for piece in segments.long_line():
                        out = run.feed(piece)
                        if out:
                            yield out
                    out, carry = run.finish()
                    counts.update(run.stream.counts)
                    if out:
                        yield out
                    following = segments.next()
            if carry is not None and carry[1]:
                yield b"\n"
        except BaseException:
            if self._pool is pool:  # not when a later stream already replaced it
                self._terminate()  # this stream's work in flight must not outlive it
            raise


def _feed_all(stream: RedactionStream, chunks: Iterable[bytes]) -> Generator[bytes, None, None]:
    for chunk in chunks:
        out = stream.feed(chunk)
        if out:
            yield out
    tail = stream.close()
    if tail:
        yield tail
