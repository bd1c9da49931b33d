"""The benchmark's log generator, ground truth and scorer (bench/): deterministic, the right
mix of lines, every planted value really in the log and found again by the scorer."""

from __future__ import annotations

import argparse
import json
import re
import tracemalloc
from pathlib import Path

import pytest

from bench.gen_log import generate, parse_size
from bench.jira_home import build_home, plan_files
from bench.logshapes import KINDS, luhn_ok
from bench.score import load_truth, score

ACCESS = re.compile(rb"^\S+ \d+x\d+x\d \S+ \[")
JIRA = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\+0000 ")
CATALINA = re.compile(rb"^\d\d-[A-Z][a-z]{2}-\d{4} ")


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dense") / "dense.log"
    generate(path, 4_000_000, "dense", seed=42)
    return path


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, dense: Path) -> None:
    again = tmp_path / "again.log"
    generate(again, 4_000_000, "dense", seed=42)
    assert again.read_bytes() == dense.read_bytes()
    truth = again.with_name("again.log.truth.tsv").read_bytes()
    assert truth == dense.with_name("dense.log.truth.tsv").read_bytes()
    other = tmp_path / "other.log"
    generate(other, 200_000, "dense", seed=43)
    assert other.read_bytes()[:50_000] != dense.read_bytes()[:50_000]


def test_size_is_met_and_lines_are_whole(dense: Path) -> None:
    data = dense.read_bytes()
    assert 4_000_000 <= len(data) < 4_000_000 + 20_000
    assert data.endswith(b"\n")
    summary = json.loads(dense.with_name("dense.log.truth.json").read_text())
    assert summary["bytes"] == len(data)
    assert summary["lines"] == data.count(b"\n")


def test_dense_mix_of_lines(dense: Path) -> None:
    lines = dense.read_bytes().splitlines()
    share = {
        "access": sum(1 for line in lines if ACCESS.match(line)) / len(lines),
        "jira": sum(1 for line in lines if JIRA.match(line)) / len(lines),
        "catalina": sum(1 for line in lines if CATALINA.match(line)) / len(lines),
        "frames": sum(1 for line in lines if line.startswith(b"\tat ")) / len(lines),
    }
    assert 0.32 < share["access"] < 0.42, share
    assert 0.47 < share["jira"] < 0.57, share
    assert 0.06 < share["catalina"] < 0.14, share
    assert 0.004 < share["frames"] < 0.02, share
    assert any(line == b"-----BEGIN RSA PRIVATE KEY-----" for line in lines)
    assert "für".encode() in dense.read_bytes()


def test_every_kind_is_planted_and_really_in_the_log(dense: Path) -> None:
    truth = dense.with_name("dense.log.truth.tsv")
    planted = load_truth(truth)
    assert set(planted) == set(KINDS)
    result = score(truth, dense)  # the log itself: nothing is redacted
    for kind, entry in result["by_kind"].items():  # type: ignore[union-attr]
        if entry["role"] == "decoy":
            assert entry["altered"] == 0, kind
        else:
            assert entry["leaked"] == entry["values"] > 0, kind


def test_cards_pass_luhn_and_order_ids_do_not(dense: Path) -> None:
    planted = load_truth(dense.with_name("dense.log.truth.tsv"))
    assert all(luhn_ok(card.replace(b"-", b"").decode()) for card in planted["card"])
    assert not any(luhn_ok(number.decode()) for number in planted["order-id"])


def test_typical_log_is_sparser(tmp_path: Path, dense: Path) -> None:
    typical = tmp_path / "typical.log"
    generate(typical, 4_000_000, "typical", seed=42)
    counts = json.loads(typical.with_name("typical.log.truth.json").read_text())["planted"]
    dense_counts = json.loads(dense.with_name("dense.log.truth.json").read_text())["planted"]
    assert sum(counts.get(k, 0) for k in ("ipv4", "email")) * 2 < dense_counts["ipv4"]
    secrets = ("query-password", "bearer", "url-password", "card", "json-password")
    assert sum(counts.get(k, 0) for k in secrets) * 3 < sum(dense_counts[k] for k in secrets)


def test_longline_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    generate(path, 300_000, "longline", seed=1)
    data = path.read_bytes()
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert len(data) >= 300_000


def test_memory_does_not_grow_with_size(tmp_path: Path) -> None:
    peaks = []
    for size in (500_000, 3_000_000):
        tracemalloc.start()
        generate(tmp_path / f"m{size}.log", size, "dense", seed=5)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 2_000_000, peaks


def test_scorer_reports_what_redaction_left(tmp_path: Path) -> None:
    truth = tmp_path / "t.tsv"
    truth.write_text(
        "email\tjane@example.com\nquery-password\tS3cret-99\nversion\t9.0.82.0\n"
        "pem-body\tMIIEpAIBAAKCAQEA\n"
    )
    out = tmp_path / "out.log"
    out.write_text(
        "mail to [REDACTED:email] version 9.0.82.1\n"
        "GET /login?os_password=S3cret-99&x=1\n"
        "MIIEpAIBAAKCAQEA\n"
    )
    result = score(truth, out)
    kinds = result["by_kind"]
    assert result["covered_leaks"] == 2
    assert kinds["query-password"]["leaked"] == 1  # type: ignore[index]
    assert kinds["pem-body"]["leaked"] == 1  # type: ignore[index]
    assert kinds["email"]["leaked"] == 0  # type: ignore[index]
    assert kinds["version"]["altered"] == 1  # type: ignore[index]


def test_parse_size() -> None:
    assert parse_size("200MB") == 200_000_000
    assert parse_size("10GB") == 10_000_000_000
    assert parse_size("4MiB") == 4 * 1024 * 1024
    assert parse_size("1234") == 1234
    for bad in ("", "12 parsecs", "MB", "-1MB"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_jira_home_has_the_planned_files(tmp_path: Path) -> None:
    size = 900_000
    assert sum(nbytes for _, nbytes, _ in plan_files(size)) == size
    assert len(plan_files(100_000_000)) > 5  # rotated at 20 MB
    root = tmp_path / "home"
    summary = build_home(root, size)
    logs = [p for p in root.rglob("*") if p.is_file() and "log" in p.parent.name]
    assert {p.name for p in logs} >= {"atlassian-jira.log", "catalina.out"}
    assert summary["bytes"] >= size
    assert (root / "var/atlassian/application-data/jira/dbconfig.xml").is_file()
    marker_time = (root / ".bench-home.json").stat().st_mtime_ns
    assert build_home(root, size) == summary  # reused, not rebuilt
    assert (root / ".bench-home.json").stat().st_mtime_ns == marker_time
