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

import hashlib
import logging
import multiprocessing
import os
import queue
from collections import Counter, deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Tuple  # noqa: UP035 (Tuple: runtime alias on 3.9)

from koncis_diag.errors import RedactionError
from koncis_diag.redaction import Redactor
from koncis_diag.redaction.accel import engine_name
from koncis_diag.redaction.matching import STRUCTURED_FORMATS
from koncis_diag.redaction.pseudonyms import Pseudonymizer
from koncis_diag.redaction.rules import Rule
from koncis_diag.redaction.stream import RedactionStream
from koncis_diag.worker_signals import signals_held, worker_takes_signals

log = logging.getLogger("koncis_diag.parallel")

# Segment size. Measured (30 MB typical log, 2 jobs): 256 KiB, 1 MiB and 4 MiB are equally
# fast within the machine's noise; 4 MiB costs about 30 MB more peak RSS.
DEFAULT_CHUNK = 1024 * 1024
IN_FLIGHT_PER_JOB = 2
MAX_DEFAULT_JOBS = 4
_POLL_SECONDS = 0.5
_STOP_SECONDS = 5.0

#: For ``plan``'s estimate; measured by bench/run.py on the dense 200 MB log (see its README):
#: one core of each matching engine, and the speed-up of 2 jobs on a busy machine. Update
#: when the engine gets faster.
SINGLE_CORE_BYTES_PER_SECOND = {"hyperscan": 7.1e6, "python": 2.66e6}
SPEEDUP = {1: 1.0, 2: 1.6}

#: State a stream ends in when a block is still open: (open block, newline held back).
Resume = Tuple[Any, bool]  # noqa: UP006


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


# ------------------------------------------------------------------------ one segment


class SegmentRun:
    """Whole lines through a fresh stream, optionally resumed inside a block.

    ``finish`` returns the last bytes and the state to resume the next segment in. When a block
    is open at the end, the final newline is held back (the block may swallow it), exactly as
    ``RedactionStream`` does between its own batches. Uses two private attributes of the
    stream (``_open_block``, ``_pending_newline``): without them streams stay on one core."""

    def __init__(
        self, redactor: Redactor, fmt: str, source: str, resume: Optional[Resume] = None
    ) -> None:
        self.stream = redactor.stream(fmt, source)
        if resume is not None:
            self.stream._open_block, self.stream._pending_newline = resume  # type: ignore[attr-defined]

    def feed(self, data: bytes) -> bytes:
        return self.stream.feed(data)

    def finish(self) -> tuple[bytes, Optional[Resume]]:
        tail = self.stream.close()
        open_block = self.stream._open_block  # type: ignore[attr-defined]
        if open_block is None:
            return tail, None
        held = tail.endswith(b"\n")
        return (tail[:-1] if held else tail), (open_block, held)


def redact_segment(
    redactor: Redactor, data: bytes, fmt: str, source: str, resume: Optional[Resume] = None
) -> tuple[bytes, Counter, Optional[Resume]]:
    """One segment at once: (output, counts, state to resume the next segment in)."""
    run = SegmentRun(redactor, fmt, source, resume)
    head = run.feed(data)
    tail, state = run.finish()
    return head + tail, run.stream.counts, state


# --------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class RedactorRecipe:
    """What a worker needs to build the parent's redactor: rules in order, literals learnt with
    ``add_literals``, the state folder and a cluster's shared key (``--pseudonym-key``). The
    worker checks it got the same engine and key. Literals and key come from private
    attributes (no public accessor yet); without them: None, and one core."""

    rules: tuple[Rule, ...]
    literals: tuple[tuple[str, tuple[str, ...]], ...]
    state_dir: Path
    shared_key: Optional[bytes] = field(repr=False)
    key_digest: str
    detectors: int

    @classmethod
    def of(cls, redactor: Redactor) -> Optional[RedactorRecipe]:
        """None when the redactor cannot be rebuilt elsewhere (ephemeral pseudonyms, an
        unusable state folder, changed internals)."""
        pseudonymizer = redactor.pseudonymizer
        try:
            learnt = redactor._extra_literals  # type: ignore[attr-defined]
            shared_key = pseudonymizer._shared_key  # type: ignore[attr-defined]
            if pseudonymizer.ephemeral:
                return None
            key_digest = _key_digest(pseudonymizer)
        except (AttributeError, OSError) as err:
            log.info("parallel redaction unavailable (%s): one core", err)
            return None
        return cls(
            rules=tuple(redactor.rules),
            literals=tuple((name, tuple(values)) for name, values in sorted(learnt.items())),
            state_dir=Path(pseudonymizer.state_dir),
            shared_key=shared_key,
            key_digest=key_digest,
            detectors=len(redactor.engine.detectors),
        )

    def build(self) -> Redactor:
        pseudonymizer = Pseudonymizer(self.state_dir)
        pseudonymizer._shared_key = self.shared_key  # type: ignore[attr-defined]
        redactor = Redactor(list(self.rules), pseudonymizer)
        by_name = {rule.name: rule for rule in redactor.rules}
        for name, values in self.literals:
            rule = by_name[name]
            redactor.add_literals(values, rule_name=name, category=rule.category, shape=rule.shape)
        if len(redactor.engine.detectors) != self.detectors:
            raise RuntimeError("the worker's redactor differs from the parent's")
        if _key_digest(pseudonymizer) != self.key_digest:
            raise RuntimeError("the worker's pseudonym key differs from the parent's")
        return redactor


def _key_digest(pseudonymizer: Pseudonymizer) -> str:
    """A digest of the key pseudonyms are made with (loading or creating it, as the first
    pseudonym would): compared, never the key itself."""
    key, _ = pseudonymizer._ready()  # type: ignore[attr-defined]
    return hashlib.sha256(b"koncis-diag worker check\0" + key).hexdigest()


def _worker_main(recipe: RedactorRecipe, tasks: Any, results: Any, mask: Any = None) -> None:
    """Build the redactor once, then redact segments until told to stop (``None``)."""
    worker_takes_signals(mask)
    try:
        redactor = recipe.build()
    except Exception as err:
        results.put((-1, None, None, None, f"worker start failed: {type(err).__name__}: {err}"))
        return
    try:
        while True:
            task = tasks.get()
            if task is None:
                return
            seq, data, fmt, source = task
            try:
                out, counts, state = redact_segment(redactor, data, fmt, source)
                results.put((seq, out, dict(counts), state, None))
            except Exception as err:
                message = str(err) if isinstance(err, RedactionError) else repr(err)
                results.put((seq, None, None, None, message))
    finally:
        redactor.close()


class _WorkerPool:
    """``jobs`` processes sharing one task queue; results come back tagged with their number."""

    def __init__(self, recipe: RedactorRecipe, jobs: int, method: str) -> None:
        context = multiprocessing.get_context(method)
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._done: dict[int, tuple[Any, ...]] = {}
        self._next_seq = 0
        self.pending = 0  # submitted, not yet handed back by ``result``
        with signals_held() as mask:
            self._processes = [
                context.Process(
                    target=_worker_main,
                    args=(recipe, self._tasks, self._results, mask),
                    name=f"koncis-redact-{n}",
                    daemon=True,
                )
                for n in range(jobs)
            ]
            for process in self._processes:
                process.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def submit(self, data: bytes, fmt: str, source: str) -> int:
        """Queue a segment; its number is unique for the pool's life (no mix-up of streams)."""
        seq = self._next_seq
        self._next_seq += 1
        # Ctrl-C or SIGTERM inside put() could leave the queue's lock taken (the handler
        # raises between its acquire and the with block); terminate() would then wait for
        # that lock forever, with further signals ignored. Held, they arrive after put().
        with signals_held():
            self._tasks.put((seq, data, fmt, source))
        self.pending += 1
        return seq

    def result(self, seq: int) -> tuple[bytes, Counter, Optional[Resume]]:
        """The result of segment ``seq``, waiting for it. A worker that died fails the stream,
        even when the others could finish: something killed it (the OOM killer, an admin)."""
        while True:
            for process in self._processes:
                if process.exitcode is not None:
                    raise RedactionError(
                        f"a redaction worker stopped unexpectedly (exit code {process.exitcode})"
                    )
            if seq in self._done:
                break
            try:
                item = self._results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item[0] < 0:
                raise RedactionError(str(item[4]))
            self._done[item[0]] = item
        _, out, counts, state, error = self._done.pop(seq)
        self.pending -= 1
        if error is not None:
            raise RedactionError(error)
        return out, Counter(counts), state

    def close(self) -> None:
        """Let the workers finish and leave; terminate any that do not."""
        for _ in self._processes:
            self._tasks.put(None)
        for process in self._processes:
            process.join(_STOP_SECONDS)
        self.terminate()

    def terminate(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(_STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for channel in (self._tasks, self._results):
            channel.cancel_join_thread()  # never block exit on data nobody will read
            channel.close()
        self._processes = []


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
    code path, no process started). Use one per run, as a context manager, after the redactor
    has learnt its literals; workers start with the first stream that can use them."""

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
        self._pool: Optional[_WorkerPool] = None
        self._pool_engine: Any = None
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
            probe = self.redactor.stream("log", "probe")  # see SegmentRun
            resumable = hasattr(probe, "_open_block") and hasattr(probe, "_pending_newline")
            self._supported = resumable and RedactorRecipe.of(self.redactor) is not None
            if not self._supported:
                log.info("parallel redaction unavailable for this redactor: one core")
        return self._supported

    def _sequential(self, chunks: Iterable[bytes], fmt: str, source: str) -> RedactedStream:
        """Exactly what the pipeline did before parallel redaction existed."""
        stream = self.redactor.stream(fmt=fmt, source=source)
        return RedactedStream(_feed_all(stream, chunks), stream.counts)

    def _workers(self) -> _WorkerPool:
        engine = self.redactor.engine  # replaced whenever the redactor learns literals
        if self._pool is not None and self._pool.pending:
            self._terminate()  # work of a stream that was dropped without close()
        elif self._pool is not None and self._pool_engine is not engine:
            self.close()
        if self._pool is None:
            recipe = RedactorRecipe.of(self.redactor)
            assert recipe is not None
            self._pool = _WorkerPool(recipe, self.jobs, self.start_method)
            self._pool_engine = engine
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
            out, found, carry = redact_segment(self.redactor, following, fmt, source)
            counts.update(found)
            yield out + (b"\n" if carry is not None and carry[1] else b"")
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
