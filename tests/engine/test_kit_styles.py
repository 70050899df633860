"""A style's kit with a sequencer line, on the shipped model (onnxruntime, int8): issue 29 item 5.

With `generation.kit_floor` 0.75 alone (rounded to the nearest hit, the toms free, the budget
1.5 x the style's real count at follow 0 and 1.25 x at 0.5) the module's mean over loops sat
0.1-0.25 (of the style's real hits a loop) from the style's real per-voice means: snares and
hats over at follow 0 and 0.5, the toms, crash and open hat under (a style's 0.4 crashes a loop
rounded to none), and per style the module drifted from the style's held-out loops further than
the style's own train loops do. The shipped kit (floor 0.9, the toms' floor 0.75, the budget 1.1 x
at follow 0, every count rounded at random so a voice averages its share over loops) keeps the
mean over loops within a few hundredths of the real means."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.config import SCHEMA
from grooverack.controls import GenerationControls
from grooverack.engine.generator import Generator, Request
from grooverack.model.kit import budgets, floors
from grooverack.model.runner import ModelRunner
from grooverack.voices import VOICE_NAMES

TOMS = [VOICE_NAMES.index(v) for v in ("low_tom", "mid_tom", "high_tom")]
SEEDS = range(3)
LOOPS = range(8)


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return ModelRunner()  # the shipped model (int8) and its latent bank


def line() -> np.ndarray:
    """`euclid:5:16` twice, as the engine stores a line: onset, velocity (the pitch's), offset 0."""
    steps = [s for s in range(16) if (s * 5) % 16 < 5]
    g = np.zeros((32, 3), np.float32)
    for i, s in enumerate(steps + [s + 16 for s in steps]):
        g[s] = (1.0, 0.4 + 0.15 * (i % 4), 0.0)
    return g


def mean_counts(runner: ModelRunner, style: str, follow: float, **kit: float | bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """(the style's real hits a loop, the module's mean hits a loop over seeds and loops)."""
    genre = runner.genres.index(style)
    counts = []
    real = None
    for seed in SEEDS:
        gen = Generator(runner, seed=seed)
        real = gen._real_hits(genre)
        for loop in LOOPS:
            c = GenerationControls(follow=follow, seed=seed, genre=style, **kit)  # type: ignore[arg-type]
            counts.append(gen.generate(Request(
                controls=c, z_a=gen.z_a, z_b=gen.z_b, groove=line(), groove_version=1,
                serial=1, genre=genre, variation=loop)).hits.sum(0))
    assert real is not None
    return np.asarray(real, np.float64), np.mean(counts, axis=0)


def distance(counts: np.ndarray, real: np.ndarray) -> float:
    return float(np.abs(counts - real).sum() / real.sum())


BEFORE = {"kit_floor": 0.75, "kit_cap_ab": 0.5, "kit_floor_fills": 0.0, "kit_random_round": False}
MEASURED = {"kit_floor": 0.9, "kit_cap_ab": 0.1, "kit_floor_fills": 0.75, "kit_random_round": True}


def test_the_defaults_are_the_kit_before_the_measured_one():
    # not made the default: the toms' floor puts a tom in every loop (real loops: half), the
    # step from follow 0 to 0.1 went over 8 cells on test (benchmarks/README.md)
    for key, value in BEFORE.items():
        assert SCHEMA[f"generation.{key}"].default == value


@pytest.mark.parametrize("style", ["latin", "funk"])
def test_the_mean_over_loops_sits_on_the_styles_real_means(runner, style):
    for follow in (0.0, 0.5, 0.9):
        real, now = mean_counts(runner, style, follow, **MEASURED)
        _, before = mean_counts(runner, style, follow, **BEFORE)
        assert distance(now, real) <= 0.09, (style, follow, now - real)
        assert distance(now, real) < distance(before, real), (style, follow, now, before)
        # the toms (fills) play about their share over loops, none of them left out
        assert (now[TOMS] >= 0.5 * real[TOMS]).all(), (style, follow, now[TOMS], real[TOMS])
    # before: a line's latin drummer played under half the toms at follow 0.9
    real, before = mean_counts(runner, "latin", 0.9, **BEFORE)
    assert before[TOMS].sum() < 0.7 * real[TOMS].sum()


def test_random_rounding_averages_the_share_and_stays_within_one_hit():
    real = np.array([7.6, 10.4, 10.2, 1.3, 0.9, 0.5, 1.3, 0.6, 5.3])
    half = np.full(9, 0.5)
    draws = np.random.default_rng(0).random((4000, 9))
    low = np.array([floors(real, half, 0.9, d) for d in draws])
    high = np.array([budgets(real, half, 1.1, d) for d in draws])
    assert np.allclose(low.mean(0), 0.9 * real, atol=0.03)
    assert (np.abs(low - 0.9 * real) < 1.0).all()
    assert (high >= low).all()
    assert np.allclose(high.mean(0), np.maximum(1.1 * real, 1.0), atol=0.05)
    # without a draw: the nearest count for the floor (0.45 mid toms: none), up for the budget
    assert floors(real, half, 0.9).tolist() == [7, 9, 9, 1, 1, 0, 1, 1, 5]
    assert budgets(real, half, 1.1).tolist() == [9, 12, 12, 2, 1, 1, 2, 1, 6]
