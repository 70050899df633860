"""A sequencer line with the kick or the snare muted, on the shipped model (onnxruntime, int8):
the beat a drummer keeps when a drum is taken away (issue 29 item 4).

Removed kick: each bar's one went to the low tom and beat 3 was dropped wherever no low voice had
room in the style's budget (at `any` and rock, 0.9 and 0.7 low toms a real loop, room for 1): the
low end held 2 of a loop's 4 downbeats. Now beats 1 and 3 of each bar carry the low or mid tom.

Removed snare: the backbeat went to the stand-ins (high, mid, low tom, open hat) only where the
style's 1.5 x budget had room, a beat split over whichever had some: funk's toms (0.24 / 0.20 /
0.33 a real loop) have none, so its open hat took beat 4 and beat 2 was dropped; `any` has room
for three of the four hits, spread over three drums. Now each beat (4, then 2) goes to one
stand-in in every bar, over its budget where none has room.

Either way the moved beats are the only hits over 1.5 x the style's real count: the re-voiced
ghost notes and fills are not piled on the stand-ins."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.engine.engine import Engine
from grooverack.model.kit import revoice_budgets
from grooverack.model.runner import ModelRunner
from grooverack.voices import NUM_VOICES, STEPS, STEPS_PER_BAR, VOICE_NAMES

V = {name: i for i, name in enumerate(VOICE_NAMES)}
BARS = range(0, STEPS, STEPS_PER_BAR)
BEAT = STEPS_PER_BAR // 4
LOW = [V["low_tom"], V["mid_tom"]]
DOWNBEATS = [bar + beat for bar in BARS for beat in (0, 2 * BEAT)]        # beats 1 and 3
STAND_INS = [V["high_tom"], V["mid_tom"], V["low_tom"], V["open_hat"]]
BACKBEAT_BEATS = (BEAT, 3 * BEAT)                                          # beats 2 and 4
BACKBEAT = [bar + beat for bar in BARS for beat in BACKBEAT_BEATS]
STEP_S = 0.125  # 120 BPM
EUCLID = [s for s in range(16) if (s * 7) % 16 < 7]  # `euclid:7:16`, a line no drummer plays


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    runner = ModelRunner()  # the shipped model (int8) and its latent bank
    if not runner.removal_groups:
        pytest.skip("the shipped model has no voice redistribution")
    return runner


def muted(runner: ModelRunner, group: str, genre: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The pattern the engine plays after two loops of `euclid:7:16` with `group` muted (its
    mute button: the group removed), and the style's real hits per loop."""
    eng = Engine(Settings({"clock.source": "internal", "tempo": 120.0, "genre": genre,
                           "generation.seed": seed}), runner)
    eng.start(0.0)
    assert eng.press(f"mute_{group}") is True
    for s in range(2 * STEPS):
        if s % 16 in EUCLID:
            eng.onset(s * STEP_S + 0.001, velocity=0.4 + 0.1 * (s % 5))
        eng.advance((s + 1) * STEP_S)
    assert not eng.pattern.hits[:, V[group]].any()
    real = eng.generator._real_hits(runner.genres.index(genre))
    assert real is not None
    return eng.pattern.hits, real


def over_budget_only_on(hits: np.ndarray, real: np.ndarray, steps: list[int],
                        voices: list[int]) -> None:
    """Every hit but `voices` on `steps` within 1.5 x the style's real count a loop."""
    rest = hits.copy()
    rest[steps] &= ~np.isin(np.arange(NUM_VOICES), voices)
    most = revoice_budgets(real, np.full(NUM_VOICES, 0.5))
    assert (rest.sum(axis=0) <= most).all(), (rest.sum(axis=0), most)


@pytest.mark.parametrize("genre", ["any", "rock"])
def test_a_removed_kick_keeps_the_low_end_on_every_downbeat(runner, genre):
    for seed in range(2):
        hits, real = muted(runner, "kick", genre, seed)
        on_low = hits[DOWNBEATS][:, LOW]
        assert on_low.any(axis=1).all(), (genre, seed, on_low.astype(int).tolist())
        assert (on_low.sum(axis=1) == 1).all()             # one drum each, never both toms
        over_budget_only_on(hits, real, DOWNBEATS, LOW)


@pytest.mark.parametrize("genre", ["any", "funk"])
def test_a_removed_snare_keeps_the_backbeat_on_one_drum_and_only_it_over_the_budget(runner,
                                                                                      genre):
    for seed in range(2):
        hits, real = muted(runner, "snare", genre, seed)
        on = hits[BACKBEAT][:, STAND_INS]
        assert on.any(axis=1).all(), (genre, seed, on.astype(int).tolist())  # all of beats 2, 4
        for beat in BACKBEAT_BEATS:                     # each beat on the same drum every bar
            bars = hits[[bar + beat for bar in BARS]][:, STAND_INS]
            assert (bars == bars[0]).all(), (genre, seed, beat, bars.astype(int).tolist())
        over_budget_only_on(hits, real, BACKBEAT, STAND_INS)
