"""The cost of learning identities: the second pass next to the redaction it follows.

    python bench/learning_cost.py                      # the dense 200 MB bench log
    python bench/learning_cost.py --size 20MB --profile typical

While redacting, the engine records the user and host names it pseudonymises (nothing extra
to match); after collection ``learned_pass`` turns them into literal rules, scans every staged
file for a clear copy and rewrites the files that hold one. This script times both halves on
one core, exactly as the pipeline runs them (``Redactor.stream`` into a file, then
``learned_literals``/``add_learned``/``engine_for`` and the scan, and the rewrite when the scan
finds something), and prints the second pass as a share of the redaction time (target: at
most 15 % on the dense log).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gen_log import generate, parse_size  # noqa: E402
from koncis_diag.redaction import build_redactor  # noqa: E402
from koncis_diag.redaction.accel import engine_name  # noqa: E402
from koncis_diag.redaction.leakcheck import scan_source  # noqa: E402
from koncis_diag.redaction.learning import HOSTS_RULE, USERS_RULE  # noqa: E402
from koncis_diag.redaction.stream import RedactionStream  # noqa: E402

_READ = 4 << 20


def measure(log: Path, work: Path) -> dict[str, float]:
    redactor = build_redactor(state_dir=work / "state")
    try:
        redacted = work / "redacted.log"
        started = time.perf_counter()
        stream = redactor.stream("log", str(log))
        with open(log, "rb") as source, open(redacted, "wb") as target:
            for chunk in iter(lambda: source.read(_READ), b""):
                target.write(stream.feed(chunk))
            target.write(stream.close())
        redaction = time.perf_counter() - started

        started = time.perf_counter()
        found = redactor.learned_literals()
        redactor.add_learned(found)
        engine = redactor.engine_for((HOSTS_RULE, USERS_RULE))
        with open(redacted, "rb") as handle:
            holds = bool(scan_source(engine, str(redacted), handle))
        scan = time.perf_counter() - started
        rewrite = 0.0
        if holds:
            started = time.perf_counter()
            again = RedactionStream(engine, "log", "")
            with open(redacted, "rb") as source, open(work / "again.log", "wb") as target:
                for chunk in iter(lambda: source.read(_READ), b""):
                    target.write(again.feed(chunk))
                target.write(again.close())
            rewrite = time.perf_counter() - started
    finally:
        redactor.close()
    return {
        "mb": log.stat().st_size / 1e6,
        "redaction_s": redaction,
        "scan_s": scan,
        "rewrite_s": rewrite,
        "learned_users": len(found.users),
        "learned_hosts": len(found.hosts) + len(found.short_hosts),
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["dense", "typical"], default="dense")
    parser.add_argument("--size", type=parse_size, default=parse_size("200MB"))
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench" / "data")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    log = args.data_dir / f"{args.profile}-{args.size // 1_000_000}MB.log"
    if not log.exists():
        generate(log, args.size, args.profile, seed=42)
    with tempfile.TemporaryDirectory(prefix="koncis-learning-") as tmp:
        row = measure(log, Path(tmp))
    second = row["scan_s"] + row["rewrite_s"]
    print(f"engine: {engine_name()}, one core, {args.profile} log of {row['mb']:.0f} MB")
    print(f"redaction            {row['redaction_s']:7.2f} s")
    print(f"second pass: scan    {row['scan_s']:7.2f} s")
    print(f"second pass: rewrite {row['rewrite_s']:7.2f} s (only when the scan finds a name)")
    print(
        f"learned              {row['learned_users']} user and {row['learned_hosts']} host name(s)"
    )
    print(f"learning cost        {100 * second / row['redaction_s']:6.1f} % of the redaction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
