"""Coverage-guided fuzzing with atheris (optional: ``pip install atheris``), not part of the
test run. One target at a time, bounded by ``-runs`` or ``-max_total_time``:

    mkdir -p /tmp/fuzz-spec
    python tests/fuzz/atheris_runner.py spec -max_total_time=120 /tmp/fuzz-spec tests/fuzz/corpus/spec
    python tests/fuzz/atheris_runner.py redaction -runs=20000 /tmp/fuzz-red tests/fuzz/corpus/redaction

libFuzzer adds the inputs it finds interesting to the FIRST folder: give a scratch folder
first and the corpus second (read as seeds), or the corpus fills with thousands of files.
Targets: spec, rules, redaction, bundle (see ``harness.py``). A crash is written as
``crash-<sha1>`` in the working folder: copy it into ``tests/fuzz/corpus/<target>/`` (with a
readable name) so that ``test_fuzz_corpus.py`` replays it for ever, then fix the bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("spec", "rules", "redaction", "bundle"):
        sys.exit("usage: atheris_runner.py spec|rules|redaction|bundle [libFuzzer options]")
    target_name = sys.argv.pop(1)
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris")
    sys.path.insert(0, str(REPO))
    with atheris.instrument_imports(include=["koncis_diag"]):
        import koncis_diag.bundle.reader
        import koncis_diag.redaction
        import koncis_diag.redaction.rules
        import koncis_diag.spec  # noqa: F401 - imported here to be instrumented
        from tests.fuzz.harness import TARGETS
    target = TARGETS[target_name]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
