"""Every file of ``tests/fuzz/corpus/<target>/`` replayed through its fuzz target: the seeds,
and every crasher found so far, kept as regression tests (docs/reliability.md, "Fuzzing")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.harness import CORPUS, TARGETS

CASES = sorted(
    (target, path) for target in TARGETS for path in (CORPUS / target).iterdir() if path.is_file()
)


def test_the_corpus_holds_seeds_for_every_target() -> None:
    assert {target for target, _ in CASES} == set(TARGETS)


@pytest.mark.parametrize(
    "target,path", CASES, ids=[f"{target}/{path.name}" for target, path in CASES]
)
def test_corpus_file(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())
