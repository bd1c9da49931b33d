"""Reliability on the customer's server: every kind of file the collector may meet, through the
real CLI (docs/reliability.md, "Files"). Fault injection is real: FIFOs, a bound socket,
devices, symlink loops, /proc files, permission bits as a non-root user, another process
changing a file while it is read, a 200 MB line with the child's peak memory measured."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.files import FilesCollector
from koncis_diag.collect.rootpath import resolve_server_path
from koncis_diag.spec import FilesItem
from tests import test_reliability_helpers as helpers
from tests.test_reliability_helpers import (
    base_env,
    bundles,
    koncis,
    leftovers,
    outputs_by_path,
    owned_by_runner,
    require_unprivileged,
    run_cli,
    write_spec,
    zip_members,
)

MiB = 1024 * 1024
nobody_dir = helpers.nobody_dir  # the fixture

# One planted secret per way of encoding a file; none may reach the bundle.
ENCODED = {
    "invalid-utf8.log": b"caf\xe9 \xff\xfe\xc3\x28 password=Bad8Secret-1 tail \x80\n",
    "utf16-le.log": "\ufeffhello password=Utf16LeSecret-2 done\n".encode("utf-16-le"),
    "utf16-be.log": "\ufeffhello password=Utf16BeSecret-3 done\n".encode("utf-16-be"),
    # NUL bytes after the 8 KiB head decide "text": they are kept, the secret next to them not
    "nul-bytes.log": b"2026-11-28 10:00:00,000 INFO fine\n" * 300
    + b"a\x00b password=NulSecret-4\x00 end\n",
    "mixed.log": "naïve line password=MixedSecret-5\n".encode()
    + "Müller password=MixedSecret-6\n".encode("latin-1"),
    "no-newline.log": b"last line without newline password=NoNewlineSecret-7",
}
SECRETS = [
    b"Bad8Secret-1",
    b"Utf16LeSecret-2",
    b"Utf16BeSecret-3",
    b"NulSecret-4",
    b"MixedSecret-5",
    b"MixedSecret-6",
    b"NoNewlineSecret-7",
]


@pytest.fixture(scope="module")
def special_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One collection over a tree holding every awkward kind of file (module-wide: one CLI
    run proves many cases). A FIFO or device that was opened would block the run: the
    subprocess timeout would fail every test of the module."""
    base = tmp_path_factory.mktemp("special")
    logs = base / "logs"
    logs.mkdir()
    (logs / "ok.log").write_bytes(b"plain line\n")
    (logs / "empty.log").write_bytes(b"")
    os.mkfifo(logs / "fifo.log")  # nobody ever writes to it
    os.symlink("/dev/zero", logs / "zero.log")  # a device, through a link leaving the base
    os.symlink("loop-b.log", logs / "loop-a.log")
    os.symlink("loop-a.log", logs / "loop-b.log")
    (logs / "sub").mkdir()
    os.symlink("..", logs / "sub" / "up")  # a directory loop
    outside = base / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside the base\n")
    os.symlink(outside / "secret.txt", logs / "outside.log")
    encodings = base / "enc"
    encodings.mkdir()
    for name, data in ENCODED.items():
        (encodings / name).write_bytes(data)
    spec = write_spec(
        base / "spec.yaml",
        "special",
        f"""  - files: {{name: tree, paths: ["{logs}/**"]}}
  - files:
      name: followed
      paths: ["{logs}/outside.log", "{logs}/zero.log"]
      follow_symlinks: true
  - files: {{name: devices, paths: [/dev/zero, /dev/null, /dev/urandom]}}
  - files: {{name: proc, paths: [/proc/self/status, /proc/cpuinfo]}}
  - files: {{name: enc, paths: ["{encodings}/*"]}}
""",
    )
    out = base / "out"
    out.mkdir()
    home = base / "home"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(logs / "socket.log"))
        server.listen(1)
        result = run_cli(["collect", "--spec", str(spec), "--yes", "-o", str(out)], home)
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    members = zip_members(bundle)
    yield {
        "result": result,
        "bundle": bundle,
        "home": home,
        "members": members,
        "outputs": outputs_by_path(members),
        "base": base,
    }


def test_fifo_socket_and_devices_are_never_opened(special_run: dict) -> None:
    outputs = special_run["outputs"]
    assert outputs["files/tree/fifo.log"]["skipped"] == "a FIFO (named pipe): not read"
    assert outputs["files/tree/socket.log"]["skipped"] == "a socket: not read"
    assert outputs["files/followed/zero.log"]["skipped"] == "a character device: not read"
    for name in ("zero", "null", "urandom"):
        assert outputs[f"files/devices/{name}"]["skipped"] == "a character device: not read"
        assert f"files/devices/{name}" not in special_run["members"]


def test_symlink_loops_are_reported_and_do_not_hang(special_run: dict) -> None:
    outputs = special_run["outputs"]
    assert outputs["files/tree/loop-a.log"]["skipped"] == "symlink loop"
    assert outputs["files/tree/loop-b.log"]["skipped"] == "symlink loop"
    assert not any(path.startswith("files/tree/sub/up/") for path in outputs)


def test_symlinks_leaving_the_base_are_followed_only_when_allowed_and_said(
    special_run: dict,
) -> None:
    outputs, members = special_run["outputs"], special_run["members"]
    logs = special_run["base"] / "logs"
    refused = outputs["files/tree/outside.log"]
    assert refused["skipped"] == (
        f"symlink leads outside {logs}: not followed (follow_symlinks is off)"
    )
    assert "files/tree/outside.log" not in members
    followed = outputs["files/followed/outside.log"]
    assert followed["skipped"] is None
    assert followed["notes"] == [f"symlink leads outside {logs}: followed (follow_symlinks)"]
    assert members["files/followed/outside.log"] == b"outside the base\n"


def test_proc_files_whose_size_says_zero_are_read(special_run: dict) -> None:
    members = special_run["members"]
    status = members["files/proc/status"]
    assert re.search(rb"^Name:\s+python", status, re.MULTILINE), status[:200]
    assert b"VmRSS:" in status
    assert members["files/proc/cpuinfo"].startswith(b"processor")
    assert special_run["outputs"]["files/proc/status"]["bytes"] == len(status) > 0


def test_empty_file_and_file_without_final_newline(special_run: dict) -> None:
    members, outputs = special_run["members"], special_run["outputs"]
    assert members["files/tree/empty.log"] == b""
    assert outputs["files/tree/empty.log"]["skipped"] is None
    kept = members["files/enc/no-newline.log"]
    assert kept.startswith(b"last line without newline password=")
    assert not kept.endswith(b"\n")


def test_no_planted_secret_reaches_the_bundle(special_run: dict) -> None:
    everything = b"".join(special_run["members"].values())
    for secret in SECRETS:
        assert secret not in everything
    assert everything.count(b"[REDACTED:") >= len(SECRETS)


@pytest.mark.parametrize(
    "name,kept",
    [
        ("invalid-utf8.log", [b"caf\xe9 \xff\xfe\xc3\x28 password=", b" tail \x80\n"]),
        ("utf16-le.log", [b"hello password=", b" done\n"]),
        ("utf16-be.log", [b"hello password=", b" done\n"]),
        ("nul-bytes.log", [b"a\x00b password="]),
        ("mixed.log", ["naïve line password=".encode(), "Müller password=".encode("latin-1")]),
    ],
)
def test_every_byte_kept_is_as_it_was_and_the_secret_is_not(
    special_run: dict, name: str, kept: list[bytes]
) -> None:
    content = special_run["members"][f"files/enc/{name}"]
    for piece in kept:
        assert piece in content
    assert b"[REDACTED:" in content
    assert not any(secret in content for secret in SECRETS)
    notes = special_run["outputs"][f"files/enc/{name}"]["notes"]
    if name.startswith("utf16"):
        encoding = "UTF-16-LE" if name == "utf16-le.log" else "UTF-16-BE"
        assert notes == [f"transcoded from {encoding} to UTF-8"]


def test_the_bundle_with_all_the_awkward_files_verifies(special_run: dict) -> None:
    result = run_cli(["verify", str(special_run["bundle"])], special_run["home"])
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- --root


def test_absolute_symlinks_below_root_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    (root / "etc").mkdir(parents=True)
    (root / "opt/app/logs").mkdir(parents=True)
    (root / "etc/app.conf").write_bytes(b"the copy's own file\n")
    host_file = tmp_path / "host-only.txt"
    host_file.write_bytes(b"HOST CONTENT must never be read\n")
    logs = root / "opt/app/logs"
    os.symlink("/etc/app.conf", logs / "absolute.log")  # -> <root>/etc/app.conf
    os.symlink(str(host_file), logs / "host.log")  # a host path: absent below the root
    os.symlink("../" * 12 + str(host_file).lstrip("/"), logs / "climb.log")  # .. stops at root
    (root / "var/data").mkdir(parents=True)
    (root / "var/data/d.log").write_bytes(b"data of the copy\n")
    os.symlink("/var/data", logs / "data-dir")  # a directory link, absolute
    spec = write_spec(
        tmp_path / "spec.yaml",
        "sysroot",
        '  - files: {name: logs, paths: ["/opt/app/logs/**"], follow_symlinks: true}\n',
    )
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "home"
    result = run_cli(
        ["collect", "--spec", str(spec), "--root", str(root), "--yes", "-o", str(out)], home
    )
    assert result.returncode == 0, result.stderr
    members = zip_members(bundles(out)[0])
    outputs = outputs_by_path(members)
    assert members["files/logs/absolute.log"] == b"the copy's own file\n"
    assert members["files/logs/data-dir/d.log"] == b"data of the copy\n"
    assert outputs["files/logs/data-dir/d.log"]["notes"] == [
        "reached through a symlinked directory outside /opt/app/logs (followed)"
    ]
    assert outputs["files/logs/host.log"]["skipped"] == "dangling symlink"
    assert outputs["files/logs/climb.log"]["skipped"] == "dangling symlink"
    assert b"HOST CONTENT" not in b"".join(members.values())


def test_resolution_below_a_root_never_leaves_it(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    os.symlink("/a", tmp_path / "abs")
    os.symlink("../../../../..", tmp_path / "a/b/up")
    os.symlink("/loop2", tmp_path / "loop1")
    os.symlink("/loop1", tmp_path / "loop2")
    assert resolve_server_path(tmp_path, "/abs/b") == "/a/b"
    assert resolve_server_path(tmp_path, "/a/b/up/etc/passwd") == "/etc/passwd"
    assert resolve_server_path(tmp_path, "/../../x") == "/x"
    assert resolve_server_path(tmp_path, "/abs", follow_last=False) == "/abs"
    with pytest.raises(OSError) as caught:
        resolve_server_path(tmp_path, "/loop1/x")
    assert caught.value.errno == errno.ELOOP
    assert CollectContext(root=tmp_path).host_path("/a/b/up/x") == tmp_path / "x"


def test_link_loop_below_a_root_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    os.symlink("/logs/b.log", tmp_path / "logs/a.log")
    os.symlink("/logs/a.log", tmp_path / "logs/b.log")
    (tmp_path / "logs/ok.log").write_bytes(b"ok\n")
    item = FilesItem(kind="files", name="l", paths=("/logs/*.log",))
    outputs = {
        o.bundle_path: o for o in FilesCollector().collect(item, CollectContext(root=tmp_path))
    }
    assert isinstance(outputs["a.log"], StreamOutput)
    assert outputs["a.log"].skipped == "symlink loop"
    ok = outputs["ok.log"]
    assert isinstance(ok, StreamOutput) and ok.chunks is not None
    assert b"".join(ok.chunks) == b"ok\n"


# ------------------------------------------------------------------ names that are not UTF-8


def test_file_names_with_odd_bytes_are_collected_under_safe_names(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    odd = [b"caf\xe9.log", b"esc\x1b[31mred.log", b"back\\slash.log", b"new\nline.log"]
    for raw in odd:
        with open(os.path.join(os.fsencode(logs), raw), "wb") as handle:
            handle.write(b"content of " + raw.replace(b"\n", b" ") + b"\n")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(
        ["collect", "--files", f"{logs}/*.log", "--no-system", "--yes", "-o", str(out)],
        tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    members = zip_members(bundles(out)[0])
    names = sorted(n.rsplit("/", 1)[1] for n in members if n.startswith("files/"))
    assert names == ["back%5Cslash.log", "caf%E9.log", "esc%1B[31mred.log", "new%0Aline.log"]
    sources = sorted(o["source"] for o in outputs_by_path(members).values())
    assert sources == sorted(
        f"{logs}/{shown}"
        for shown in ("caf\\xe9.log", "esc\\x1b[31mred.log", "back\\slash.log", "new\\x0aline.log")
    )
    assert members["files/files/caf%E9.log"] == b"content of caf\xe9.log\n"


# ---------------------------------------------------------------- permission bits (non-root)


def test_permission_denied_as_a_non_root_user(nobody_dir: Path) -> None:
    runner = require_unprivileged()
    logs = nobody_dir / "logs"
    (logs / "closed").mkdir(parents=True)
    (logs / "ok.log").write_bytes(b"readable\n")
    (logs / "locked.log").write_bytes(b"password=NeverRead\n")
    (logs / "closed" / "inner.log").write_bytes(b"inside a closed folder\n")
    os.chmod(logs / "locked.log", 0)
    os.chmod(logs / "closed", 0)
    for path in (logs, logs / "ok.log"):
        owned_by_runner(path)
    out = nobody_dir / "out"
    out.mkdir()
    owned_by_runner(out)
    home = nobody_dir / "home"
    home.mkdir()
    owned_by_runner(home)
    result = runner.run(
        ["collect", "--files", f"{logs}/**", "--no-system", "--yes", "-o", str(out)], home
    )
    assert result.returncode == 0, result.stderr
    members = zip_members(bundles(out)[0])
    outputs = outputs_by_path(members)
    hint = " (owned by root: run koncis-diag as root)"  # who may read it
    assert outputs["files/files/locked.log"]["skipped"] == "permission denied" + hint
    assert outputs["files/files/closed"]["skipped"] == (
        "directory not listed: permission denied" + hint
    )
    assert members["files/files/ok.log"] == b"readable\n"
    manifest = json.loads(members["manifest.json"])
    assert manifest["items"][0]["status"] == "partial"


# -------------------------------------------------- files changed by another process mid-read

WRITER = textwrap.dedent(
    """
    import os, sys
    action, path = sys.argv[1], sys.argv[2]
    if action == "grow":
        with open(path, "ab") as handle:
            handle.write(b"appended while read\\n" * 100000)
    elif action == "truncate":
        os.truncate(path, 1536 * 1024)
    elif action == "copytruncate":
        os.truncate(path, 0)
        with open(path, "ab") as handle:
            handle.write(b"NEW CONTENT\\n" * 400000)
    elif action == "rotate":
        os.rename(path, path + ".1")
        with open(path, "wb") as handle:
            handle.write(b"the new file\\n")
    elif action == "delete":
        os.unlink(path)
    """
)


def _lines(count: int) -> bytes:
    return b"".join(b"line %07d of the original file\n" % i for i in range(count))


@pytest.mark.parametrize(
    "action,expected_notes",
    [
        ("grow", []),
        ("truncate", ["the file shrank while it was read (truncated by its writer?)"]),
        ("copytruncate", ["the file shrank while it was read (truncated by its writer?)"]),
        (
            "rotate",
            [
                "the path now points at a different file (rotated while read): "
                "content is the file as it was when opened"
            ],
        ),
        ("delete", ["the file was renamed or removed while it was read (rotated?)"]),
    ],
)
def test_a_file_changed_by_another_process_while_it_is_read(
    tmp_path: Path, action: str, expected_notes: list[str]
) -> None:
    original = _lines(110000)  # about 3.5 MiB: several blocks
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.write_bytes(original)
    item = FilesItem(kind="files", name="l", paths=("/logs/app.log",))
    [output] = list(FilesCollector().collect(item, CollectContext(root=tmp_path)))
    assert isinstance(output, StreamOutput) and output.chunks is not None
    first = next(output.chunks)  # the first block is read: now another process acts
    subprocess.run([sys.executable, "-c", WRITER, action, str(path)], check=True, timeout=60)
    content = first + b"".join(output.chunks)
    if action in ("grow", "rotate", "delete"):
        assert content == original  # the size and the file seen at the start
    else:
        assert original.startswith(content)  # never anything of the new content
        assert len(content) <= 1536 * 1024 if action == "truncate" else len(content) < MiB + 1
    assert output.notes == expected_notes
    assert output.truncated is (action in ("truncate", "copytruncate"))


ROTATING_WRITER = textwrap.dedent(
    """
    import os, sys, time
    folder, stop = sys.argv[1], sys.argv[2]
    number = 0
    while not os.path.exists(stop):
        path = os.path.join(folder, "app.log")
        with open(path, "ab") as handle:
            for _ in range(2000):
                handle.write(b"line %09d\\n" % number)
                number += 1
        if number % 20000 == 0:
            os.replace(path, path + ".1")  # logrotate-style: rename, a new file appears
    """
)


def test_logs_rotating_hard_while_the_cli_collects_them(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"".join(b"line %09d\n" % i for i in range(50000)))
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", ROTATING_WRITER, str(logs), str(stop)])
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "home"
    try:
        result = run_cli(
            ["collect", "--files", f"{logs}/app.log*", "--no-system", "--yes", "-o", str(out)],
            home,
        )
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    assert leftovers(out) == []
    assert run_cli(["verify", str(bundle)], home).returncode == 0
    members = zip_members(bundle)
    for name, content in members.items():
        if name.startswith("files/"):
            assert re.fullmatch(rb"(line \d{9}\n)*", content), name  # whole lines only


# ------------------------------------------------------------------ one line of 200 MB

RSS_PROBE = textwrap.dedent(
    """
    import os, subprocess, sys
    child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
    """
)


def test_a_single_200_mb_line_through_the_cli_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with open(path, "wb") as handle:
        handle.write(b"2026-11-28 10:00:00,000 ERROR password=HugeSecret-1 ")
        block = b"a" * MiB
        for _ in range(200):
            handle.write(block)
        handle.write(b" token=abc password=HugeSecret-2 end\n")
    assert path.stat().st_size > 200 * MiB
    out = tmp_path / "out"
    out.mkdir()
    args = ["collect", "--files", str(path), "--max-size", "300MB", "--no-system", "--yes"]
    probe = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, *koncis(*args, "-o", str(out))],
        capture_output=True,
        text=True,
        timeout=600,
        env=base_env(tmp_path / "home"),
        check=False,
    )
    code, max_rss_kib = probe.stdout.splitlines()[-1].split()
    assert code == "0", probe.stderr
    assert int(max_rss_kib) < 200 * 1024  # the whole CLI, peak resident memory
    content = zip_members(bundles(out)[0])["files/files/huge.log"]
    assert content.startswith(b"2026-11-28 10:00:00,000 ERROR password=[REDACTED:")
    assert b"HugeSecret" not in content
    assert content.endswith(b" end\n")
