"""The documentation, shipped with the tool: ``koncis-diag docs [TOPIC]``.

``docs/*.md`` in the repository is the single source. The wheel carries a copy under
``koncis_diag/data/docs/`` (pyproject's ``force-include``), so a pipx install can show the
guides; a checkout or an editable install reads ``docs/`` beside the package.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from koncis_diag.errors import InputError, KoncisError

#: Every topic, in reading order, with one line on what it is for.
TOPICS = {
    "admin-guide": "for admins: install, run, review, what leaves the server and what does not",
    "run-instructions": "every key of the run-instructions YAML, profiles and signed specs",
    "redaction-rules": "the redaction rules format, the default detectors, the exact semantics",
    "support-guide": "for support: ask for, receive, verify, analyze, decrypt, merge, purge",
    "bundle-format": "the bundle layout and the manifest's fields; reading bundles safely",
    "reliability": "every fault and hostile input, what the tool does, the test that proves it",
    "architecture": "for developers: the stages, who calls whom, where a change goes",
}


def docs_dir() -> Path:
    """The folder holding the topics: the packaged copy first, then the checkout's docs/."""
    try:
        from importlib.resources import files

        packaged = files("koncis_diag") / "data" / "docs"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ImportError, OSError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "docs"


def topic_name(text: str) -> str:
    """The topic ``text`` names (``support-guide``, ``docs/support-guide.md`` and
    ``Support-Guide`` alike); ``InputError`` with the closest topic for anything else."""
    name = text.strip().lower()
    if name.startswith("docs/"):
        name = name[len("docs/") :]
    if name.endswith(".md"):
        name = name[: -len(".md")]
    if name in TOPICS:
        return name
    close = difflib.get_close_matches(name, list(TOPICS), n=1, cutoff=0.5)
    hint = f", did you mean '{close[0]}'?" if close else ""
    raise InputError(
        f"unknown topic {text!r}{hint} (topics: {', '.join(TOPICS)}; `koncis-diag docs` lists them)"
    )


def topic_path(name: str) -> Path:
    return docs_dir() / f"{topic_name(name)}.md"


def topic_text(name: str) -> str:
    """The Markdown of a topic, as written in docs/."""
    path = topic_path(name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise KoncisError(
            f"the documentation {path} is missing from this installation "
            f"({err.strerror or err}): reinstall koncis-diag"
        ) from None
