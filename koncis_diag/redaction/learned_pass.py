"""The second pass: what the run learned replaces every clear copy left in staging.

While collecting, the engine records each user and host name it pseudonymises in certain
context (``redaction.learning``). A name learned late may already have been written in clear
where no rule could be sure of it (free text of an earlier file, a file name, a query cell).

``apply_learned`` (after collection) turns the learned names into literal rules of a new
redactor derived from the run's, renames staged files whose path holds one, and redacts again the sources, notes and
errors recorded for the manifest. The leak check that follows reads every staged file anyway
and now looks for the learned names too, so finding the clear copies costs no extra pass:
``rewrite_learned`` rewrites only the files where it found one (through an engine holding just
the learned rules) and checks them again. Everything written afterwards (manifest, tool log,
summary) goes through that new redactor, which knows the names.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO

from koncis_diag.bundle import Staging
from koncis_diag.bundle.store import redacted, redacted_path
from koncis_diag.collect.results import ItemResult, OutputRecord
from koncis_diag.redaction import Redactor
from koncis_diag.redaction.engine import Engine
from koncis_diag.redaction.leakcheck import Finding
from koncis_diag.redaction.learning import HOSTS_RULE, USERS_RULE
from koncis_diag.redaction.stream import RedactionStream

log = logging.getLogger("koncis_diag")

_READ = 1024 * 1024
LEARNED_RULES = (HOSTS_RULE, USERS_RULE)


@dataclass(frozen=True)
class LearnedPass:
    """What the second pass did (counts only: never a value)."""

    users: int = 0
    hosts: int = 0
    renamed: int = 0
    rewritten: int = 0


def apply_learned(
    items: list[ItemResult], redactor: Redactor, staging: Staging
) -> tuple[LearnedPass, Redactor]:
    """What the pass did, and the redactor that knows the learned names (``redactor`` itself
    when nothing was learned): use it for everything from here on."""
    found = redactor.learned_literals()
    if not found:
        return LearnedPass(), redactor
    redactor = redactor.with_learned(found)
    outputs = {o.path: o for result in items for o in result.written}
    renamed = 0
    for record in staging.records():
        new_path, path_counts = redacted_path(redactor, record.path, staging)
        if new_path == record.path:
            continue
        staged = staging.rename(record.path, new_path)
        renamed += 1
        output = outputs.pop(record.path, None)
        if output is not None:
            output.path = staged.path
            output.redactions.update(path_counts)
    for result in items:
        if result.error:
            result.error = redacted(redactor, result.error)
        for output in result.outputs:
            _redact_record(redactor, output)
    users, hosts = len(found.users), len(found.hosts) + len(found.short_hosts)
    log.info(
        "learned %d user name(s) and %d host name(s) while redacting; %d staged file(s) renamed",
        users,
        hosts,
        renamed,
    )
    return LearnedPass(users=users, hosts=hosts, renamed=renamed), redactor


def rewrite_learned(
    items: list[ItemResult],
    redactor: Redactor,
    staging: Staging,
    findings: list[Finding],
    check: Callable[[list[str]], list[Finding]],
) -> tuple[list[Finding], int]:
    """The files where the leak check found a learned name, rewritten through an engine that
    holds only the learned rules, then checked again with ``check`` (paths -> findings). Returns
    the findings, in staged order, and how many files were rewritten."""
    paths = sorted({f.path for f in findings if f.rule in LEARNED_RULES and staging.has(f.path)})
    if not paths:
        return findings, 0
    engine = redactor.engine_for(LEARNED_RULES)
    outputs = {o.path: o for result in items for o in result.written}
    for path in paths:
        counts: Counter = Counter()
        staged = staging.rewrite(path, partial(_rewritten, engine, counts))
        output = outputs.get(path)
        if output is not None:
            output.bytes, output.sha256 = staged.size, staged.sha256
            output.redactions.update(counts)
    log.info("%d staged file(s) held a learned name in clear: rewritten", len(paths))
    again = {path: [f for f in check(paths) if f.path == path] for path in paths}
    kept: list[Finding] = []
    done: set[str] = set()
    for finding in findings:
        if finding.path not in again:
            kept.append(finding)
        elif finding.path not in done:
            done.add(finding.path)
            kept.extend(again[finding.path])
    return kept, len(paths)


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
