"""Clock: internal tempo, external PPQN clock with jitter/outliers, stop, reset, MIDI, swing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.engine.clock import Clock, swing_unwarp, swing_warp
from hypothesis import given, settings
from hypothesis import strategies as st


def make_clock(**values) -> Clock:
    return Clock(Settings(values))


def pulses(clock: Clock, times) -> None:
    for t in times:
        clock.pulse(t)


# --- internal -----------------------------------------------------------------------------------
def test_internal_tempo_positions_and_times():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0})
    c.start(1.0)
    assert c.position(1.0) == 0.0
    assert c.position(1.125) == pytest.approx(1.0)       # 120 BPM = 8 steps/s
    assert c.time_of(16.0) == pytest.approx(3.0)          # one bar = 2 s
    assert c.position(c.time_of(7.3)) == pytest.approx(7.3)


@pytest.mark.parametrize("bpm", [20.0, 300.0])
def test_internal_tempo_range(bpm):
    c = make_clock(**{"clock.source": "internal", "tempo": bpm})
    c.start(0.0)
    assert c.position(60.0 / bpm) == pytest.approx(4.0)   # one beat = 4 steps
    c.set_tempo(bpm * 10, 0.0)
    assert 20.0 <= c.tempo <= 300.0


def test_tempo_change_keeps_position_continuous():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0})
    c.start(0.0)
    before = c.position(0.5)
    c.set_tempo(60.0, 0.5)
    assert c.position(0.5) == pytest.approx(before)
    assert c.position(1.0) == pytest.approx(before + 2.0)  # 60 BPM = 4 steps/s


def test_stop_freezes_and_continue_runs_on():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0})
    c.start(0.0)
    c.stop(0.5)
    assert c.position(0.5) == pytest.approx(4.0)
    assert c.position(10.0) == pytest.approx(4.0)
    assert math.isinf(c.time_of(5.0))
    c.continue_(10.0)
    assert c.position(10.125) == pytest.approx(5.0)


def test_internal_reset_makes_its_own_time_step_zero():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0})
    c.start(0.0)
    epoch = c.epoch
    c.reset(0.3)                       # at step 2.4: the reset's time becomes step 0
    assert c.epoch == epoch + 1
    assert c.position(0.3) == pytest.approx(0.0)
    assert c.time_of(0.0) == pytest.approx(0.3)
    assert c.position(0.3 + 0.125) == pytest.approx(1.0)   # the tempo runs on


# --- external -----------------------------------------------------------------------------------
def external(ppqn=4, **values) -> Clock:
    c = make_clock(**{"clock.source": "external", "clock.ppqn": ppqn, **values})
    c.start(0.0)
    return c


def test_first_pulse_after_start_plays_step_zero():
    c = external(ppqn=4)
    assert not c.playing and c.position(5.0) == 0.0   # armed: waits for the clock
    c.pulse(5.0)
    assert c.position(5.0) == 0.0 and c.time_of(0.0) == 5.0
    c.pulse(5.125)
    assert c.position(5.125) == pytest.approx(1.0)


@pytest.mark.parametrize("ppqn", [1, 2, 4, 8, 24, 48])
def test_steady_external_clock_locks(ppqn):
    bpm = 132.0
    period = 60.0 / bpm / ppqn
    sp = 4.0 / ppqn
    c = external(ppqn=ppqn)
    n = 4 * ppqn + 8
    pulses(c, [1.0 + k * period for k in range(n)])
    assert c.bpm == pytest.approx(bpm, rel=1e-3)
    last = 1.0 + (n - 1) * period
    assert c.position(last) == pytest.approx((n - 1) * sp, abs=1e-3)
    # interpolated between edges
    assert c.position(last + period / 2) == pytest.approx((n - 0.5) * sp, abs=1e-3)


@pytest.mark.parametrize("ppqn", [4, 24])
def test_tempo_estimate_under_jitter(ppqn):
    rng = np.random.default_rng(7)
    bpm = 120.0
    period = 60.0 / bpm / ppqn
    sp = 4.0 / ppqn
    c = external(ppqn=ppqn)
    jitter = rng.normal(0.0, 0.0015, 16 * ppqn)
    errors = []
    for k, j in enumerate(jitter):
        t = 1.0 + k * period + j
        c.pulse(t)
        # the pulse is the position: every edge lands exactly on its grid point, at its time
        assert c.position(t) == pytest.approx(k * sp, abs=1e-9)
        assert c.time_of(k * sp) == pytest.approx(t, abs=1e-9)
        assert c.hold == pytest.approx((k + 1) * sp)     # the next edge's step waits for it
        if k >= 2 * ppqn:
            assert c.bpm == pytest.approx(bpm, rel=0.03)
            # between edges, the prediction of the next one vs the ideal (unjittered) clock
            errors.append(t + sp / c.rate - (t - j + period))
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.001                   # no drift
    # the estimate is smooth: the prediction is off by about this edge's jitter, not more
    assert np.abs(errors).max() <= np.abs(jitter).max() + 0.002


def test_lone_outlier_is_ignored_and_several_relock():
    c = external(ppqn=24)
    p120 = 60.0 / 120.0 / 24
    t = 1.0
    for _ in range(48):
        c.pulse(t)
        t += p120
    t += p120 * 1.5             # one late pulse (a lone outlier interval of 2.5 periods)
    c.pulse(t)
    assert c.bpm == pytest.approx(120.0, rel=0.01)
    for _ in range(10):
        t += p120
        c.pulse(t)
    assert c.bpm == pytest.approx(120.0, rel=0.01)
    p90 = 60.0 / 90.0 / 24      # the tempo really changed: re-lock after a few
    for _ in range(4):
        t += p90
        c.pulse(t)
    assert c.bpm == pytest.approx(90.0, rel=0.01)


def test_position_never_runs_far_past_the_next_edge_nor_backwards():
    rng = np.random.default_rng(3)
    c = external(ppqn=4)
    t = 1.0
    last_pos = -1.0
    for k in range(40):
        c.pulse(t)
        interval = 0.125 * rng.uniform(0.6, 1.8)   # a wildly irregular clock
        for x in np.linspace(t, t + interval, 25, endpoint=False):
            pos = c.position(float(x))
            assert pos >= last_pos - 1e-9
            assert pos <= k + 1 + 1e-9    # held at the next edge until it comes
            last_pos = pos
        t += interval
    # the clock stops: the position holds at the next edge, never further
    hold = c.position(t + 1.0)
    assert hold == pytest.approx(40.0)
    assert c.position(t + 1.5) == hold


def test_stop_detection_external_freezes_and_restarts_on_the_next_step():
    c = external(ppqn=4, **{"clock.stop_timeout": 0.5})
    pulses(c, [1.0 + k * 0.125 for k in range(9)])   # last pulse at 2.0, position 8
    c.poll(2.4)
    assert not c.stalled
    c.poll(2.6)
    assert c.stalled and not c.playing
    frozen = c.position(2.6)
    assert frozen == c.position(9.0)
    assert frozen == pytest.approx(9.0)            # held at the pulse that never came
    c.pulse(10.0)                                  # the clock comes back: that pulse is step 9
    assert c.position(10.0) == pytest.approx(9.0)
    c.pulse(10.125)
    assert c.position(10.125) == pytest.approx(10.0)


def test_auto_source_follows_pulses_then_falls_back_to_internal():
    c = make_clock(**{"clock.source": "auto", "clock.ppqn": 4, "tempo": 100.0,
                      "clock.stop_timeout": 0.5, "clock.auto_stop": "internal"})
    c.start(0.0)
    assert c.driver == "internal" and c.position(0.15) == pytest.approx(1.0)
    for k in range(16):                            # 150 BPM external clock takes over
        c.pulse(0.3 + k * 0.1)
    assert c.driver == "external" and c.bpm == pytest.approx(150.0, rel=1e-3)
    last = c.position(1.8)
    assert c.position(2.4) == pytest.approx(18.0)  # held at the next expected pulse
    c.poll(2.5)                                    # pulses stopped: internal at 100 BPM
    assert c.driver == "internal"
    p = c.position(2.5)
    assert p == pytest.approx(18.0) and p >= last  # from the held step, not past it
    assert c.position(2.5 + 0.6) == pytest.approx(p + 4.0)


def test_auto_source_waits_for_a_stopped_clock_until_the_tempo_is_turned():
    """The default (clock.auto_stop = wait): the sequencer stops, the drums stop with it and stay
    stopped; its clock coming back plays the held step; turning the tempo control instead plays
    on at the internal tempo from the held step."""
    c = make_clock(**{"clock.source": "auto", "clock.ppqn": 4, "tempo": 100.0,
                      "clock.stop_timeout": 0.5})
    c.start(0.0)
    for k in range(16):                            # 150 BPM: pulses 0.3 .. 1.8, step 17 at 1.8
        c.pulse(0.3 + k * 0.1)
    c.poll(2.5)
    assert c.stalled and c.driver == "external" and not c.playing
    held = c.position(2.5)
    assert held == pytest.approx(18.0)
    assert c.position(30.0) == held                # still waiting, however long
    c.poll(30.0)
    c.pulse(31.0)                                  # the clock comes back: it plays the held step
    assert c.position(31.0) == pytest.approx(18.0) and c.time_of(18.0) == 31.0
    c.pulse(31.1)
    assert c.position(31.1) == pytest.approx(19.0)
    # stopped again; now the tempo control is turned: the internal tempo plays on from the held step
    c.poll(32.0)
    assert c.stalled and c.position(40.0) == pytest.approx(20.0)
    c.set_tempo(100.0, 40.0)                       # the same tempo is no gesture
    assert c.position(41.0) == pytest.approx(20.0)
    c.set_tempo(120.0, 41.0)
    assert c.driver == "internal" and c.playing
    assert c.position(41.0) == pytest.approx(20.0)
    assert c.position(41.5) == pytest.approx(24.0)  # 120 BPM: 8 steps per second
    for k in range(4):                             # a clock patched again takes over
        c.pulse(42.0 + k * 0.125)
    assert c.driver == "external"


def test_reset_is_transparent_with_an_external_clock():
    c = external(ppqn=4)
    pulses(c, [1.0 + k * 0.125 for k in range(11)])   # step 10 at 2.25
    c.reset(2.3)
    assert c.position(2.3) == 0.0 and not c.playing   # re-armed, nothing fires yet
    c.pulse(2.375)                                     # the next clock plays step 0
    assert c.position(2.375) == 0.0 and c.time_of(0.0) == 2.375
    c.pulse(2.5)
    assert c.position(2.5) == pytest.approx(1.0)
    assert c.bpm == pytest.approx(120.0, rel=1e-3)     # the tempo survived the reset


def test_ppqn_change_rescales_the_estimate():
    c = external(ppqn=4)
    p8 = 60.0 / 60.0 / 8
    pulses(c, [1.0 + k * p8 for k in range(30)])       # 8 PPQN at 60 BPM read as 4 PPQN
    assert c.bpm == pytest.approx(120.0, rel=1e-3)
    c.set_ppqn(8, 1.0 + 29 * p8)
    assert c.bpm == pytest.approx(60.0, rel=1e-3)
    before = c.position(1.0 + 29 * p8)
    pulses(c, [1.0 + k * p8 for k in range(30, 60)])
    after = c.position(1.0 + 59 * p8)
    assert after - before == pytest.approx(30 * 4 / 8, abs=0.05)
    with pytest.raises(ValueError, match="ppqn"):
        c.set_ppqn(5)


def test_noise_pulses_are_ignored_and_the_tempo_stays_in_range():
    c = external(ppqn=4)
    pulses(c, [1.0 + k * 0.001 for k in range(2000)])  # a 1 kHz "clock": 15000 BPM at 4 PPQN
    assert c.noise > 1900 and c.bpm <= 300.0
    pulses(c, [4.0 + k * 0.125 for k in range(16)])    # a real clock again: followed
    assert c.bpm == pytest.approx(120.0, rel=1e-3)
    c2 = external(ppqn=4)
    pulses(c2, [1.0 + k * 0.045 for k in range(40)])   # 333 BPM: held to 300
    assert c2.bpm == pytest.approx(300.0)


# --- MIDI -----------------------------------------------------------------------------------------
def midi() -> Clock:
    return make_clock(**{"clock.source": "midi"})


def test_midi_start_stop_continue():
    c = midi()
    tick = 60.0 / 120.0 / 24
    c.start(0.0)
    t = 0.01
    c.midi_clock(t)                     # the first clock after Start is step 0
    assert c.position(t) == 0.0 and c.time_of(0.0) == t
    for k in range(1, 25):
        c.midi_clock(t + k * tick)
    assert c.position(t + 24 * tick) == pytest.approx(4.0, abs=1e-6)
    c.stop(t + 24.5 * tick)
    stopped = c.position(t + 24.5 * tick)
    for k in range(25, 40):             # clocks while stopped do not move it
        c.midi_clock(t + k * tick)
    assert c.position(t + 40 * tick) == stopped
    c.continue_(t + 40.5 * tick)
    c.midi_clock(t + 41 * tick)         # continues where it stopped: the next clock = 25th
    assert c.position(t + 41 * tick) == pytest.approx(25 / 6, abs=0.02)
    c.midi_clock(t + 42 * tick)
    assert c.position(t + 42 * tick) == pytest.approx(26 / 6, abs=0.02)


def test_midi_song_position_then_continue():
    c = midi()
    tick = 60.0 / 120.0 / 24
    c.start(0.0)
    for k in range(12):
        c.midi_clock(0.01 + k * tick)
    c.stop(0.3)
    epoch = c.epoch
    c.song_position(0.4, 16)
    assert c.epoch == epoch + 1 and c.position(0.4) == 16.0
    c.continue_(0.5)
    c.midi_clock(0.6)
    assert c.position(0.6) == 16.0
    c.midi_clock(0.6 + tick)
    assert c.position(0.6 + tick) == pytest.approx(16 + 1 / 6)


def test_midi_clock_ignored_by_an_external_only_clock():
    c = external(ppqn=4)
    c.midi_clock(1.0)
    assert c.pulses == 0


# --- swing ----------------------------------------------------------------------------------------
def test_swing_delays_odd_sixteenths_only():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0, "swing": 66.0})
    c.start(0.0)
    step = 0.125
    assert c.time_of(1.0) == pytest.approx(2 * 0.66 * step)
    assert c.time_of(2.0) == pytest.approx(2 * step)
    assert c.time_of(3.0) == pytest.approx(2 * step + 2 * 0.66 * step)
    positions = [c.position(x) for x in np.linspace(0, 2, 400)]
    assert all(b >= a for a, b in zip(positions, positions[1:], strict=False))


@pytest.mark.parametrize("swing", [0.5, 0.6, 0.75])
def test_swing_warp_round_trip(swing):
    for p in np.linspace(-3, 9, 97):
        assert swing_unwarp(swing_warp(float(p), swing), swing) == pytest.approx(float(p))


def test_swing_change_keeps_musical_position():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0})
    c.start(0.0)
    p = c.position(0.3)
    c.set_swing(70.0, 0.3)
    assert c.position(0.3) == pytest.approx(p)
    assert c.position(0.31) > p


def test_switching_to_an_external_clock_holds_then_lands_on_the_nearest_pulse():
    c = make_clock(**{"clock.source": "internal", "tempo": 120.0, "clock.ppqn": 4})
    c.start(0.0)
    c.set_source("external", 0.51)                  # at step 4.08
    held = c.position(0.51)
    assert c.position(0.7) == held                  # no clock yet: hold
    c.pulse(0.75)                                   # lands on step 4 -> stays at 4.08
    c.pulse(0.875)
    assert held <= c.position(0.875) <= 5.0
    for k in range(2, 10):
        c.pulse(0.75 + 0.125 * k)
    assert c.position(0.75 + 0.125 * 9) == pytest.approx(13.0, abs=0.02)
    c.set_source("internal", 2.0)
    assert c.driver == "internal" and c.position(2.125) > c.position(2.0)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0.002, 0.6), st.sampled_from(["pulse", "pulse", "pulse",
                                                                  "reset", "ppqn", "stop"])),
                min_size=1, max_size=80),
       st.sampled_from([1, 2, 4, 8, 24, 48]))
def test_position_is_monotonic_and_bounded_under_any_pulse_train(steps, ppqn):
    c = external(ppqn=ppqn)
    t = 1.0
    epoch = c.epoch
    last = c.position(t)
    for gap, what in steps:
        for x in np.linspace(t, t + gap, 7, endpoint=False):
            pos = c.position(float(x))
            assert pos >= last - 1e-9
            last = pos
        t += gap
        if what == "pulse":
            c.pulse(t)
        elif what == "reset":
            c.reset(t)
        elif what == "ppqn":
            c.set_ppqn(24 if c.ppqn != 24 else 4, t)
        elif what == "stop":
            c.poll(t + 5.0)
        if c.epoch != epoch:
            epoch = c.epoch
            last = c.position(t)
        pos = c.position(t)
        assert pos >= last - 1e-9
        last = pos
        assert pos <= c._next_u + 1e-9    # never past the next expected edge


def test_reset_while_stopped_then_continue_starts_at_step_zero():
    c = make_clock(**{"clock.source": "auto", "tempo": 120.0, "clock.ppqn": 4})
    c.start(0.0)
    c.stop(1.0)
    c.reset(1.5)
    c.continue_(2.0)
    assert c.position(2.0) == 0.0 and c.position(2.125) == pytest.approx(1.0)
    c.pulse(2.25)                       # an external clock appears: it takes over on the grid
    assert c.position(2.25) == pytest.approx(2.0)


def test_late_reported_times_use_the_segment_they_fell_in():
    c = external(ppqn=48)
    period = 60.0 / 120.0 / 48
    for k in range(60):
        c.pulse(1.0 + k * period)
    last = 1.0 + 59 * period
    for back in (0.5, 2.5, 5.5):          # half a pulse .. several pulses ago
        t = last - back * period
        assert c.position(t) == pytest.approx((59 - back) / 12, abs=0.01)
