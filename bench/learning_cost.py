"""The cost of learning identities, next to the redaction it follows.

    python bench/learning_cost.py                      # the dense 200 MB bench log
    python bench/learning_cost.py --size 20MB --profile typical

Learning has three parts, each timed here on one core as the pipeline runs it:

* **recording**: while redacting, the engine notes each user and host name the first time it
  pseudonymises one (redaction with recording on, against the same redaction with it off);
* **looking**: after collection the learned names become literal rules and the leak check,
  which reads every staged file anyway, looks for them too (the leak check with the learned
  rules, against the leak check without them);
* **rewriting**: only the files where the leak check found a clear copy are rewritten through
  an engine holding just the learned rules, and checked again.

It prints their sum as a share of the redaction time (target: at most 15 % on the dense log).
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
from koncis_diag.redaction import Redactor, build_redactor  # noqa: E402
from koncis_diag.redaction.accel import engine_name  # noqa: E402
from koncis_diag.redaction.leakcheck import scan_source  # noqa: E402
from koncis_diag.redaction.learning import HOSTS_RULE, USERS_RULE  # noqa: E402
from koncis_diag.redaction.stream import RedactionStream  # noqa: E402

_READ = 4 << 20


def _redact(log: Path, target: Path, state: Path, record: bool) -> tuple[float, Redactor]:
    redactor = build_redactor(state_dir=state)
    if not record:
        redactor.engine.learned = None
    started = time.perf_counter()
    stream = redactor.stream("log", str(log))
    with open(log, "rb") as source, open(target, "wb") as sink:
        for chunk in iter(lambda: source.read(_READ), b""):
            sink.write(stream.feed(chunk))
        sink.write(stream.close())
    return time.perf_counter() - started, redactor


def _leak_check(redactor: Redactor, path: Path) -> tuple[float, list]:
    started = time.perf_counter()
    with open(path, "rb") as handle:
        found = scan_source(redactor.leak_engine(), str(path), handle)
    return time.perf_counter() - started, found


def measure(log: Path, work: Path) -> dict[str, float]:
    plain, unused = _redact(log, work / "plain.log", work / "state-plain", record=False)
    unused.close()
    redacted = work / "redacted.log"
    recording, redactor = _redact(log, redacted, work / "state", record=True)
    try:
        before, _ = _leak_check(redactor, redacted)
        found = redactor.learned_literals()
        redactor = redactor.with_learned(found)
        after, findings = _leak_check(redactor, redacted)
        rewrite = 0.0
        if any(f.rule in (HOSTS_RULE, USERS_RULE) for f in findings):
            started = time.perf_counter()
            engine = redactor.engine_for((HOSTS_RULE, USERS_RULE))
            again = RedactionStream(engine, "log", "")
            with open(redacted, "rb") as source, open(work / "again.log", "wb") as target:
                for chunk in iter(lambda: source.read(_READ), b""):
                    target.write(again.feed(chunk))
                target.write(again.close())
            rewrite = time.perf_counter() - started + _leak_check(redactor, redacted)[0]
    finally:
        redactor.close()
    return {
        "mb": log.stat().st_size / 1e6,
        "redaction_s": plain,
        "recording_s": recording - plain,
        "leak_check_s": before,
        "looking_s": after - before,
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
    cost = row["recording_s"] + row["looking_s"] + row["rewrite_s"]
    print(f"engine: {engine_name()}, one core, {args.profile} log of {row['mb']:.0f} MB")
    print(f"redaction (recording off)      {row['redaction_s']:7.2f} s")
    print(f"leak check (without them)      {row['leak_check_s']:7.2f} s")
    users, hosts = row["learned_users"], row["learned_hosts"]
    print(f"learned                        {users} user and {hosts} host name(s)")
    print(f"recording the names            {row['recording_s']:+7.2f} s")
    print(f"leak check looking for them    {row['looking_s']:+7.2f} s")
    print(f"rewriting files that hold one  {row['rewrite_s']:+7.2f} s")
    print(
        f"learning cost                  {100 * cost / row['redaction_s']:6.1f} % of the redaction"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
