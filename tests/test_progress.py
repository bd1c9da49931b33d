"""Progress for every phase through the real CLI: the leak check and the writing of the
bundle have their own bar on a terminal and their own line when piped; waiting between
thread dumps counts down instead of freezing the bar; sizes and speeds in the plan's units
(KiB, MiB)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import cli_env, koncis_cmd
from tests.test_plan_view import demo_args, on_terminal
from tests.test_threaddump import RunningJvm, jvm, needs_jdk  # noqa: F401


def test_leak_check_has_its_own_progress(demo_server: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tty"
    out.mkdir()
    code, screen = on_terminal(
        ["collect", *demo_args(demo_server), "-o", str(out), "--yes"], columns=120
    )
    assert code == 0, screen
    frames = screen.replace("\r", "\n")
    assert re.search(r"leak check of \d+ staged file\(s\) .*/[\d.]+ MiB", frames), frames
    assert re.search(r"collecting app-logs .*/[\d.]+ MiB [\d.]+ (KiB|MiB)/s", frames), frames
    assert re.search(r"writing the bundle .*/[\d.]+ MiB", frames), frames
    assert not re.search(r"\d MB\b", frames)  # decimal units nowhere
    piped = tmp_path / "piped"
    piped.mkdir()
    done = subprocess.run(
        koncis_cmd("collect", *demo_args(demo_server), "-o", str(piped), "--yes"),
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^leak check of \d+ staged file\(s\) \.\.\.$", done.stderr, re.M)
    assert "\nwriting the bundle ...\nBundle written:\n" in done.stderr
    quiet = subprocess.run(
        koncis_cmd("collect", *demo_args(demo_server), "-o", str(piped), "--yes", "-q"),
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert quiet.returncode == 0 and "leak check" not in quiet.stderr


@needs_jdk
def test_waiting_between_thread_dumps_counts_down(jvm: RunningJvm, tmp_path: Path) -> None:  # noqa: F811
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: td\ncollect:\n"
        f"  - threaddump: {{name: dumps, count: 2, interval: 3s, pid: {jvm.pid}}}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    code, screen = on_terminal(
        ["collect", "--spec", str(spec), "-o", str(out), "--yes"], columns=120
    )
    assert code == 0, screen
    frames = screen.replace("\r", "\n")
    seconds = set(re.findall(r"dumps: thread dump 2 of 2 in (\d) s", frames))
    assert len(seconds) >= 2, frames  # it counts down while it waits
    assert f"dumps: taking thread dump 2 of 2 (pid {jvm.pid})" in frames
    verbose = subprocess.run(
        koncis_cmd("collect", "--spec", str(spec), "-o", str(out), "--yes", "-v"),
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert verbose.returncode == 0, verbose.stderr
    assert re.search(r"^  dumps: thread dump 2 of 2 in \d s$", verbose.stderr, re.M)
