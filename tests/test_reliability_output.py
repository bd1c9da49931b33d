"""Reliability of what the tool writes (docs/reliability.md, "Output" and "Permissions"):
a missing or read-only output folder (as a non-root user), a full disk (``RLIMIT_FSIZE`` on
the real CLI), names already taken, two collections at once, the free-space pre-flight, and
private modes under umask 000, through the real CLI."""

from __future__ import annotations

import os
import re
import resource
import signal
import stat
import subprocess
import threading
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from koncis_diag.bundle import Staging, bundle_base_name, write_archive
from koncis_diag.support.inspect import verify_bundle
from tests import test_reliability_helpers as helpers
from tests.test_reliability_helpers import (
    STAGING_PREFIX,
    CreatedNames,
    TerminalRun,
    base_env,
    bundles,
    koncis,
    leftovers,
    one_error_line,
    owned_by_runner,
    random_words,
    require_unprivileged,
    run_cli,
    zip_members,
)

nobody_dir = helpers.nobody_dir  # the fixture
MiB = 1024 * 1024
#: A random name part as ``tempfile`` makes them (mkdtemp/mkstemp): 8 of [a-z0-9_].
RANDOM_PART = r"[a-z0-9_]{8}"


def _log(folder: Path, name: str = "app.log", data: bytes = b"") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data or b"2026-11-28 10:00:00,000 INFO user anna@example.com logged in\n")
    return path


def _collect_args(log: Path, out: Path, *extra: str) -> list[str]:
    return ["collect", "--files", str(log), "--no-system", "--yes", "-o", str(out), *extra]


# ----------------------------------------------------------------------- output folder


def test_output_folder_missing_is_one_line_and_nothing_is_created(tmp_path: Path) -> None:
    log = _log(tmp_path / "logs")
    missing = tmp_path / "no" / "such" / "folder"
    result = run_cli(_collect_args(log, missing), tmp_path / "home")
    assert one_error_line(result, 2) == (
        f"--output: the folder {missing} does not exist: create it first"
    )
    assert not (tmp_path / "no").exists()


def test_output_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    log = _log(tmp_path / "logs")
    a_file = tmp_path / "out.txt"
    a_file.write_bytes(b"not a folder\n")
    result = run_cli(_collect_args(log, a_file), tmp_path / "home")
    assert result.returncode == 2  # refused as a usage error, before anything runs
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '-o' / '--output': Directory '{a_file}' is a file."
    )
    assert "Traceback" not in result.stderr
    assert a_file.read_bytes() == b"not a folder\n"


def test_output_folder_not_writable_as_a_non_root_user(nobody_dir: Path) -> None:
    runner = require_unprivileged()
    log = _log(nobody_dir / "logs")
    out = nobody_dir / "out"  # root's folder, 0755: nobody may not create anything in it
    out.mkdir()
    os.chmod(out, 0o755)
    home = nobody_dir / "home"
    home.mkdir()
    owned_by_runner(home)
    result = runner.run(_collect_args(log, out), home)
    assert one_error_line(result, 2) == f"--output: no permission to write in {out}"
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------- disk full


def _limit_file_size(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: files may not grow past ``limit`` bytes. The kernel then fails the
    write with EFBIG (as a full disk fails it with ENOSPC) because SIGXFSZ is ignored."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_while_the_archive_is_written(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for index in range(4):  # each staged file stays below the limit; the archive cannot
        _log(logs, f"part{index}.log", random_words(200 * 1024, seed=index))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(
        _collect_args(logs / "*.log", out),
        tmp_path / "home",
        preexec_fn=_limit_file_size(256 * 1024),
    )
    message = one_error_line(result, 1)
    assert re.fullmatch(
        rf"file too large \(file size limit reached\) while writing {re.escape(str(out))}/"
        r"koncis-diag-adhoc-\d{8}T\d{6}Z\.zip",
        message,
    ), message
    assert list(out.iterdir()) == []  # no partial bundle, no staging


def test_disk_full_while_a_file_is_staged(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    _log(logs, "big.log", random_words(400 * 1024))
    _log(logs, "small.log")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(
        _collect_args(logs / "*.log", out),
        tmp_path / "home",
        preexec_fn=_limit_file_size(256 * 1024),
    )
    expected = re.compile(
        r"file too large \(file size limit reached\) while staging files/files/big\.log in "
    )
    if result.returncode == 1:  # the run stops at the first write that fails
        assert expected.match(one_error_line(result, 1))
        assert list(out.iterdir()) == []
        return
    # or the item is recorded as failed, and nothing of the half-written file is kept
    assert result.returncode == 0, result.stderr
    assert leftovers(out) == []
    members = zip_members(bundles(out)[0])
    assert not any(name.startswith("files/files/") for name in members)
    [item] = [i for i in _manifest(members)["items"] if i["name"] == "files"]
    assert item["status"] == "failed" and expected.match(item["error"])


def _manifest(members: dict[str, bytes]) -> dict:
    import json

    return json.loads(members["manifest.json"])


# ------------------------------------------------------------------- names already taken


def test_existing_bundles_are_never_overwritten(tmp_path: Path) -> None:
    log = _log(tmp_path / "logs")
    out = tmp_path / "out"
    out.mkdir()
    start = datetime.now(timezone.utc)
    planted = {}
    for second in range(-2, 120):  # every name the run could pick in the next two minutes
        name = bundle_base_name("taken", start + timedelta(seconds=second)) + ".zip"
        (out / name).write_bytes(b"someone else's bundle " + name.encode())
        planted[name] = (out / name).read_bytes()
    result = run_cli(_collect_args(log, out, "--name", "taken"), tmp_path / "home")
    for name, content in planted.items():
        assert (out / name).read_bytes() == content
    new = sorted(set(p.name for p in bundles(out)) - set(planted))
    if result.returncode == 0:  # a free name was found: the next one
        assert len(new) == 1 and re.fullmatch(r"koncis-diag-taken-\d{8}T\d{6}Z-2\.zip", new[0])
        assert verify_bundle(out / new[0]).ok
    else:  # or a clear refusal
        message = one_error_line(result, 1)
        assert message.endswith("already exists: it is never overwritten")
        assert new == []
    assert leftovers(out) == []


def _staged(parent: Path, top: str, text: bytes) -> Staging:
    staging = Staging.create(parent_dir=parent, top=top)
    staging.write_bytes("files/a/app.log", text)
    staging.write_bytes("consent.json", b"{}\n")
    staging.finalize_manifest(
        {
            "tool_version": "0.1.0",
            "created": "2026-11-29T01:46:06Z",
            "host": "h",
            "spec": {"name": "t", "description": "", "sha256": None, "source": "flags"},
            "items": [],
            "redactions": {"by_rule": {}, "by_category": {}},
        }
    )
    return staging


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_two_archives_of_the_same_second_both_get_a_name(tmp_path: Path, fmt: str) -> None:
    """Two writers with the same top folder (same spec name, same second) racing for the
    final name: with ``unique_name`` both bundles exist, each named after its top folder."""
    top = "koncis-diag-t-20261129T014606Z"
    out = tmp_path / "out"
    out.mkdir()
    stagings = [_staged(tmp_path, top, b"writer %d\n" % i) for i in range(2)]
    barrier = threading.Barrier(2)
    written: list[Path] = []
    errors: list[BaseException] = []

    def write(staging: Staging) -> None:
        barrier.wait()
        try:
            written.append(write_archive(staging, out, fmt, unique_name=True))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(s,)) for s in stagings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for staging in stagings:
        staging.cleanup()
    assert errors == []
    suffix = "." + fmt
    assert sorted(p.name for p in written) == [f"{top}-2{suffix}", f"{top}{suffix}"]
    assert leftovers(out) == []
    for path in written:
        result = verify_bundle(path)
        assert result.ok and result.top == path.name[: -len(suffix)]


def test_two_collects_at_once_into_the_same_folder(tmp_path: Path) -> None:
    log = _log(tmp_path / "logs")
    out = tmp_path / "out"
    out.mkdir()
    env = base_env(tmp_path / "home")  # one state folder: the pseudonym key is created once
    while time.time() % 1 > 0.2:  # start both early in a second: the same timestamp
        time.sleep(0.01)
    procs = [
        subprocess.Popen(
            koncis(*_collect_args(log, out, "--name", "same")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    written = bundles(out)
    assert 1 <= len(written) <= 2 and leftovers(out) == []
    for (stdout, stderr), code in results:
        assert "Traceback" not in stderr
        if code == 0:
            assert Path(stdout.strip()) in written
        else:  # the only acceptable failure: a clear refusal to overwrite
            assert code == 1 and stderr.endswith("already exists: it is never overwritten\n")
    assert sum(code == 0 for _, code in results) == len(written)
    contents = [zip_members(path)["files/files/app.log"] for path in written]
    assert all(b"anna@example.com" not in c for c in contents)
    assert len(set(contents)) == 1  # same pseudonym for the same address in both runs
    for path in written:
        assert verify_bundle(path).ok


# ------------------------------------------------------------------------------- pre-flight


def test_free_space_is_checked_before_anything_is_collected(tmp_path: Path) -> None:
    big = tmp_path / "logs" / "huge.log"
    big.parent.mkdir()
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with open(big, "wb") as handle:  # text at the start, then a hole: a sparse file
        handle.write(b"2026-11-28 10:00:00,000 INFO start\n" * 300)
        handle.truncate(min(2 * free + 2**30, 15 * 2**40))
    out = tmp_path / "out"
    out.mkdir()
    watch = CreatedNames(out)
    result = run_cli(_collect_args(big, out, "--max-size", "16TB"), tmp_path / "home")
    message = one_error_line(result, 1)
    assert message.startswith(f"not enough free space in {out}: the bundle needs about ")
    assert watch.names() == []  # refused before a staging folder was even made
    assert big.stat().st_blocks * 512 < MiB  # and the file was never read


# ------------------------------------------------------------------ private, whatever umask


def _modes(root: Path) -> dict[str, tuple[int, bool]]:
    """Path below ``root`` -> (permission bits, is a folder)."""
    found = {".": (stat.S_IMODE(root.stat().st_mode), True)}
    for path in root.rglob("*"):
        info = path.lstat()
        found[str(path.relative_to(root))] = (
            stat.S_IMODE(info.st_mode),
            stat.S_ISDIR(info.st_mode),
        )
    return found


def test_everything_sensitive_is_private_with_umask_000(tmp_path: Path) -> None:
    log = _log(tmp_path / "logs")
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    state = home / "state" / "koncis-diag"
    args = ["collect", "--files", str(log), "--no-system", "-o", str(out)]
    run = TerminalRun(args, base_env(home), umask=0)
    try:
        assert run.wait_for_prompt("Collect the items above?"), run.stderr.decode()
        run.type("y\n")
        assert run.wait_for_prompt("Write the bundle?"), run.stderr.decode()
        [staging] = list(out.glob(STAGING_PREFIX + "*"))
        assert re.fullmatch(re.escape(STAGING_PREFIX) + r"[0-9]+-" + RANDOM_PART, staging.name)
        staged = _modes(staging)
        state_modes = _modes(state)
        run.type("y\n")
        code, stderr = run.finish()
    finally:
        run.close()
    assert code == 0, stderr
    # the tool's unredacted log is kept in memory, never written to staging
    assert not any("tool.log" in name for name in staged)
    assert any(name.endswith("app.log") for name in staged)
    for name, (mode, is_dir) in {**staged, **state_modes}.items():
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    assert {"pseudonym.key", "pseudonyms.sqlite3"} <= set(state_modes), state_modes
    [bundle] = bundles(out)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    with zipfile.ZipFile(bundle) as archive:
        assert all(
            (info.external_attr >> 16) & 0o777 in (0o600, 0o700) for info in archive.infolist()
        )


def test_no_predictable_temporary_names(tmp_path: Path) -> None:
    """Every name a run creates in the output folder is the bundle or has a random part; the
    shared temporary folder is not used at all."""
    log = _log(tmp_path / "logs")
    out = tmp_path / "out"
    out.mkdir()
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    env = base_env(tmp_path / "home", TMPDIR=str(shared_tmp))
    created: list[str] = []
    for run in ("first", "second"):
        watch = CreatedNames(out)
        result = run_cli(_collect_args(log, out, "--name", run), tmp_path / "home", env=env)
        assert result.returncode == 0, result.stderr
        created += watch.names()
    final = {p.name for p in bundles(out)}
    temporary = [name for name in created if name not in final]
    assert len(temporary) == 4, created  # one staging folder and one .partial per run
    for name in temporary:
        assert re.fullmatch(
            re.escape(STAGING_PREFIX)
            + r"[0-9]+-"
            + RANDOM_PART
            + "|"
            + r"\.koncis-diag-"
            + RANDOM_PART
            + r"\.partial",
            name,
        ), name
    assert len(set(temporary)) == 4  # never the same name twice
    assert list(shared_tmp.iterdir()) == []
