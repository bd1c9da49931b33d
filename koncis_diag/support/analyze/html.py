"""A self-contained HTML report: the hourly chart as inline SVG plus the findings.

No script, no external resource (a Content-Security-Policy forbids both), so it opens offline
and cannot call anywhere. Every value from the bundle is HTML-escaped.
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from koncis_diag.bundle import deferred_signals
from koncis_diag.errors import KoncisError
from koncis_diag.support.analyze.lines import printable
from koncis_diag.support.analyze.timeline import Timeline

if TYPE_CHECKING:
    from koncis_diag.support.analyze.findings import AnalysisResult

CHART_BINS = 240
_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 960, 260, 48, 40, 16
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
.sev{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-size:.85em}
.critical{background:#8b0000}.high{background:#c0392b}.medium{background:#d68910}
.low{background:#2471a3}.info{background:#7f8c8d}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;font-size:12px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.muted{color:#666}
"""


def _e(value: object, limit: int = 300) -> str:
    return html.escape(printable(str(value), limit), quote=True)


def render_chart(timeline: Timeline) -> str:
    """Stacked bars (errors red, warnings amber) per hour or group of hours, as SVG."""
    bins = timeline.bins(CHART_BINS)
    if not bins:
        return '<p class="muted">No timestamped ERROR or WARN lines in the logs.</p>'
    plot_w, plot_h = _WIDTH - _LEFT - 8, _HEIGHT - _BOTTOM - _TOP
    top = max(b.total for b in bins) or 1
    step = plot_w / len(bins)
    bar_w = max(1.0, step * 0.85)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="errors and warnings per hour">',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_WIDTH - 8}" y2="{_TOP + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 10}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for index, item in enumerate(bins):
        x = _LEFT + index * step
        err_h = plot_h * item.errors / top
        warn_h = plot_h * item.warnings / top
        end = item.start + timedelta(hours=item.hours)
        label = f"{item.start:%Y-%m-%d %H:00} – {end:%H:00}: {item.errors} errors, {item.warnings} warnings"
        parts.append(f"<g><title>{_e(label)}</title>")
        if err_h:
            parts.append(
                f'<rect x="{x:.1f}" y="{_TOP + plot_h - err_h:.1f}" width="{bar_w:.1f}" '
                f'height="{err_h:.1f}" fill="#c0392b"/>'
            )
        if warn_h:
            parts.append(
                f'<rect x="{x:.1f}" y="{_TOP + plot_h - err_h - warn_h:.1f}" width="{bar_w:.1f}" '
                f'height="{warn_h:.1f}" fill="#f0b429"/>'
            )
        parts.append("</g>")
    ticks = min(6, len(bins))
    for tick in range(ticks):
        index = round(tick * (len(bins) - 1) / max(1, ticks - 1))
        x = _LEFT + index * step
        parts.append(
            f'<text x="{x:.1f}" y="{_HEIGHT - _BOTTOM + 16}" font-size="11" '
            f'text-anchor="middle">{bins[index].start:%m-%d %H:00}</text>'
        )
    parts.append(
        f'<text x="{_LEFT}" y="{_HEIGHT - 6}" font-size="11" fill="#c0392b">■ errors</text>'
        f'<text x="{_LEFT + 70}" y="{_HEIGHT - 6}" font-size="11" fill="#b7950b">■ warnings</text>'
        f'<text x="{_WIDTH - 8}" y="{_HEIGHT - 6}" font-size="11" text-anchor="end" '
        f'fill="#666">one bar = {bins[0].hours} h, server time</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(result: AnalysisResult) -> str:
    name = result.bundle.rsplit("/", 1)[-1]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>koncis-diag analysis: {_e(name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>koncis-diag analysis: {_e(name)}</h1>",
        f'<p class="muted">host {_e(result.host or "-")} · created {_e(result.created or "-")}'
        + (f" · nodes {_e(', '.join(result.nodes))}" if result.nodes else "")
        + f" · {len(result.findings)} findings from {len(result.statuses)} checks</p>",
        "<h2>Errors and warnings per hour</h2>",
        render_chart(result.timeline),
    ]
    for index, finding in enumerate(result.findings, start=1):
        check = finding.check
        out.append(
            f'<h2>{index}. <span class="sev {check.severity}">{check.severity}</span> '
            f'{_e(check.title)} <span class="muted">({finding.count}× · {_e(check.id)})</span></h2>'
        )
        out.append(f"<p>{_e(check.explanation, 2000)}</p>")
        out.append(f"<p><b>Next step:</b> {_e(check.next_step, 2000)}</p>")
        if finding.only_on:
            out.append(f"<p><b>Only on:</b> {_e(', '.join(finding.only_on))}</p>")
        if finding.groups:
            rows = "".join(f"<tr><td>{_e(g)}</td><td>{c}</td></tr>" for g, c in finding.groups[:20])
            out.append(f"<table><tr><th>exception</th><th>count</th></tr>{rows}</table>")
        evidence = "\n".join(
            _e(f"{e.path}:{e.line}: {e.text}" if e.line is not None else f"{e.path}: {e.text}", 600)
            for e in finding.examples
        )
        out.append(f"<pre>{evidence}</pre>")
    if result.not_evaluated:
        items = "".join(
            f"<li><code>{_e(s.check.id)}</code>: {_e(s.reason)}</li>" for s in result.not_evaluated
        )
        out.append(f"<h2>Not evaluated</h2><ul>{items}</ul>")
    if result.notes:
        items = "".join(f"<li>{_e(note)}</li>" for note in result.notes)
        out.append(f"<h2>Notes</h2><ul>{items}</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html(result: AnalysisResult, path: Union[str, Path]) -> Path:
    """Write the report (0600: it quotes customer logs), replacing an older report file but
    never a folder or a symbolic link."""
    target = Path(path)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise KoncisError(f"{target} exists and is not a regular file: choose another name")
    folder = target.parent if str(target.parent) else Path(".")
    temp: Optional[str] = None
    try:
        with deferred_signals():  # an interruption never leaves the temporary file behind
            fd, temp = tempfile.mkstemp(prefix=".koncis-diag-", suffix=".html", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(render_html(result))
        os.replace(temp, target)
    except BaseException as err:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if isinstance(err, OSError):
            raise KoncisError(f"cannot write {target}: {err.strerror or err}") from None
        raise
    return target
