"""The groove the engine stores is the steps the line was played on, under every clock source
(issue 29): auto, external, internal with a clock patched, MIDI clock; at 1/4/24/48 PPQN. And
`auto` plays what `external` plays once the clock is there.

These check the capture itself (`Engine.groove`), not only trigger times: a clock that takes over
one pulse late shifts every onset a step early while the outputs still tick on the edges."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from grooverack.config import Settings, make_settings
from grooverack.engine.engine import Engine
from grooverack.runtime.serve import make_engine
from grooverack.sim import session
from grooverack.sim.patch import OutputRecorder
from grooverack.voices import STEPS


def render(source: str, input_: str, ppqn: int, board: str, *, mode: str = "rules",
           bars: int = 6, bpm: float = 120.0) -> tuple[np.ndarray, list, set[int]]:
    """Render `input_` with a clock + reset patched; (stored groove, output rows, line steps)."""
    args = argparse.Namespace(input=input_, bpm=bpm, bars=bars, controls=None, clock=True,
                              board=board, quiet=True, seed=0, config=None,
                              overrides=[f"clock.source={source}", f"clock.ppqn={ppqn}",
                                         f"generation.mode={mode}"])
    settings = make_settings(args)
    patch = session.make_patch(args, settings)
    engine = make_engine(settings, threaded=False)
    recorder = OutputRecorder()
    session.render(patch, session.make_board(settings, recorder, engine, board))
    line = {int(round(t / patch.step_seconds)) % STEPS for t in patch.gate_rises()}
    return np.array(engine.groove), recorder.rows, line


def steps_of(groove: np.ndarray) -> set[int]:
    return {int(s) for s in np.flatnonzero(groove[:, 0] > 0)}


@pytest.mark.parametrize("ppqn", [1, 4, 24, 48])
@pytest.mark.parametrize("source", ["auto", "external", "internal"])
@pytest.mark.parametrize("input_", ["line", "euclid:7:16"])
def test_the_stored_groove_is_the_lines_steps_with_a_clock_patched(source, ppqn, input_):
    groove, _rows, line = render(source, input_, ppqn, "direct")
    assert steps_of(groove) == line
    if input_.startswith("euclid"):   # on the grid (the built-in line has ratchets)
        assert np.abs(groove[groove[:, 0] > 0, 2]).max() < 0.02


@pytest.mark.parametrize("source", ["auto", "external", "internal"])
def test_the_stored_groove_is_the_lines_steps_through_the_emulated_panel(source):
    """The same through the sim board: jack volts -> emulated ADC/GPIO -> the Pi's panel code."""
    groove, _rows, line = render(source, "line", 4, "sim")
    assert steps_of(groove) == line


@pytest.mark.parametrize("ppqn", [4, 24])
def test_auto_plays_what_external_plays_once_the_clock_is_there(ppqn):
    """The model on both (int8, seeded): every output write the same."""
    _g, auto, _ = render("auto", "line", ppqn, "direct", mode="model")
    _g, external, _ = render("external", "line", ppqn, "direct", mode="model")
    assert auto == external


def _midi_engine(runner, source: str) -> Engine:
    return Engine(Settings({"clock.source": source, "follow": 0.0, "tempo": 120.0,
                            "generation.mode": "rules"}), runner)


@pytest.mark.parametrize("source", ["midi", "auto"])
@pytest.mark.parametrize("bpm", [97.0, 120.0])
def test_midi_clock_captures_notes_on_their_steps(fake_runner, source, bpm):
    """MIDI Start + 24-PPQN clock, note-ons on some clocks (each after its clock, as a DAW sends
    them): the groove holds exactly those steps."""
    eng = _midi_engine(fake_runner, source)
    line = {0, 3, 4, 7, 10, 12, 13, 19, 22, 26, 31}
    tick = 60.0 / bpm / 24
    eng.start(0.5, midi=True)
    t = 0.5 + 0.001
    for k in range(24 * 8 * 2 + 1):       # two loops of clocks
        eng.midi_clock(t)
        if k % 6 == 0 and (k // 6) % STEPS in line:
            eng.onset(t + 0.0002, velocity=0.8)
        eng.advance(t + 0.001)
        t += tick
    assert steps_of(np.array(eng.groove)) == line
