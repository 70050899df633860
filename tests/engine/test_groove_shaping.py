"""The input groove as a player shapes it (issue 19, item 6), on the real shipped model: groove
velocity and groove offset change the groove the encoder reads, memory forgets an onset after N
loops, and a first line shorter than a loop changes the drums within the first loop."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from grooverack.boards.board import load_board
from grooverack.config import CONTROLS, SCHEMA, Settings
from grooverack.engine.engine import Engine
from grooverack.engine.groove import bar_filled
from grooverack.errors import ConfigError
from grooverack.model.runner import ModelRunner
from grooverack.sim.sources import load_controls

STEP_S = 0.125  # 120 BPM


@pytest.fixture(scope="module")
def shipped() -> ModelRunner:
    return ModelRunner()


class Recording:
    """The shipped runner, keeping every groove the encoder was given."""

    def __init__(self, runner: ModelRunner) -> None:
        self._runner = runner
        self.grooves: list[np.ndarray] = []
        self.threads: list[str] = []

    def encode(self, groove):
        self.grooves.append(np.array(groove))
        self.threads.append(threading.current_thread().name)
        return self._runner.encode(groove)

    def encode_views(self, groove):  # the shipped model's two bar views (manifest bar_swap)
        self.grooves.append(np.array(groove))
        self.threads.append(threading.current_thread().name)
        return self._runner.encode_views(groove)

    def __getattr__(self, name):
        return getattr(self._runner, name)


def engine(runner, **values) -> Engine:
    base = {"clock.source": "internal", "tempo": 120.0, "uncertainty": 0.0}
    return Engine(Settings({**base, **values}), runner)


# a line with dynamics and timing: (step, velocity, offset in steps)
LINE = [(0, 1.0, 0.0), (3, 0.4, 0.2), (6, 0.7, -0.2), (8, 1.0, 0.1), (11, 0.3, 0.0),
        (14, 0.6, -0.1), (16, 1.0, 0.0), (19, 0.4, 0.2), (22, 0.7, -0.2), (24, 1.0, 0.1),
        (27, 0.3, 0.0), (30, 0.6, -0.1)]


def play(eng: Engine, steps: int, line=LINE, until_step: int | None = None) -> list:
    """Start and run `steps` steps, the input playing `line` (loop steps) up to `until_step`."""
    eng.start(0.0)
    onsets = sorted((loop * 32 + s + off, vel) for loop in range(steps // 32 + 1)
                    for s, vel, off in line)
    onsets = [(p, v) for p, v in onsets if 0 <= p < (until_step if until_step is not None
                                                        else steps)]
    events = []
    for s in range(steps):
        for p, v in [o for o in onsets if s - 0.5 <= o[0] < s + 0.5]:
            events += eng.advance(p * STEP_S)
            eng.onset(p * STEP_S, velocity=v)
        events += eng.advance((s + 0.5) * STEP_S)
    return events


def test_groove_velocity_and_offset_change_the_groove_the_model_reads(shipped):
    seen = {}
    for gv, go in ((1.0, 1.0), (0.25, 1.0), (1.0, 0.0), (1.0, 0.5)):
        rec = Recording(shipped)
        play(engine(rec, groove_velocity=gv, groove_offset=go), 40)
        seen[gv, go] = rec.grooves[-1]
    played = seen[1.0, 1.0]
    hits = played[:, 0] > 0
    assert hits.sum() == len(LINE)
    vel = played[hits, 1]
    assert vel.max() == pytest.approx(1.0) and vel.min() == pytest.approx(0.3)
    # groove velocity: the gain of each velocity's distance from the line's mean
    mean = vel.mean()
    assert np.allclose(seen[0.25, 1.0][hits, 1], mean + 0.25 * (vel - mean), atol=1e-6)
    assert np.ptp(seen[0.25, 1.0][hits, 1]) < np.ptp(vel)
    # groove offset: how much of the micro-timing is kept
    assert np.abs(played[hits, 2]).max() == pytest.approx(0.2, abs=1e-5)
    assert not seen[1.0, 0.0][:, 2].any()
    assert np.allclose(seen[1.0, 0.5][:, 2], 0.5 * played[:, 2], atol=1e-6)
    # hits themselves are never moved by either control
    for groove in seen.values():
        assert np.array_equal(groove[:, 0], played[:, 0])


def test_groove_controls_move_while_playing_and_change_the_drums(shipped):
    eng = engine(shipped, follow=1.0)
    play(eng, 64)
    first = eng.generator.last_pattern
    eng.set_control("groove_velocity", 0.0)
    eng.set_control("groove_offset", 0.0)
    assert eng.groove[eng.groove[:, 0] > 0, 1].std() == pytest.approx(0.0, abs=1e-6)
    assert not eng.groove[:, 2].any()
    eng.advance(66 * STEP_S)
    assert not eng.generator.last_pattern.same_as(first)


def test_groove_controls_are_panel_controls_everywhere(tmp_path):
    assert {"groove_velocity", "groove_offset"} <= set(CONTROLS)
    assert {"groove_velocity", "groove_offset"} <= set(load_board("reference").shift_pots.values())
    assert Settings()["midi.cc.groove_velocity"] and Settings()["midi.cc.groove_offset"]
    csv = tmp_path / "c.csv"
    csv.write_text("2,groove_velocity,0.3\n3,groove_offset,0\n")
    assert [(c.key, c.value) for c in load_controls(csv)] == [("groove_velocity", 0.3),
                                                              ("groove_offset", 0.0)]


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("groove_velocity", 1.5, "from 0 to 1"), ("groove_offset", -0.1, "from 0 to 1"),
    ("memory", 65, "from 0 to 64 loops"), ("memory", 2.5, "an integer")])
def test_groove_keys_are_validated_naming_key_value_and_range(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        Settings({key: value})
    text = str(err.value)
    assert repr(key) in text and repr(value) in text and allowed in text


@pytest.mark.parametrize("memory", [1, 3])
def test_memory_forgets_an_onset_after_that_many_loops(shipped, memory):
    eng = engine(shipped, memory=memory)
    eng.start(0.0)
    eng.advance(4 * STEP_S)
    eng.onset(4 * STEP_S, velocity=0.8)       # one onset at step 4 of the first loop
    for loop in range(1, memory + 1):
        eng.advance((loop * 32 + 3) * STEP_S)   # just before step 4 comes round again
        assert eng.groove[4, 0] == 1.0, loop     # still remembered
        eng.advance((loop * 32 + 4) * STEP_S)   # step 4 entered the loop-th time since
    assert eng.groove[4, 0] == 0.0               # forgotten after `memory` loops
    assert SCHEMA["memory"].default == 2


def test_memory_zero_remembers_and_record_and_clear_still_work(shipped):
    eng = engine(shipped, memory=0)
    eng.start(0.0)
    eng.advance(4 * STEP_S)
    eng.onset(4 * STEP_S, velocity=0.8)
    eng.advance(10 * 32 * STEP_S)
    assert eng.groove[4, 0] == 1.0
    eng.press("clear")
    assert not eng.groove[:, 0].any()
    assert eng.press("record") == "off"
    assert eng.onset(eng.position * STEP_S, velocity=0.8) is False


def test_bar_filled_copies_the_heard_bar_over_the_unheard_one():
    g = np.zeros((32, 3), dtype=np.float32)
    g[[0, 4, 10], 0] = 1.0
    g[[0, 4, 10], 1] = (1.0, 0.5, 0.7)
    filled = bar_filled(g, 0, 16)       # bar 1 heard, bar 2 not yet
    assert np.array_equal(filled[16:], g[:16]) and np.array_equal(filled[:16], g[:16])
    part = bar_filled(g, 4, 16)         # from step 4: steps 0..3 and 16..19 unheard
    assert part[0, 0] == 0.0 and part[20, 0] == 1.0 and part[26, 0] == 1.0
    assert not part[16:20].any()
    assert np.array_equal(bar_filled(g, 0, 32), g)
    assert not filled.flags.writeable


def test_a_one_bar_line_changes_the_drums_within_the_first_loop(shipped):
    one_bar = [o for o in LINE if o[0] < 16]
    silent = engine(shipped)
    quiet = play(silent, 32, line=[])
    rec = Recording(shipped)
    heard = engine(rec)
    events = play(heard, 32, line=one_bar, until_step=16)   # the line: bar 1 only, then nothing

    def bar2(evts):
        return [(round(e.time, 9), e.output, e.kind, round(e.value, 6)) for e in evts
                if e.kind in ("trigger", "velocity") and 15.5 * STEP_S <= e.time < 31.5 * STEP_S]

    assert bar2(events) != bar2(quiet)          # the drums follow it in bar 2 already
    assert rec.grooves, "the encoder read the line within the first loop"
    model_saw = rec.grooves[0]
    assert model_saw[:, 0].sum() == 2 * len(one_bar)       # the bar read as played twice
    assert np.array_equal(model_saw[16:], model_saw[:16])
    assert heard.pattern.info["groove_version"] > 0


def test_the_first_bar_is_handed_to_the_worker_not_computed_in_the_real_time_path(shipped):
    rec = Recording(shipped)
    eng = Engine(Settings({"clock.source": "internal", "tempo": 120.0}), rec, threaded=True)
    try:
        encoded_at_start = len(rec.grooves)
        play(eng, 17, line=[o for o in LINE if o[0] < 16])   # the bar line at 16 has passed
        assert eng.generator.wait_idle(5.0)
        eng.advance(20 * STEP_S)                              # swapped in at a later commit
        assert len(rec.grooves) > encoded_at_start
        assert set(rec.threads) == {"grooverack-generator"}  # the worker, not the caller
        assert eng.pattern.info["groove_version"] > 0
    finally:
        eng.close()
