"""The redaction engine: rules → detectors → single-pass rewrite → pseudonyms → counts.

See docs/redaction-rules.md for the rules format and the exact semantics.
"""

from __future__ import annotations

from koncis_diag.redaction.checks import check_rules_file
from koncis_diag.redaction.discovery import ScanResult, scan_identifiers
from koncis_diag.redaction.leakcheck import Finding, leak_check
from koncis_diag.redaction.redactor import Redactor, build_redactor
from koncis_diag.redaction.reveal import Revealed, reveal, reveal_all
from koncis_diag.redaction.rule_types import Rule
from koncis_diag.redaction.ruleset import effective_rules
from koncis_diag.redaction.stream import RedactionStream

__all__ = [
    "Finding",
    "RedactionStream",
    "Redactor",
    "Revealed",
    "Rule",
    "ScanResult",
    "build_redactor",
    "check_rules_file",
    "effective_rules",
    "leak_check",
    "reveal",
    "reveal_all",
    "scan_identifiers",
]
