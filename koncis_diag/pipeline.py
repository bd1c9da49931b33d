"""The collection pipeline: spec → plan → collect → redact → leak check → consent → bundle.

``run_collection`` is the library entry point the CLI (and the tests) call. Collectors only
read; every byte they yield passes through the redaction engine on its way into a private
staging directory; nothing leaves staging unless the reviewer agrees; staging is removed on
every exit path.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Optional

from koncis_diag import __version__
from koncis_diag.bundle import (
    Staging,
    bundle_base_name,
    check_free_space,
    deferred_signals,
    write_archive,
)
from koncis_diag.bundle.metadata import ToolLog, start_tool_log, stop_tool_log, write_metadata
from koncis_diag.bundle.store import counted, redacted, store_output
from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.databases.columns_check import check_query_columns
from koncis_diag.collect.priority import lower_priority
from koncis_diag.collect.registry import REGISTRY
from koncis_diag.collect.results import ItemResult, RunResult
from koncis_diag.consent.decision import (
    AssumeYes,
    Decision,
    Finding,
    Reviewer,
    Summary,
    SummaryRow,
    make_record,
)
from koncis_diag.consent.plan import Plan, make_plan
from koncis_diag.consent.review import material_for
from koncis_diag.console import ProgressFactory, ProgressReporter
from koncis_diag.errors import BundleError, ConsentRefused, InputError, KoncisError, NotPresent
from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.redaction.accel import engine_name
from koncis_diag.redaction.learned_pass import apply_learned, rewrite_learned
from koncis_diag.redaction.mapping_upkeep import DEFAULT_MAPPING_RETENTION_DAYS, expire_mapping
from koncis_diag.redaction.parallel import ParallelRedaction
from koncis_diag.redaction.pseudonyms import default_state_dir, state_dir_problem
from koncis_diag.redaction.weakening import refuse_weakening
from koncis_diag.spec import BUNDLE_FOLDER, Item, Spec
from koncis_diag.spec.signing import BUILTIN, SpecTrust, check_unsigned

if TYPE_CHECKING:
    from koncis_diag.collect.databases.connections import PasswordSource

log = logging.getLogger("koncis_diag")

ARCHIVE_FORMATS = ("zip", "tar.gz")
NAMES_SOURCE = "(staged file names)"
PASSWORDS_RULE = "known-passwords"  # the database passwords the run resolved, as literals  # the leak check's name for the list of staged paths


@dataclass
class RunOptions:
    output_dir: Path = Path(".")
    archive_format: str = "zip"
    excluded: Sequence[str] = ()
    extra_rules: Sequence[str] = ()
    root: Path = Path("/")
    state_dir: Optional[Path] = None
    now: Optional[datetime] = None
    encrypt_to: Sequence[str] = ()  # age recipients, added to the spec's encrypt_to
    password_source: Optional[PasswordSource] = None  # default: environment, then terminal
    retention: Optional[str] = None  # e.g. "30d"; overrides the spec's retention
    pseudonym_key: Optional[Path] = None  # a cluster's shared key: same pseudonyms on every node
    mapping_retention_days: int = DEFAULT_MAPPING_RETENTION_DAYS  # unused mapping rows: removed
    jobs: int = 1  # worker processes redacting log streams (byte-identical output)
    priority: str = "normal"  # "low": nice 10 + best-effort I/O level 7 ("idle": idle I/O class)
    allow_weaker_redaction: bool = False  # the spec's rules files may weaken protected rules
    trust: SpecTrust = BUILTIN  # who signed the run instructions (shown, recorded)
    allow_unsigned: bool = False  # with AssumeYes: unsigned run instructions may do risky things


def run_collection(
    spec: Spec,
    options: RunOptions,
    reviewer: Reviewer,
    progress_factory: ProgressFactory,
) -> RunResult:
    """Run the whole pipeline. Raises ``ConsentRefused`` when the reviewer says no (nothing is
    written), ``KoncisError`` for failures that stop the run; staging never survives."""
    if options.archive_format not in ARCHIVE_FORMATS:
        raise KoncisError(f"unknown bundle format {options.archive_format!r}")
    now = (options.now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    ctx = CollectContext(now=now, root=options.root, logger=log)
    check_query_columns(spec)
    state_dir = options.state_dir or default_state_dir()
    problem = state_dir_problem(state_dir)
    if problem is not None:
        raise InputError(problem)
    expire_mapping(state_dir, options.mapping_retention_days)  # last use is wall-clock time
    redactor = build_redactor(
        extra_rule_files=[*spec.redact.rules, *options.extra_rules],
        keywords=spec.redact.keywords,
        state_dir=options.state_dir,
        pseudonym_key=options.pseudonym_key,
        untrusted_rule_files=spec.redact.rules,
    )
    try:
        return _run(spec, options, reviewer, progress_factory, ctx, redactor, now)
    finally:
        redactor.close()


def _run(
    spec: Spec,
    options: RunOptions,
    reviewer: Reviewer,
    progress_factory: ProgressFactory,
    ctx: CollectContext,
    redactor: Redactor,
    now: datetime,
) -> RunResult:
    # what is learned before collection makes new redactors: each is fixed once made
    redactor = _learn_server_identity(redactor)
    plan = make_plan(spec, ctx, options.excluded, options.trust)
    refuse_weakening(plan.rule_changes, options.allow_weaker_redaction)
    check_unsigned(plan.trust, plan.risks, reviewer.mode == AssumeYes.mode, options.allow_unsigned)
    if not reviewer.approve_plan(plan):
        raise ConsentRefused("collection not agreed: nothing was collected")

    check_free_space(options.output_dir, _space_needed(plan))
    top = bundle_base_name(spec.name, now)
    staging: Optional[Staging] = None
    log_handler: Optional[ToolLog] = None
    try:
        with deferred_signals():  # a Ctrl-C here would leave a staging folder nobody removes
            staging = Staging.create(
                parent_dir=options.output_dir,
                top=top,
                encrypted_at_rest=bool(_recipients(spec, options)),
            )
        log_handler = start_tool_log()
        log.info("%s", lower_priority(options.priority))
        log.info("redaction engine: %s, %d job(s)", engine_name(), options.jobs)
        log.info(
            "koncis-diag %s: collecting %d item(s) for spec %s",
            __version__,
            len(plan.items),
            spec.name,
        )
        redactor = _scan_configuration(plan, ctx, redactor)
        identities, redactor = _prepare_databases(spec, ctx, redactor, options.password_source)
        started = time.monotonic()
        with ParallelRedaction(redactor, options.jobs) as parallel:
            parallel.start()
            results = _collect_all(plan, ctx, redactor, staging, progress_factory, parallel)
        log.info("collected and redacted in %.1f s", time.monotonic() - started)
        _check_something_collected(results)
        results += [
            ItemResult(item=spec.item(name), status="excluded") for name in options.excluded
        ]
        run = RunResult(plan=plan, items=results, identities=identities)
        learned, redactor = apply_learned(run.items, redactor, staging)
        started = time.monotonic()
        with progress_factory(staging.total_bytes(), "leak check") as progress:
            progress.phase(f"leak check of {len(staging.records())} staged file(s)")
            run.findings = _leak_check(staging, redactor, options.jobs, progress=progress)
            if learned.users or learned.hosts:  # the learned names' clear copies: rewritten
                progress.phase("leak check of the files rewritten for learned names")
                run.findings, rewritten = rewrite_learned(
                    run.items,
                    redactor,
                    staging,
                    run.findings,
                    lambda paths: _leak_check(staging, redactor, options.jobs, paths),
                )
                learned = replace(learned, rewritten=rewritten)
        log.info("leak check of the staged files in %.1f s", time.monotonic() - started)
        run.learned = asdict(learned)
        _tally(run, redactor)
        summary = _summary(run, redactor)
        summary.encrypted_at_rest = staging.encrypted_at_rest
        summary.checked_files = len(staging.records())
        summary.review = material_for(
            run, spec, now, redactor, staging, log_handler, options.retention
        )
        decision = reviewer.decide(summary, staging.top_dir)
        if not decision.proceed:
            raise ConsentRefused(f"bundle not written: {decision.reason}")
        _apply_exclusions(run, decision, staging)
        run.consent = make_record(
            spec_name=spec.name,
            spec_sha256=spec.sha256,
            when=datetime.now(timezone.utc),
            mode=reviewer.mode,
            excluded=[*options.excluded, *decision.excluded],
            items=[r.item.name for r in run.items if r.status != "excluded"],
            accepted_findings=len(run.findings) if decision.accepted_findings else 0,
            rule_changes=[change.to_json() for change in plan.rule_changes],
            trust=plan.trust.to_json(),
        )
        _tally(run, redactor)
        write_metadata(run, spec, now, redactor, staging, log_handler, options.retention)
        log_handler = None
        with progress_factory(staging.total_bytes(), "writing the bundle") as progress:
            progress.phase("writing the bundle")
            staging.archived = progress.advance
            run.bundle_path = write_archive(
                staging,
                output_dir=options.output_dir,
                fmt=options.archive_format,
                recipients=_recipients(spec, options),
                unique_name=True,  # a run in the same second (same name) gets <name>-2
            )
        return run
    finally:
        if log_handler is not None:
            stop_tool_log(log_handler)
        if staging is not None:
            staging.cleanup()


# ------------------------------------------------------------------------------ collecting


def _check_something_collected(results: Sequence[ItemResult]) -> None:
    """A run where every item failed or found nothing writes no bundle (exit 1): an empty
    bundle attached to a ticket looks like an answer and is none."""
    if results and all(r.status in ("failed", "empty", "absent") for r in results):
        names = ", ".join(r.item.name for r in results)
        raise KoncisError(
            f"nothing was collected: every item failed or found nothing ({names}); "
            "no bundle was written"
        )


def _collect_all(
    plan: Plan,
    ctx: CollectContext,
    redactor: Redactor,
    staging: Staging,
    progress_factory: ProgressFactory,
    parallel: ParallelRedaction,
) -> list[ItemResult]:
    results: list[ItemResult] = []
    with progress_factory(plan.estimated_bytes) as progress:
        ctx.status = progress.status
        for index, planned in enumerate(plan.items, start=1):
            item = planned.item
            progress.item_started(item.name, index, len(plan.items))
            result = _collect_item(item, ctx, redactor, staging, progress, parallel)
            results.append(result)
            detail = result.error or f"{len(result.written)} file(s)"
            progress.item_finished(item.name, result.status, detail)
    ctx.status = CollectContext().status
    return results


def _collect_item(
    item: Item,
    ctx: CollectContext,
    redactor: Redactor,
    staging: Staging,
    progress: ProgressReporter,
    parallel: ParallelRedaction,
) -> ItemResult:
    result = ItemResult(item=item)
    folder = f"{BUNDLE_FOLDER[item.kind]}/{item.name}"
    started = time.monotonic()
    try:
        for output in REGISTRY[item.kind].collect(item, ctx):
            record = store_output(folder, output, redactor, staging, progress, parallel)
            result.outputs.append(record)
    except BundleError:
        raise  # staging itself failed (disk full, ...): nothing else could be written either
    except NotPresent as err:  # nothing of it on this server: normal for an optional item
        result.status = "absent" if item.optional else "failed"
        result.error = redacted(redactor, str(err))
    except KoncisError as err:
        result.status, result.error = "failed", redacted(redactor, str(err))
        log.info("item %s failed: %s", item.name, err)
    except (OSError, ValueError, UnicodeError, RuntimeError) as err:
        # An unexpected problem in one item must not sink the run, and must not leave the
        # item half-described: record it, log the details for the tool's log, go on.
        result.status = "failed"
        result.error = redacted(redactor, f"{type(err).__name__}: {err}")
        log.exception("item %s failed unexpectedly", item.name)
    result.duration_s = time.monotonic() - started
    if result.status == "ok":
        if not result.outputs:
            result.status = "empty"
        elif any(o.skipped and not o.outside_window for o in result.outputs):
            result.status = "partial" if result.written else "empty"
    if result.status == "empty":
        _explain_unreadable(result)
    return result


def _explain_unreadable(result: ItemResult) -> None:
    """An item that found files but could read none because of permissions failed (it is not
    'empty'): the error names one of them and who may read it."""
    denied = [o for o in result.outputs if o.skipped and "permission denied" in o.skipped]
    if not denied:
        return
    more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
    result.status = "failed"
    result.error = f"{denied[0].source}: {denied[0].skipped}{more}"


# ----------------------------------------------------------------------- after collecting


def _learn_server_identity(redactor: Redactor) -> Redactor:
    """The server's own names appear everywhere (paths, logs, prompts): known before any
    content is redacted, so they are caught in every file (by the redactor returned)."""
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in ("localhost", "localhost.localdomain"):
            names.add(name)
            names.add(name.split(".")[0])
    names = {n for n in names if len(n) >= 3}
    if not names:
        return redactor
    return redactor.with_literals(
        sorted(names), rule_name="server-hostname", category="network", shape="host"
    )


def _scan_configuration(plan: Plan, ctx: CollectContext, redactor: Redactor) -> Redactor:
    """Scan first, then rewrite: host names and user names found in the configuration items
    (JDBC URLs, base URLs, proxy names, database users) become redactions (of the redactor
    returned) before any item is collected, so they disappear from every file, logs and
    earlier items included."""
    from koncis_diag.redaction import scan_identifiers

    def config_sources() -> Iterator[tuple[str, Iterator[bytes], str]]:
        for planned in plan.items:
            if planned.item.kind != "config":
                continue
            for output in REGISTRY["config"].collect(planned.item, ctx):
                if isinstance(output, StreamOutput) and output.chunks is not None:
                    yield output.source, output.chunks, output.fmt

    try:
        found = scan_identifiers(redactor, config_sources())
    except (KoncisError, OSError) as err:
        log.warning("configuration scan: %s", redacted(redactor, str(err)))
        return redactor
    log.info(
        "configuration scan: %d host name(s) and %d user name(s) will be redacted everywhere",
        len(found.hosts) + len(found.short_hosts),
        len(found.users),
    )
    return found.apply(redactor)


def _prepare_databases(
    spec: Spec, ctx: CollectContext, redactor: Redactor, password_source: Optional[PasswordSource]
) -> tuple[dict[str, object], Redactor]:
    """Before any item runs: resolve every database connection once (passwords asked now, kept
    in memory only), then run the spec's ``redact.identities`` queries so the user names,
    display names and e-mails they return are redacted in every item, including free text.
    The values themselves are never written anywhere. Returns the identities' report and the
    redactor that knows the passwords and names."""
    from koncis_diag.collect.databases.connections import CredentialStore, attach_credentials
    from koncis_diag.collect.databases.identities import resolve_identities

    store = CredentialStore(password_source)
    attach_credentials(ctx, store)
    for problem in store.prepare(spec, ctx):
        log.warning("database connection: %s", problem)
    known = store.secrets()
    if known:  # a password the run knows is masked wherever it appears, also without a key
        redactor = redactor.with_literals(
            known, rule_name=PASSWORDS_RULE, category="secret", shape="token", action="mask"
        )
    if not spec.redact.identities:
        return {}, redactor
    found = resolve_identities(spec, ctx)
    if found.names:
        redactor = redactor.with_literals(
            found.names, rule_name="identities", category="identity", shape="user"
        )
    if found.emails:
        redactor = redactor.with_literals(
            found.emails, rule_name="identity-emails", category="identity", shape="email"
        )
    for problem in found.problems:
        log.warning("identities: %s", problem)
    report: dict[str, object] = {
        "queries": len(spec.redact.identities),
        "completed": found.queries,
        "values": len(found.values),
        "problems": [redacted(redactor, p) for p in found.problems],
    }
    return report, redactor


def _tally(run: RunResult, redactor: Redactor) -> None:
    run.by_rule = Counter()
    for result in run.items:
        if result.status != "excluded":
            run.by_rule.update(result.redactions)
    run.by_category = Counter()
    for rule, count in run.by_rule.items():
        run.by_category[redactor.category_of(rule)] += count


def _leak_check(
    staging: Staging,
    redactor: Redactor,
    jobs: int,
    only: Optional[list[str]] = None,
    progress: Optional[ProgressReporter] = None,
) -> list[Finding]:
    """Rescan what was staged with the high-confidence detectors on ``jobs`` processes (each
    file read once, in order, decrypted on the fly when staging is encrypted at rest), and the
    list of staged file names; ``only``: just these files. At most
    ``MAX_FINDINGS_PER_SOURCE`` per file, no overall limit: as when each file was checked
    on its own."""
    from functools import partial

    from koncis_diag.redaction.leakcheck import LazySource
    from koncis_diag.redaction.leakcheck_parallel import leak_check_parallel

    records = staging.records()

    def opener(path: str) -> IO[bytes]:
        handle = staging.open_read(path)
        return handle if progress is None else counted(handle, progress.advance)

    sources = [
        LazySource(record.path, partial(opener, record.path), record.size)
        for record in records
        if only is None or record.path in only
    ]
    if only is None:  # the file names are part of what leaves: one more source, a name a line
        names = "".join(f"{r.path}\n" for r in records).encode("utf-8", "surrogateescape")
        sources.append(LazySource(NAMES_SOURCE, partial(io.BytesIO, names), len(names)))
    return leak_check_parallel(sources, redactor, jobs, max_findings=None)


def _summary(run: RunResult, redactor: Redactor) -> Summary:
    rows: list[SummaryRow] = []
    total = 0
    for result in run.items:
        if result.status == "excluded":
            continue
        written_bytes = sum(o.bytes for o in result.written)
        total += written_bytes
        categories: Counter[str] = Counter()
        for rule, count in result.redactions.items():
            categories[redactor.category_of(rule)] += count
        rows.append(
            {
                "name": result.item.name,
                "kind": result.item.kind,
                "status": result.status,
                "files": len(result.written),
                "bytes": written_bytes,
                "redactions": dict(categories),
                "truncated": sum(1 for o in result.written if o.truncated),
                "skipped": sum(1 for o in result.outputs if o.skipped),
                # which ones: the staged path of a truncated file, the source and reason of a
                # skipped one (both already redacted)
                "truncated_files": [o.path for o in result.written if o.truncated],
                "skipped_files": [(o.source, o.skipped) for o in result.outputs if o.skipped],
                "error": result.error,
            }
        )
    return Summary(rows=rows, findings=run.findings, total_bytes=total)


def _apply_exclusions(run: RunResult, decision: Decision, staging: Staging) -> None:
    for result in run.items:
        if result.item.name in decision.excluded:
            staging.remove_prefix(f"{BUNDLE_FOLDER[result.item.kind]}/{result.item.name}/")
            result.status, result.outputs = "excluded", []


def _recipients(spec: Spec, options: RunOptions) -> list[str]:
    """age recipients from the spec (support sends its key with the instructions) and flags."""
    return list(dict.fromkeys([*getattr(spec, "encrypt_to", ()), *options.encrypt_to]))


def _space_needed(plan: Plan) -> int:
    # Staging holds the redacted copy, the archive is written next to it: both at once.
    return 2 * plan.estimated_bytes + 1024 * 1024
