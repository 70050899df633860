"""A sequencer line whose cycle does not divide the 2-bar loop, on the shipped model (onnxruntime,
int8): the drums change at bar lines, as a drummer's do (issue 29, `generation.reencode`).

A 12-step line (`euclid:5:12`, a polymetric pattern every Eurorack sequencer makes) moves against
the 32-step loop, so the groove the engine captures changes at every onset, forever. Re-encoded
at every step (the old default), the loop played was stitched from a new pattern every few
steps; re-encoded at the bar line (the default now) each bar is one pattern. A groove knob still
takes effect at the next step."""

from __future__ import annotations

import pytest
from grooverack.config import Settings
from grooverack.engine.engine import Engine
from grooverack.model.runner import ModelRunner
from grooverack.voices import STEPS, STEPS_PER_BAR

STEP_S = 0.125  # 120 BPM
CYCLE = [s for s in range(12) if (s * 5) % 12 < 5]  # `euclid:5:12`


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return ModelRunner()  # the shipped model (int8) and its latent bank


def changes(runner: ModelRunner, loops: int = 4, **settings: object) -> list[int]:
    """The steps (from the second loop on) where the pattern playing is another one."""
    eng = Engine(Settings({"clock.source": "internal", "tempo": 120.0, "follow": 0.9,
                           **settings}), runner)
    eng.start(0.0)
    out, playing = [], None
    for s in range(loops * STEPS):
        if s % 12 in CYCLE:
            eng.onset(s * STEP_S + 0.001, velocity=0.5 + 0.1 * (s % 4))
        eng.advance((s + 0.4) * STEP_S)  # step s committed (at s - 0.5), step s + 1 not yet
        serial = eng.pattern.serial
        if s >= STEPS and serial != playing:
            out.append(s)
        playing = serial
    return out


def test_a_polymetric_line_changes_the_drums_only_at_bar_lines(runner):
    moved = changes(runner)
    assert moved, "the line changes the groove: the drums follow it"
    assert all(s % STEPS_PER_BAR == 0 for s in moved), moved
    # the old default stitched the loop: new patterns off the bar lines, many a loop
    stitched = changes(runner, **{"generation.reencode": "step"})
    off = [s for s in stitched if s % STEPS_PER_BAR]
    assert len(off) >= 6, stitched


def test_a_groove_knob_moves_the_drums_at_the_next_step(runner):
    eng = Engine(Settings({"clock.source": "internal", "tempo": 120.0, "follow": 1.0}), runner)
    eng.start(0.0)
    for s in range(3 * STEPS):
        if s % 12 in CYCLE:
            eng.onset(s * STEP_S + 0.001, velocity=0.3 + 0.2 * (s % 4))
        eng.advance((s + 0.6) * STEP_S)
    # a quiet moment for the line; the knob turned off a bar line
    knob_at = 3 * STEPS + 4
    eng.advance((knob_at - 0.9) * STEP_S)
    before = eng.pattern.serial
    eng.set_control("groove_velocity", 0.0)
    eng.advance((knob_at + 0.6) * STEP_S)
    assert eng.pattern.serial != before
