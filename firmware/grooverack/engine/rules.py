"""Rule patterns: what the module plays without the model, and what a fill does to the controls.

Played when the model is missing, damaged or fails to load (the fallback) and when
`generation.mode = "rules"` is chosen. Each voice is a Euclidean rhythm (its hits spread as
evenly as they go over the bar, rotated to where the voice belongs: snare on 2 and 4, open hat
on the last off-beat), its number of hits per bar set by the same effective density as the
model's (0 = silent, 0.5 = the voice's usual count, 1 = its busiest), so the density knob, the
per-voice densities, mutes, `generation.max_count` and the fill gate work in both modes.
Velocities follow the beat (Grids-like accents: beats, then 8ths, then 16ths); uncertainty jitters
them and moves a few hits, drawn from the request's seed and variation (repeatable).

`fill_controls` is the one definition of a fill, for the model and the rules alike: every
voice's density raised by FILL_DENSITY, toms and crash at least FILL_VOICE_FLOOR (they may play),
uncertainty raised by FILL_UNCERTAINTY: the model's own busier pattern, not a written roll.

numpy only, no I/O.
"""

from __future__ import annotations

import numpy as np

from grooverack.voices import NUM_VOICES, STEPS, STEPS_PER_BAR, VOICE_NAMES

FILL_DENSITY = 0.2       # added to every voice's effective density during a fill (capped at 1)
FILL_UNCERTAINTY = 0.2   # added to uncertainty during a fill (capped at 1)
FILL_VOICE_FLOOR = {"low_tom": 0.6, "mid_tom": 0.6, "high_tom": 0.6, "crash": 0.6}

# per voice: (hits per bar at density 0.5, hits per bar at density 1, rotation in steps)
RULES: dict[str, tuple[int, int, int]] = {
    "kick": (4, 10, 0),
    "snare": (2, 8, 4),
    "closed_hat": (8, 16, 0),
    "open_hat": (1, 4, 14),
    "low_tom": (0, 4, 13),
    "mid_tom": (0, 4, 11),
    "high_tom": (0, 4, 9),
    "crash": (0, 2, 0),
    "ride": (0, 8, 2),
}
_ACCENT = np.array([1.0 if s % 4 == 0 else 0.8 if s % 2 == 0 else 0.6
                    for s in range(STEPS_PER_BAR)])
FLIP_PER_TEMPERATURE = 0.05  # cells whose hit flips, per unit of sampling temperature


def fill_controls(density: tuple[float, ...] | np.ndarray, uncertainty: float
                  ) -> tuple[tuple[float, ...], float]:
    """The effective per-voice densities and uncertainty of a fill (see the module text)."""
    out = []
    for name, d in zip(VOICE_NAMES, density, strict=True):
        d = min(1.0, float(d) + FILL_DENSITY)
        out.append(max(d, FILL_VOICE_FLOOR.get(name, 0.0)))
    return tuple(out), min(1.0, float(uncertainty) + FILL_UNCERTAINTY)


def hits_per_bar(voice: int, density: float) -> int:
    """How many hits voice `voice` plays per bar at effective density 0..1 (in range: the
    controls are checked where they enter, `controls.GenerationControls`)."""
    usual, busiest, _rotation = RULES[VOICE_NAMES[voice]]
    d = float(density)
    if d <= 0.0:
        return 0
    if d <= 0.5:
        return int(round(usual * d / 0.5))
    return int(round(usual + (busiest - usual) * (d - 0.5) / 0.5))


def euclid(hits: int, steps: int, rotation: int = 0) -> np.ndarray:
    """bool [steps]: `hits` onsets spread as evenly as possible, the first at `rotation`."""
    s = (np.arange(steps) - rotation) % steps
    return (s * hits) % steps < hits if hits > 0 else np.zeros(steps, dtype=bool)


def rule_pattern(density: tuple[float, ...] | np.ndarray, *, uncertainty: float,
                 temperature: float, mutes: tuple[bool, ...] | np.ndarray, max_count: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hits bool, velocities 0..1, offsets 0) [32, 9] for the effective per-voice `density`."""
    hits = np.zeros((STEPS, NUM_VOICES), dtype=bool)
    for voice, name in enumerate(VOICE_NAMES):
        k = hits_per_bar(voice, density[voice])
        if k <= 0 or mutes[voice]:
            continue
        bar = euclid(k, STEPS_PER_BAR, RULES[name][2])
        hits[:, voice] = np.tile(bar, STEPS // STEPS_PER_BAR)
    accent = np.tile(_ACCENT, STEPS // STEPS_PER_BAR)[:, None] * np.ones((1, NUM_VOICES))
    # always the same draws, whatever the controls: moving a knob does not reshuffle the noise
    flip = rng.random((STEPS, NUM_VOICES)) < FLIP_PER_TEMPERATURE * float(temperature)
    jitter = rng.uniform(-1.0, 1.0, (STEPS, NUM_VOICES))
    playing = np.array([hits_per_bar(v, density[v]) > 0 and not mutes[v]
                        for v in range(NUM_VOICES)])
    hits ^= flip & playing[None, :]
    for voice in range(NUM_VOICES):  # at most max_count per loop: keep the loudest steps
        column = np.flatnonzero(hits[:, voice])
        if len(column) > max_count:
            keep = column[np.argsort(-accent[column, voice], kind="stable")[:max_count]]
            hits[:, voice] = False
            hits[keep, voice] = True
    velocities = np.clip(accent * 0.9 + 0.1 + 0.2 * float(uncertainty) * jitter, 0.05, 1.0)
    velocities = np.where(hits, velocities, 0.0).astype(np.float32)
    return hits, velocities, np.zeros((STEPS, NUM_VOICES), dtype=np.float32)
