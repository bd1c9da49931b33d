"""Hypothesis fuzzing of every input the tool must survive (docs/reliability.md, "Fuzzing"):
the spec loader, the rules loader, the redaction engine and the bundle reader. Inputs are
mutations of the corpus seeds and structured random documents or archives.

The default run is short (``KONCIS_FUZZ_EXAMPLES``, default 40 per fuzzer); a longer
campaign: ``KONCIS_FUZZ_EXAMPLES=5000 pytest tests/fuzz``. A crasher goes into
``tests/fuzz/corpus/<target>/`` where ``test_fuzz_corpus.py`` replays it for ever.
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import (
    bundle_target,
    mutate,
    redaction_target,
    rules_target,
    seeds,
    spec_target,
)

EXAMPLES = int(os.environ.get("KONCIS_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

edits = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.integers(0, 255)), max_size=12
)
# Characters that matter to YAML, paths, variables and our own syntax.
yaml_text = st.lists(
    st.sampled_from([*"ab:-[]{},&*!|>'\"#%@`$\\/.~ \t\n\x00", "${", "..", "}"]), max_size=120
).map("".join)


def _seeded(target: str) -> st.SearchStrategy[bytes]:
    return st.builds(mutate, st.sampled_from(seeds(target)), edits)


# ------------------------------------------------------------------------------ specs

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["7d", "50MB", "/var/log/*.log", "${app_home}/x", "../etc", "1", ""]),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
spec_keys = st.sampled_from(
    [
        "version",
        "name",
        "description",
        "variables",
        "collect",
        "redact",
        "retention",
        "profile",
        "encrypt_to",
        "connections",
        "x-a",
    ]
)
item_kinds = st.sampled_from(["files", "config", "query", "system", "command", "threaddump", "jvm"])
spec_like = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 2, "1"]), "name": st.sampled_from(["t", "", "a b", "x" * 70])},
    optional={
        "collect": st.lists(
            st.dictionaries(item_kinds, documents, min_size=1, max_size=2), max_size=4
        ),
        "variables": st.dictionaries(st.text(max_size=8), documents, max_size=3),
    },
).flatmap(
    lambda base: st.dictionaries(spec_keys, documents, max_size=3).map(
        lambda extra: {**extra, **base}
    )
)


def _yaml(document: object) -> bytes:
    import json

    return json.dumps(document, default=str).encode()  # JSON is YAML


@FUZZ
@given(_seeded("spec"))
def test_fuzz_spec_mutations(data: bytes) -> None:
    spec_target(data)


@FUZZ
@given(spec_like.map(_yaml))
def test_fuzz_spec_documents(data: bytes) -> None:
    spec_target(data)


@FUZZ
@given(yaml_text)
def test_fuzz_spec_punctuation(text: str) -> None:
    spec_target(
        ("version: 1\nname: t\ncollect:\n  - files: {name: l, paths: [" + text + "]}\n").encode(
            "utf-8", "surrogatepass"
        )
    )


# ------------------------------------------------------------------------------ rules

rule_like = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "category",
            "action",
            "label",
            "shape",
            "enabled",
            "description",
            "examples",
            "leak_check",
            "pattern",
            "keys",
            "literals",
            "columns",
            "files",
            "fields",
            "group",
        ]
    ),
    documents
    | st.sampled_from(["(a+)+$", "a(b", "[", "(?P<x>a)", "\\", "x{99999}", "email", "mask"]),
    max_size=6,
)


@FUZZ
@given(_seeded("rules"))
def test_fuzz_rules_mutations(data: bytes) -> None:
    rules_target(data)


@FUZZ
@given(st.lists(rule_like, max_size=4))
def test_fuzz_rules_documents(rules: list) -> None:
    rules_target(_yaml({"version": 1, "rules": rules}))


# -------------------------------------------------------------------------- redaction


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_redaction_of_random_bytes(data: bytes) -> None:
    redaction_target(data)


@FUZZ
@given(_seeded("redaction"), st.sampled_from(["log", "xml", "properties", "json", "shell", "text"]))
def test_fuzz_redaction_of_mutated_text(data: bytes, fmt: str) -> None:
    redaction_target(data, fmt)


# ---------------------------------------------------------------------------- bundles


@FUZZ
@given(_seeded("bundle"))
def test_fuzz_bundle_mutations(data: bytes) -> None:
    bundle_target(data)


member_names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "../x",
            "/abs",
            "C:/x",
            "C:\\x",
            "t/./x",
            "t//x",
            "t/",
            "t/a/../b",
            "t/\x1b[0m",
            "t/\udce9",
        ]
    ),
).map(lambda name: name if name.startswith(("/", ".", "C")) else "t/" + name)


@FUZZ
@given(
    st.lists(st.tuples(member_names, st.binary(max_size=64), st.sampled_from("fdlsc")), max_size=6),
    st.booleans(),
)
def test_fuzz_bundle_archives(entries: list, as_zip: bool) -> None:
    buffer = io.BytesIO()
    if as_zip:
        with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
            warnings.simplefilter("ignore", UserWarning)  # duplicate names are wanted
            for name, data, _ in entries:
                try:
                    archive.writestr(name, data)
                except (UnicodeEncodeError, ValueError):
                    continue
    else:
        kinds = {
            "f": tarfile.REGTYPE,
            "d": tarfile.DIRTYPE,
            "l": tarfile.LNKTYPE,
            "s": tarfile.SYMTYPE,
            "c": tarfile.CHRTYPE,
        }
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
            for name, data, kind in entries:
                info = tarfile.TarInfo(name)
                info.type = kinds[kind]
                info.size = len(data) if kind == "f" else 0
                info.linkname = "t/x" if kind in "ls" else ""
                try:
                    archive.addfile(info, io.BytesIO(data) if kind == "f" else None)
                except (UnicodeEncodeError, ValueError):
                    continue
    bundle_target(buffer.getvalue())
