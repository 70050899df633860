"""What a drummer keeps whatever the input plays: the style's kit budget and beat one.

The model follows the input's onsets; with a sequencer line (its main input, never seen in
training as such) it can hand a voice far more hits than any drummer plays (an acid line: 12 high
toms a loop) or leave out the kick on the one. Three rules, applied to the sampled hits:

- **Budget.** No voice plays more than `cap` times the style's real per-loop count (the latent
  bank's `real_hits`: mean hits per voice of the style's train loops; row 0 = all styles),
  scaled by the voice's density (0.5 = the real count; 1 = twice it; 0 = silent), and by
  1 + `ab_slack` (`generation.kit_cap_ab`, AB_SLACK by default here) * (1 - follow) (A/B's own
  patterns get more room than a followed line). Where a voice is over, its highest-scoring
  cells stay (the same ranking the `max_count` top-k uses), so the model's own order decides
  what goes. A cap of 0 turns the budget off.
- **Floor.** No voice plays fewer than round(`floor` x the style's real count) (scaled by
  density like the budget, never over the voice's max count): a voice under it takes its
  highest-ranked cells the model left out (the same ranking, so a followed line's onsets come
  first). A line the model never saw in training leaves the kit thin (a ride or hats missing
  from the pattern, a kick short at mid follow); a drummer keeps time on every part of the kit
  they play. A floor of 0 turns it off. The toms (fills) have a floor of their own
  (`fill_floor`), and with `random_round` every floor and budget is rounded down or up at random
  each loop (floor(x + u), u uniform from the generation's own draws), so over loops each voice
  averages its share of the style's count (a style's 0.4 crashes a loop: a crash in 2 loops of
  5, where rounding to the nearest count gave none, and a budget rounded up gave every voice
  most of a hit more than the style plays).
- **Beat one.** Each bar's first step has a kick (the low end a drummer keeps on the one).
  A kick only silenced (`generation.on_mute = silence`) leaves the one to the others. Off with
  `anchor = False`, or when no low voice may play.
- **A removed group** (voice redistribution, `generation.on_mute = revoice`): its part is not
  piled on one voice. Every voice left plays at most floor(REVOICE_OVER (1.5) x the style's
  real per-loop count) (density-scaled; a voice the style plays under 2/3 of a hit a loop is
  left out while a group is removed), the moved beats counted first and the model's own hits
  (the re-voiced ghost notes among them) trimmed by score behind them. A removed kick: the
  lowest voice left (low tom, then mid tom, then high tom) takes each bar's one as the kick
  would, and beat 3 of each bar goes to the low or mid tom with room left, else to that same
  low voice: the downbeats (beats 1 and 3) are the anchor, the one thing allowed over that
  budget (a style with under 2.67 low toms a loop goes over 1.5 x there, on that voice only);
  a high tom left as the lowest voice takes the ones alone. The rest of the kick's part is
  dropped. A removed snare: the backbeat
  (beat 4 of each bar, then beat 2) moves to the stand-ins (high, mid, low tom, open hat).
  Where they have room for all of it, each beat goes to the one with room for most of its bars
  (the model's score between equals), the rest of its bars to the next, so each bar sounds
  alike where it can. Where they have not (e.g. funk, whose toms play under 2/3 of a hit a
  loop), each beat goes to one stand-in in every bar, over its budget where it has no room
  left: the backbeat is the only excess, as a removed kick's downbeats are (the one with room
  for most bars, then the one carrying the other beat, then the one the style plays most).
  The re-voiced ghost notes go before the moved beats.
  An input onset (follow > 0) that this trimming leaves without any hit goes to the closed hat
  or the ride, where one has room: the line keeps its drum, on a timekeeper.

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
# followed line: cap * (1 + AB_SLACK * (1 - follow)) (the engine passes generation.kit_cap_ab)
AB_SLACK = 0.5
# a removed snare's backbeat goes to a voice that can carry an accent on its own (a hat or ride
# already playing there would move nothing)
BACKBEAT_STAND_INS = tuple(VOICE_NAMES.index(v) for v in ("high_tom", "mid_tom", "low_tom",
                                                           "open_hat"))
ONSET_RANK = 4.0  # logits: a trimmed voice's hit on an input onset outranks one 4 logits surer
LOW_END = tuple(VOICE_NAMES.index(v) for v in ("kick", "low_tom", "mid_tom", "high_tom"))
# beat 3 of a removed kick: only a low voice keeps the low end (a high tom there is no kick)
BEAT_THREE_STAND_INS = LOW_END[1:3]
# with a group removed, no voice left over this many times the style's real per-loop count
REVOICE_OVER = 1.5
# the voices the floor keeps playing: the time a drummer keeps and the cymbal accents that come
# back every loop or two (the toms are fills, played now and then: a floor would put a tom on
# the same step of every loop)
FLOOR_VOICES = tuple(VOICE_NAMES.index(v) for v in ("kick", "snare", "closed_hat", "open_hat",
                                                    "crash", "ride"))
_NOT_FLOORED = np.array([v not in FLOOR_VOICES for v in range(NUM_VOICES)])
# an input onset a removed group's trim left without a hit is kept by one of these, with room
TIMEKEEPERS = tuple(VOICE_NAMES.index(v) for v in ("closed_hat", "ride"))
# a removed snare's backbeat, in the order it moves: beat 4 of each bar, then beat 2 (steps in
# the bar)
BACKBEAT_BEATS = (3 * STEPS_PER_BAR // 4, STEPS_PER_BAR // 4)


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
    revoiced: bool = False  # some group is removed: every voice left within REVOICE_OVER x real
    floor: float = 0.0  # each voice plays at least round(floor x real) (density-scaled)
    voice_follow: np.ndarray | None = None  # [9] follow per voice for the onsets' rank (None: follow)
    fill_floor: float = 0.0  # the toms (fills, not in FLOOR_VOICES): at least fill_floor x real
    random_round: bool = False  # floors and budgets rounded down or up at random (False: floors
    # halves up, budgets up)
    ab_slack: float = AB_SLACK  # the budget: cap x (1 + ab_slack x (1 - follow))


def budgets(real: np.ndarray, density: np.ndarray, cap: float,
            draw: np.ndarray | None = None) -> np.ndarray:
    """Per voice, the most hits a loop may hold: ceil(cap * real * 2 * density) (int64 [9]), or
    with `draw` [9] (uniform 0..1, one per voice) rounded down or up at random, floor(x + draw)
    (over many loops the budget averages x itself); a voice with a real count > 0 and density >
    0 may always play at least one. `density` 0..1 per voice (the controls are checked where
    they enter: `controls.GenerationControls`)."""
    real = np.asarray(real, dtype=np.float64).reshape(NUM_VOICES)
    dens = np.asarray(density, dtype=np.float64).reshape(NUM_VOICES)
    raw = cap * real * 2.0 * dens
    if draw is None:
        out = np.array([math.ceil(x - 1e-9) for x in raw], dtype=np.int64)
    else:
        out = np.floor(raw + np.asarray(draw, np.float64).reshape(NUM_VOICES) + 1e-9).astype(np.int64)
    out[(dens > 0.0) & (real > 0.0)] = np.maximum(out[(dens > 0.0) & (real > 0.0)], 1)
    return out


def floors(real: np.ndarray, density: np.ndarray, floor: float | np.ndarray,
           draw: np.ndarray | None = None) -> np.ndarray:
    """Per voice, the fewest hits a loop holds: floor * real * 2 * density (`floor` one value or
    one per voice) rounded (int64 [9]); 0 where the density is 0 (a silent voice stays silent).
    Rounded halves up, or with `draw` [9] (uniform 0..1, one per voice) down or up at random:
    floor(x + draw), so over many loops a voice averages x itself (a style's 0.4 crashes a loop
    is a crash in 2 loops of 5, not none)."""
    real = np.asarray(real, dtype=np.float64).reshape(NUM_VOICES)
    dens = np.asarray(density, dtype=np.float64).reshape(NUM_VOICES)
    raw = np.asarray(floor, dtype=np.float64) * real * 2.0 * np.maximum(dens, 0.0)
    up = 0.5 if draw is None else np.asarray(draw, dtype=np.float64).reshape(NUM_VOICES)
    return np.floor(raw + up + 1e-9).astype(np.int64)


def revoice_budgets(real: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Per voice, the most hits a loop may hold with a group removed: floor(REVOICE_OVER * real
    * 2 * density) (int64 [9]): never over 1.5 x the style's real count at the default density,
    so a voice the style plays under 2/3 of a hit a loop gets none."""
    real = np.asarray(real, dtype=np.float64).reshape(NUM_VOICES)
    dens = np.clip(np.asarray(density, dtype=np.float64).reshape(NUM_VOICES), 0.0, 1.0)
    return np.floor(REVOICE_OVER * real * 2.0 * dens + 1e-9).astype(np.int64)


def _trim(out: np.ndarray, rank: np.ndarray, voice: int, most: int,
          keep: np.ndarray | None = None) -> None:
    """Keep at most `most` hits of `voice` in `out` (in place): the `keep` steps first, then the
    highest-ranked."""
    pinned = np.zeros(STEPS, bool) if keep is None else np.asarray(keep, bool)
    order = np.where(out[:, voice], rank[:, voice], -np.inf) + np.where(pinned, np.inf, 0.0)
    order = np.nan_to_num(order, nan=-np.inf, posinf=1e300)
    ranked = np.argsort(-order, kind="stable")
    out[ranked[max(int(most), int(pinned.sum())):], voice] = False


def _fill(out: np.ndarray, rank: np.ndarray, least: np.ndarray) -> None:
    """Give each voice in `out` at least `least` [9] hits (in place): its highest-ranked cells
    first (one sort for every voice: this runs at each regeneration)."""
    under = np.flatnonzero(out.sum(0) < least)
    if not under.size:
        return
    ranked = np.argsort(np.where(out, np.inf, -rank), axis=0, kind="stable")
    for voice in under.tolist():
        need = int(least[voice]) - int(out[:, voice].sum())
        out[ranked[:need, voice], voice] = True


def keep_time(hits: np.ndarray, score: np.ndarray, *, real: np.ndarray | None,
              density: np.ndarray, mutes: np.ndarray, cap: float, anchor: bool,
              onsets: np.ndarray | None = None, follow: float = 0.0,
              kick_removed: bool = False, snare_removed: bool = False,
              revoiced: bool = False, floor: float = 0.0,
              max_counts: np.ndarray | int = STEPS,
              voice_follow: np.ndarray | None = None, fill_floor: float = 0.0,
              floor_draw: np.ndarray | None = None, ab_slack: float = AB_SLACK) -> np.ndarray:
    """Sampled hits [32, 9] -> hits within the style's budget, with beat one (a new array).

    `score` [32, 9]: each cell's margin over its threshold (higher = the model wants it more);
    `real`: the style's real per-loop counts [9] (None: no budget); `density` the effective
    density per voice; `mutes` bool [9] (a muted voice never plays, here either); `cap` the
    budget at follow 1 (times 1 + `ab_slack` * (1 - follow)); `onsets` bool [32], the steps the
    input played: a voice over budget keeps its hits on them first (by ONSET_RANK * follow);
    `kick_removed` / `snare_removed`: that group is removed (voice redistribution), so the
    lowest voice left takes each bar's one and beat 3 / the backbeat moves to the stand-ins,
    over their budget only where they lack room for it (a group only silenced leaves its
    beats to the others); `revoiced` (implied by either): some group is removed, every voice
    left within `revoice_budgets`; `floor`: each voice not silent plays at least `floors` hits
    (within `max_counts`, the top-k limit per voice, and the budget), its highest-ranked cells
    added; `voice_follow` [9]: how far each voice follows (`sampling.voice_follow`), the weight of the onsets in its rank (default
    `follow` for all: the kit's colour, following less, would otherwise move onto the line's
    onsets as soon as follow leaves 0)."""
    out = np.array(hits, dtype=bool)
    played = out.any(axis=1)  # the steps the model played before any trimming
    score = np.asarray(score, dtype=np.float64)
    f = float(follow)  # 0..1: checked where it entered (controls.GenerationControls)
    cap = cap * (1.0 + float(ab_slack) * (1.0 - f))
    dens = np.asarray(density, dtype=np.float64).reshape(NUM_VOICES)
    silent = np.asarray(mutes, dtype=bool).reshape(NUM_VOICES) | ~(dens > 0.0)
    rank = score
    if onsets is not None and follow > 0.0:
        on = np.asarray(onsets, dtype=bool).reshape(STEPS, 1)
        weight = f if voice_follow is None else np.asarray(voice_follow, np.float64).reshape(1, -1)
        rank = score + ONSET_RANK * weight * on
    most = None
    if real is not None and cap > 0.0:
        most = budgets(real, dens, cap, floor_draw)
        for voice in np.flatnonzero(out.sum(0) > most):
            _trim(out, rank, int(voice), int(most[voice]))
    if real is not None and (floor > 0.0 or fill_floor > 0.0):
        per_voice = np.where(_NOT_FLOORED, float(fill_floor), float(floor))
        least = np.minimum(floors(real, dens, per_voice, floor_draw),
                           np.asarray(max_counts, dtype=np.int64))
        if most is not None:
            least = np.minimum(least, most)
        least[silent] = 0
        _fill(out, rank, least)
    if anchor and not silent[KICK]:
        out[::STEPS_PER_BAR, KICK] = True  # each bar's one
    revoiced = revoiced or kick_removed or snare_removed
    if not revoiced:
        return out
    # a group removed: the beats it carried move within each voice's room, the rest is dropped
    room = (revoice_budgets(real, dens) if real is not None
            else np.full(NUM_VOICES, STEPS, dtype=np.int64))
    if most is not None:
        room = np.minimum(room, np.maximum(most, 1))
    moved = np.zeros((STEPS, NUM_VOICES), bool)
    pinned = np.zeros((STEPS, NUM_VOICES), bool)
    if anchor and not silent[KICK]:
        pinned[::STEPS_PER_BAR, KICK] = True
    if anchor and kick_removed and silent[KICK]:
        low = next((v for v in LOW_END[1:] if not silent[v]), None)
        if low is not None:
            moved[::STEPS_PER_BAR, low] = True  # the anchor: each bar's one, as the kick's
            for step in range(STEPS_PER_BAR // 2, STEPS, STEPS_PER_BAR):  # beat 3 of each bar
                free = [v for v in BEAT_THREE_STAND_INS
                        if not silent[v] and room[v] - moved[:, v].sum() > 0]
                if free:
                    moved[step, free[0]] = True
                elif low in BEAT_THREE_STAND_INS:
                    # no low voice has room: the anchor's drum takes it over its budget (the
                    # downbeats keep their low end; nothing else of the kick's part moves)
                    moved[step, low] = True
    if anchor and snare_removed:
        able = [v for v in BACKBEAT_STAND_INS if not silent[v]]
        beats = [[bar + beat for bar in range(0, STEPS, STEPS_PER_BAR)]
                 for beat in BACKBEAT_BEATS]  # beat 4 of every bar, then beat 2

        def left(v: int) -> int:
            return int(room[v] - moved[:, v].sum())

        if sum(max(left(v), 0) for v in able) >= sum(map(len, beats)):
            # room for the whole backbeat within the budget: each beat to the stand-in with
            # room for most of its bars (the model's score between equals), the rest of its
            # bars to the next
            for todo in beats:
                while todo and (free := [v for v in able if left(v) > 0]):
                    pick = max(free, key=lambda v: (min(left(v), len(todo)),
                                                    float(score[todo, v].sum())))
                    take, todo = todo[:left(pick)], todo[left(pick):]
                    moved[take, pick] = True
        else:
            # no room for all of it: each beat on one drum in every bar, over its budget where
            # it has no room left (the backbeat, as a removed kick's downbeats, the only
            # excess): the one with room for most of the beat's bars, then the one carrying the
            # other beat (the backbeat on one drum), the one the style plays most (the least
            # over its real count), the model's score
            style = (np.zeros(NUM_VOICES) if real is None
                     else np.asarray(real, np.float64).reshape(NUM_VOICES) * dens)
            carriers: list[int] = []
            for on_beat in beats if able else ():
                pick = max(able, key=lambda v: (min(left(v), len(on_beat)), v in carriers,
                                                float(style[v]),
                                                float(score[on_beat, v].sum())))
                moved[on_beat, pick] = True
                carriers.append(pick)
    out |= moved
    for v in range(NUM_VOICES):
        if out[:, v].sum() > room[v]:
            _trim(out, rank, v, int(room[v]), keep=moved[:, v] | pinned[:, v])
    if onsets is not None and f > 0.0:
        # an input onset the model played that the trims left bare goes to a timekeeper with
        # room (the one the model scores highest there): the line keeps its drum, not piled on
        # a stand-in
        bare = np.asarray(onsets, dtype=bool).reshape(STEPS) & played & ~out.any(axis=1)
        for step in np.flatnonzero(bare).tolist():
            fill = [v for v in TIMEKEEPERS if not silent[v] and out[:, v].sum() < room[v]]
            if fill:
                out[step, max(fill, key=lambda v: float(score[step, v]))] = True
    return out
