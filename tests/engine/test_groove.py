"""Groove capture (steps, offsets, louder wins, memory, record/overdub/off) and pitch -> velocity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.engine.groove import GrooveCapture, PitchToVelocity, split_position
from hypothesis import given, settings
from hypothesis import strategies as st

positions = st.floats(min_value=-0.5, max_value=31.49, allow_nan=False)
velocities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
onsets = st.lists(st.tuples(positions, velocities), min_size=1, max_size=40)


def capture(**values) -> GrooveCapture:
    c = GrooveCapture(Settings({"record": "overdub", "memory": 0, **values}))
    c.rebase(-0.5)
    return c


@given(st.floats(min_value=-1000, max_value=1000, allow_nan=False))
def test_split_position_nearest_step_and_offset_range(p):
    step, offset = split_position(p)
    assert 0 <= step < 32
    assert -0.5 <= offset < 0.5
    assert (step + offset - p) % 32 == pytest.approx(0.0, abs=1e-6) or \
        (step + offset - p) % 32 == pytest.approx(32.0, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(onsets)
def test_capture_steps_offsets_and_louder_wins(played):
    c = capture()
    for p, v in sorted(played):
        c.add(p, v)
    g = c.groove
    assert g.shape == (32, 3) and g.dtype == np.float32
    expect: dict[int, tuple[float, float]] = {}
    for p, v in sorted(played):
        step, offset = split_position(p)
        # louder as the groove stores velocities (float32: 1e-300 and 0.0 are a tie, first wins)
        if step not in expect or np.float32(v) > np.float32(expect[step][0]):
            expect[step] = (v, offset)
    assert set(np.nonzero(g[:, 0])[0].tolist()) == set(expect)
    for step, (v, offset) in expect.items():
        assert g[step, 1] == pytest.approx(v, abs=1e-6)
        assert g[step, 2] == pytest.approx(offset, abs=1e-6)
    assert np.all((g[:, 2] >= -0.5) & (g[:, 2] < 0.5))


@settings(max_examples=100, deadline=None)
@given(onsets, st.floats(0, 1), st.floats(0, 1))
def test_amounts_keep_values_in_range(played, gv, go):
    c = capture(groove_velocity=gv, groove_offset=go)
    for p, v in sorted(played):
        c.add(p, v)
    g = c.groove
    raw = c.raw()
    hit = g[:, 0] > 0
    assert np.all((g[:, 1] >= 0) & (g[:, 1] <= 1))
    assert np.allclose(g[hit, 2], go * raw[hit, 2], atol=1e-6)
    mean = raw[hit, 1].mean()
    assert np.allclose(g[hit, 1], mean + gv * (raw[hit, 1] - mean), atol=1e-5)


def test_flat_amounts():
    c = capture(groove_velocity=0.0, groove_offset=0.0)
    c.add(0.2, 0.2)
    c.add(4.0, 1.0)
    assert c.groove[0, 1] == pytest.approx(0.6) and c.groove[4, 1] == pytest.approx(0.6)
    assert np.all(c.groove[:, 2] == 0.0)
    c.set_amounts(velocity=1.0, offset=1.0)
    assert c.groove[0, 1] == pytest.approx(0.2) and c.groove[0, 2] == pytest.approx(0.2)


def play_loops(c: GrooveCapture, start: float, loops: float, step: float = 0.25) -> float:
    end = start + loops * 32
    p = start
    while p < end:
        p = min(p + step, end)
        c.advance(p)
    return end


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=31))
def test_memory_expires_after_n_loops(memory, step):
    c = capture(memory=memory)
    c.add(step + 0.1, 0.9)
    pos = step + 0.1
    for _ in range(memory - 1):
        pos = play_loops(c, pos, 1)
        assert c.groove[step, 0] == 1.0
    play_loops(c, pos, 1)            # the playhead enters the step for the memory-th time again
    assert c.groove[step, 0] == 0.0


def test_memory_zero_never_expires():
    c = capture(memory=0)
    c.add(3.0, 0.5)
    play_loops(c, 3.0, 20)
    assert c.groove[3, 0] == 1.0


def test_record_replaces_each_pass_overdub_accumulates():
    for mode, expect in (("record", {8, 12}), ("overdub", {0, 4, 8, 12})):
        c = capture(record=mode, memory=4)
        for p in (0.0, 4.0):          # pass 1
            c.add(p, 0.8)
        play_loops(c, 4.0, 1 - 4 / 32)  # to the end of pass 1
        for p in (40.0, 44.0):        # pass 2: steps 8 and 12
            c.add(p, 0.8)
        play_loops(c, 44.0, 19 / 32)  # to the end of pass 2
        assert set(np.nonzero(c.groove[:, 0])[0].tolist()) == expect, mode


def test_record_keeps_the_previous_pass_ahead_of_the_playhead():
    c = capture(record="record")
    c.add(20.0, 0.8)
    play_loops(c, 20.0, 0.5)          # next pass, step 4: step 20 not reached yet
    assert c.groove[20, 0] == 1.0
    play_loops(c, 36.0, 17 / 32)      # past step 20 of the new pass (53) without an onset
    assert c.groove[20, 0] == 0.0


def test_off_ignores_onsets_and_freezes():
    c = capture(record="overdub", memory=1)
    c.add(2.0, 0.7)
    c.set_mode("off")
    assert c.add(6.0, 0.7) is False
    play_loops(c, 6.0, 3)
    assert np.nonzero(c.groove[:, 0])[0].tolist() == [2]


def test_record_button_cycles_and_clear():
    c = capture(record="record")
    assert [c.cycle_mode() for _ in range(3)] == ["overdub", "off", "record"]
    c.add(1.0, 1.0)
    version = c.version
    c.clear()
    assert not c.groove.any() and c.version == version + 1
    with pytest.raises(ValueError, match="record mode"):
        c.set_mode("loop")


def test_version_changes_only_with_the_groove():
    c = capture()
    v0 = c.version
    c.add(1.0, 0.5)
    assert c.version == v0 + 1
    c.add(1.1, 0.4)                   # quieter on the same step: the groove is unchanged
    assert c.version == v0 + 1
    c.add(1.1, 0.9)
    assert c.version == v0 + 2


def test_reset_starts_a_new_pass():
    c = capture(record="record")
    c.add(0.0, 0.9)
    c.advance(10.0)
    c.rebase(0.0)                     # reset: step 0 is entered afresh
    assert c.groove[0, 0] == 0.0


# --- pitch -> velocity ---------------------------------------------------------------------------
def p2v(**values) -> PitchToVelocity:
    return PitchToVelocity(Settings({f"input.{k}": v for k, v in values.items()}))


def test_window_mode_maps_and_clamps():
    m = p2v(velocity_mode="window", pitch_low=0.0, pitch_high=2.0, velocity_low=0.2,
            velocity_high=1.0)
    assert m.velocity(0.0) == pytest.approx(0.2)
    assert m.velocity(1.0) == pytest.approx(0.6)
    assert m.velocity(2.0) == pytest.approx(1.0)
    assert m.velocity(-3.0) == pytest.approx(0.2) and m.velocity(7.0) == pytest.approx(1.0)


@given(st.lists(st.integers(min_value=0, max_value=24), min_size=2, max_size=16),
       st.integers(min_value=-3, max_value=4))
def test_auto_mode_spreads_any_octave(semitones, octave):
    a = p2v(velocity_mode="auto", velocity_low=0.3, velocity_high=1.0, auto_notes=16)
    b = p2v(velocity_mode="auto", velocity_low=0.3, velocity_high=1.0, auto_notes=16)
    va = [a.velocity(s / 12.0) for s in semitones]
    vb = [b.velocity(s / 12.0 + octave) for s in semitones]
    assert va == pytest.approx(vb, abs=1e-9)          # the octave does not matter
    assert all(0.3 - 1e-9 <= v <= 1.0 + 1e-9 for v in va)
    if len(set(semitones)) > 1:                        # the highest note so far is loudest
        top = max(semitones)
        first_top = semitones.index(top)
        assert va[first_top] == pytest.approx(1.0) or semitones[:first_top] == []


def test_auto_mode_single_pitch_is_mid_range():
    m = p2v(velocity_mode="auto", velocity_low=0.2, velocity_high=1.0)
    assert m.velocity(1.5) == pytest.approx(0.6)


def test_fixed_cv_and_gate_only():
    assert p2v(velocity_mode="fixed", fixed_velocity=0.7).velocity(3.0) == 0.7
    cv = p2v(velocity_mode="cv", velocity_cv_volts=5.0)
    assert cv.velocity(2.5) == pytest.approx(0.5)
    assert cv.velocity(8.0) == 1.0 and cv.velocity(-1.0) == 0.0
    assert p2v(velocity_mode="window", fixed_velocity=0.4).velocity(None) == 0.4
    assert math.isfinite(p2v(velocity_mode="auto").velocity(0.0))
