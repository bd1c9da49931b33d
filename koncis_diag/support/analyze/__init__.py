"""``koncis-diag analyze``: known-problem checks over a bundle, with evidence and a timeline."""

from __future__ import annotations

from koncis_diag.support.analyze.checks import Check
from koncis_diag.support.analyze.engine import analyze_bundle, select_checks
from koncis_diag.support.analyze.findings import AnalysisResult, Evidence, Finding
from koncis_diag.support.analyze.html import write_html
from koncis_diag.support.analyze.loader import builtin_checks, load_checks
from koncis_diag.support.analyze.timeline import render_sparkline

__all__ = [
    "AnalysisResult",
    "Check",
    "Evidence",
    "Finding",
    "analyze_bundle",
    "builtin_checks",
    "load_checks",
    "render_sparkline",
    "select_checks",
    "write_html",
]
