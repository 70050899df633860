"""Nothing hidden about the saved state (issue 30 item 3, issue 33 item 5): the start-up line,
`--set` over the saved state, `--fresh`, one instance per state directory, a state directory
that cannot be written found before the module plays, a damaged performance.json.

Each case runs the real `grooverack run --board sim` in a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.disks import fill, tmpfs

REPO = Path(__file__).resolve().parents[2]


def run(state: Path, *args: str, duration: float = 0.4) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"), "GROOVERACK_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "grooverack", "run", "--board", "sim",
                           "--duration", str(duration), *args], capture_output=True, text=True,
                          timeout=120, env=env)


def state_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "state:" in line]


def saved_panel(state: Path) -> dict[str, object]:
    return json.loads((state / "performance.json").read_text())["payload"]["panel"]


def test_start_up_line_says_what_was_restored(tmp_path: Path) -> None:
    first = run(tmp_path, "--set", "mute.kick=true", "--set", "mute.closed_hat=true",
                "--set", "mute.open_hat=true", "--set", "mute.ride=true")
    assert first.returncode == 0, first.stderr
    second = run(tmp_path)
    assert second.returncode == 0, second.stderr
    lines = state_lines(second)
    assert len(lines) == 1, second.stderr
    assert f"restored from {tmp_path}/performance.json" in lines[0]
    assert "preset slot 1" in lines[0] and "style 'any'" in lines[0]
    assert "muted: kick, hats, ride" in lines[0], lines[0]


def test_set_wins_over_the_saved_state_and_says_so(tmp_path: Path) -> None:
    assert run(tmp_path, "--set", "follow=0.37").returncode == 0
    assert saved_panel(tmp_path)["follow"] == 0.37
    proc = run(tmp_path, "--set", "follow=0.9")
    assert proc.returncode == 0, proc.stderr
    assert "--set follow=0.9 wins over the saved 0.37" in "".join(state_lines(proc))
    assert saved_panel(tmp_path)["follow"] == 0.9  # it played 0.9, and that is what was saved
    proc = run(tmp_path)
    assert "wins over" not in proc.stderr


def test_fresh_plays_the_defaults_and_keeps_the_saved_state(tmp_path: Path) -> None:
    assert run(tmp_path, "--set", "mute.kick=true", "--set", "follow=0.2").returncode == 0
    before = (tmp_path / "performance.json").read_bytes()
    proc = run(tmp_path, "--fresh")
    assert proc.returncode == 0, proc.stderr
    line = "".join(state_lines(proc))
    assert "--fresh" in line and "muted: none" in line and "kept" in line
    assert (tmp_path / "performance.json").read_bytes() == before
    proc = run(tmp_path)
    assert "muted: kick" in "".join(state_lines(proc))


def test_a_second_instance_on_one_state_directory_is_refused_naming_the_first(
        tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"),
           "GROOVERACK_STATE_DIR": str(tmp_path)}
    first = subprocess.Popen([sys.executable, "-m", "grooverack", "run", "--board", "sim",
                              "--duration", "30"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stderr is not None
        for line in first.stderr:  # wait until it plays
            if "ready in" in line:
                break
        second = run(tmp_path)
        assert second.returncode == 2
        assert "Traceback" not in second.stderr
        assert f"state directory {tmp_path} is in use by process {first.pid}" in second.stderr
        assert "grooverack" in second.stderr.split(f"process {first.pid}")[1]
    finally:
        first.terminate()
        first.wait(30)
    assert run(tmp_path).returncode == 0  # the lock went with the process


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as where:
        yield where


def test_an_unwritable_state_directory_is_found_before_playing(read_only: Path) -> None:
    started = time.monotonic()
    proc = run(read_only / "state", duration=5)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"state directory {read_only}/state" in proc.stderr
    assert "Read-only file system" in proc.stderr and "state.dir" in proc.stderr
    assert "ready in" not in proc.stderr
    assert time.monotonic() - started < 5  # refused, not played


@pytest.mark.parametrize("damage", ["folder", "loop", "device"])
def test_a_damaged_performance_file_is_a_message_at_start_and_at_stop(tmp_path: Path,
                                                                       damage: str) -> None:
    path = tmp_path / "performance.json"
    if damage == "folder":
        path.mkdir()
    elif damage == "loop":
        path.symlink_to(tmp_path / "other.json")
        (tmp_path / "other.json").symlink_to(path)
    else:
        path.symlink_to("/dev/zero")
    proc = run(tmp_path)
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"{path}" in proc.stderr
    if damage != "device":  # a rename over a symlink to /dev/zero replaces the link: saved
        kept = proc.stderr.split("this performance was kept in ")[1].split()[0]
        assert json.loads(Path(kept).read_text())["tag"] == "grooverack-performance"


@pytest.mark.slow
def test_a_disk_that_fills_while_playing_keeps_the_performance_elsewhere(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "size=64k") as disk:
        env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"),
               "GROOVERACK_STATE_DIR": str(disk / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "grooverack", "run", "--board", "sim",
                                 "--duration", "3"], stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready in" in line:
                break
        fill(disk, chunk=1024)  # the stage's disk fills up while the module plays
        rest = proc.stderr.read()
        assert proc.wait(60) == 0
        assert "Traceback" not in rest, rest
        assert f"{disk}/state/performance.json: not written (No space left on device)" in rest
        kept = Path(rest.split("this performance was kept in ")[1].split()[0])
        assert json.loads(kept.read_text())["tag"] == "grooverack-performance"
