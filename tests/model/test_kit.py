"""model.kit with a voice group removed (issue 29 item 4): no voice left over 1.5 x the style's
real count, a removed kick's low end on the downbeats (beats 1 and 3), a removed snare's
backbeat moved and its ghost notes not."""

from __future__ import annotations

import numpy as np
from grooverack.model.kit import BACKBEAT_BEATS, FLOOR_VOICES, floors, keep_time, revoice_budgets
from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES

V = {name: i for i, name in enumerate(VOICE_NAMES)}
# rock's real hits per loop (the shipped bank's `real_hits` row, rounded)
ROCK = np.array([7.0, 8.04, 9.13, 1.54, 0.74, 0.35, 1.86, 1.06, 5.35])
HALF = np.full(NUM_VOICES, 0.5)  # the default density: the real count


def muted(*names: str) -> np.ndarray:
    out = np.zeros(NUM_VOICES, bool)
    out[[V[n] for n in names]] = True
    return out


def steps(out: np.ndarray, name: str) -> list[int]:
    return np.flatnonzero(out[:, V[name]]).tolist()


def test_revoice_budget_is_never_over_one_and_a_half_times_real():
    most = revoice_budgets(ROCK, HALF)
    assert most.tolist() == [10, 12, 13, 2, 1, 0, 2, 1, 8]
    assert (most <= 1.5 * ROCK + 1e-9).all()
    assert revoice_budgets(ROCK, np.full(NUM_VOICES, 1.0)).tolist()[:2] == [21, 24]
    assert not revoice_budgets(ROCK, np.zeros(NUM_VOICES)).any()


def test_a_removed_kick_keeps_the_downbeats_on_the_low_tom_and_drops_the_rest():
    rng = np.random.default_rng(0)
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    hits[::2, V["low_tom"]] = True       # the re-voiced kick piled on the low tom: 16 a loop
    hits[1::4, V["mid_tom"]] = True
    hits[:, V["ride"]] = True            # and the ride on every step
    score = rng.normal(size=(STEPS, NUM_VOICES))
    out = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted("kick"), cap=1.0,
                    anchor=True, follow=0.9, kick_removed=True)
    # beats 1 and 3 of each bar: the anchor, nothing more (rock's low tom has room for 1 and
    # its mid tom, 0.35 a loop, for none: the downbeats go over on the low tom)
    assert steps(out, "low_tom") == [0, 8, 16, 24]
    assert not out[:, V["kick"]].any() and not out[:, V["mid_tom"]].any()
    counts = out.sum(axis=0)
    over = counts > 1.5 * ROCK
    assert np.flatnonzero(over).tolist() == [V["low_tom"]]  # the anchor's conflict, only there
    assert 0 < counts[V["ride"]] <= 8


def test_a_removed_kick_with_only_the_high_tom_left_keeps_the_ones_alone():
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    out = keep_time(hits, np.zeros((STEPS, NUM_VOICES)), real=ROCK, density=HALF,
                    mutes=muted("kick", "low_tom", "mid_tom"), cap=1.0, anchor=True, follow=0.9,
                    kick_removed=True)
    assert steps(out, "high_tom") == [0, 16]             # a high tom on beat 3 is no low end
    assert out.sum() == 2


def test_a_removed_kick_gives_beat_three_to_a_low_voice_with_room():
    toms = ROCK.copy()
    toms[V["low_tom"]], toms[V["mid_tom"]] = 2.0, 1.4    # a style that plays its toms
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    out = keep_time(hits, np.zeros((STEPS, NUM_VOICES)), real=toms, density=HALF,
                    mutes=muted("kick"), cap=1.0, anchor=True, follow=0.9, kick_removed=True)
    # the low tom (room 3) holds both ones and bar 1's beat 3; the mid tom (room 2) bar 2's
    assert steps(out, "low_tom") == [0, 8, 16] and steps(out, "mid_tom") == [24]
    silenced = keep_time(hits, np.zeros((STEPS, NUM_VOICES)), real=toms, density=HALF,
                         mutes=muted("kick"), cap=1.0, anchor=True, follow=0.9)
    assert not silenced.any()                            # only silenced: nothing moves


def test_a_removed_snare_moves_the_backbeat_not_its_ghost_notes():
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    hits[:, V["high_tom"]] = True         # the re-voiced snare, ghost notes and all, on the tom
    score = np.zeros((STEPS, NUM_VOICES))
    score[:, V["high_tom"]] = 1.0
    out = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted("snare"), cap=1.0,
                    anchor=True, follow=0.9, snare_removed=True)
    backbeat = {bar + beat for beat in BACKBEAT_BEATS for bar in (0, 16)}
    stand_ins = ("high_tom", "mid_tom", "low_tom", "open_hat")
    moved = {s for name in stand_ins for s in steps(out, name)}
    assert moved == backbeat                             # all four beats moved (rock has room)
    assert steps(out, "high_tom") == [12, 28]            # the model's choice: beat 4, each bar
    assert steps(out, "open_hat") == [4, 20]             # the next with room: beat 2, each bar
    assert (out.sum(axis=0) <= np.floor(1.5 * ROCK) + (np.arange(NUM_VOICES) == V["kick"])).all()
    ghosts = [s for s in range(STEPS) if s not in backbeat]
    assert not out[ghosts][:, [V[n] for n in stand_ins]].any()  # no ghost note re-voiced there


def test_a_backbeat_no_stand_in_has_room_for_goes_over_on_the_drum_carrying_the_other_beat():
    funk = np.array([8.22, 11.97, 14.74, 1.68, 0.24, 0.2, 0.33, 0.43, 2.83])
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    hits[[2, 7], V["open_hat"]] = True    # the model's own open hats: trimmed behind the backbeat
    out = keep_time(hits, np.zeros((STEPS, NUM_VOICES)), real=funk, density=HALF,
                    mutes=muted("snare"), cap=1.0, anchor=True, follow=0.9, snare_removed=True)
    # funk's toms play under 2/3 of a hit a loop: the open hat (room 2) takes beat 4 of each bar
    # and, no stand-in having room for beat 2, beat 2 too: the backbeat on one drum, the only
    # excess (4 open hats a loop where 1.5 x funk's 1.68 leaves room for 2)
    assert steps(out, "open_hat") == [4, 12, 20, 28]
    assert not out[:, [V["high_tom"], V["mid_tom"], V["low_tom"], V["snare"]]].any()


def test_a_removed_snare_puts_each_beat_on_one_drum_in_every_bar():
    anyy = np.array([7.62, 10.4, 10.24, 1.31, 0.88, 0.47, 1.28, 0.57, 5.25])
    out = keep_time(np.zeros((STEPS, NUM_VOICES), bool), np.zeros((STEPS, NUM_VOICES)),
                    real=anyy, density=HALF, mutes=muted("snare"), cap=1.0, anchor=True,
                    follow=0.9, snare_removed=True)
    # `any`: room for one open hat, one high tom, one low tom; each beat stays on one drum (the
    # one the style plays most), one hit over its room, rather than three drums in turn
    assert steps(out, "open_hat") == [12, 28] and steps(out, "high_tom") == [4, 20]
    assert not out[:, [V["low_tom"], V["mid_tom"]]].any()
    silenced = keep_time(np.zeros((STEPS, NUM_VOICES), bool), np.zeros((STEPS, NUM_VOICES)),
                         real=anyy, density=HALF, mutes=muted("snare"), cap=1.0, anchor=True,
                         follow=0.9)
    assert silenced[:, 1:].sum() == 0                    # only silenced: nothing moves


def test_a_removed_snare_stays_within_the_budget_where_the_stand_ins_have_room():
    afrocuban = np.array([6.94, 10.28, 10.24, 0.47, 0.97, 0.4, 2.12, 0.25, 10.08])
    out = keep_time(np.zeros((STEPS, NUM_VOICES), bool), np.zeros((STEPS, NUM_VOICES)),
                    real=afrocuban, density=HALF, mutes=muted("snare"), cap=1.0, anchor=True,
                    follow=0.9, snare_removed=True)
    # room for 3 high toms and 1 low tom: all four beats fit, so the cap holds (beat 2 of bar 2
    # on the low tom) rather than a fourth high tom
    assert steps(out, "high_tom") == [4, 12, 28] and steps(out, "low_tom") == [20]
    assert (out.sum(axis=0) <= revoice_budgets(afrocuban, HALF) + (np.arange(NUM_VOICES) == 0)
            * 2).all()


def test_nothing_removed_leaves_the_budget_as_it_was():
    hits = np.ones((STEPS, NUM_VOICES), bool)
    score = np.tile(np.linspace(0.0, 1.0, STEPS)[:, None], (1, NUM_VOICES))
    plain = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted(), cap=1.0,
                      anchor=True, follow=0.9)
    assert plain[:, V["low_tom"]].sum() == 1 and plain[:, V["mid_tom"]].sum() == 1
    revoiced = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted("crash"),
                         cap=1.0, anchor=True, follow=0.9, revoiced=True)
    assert revoiced[:, V["mid_tom"]].sum() == 0          # any group removed: within 1.5 x real
    assert (revoiced.sum(axis=0) <= plain.sum(axis=0)).all()


def test_an_onset_the_trim_leaves_bare_moves_to_a_timekeeper_with_room():
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    hits[::2, V["high_tom"]] = True       # the re-voiced snare on the tom, on the line's eighths
    onsets = np.zeros(STEPS, bool)
    onsets[::2] = True
    score = np.zeros((STEPS, NUM_VOICES))
    score[:, V["ride"]] = 0.5             # the model likes the ride there over the hat
    out = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted("snare"), cap=1.0,
                    anchor=True, onsets=onsets, follow=0.9, snare_removed=True)
    assert out[onsets].any(axis=1).all()                # every onset keeps a drum
    assert (out.sum(axis=0) <= np.floor(1.5 * ROCK) + (np.arange(NUM_VOICES) == V["kick"]) * 2
            + (np.arange(NUM_VOICES) == V["low_tom"])).all()
    # the ride (room 6 at follow 0.9) first, the closed hat the rest; the backbeat as before
    assert out[:, V["ride"]].sum() == 6 and out[:, V["closed_hat"]].sum() == 4
    assert steps(out, "high_tom") == [12, 28] and steps(out, "open_hat") == [4, 20]
    plain = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted("snare"), cap=1.0,
                      anchor=True, onsets=onsets, follow=0.0, snare_removed=True)
    assert not plain[:, V["ride"]].any()                # follow 0: no line to keep


def test_the_floor_is_three_quarters_of_real_on_the_timekeepers_not_the_toms():
    least = floors(ROCK, HALF, 0.75)
    assert least.tolist() == [5, 6, 7, 1, 1, 0, 1, 1, 4]  # round(0.75 x real), halves up
    assert floors(ROCK, np.full(NUM_VOICES, 1.0), 0.75).tolist()[:3] == [11, 12, 14]
    assert not floors(ROCK, np.zeros(NUM_VOICES), 0.75).any()  # density 0: silent
    assert not floors(ROCK, HALF, 0.0).any()
    assert [VOICE_NAMES[v] for v in FLOOR_VOICES] == ["kick", "snare", "closed_hat", "open_hat",
                                                     "crash", "ride"]


def test_a_voice_under_its_floor_takes_its_surest_cells_and_the_toms_are_left_alone():
    rng = np.random.default_rng(3)
    score = rng.normal(-3.0, 1.0, (STEPS, NUM_VOICES))   # the model wants nothing
    score[::4, V["ride"]] = -0.5                          # ... the ride on the beats nearly
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    hits[[0, 8, 16, 24], V["snare"]] = True               # 4 snares of the 6 the floor asks
    args = dict(real=ROCK, density=HALF, mutes=muted("closed_hat"), cap=1.0, anchor=False)
    before = keep_time(hits, score, floor=0.0, **args)
    assert np.array_equal(before, hits)                   # no floor: nothing added
    out = keep_time(hits, score, floor=0.75, **args)
    counts = out.sum(0)
    assert counts[V["kick"]] == 5 and counts[V["snare"]] == 6 and counts[V["ride"]] == 4
    assert counts[V["closed_hat"]] == 0                   # muted: stays silent
    assert counts[V["low_tom"]] == counts[V["mid_tom"]] == counts[V["high_tom"]] == 0
    assert set(steps(out, "ride")) <= set(range(0, STEPS, 4))  # the cells it scored highest
    assert set(steps(hits, "snare")) <= set(steps(out, "snare"))  # the model's hits stay
    snare_added = [s for s in steps(out, "snare") if s not in (0, 8, 16, 24)]
    best = np.argsort(-np.where(hits[:, V["snare"]], -np.inf, score[:, V["snare"]]))[:2]
    assert sorted(snare_added) == sorted(best.tolist())
    # never over the top-k limit, nor over a density that silences a voice
    capped = keep_time(hits, score, floor=0.75, max_counts=3, **args)
    assert capped.sum(0).max() <= 4 and capped.sum(0)[V["snare"]] == 4  # its own 4 are kept
    dens = HALF.copy()
    dens[V["ride"]] = 0.0
    assert not keep_time(hits, score, floor=0.75, **{**args, "density": dens})[:, V["ride"]].any()


def test_the_floor_takes_the_line_s_onsets_first_only_for_voices_that_follow():
    score = np.full((STEPS, NUM_VOICES), -2.0)
    score[0::8, :] = -1.0                    # the model's choice: the beats
    onsets = np.zeros(STEPS, bool)
    onsets[[3, 11, 19, 27]] = True           # the line plays elsewhere
    hits = np.zeros((STEPS, NUM_VOICES), bool)
    follow = np.where([v in ("kick", "snare", "closed_hat") for v in VOICE_NAMES], 0.9, 0.0)
    out = keep_time(hits, score, real=ROCK, density=HALF, mutes=muted(), cap=1.0, anchor=False,
                    onsets=onsets, follow=0.9, floor=0.75, voice_follow=follow)
    assert set(steps(onsets[:, None] & out, "closed_hat")) == {3, 11, 19, 27}
    assert set(steps(out, "ride")) == {0, 8, 16, 24}  # the colour stays where A/B wants it
