"""Redact one file with the library API (what the pipeline does), on ``--jobs`` cores.

    python bench/redact_file.py [--jobs 2] [--chunk 1MiB] [--format log] IN OUT

Reads ``IN`` in 1 MiB blocks, redacts it with ``ParallelRedaction`` (``--jobs 1``: the plain
``RedactionStream`` path) and writes ``OUT``; prints the counts per rule as JSON on stdout.
The pseudonym state folder is the usual one (set ``XDG_STATE_HOME`` to isolate it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gen_log import parse_size  # noqa: E402
from koncis_diag.redaction import build_redactor  # noqa: E402
from koncis_diag.redaction.parallel import DEFAULT_CHUNK, ParallelRedaction  # noqa: E402

_BLOCK = 1024 * 1024


def blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            if not block:
                return
            yield block


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--chunk", type=parse_size, default=DEFAULT_CHUNK)
    parser.add_argument("--format", dest="fmt", default="log")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    redactor = build_redactor()
    try:
        with ParallelRedaction(redactor, args.jobs, chunk_size=args.chunk) as parallel:
            stream = parallel.redact_stream(blocks(args.source), args.fmt, str(args.source))
            with open(args.target, "wb") as out:
                for piece in stream:
                    out.write(piece)
    finally:
        redactor.close()
    print(json.dumps(dict(sorted(stream.counts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
