"""The measures of the line benchmark (`bench_lines.py`, issue 29), as plain functions of hit
grids, so a test can check each on hand-made patterns.

A grid is `[loops, 32, 9]` bool: loop, 16th step of the 2-bar loop, voice (`VOICE_NAMES` order).
An onset grid is `[loops, 32]` bool: the line's onsets quantised to the 16th.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from grooverack.voices import NUM_VOICES, STEPS, STEPS_PER_BAR, VOICE_GROUPS, VOICE_NAMES

KICK, SNARE = VOICE_NAMES.index("kick"), VOICE_NAMES.index("snare")
LOW_VOICES = (VOICE_NAMES.index("low_tom"), VOICE_NAMES.index("mid_tom"))  # nearest the kick
BEAT_ONE = tuple(range(0, STEPS, STEPS_PER_BAR))  # step 0 of each bar of the loop
DOWNBEATS = tuple(s for bar in BEAT_ONE for s in (bar, bar + 8))  # beats 1 and 3
BACKBEAT = tuple(s for bar in BEAT_ONE for s in (bar + 4, bar + 12))  # beats 2 and 4
CELLS = STEPS * NUM_VOICES  # 288


def grid_from_steps(steps: Iterable[int], voices: Iterable[int], loops: int) -> np.ndarray:
    """Hits at absolute 16th steps (from the start of the render) and voices -> [loops, 32, 9];
    steps past the last loop are dropped."""
    grid = np.zeros((loops, STEPS, NUM_VOICES), bool)
    for step, voice in zip(steps, voices, strict=True):
        loop, pos = divmod(int(step), STEPS)
        if 0 <= loop < loops:
            grid[loop, pos, voice] = True
    return grid


def onset_grid(steps: Iterable[int], loops: int) -> np.ndarray:
    """Onsets at absolute 16th steps -> [loops, 32] bool."""
    grid = np.zeros((loops, STEPS), bool)
    for step in steps:
        loop, pos = divmod(int(step), STEPS)
        if 0 <= loop < loops:
            grid[loop, pos] = True
    return grid


def hits_per_loop(grids: np.ndarray) -> np.ndarray:
    """Mean hits per loop of each voice: [9]."""
    grids = np.asarray(grids, bool)
    return grids.sum(axis=1).mean(axis=0) if len(grids) else np.zeros(NUM_VOICES)


def realism_distance(hits: Sequence[float] | np.ndarray, real: Sequence[float] | np.ndarray
                     ) -> float:
    """Sum over the voices of |hits per loop - real| / real total hits per loop (0 = the real
    loops' means exactly)."""
    g, r = np.asarray(hits, float), np.asarray(real, float)
    return float(np.abs(g - r).sum() / r.sum())


def kick_on_one(grids: np.ndarray) -> tuple[int, int]:
    """(bars with a kick on beat 1, bars)."""
    g = np.asarray(grids, bool)[:, list(BEAT_ONE), KICK]
    return int(g.sum()), int(g.size)


def backbeat(grids: np.ndarray) -> tuple[int, int]:
    """(bars with a snare on both beat 2 and beat 4, bars)."""
    g = np.asarray(grids, bool)[:, :, SNARE].reshape(-1, STEPS_PER_BAR)
    return int((g[:, 4] & g[:, 12]).sum()), int(len(g))


def onsets_covered(grids: np.ndarray, onsets: np.ndarray) -> tuple[int, int]:
    """(line onsets with a drum hit of any voice on their step, line onsets)."""
    on = np.asarray(onsets, bool)
    any_hit = np.asarray(grids, bool).any(axis=2)
    return int((on & any_hit).sum()), int(on.sum())


def cells_changed(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over loops of the cells (of 288) that differ between two grids of the same loops."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float((a != b).reshape(len(a), -1).sum(axis=1).mean()) if len(a) else 0.0


def group_voices(group: str) -> tuple[int, ...]:
    return tuple(VOICE_NAMES.index(v) for v in VOICE_GROUPS[group])


def over_real(hits: Sequence[float] | np.ndarray, real: Sequence[float] | np.ndarray,
              removed: Iterable[int] = ()) -> tuple[float, int]:
    """(the largest hits per loop / real per-loop count over the voices not removed, that
    voice). A voice the real loops never play counts as 0.01 hits per loop."""
    g, r = np.asarray(hits, float), np.maximum(np.asarray(real, float), 0.01)
    keep = [v for v in range(NUM_VOICES) if v not in set(removed)]
    ratios = g[keep] / r[keep]
    i = int(np.argmax(ratios))
    return float(ratios[i]), keep[i]


def moved(before: np.ndarray, after: np.ndarray, voice: int, steps: Sequence[int],
          to: Iterable[int] | None = None) -> tuple[int, int]:
    """Of the hits of `voice` on `steps` in `before` (nothing removed), how many are taken by a
    hit in `after` (the voice's group removed) of a voice in `to` (default: any other voice)
    that `before` did not have on that cell: (taken, hits)."""
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    others = [v for v in (range(NUM_VOICES) if to is None else to) if v != voice]
    src = before[:, list(steps), voice]
    new = (after[:, list(steps)][:, :, others] & ~before[:, list(steps)][:, :, others]).any(axis=2)
    return int((src & new).sum()), int(src.sum())


def off_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """Every step of the loop not in `steps` (e.g. a snare's ghost notes: off the backbeat)."""
    return tuple(s for s in range(STEPS) if s not in set(steps))


def real_floor(real_grids: np.ndarray, real: Sequence[float] | np.ndarray, k: int,
               draws: int = 4000, seed: int = 0) -> float:
    """The mean realism distance of the mean of `k` loops drawn at random (seeded) from
    `real_grids`: what real drumming scores when a line gets k independent loops."""
    counts = np.asarray(real_grids, bool).sum(axis=1)  # [loops, 9]
    idx = np.random.default_rng(seed).integers(0, len(counts), (draws, k))
    g = counts[idx].mean(axis=1)
    r = np.asarray(real, float)
    return float((np.abs(g - r).sum(axis=1) / r.sum()).mean())


def bootstrap_interval(values: Sequence[float] | np.ndarray,
                       statistic: Callable[[np.ndarray], np.ndarray] | None = None,
                       resamples: int = 1000, level: float = 0.95, seed: int = 0
                       ) -> tuple[float, float]:
    """The percentile bootstrap interval of a statistic over rows (lines): `values` [n, ...] is
    resampled with replacement `resamples` times (seeded); `statistic` maps the resamples
    [resamples, n, ...] to [resamples] (default: the mean over the rows). -> (low, high) at
    `level` (0.95: the 2.5 % and 97.5 % quantiles)."""
    v = np.asarray(values, float)
    if len(v) == 0:
        raise ValueError("bootstrap_interval: no values")
    idx = np.random.default_rng(seed).integers(0, len(v), (resamples, len(v)))
    samples = v[idx]
    stats = samples.mean(axis=1) if statistic is None else np.asarray(statistic(samples), float)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
