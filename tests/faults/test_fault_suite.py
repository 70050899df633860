"""The fuzz and fault suite that keeps the sharp edges away (issue 30 item 4).

Hypothesis over what a person or a device hands the module (controls CSVs, mutations of the
shipped board files, MIDI byte streams into the MIDI back end's input with a real engine);
writes onto a full tmpfs and a read-only mount; SIGKILL at random moments during the state's
saves, then a clean start. Each input either works or is refused with a GrooverackError that
names the file (and the key), never another exception. (`test_fuzz.py` fuzzes the config keys,
calibration and state loaders and the MIDI byte parser.)
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from grooverack import storage
from grooverack.boards.board import load_board
from grooverack.config import BUTTONS, CONTROLS, Settings
from grooverack.errors import GrooverackError, PathError
from grooverack.sim.sources import load_controls
from grooverack.state import PerformanceState, StateStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rig.disks import tmpfs

REPO = Path(__file__).resolve().parents[2]
BOARDS = REPO / "hw" / "boards"
FUZZ = settings(max_examples=int(os.environ.get("GROOVERACK_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# --- controls CSV ----------------------------------------------------------------------------

cells = st.one_of(st.sampled_from(["1", "2.5", "3s", "0.5s", "-1", "nan", "inf", "1e9", "", "x",
                                   "press", "hold", "release", "fill", "cv.follow", "on",
                                   "\ufeff2", "0", "127", "#"]),
                  st.sampled_from([*CONTROLS, *BUTTONS]), st.text(max_size=8))
rows = st.lists(st.lists(cells, min_size=0, max_size=4), max_size=12)


@FUZZ
@given(rows=rows, bom=st.booleans(), crlf=st.booleans())
def test_controls_csv_is_read_or_refused_by_name(tmp_path_factory, rows, bom, crlf) -> None:
    path = tmp_path_factory.mktemp("csv") / "controls.csv"
    text = ("\r\n" if crlf else "\n").join(",".join(row) for row in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")
                     if "\ud800" not in text else text.encode("utf-8", "replace"))
    try:
        changes = load_controls(path)
    except GrooverackError as exc:
        assert str(path) in str(exc)
        return
    for change in changes:
        assert change.time(120.0) >= 0 and np.isfinite(change.value)


# --- board files: mutations of the shipped ones ----------------------------------------------

def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else ("nan" if np.isnan(value) else
                                                       ("inf" if value > 0 else "-inf"))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + "}"
    return str(value)


def dump_toml(table: dict[str, Any]) -> str:
    """A table as TOML: scalars and arrays first, then every sub-table inline under its key."""
    return "\n".join(f'"{k}" = {_toml(v)}' for k, v in table.items()) + "\n"


def paths_of(table: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    if isinstance(table, dict):
        for k, v in table.items():
            out.append((*prefix, k))
            out += paths_of(v, (*prefix, k))
    elif isinstance(table, list):
        for i, v in enumerate(table):
            out += paths_of(v, (*prefix, i))  # type: ignore[arg-type]
    return out


odd_values = st.one_of(st.none(), st.booleans(), st.integers(-300, 300),
                       st.sampled_from([0x48, 0x49, 0x60, 0x61, 0x62, 0x67, 2, 27, 64, 65]),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                       st.lists(st.integers(-2, 20), max_size=4),
                       st.dictionaries(st.text(max_size=5), st.integers(0, 3), max_size=2))

SHIPPED = sorted(p.name for p in BOARDS.glob("*.toml"))


def mutate(table: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    table = copy.deepcopy(table)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths_of(table)))
        parent: Any = table
        for part in where[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            if isinstance(parent, dict):
                del parent[where[-1]]
            else:
                parent.pop(where[-1])
        elif action == "replace":
            value = data.draw(odd_values)
            if value is not None:
                parent[where[-1]] = value
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "address", "chip", "pin", "kind"]))] = \
                data.draw(odd_values.filter(lambda v: v is not None))
        if not paths_of(table):
            break
    return table


def check_board(path: Path) -> None:
    """Load the board and what its kind parses at start; anything refused names `path`."""
    from grooverack.boards.es9 import parse_board
    from grooverack.boards.midi import midi_options

    board = load_board(path)
    if board.kind == "es9":
        parse_board(board, Settings())
    elif board.kind == "midi":
        midi_options(Settings(), board)
    if board.is_panel:
        from grooverack.boards.drawing import panel_svg

        panel_svg(board)


@FUZZ
@given(data=st.data(), name=st.sampled_from(SHIPPED))
def test_board_file_mutations_load_or_are_refused_naming_the_file(tmp_path_factory, data,
                                                                  name) -> None:
    folder = tmp_path_factory.mktemp("boards")
    original = tomllib.loads((BOARDS / name).read_text())
    mutated = mutate(original, data)
    path = folder / f"mutated-{name}"
    if original.get("kind") == "sim" and data.draw(st.booleans()):
        # mutate the base instead: the message must name the base file, not the sim file
        base = tomllib.loads((BOARDS / f"{original['base']}.toml").read_text())
        base_path = folder / "mutated-base.toml"
        base_path.write_text(dump_toml(mutate(base, data)))
        sim = dict(original, base=str(base_path))
        path.write_text(dump_toml(sim))
        at_fault = base_path
    else:
        if mutated.get("kind") == "sim" and isinstance(mutated.get("base"), str) \
                and "/" not in mutated["base"]:
            mutated["base"] = str(BOARDS / f"{mutated['base']}.toml")
        path.write_text(dump_toml(mutated))
        at_fault = path
    try:
        check_board(path)
    except GrooverackError as exc:
        assert str(at_fault) in str(exc), f"{exc} does not name {at_fault}"


def test_every_shipped_board_loads() -> None:
    for name in SHIPPED:
        check_board(BOARDS / name)


# --- MIDI bytes into the MIDI back end's input, with a real engine ----------------------------

@pytest.fixture(scope="module")
def midi_engine() -> Iterator[Any]:
    from grooverack.runtime.serve import make_engine

    settings = Settings()
    settings.set("generation.mode", "rules")
    engine = make_engine(settings, threaded=False)
    yield engine
    engine.close()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=24), max_size=20), board=st.sampled_from(["midi",
                                                                                       "gm"]))
def test_midi_byte_streams_into_the_back_end_never_raise(midi_engine, chunks, board) -> None:
    """Any bytes (SysEx without F7, Active Sensing, running status, stray data bytes) fed as
    rtmidi would hand them: the engine takes them and keeps playing."""
    from grooverack.backends.midi import MidiInputHandler
    from grooverack.boards.midi import midi_options

    options = midi_options(midi_engine.settings, load_board("midi"))
    handler = MidiInputHandler(midi_engine, options)
    t = 0.0
    for chunk in chunks:
        t += 0.01
        handler.feed(t, chunk)
        midi_engine.advance(t)
    handler.feed(t + 0.01, bytes([0x90, 36, 100]))  # a note after all that is still an onset
    midi_engine.advance(t + 1.0)


# --- writes onto a full tmpfs and a read-only mount ------------------------------------------

@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "full", "size=64k") as where:
        yield where


@pytest.fixture
def ro_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as where:
        yield where


def _state(n: int) -> PerformanceState:
    rng = np.random.default_rng(n)
    return PerformanceState(rng.normal(size=128).tolist(), rng.normal(size=128).tolist(),
                            {"follow": n / 1000}, None, n % 64)


def test_saves_onto_a_filling_disk_keep_old_or_new(full_disk: Path) -> None:
    """Saves of growing records until the 64 kB disk is full: every failure is a PathError or
    RecordError naming the file, and the file on disk is always a whole earlier record."""
    store = StateStore(full_disk / "state")
    good = None
    for n in range(1, 400):
        state = _state(n)
        state.panel["follow"] = 0.5
        state.latent_a = state.latent_a * (1 + n // 20)
        state.latent_b = state.latent_b * (1 + n // 20)
        try:
            store.save_performance(state)
            good = n
        except GrooverackError as exc:
            assert "performance.json" in str(exc)
            assert "No space left on device" in str(exc), exc
            break
    else:
        pytest.fail("a 64 kB disk never filled")
    assert good is not None
    kept = store.load_performance()
    assert len(kept.latent_a) == 128 * (1 + good // 20)  # the last good one, whole
    assert not list((full_disk / "state").glob(".*.tmp"))  # no temporary left behind


def test_writes_onto_a_read_only_mount_name_the_file(ro_disk: Path) -> None:
    for write in (lambda: StateStore(ro_disk).save_performance(_state(1)),
                  lambda: StateStore(ro_disk).save_preset(3, _state(2)),
                  lambda: storage.atomic_write_text(ro_disk / "timing.csv", "x\n")):
        with pytest.raises(PathError, match=rf"{ro_disk}/\S+: not written \(Read-only file "
                                            r"system\)"):
            write()


# --- SIGKILL at random moments during the state's saves, then a clean start ------------------

SAVER = r"""
import sys, numpy as np
from grooverack.state import PerformanceState, StateStore
store = StateStore(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
print("saving", flush=True)
n = 0
while True:
    n += 1
    store.save_performance(PerformanceState(rng.normal(size=128).tolist(),
                           rng.normal(size=128).tolist(), {"follow": (n % 100) / 100},
                           None, n % 64))
    store.save_preset(1 + n % 8, PerformanceState(rng.normal(size=128).tolist(),
                      rng.normal(size=128).tolist(), {"morph": 0.5}))
"""


def test_sigkill_during_saves_then_a_clean_start(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"), "GROOVERACK_STATE_DIR": str(tmp_path)}
    rng = random.Random(30)
    for take in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), str(take)],
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stdout.readline() == b"saving\n"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = StateStore(tmp_path)
        assert 0.0 <= store.load_performance().panel.get("follow", 0.0) <= 1.0
        for number in store.presets():
            assert store.load_preset(number) is not None
    start = subprocess.run([sys.executable, "-m", "grooverack", "run", "--board", "sim",
                            "--duration", "0.3"], capture_output=True, text=True, timeout=120,
                           env=env)
    assert start.returncode == 0, start.stderr
    assert "Traceback" not in start.stderr
    assert f"state: restored from {tmp_path}/performance.json" in start.stderr
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "presets").glob(".*.tmp"))
