"""End to end on the sim board: a virtual sequencer's gate and pitch volts go in through the
emulated GPIO comparators and MCP3208, the real Engine plays, and the triggers (GPIO) and
velocity volts (MCP4728 read back through the output stage) are checked against what the engine
scheduled."""

from __future__ import annotations

import logging

import pytest
from grooverack.config import Settings
from grooverack.runtime.serve import make_engine
from grooverack.sim.patch import OutputRecorder, VirtualPatch
from grooverack.sim.session import render


class Recording:
    """The real Engine, with every event it scheduled and every onset it was given kept."""

    def __init__(self, engine):
        self.engine = engine
        self.events = []
        self.onsets = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def advance(self, t_until):
        events = self.engine.advance(t_until)
        self.events += events
        return events

    def onset(self, t, velocity=None, pitch_volts=None):
        self.onsets.append((t, pitch_volts))
        return self.engine.onset(t, velocity=velocity, pitch_volts=pitch_volts)


def sequencer(bars=4, bpm=120.0):
    """Gates on 8ths with a stepping pitch line, 20 ms wide; follow turned half way in bar 3."""
    step = 60.0 / bpm / 4
    changes, notes = [], []
    for k in range(bars * 8):
        t = k * 2 * step
        pitch = [0.0, 0.5, 1.0, 0.25, 2.0, 0.75, 1.5, -1.0][k % 8]
        changes += [(t, "pitch", pitch), (t, "gate", 5.0), (t + 0.02, "gate", 0.0)]
        notes.append((t, pitch))
    changes.append((bars / 2 * 16 * step, "follow", 0.5))
    changes.sort(key=lambda c: (c[0], c[1] != "pitch", c[1] == "gate" and c[2] > 0))
    return VirtualPatch(changes, bars * 16 * step, bpm), notes


@pytest.fixture(scope="module")
def rendered():
    settings = Settings({"tempo": 120.0, "follow": 0.9, "input.velocity_mode": "window"})
    engine = Recording(make_engine(settings, threaded=False))
    recorder = OutputRecorder()
    from grooverack.backends.panel.simboard import patch_board
    board = patch_board("sim", settings, recorder, engine)
    patch, notes = sequencer()
    render(patch, board)
    return settings, engine, recorder, board, notes, patch


def heard_triggers(events, end: float) -> list:
    """The engine's trigger events a render to `end` plays: each rise before the end and its fall
    (which may come just after it). A rise at or after the end - a late-played hit on the next
    loop's first step - is never played, nor its fall."""
    out, rising = [], set()
    for e in events:
        if e.kind != "trigger":
            continue
        if e.value > 0:
            if e.time < end:
                out.append(e)
                rising.add(e.output)
        elif e.output in rising:
            out.append(e)
            rising.discard(e.output)
    return out


def test_onsets_carry_edge_times_and_settled_pitch(rendered):
    _, engine, _, _, notes, _ = rendered
    assert [t for t, _ in engine.onsets] == [t for t, _ in notes]
    for (_, volts), (_, pitch) in zip(engine.onsets, notes, strict=True):
        assert volts == pytest.approx(pitch, abs=10 / 4096)   # one MCP3208 step through the front end


def test_triggers_out_of_the_gpio_are_what_the_engine_scheduled(rendered):
    _, engine, recorder, _, _, patch = rendered
    scheduled = {}
    for e in heard_triggers(engine.events, patch.duration):
        scheduled.setdefault(e.output, []).append((e.time, 5.0 * e.value))
    played = {}
    for r in recorder.rows:
        if r.kind == "trigger":
            played.setdefault(r.output, []).append((r.time, r.volts))
    assert sum(len(v) for v in scheduled.values()) > 50     # the engine did play
    assert played == scheduled


def test_velocity_volts_out_of_the_dacs_match_the_engine(rendered):
    settings, engine, recorder, _, _, patch = rendered
    full = settings["outputs.velocity_volts"]
    lsb = 0.00244
    expected, got = [], []
    level: dict[int, float] = {}
    for e in engine.events:
        if e.kind == "velocity":
            level[e.output] = e.value
        elif e.kind == "trigger" and e.value > 0 and e.time < patch.duration:
            expected.append((e.time, e.output, level[e.output] * full))
    for h in recorder.hits(full):
        got.append((h.time, h.output, h.velocity * full))
    assert [g[:2] for g in got] == [x[:2] for x in expected]
    for (_, _, want), (_, _, have) in zip(expected, got, strict=True):
        assert have == pytest.approx(want, abs=lsb / 2 + 1e-9)  # the DAC's own rounding


def test_velocity_reaches_its_dac_before_the_trigger_rises(rendered):
    _, _, recorder, _, _, _ = rendered
    seen_velocity = set()
    order = [(r.time, r.output, r.kind) for r in recorder.rows]
    for i, (t, output, kind) in enumerate(order):
        if kind == "trigger":
            later = [o for o in order[i:] if o[0] == t and o[1] == output and o[2] == "velocity"]
            assert not later, f"velocity of output {output} written after its trigger at {t}"
        elif kind == "velocity":
            seen_velocity.add(output)
    assert len(seen_velocity) >= 4


def test_clock_out_and_the_follow_pot(rendered):
    _, engine, recorder, board, _, _ = rendered
    clocks = [r for r in recorder.rows if r.kind == "clock"]
    assert clocks and {r.volts for r in clocks} == {0.0, 5.0}
    # the one pot move, glided by the smoothing; nothing moves before it or after it settles
    moves = [c for c in board.panel.control_log]
    assert moves and {name for _, name, _ in moves} == {"follow"}
    assert moves[0][0] >= 4.0 and moves[-1][0] < 4.5
    values = [v for _, _, v in moves]
    assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(0.5, abs=0.005)
    assert board.faults()["adc"]["faults"] == 0


def test_bus_faults_while_playing(caplog):
    """NACK burst and a stuck I2C bus on the DACs, a dead ADC for a while: the module keeps
    playing (every trigger on time), velocities are right again once the DACs answer, each
    burst is logged once."""
    settings = Settings({"tempo": 120.0, "follow": 0.9, "input.velocity_mode": "window"})
    engine = Recording(make_engine(settings, threaded=False))
    recorder = OutputRecorder()
    from grooverack.backends.panel.simboard import patch_board
    board = patch_board("sim", settings, recorder, engine)
    bus, adc = board.world.buses[1], board.world.spis["adc"]
    board.world.at(1.0, lambda: bus.nack_burst(40))
    board.world.at(3.0, lambda: bus.set_stuck(True))
    board.world.at(3.5, lambda: bus.set_stuck(False))
    board.world.at(5.0, lambda: adc.fail_next(10 ** 6))
    board.world.at(5.6, lambda: adc.fail_next(0))
    patch, notes = sequencer()
    with caplog.at_level(logging.WARNING, logger="grooverack.backends.panel"):
        render(patch, board)
    scheduled = [(e.time, e.output, e.value)
                 for e in heard_triggers(engine.events, patch.duration)]
    played = [(r.time, r.output, r.volts / 5.0) for r in recorder.rows if r.kind == "trigger"]
    assert played == scheduled                                 # never stopped playing
    assert len(engine.onsets) == len(notes)                    # onsets kept coming, ADC or not
    faults = board.faults()
    # every NACK of the burst is a fault of whichever DAC on that bus was written (which ones
    # depends on the pattern played)
    assert sum(f["faults"] for name, f in faults.items() if name.startswith("dac")) >= 40
    assert faults["dac1"]["recoveries"] >= 2 and faults["adc"]["recoveries"] == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    bursts = sum(f["bursts"] for f in faults.values())
    assert len(errors) == bursts and bursts <= 8               # once per burst, not per attempt
    full = settings["outputs.velocity_volts"]
    level: dict[int, float] = {}
    expected = {}
    for e in engine.events:
        if e.kind == "velocity":
            level[e.output] = e.value
        elif e.kind == "trigger" and e.value > 0 and 6.0 < e.time < patch.duration:
            expected[(e.time, e.output)] = level[e.output] * full
    got = {(h.time, h.output): h.velocity * full for h in recorder.hits(full) if h.time > 6.0}
    assert expected and got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v, abs=0.0013) for k, v in expected.items())


def test_sim_board_plays_what_the_direct_board_plays():
    """Same patch, fixed velocity mode (pitch quantization cannot matter): the emulated chips
    give the same triggers as the chip-less DirectBoard, velocities within half a DAC step."""
    import argparse

    from grooverack.commands import sim as sim_command
    from grooverack.config import make_settings
    from grooverack.sim import session

    parser = argparse.ArgumentParser()
    sim_command.add_arguments(parser)
    args = parser.parse_args(["--bars", "4", "--quiet", "--set", "input.velocity_mode=fixed"])
    out = {}
    for name in ("direct", "sim"):
        settings = make_settings(args)
        patch = session.make_patch(args, settings)
        recorder = OutputRecorder()
        session.render(patch, session.make_board(settings, recorder, make_engine(settings, threaded=False), name))
        out[name] = recorder
    triggers = {k: [(r.time, r.output, r.volts) for r in rec.rows if r.kind == "trigger"]
                for k, rec in out.items()}
    assert len(triggers["direct"]) > 60 and triggers["sim"] == triggers["direct"]
    direct, emulated = out["direct"].hits(8.0), out["sim"].hits(8.0)
    assert [(h.time, h.output) for h in emulated] == [(h.time, h.output) for h in direct]
    assert max(abs(a.velocity - b.velocity) * 8.0 for a, b in zip(direct, emulated,
                                                                   strict=True)) <= 0.00122 + 1e-6
