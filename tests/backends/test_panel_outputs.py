"""Clock, reset and accent outputs of the reference board and trigger vs gate mode per output
(issue 19 item 3), on the emulated board (MCP4728 read back through the output stage, GPIO
levels through the buffer), with the real Engine; the same accents on `--board direct`; and the
panel drawings (item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from grooverack.backends.panel.simboard import patch_board
from grooverack.boards.board import load_board
from grooverack.boards.drawing import panel_svg
from grooverack.config import Settings
from grooverack.engine.player import OutputEvent
from grooverack.errors import BoardError, ConfigError
from grooverack.runtime.serve import make_engine
from grooverack.sim.direct import DirectBoard
from grooverack.sim.patch import OutputRecorder, VirtualPatch
from grooverack.sim.session import make_board, render

BPM = 120.0
STEP_S = 60.0 / BPM / 4
BUS_S = 0.0015  # a GPIO or DAC write lands within this of its event (bus time of one instant)
REPO = Path(__file__).resolve().parents[2]


def play(bars: float = 2.0, changes=(), board_name="sim", **values):
    settings = Settings({"tempo": BPM, "follow": 0.0, "density": 0.7, **values})
    engine = make_engine(settings, threaded=False)
    recorder = OutputRecorder()
    board = (make_board(settings, recorder, engine, "direct") if board_name == "direct"
             else patch_board(board_name, settings, recorder, engine))
    try:
        render(VirtualPatch(list(changes), bars * 16 * STEP_S, BPM), board)
    finally:
        if board_name != "direct":  # (no chips to zero)
            board.close()
        engine.close()
    return recorder.rows, board


def pulses(rows, kind, output=0):
    """(rise, fall) times of one output's pulses."""
    out, rise = [], None
    for r in sorted((r for r in rows if r.kind == kind and r.output == output),
                    key=lambda r: r.time):
        if r.volts > 0.5 and rise is None:
            rise = r.time
        elif r.volts <= 0.5 and rise is not None:
            out.append((rise, r.time))
            rise = None
    return out


@pytest.mark.parametrize("ppqn", [4, 8, 24])
def test_clock_out_pulses_at_clock_ppqn_on_the_step_grid(ppqn):
    rows, _ = play(bars=1.0, **{"outputs.clock_ppqn": ppqn})
    clock = pulses(rows, "clock")
    period = 60.0 / BPM / ppqn
    assert len(clock) == round(16 * STEP_S / period)
    for k, (rise, fall) in enumerate(clock):
        assert rise == pytest.approx(k * period, abs=BUS_S)
        assert fall - rise == pytest.approx(min(0.005, period / 2), abs=BUS_S)
    # every step boundary has a pulse (ppqn >= 4: the grid is a subset of the clock)
    rises = [r for r, _ in clock]
    for step in range(16):
        assert min(abs(step * STEP_S - r) for r in rises) < BUS_S


def test_reset_out_fires_at_the_start_of_the_loop_and_after_a_reset():
    reset_t = 1.3  # a reset input mid-bar: step 0 again at the next step
    changes = [(reset_t, "reset", 5.0), (reset_t + 0.005, "reset", 0.0)]
    rows, board = play(bars=2.0, changes=changes)
    fired = pulses(rows, "reset")
    assert fired[0][0] == pytest.approx(0.0, abs=BUS_S)
    assert fired[0][1] - fired[0][0] == pytest.approx(0.005, abs=BUS_S)
    assert len(fired) == 2 and reset_t - BUS_S <= fired[1][0] <= reset_t + STEP_S + BUS_S
    # at the jack: trigger_volts through the DAC (code 2049 x 2.44 mV), never above safe_max
    highs = [r.volts for r in rows if r.kind == "reset" and r.volts > 0.5]
    assert highs and all(abs(v - 5.0) < 0.01 for v in highs)


def test_accent_outputs_follow_their_trigger_on_loud_hits():
    rows, board = play(bars=2.0, **{"outputs.accent_threshold": 0.6})
    full = 8.0  # outputs.velocity_volts
    level: dict[int, float] = {}
    accents = {n: pulses(rows, "accent", n) for n in (1, 2, 3)}
    checked = 0
    for r in sorted(rows, key=lambda r: r.time):
        if r.kind == "velocity":
            level[r.output] = r.volts / full
    for n in (1, 2, 3):
        hits = pulses(rows, "trigger", n)
        vel = {}
        for r in rows:
            if r.kind == "velocity" and r.output == n:
                vel[round(r.time, 4)] = r.volts / full
        for rise, fall in hits:
            v = min(vel.items(), key=lambda kv: abs(kv[0] - rise))[1]
            matched = [a for a in accents[n] if abs(a[0] - rise) < BUS_S]
            if abs(v - 0.6) >= 0.01:  # (at the threshold the DAC's rounding decides)
                assert bool(matched) == (v >= 0.6), (n, rise, v)
            if matched:
                assert matched[0][1] == pytest.approx(fall, abs=BUS_S)  # falls with it
                checked += 1
    assert checked > 0
    assert sum(len(a) for a in accents.values()) == checked  # no accent without its trigger


def test_direct_board_plays_the_reference_boards_accents():
    """`--board direct` has ACC 1..3 like the reference board: the same accents at the same
    times (the sim board's through MCP4728 #3, within a DAC step of 5 V; direct's exact)."""
    values = {"outputs.accent_threshold": 0.6, "outputs.mode.2": "gate"}
    sim_rows, _ = play(bars=2.0, **values)
    direct_rows, _ = play(bars=2.0, board_name="direct", **values)
    accents = {}
    for name, rows in (("sim", sim_rows), ("direct", direct_rows)):
        accents[name] = {n: pulses(rows, "accent", n) for n in range(1, 9)}
        assert all(not accents[name][n] for n in range(4, 9))  # three accent jacks
        assert sum(len(a) for a in accents[name].values()) > 3
        highs = [r.volts for r in rows if r.kind == "accent" and r.volts > 0.5]
        assert all(abs(v - 5.0) < 0.01 for v in highs)
    assert all(r.volts == 5.0 for r in direct_rows if r.kind == "accent" and r.volts > 0.5)
    for n in (1, 2, 3):
        assert [(round(a, 6), round(b, 6)) for a, b in accents["direct"][n]] == \
            [(round(a, 6), round(b, 6)) for a, b in accents["sim"][n]], n
    # on loud hits only, falling with their trigger (output 2: a gate, half a step)
    for n in (1, 2, 3):
        hits = pulses(direct_rows, "trigger", n)
        for rise, fall in accents["direct"][n]:
            assert (rise, fall) in hits
            if n == 2:
                assert fall - rise == pytest.approx(STEP_S / 2)


class ScriptedEngine:
    """Hands the direct board a fixed list of output events."""

    def __init__(self, events):
        self.events = list(events)

    def start(self, t):
        pass

    def advance(self, t_until):
        out = [e for e in self.events if e.time < t_until]
        self.events = [e for e in self.events if e.time >= t_until]
        return out


def test_direct_board_accent_follows_the_velocity_of_its_own_hit():
    """A loud hit and a soft one handed over in one advance: each trigger is judged by the
    velocity written with it (at the threshold counts), never by a later one; only outputs 1..3
    have accent jacks."""
    ev = OutputEvent
    events = [ev(0.1, 1, "velocity", 0.3, 0, 0), ev(0.1, 1, "trigger", 1.0, 0, 0),
              ev(0.105, 1, "trigger", 0.0, 0, 0),
              ev(0.2, 1, "velocity", 0.8, 1, 0), ev(0.2, 1, "trigger", 1.0, 1, 0),
              ev(0.2, 4, "velocity", 1.0, 1, 3), ev(0.2, 4, "trigger", 1.0, 1, 3),
              ev(0.205, 1, "trigger", 0.0, 1, 0), ev(0.205, 4, "trigger", 0.0, 1, 3)]
    recorder = OutputRecorder()
    board = DirectBoard(ScriptedEngine(events), Settings({"outputs.accent_threshold": 0.8}),
                        recorder)
    board.start(0.0)
    board.finish(1.0)
    accents = [(r.time, r.output, r.volts) for r in recorder.rows if r.kind == "accent"]
    assert accents == [(0.2, 1, 5.0), (0.205, 1, 0.0)]
    times = [r.time for r in recorder.rows]
    assert times == sorted(times)  # each instant's accents written with it


def test_sim_direct_writes_accent_rows_to_outputs_csv(tmp_path):
    import csv

    from grooverack.cli import main

    out = tmp_path / "render"
    assert main(["sim", "--board", "direct", "--bars", "2", "--seed", "0", "-q", "--out",
                 str(out), "--set", "outputs.accent_threshold=0.5"]) == 0
    with open(out / "outputs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    accents = [r for r in rows if r["kind"] == "accent"]
    assert accents and {r["output"] for r in accents} <= {"1", "2", "3"}
    assert {float(r["volts"]) for r in accents} == {0.0, 5.0}


def test_outputs_stay_in_the_safe_range_and_go_to_zero_at_stop():
    rows, board = play(bars=1.0, **{"outputs.velocity_volts": 10.0, "outputs.mode.1": "gate"})
    b = board.board
    for r in rows:
        jacks = [o for o in [*b.outputs.values(), *b.gpio_outputs.values()]
                 if o.kind == r.kind and o.output == r.output]
        assert jacks, r
        for jack in jacks:
            low, high = (getattr(jack, "safe_min", 0.0), getattr(jack, "safe_max", jack.volts)
                         if hasattr(jack, "volts") else jack.safe_max)
            assert low - 1e-9 <= r.volts <= high + 0.01
    # board.close() ran: every jack reads 0 V (DACs through the output stage, pins low)
    for name in [*b.outputs, *b.gpio_outputs]:
        assert board.world.output_volts(name) == pytest.approx(0.0, abs=0.003)


def test_trigger_and_gate_mode_per_output():
    # quantize 1: hits on the grid, so no early next hit cuts a gate short (a retrigger)
    rows, _ = play(bars=1.0, **{"outputs.mode.1": "gate", "outputs.mode.clock": "gate",
                                "outputs.mode.reset": "gate", "outputs.trigger_ms": 4.0,
                                "quantize": 1.0})
    before_end = 15 * STEP_S  # the render's end cuts what is still high there
    gate = [p for p in pulses(rows, "trigger", 1) if p[0] < before_end]
    trig = [p for n in (2, 3) for p in pulses(rows, "trigger", n) if p[0] < before_end]
    assert gate and trig
    for rise, fall in gate:
        assert fall - rise == pytest.approx(STEP_S / 2, abs=BUS_S)  # held half a step
    for rise, fall in trig:
        assert fall - rise == pytest.approx(0.004, abs=BUS_S)        # outputs.trigger_ms
    for rise, fall in pulses(rows, "clock"):
        assert fall - rise == pytest.approx(60.0 / BPM / 4 / 2, abs=BUS_S)  # a square wave
    (rise, fall), = pulses(rows, "reset")
    assert fall - rise == pytest.approx(STEP_S / 2, abs=BUS_S)
    # accents follow their trigger's mode: an accent on output 1 is a gate too
    for rise, fall in [p for p in pulses(rows, "accent", 1) if p[0] < before_end]:
        assert fall - rise == pytest.approx(STEP_S / 2, abs=BUS_S)


@pytest.mark.parametrize("key", ["outputs.mode.3", "outputs.mode.clock", "outputs.mode.reset"])
def test_output_mode_is_validated_naming_key_value_and_choices(key):
    with pytest.raises(ConfigError) as err:
        Settings({key: "latch"})
    text = str(err.value)
    assert key in text and "'latch'" in text and "'trigger', 'gate'" in text


def test_accent_jacks_must_follow_a_trigger_output(tmp_path):
    text = load_board("reference").path.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('kind = "accent"\noutput = 3', 'kind = "accent"\noutput = 12'),
                   encoding="utf-8")
    with pytest.raises(BoardError, match=r"accent_3.output' = 12: an accent follows a trigger"):
        load_board(bad)
    bad.write_text(text.replace('kind = "accent"\noutput = 3', 'kind = "accent"\noutput = 0'),
                   encoding="utf-8")
    with pytest.raises(BoardError, match="accent outputs are numbered 1..16"):
        load_board(bad)


def test_reference_board_outputs():
    b = load_board("reference")
    assert {o.output for o in b.outputs.values() if o.kind == "accent"} == {1, 2, 3}
    assert [o.kind for o in b.outputs.values() if o.output == 0] == ["reset"]
    assert [o.pin for o in b.gpio_outputs.values() if o.kind == "clock"] == [18]
    for o in b.outputs.values():
        assert (o.safe_min, o.safe_max) == (0.0, 10.0)


# --- the panel drawing (item 8)

@pytest.mark.parametrize("name", ["reference", "budget"])
def test_panel_drawing_matches_the_committed_file(name):
    """docs/panel-NAME.svg is generated: `grooverack panel --board NAME --out
    docs/panel-NAME.svg` after changing hw/boards/NAME.toml."""
    committed = (REPO / "docs" / f"panel-{name}.svg").read_text(encoding="utf-8")
    assert panel_svg(load_board(name)) == committed, (
        f"docs/panel-{name}.svg is stale: run `grooverack panel --board {name} --out "
        f"docs/panel-{name}.svg`")


def test_panel_drawing_shows_every_jack_knob_button_and_led():
    b = load_board("reference")
    svg = panel_svg(b)
    for text in ("FOLLOW CV", "UNCERT CV", "DENSITY CV", "MORPH CV", "GATE", "CLOCK", "RESET",
                 "PITCH", "VEL CV", "FILL", "TRIG 8", "VEL 8", "ACC 1", "ACC 3", "REC LED",
                 "TEMPO", "A/B MORPH", "RND B"):
        assert f">{text}<" in svg, text
    jacks = len(b.inputs) + len([i for i in b.gpio_inputs.values() if i.role != "button"])
    jacks += len([o for o in [*b.outputs.values(), *b.gpio_outputs.values()] if o.kind != "led"])
    assert svg.count('r="1.2"') == jacks  # one jack hole each
    assert svg == panel_svg(load_board("reference"))  # deterministic


def test_budget_panel_drawing_shows_its_shift_layer():
    svg = panel_svg(load_board("budget"))
    for text in ("SHIFT", "STYLE", "FILL", "SHIFT: GROUP", "SHIFT: GRP DENS", "SHIFT: GRP VEL",
                 "MUTE KICK", "MUTE SNARE", "MUTE GRP", "ACC 4", "TRIG 4"):
        assert f">{text}<" in svg, text


def test_panel_command_writes_the_drawing(tmp_path, capsys):
    from grooverack.cli import main

    out = tmp_path / "panel.svg"
    assert main(["panel", "--board", "sim", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == panel_svg(load_board("sim"))
    assert main(["panel", "--board", "es9"]) == 2
    assert "only 'pi' and 'sim' boards" in capsys.readouterr().err
