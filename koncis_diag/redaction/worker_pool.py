"""The worker processes of ``parallel.py``: each builds the parent's redactor once, from a
``RedactorRecipe``, and redacts segments of whole lines (``redact_segment``) sent through a
task queue; results come back tagged with their number. Workers ignore Ctrl-C (the parent
decides what it means) and end on SIGTERM; a worker that dies fails the stream.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import queue
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Tuple  # noqa: UP035 (Tuple: runtime alias on 3.9)

from koncis_diag.errors import RedactionError
from koncis_diag.redaction import Redactor
from koncis_diag.redaction.learning import LearnedValues
from koncis_diag.redaction.pseudonyms import Pseudonymizer
from koncis_diag.redaction.rule_types import Rule
from koncis_diag.redaction.worker_signals import signals_held, worker_takes_signals

log = logging.getLogger("koncis_diag.redaction.parallel")

_POLL_SECONDS = 0.5
_STOP_SECONDS = 5.0

#: State a stream ends in when a block is still open: (open block, newline held back).
Resume = Tuple[Tuple[int, int], bool]  # noqa: UP006


# ------------------------------------------------------------------------ one segment


class SegmentRun:
    """Whole lines through a fresh stream, optionally resumed inside a block.

    ``finish`` returns the last bytes and the state to resume the next segment in. When a block
    is open at the end, the final newline is held back (the block may swallow it), exactly as
    ``RedactionStream`` does between its own batches (``RedactionStream.resume``)."""

    def __init__(
        self, redactor: Redactor, fmt: str, source: str, resume: Optional[Resume] = None
    ) -> None:
        self.stream = redactor.stream(fmt, source)
        if resume is not None:
            self.stream.resume(*resume)

    def feed(self, data: bytes) -> bytes:
        return self.stream.feed(data)

    def finish(self) -> tuple[bytes, Optional[Resume]]:
        tail = self.stream.close()
        open_block = self.stream.open_block
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
    """What a worker needs to build the parent's redactor: rules in order, the literal values
    learnt on the server (``Redactor.literal_values``), the state folder and a cluster's shared
    key (``--pseudonym-key``). The worker checks it got the same engine and key."""

    rules: tuple[Rule, ...]
    literals: tuple[tuple[str, tuple[str, ...]], ...]
    state_dir: Path
    shared_key: Optional[bytes] = field(repr=False)
    key_digest: str
    detectors: int

    @classmethod
    def of(cls, redactor: Redactor) -> Optional[RedactorRecipe]:
        """None when the redactor cannot be rebuilt elsewhere (ephemeral pseudonyms, an
        unusable state folder)."""
        pseudonymizer = redactor.pseudonymizer
        learnt = redactor.literal_values
        if pseudonymizer.ephemeral:
            return None
        try:
            key_digest = _key_digest(pseudonymizer)
        except OSError as err:
            log.info("parallel redaction unavailable (%s): one core", err)
            return None
        return cls(
            rules=tuple(redactor.rules),
            literals=tuple((name, tuple(values)) for name, values in sorted(learnt.items())),
            state_dir=Path(pseudonymizer.state_dir),
            shared_key=pseudonymizer.shared_key,
            key_digest=key_digest,
            detectors=len(redactor.engine.detectors),
        )

    def build(self) -> Redactor:
        pseudonymizer = Pseudonymizer(self.state_dir, shared_key=self.shared_key)
        redactor = Redactor(self.rules, pseudonymizer, dict(self.literals))
        if len(redactor.engine.detectors) != self.detectors:
            raise RuntimeError("the worker's redactor differs from the parent's")
        if _key_digest(pseudonymizer) != self.key_digest:
            raise RuntimeError("the worker's pseudonym key differs from the parent's")
        return redactor


def _key_digest(pseudonymizer: Pseudonymizer) -> str:
    """A digest of the key pseudonyms are made with (loading or creating it, as the first
    pseudonym would): compared, never the key itself."""
    key, _ = pseudonymizer._ready()
    return hashlib.sha256(b"koncis-diag worker check\0" + key).hexdigest()


def _worker_main(recipe: RedactorRecipe, tasks: Any, results: Any, mask: Any = None) -> None:
    """Build the redactor once, then redact segments until told to stop (``None``)."""
    worker_takes_signals(mask)
    try:
        redactor = recipe.build()
    except Exception as err:
        failed = f"worker start failed: {type(err).__name__}: {err}"
        results.put((-1, None, None, None, failed, None))
        return
    try:
        while True:
            task = tasks.get()
            if task is None:
                return
            seq, data, fmt, source = task
            try:
                out, counts, state = redact_segment(redactor, data, fmt, source)
                learned = redactor.learned.take()  # the names first seen in this segment
                results.put((seq, out, dict(counts), state, None, learned))
            except Exception as err:
                message = str(err) if isinstance(err, RedactionError) else repr(err)
                results.put((seq, None, None, None, message, None))
    finally:
        redactor.close()


class WorkerPool:
    """``jobs`` processes sharing one task queue; results come back tagged with their number."""

    def __init__(
        self,
        recipe: RedactorRecipe,
        jobs: int,
        method: str,
        learned: Optional[LearnedValues] = None,
    ) -> None:
        context: Any = multiprocessing.get_context(method)  # Fork/Spawn/Forkserver
        #: where the names the workers learn are gathered (the parent redactor's)
        self.learned = learned if learned is not None else LearnedValues()
        self._tasks = context.Queue()
        # Exit never waits for queued tasks to reach the workers: they are of no use once the
        # parent leaves, and workers that are gone would make it wait forever (its signals
        # already ignored). close() still delivers the stop sentinels, while it joins them.
        self._tasks.cancel_join_thread()
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
        _, out, counts, state, error, learned = self._done.pop(seq)
        self.pending -= 1
        if error is not None:
            raise RedactionError(error)
        if learned:
            self.learned.merge(*learned)
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
