"""files/config collectors: which files are matched, how they are named, what is skipped."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.config import ConfigCollector
from koncis_diag.collect.files import FilesCollector
from koncis_diag.collect.formats import format_for_config, format_for_name
from koncis_diag.collect.pathmatch import is_excluded, split_pattern
from koncis_diag.collect.registry import REGISTRY
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import FilesItem, Location, Since

FILES = FilesCollector()


def write(root: Path, server_path: str, content: bytes = b"line\n") -> Path:
    path = root / server_path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def item(*paths: str, **options: object) -> FilesItem:
    return FilesItem(kind="files", name="logs", paths=tuple(paths), **options)  # type: ignore[arg-type]


def collect(
    root: Path, files_item: FilesItem, collector: FilesCollector = FILES
) -> dict[str, StreamOutput]:
    outputs = {}
    for output in collector.collect(files_item, CollectContext(root=root)):
        assert isinstance(output, StreamOutput)
        outputs[output.bundle_path] = output
    return outputs


def content(output: StreamOutput) -> bytes:
    assert output.skipped is None, output.skipped
    assert output.chunks is not None
    return b"".join(output.chunks)


def test_registry_has_every_kind() -> None:
    assert sorted(REGISTRY) == [
        "command",
        "config",
        "files",
        "jvm",
        "query",
        "system",
        "threaddump",
    ]
    assert all(REGISTRY[kind].kind == kind for kind in REGISTRY)


def test_recursive_glob_relative_bundle_paths_sorted(tmp_path: Path) -> None:
    write(tmp_path, "/var/log/app/a.log", b"a\n")
    write(tmp_path, "/var/log/app/sub/deep/b.log", b"b\n")
    write(tmp_path, "/var/log/app/sub/c.txt", b"c\n")
    write(tmp_path, "/var/log/app/.hidden.log", b"h\n")
    write(tmp_path, "/var/log/app/.cache/d.log", b"d\n")
    outputs = list(FILES.collect(item("/var/log/app/**/*.log"), CollectContext(root=tmp_path)))
    assert [o.bundle_path for o in outputs] == ["a.log", "sub/deep/b.log"]
    assert [o.source for o in outputs] == ["/var/log/app/a.log", "/var/log/app/sub/deep/b.log"]
    assert content(outputs[1]) == b"b\n"


def test_several_patterns_deduplicated_and_excludes(tmp_path: Path) -> None:
    write(tmp_path, "/opt/app/logs/app.log")
    write(tmp_path, "/opt/app/logs/app.log.1")
    write(tmp_path, "/opt/app/logs/old/app.log.9")
    write(tmp_path, "/opt/app/logs/gc.log")
    files_item = item(
        "/opt/app/logs/*.log*",
        "/opt/app/logs/app.log",
        "/opt/app/logs/**/*.log.*",
        exclude=("gc.*", "/opt/app/logs/old/**"),
    )
    outputs = collect(tmp_path, files_item)
    assert sorted(outputs) == ["app.log", "app.log.1"]


@pytest.mark.parametrize(
    ("pattern", "excluded"),
    [
        ("c.log", True),
        ("*.log", True),
        ("/a/**/c.log", True),
        ("*/old/*", False),
        ("b/*.log", True),  # relative with '/': matches the end of the path
        ("/b/*.log", False),
        ("*.gz", False),
        ("/a/b/*", True),
    ],
)
def test_exclude_pattern_forms(pattern: str, excluded: bool) -> None:
    assert is_excluded("/a/b/c.log", [pattern]) is excluded


def test_exclude_star_crosses_folders() -> None:
    assert is_excluded("/opt/app/old/sub/deep.log", ["*/old/*"])
    assert is_excluded("/old/a.log", ["*/old/*"])
    assert not is_excluded("/opt/app/older/a.log", ["*/old/*"])


def test_split_pattern_base() -> None:
    assert split_pattern("/var/log/**/*.log") == ("/var/log", ["**", "*.log"])
    assert split_pattern("/opt/jira/conf/server.xml") == ("/opt/jira/conf", ["server.xml"])
    assert split_pattern("/x/a*/b.log") == ("/x", ["a*", "b.log"])


def test_explicit_files_name_clash_made_unique(tmp_path: Path) -> None:
    write(tmp_path, "/opt/jira/conf/server.xml", b"<jira/>\n")
    write(tmp_path, "/opt/confluence/conf/server.xml", b"<confluence/>\n")
    outputs = collect(
        tmp_path, item("/opt/jira/conf/server.xml", "/opt/confluence/conf/server.xml")
    )
    # sorted by server path: confluence first
    assert content(outputs["server.xml"]) == b"<confluence/>\n"
    assert content(outputs["server~2.xml"]) == b"<jira/>\n"
    assert outputs["server~2.xml"].source == "/opt/jira/conf/server.xml"


def test_compressed_name_loses_suffix_and_clash_is_unique(tmp_path: Path) -> None:
    import gzip

    write(tmp_path, "/logs/app.log", b"plain\n")
    write(tmp_path, "/logs/app.log.gz", gzip.compress(b"zipped\n"))
    write(tmp_path, "/logs/atlassian-jira.log.2.gz", gzip.compress(b"two\n"))
    outputs = collect(tmp_path, item("/logs/*"))
    assert sorted(outputs) == ["app.log", "app~2.log", "atlassian-jira.log.2"]
    assert content(outputs["app~2.log"]) == b"zipped\n"
    assert content(outputs["atlassian-jira.log.2"]) == b"two\n"


def test_no_match_at_all_is_a_collection_error_and_a_plan_problem(tmp_path: Path) -> None:
    files_item = item("/nowhere/*.log")
    with pytest.raises(CollectionError, match=r"no file matches /nowhere/\*\.log"):
        collect(tmp_path, files_item)
    planned = FILES.plan(files_item, CollectContext(root=tmp_path))
    assert planned.problems == ["no file matches /nowhere/*.log"]


def test_one_pattern_without_match_is_only_a_plan_problem(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log")
    files_item = item("/logs/*.log", "/logs/*.out")
    assert sorted(collect(tmp_path, files_item)) == ["a.log"]
    planned = FILES.plan(files_item, CollectContext(root=tmp_path))
    assert planned.problems == ["no file matches /logs/*.out"]


def test_relative_pattern_is_an_input_error_with_location(tmp_path: Path) -> None:
    files_item = item("logs/*.log", location=Location("spec.yaml", 7, 9))
    with pytest.raises(InputError) as caught:
        collect(tmp_path, files_item)
    assert str(caught.value) == "spec.yaml:7:9: files logs: path must be absolute, got 'logs/*.log'"


@pytest.mark.timeout(20)
def test_fifo_is_never_opened(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log", b"ok\n")
    os.mkfifo(tmp_path / "logs" / "pipe.log")
    files_item = item("/logs/*.log")
    planned = FILES.plan(files_item, CollectContext(root=tmp_path))
    notes = {s.description: s.note for s in planned.sources}
    assert notes["/logs/pipe.log"] == "skipped: a FIFO (named pipe): not read"
    outputs = collect(tmp_path, files_item)  # would block forever if the FIFO were opened
    assert outputs["pipe.log"].skipped == "a FIFO (named pipe): not read"
    assert outputs["pipe.log"].chunks is None
    assert content(outputs["a.log"]) == b"ok\n"


def test_socket_and_device_are_skipped(tmp_path: Path) -> None:
    import socket

    logs = tmp_path / "logs"
    logs.mkdir()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(logs / "s.sock"))
        os.symlink("/dev/null", logs / "null.dev")  # the host's device: live root "/"
        outputs = collect(Path("/"), item(f"{logs}/*", follow_symlinks=True))
    assert outputs["s.sock"].skipped == "a socket: not read"
    assert outputs["null.dev"].skipped == "a character device: not read"


def test_symlink_leaving_base_is_skipped_unless_followed(tmp_path: Path) -> None:
    write(tmp_path, "/secret/shadow", b"root:x\n")
    write(tmp_path, "/logs/real.log", b"real\n")
    os.symlink("/secret/shadow", tmp_path / "logs" / "evil.log")  # inside the sysroot
    os.symlink("real.log", tmp_path / "logs" / "inside.log")
    outputs = collect(tmp_path, item("/logs/*.log"))
    assert outputs["evil.log"].skipped == (
        "symlink leads outside /logs: not followed (follow_symlinks is off)"
    )
    # a symlink inside the base to an already matched file: one copy only
    assert outputs["inside.log"].skipped == "same file as /logs/real.log"
    assert content(outputs["real.log"]) == b"real\n"
    followed = collect(tmp_path, item("/logs/evil.log", follow_symlinks=True))
    assert content(followed["evil.log"]) == b"root:x\n"


def test_symlinked_directory_leaving_base_is_not_entered(tmp_path: Path) -> None:
    write(tmp_path, "/elsewhere/x.log", b"x\n")
    write(tmp_path, "/logs/a.log", b"a\n")
    os.symlink("/elsewhere", tmp_path / "logs" / "linked")  # inside the sysroot
    outputs = collect(tmp_path, item("/logs/**/*.log"))
    assert sorted(outputs) == ["a.log", "linked"]
    assert outputs["linked"].skipped == (
        "symlinked directory leads outside /logs: not followed (follow_symlinks is off)"
    )
    followed = collect(tmp_path, item("/logs/**/*.log", follow_symlinks=True))
    assert content(followed["linked/x.log"]) == b"x\n"


@pytest.mark.timeout(30)
def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    write(tmp_path, "/logs/sub/a.log", b"a\n")
    logs = tmp_path / "logs"
    os.symlink("..", logs / "sub" / "up")  # directory loop
    os.symlink("loop-b.log", logs / "loop-a.log")  # file symlink loop
    os.symlink("loop-a.log", logs / "loop-b.log")
    os.symlink("missing.log", logs / "dangling.log")
    outputs = collect(tmp_path, item("/logs/**/*.log"))
    assert content(outputs["sub/a.log"]) == b"a\n"
    assert outputs["loop-a.log"].skipped == "symlink loop"
    assert outputs["dangling.log"].skipped == "dangling symlink"
    assert not any(path.startswith("sub/up/") for path in outputs if outputs[path].skipped is None)


def test_directory_matching_a_pattern_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log")
    (tmp_path / "logs" / "dir.log").mkdir()
    outputs = collect(tmp_path, item("/logs/*.log"))
    assert outputs["dir.log"].skipped == "is a directory"
    assert content(outputs["a.log"]) == b"line\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_skipped_and_the_rest_goes_on(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log", b"a\n")
    locked = write(tmp_path, "/logs/b.log", b"b\n")
    locked.chmod(0)
    try:
        outputs = collect(tmp_path, item("/logs/*.log"))
    finally:
        locked.chmod(0o600)
    assert outputs["b.log"].skipped == "permission denied"
    assert content(outputs["a.log"]) == b"a\n"


def test_vanished_file_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log", b"a\n")
    write(tmp_path, "/logs/b.log", b"b\n")
    outputs = FILES.collect(item("/logs/*.log"), CollectContext(root=tmp_path))
    first = next(outputs)
    (tmp_path / "logs" / "b.log").unlink()  # removed after matching, before reading
    second = next(outputs)
    assert content(first) == b"a\n"
    assert second.skipped == "vanished before it could be read"


def test_empty_file_and_missing_final_newline(tmp_path: Path) -> None:
    write(tmp_path, "/logs/empty.log", b"")
    write(tmp_path, "/logs/open.log", b"first\nlast without newline")
    outputs = collect(tmp_path, item("/logs/*.log"))
    assert content(outputs["empty.log"]) == b""
    assert content(outputs["open.log"]) == b"first\nlast without newline"


def test_plan_lists_sizes_and_notes_without_collecting(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    write(tmp_path, "/logs/big.log", b"x" * 5000 + b"\n")
    write(tmp_path, "/logs/bin.log", b"\x00\x01\x02" * 10)
    old = write(tmp_path, "/logs/old.log", b"old\n")
    stamp = (now - timedelta(days=30)).timestamp()
    os.utime(old, (stamp, stamp))
    files_item = item("/logs/*.log", since=Since(delta=timedelta(days=7)), max_size=1000)
    planned = FILES.plan(files_item, CollectContext(root=tmp_path, now=now))
    notes = {s.description: (s.size, s.note) for s in planned.sources}
    assert notes["/logs/big.log"] == (
        5001,
        "will keep newest 1000 B; lines older than 7d will be trimmed",
    )
    assert notes["/logs/bin.log"] == (30, "skipped: binary file (NUL bytes)")
    assert notes["/logs/old.log"] == (4, "skipped: older than 7d")
    assert planned.estimated_bytes == 1000
    assert planned.problems == []


def test_files_older_than_the_window_are_skipped(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    old = write(tmp_path, "/logs/old.log", b"old\n")
    stamp = (now - timedelta(days=8)).timestamp()
    os.utime(old, (stamp, stamp))
    write(tmp_path, "/logs/new.log", b"new\n")
    files_item = item("/logs/*.log", since=Since(delta=timedelta(days=7)))
    outputs = {
        o.bundle_path: o for o in FILES.collect(files_item, CollectContext(root=tmp_path, now=now))
    }
    assert outputs["old.log"].skipped == "older than 7d"
    assert isinstance(outputs["new.log"], StreamOutput)
    assert content(outputs["new.log"]) == b"new\n"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dbconfig.xml", "xml"),
        ("jira-config.properties", "properties"),
        ("values.yaml", "yaml"),
        ("x.yml", "yaml"),
        ("package.json", "json"),
        ("my.cnf", "ini"),
        ("server.conf", "ini"),
        ("tool.cfg", "ini"),
        ("php.ini", "ini"),
        ("setenv.sh", "shell"),
        ("setenv.bat", "shell"),
        ("jira.env", "shell"),
        ("atlassian-jira.log", "log"),
        ("catalina.out", "log"),
        ("notes.txt", "log"),
        ("atlassian-jira.log.3", "log"),
        ("atlassian-jira.log.2.gz", "log"),
        ("catalina.out.2026-11-28", "log"),
        ("access_log.2026-11-28.log", "log"),
        ("access_log.2026-11-27", "log"),
        ("localhost_access_log.2026-11-28.txt", "log"),
        ("gc.log.0.current", "log"),
        ("catalog", "text"),
        ("README", "text"),
        ("server.xml.bz2", "xml"),
    ],
)
def test_format_by_name(name: str, expected: str) -> None:
    assert format_for_name(name) == expected


def test_config_format_sniffs_key_value_text() -> None:
    assert format_for_config("jira-application", b"# comment\njira.home = /var/x\na.b=c\n") == (
        "properties"
    )
    assert format_for_config("README", b"Just some prose.\nMore prose here.\n") == "text"
    assert format_for_config("server.xml", b"a=b\n") == "xml"


def test_config_collector_uses_structured_format(tmp_path: Path) -> None:
    write(tmp_path, "/opt/jira/bin/user.conf.d/custom", b"jdbc.user=jira\njdbc.password=s3cret\n")
    write(tmp_path, "/opt/jira/conf/server.xml", b"<Server/>\n")
    config_item = FilesItem(kind="config", name="conf", paths=("/opt/jira/**/*",))
    outputs = collect(tmp_path, config_item, ConfigCollector())
    assert sorted(outputs) == ["bin/user.conf.d/custom", "conf/server.xml"]  # no directories
    assert outputs["bin/user.conf.d/custom"].fmt == "properties"
    assert outputs["conf/server.xml"].fmt == "xml"
    assert content(outputs["bin/user.conf.d/custom"]).startswith(b"jdbc.user=jira")


def test_base_that_cannot_be_listed_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log")
    outputs = collect(tmp_path, item("/logs/a.log/*"))  # the base is a file, not a folder
    assert list(outputs) == ["a.log"]
    assert outputs["a.log"].skipped == "directory not listed: cannot read: Not a directory"
    assert outputs["a.log"].source == "/logs/a.log"
