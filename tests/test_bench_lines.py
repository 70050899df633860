"""The line benchmark's measures (`benchmarks/line_metrics.py`, issue 29) on hand-made patterns:
each computes what the benchmark's table says it does. The benchmark's corpus of lines is not
read here (it is kept apart from the tests)."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES

from benchmarks import line_metrics as lm  # noqa: E402

KICK, SNARE, HAT = 0, 1, 2
LOW_TOM, HIGH_TOM = VOICE_NAMES.index("low_tom"), VOICE_NAMES.index("high_tom")


def rock_loop() -> np.ndarray:
    """One 2-bar loop: kick on 1 and 3, snare on 2 and 4, closed hat on every 8th."""
    g = np.zeros((STEPS, NUM_VOICES), bool)
    for bar in (0, 16):
        g[[bar, bar + 8], KICK] = True
        g[[bar + 4, bar + 12], SNARE] = True
        g[bar:bar + 16:2, HAT] = True
    return g


def test_realism_distance_of_the_real_means_is_zero_and_counts_every_voice() -> None:
    real = np.array([7.6, 10.4, 10.2, 1.3, 0.9, 0.5, 1.3, 0.6, 5.3])
    assert lm.realism_distance(real, real) == 0.0
    # two kicks too many and the ride missing: (2 + 5.3) / 38.1
    hits = real.copy()
    hits[KICK] += 2
    hits[8] = 0.0
    assert lm.realism_distance(hits, real) == pytest.approx(7.3 / real.sum())


def test_hits_per_loop_kick_on_one_and_backbeat_of_a_rock_beat() -> None:
    loops = np.stack([rock_loop(), rock_loop()])
    assert lm.hits_per_loop(loops)[:3].tolist() == [4, 4, 16]
    assert lm.kick_on_one(loops) == (4, 4)
    assert lm.backbeat(loops) == (4, 4)
    loops[1, 16, KICK] = False  # the second loop's second bar loses its downbeat kick
    loops[0, 12, SNARE] = False  # the first bar of the first loop loses beat 4
    assert lm.kick_on_one(loops) == (3, 4)
    assert lm.backbeat(loops) == (3, 4)


def test_grid_from_steps_places_hits_in_their_loop_and_drops_the_rest() -> None:
    grid = lm.grid_from_steps([0, 33, 63, 64, 200], [KICK, SNARE, HAT, KICK, KICK], loops=2)
    assert grid.shape == (2, STEPS, NUM_VOICES)
    assert grid[0, 0, KICK] and grid[1, 1, SNARE] and grid[1, 31, HAT]
    assert grid.sum() == 3
    assert lm.onset_grid([1, 34, 99], loops=2).sum() == 2


def test_onsets_covered_counts_onsets_with_any_voice_on_their_step() -> None:
    loops = np.stack([rock_loop()])
    onsets = np.zeros((1, STEPS), bool)
    onsets[0, [0, 2, 3, 5]] = True  # 0: kick + hat, 2: hat, 3 and 5: nothing
    assert lm.onsets_covered(loops, onsets) == (2, 4)


def test_cells_changed_counts_flipped_cells_per_loop() -> None:
    a = np.stack([rock_loop(), rock_loop()])
    b = a.copy()
    b[0, 3, HIGH_TOM] = True  # one added
    b[0, 0, KICK] = False  # one removed
    b[1, 4, SNARE] = False  # one removed in the other loop
    assert lm.cells_changed(a, a) == 0.0
    assert lm.cells_changed(a, b) == pytest.approx(1.5)  # (2 + 1) / 2 loops


def test_over_real_skips_the_removed_voices() -> None:
    real = np.array([7.6, 10.4, 10.2, 1.3, 0.9, 0.5, 1.3, 0.6, 5.3])
    hits = real.copy()
    hits[KICK] = 30.0  # removed: not counted
    hits[HIGH_TOM] = 1.3 * 3  # three times the real high tom
    ratio, voice = lm.over_real(hits, real, removed=lm.group_voices("kick"))
    assert (ratio, voice) == (pytest.approx(3.0), HIGH_TOM)
    assert lm.over_real(real, real) == (pytest.approx(1.0), 0)


def test_moved_counts_the_removed_voices_hits_taken_by_a_new_hit() -> None:
    before = np.stack([rock_loop()])
    after = before.copy()
    after[..., KICK] = False
    after[0, 0, LOW_TOM] = True  # the low tom takes beat 1 of bar 1 only
    assert lm.moved(before, after, KICK, lm.DOWNBEATS, lm.LOW_VOICES) == (1, 4)
    # a snare's backbeat taken by a hat that was already there is not moved
    after = before.copy()
    after[..., SNARE] = False
    assert lm.moved(before, after, SNARE, lm.BACKBEAT) == (0, 4)
    after[0, 4, HIGH_TOM] = True
    assert lm.moved(before, after, SNARE, lm.BACKBEAT) == (1, 4)
    assert lm.moved(before, after, SNARE, lm.off_steps(lm.BACKBEAT)) == (0, 0)


def test_real_floor_is_zero_for_identical_loops_and_shrinks_with_more_loops() -> None:
    same = np.stack([rock_loop()] * 10)
    assert lm.real_floor(same, lm.hits_per_loop(same), 1) == 0.0
    rng = np.random.default_rng(1)
    varied = rng.random((200, STEPS, NUM_VOICES)) < 0.1
    ref = lm.hits_per_loop(varied)
    assert lm.real_floor(varied, ref, 4) < lm.real_floor(varied, ref, 1)


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_lines() -> None:
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.3, 0.1, 20), rng.normal(0.3, 0.1, 500)
    lo, hi = lm.bootstrap_interval(few)
    assert lo < few.mean() < hi
    lo_m, hi_m = lm.bootstrap_interval(many)
    assert lo_m < many.mean() < hi_m
    assert hi_m - lo_m < (hi - lo) / 2  # 25x the lines: about a fifth of the width
    # the normal approximation: the 95 % interval is about the mean +- 1.96 standard errors
    se = many.std() / np.sqrt(len(many))
    assert hi_m - lo_m == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert lm.bootstrap_interval([0.4] * 7) == (pytest.approx(0.4), pytest.approx(0.4))
    assert lm.bootstrap_interval(few, seed=3) == lm.bootstrap_interval(few, seed=3)


def test_bootstrap_interval_of_another_statistic_resamples_whole_rows() -> None:
    rows = np.array([[1.0, 5.0], [3.0, 1.0]])  # two lines, two steps
    lo, hi = lm.bootstrap_interval(rows, lambda s: s.mean(axis=1).max(axis=1))
    # every resample is (line 0 twice: max 5), (line 1 twice: max 3) or one of each (max 3)
    assert (lo, hi) == (3.0, 5.0)
    with pytest.raises(ValueError):
        lm.bootstrap_interval([])


def test_generated_lines_are_what_the_corpus_says() -> None:
    """The corpus' generators (not the corpus): an acid line is one 16-step pattern played twice,
    a slide holds the gate into the next step (no onset there); a stage line fills 2 bars."""
    import random

    from benchmarks.line_corpus import acid_line, stage_line

    for seed in range(20):
        acid = acid_line(random.Random(seed))
        first = [(s, ln, n, v) for s, ln, n, v in acid if s < 16]
        assert [(s + 16, ln, n, v) for s, ln, n, v in first] == [a for a in acid if a[0] >= 16]
        for (s, ln, _, _), nxt in zip(acid, acid[1:], strict=False):
            assert s == int(s) and s + ln <= nxt[0]  # a slid-over step starts no gate
        stage = stage_line(random.Random(seed))
        assert all(0 <= s < 32 and 0 < ln <= 32 for s, ln, _, _ in stage)
        assert all(a[0] < b[0] for a, b in zip(stage, stage[1:], strict=False))


def test_follow_intervals_hold_each_measure_and_reach_the_table() -> None:
    """The benchmark's summary: bootstrap intervals over lines around each measure's mean, shown
    in the intervals table."""
    from benchmarks import bench_lines as bl

    ref = np.array([7.6, 10.4, 10.2, 1.3, 0.9, 0.5, 1.3, 0.6, 5.3])
    rng = np.random.default_rng(2)
    voices = ref * rng.uniform(0.7, 1.3, (30, len(ref)))
    per_line = {f"l{i}": {"distance": lm.realism_distance(v, ref), "kick_on_one": 1.0,
                          "backbeat": float(i % 2), "covered": 0.8 + 0.01 * (i % 5)}
                for i, v in enumerate(voices)}
    iv = bl.follow_intervals(per_line, voices, ref)
    dist = np.mean([p["distance"] for p in per_line.values()])
    assert iv["distance_mean"][0] < dist < iv["distance_mean"][1]
    of_mean = lm.realism_distance(voices.mean(axis=0), ref)
    assert iv["distance_of_mean"][0] <= of_mean <= iv["distance_of_mean"][1]
    assert iv["kick_on_one"] == [1.0, 1.0]
    assert iv["backbeat"][0] < 0.5 < iv["backbeat"][1]
    rows = bl.markdown_intervals({"lines": list(per_line)}, {"follow": {"0.5": {
        "intervals": iv, "distance_mean": dist, "distance_worst": 0.3,
        "distance_worst_line": "l0", "distance_of_mean": of_mean, "kick_on_one": 1.0,
        "backbeat": 0.5, "covered": 0.82}}})
    assert rows[-1].startswith("| 0.5 | ") and "1.00 [1.00, 1.00]" in rows[-1]
