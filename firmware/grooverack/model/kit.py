"""What a drummer keeps whatever the input plays: the style's kit budget and beat one.

The model follows the input's onsets; with a sequencer line (its main input, never seen in
training as such) it can hand a voice far more hits than any drummer plays (an acid line: 12 high
toms a loop) or leave out the kick on the one. Two rules, applied to the sampled hits:

- **Budget.** No voice plays more than `cap` times the style's real per-loop count (the latent
  bank's `real_hits`: mean hits per voice of the style's train loops; row 0 = all styles),
  scaled by the voice's density (0.5 = the real count; 1 = twice it; 0 = silent), and by
  1 + AB_SLACK * (1 - follow) (A/B's own patterns get more room than a followed line). Where a voice
  is over, its highest-scoring cells stay (the same ranking the `max_count` top-k uses), so the
  model's own order decides what goes. A cap of 0 turns the budget off.
- **Beat one.** Each bar's first step has a kick (the low end a drummer keeps on the one).
  With the kick's group removed (voice redistribution), the lowest voice that plays takes it
  on beats 1 and 3 (low tom, then mid tom, then high tom: a removed kick keeps the low end on
  the downbeats); a
  kick only silenced (`generation.on_mute = silence`) leaves the one to the others. A removed
  snare's backbeat (beats 2 and 4) moves to the stand-in the model scores highest there. Off with `anchor = False`, or when
  no low voice may play.

numpy only; pure functions of their inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grooverack.voices import NUM_VOICES, STEPS, STEPS_PER_BAR, VOICE_NAMES

KICK = VOICE_NAMES.index("kick")
# who takes the one when the kick cannot: the low voices, lowest first
# the budget is looser for A/B (the bank's patterns are real drummers' already) than for a
# followed line: cap * (1 + AB_SLACK * (1 - follow))
AB_SLACK = 0.5
# a removed snare's backbeat goes to a voice that can carry an accent on its own (a hat or ride
# already playing there would move nothing)
BACKBEAT_STAND_INS = tuple(VOICE_NAMES.index(v) for v in ("high_tom", "mid_tom", "low_tom",
                                                           "open_hat"))
ONSET_RANK = 4.0  # logits: a trimmed voice's hit on an input onset outranks one 4 logits surer
LOW_END = tuple(VOICE_NAMES.index(v) for v in ("kick", "low_tom", "mid_tom", "high_tom"))


@dataclass(frozen=True, eq=False)
class KitRules:
    """The rules `keep_time` applies: the style's real counts (None: no budget), the cap, beat one."""

    real: np.ndarray | None
    cap: float = 1.0
    anchor: bool = True
    onsets: np.ndarray | None = None  # bool [32]: the steps the input played
    follow: float = 0.0
    kick_removed: bool = False  # the kick's group is removed (re-voiced), not only silenced
    snare_removed: bool = False  # likewise the snare's: its backbeat moves to another voice


def budgets(real: np.ndarray, density: np.ndarray, cap: float) -> np.ndarray:
    """Per voice, the most hits a loop may hold: ceil(cap * real * 2 * density) (int64 [9]);
    a voice with a real count > 0 and density > 0 may always play at least one. `density` 0..1
    per voice (the controls are checked where they enter: `controls.GenerationControls`)."""
    real = np.asarray(real, dtype=np.float64).reshape(NUM_VOICES)
    dens = np.asarray(density, dtype=np.float64).reshape(NUM_VOICES)
    raw = cap * real * 2.0 * dens
    out = np.array([math.ceil(x - 1e-9) for x in raw], dtype=np.int64)
    out[(dens > 0.0) & (real > 0.0)] = np.maximum(out[(dens > 0.0) & (real > 0.0)], 1)
    return out


def keep_time(hits: np.ndarray, score: np.ndarray, *, real: np.ndarray | None,
              density: np.ndarray, mutes: np.ndarray, cap: float, anchor: bool,
              onsets: np.ndarray | None = None, follow: float = 0.0,
              kick_removed: bool = False, snare_removed: bool = False) -> np.ndarray:
    """Sampled hits [32, 9] -> hits within the style's budget, with beat one (a new array).

    `score` [32, 9]: each cell's margin over its threshold (higher = the model wants it more);
    `real`: the style's real per-loop counts [9] (None: no budget); `density` the effective
    density per voice; `mutes` bool [9] (a muted voice never plays, here either); `cap` the
    budget at follow 1 (times 1 + AB_SLACK * (1 - follow)); `onsets` bool [32], the steps the
    input played: a voice over budget keeps its hits on them first (by ONSET_RANK * follow);
    `kick_removed` / `snare_removed`: that group is removed (voice redistribution), so the
    lowest voice left takes beats 1 and 3 / a stand-in takes the backbeat (a group only
    silenced leaves its beats to the others)."""
    out = np.array(hits, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    f = float(follow)  # 0..1: checked where it entered (controls.GenerationControls)
    cap = cap * (1.0 + AB_SLACK * (1.0 - f))
    dens = np.asarray(density, dtype=np.float64).reshape(NUM_VOICES)
    silent = np.asarray(mutes, dtype=bool).reshape(NUM_VOICES) | ~(dens > 0.0)
    if real is not None and cap > 0.0:
        most = budgets(real, dens, cap)
        rank = score
        if onsets is not None and follow > 0.0:
            on = np.asarray(onsets, dtype=bool).reshape(STEPS, 1)
            rank = score + ONSET_RANK * f * on
        for voice in np.flatnonzero(out.sum(0) > most):
            ranked = np.argsort(-np.where(out[:, voice], rank[:, voice], -np.inf), kind="stable")
            out[ranked[int(most[voice]):], voice] = False
    if anchor:
        low = KICK if not silent[KICK] else None
        if low is None and kick_removed:
            low = next((v for v in LOW_END if not silent[v]), None)
        if low is not None:
            # the kick: each bar's one; a voice standing in for a removed kick: beats 1 and 3
            beat = STEPS_PER_BAR if low == KICK else STEPS_PER_BAR // 2
            for step in range(0, STEPS, beat):
                out[step, low] = True
    if anchor and snare_removed:
        # the backbeat moves to the voice the model likes best there (not every ghost note:
        # those stay within that voice's budget above)
        backbeat = np.arange(STEPS_PER_BAR // 4, STEPS, STEPS_PER_BAR // 2)
        able = [v for v in BACKBEAT_STAND_INS if not silent[v]]
        if able:
            best = max(able, key=lambda v: float(score[backbeat, v].sum()))
            out[backbeat, best] = True
    return out
