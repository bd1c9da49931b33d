"""The fuzz targets: one function per input the tool must survive, shared by the hypothesis
fuzzers (``test_fuzz_*.py``), the optional atheris runner (``atheris_runner.py``) and the
corpus replay (``test_fuzz_corpus.py``).

Each target takes raw bytes and raises ``AssertionError`` when the tool misbehaves: an
exception other than the documented one, a message that is not one line (or does not say
where), a planted secret that survives redaction. Anything else returning is a pass.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from koncis_diag.errors import BundleError, InputError

CORPUS = Path(__file__).resolve().parent / "corpus"

#: Planted secrets and personal data the redaction target hides among random bytes.
PLANTED = (
    b"password=Fuzz-Secret-9f3a7c",
    b"AKIAFUZZ7EXAMPLEKEY1",
    b"fuzz.person@example.org",
)
#: The original value of each planted item that must not survive (the part after ``=``).
PLANTED_VALUES = (b"Fuzz-Secret-9f3a7c", b"AKIAFUZZ7EXAMPLEKEY1", b"fuzz.person@example.org")


def _in_temp_file(data: bytes, name: str) -> tuple[Path, tempfile.TemporaryDirectory]:
    folder = tempfile.TemporaryDirectory(prefix="koncis-fuzz-")
    path = Path(folder.name) / name
    path.write_bytes(data)
    return path, folder


def _check_input_error(error: InputError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{path}:"), message  # names the file (and line:column)


def spec_target(data: bytes) -> None:
    """A hand-written spec: loads, or ``InputError`` in one line naming the file."""
    from koncis_diag.spec import load_spec

    path, folder = _in_temp_file(data, "spec.yaml")
    try:
        load_spec(path)
    except InputError as error:
        _check_input_error(error, path)
    finally:
        folder.cleanup()


def rules_target(data: bytes) -> None:
    """A hand-written rules file: loads and merges over the defaults, or ``InputError``."""
    from koncis_diag.redaction.rules import load_rules_file, merge
    from koncis_diag.redaction.ruleset import default_rules

    path, folder = _in_temp_file(data, "rules.yaml")
    try:
        merge(default_rules(), load_rules_file(path))
    except InputError as error:
        _check_input_error(error, path)
    finally:
        folder.cleanup()


_REDACTOR: Any = None


def _redactor() -> Any:
    global _REDACTOR
    if _REDACTOR is None:
        from koncis_diag.redaction import build_redactor

        state = tempfile.mkdtemp(prefix="koncis-fuzz-state-")
        atexit.register(shutil.rmtree, state, True)
        _REDACTOR = build_redactor(state_dir=Path(state))
    return _REDACTOR


def redaction_target(data: bytes, fmt: str = "log") -> None:
    """Random bytes with the planted values on their own lines: never raises, never gives a
    planted value back, whole or streamed in pieces."""
    noise = data.replace(b"\n", b" ")
    middle = len(noise) // 2
    text = noise[:middle] + b"\n" + b"\n".join(PLANTED) + b"\n" + noise[middle:]
    redactor = _redactor()
    whole, _ = redactor.redact_bytes(text, fmt)
    stream = redactor.stream(fmt=fmt, source="fuzz")
    step = max(1, len(text) // 3)
    pieces = [stream.feed(text[i : i + step]) for i in range(0, len(text), step)]
    streamed = b"".join(pieces) + stream.close()
    for value in PLANTED_VALUES:
        assert value not in whole, (value, whole[:400])
        assert value not in streamed, (value, streamed[:400])


def bundle_target(data: bytes, name: str = "bundle.zip") -> None:
    """An untrusted bundle: inspect and verify report or raise ``BundleError`` (one line),
    and never write a file anywhere."""
    from koncis_diag.bundle.reader import ReadLimits
    from koncis_diag.support.inspect import inspect_bundle, verify_bundle

    limits = ReadLimits(max_entries=2000, max_total_bytes=64 * 1024 * 1024)
    path, folder = _in_temp_file(data, name)
    try:
        before = sorted(os.listdir(folder.name))
        for read in (verify_bundle, inspect_bundle):
            try:
                read(path, limits)
            except BundleError as error:
                assert "\n" not in str(error), str(error)
        assert sorted(os.listdir(folder.name)) == before
    finally:
        folder.cleanup()


TARGETS = {
    "spec": spec_target,
    "rules": rules_target,
    "redaction": redaction_target,
    "bundle": bundle_target,
}


def seeds(target: str) -> list[bytes]:
    """The corpus of one target: valid seeds and every crasher found so far."""
    folder = CORPUS / target
    return [path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()]


def mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 replace, 1 insert, 2 delete, 3 truncate."""
    data = bytearray(seed)
    for kind, position, value in edits:
        if not data and kind != 1:
            continue
        where = position % (len(data) + (1 if kind == 1 else 0)) if data or kind == 1 else 0
        if kind == 0:
            data[where] = value
        elif kind == 1:
            data.insert(where, value)
        elif kind == 2:
            del data[where]
        else:
            del data[where:]
    return bytes(data)


def replay(target: str, data: bytes, name: Optional[str] = None) -> None:
    if target == "bundle" and name is not None:
        bundle_target(data, name)
    else:
        TARGETS[target](data)
