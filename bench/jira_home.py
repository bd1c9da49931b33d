"""A Jira-like server tree of a given total size for the end-to-end benchmark.

    root/var/atlassian/application-data/jira/log/atlassian-jira.log[.1 .. .N]   (≈60 %, typical)
    root/opt/atlassian/jira/logs/access_log.YYYY-MM-DD                           (≈35 %, dense)
    root/opt/atlassian/jira/logs/catalina.out                                    (≈5 %, dense)
    configuration: dbconfig.xml, jira-config.properties, server.xml, setenv.sh (the demo's)

Rotated files are 20 MB like Jira's own log rotation. Built once per size and seed (a marker
file records them); ground truths go to ``root/../<root name>-truth``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gen_log import generate  # noqa: E402

APP_HOME = "var/atlassian/application-data/jira"
INSTALL = "opt/atlassian/jira"
ROTATED = 20_000_000
_MARKER = ".bench-home.json"
_CONFIGS = {
    "dbconfig.xml": APP_HOME,
    "jira-config.properties": APP_HOME,
    "server.xml": f"{INSTALL}/conf",
    "setenv.sh": f"{INSTALL}/bin",
}


def plan_files(size: int) -> list[tuple[str, int, str]]:
    """(relative path, bytes, profile) of every log file of a home of ``size`` bytes."""
    files: list[tuple[str, int, str]] = []
    app = int(size * 0.60)
    for index in range((app + ROTATED - 1) // ROTATED):
        name = "atlassian-jira.log" + (f".{index}" if index else "")
        files.append((f"{APP_HOME}/log/{name}", min(ROTATED, app - index * ROTATED), "typical"))
    access = int(size * 0.35)
    for index in range((access + ROTATED - 1) // ROTATED):
        day = f"2024-11-{28 - index % 28:02d}" + (f".{index // 28}" if index >= 28 else "")
        files.append(
            (f"{INSTALL}/logs/access_log.{day}", min(ROTATED, access - index * ROTATED), "dense")
        )
    files.append((f"{INSTALL}/logs/catalina.out", size - app - access, "dense"))
    return [f for f in files if f[1] > 0]


def build_home(root: Path, size: int, seed: int = 42) -> dict[str, object]:
    """Create (or reuse) the tree; returns a summary with the globs to collect."""
    marker = root / _MARKER
    wanted = {"size": size, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text())["wanted"] == wanted:
        return json.loads(marker.read_text())
    if root.exists():
        shutil.rmtree(root)
    truth = root.parent / f"{root.name}-truth"
    truth.mkdir(parents=True, exist_ok=True)
    total = 0
    for number, (relative, nbytes, profile) in enumerate(plan_files(size)):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = generate(path, nbytes, profile, seed + number, truth / f"{path.name}.truth.tsv")
        total += int(summary["bytes"])  # type: ignore[call-overload]
    demo = REPO / "koncis_diag" / "data" / "demo"
    configs = []
    for name, folder in _CONFIGS.items():
        target = root / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo / name, target)
        configs.append(str(target))
        total += target.stat().st_size
    result: dict[str, object] = {
        "wanted": wanted,
        "bytes": total,
        "files": [
            str(root / APP_HOME / "log" / "atlassian-jira.log*"),
            str(root / INSTALL / "logs" / "access_log.*"),
            str(root / INSTALL / "logs" / "catalina.out"),
        ],
        "configs": configs,
    }
    marker.write_text(json.dumps(result, indent=2))
    return result
