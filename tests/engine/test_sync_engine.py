"""Steps on external clock edges play at the edges' own times, whatever the lookahead (issue 17):
the engine as every real-time back end drives it, asking for events well ahead of time."""

from __future__ import annotations

import pytest
from grooverack.config import Settings
from grooverack.engine.engine import Engine

LOOKAHEAD = 0.030  # more than the real-time back ends ask for


def external(runner, ppqn: int, source: str = "external", **values) -> Engine:
    base = {"clock.source": source, "clock.ppqn": ppqn, "density": 1.0, "follow": 0.0,
            "uncertainty": 0.0, "quantize": 1.0, "swing": 50.0, "tempo": 120.0,
            "outputs.clock_ppqn": 4}
    return Engine(Settings({**base, **values}), runner)


def play_clock(eng: Engine, edges: list[float], *, midi: bool = False, end: float | None = None,
               tick: float = 0.001):
    """Edges delivered as a back end does (each the moment it arrives, then events up to
    now + LOOKAHEAD); returns every event. `tick`: how often the back end looks, every edge
    since the last look taken in at once (an audio block: 1024 frames at 48 kHz)."""
    events = []
    clock = eng.midi_clock if midi else eng.clock_pulse
    t = 0.0
    end = end if end is not None else edges[-1] + 0.5
    pending = list(edges)
    while t < end:
        while pending and pending[0] <= t:
            clock(pending.pop(0))
        events += eng.advance(t + LOOKAHEAD)
        t += tick
    return events


def steps_on_edges(events, edges, steps_per_pulse):
    """{step: [times of clock-out rises]} for the steps that fall on an edge (one per step)."""
    out = {}
    for e in events:
        if e.kind == "clock" and e.value > 0:
            out.setdefault(round(e.time, 9), 0)
            out[round(e.time, 9)] += 1
    return out


@pytest.mark.parametrize("ppqn", [1, 2, 4, 8, 24, 48])
@pytest.mark.parametrize("bpm", [40.0, 120.0, 300.0])
def test_every_step_on_an_edge_plays_at_the_edge(fake_runner, ppqn, bpm):
    """The clock out (one pulse per step at outputs.clock_ppqn = 4) and every trigger on a step
    that falls on an edge carry that edge's time exactly, with a jittered clock; none doubled,
    none skipped. (The old extrapolating clock put them where it predicted the edge.)"""
    import numpy as np

    rng = np.random.default_rng(ppqn)
    period = 60.0 / bpm / ppqn
    n = ppqn * 8
    edges = [0.1 + k * period + (float(rng.uniform(-0.1, 0.1)) * period if k else 0.0)
             for k in range(n)]
    eng = external(fake_runner, ppqn, tempo=bpm)  # the first interval (before lock) at tempo
    eng.start(0.0)
    events = play_clock(eng, edges, end=edges[-1] + 0.2 * period)
    rises = [e for e in events if e.kind == "clock" and e.value > 0 and e.time <= edges[-1] + 1e-9]
    per = max(ppqn // 4, 1)  # edges per step
    want = [edges[k] for k in range(0, n, per)] if ppqn >= 4 else None
    if want is not None:
        # each step at its edge, exactly (to float rounding); none doubled
        assert [e.time for e in rises] == pytest.approx(want, abs=1e-9)
    else:  # 1-2 PPQN: the steps on edges at the edges, the ones between in between
        on_edge = [e.time for e in rises if e.step % (4 // ppqn) == 0]
        assert on_edge == pytest.approx(edges, abs=1e-9)
        times = [e.time for e in rises]
        assert times == sorted(times) and len(times) == len(set(times))
        assert len(times) == (n - 1) * (4 // ppqn) + 1   # every step up to the last edge
    triggers = [e for e in events if e.kind == "trigger" and e.value > 0]
    edge_set = set(edges)
    on = [e for e in triggers if e.step % max(4 // ppqn, 1) == 0]
    assert on and all(min(abs(e.time - x) for x in edge_set) < 1e-9 for e in on)


@pytest.mark.parametrize("ppqn,bpm", [(24, 120.0), (48, 120.0), (24, 174.0), (48, 300.0)])
def test_edges_taken_in_one_block_each_play_at_their_own_time(fake_runner, ppqn, bpm):
    """An audio back end takes in every edge of a block before it asks for events: at 24 PPQN
    and 120 BPM a 1024-frame block (21.3 ms) holds two edges 20.8 ms apart now and then. The step
    on the first must still play at the first edge's time, not the second's (measured over JACK:
    one step in forty a whole pulse late, before the clock mapped positions through the
    segments it keeps)."""
    period = 60.0 / bpm / ppqn
    edges = [0.1 + k * period for k in range(ppqn * 8)]
    eng = external(fake_runner, ppqn, tempo=bpm)
    eng.start(0.0)
    events = play_clock(eng, edges, end=edges[-1] + 0.2 * period, tick=1024 / 48000)
    rises = [e.time for e in events if e.kind == "clock" and e.value > 0
             and e.time <= edges[-1] + 1e-9]
    assert rises == pytest.approx(edges[::ppqn // 4], abs=1e-9)
    triggers = [e for e in events if e.kind == "trigger" and e.value > 0]
    assert triggers and all(min(abs(e.time - x) for x in edges) < 1e-9 for e in triggers)


def test_tempo_jump_relocks_with_no_doubled_or_skipped_step(fake_runner):
    """120 -> 90 BPM at 4 PPQN and at 1 PPQN: every step plays once, in order; from 2 beats
    after the jump the steps between edges are back on the interpolated grid (1 ms)."""
    for ppqn in (4, 1):
        edges, t = [], 0.1
        for k in range(8 * ppqn):
            edges.append(t)
            t += 60.0 / (120.0 if k < 4 * ppqn else 90.0) / ppqn
        eng = external(fake_runner, ppqn)
        eng.start(0.0)
        events = play_clock(eng, edges, end=edges[-1] + 0.01)
        rises = [e for e in events if e.kind == "clock" and e.value > 0]
        steps = len(rises)
        assert steps == (len(edges) - 1) * (4 // ppqn) + 1   # none doubled, none skipped
        times = [e.time for e in rises]
        assert times == sorted(times)
        jump = edges[4 * ppqn]
        for i, x in enumerate(times):
            k, frac = divmod(i * ppqn / 4, 1)
            k = int(k)
            if x < jump + 2 * 60.0 / 90.0 or k + 1 >= len(edges):
                continue
            grid = edges[k] + frac * (edges[k + 1] - edges[k])
            assert abs(x - grid) < 0.001, (ppqn, i, x, grid)


@pytest.mark.parametrize("source", ["auto", "midi"])
def test_midi_start_puts_step0_on_the_first_clock_after_it(fake_runner, source):
    """In auto the engine free-runs before a clock; a MIDI Start (whatever the free-running
    phase) puts step 0 on the first MIDI clock after it, every time."""
    for start_at in (0.3, 0.3171, 0.3333, 0.35):
        eng = external(fake_runner, 4, source=source)
        eng.start(0.0)                  # the back end's autostart (auto: internal tempo)
        eng.advance(start_at)
        eng.start(start_at, midi=True)
        period = 60.0 / 120.0 / 24
        ticks = [start_at + 0.0005 + k * period for k in range(48)]
        events = play_clock(eng, ticks, midi=True, end=ticks[-1])
        after = [e for e in events if e.kind == "clock" and e.value > 0 and e.time >= start_at]
        assert after[0].time == pytest.approx(ticks[0], abs=1e-9) and after[0].step == 0
        assert [e.time for e in after[:8]] == pytest.approx(ticks[0:48:6], abs=1e-9)


def test_a_stopped_clock_stops_the_drums_and_restarts_on_the_next_step(fake_runner):
    eng = external(fake_runner, 4, **{"clock.stop_timeout": 0.5})
    eng.start(0.0)
    edges = [0.1 + k * 0.125 for k in range(9)]          # steps 0..8
    events = play_clock(eng, edges, end=2.0)              # then nothing for > stop_timeout
    rises = [e for e in events if e.kind == "clock" and e.value > 0]
    assert [e.time for e in rises] == pytest.approx(edges, abs=1e-9)  # none after the last
    later = [3.0 + k * 0.125 for k in range(4)]
    more = play_clock(eng, later, end=later[-1] + 0.01)
    rises = [e for e in more if e.kind == "clock" and e.value > 0]
    assert [e.time for e in rises] == pytest.approx(later, abs=1e-9) and rises[0].step == 9


def play_with_reset(eng: Engine, edges: list[float], reset_t: float, *, tick: float = 0.001,
                    wake: float = 0.0005, end: float | None = None):
    """`play_clock` with a reset at `reset_t`. The back end looks every `tick` and `wake` after
    an input arrives (a loop's wake-up), taking in everything arrived by then in time order: a
    reset 0.3 ms after an edge comes in with it, as in one audio block."""
    events = []
    end = end if end is not None else edges[-1] + 0.5
    pending = sorted([(x, "pulse") for x in edges] + [(reset_t, "reset")])
    inputs = [when for when, _ in pending]
    regular = [k * tick for k in range(int(end / tick) + 1)]
    # (no regular look between an input and its wake-up: that look would have woken on it)
    looks = sorted({t for t in regular if not any(w <= t < w + wake for w in inputs)}
                   | {w + wake for w in inputs})
    for t in looks:
        while pending and pending[0][0] <= t:
            when, what = pending.pop(0)
            (eng.reset if what == "reset" else eng.clock_pulse)(when)
        events += eng.advance(t + LOOKAHEAD)
    return events


@pytest.mark.parametrize("ppqn", [1, 2, 4, 8, 24, 48])
@pytest.mark.parametrize("where", ["with-pulse", "after-pulse", "between-pulses"])
def test_reset_plays_step_zero_on_the_next_pulse_at_every_ppqn(fake_runner, ppqn, where):
    """Reset as documented (engine/clock.py): transparent, it never fires a step itself; the
    pulse it comes with (reset a hair before or 0.3 ms after the edge, as a sequencer sends both)
    or, between pulses, the next pulse plays step 0, at that pulse's time; from there the steps
    run on with the clock, none doubled or skipped. At every PPQN."""
    bpm = 120.0
    period = 60.0 / bpm / ppqn
    n = ppqn * 6
    edges = [0.1 + k * period for k in range(n)]
    j = 3 * ppqn  # the edge of beat 3
    reset_t = {"with-pulse": edges[j] - 1e-4, "after-pulse": edges[j] + 3e-4,
               "between-pulses": edges[j] - 0.4 * period}[where]
    eng = external(fake_runner, ppqn, tempo=bpm)
    eng.start(0.0)
    events = play_with_reset(eng, edges, reset_t, end=edges[-1] + 0.2 * period)
    rises = [e for e in events if e.kind == "clock" and e.value > 0
             and e.time <= edges[-1] + 1e-9]
    zero_edge = edges[j]
    after = [e for e in rises if e.time >= min(reset_t, zero_edge) - 1e-9]
    assert after[0].step == 0 and after[0].time == pytest.approx(zero_edge, abs=1e-9), after[:3]
    # from step 0 on: one clock-out pulse per step, each on its edge (or, at 1-2 PPQN, the
    # steps between edges in between), counting 0, 1, 2, ...
    steps_per_edge = 4 / ppqn
    after_times = [e.time for e in after]
    assert [e.step for e in after] == list(range(len(after)))
    if ppqn >= 4:
        per = ppqn // 4
        assert after_times == pytest.approx(edges[j::per][:len(after)], abs=1e-9)
    else:
        on_edge = [e.time for e in after if e.step % round(steps_per_edge) == 0]
        assert on_edge == pytest.approx(edges[j:], abs=1e-9)
    # before the reset's step 0: the steps ran on as before, none doubled, none at step 0's time
    before = [e for e in rises if e.time < zero_edge - 1e-9]
    assert len({round(e.time, 9) for e in before}) == len(before)
    assert [e.step for e in before] == list(range(len(before)))
