"""What the private mapping costs: storing, finding and refreshing pseudonyms, the retention,
`mapping show` and `mapping purge --all` on a mapping of N entries.

    python bench/mapping_cost.py [--entries 150000] [--batch 500]

Runs in a temporary state folder. Each phase is one simulated run (a new ``Pseudonymizer``,
nothing cached) resolving every value in batches, as the engine does:

* **store**: every value new (one write transaction per batch);
* **find**: every value stored and used today (reads only);
* **refresh**: every value stored and last used on an earlier day (the first run of a day:
  one write transaction per batch refreshes ``last_used``);
* **find again**: the same, refreshed (reads only).

Then the retention with nothing due (what every collect and redact pays), ``mapping show``'s
counts, and ``purge --all`` (DELETE, VACUUM, checkpoint). CPU seconds and wall seconds; the
machine's load moves these by up to 2x, so compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from koncis_diag.redaction.mapping_upkeep import (  # noqa: E402
    expire_mapping,
    mapping_stats,
    purge_mapping,
)
from koncis_diag.redaction.pseudonyms import MAPPING_FILE, Pseudonymizer  # noqa: E402


@contextmanager
def timed(name: str, per: int = 0) -> Iterator[None]:
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    each = f"  {cpu / per * 1e6:6.1f} µs CPU per value" if per else ""
    print(f"{name:<34} cpu {cpu:6.2f} s  wall {wall:6.2f} s{each}", flush=True)


def resolve(state: Path, values: list[tuple[str, bytes]], batch: int) -> None:
    pseudonymizer = Pseudonymizer(state)
    for start in range(0, len(values), batch):
        pseudonymizer.pseudonyms(values[start : start + batch])
    pseudonymizer.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=150_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    n = args.entries
    values = [("email", b"u%07d@corp%d.example" % (i, i % 1000)) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="koncis-mapping-bench-") as tmp:
        state = Path(tmp) / "state"
        with timed("store (every value new)", n):
            resolve(state, values, args.batch)
        with timed("find (used today)", n):
            resolve(state, values, args.batch)
        with closing(sqlite3.connect(state / MAPPING_FILE)) as conn, conn:
            conn.execute("UPDATE pseudonyms SET last_used = 1577836800")  # 2020-01-01
        with timed("refresh (last used on an earlier day)", n):
            resolve(state, values, args.batch)
        with timed("find again (refreshed)", n):
            resolve(state, values, args.batch)
        size = (state / MAPPING_FILE).stat().st_size
        print(f"mapping: {n:,} entries, {size / 2**20:.1f} MiB")
        with timed("retention, nothing due"):
            expire_mapping(state, 180)
        with timed("mapping show (counts, per kind)"):
            mapping_stats(state / MAPPING_FILE, 180)
        with timed("purge --all (DELETE, VACUUM)"):
            result = purge_mapping(state / MAPPING_FILE, None)
        print(f"after purge: {result.size_after / 2**10:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
