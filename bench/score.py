"""Score a redacted log against the generator's ground truth: leaks and altered decoys.

    python bench/score.py bench/data/dense-200MB.log.truth.tsv redacted.log

A planted value *leaked* when it still appears whole in the output as a token; a decoy was
*altered* when it never appears intact. Tokens come from C-speed ``bytes.translate`` and
``split`` over 4 MiB line-aligned pieces, with the delimiter set each kind was built for
(``bench.logshapes.KINDS``), so scoring 200 MB takes seconds and constant memory.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.logshapes import KINDS  # noqa: E402

_WORD_DELIMITERS = b" \t\r\n\"'<>&;,=:@?()[]{}|\\/`"
_ADDR_DELIMITERS = b" \t\r\n\"'<>&;,=?()[]{}|\\/`"
_PIECE = 4 << 20


def _table(delimiters: bytes) -> bytes:
    table = bytearray(range(256))
    for byte in delimiters:
        table[byte] = 0x20
    return bytes(table)


_TABLES = {
    "word": _table(_WORD_DELIMITERS),
    "addr": _table(_ADDR_DELIMITERS),
    "line": None,
}


def load_truth(path: Path) -> dict[str, set[bytes]]:
    planted: dict[str, set[bytes]] = defaultdict(set)
    with open(path, "rb") as handle:
        for line in handle:
            kind, _, value = line.rstrip(b"\n").partition(b"\t")
            planted[kind.decode()].add(value)
    return planted


def _pieces(path: Path) -> Iterator[bytes]:
    """Line-aligned pieces of about 4 MiB (a longer line comes whole)."""
    rest = b""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_PIECE)
            if not block:
                break
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            yield data[:cut]
    if rest:
        yield rest


def score(truth_path: Path, output_path: Path) -> dict[str, object]:
    """{"covered_leaks": n, "by_kind": {kind: {planted, role, leaked|altered}}}"""
    planted = load_truth(truth_path)
    seen: dict[str, set[bytes]] = defaultdict(set)
    by_tokenizer: dict[str, list[str]] = defaultdict(list)
    for kind in planted:
        tokenizer = KINDS.get(kind, ("word", "covered"))[0]
        by_tokenizer[tokenizer].append(kind)
    for piece in _pieces(output_path):
        for tokenizer, kinds in by_tokenizer.items():
            table = _TABLES[tokenizer]
            text = piece if table is None else piece.translate(table)
            tokens = set(text.split())
            for kind in kinds:
                found = planted[kind] & tokens
                if found:
                    seen[kind] |= found
    report: dict[str, dict[str, object]] = {}
    covered_leaks = 0
    for kind in sorted(planted):
        role = KINDS.get(kind, ("word", "covered"))[1]
        total = len(planted[kind])
        intact = len(seen[kind])
        entry: dict[str, object] = {"values": total, "role": role}
        if role == "decoy":
            entry["altered"] = total - intact
        else:
            entry["leaked"] = intact
            if role == "covered":
                covered_leaks += intact
                entry["examples"] = [v.decode("utf-8", "replace") for v in sorted(seen[kind])[:3]]
        report[kind] = entry
    return {"covered_leaks": covered_leaks, "by_kind": report}


def main(argv: Optional[list[str]] = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    result = score(Path(args[0]), Path(args[1]))
    print(json.dumps(result, indent=2))
    return 1 if result["covered_leaks"] else 0


if __name__ == "__main__":
    sys.exit(main())
