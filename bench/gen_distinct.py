"""A log in which every value is new: the worst case for pseudonyms and for memory.

    python bench/gen_distinct.py --size 20MB --out bench/data/distinct-20MB.log

Each line is a Jira access-log line with its own client address, user, request id and session
hash, and every other line an e-mail address of its own. Real logs repeat their users and
addresses; a busy public instance comes closer to this than the other profiles do. Every
value is first seen here, so each costs a pseudonym assignment and a row in the mapping, and
the caches hold only the most recent ones (memory stays bounded).

``planted(path)`` counts the values of the two covered kinds that are still in an output
(must be 0).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gen_log import parse_size  # noqa: E402

# what the generator writes, and nothing else in its lines looks like it
_PLANTED = re.compile(
    rb"(?<![\d.])10\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.])|\bu\d{7}@corp\d+\.example"
)


def line(n: int) -> bytes:
    a, b, c = (n >> 16) & 255, (n >> 8) & 255, n & 255
    mail = b" mail to u%07d@corp%d.example" % (n, n % 1000) if n % 2 else b""
    return (
        b'10.%d.%d.%d %dx%dx1 user%07d [28/Nov/2024:00:00:00 +0000] "GET /rest/api/2/issue/X-%d '
        b'HTTP/1.1" 200 123 45 "https://jira.example.com/browse/X-%d" "Mozilla/5.0" "%08x"%s\n'
        % (a or 1, b, c or 1, n % 1440, n, n, n, n, (n * 2654435761) & 0xFFFFFFFF, mail)
    )


def generate(path: Path, size: int) -> int:
    """Write at least ``size`` bytes of distinct lines to ``path``; returns the line count."""
    written = 0
    count = 0
    with open(path, "wb") as out:
        while written < size:
            data = b"".join(line(n) for n in range(count, count + 10_000))
            out.write(data)
            written += len(data)
            count += 10_000
    return count


def planted(path: Path) -> int:
    """Planted addresses and e-mails still present in ``path`` (a redacted output)."""
    found = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.readlines(1 << 20), []):
            found += len(_PLANTED.findall(b"".join(chunk)))
    return found


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("20MB"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    lines = generate(args.out, args.size)
    print(f"{args.out}: {lines} lines, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
