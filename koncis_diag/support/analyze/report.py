"""Findings as Markdown (to paste into a ticket) and as plain text (for a terminal).

Everything that comes from the bundle is untrusted: it is made printable (no control
characters), evidence goes into fenced code blocks whose fence is longer than any run of
backticks inside, and short values are shown as inline code without backticks.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING

from koncis_diag.support.analyze.lines import printable
from koncis_diag.support.analyze.timeline import render_sparkline

if TYPE_CHECKING:
    from koncis_diag.support.analyze.findings import AnalysisResult, Evidence, Finding

_BACKTICKS = re.compile(r"`+")


def _code(value: str) -> str:
    """An untrusted short value as Markdown inline code."""
    return "`" + printable(value, 120).replace("`", "'") + "`" if value else "-"


def _fence(lines: list[str]) -> str:
    longest = max((len(m.group(0)) for line in lines for m in _BACKTICKS.finditer(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence + "text", *lines, fence])


def _where(evidence: Evidence) -> str:
    place = evidence.path if evidence.line is None else f"{evidence.path}:{evidence.line}"
    return printable(place, 200)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _summary_line(result: AnalysisResult) -> str:
    counts = result.severity_counts()
    detail = ", ".join(f"{n} {severity}" for severity, n in counts.items())
    found = _plural(len(result.findings), "finding")
    return f"{found}" + (f" ({detail})" if detail else "") + f" from {len(result.statuses)} checks"


def _node_note(finding: Finding, result: AnalysisResult) -> str:
    if not finding.only_on:
        return ""
    names = ", ".join(finding.only_on)
    return f"only on {names} ({len(finding.only_on)} of {len(result.nodes)} nodes)"


def _more(finding: Finding) -> str:
    shown = len(finding.examples)
    if finding.count <= shown:
        return ""
    files = ", ".join(f"{printable(p, 120)} ({c})" for p, c in finding.files)
    return f"{finding.count - shown} more not shown; counts per file: {files}"


# ------------------------------------------------------------------------------- Markdown


def render_markdown(result: AnalysisResult) -> str:
    bundle_name = result.bundle.rsplit("/", 1)[-1]
    out = [f"## koncis-diag analysis of {_code(bundle_name)}", ""]
    facts = [f"host {_code(result.host)}", f"created {_code(result.created)}"]
    if result.spec_name:
        facts.append(f"run instructions {_code(result.spec_name)}")
    if result.nodes:
        facts.append("nodes " + ", ".join(_code(n) for n in result.nodes))
    out += [" · ".join(facts), "", f"**{_summary_line(result)}**", ""]
    for index, finding in enumerate(result.findings, start=1):
        out += _markdown_finding(index, finding, result)
    out += ["### Errors and warnings per hour", "", _fence(render_sparkline(result.timeline)), ""]
    if result.not_evaluated:
        out += ["### Not evaluated", ""]
        out += [f"- `{s.check.id}`: {s.reason}" for s in result.not_evaluated]
        out.append("")
    if result.notes:
        out += ["### Notes", ""]
        out += [f"- {printable(note, 300).replace('`', chr(39))}" for note in result.notes]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _markdown_finding(index: int, finding: Finding, result: AnalysisResult) -> list[str]:
    check = finding.check
    out = [
        f"### {index}. [{check.severity.upper()}] {check.title} "
        f"({_plural(finding.count, 'occurrence')})",
        "",
        check.explanation,
        "",
        f"**Next step:** {check.next_step}",
        "",
    ]
    nodes = _node_note(finding, result)
    if nodes:
        out += [f"**Nodes:** {nodes}", ""]
    if finding.groups:
        out += ["| exception | count |", "|---|---:|"]
        out += [f"| {_code(g)} | {c} |" for g, c in finding.groups[:10]]
        if len(finding.groups) > 10:
            out.append(f"| … {len(finding.groups) - 10} more | |")
        out.append("")
    evidence = [f"{_where(e)}: {e.text}" for e in finding.examples]
    out += ["Evidence:", "", _fence(evidence), ""]
    more = _more(finding)
    if more:
        out += [more, ""]
    return out


# ------------------------------------------------------------------------------ plain text


def render_text(result: AnalysisResult, width: int = 100) -> str:
    width = max(60, width)
    bundle_name = result.bundle.rsplit("/", 1)[-1]
    out = [
        f"Analysis of {printable(bundle_name, 200)}",
        f"host {printable(result.host, 100) or '-'}, created {printable(result.created, 40) or '-'}"
        + (f", nodes: {', '.join(printable(n, 60) for n in result.nodes)}" if result.nodes else ""),
        _summary_line(result),
        "",
    ]
    for index, finding in enumerate(result.findings, start=1):
        check = finding.check
        out.append(
            f"{index}. [{check.severity.upper()}] {check.title} "
            f"({_plural(finding.count, 'occurrence')}) [{check.id}]"
        )
        body = textwrap.wrap(check.explanation, width - 4)
        body += textwrap.wrap("Next step: " + check.next_step, width - 4)
        nodes = _node_note(finding, result)
        if nodes:
            body.append("Nodes: " + nodes)
        for group, count in finding.groups[:10]:
            body.append(f"{count:>7}  {printable(group, width - 14)}")
        out += ["    " + line for line in body]
        for evidence in finding.examples:
            out.append("    > " + _where(evidence))
            out += textwrap.wrap(
                evidence.text,  # already printable and cut to ~300 characters
                width,
                initial_indent="      ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            )
        more = _more(finding)
        if more:
            out += ["    " + line for line in textwrap.wrap(more, width - 4)]
        out.append("")
    out += [
        "Errors and warnings per hour:",
        *render_sparkline(result.timeline, min(72, width - 20)),
    ]
    if result.not_evaluated:
        out += ["", f"Not evaluated ({len(result.not_evaluated)}):"]
        out += [printable(f"  {s.check.id}: {s.reason}", width) for s in result.not_evaluated]
    if result.notes:
        out += ["", "Notes:"]
        out += ["  " + printable(note, width - 2) for note in result.notes]
    return "\n".join(out) + "\n"
