"""Player: triggers at step + offset, widths, velocity before trigger, voice map, quantize, clock
and reset outputs, retriggers, stop, and transparent reset through the real Clock."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.engine.clock import Clock
from grooverack.engine.pattern import Pattern
from grooverack.engine.player import OutputEvent, Player
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rig.streams import check_stream

KICK, SNARE, CRASH, RIDE = 0, 1, 7, 8


def pattern(cells: dict[tuple[int, int], tuple[float, float]]) -> Pattern:
    """{(step, voice): (velocity, offset)} -> Pattern."""
    hits = np.zeros((32, 9), bool)
    vel = np.zeros((32, 9))
    off = np.zeros((32, 9))
    for (step, voice), (v, o) in cells.items():
        hits[step, voice] = True
        vel[step, voice] = v
        off[step, voice] = o
    return Pattern(hits, vel, off, 1)


def rig(cells, **values):
    s = Settings({"clock.source": "internal", "tempo": 120.0, **values})
    clock = Clock(s)
    player = Player(s)
    player.pattern = pattern(cells)
    return clock, player


def run(clock: Clock, player: Player, until: float, chunk: float = 0.001,
        start: float = 0.0) -> list[OutputEvent]:
    clock.start(start)
    player.rebase(clock.position(start))
    events: list[OutputEvent] = []
    t = start
    while t < until:
        t = min(t + chunk, until)
        events += player.advance(t, clock)
    return events


def of(events, kind=None, output=None, value=None):
    return [e for e in events if (kind is None or e.kind == kind)
            and (output is None or e.output == output) and (value is None or e.value == value)]


def test_triggers_land_on_steps_with_width_and_velocity_first():
    clock, player = rig({(0, KICK): (0.9, 0.0), (4, SNARE): (0.5, 0.0)},
                        **{"outputs.trigger_ms": 5.0})
    events = run(clock, player, 4.1)
    check_stream(events)
    rises = of(events, "trigger", 1, 1.0)
    assert [e.time for e in rises] == pytest.approx([0.0, 4.0])       # a loop: 32 steps, 4 s
    falls = of(events, "trigger", 1, 0.0)
    assert [f.time - r.time for f, r in zip(falls, rises, strict=False)] == pytest.approx([0.005] * len(falls))
    snare = of(events, "trigger", 2, 1.0)
    assert snare[0].time == pytest.approx(0.5) and snare[0].step == 4 and snare[0].voice == SNARE
    vel = of(events, "velocity", 2)
    assert vel[0].value == pytest.approx(0.5)
    i = events.index(snare[0])
    assert events[i - 1].kind == "velocity" or any(
        e.kind == "velocity" and e.output == 2 and e.time == snare[0].time for e in events[:i])


def test_gate_mode_holds_half_a_step():
    clock, player = rig({(2, KICK): (1.0, 0.0)}, **{"outputs.gate_mode": True})
    events = run(clock, player, 1.0)
    rise, fall = of(events, "trigger", 1)
    assert fall.time - rise.time == pytest.approx(0.0625)


@pytest.mark.parametrize("quantize", [0.0, 0.5, 1.0])
def test_micro_timing_and_quantize(quantize):
    clock, player = rig({(4, KICK): (1.0, -0.3), (8, KICK): (1.0, 0.2)}, quantize=quantize)
    events = run(clock, player, 2.0)
    rises = of(events, "trigger", 1, 1.0)
    step_s = 0.125
    expect = [(4 - 0.3 * (1 - quantize)) * step_s, (8 + 0.2 * (1 - quantize)) * step_s]
    assert [e.time for e in rises] == pytest.approx(expect)


def test_louder_voice_wins_a_shared_output():
    clock, player = rig({(0, CRASH): (0.4, 0.0), (0, RIDE): (0.8, 0.1),
                         (4, CRASH): (0.9, 0.0), (4, RIDE): (0.3, 0.0)})
    events = run(clock, player, 1.0)
    check_stream(events)
    rises = of(events, "trigger", 8, 1.0)
    assert [(e.step, e.voice) for e in rises] == [(0, RIDE), (4, CRASH)]
    assert [e.value for e in of(events, "velocity", 8)] == pytest.approx([0.8, 0.9])
    assert rises[0].time == pytest.approx(0.1 * 0.125)   # the winner's own timing


def test_voice_map_scale_accent_and_unmapped():
    clock, player = rig({(0, KICK): (0.5, 0.0), (1, KICK): (0.85, 0.0), (2, SNARE): (1.0, 0.0)},
                        **{"map.kick": 3, "map.snare": 0, "outputs.scale.3": 0.5,
                           "outputs.accent": True, "outputs.accent_threshold": 0.8})
    events = run(clock, player, 1.0)
    assert not of(events, "trigger", 2) and not of(events, "trigger", 1)
    assert [e.value for e in of(events, "velocity", 3)] == pytest.approx([0.25, 0.5])


def test_retrigger_ends_the_previous_trigger_first():
    # steps 3 (+0.45) and 4 (-0.45) are 0.1 step = 12.5 ms apart at 120 BPM: under 20 ms width
    clock, player = rig({(3, KICK): (1.0, 0.45), (4, KICK): (0.7, -0.45)},
                        **{"outputs.trigger_ms": 10.0})
    player.trigger_s = 0.02
    events = run(clock, player, 1.0, chunk=0.0007)
    check_stream(events)
    out = of(events, "trigger", 1)
    assert [e.value for e in out] == [1.0, 0.0, 1.0, 0.0]
    assert out[1].time <= out[2].time and out[2].time - out[1].time <= 0.0005 + 1e-12
    assert out[3].time - out[2].time == pytest.approx(0.02)


@pytest.mark.parametrize("ppqn,per_step", [(4, 1), (8, 2), (24, 6), (1, 0.25)])
def test_clock_out_and_reset_out(ppqn, per_step):
    clock, player = rig({}, **{"outputs.clock_ppqn": ppqn})
    events = run(clock, player, 4.0 - 1e-9)      # 32 steps
    check_stream(events)
    clocks = of(events, "clock", value=1.0)
    assert len(clocks) == int(32 * per_step)
    spacing = 0.125 / per_step
    assert np.allclose(np.diff([e.time for e in clocks]), spacing)
    resets = of(events, "reset", value=1.0)
    assert len(resets) == 1 and resets[0].time == 0.0   # reset out: only after start/reset


def test_events_do_not_depend_on_how_time_is_chunked():
    rng = np.random.default_rng(0)
    cells = {(s, v): (float(rng.uniform(0.2, 1)), float(rng.uniform(-0.5, 0.49)))
             for s in range(32) for v in range(9) if rng.uniform() < 0.3}
    a = run(*rig(cells, swing=60.0), 8.0, chunk=0.0011)
    b = run(*rig(cells, swing=60.0), 8.0, chunk=0.0173)
    check_stream(a)
    assert a == b


def test_stop_drops_pending_and_ends_high_outputs():
    clock, player = rig({(s, KICK): (1.0, 0.0) for s in range(32)},
                        **{"outputs.trigger_ms": 10.0})
    events = run(clock, player, 0.128)             # step 1 rose at 0.125 and is high
    assert player.high
    clock.stop(0.128)
    player.stop(0.128)
    later = player.advance(5.0, clock)
    assert [(e.kind, e.value, e.time) for e in later if e.output == 1] == \
        [("trigger", 0.0, pytest.approx(0.128))]
    assert not player.high
    check_stream(events + later)


def test_transparent_reset_with_external_clock_never_doubles_or_skips_step_zero():
    s = Settings({"clock.source": "external", "clock.ppqn": 4})
    clock = Clock(s)
    player = Player(s)
    player.pattern = pattern({(k, KICK): (1.0, 0.0) for k in range(32)})
    clock.start(0.0)
    player.rebase(0.0)
    events: list[OutputEvent] = []
    t = 0.0
    pulse_times = [1.0 + 0.125 * k for k in range(20)]
    reset_at = 1.0 + 0.125 * 9 + 0.06                # between the pulses of steps 9 and 10
    epoch = clock.epoch
    for i in range(3500):
        t = i * 0.001
        if pulse_times and t >= pulse_times[0]:
            clock.pulse(pulse_times.pop(0))
        if abs(t - reset_at) < 0.0005:
            clock.reset(t)
        if clock.epoch != epoch:
            epoch = clock.epoch
            player.rebase(clock.position(t))
        events += player.advance(t + 0.002, clock)
    check_stream(events)
    kicks = of(events, "trigger", 1, 1.0)
    steps = [e.step for e in kicks]
    assert steps[:10] == list(range(10))
    assert steps[10:20] == list(range(10))          # step 0 again at the next pulse, once
    assert kicks[10].time == pytest.approx(1.0 + 0.125 * 10)
    times = [e.time for e in kicks]
    assert np.allclose(np.diff(times), 0.125, atol=1e-6)   # no double, no gap
    assert len(of(events, "reset", value=1.0)) == 2


def test_stop_and_continue_neither_lose_nor_repeat_a_step():
    clock, player = rig({(k, KICK): (1.0, 0.0) for k in range(32)})
    events = run(clock, player, 10.7 * 0.125)       # step 11 is already committed at 10.5
    clock.stop(10.7 * 0.125)
    player.stop(10.7 * 0.125, clock.position(10.7 * 0.125))
    events += player.advance(3.0, clock)
    clock.continue_(3.0)
    t = 3.0
    while t < 4.0:
        t += 0.001
        events += player.advance(t, clock)
    check_stream(events)
    steps = [e.step for e in of(events, "trigger", 1, 1.0)]
    assert steps == list(range(len(steps))) and len(steps) > 15
    rise_11 = of(events, "trigger", 1, 1.0)[11]
    assert rise_11.time == pytest.approx(3.0 + 0.3 * 0.125)


cells_strategy = st.dictionaries(
    st.tuples(st.integers(0, 31), st.integers(0, 8)),
    st.tuples(st.floats(0.0, 1.0), st.floats(-0.5, 0.49)), max_size=120)


@settings(max_examples=60, deadline=None)
@given(cells_strategy, st.floats(40.0, 300.0), st.floats(50.0, 75.0), st.floats(0.0, 1.0),
       st.floats(1.0, 10.0), st.booleans(), st.floats(0.0005, 0.03))
def test_any_pattern_gives_a_clean_stream(cells, bpm, swing, quantize, width_ms, gate, chunk):
    clock, player = rig(cells, tempo=bpm, swing=swing, quantize=quantize,
                        **{"outputs.trigger_ms": width_ms, "outputs.gate_mode": gate})
    events = run(clock, player, 31.5 * 15.0 / bpm, chunk=chunk)   # one loop
    check_stream(events)
    for e in events:
        assert 0.0 <= e.value <= 1.0 and (e.kind != "trigger" or 1 <= e.output <= 8)
    # every hit sounded once (unless squeezed within 1 ms of the same output's previous one)
    assert len(of(events, "trigger", value=1.0)) <= len(cells)
