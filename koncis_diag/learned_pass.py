"""The second pass: what the run learned replaces every clear copy left in staging.

While collecting, the engine records each user and host name it pseudonymises in certain
context (``redaction.learning``). A name learned late may already have been written in clear
where no rule could be sure of it (free text of an earlier file, a file name, a query cell).
``apply_learned`` turns the learned names into literal rules on the run's redactor, then
looks for them in every staged file with an engine that holds only those rules: a file that
holds one is rewritten through that engine (and only such files: the pass is bounded by what
it finds), a path that holds one is renamed, and the sources, notes and errors recorded for
the manifest are redacted again. Everything written afterwards (manifest, tool log, summary)
goes through the redactor, which now knows the names too.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO

from koncis_diag.bundle import Staging
from koncis_diag.redaction import Redactor
from koncis_diag.redaction.engine import Engine
from koncis_diag.redaction.leakcheck import scan_source
from koncis_diag.redaction.learning import HOSTS_RULE, USERS_RULE
from koncis_diag.redaction.stream import RedactionStream
from koncis_diag.results import ItemResult, OutputRecord
from koncis_diag.staging_writer import redacted, redacted_path

log = logging.getLogger("koncis_diag")

_READ = 1024 * 1024


@dataclass(frozen=True)
class LearnedPass:
    """What the second pass did (counts only: never a value)."""

    users: int = 0
    hosts: int = 0
    rewritten: int = 0
    renamed: int = 0


def apply_learned(items: list[ItemResult], redactor: Redactor, staging: Staging) -> LearnedPass:
    found = redactor.learned_literals()
    if not found:
        return LearnedPass()
    redactor.add_learned(found)
    engine = redactor.engine_for((HOSTS_RULE, USERS_RULE))
    outputs = {o.path: o for result in items for o in result.written}
    rewritten = renamed = 0
    for record in staging.records():
        output = outputs.get(record.path)
        new_path, path_counts = redacted_path(redactor, record.path, staging)
        if _holds_learned(engine, staging, record.path):
            counts: Counter = Counter()
            staged = staging.rewrite(record.path, partial(_rewritten, engine, counts), new_path)
            rewritten += 1
        elif new_path != record.path:
            staged, counts = staging.rename(record.path, new_path), Counter()
        else:
            continue
        renamed += new_path != record.path
        if output is not None:
            del outputs[record.path]
            output.path, output.bytes, output.sha256 = staged.path, staged.size, staged.sha256
            output.redactions.update(counts)
            output.redactions.update(path_counts)
    for result in items:
        if result.error:
            result.error = redacted(redactor, result.error)
        for output in result.outputs:
            _redact_record(redactor, output)
    log.info(
        "learned %d user name(s) and %d host name(s) while redacting; %d staged file(s) "
        "rewritten, %d renamed",
        len(found.users),
        len(found.hosts) + len(found.short_hosts),
        rewritten,
        renamed,
    )
    return LearnedPass(
        users=len(found.users),
        hosts=len(found.hosts) + len(found.short_hosts),
        rewritten=rewritten,
        renamed=renamed,
    )


def _holds_learned(engine: Engine, staging: Staging, path: str) -> bool:
    with staging.open_read(path) as handle:
        return bool(scan_source(engine, path, handle))


def _rewritten(engine: Engine, counts: Counter, source: IO[bytes]) -> Iterator[bytes]:
    stream = RedactionStream(engine, "log", "")
    while True:
        chunk = source.read(_READ)
        if not chunk:
            break
        yield stream.feed(chunk)
    yield stream.close()
    counts.update(stream.counts)


def _redact_record(redactor: Redactor, output: OutputRecord) -> None:
    output.source = redacted(redactor, output.source)
    output.notes = [redacted(redactor, note) for note in output.notes]
    if output.skipped:
        output.skipped = redacted(redactor, output.skipped)
