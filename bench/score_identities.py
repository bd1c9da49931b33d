"""Score identity redaction end to end on the labelled fixture tree.

    python bench/score_identities.py            # the table
    python bench/score_identities.py --json     # the numbers, for tests
    python bench/score_identities.py -v         # every occurrence left in clear

The tree (``tests/fixtures/identities/tree``) holds logs and configuration files written
from the products' documented layouts (see its ``SOURCES.md``); ``truth.tsv`` lists every
user name, person's name, e-mail address, host name, address, session id and secret in it,
and the decoys that must stay. The script collects the whole tree with the real CLI
(``koncis-diag collect --spec … --yes``, a throw-away state folder), opens the bundle and
counts, over every member's contents *and* names (manifest and tool log included):

* **left**: occurrences of each true value still in clear (whole words, any letter case);
* **altered**: decoy occurrences that no longer appear intact;
* **re-identification lines**: lines that hold a pseudonym together with the clear value it
  stands for (read back from the run's private mapping), which would undo the pseudonym in
  every file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from koncis_diag.redaction.learning import GENERIC_NAMES  # noqa: E402

#: Stock accounts (root, postgres, jira, admin, ...) name software, not people: redacted in
#: their slot by design but never learned, so a clear "jira" in a path beside the pseudonym
#: of the "jira" account is not counted as a re-identification.
_STOCK = frozenset(name.encode() for name in GENERIC_NAMES)
FIXTURES = REPO / "tests" / "fixtures" / "identities"
KINDS = ("user", "name", "email", "host", "ip", "session", "secret")
CONFIG_SUFFIXES = (".xml", ".properties", ".cfg", ".yaml", ".yml", ".ini", ".conf")
_PSEUDONYM = re.compile(
    rb"(?:user|host|tok)-[0-9a-f]{6,32}(?:@redacted\.invalid|\.redacted\.invalid)?"
    rb"|\b2(?:4[0-9]|5[0-4])\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b",
    re.IGNORECASE,
)


def load_truth(path: Path) -> dict[str, list[str]]:
    truth: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, _, value = line.partition("\t")
        if kind not in (*KINDS, "decoy") or len(value) < 3:
            raise SystemExit(f"{path}:{number}: bad truth line {line!r}")
        truth[kind].append(value)
    return truth


def word_pattern(value: str) -> re.Pattern[bytes]:
    """``value`` as a whole word, any case: not glued to a letter, digit or ``_``."""
    escaped = re.escape(value.encode("utf-8"))
    return re.compile(rb"(?<![A-Za-z0-9_])" + escaped + rb"(?![A-Za-z0-9_])", re.IGNORECASE)


def tree_texts(tree: Path) -> list[tuple[str, bytes]]:
    """(relative path, contents) of every file in the tree; the path counts as text too."""
    return [
        (str(p.relative_to(tree)), p.read_bytes()) for p in sorted(tree.rglob("*")) if p.is_file()
    ]


def write_spec(tree: Path, folder: Path) -> Path:
    configs, logs = [], []
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            (configs if path.name.endswith(CONFIG_SUFFIXES) else logs).append(str(path))
    spec = {
        "version": 1,
        "name": "identities-score",
        "collect": [
            {"files": {"name": "logs", "paths": logs}},
            {"config": {"name": "config", "paths": configs}},
        ],
    }
    path = folder / "spec.yaml"
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")  # JSON is YAML
    return path


def collect(tree: Path, work: Path) -> tuple[Path, dict]:
    """Run the real CLI over ``tree``; the bundle's path and its --json report."""
    out = work / "out"
    out.mkdir()
    env = {**os.environ, "XDG_STATE_HOME": str(work / "state"), "NO_COLOR": "1"}
    command = [
        sys.executable,
        "-m",
        "koncis_diag",
        "collect",
        "--spec",
        str(write_spec(tree, work)),
        "--yes",
        "--accept-leak-findings",
        "--json",
        "--jobs",
        "1",
        "--output",
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, cwd=work, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"collect failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    bundles = list(out.iterdir())
    report = json.loads(done.stdout or b"{}")
    return bundles[0], report


def bundle_texts(bundle: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(bundle) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def mapping(state: Path) -> dict[bytes, bytes]:
    path = state / "koncis-diag" / "pseudonyms.sqlite3"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT pseudonym, original FROM pseudonyms").fetchall()
    finally:
        conn.close()
    return {str(p).lower().encode(): bytes(o) for p, o in rows}


def count(texts: list[tuple[str, bytes]], pattern: re.Pattern[bytes]) -> tuple[int, list[str]]:
    total, where = 0, []
    for name, data in texts:
        for blob, label in ((name.encode("utf-8", "replace"), f"{name} (name)"), (data, name)):
            found = pattern.findall(blob)
            if found:
                total += len(found)
                where.append(f"{label}: {len(found)}")
    return total, where


def reidentifying_lines(
    texts: list[tuple[str, bytes]], originals: dict[bytes, bytes]
) -> list[tuple[str, bytes]]:
    lines = []
    for name, data in texts:
        for line in [name.encode(), *data.splitlines()]:
            for match in _PSEUDONYM.finditer(line):
                original = originals.get(match.group().lower())
                if original and len(original) >= 3 and original.lower() not in _STOCK:
                    rest = line[: match.start()] + b" " + line[match.end() :]
                    if word_pattern(original.decode("utf-8", "replace")).search(rest):
                        lines.append((name, line[:300]))
                        break
    return lines


def score(tree: Path = FIXTURES / "tree", truth_path: Path = FIXTURES / "truth.tsv") -> dict:
    truth = load_truth(truth_path)
    source = tree_texts(tree)
    with tempfile.TemporaryDirectory(prefix="koncis-score-") as tmp:
        work = Path(tmp)
        bundle, report = collect(tree, work)
        output = bundle_texts(bundle)
        originals = mapping(work / "state")
    result: dict = {"bundle_members": len(output), "kinds": {}, "misses": []}
    for kind in (*KINDS, "decoy"):
        planted = left = 0
        for value in truth.get(kind, []):
            pattern = word_pattern(value)
            before, _ = count(source, pattern)
            after, where = count(output, pattern)
            planted += before
            if kind == "decoy":
                lost = max(0, before - after)
                left += lost
                if lost:
                    result["misses"].append(f"decoy {value!r} altered {lost}x")
            else:
                left += after
                result["misses"].extend(f"{kind} {value!r} in {w}" for w in where)
        result["kinds"][kind] = {
            "occurrences": planted,
            "left" if kind != "decoy" else "altered": left,
        }
    reid = reidentifying_lines(output, originals)
    result["reidentification_lines"] = len(reid)
    result["reidentification_examples"] = [
        f"{n}: {line.decode('utf-8', 'replace')}" for n, line in reid[:20]
    ]
    result["leak_findings"] = len(report.get("findings", []) or [])
    return result


def table(result: dict) -> str:
    rows = ["| kind | occurrences | left in clear / decoys altered |", "|---|---:|---:|"]
    for kind, numbers in result["kinds"].items():
        value = numbers.get("left", numbers.get("altered"))
        rows.append(f"| {kind} | {numbers['occurrences']} | {value} |")
    rows.append(f"| re-identification lines | | {result['reidentification_lines']} |")
    return "\n".join(rows)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    result = score()
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(table(result))
    if args.verbose:
        for line in result["misses"]:
            print("  " + line)
        for line in result["reidentification_examples"]:
            print("  re-id: " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
