"""Pseudonyms: consistent, shape-preserving, unique, private, and failing closed."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from koncis_diag.redaction import build_redactor, reveal
from koncis_diag.redaction.pseudonyms import KEY_FILE, MAPPING_FILE, Pseudonymizer

REPO = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_is_private_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    old = os.umask(0)
    try:
        redactor = build_redactor(state_dir=state)
        assert not state.exists()  # nothing is created before a pseudonym is needed
        redactor.redact_text("mail a@b.example")
    finally:
        os.umask(old)
    assert mode(state) == 0o700
    assert mode(state / KEY_FILE) == 0o600 and (state / KEY_FILE).stat().st_size == 32
    assert mode(state / MAPPING_FILE) == 0o600
    for extra in state.iterdir():
        assert extra.name.startswith((KEY_FILE, MAPPING_FILE)), extra
        assert mode(extra) & 0o077 == 0, extra


def test_default_state_dir_follows_xdg(isolated_home: Path) -> None:
    build_redactor().redact_text("a@b.example")
    assert (isolated_home / ".local" / "state" / "koncis-diag" / KEY_FILE).is_file()


def test_consistent_across_runs_and_files(tmp_path: Path) -> None:
    text = "john@acme.example 10.1.2.3 fe80::1 52:54:00:aa:bb:cc <username>jira</username>"
    first = build_redactor(state_dir=tmp_path / "s").redact_text(text, fmt="xml")[0]
    second_run = build_redactor(state_dir=tmp_path / "s")
    assert second_run.redact_text(text, fmt="xml")[0] == first
    other_file = second_run.redact_text("cc JOHN@ACME.EXAMPLE", fmt="log")[0]
    assert other_file == "cc " + first.split(" ")[0]  # e-mail case does not matter
    other_install = build_redactor(state_dir=tmp_path / "elsewhere").redact_text(text, fmt="xml")
    assert other_install[0] != first  # another key, other pseudonyms


def test_reveal_returns_originals(tmp_path: Path) -> None:
    state = tmp_path / "s"
    redactor = build_redactor(state_dir=state)
    out = redactor.redact_text("a@b.example 10.1.2.3 2001:db8::7 AA-BB-CC-DD-EE-01 x%40y.example")[
        0
    ]
    email, ipv4, ipv6, mac, encoded = out.split(" ")
    assert reveal(email, state) == "a@b.example"
    assert reveal(ipv4, state) == "10.1.2.3"
    assert reveal(ipv6, state) == "2001:db8::7"
    assert reveal(mac, state) == "AA-BB-CC-DD-EE-01"
    assert reveal(mac.replace("-", ":").lower(), state) == "AA-BB-CC-DD-EE-01"
    assert encoded.endswith("%40redacted.invalid")
    assert reveal(encoded, state) == "x%40y.example"
    assert reveal("user-000000", state) is None
    assert reveal("nothing", tmp_path / "no-state") is None
    assert not (tmp_path / "no-state").exists()


def test_shapes_follow_the_original_spelling(tmp_path: Path) -> None:
    redactor = build_redactor(state_dir=tmp_path / "s")
    out = redactor.redact_text("AA:BB:CC:DD:EE:01 aa-bb-cc-dd-ee-02 fe80::9%eth0")[0]
    upper, dashed, zoned = out.split(" ")
    assert upper == upper.upper() and upper.count(":") == 5
    assert dashed == dashed.lower() and dashed.count("-") == 5
    assert zoned.startswith("3fff:") and zoned.endswith("%eth0")


def test_redacting_twice_changes_nothing(tmp_path: Path) -> None:
    redactor = build_redactor(state_dir=tmp_path / "s", keywords=["acme-corp.example"])
    text = (
        "u=bob a@b.example 10.1.2.3 fe80::1 52:54:00:aa:bb:cc jira.acme-corp.example "
        "JSESSIONID=ABC123 password=x Authorization: Bearer abc <username>jira</username>\n"
    )
    once, counts = redactor.redact_text(text, fmt="xml")
    assert counts
    twice, again = redactor.redact_text(once, fmt="xml")
    assert twice == once and not again
    fresh = build_redactor(state_dir=tmp_path / "s", keywords=["acme-corp.example"])
    assert fresh.redact_text(once, fmt="log") == (once, {})


def test_collisions_never_share_a_pseudonym(tmp_path: Path) -> None:
    pseudonymizer = Pseudonymizer(tmp_path / "s")
    names = [f"user{n}".encode() for n in range(20_000)]  # 24-bit tags: collisions certain
    seen = {}
    for name in names:
        alias = pseudonymizer.pseudonym("user", name)
        assert alias not in seen, (name, seen.get(alias))
        seen[alias] = name
    # The documented derivation: first choice HMAC(key, "user\0" "0\0" name), 6 hex digits.
    key = (tmp_path / "s" / KEY_FILE).read_bytes()
    first_choice = {
        b"user-" + hmac.new(key, b"user\x000\x00" + n, hashlib.sha256).hexdigest()[:6].encode()
        for n in names
    }
    moved = [alias for alias in seen if alias not in first_choice]
    assert moved, "no collision happened: the test lost its point"
    assert len(moved) < 100
    memory = Pseudonymizer(ephemeral=True)
    assert len({memory.pseudonym("token", n) for n in names}) == len(names)


def test_fail_closed_when_the_state_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    redactor = build_redactor(state_dir=blocker / "state")
    out, counts = redactor.redact_text("mail a@b.example from 10.1.2.3 key=AKIAIOSFODNN7DEMOKEY")
    assert out == "mail [REDACTED:email] from [REDACTED:ipv4] key=[REDACTED:aws-access-key-id]"
    assert counts == {"email": 1, "ipv4": 1, "aws-access-key-id": 1}


def test_concurrent_processes_agree(tmp_path: Path) -> None:
    state = tmp_path / "s"
    script = (
        "import sys; from pathlib import Path\n"
        "from koncis_diag.redaction.pseudonyms import Pseudonymizer\n"
        "p = Pseudonymizer(Path(sys.argv[1]))\n"
        "values = [b'host%d.example' % i for i in range(300)]\n"
        "if sys.argv[2] == 'rev': values.reverse()\n"
        "print('\\n'.join(sorted(p.pseudonym('host', v).decode() + '=' + v.decode() for v in values)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(state), order],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for order in ("fwd", "rev")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    assert outputs[0][0] == outputs[1][0]
    assert len(set(outputs[0][0].split())) == 300


def test_threads_share_one_redactor(tmp_path: Path) -> None:
    redactor = build_redactor(state_dir=tmp_path / "s")
    texts = [f"host{n}.example.com user{n}@corp.example 10.0.{n}.1\n" for n in range(50)]
    results: dict = {}

    def work(index: int) -> None:
        results[index] = [redactor.redact_text(t, fmt="log") for t in texts]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == results[1] == results[2] == results[3]
    assert all("REDACTED" not in text and "@redacted.invalid" in text for text, _ in results[0])


def test_assigning_in_one_batch_equals_one_by_one(tmp_path: Path) -> None:
    """``pseudonyms`` stores a batch's new values in one transaction; the pseudonyms,
    collisions included, are those that assigning the values one by one in the same order
    gives."""
    key_file = tmp_path / "cluster.key"
    key_file.write_bytes(os.urandom(32))
    names = [f"user{n}".encode() for n in range(20_000)]  # 24-bit tags: collisions certain
    one_by_one = Pseudonymizer(tmp_path / "a", key_file=key_file)
    expected = [one_by_one.pseudonym("user", name) for name in names]
    batched = Pseudonymizer(tmp_path / "b", key_file=key_file)
    some = batched.pseudonyms([("user", name) for name in names[:7_000]])
    assert some == expected[:7_000]
    assert batched.pseudonyms([("user", name) for name in names]) == expected  # some known
    assert [batched.pseudonym("user", name) for name in names] == expected
    tags = {
        hmac.new(key_file.read_bytes(), b"user\x000\x00" + n, hashlib.sha256).hexdigest()[:6]
        for n in names
    }
    assert len(tags) < len(names), "no collision happened: the test lost its point"
    # what the second store holds is what the first one does
    fresh = Pseudonymizer(tmp_path / "b", key_file=key_file)
    assert [fresh.pseudonym("user", name) for name in names[::997]] == expected[::997]


def test_new_values_of_a_batch_are_stored_in_one_transaction(tmp_path: Path) -> None:
    redactor = build_redactor(state_dir=tmp_path / "s")
    redactor.redact_text("warm-up a@b.example")  # opens the store
    statements: list[str] = []
    connection = redactor.pseudonymizer._store._connection()  # observe only
    connection.set_trace_callback(statements.append)
    text = " ".join(f"10.9.{n // 250}.{n % 250 + 1} u{n}@corp.example" for n in range(300))
    out, counts = redactor.redact_text(text)
    assert counts == {"ipv4": 300, "email": 300}
    assert "corp.example" not in out and "10.9." not in out
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1, statements[:20]


def test_memory_stays_bounded_whatever_the_number_of_distinct_values(tmp_path: Path) -> None:
    """A log of distinct values (session ids, client addresses) must not grow the caches past
    what fits the 100 MB budget of a process: about 50,000 pseudonyms (14 MB) and 20,000
    replacements (6 MB). Measured: 400,000 distinct lines peaked at 146 MB with the earlier
    limits, 92 MB with these."""
    redactor = build_redactor(state_dir=tmp_path / "s")
    lines = [
        f"user{n}@corp.example from 10.{n >> 16}.{(n >> 8) & 255}.{n & 255}" for n in range(30_000)
    ]
    out, counts = redactor.redact_text("\n".join(lines))
    assert counts == {"email": 30_000, "ipv4": 30_000}
    assert "corp.example" not in out
    assert len(redactor.pseudonymizer._cache) <= 50_000  # observe only
    assert len(redactor.engine._cache) <= 20_000


def test_batched_pseudonyms_report_what_cannot_be_pseudonymised(tmp_path: Path) -> None:
    for pseudonymizer in (Pseudonymizer(tmp_path / "s"), Pseudonymizer(ephemeral=True)):
        found = pseudonymizer.pseudonyms(
            [("ipv4", b"10.1.2.3"), ("ipv4", b"999.1.1.1"), ("email", b"A%40B.example")]
        )
        assert found[0] == pseudonymizer.pseudonym("ipv4", b"10.1.2.3")
        assert found[1] is None  # not an address: the caller masks it
        assert found[2] is not None and found[2].endswith(b"%40redacted.invalid")
