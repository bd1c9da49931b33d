"""The ``files`` collector: logs and any text files matched by glob patterns.

Plan: resolve the patterns (no content read except an 8 KiB head to spot binary files).
Collect: one ``StreamOutput`` per matched file, read lazily while the pipeline consumes it;
a file that cannot or must not be read is a skipped output, and the rest goes on.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Optional

from koncis_diag.collect.base import (
    CollectContext,
    Output,
    Planned,
    PlannedSource,
    StreamOutput,
)
from koncis_diag.collect.compression import compression_of
from koncis_diag.collect.filestream import (
    ReadSettings,
    prepare_file,
    stream_file,
)
from koncis_diag.collect.formats import format_for_name
from koncis_diag.collect.pathmatch import Candidate, resolve
from koncis_diag.collect.textio import (
    SkipFile,
    human_size,
    open_regular_file,
    read_head,
    sniff,
)
from koncis_diag.collect.window import describe_since
from koncis_diag.errors import NotPresent
from koncis_diag.spec import FilesItem, Item

#: Plan estimate of the decompressed size of bzip2/xz files (gzip records its own size).
ASSUMED_COMPRESSION_RATIO = 8


def _files_item(item: Item) -> FilesItem:
    if not isinstance(item, FilesItem):
        raise TypeError(f"files collector got a {type(item).__name__}")
    return item


def _read_settings(item: FilesItem, ctx: CollectContext) -> ReadSettings:
    if item.since is None:
        return ReadSettings(max_size=item.max_size)
    return ReadSettings(
        cutoff=item.since.cutoff(ctx.now).timestamp(),
        since_label=describe_since(item.since),
        max_size=item.max_size,
    )


def _gzip_recorded_size(candidate: Candidate) -> Optional[int]:
    """The size a gzip file records in its last 4 bytes (modulo 4 GiB; a plan estimate)."""
    try:
        opened = open_regular_file(candidate.host_path)
    except SkipFile:
        return None
    try:
        if opened.size < 18:
            return None
        return int(struct.unpack("<I", os.pread(opened.fd, 4, opened.size - 4))[0])
    except OSError:
        return None
    finally:
        opened.close()


class FilesCollector:
    """Collector for ``files`` items (and, through ``ConfigCollector``, ``config`` items)."""

    kind = "files"

    def content_format(self, file_name: str, head: bytes) -> str:
        """The format hint for a collected file (config overrides it)."""
        return format_for_name(file_name)

    # ----------------------------------------------------------------------------- plan

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        files_item = _files_item(item)
        settings = _read_settings(files_item, ctx)
        resolution = resolve(files_item, ctx)
        planned = Planned(item=item)
        planned.problems.extend(f"no file matches {p}" for p in resolution.unmatched_patterns)
        for candidate in resolution.candidates:
            source, estimate = self._plan_candidate(candidate, files_item, settings)
            planned.sources.append(source)
            planned.estimated_bytes += estimate
        return planned

    def _plan_candidate(
        self, candidate: Candidate, item: FilesItem, settings: ReadSettings
    ) -> tuple[PlannedSource, int]:
        source = PlannedSource(description=candidate.shown_path, size=candidate.size)
        if candidate.skip_reason:
            source.note = f"skipped: {candidate.skip_reason}"
            return source, 0
        if settings.cutoff is not None and (candidate.mtime or 0) < settings.cutoff:
            source.note = f"skipped: older than {settings.since_label}"
            return source, 0
        notes: list[str] = [candidate.note] if candidate.note else []
        size = candidate.size or 0
        compression = compression_of(candidate.server_path)
        if compression is None:
            problem = self._plan_head_problem(candidate)
            if problem:
                source.note = f"skipped: {problem}"
                return source, 0
            content = size
        else:
            recorded = _gzip_recorded_size(candidate) if compression == "gzip" else None
            content = recorded if recorded is not None else size * ASSUMED_COMPRESSION_RATIO
            notes.append(f"{compression}: stored decompressed")
        if item.max_size is not None and content > item.max_size:
            notes.append(f"will keep newest {human_size(item.max_size)}")
            content = item.max_size
        if settings.cutoff is not None:
            notes.append(f"lines older than {settings.since_label} will be trimmed")
        source.note = "; ".join(notes)
        return source, content

    @staticmethod
    def _plan_head_problem(candidate: Candidate) -> Optional[str]:
        """Binary files and unreadable files are visible in the plan (8 KiB read at most)."""
        try:
            opened = open_regular_file(candidate.host_path)
        except SkipFile as skip:
            return str(skip)
        try:
            return sniff(read_head(opened.fd, opened.size)).binary_reason
        except OSError as error:
            return f"cannot read: {error.strerror or error}"
        finally:
            opened.close()

    # -------------------------------------------------------------------------- collect

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        files_item = _files_item(item)
        settings = _read_settings(files_item, ctx)
        resolution = resolve(files_item, ctx)
        if not resolution.candidates:
            patterns = ", ".join(files_item.paths)
            raise NotPresent(f"{files_item.kind} {files_item.name}: no file matches {patterns}")
        for candidate in resolution.candidates:
            yield self._collect_candidate(candidate, settings)

    def _collect_candidate(self, candidate: Candidate, settings: ReadSettings) -> StreamOutput:
        name = candidate.bundle_path.rpartition("/")[2]
        output = StreamOutput(
            bundle_path=candidate.bundle_path,
            source=candidate.shown_path,
            fmt=format_for_name(name),
        )
        if candidate.note:
            output.notes.append(candidate.note)
        if candidate.skip_reason:
            output.skipped = candidate.skip_reason
            return output
        if settings.cutoff is not None and (candidate.mtime or 0) < settings.cutoff:
            output.skipped = f"older than {settings.since_label}"
            output.outside_window = True
            return output
        compression = compression_of(candidate.server_path)
        try:
            prepared = prepare_file(candidate.host_path, compression)
        except SkipFile as skip:
            output.skipped = str(skip)
            return output
        output.fmt = self.content_format(name, prepared.head)
        if compression is not None:
            output.notes.append(f"decompressed ({compression})")
        output.chunks = stream_file(prepared, settings, output)
        return output
