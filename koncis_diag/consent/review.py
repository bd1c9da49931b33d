"""The review before the final yes: the staged files with sizes and redaction counts, and any
of them, the manifest (a preview) or the tool's log opened in the pager from inside the tool.

Content reaches the terminal escaped (``console.shown``): a log line with an escape sequence
cannot move the cursor or repaint the question, with ``less -R`` or ``PAGER=cat`` alike. The
pager reads from a pipe: nothing decrypted is written to the disk when staging is encrypted.
"""

from __future__ import annotations

import codecs
import json
import signal
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Optional

from rich.table import Table
from rich.text import Text

from koncis_diag.console import UI, human_size, pager_command, shown

if TYPE_CHECKING:
    from koncis_diag.bundle import Staging
    from koncis_diag.bundle.metadata import ToolLog
    from koncis_diag.collect.results import RunResult
    from koncis_diag.redaction import Redactor
    from koncis_diag.spec import Spec

MANIFEST = "manifest.json"
TOOL_LOG = "koncis-diag.log"


@dataclass
class StagedEntry:
    item: str
    path: str  # relative to the bundle's top folder
    size: int
    redactions: int


@dataclass
class ReviewMaterial:
    staging_dir: Path
    open_file: Callable[[str], IO[bytes]]  # a staged file's content (decrypted if need be)
    manifest: Callable[[], bytes]  # the manifest as it would be written now
    tool_log: Callable[[], Iterable[bytes]]  # the tool's log so far, redacted
    files: list[StagedEntry] = field(default_factory=list)
    encrypted: bool = False  # staged as ciphertext: readable only through this review


def material_for(
    run: RunResult,
    spec: Spec,
    created: datetime,
    redactor: Redactor,
    staging: Staging,
    log_handler: ToolLog,
    retention: Optional[str],
) -> ReviewMaterial:
    """What the review shows, from the same data the bundle's files will be written from."""
    from koncis_diag.bundle.metadata import manifest_data, redacted_tool_log

    def manifest() -> bytes:
        data = manifest_data(run, spec, created, redactor, retention)
        data["files"] = {r.path: {"size": r.size, "sha256": r.sha256} for r in staging.records()}
        data["preview"] = (
            "written before your consent: when you agree, consent.json, redaction-report.json, "
            "README.txt and koncis-diag.log are added, items you exclude are removed, and "
            "the final manifest.json is written from the same data"
        )
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    from koncis_diag.spec import BUNDLE_FOLDER

    folders = {f"{BUNDLE_FOLDER[r.item.kind]}/{r.item.name}/": r.item.name for r in run.items}
    counts = {o.path: sum(o.redactions.values()) for r in run.items for o in r.written}
    files = []
    for record in staging.records():  # every staged file (a query's columns file too)
        item = next((n for f, n in folders.items() if record.path.startswith(f)), "")
        files.append(StagedEntry(item, record.path, record.size, counts.get(record.path, 0)))
    return ReviewMaterial(
        staging_dir=staging.top_dir.resolve(),
        files=files,
        open_file=staging.open_read,
        manifest=manifest,
        tool_log=lambda: redacted_tool_log(redactor, log_handler),
        encrypted=staging.encrypted_at_rest,
    )


def browse(ui: UI, material: ReviewMaterial, excluded: Iterable[str] = ()) -> None:
    """List the staged files, open what the admin names; Enter goes back to the question."""
    gone = set(excluded)
    files = [entry for entry in material.files if entry.item not in gone]
    where = shown(str(material.staging_dir))
    ui.err.print(  # one line, whatever the width: the path is for copy and paste
        f"The redacted files are staged encrypted in {where} (private to you; nothing "
        "decrypted is written to the disk: open them here)."
        if material.encrypted
        else f"The redacted files are staged in {where} (private to you).",
        markup=False,
        soft_wrap=True,
    )
    while True:
        _list(ui, files)
        answer = ui.ask(
            "Open which? a number or file name, m for the manifest, l for the tool's log "
            "(Enter: back to the question): "
        ).strip()
        if not answer:
            return
        chosen = _choose(ui, files, answer)
        if chosen is None:
            continue
        if chosen == MANIFEST:
            page(ui, [material.manifest()])
        elif chosen == TOOL_LOG:
            page(ui, material.tool_log())
        else:
            with material.open_file(chosen) as handle:
                page(ui, iter(lambda: handle.read(1 << 16), b""))


def _list(ui: UI, files: list[StagedEntry]) -> None:
    table = Table(title=Text("Staged files (redacted)"), title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("file", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("redacted", justify="right", no_wrap=True)  # values replaced
    for number, entry in enumerate(files, start=1):
        table.add_row(
            str(number), Text(shown(entry.path)), human_size(entry.size), str(entry.redactions)
        )
    table.add_row("m", Text(f"{MANIFEST} (a preview)"), "", "")
    table.add_row("l", Text(f"{TOOL_LOG} (so far, redacted)"), "", "")
    ui.err.print(table)
    ui.err.print(
        Text(
            "The manifest is written from the same data when you agree; consent.json, "
            "redaction-report.json and README.txt are added then.",
            style="dim",
        )
    )


def _choose(ui: UI, files: list[StagedEntry], answer: str) -> Optional[str]:
    """A staged path, ``MANIFEST`` or ``TOOL_LOG`` for what the admin typed; None (with a
    warning) when it names nothing or more than one file."""
    if answer.lower() in ("m", MANIFEST):
        return MANIFEST
    if answer.lower() in ("l", TOOL_LOG):
        return TOOL_LOG
    if answer.isdigit():
        number = int(answer)
        if 1 <= number <= len(files):
            return files[number - 1].path
        ui.warn(f"no file number {number} (1 to {len(files)})")
        return None
    exact = [e.path for e in files if e.path == answer]
    found = exact or [e.path for e in files if e.path.rsplit("/", 1)[-1] == answer]
    if len(found) == 1:
        return found[0]
    if found:
        ui.warn(f"{len(found)} files are named {shown(answer)!r}: type its number or full path")
    else:
        ui.warn(f"no staged file named {shown(answer)!r}")
    return None


def page(ui: UI, blocks: Iterable[bytes]) -> None:
    """Show the text through ``$PAGER`` (else ``less``/``more``), escaped, streamed through a
    pipe; without a pager on the terminal as is. Ctrl-C belongs to the pager meanwhile."""
    argv = pager_command(ui.term.environ)
    lines = _escaped(blocks)
    if argv is None:
        for text in lines:
            ui.term.stderr.write(text)
        ui.term.stderr.flush()
        return
    environ = dict(ui.term.environ)
    environ.setdefault("LESS", "FRX")
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave the signals alone
        previous = None
    try:
        ui.term.stderr.flush()
        try:
            output: Optional[int] = ui.term.stderr.fileno()
        except (OSError, ValueError, AttributeError):
            output = None
        try:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=output, env=environ)
        except OSError as err:
            ui.warn(f"cannot start the pager {shown(argv[0])}: {err.strerror}")
            return
        assert process.stdin is not None
        try:
            for text in lines:
                process.stdin.write(text.encode("utf-8", "replace"))
            process.stdin.close()
        except BrokenPipeError:  # the admin quit the pager before the end
            pass
        process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _escaped(blocks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for block in blocks:
        yield shown(decoder.decode(block), lines=True)
    yield shown(decoder.decode(b"", final=True), lines=True)
