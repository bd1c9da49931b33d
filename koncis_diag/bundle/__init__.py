"""The bundle stage: what leaves the server, and how support reads it.

``staging`` is the run's private folder (0700/0600, encrypted at rest on request) and ``store``
writes each redacted output into it; ``metadata`` writes the manifest, consent record, redaction
report and tool log, as ``manifest`` defines them; ``writer`` turns the staging into one archive,
atomically; ``crypto`` encrypts it for support (age); ``reader`` opens a bundle safely (limits
on size, entries and compression ratio) for verify, inspect and analyze.
The writing side is re-exported here: ``from koncis_diag.bundle import Staging, write_archive``.
"""

from koncis_diag.bundle.staging import Staging, deferred_signals
from koncis_diag.bundle.writer import (
    ARCHIVE_FORMATS,
    COMPRESS_LEVEL,
    bundle_base_name,
    check_free_space,
    ensure_output_dir,
    write_archive,
)

__all__ = [
    "ARCHIVE_FORMATS",
    "COMPRESS_LEVEL",
    "Staging",
    "bundle_base_name",
    "check_free_space",
    "deferred_signals",
    "ensure_output_dir",
    "write_archive",
]
