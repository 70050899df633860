"""model.sampling: latent mixing, density thresholds, temperature, max counts, mutes, seeding."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.model import sampling
from hypothesis import given, settings
from hypothesis import strategies as st

THR = np.array([0.49, 0.52, 0.52, 0.37, 0.32, 0.46, 0.36, 0.37, 0.53])


def decoder_output(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(-0.5, 2.0, (32, 9)).astype(np.float32)
    vel = rng.uniform(0, 1, (32, 9)).astype(np.float32)
    off = rng.uniform(-0.5, 0.5, (32, 9)).astype(np.float32)
    return logits, vel, off


def sample(logits, vel, off, *, t=0.0, density=0.5, max_counts=32, seed=0, mutes=None):
    return sampling.sample_pattern(logits, vel, off, temperature=t, thresholds=THR,
                                   density=density, max_counts=max_counts,
                                   rng=np.random.default_rng(seed), mutes=mutes)


def test_mix_latents_formula():
    za, zb, zg = np.ones(8), 3 * np.ones(8), -np.ones(8)
    z = sampling.mix_latents(za, zb, zg, morph=0.25, follow=0.5)
    assert z.dtype == np.float32
    assert z == pytest.approx(0.5 * (0.75 * 1 + 0.25 * 3) + 0.5 * -1)
    assert sampling.mix_latents(za, zb, zg, 0.0, 1.0) == pytest.approx(zg)
    assert sampling.mix_latents(za, zb, zg, 1.0, 0.0) == pytest.approx(zb)
    assert sampling.mix_latents(za, zb, None, 0.0, 1.0) == pytest.approx(za)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 2), st.integers(0, 8))
def test_density_zero_silences(seed, t, voice):
    logits, vel, off = decoder_output(seed)
    logits[:] = 8.0                         # the model is sure everywhere
    density = np.full(9, 0.7)
    density[voice] = 0.0
    hits, v, o = sample(logits, vel, off, t=t, density=density, seed=seed)
    assert not hits[:, voice].any()
    assert np.all(v[:, voice] == 0) and np.all(o[:, voice] == 0)
    assert not sample(logits, vel, off, t=t, density=0.0, seed=seed)[0].any()


def test_density_half_is_the_validation_threshold_at_zero_temperature():
    logits, vel, off = decoder_output(1)
    hits, v, o = sample(logits, vel, off)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert np.array_equal(hits, p > THR[None, :])
    assert np.array_equal(v, np.where(hits, vel, 0)) and np.array_equal(o, np.where(hits, off, 0))


def test_density_one_is_busy_and_density_moves_monotonically():
    logits, vel, off = decoder_output(2)
    counts = []
    previous = None
    for d in np.linspace(0.05, 1.0, 12):
        hits = sample(logits, vel, off, t=0.3, density=d, seed=5)[0]
        if previous is not None:
            assert np.all(hits >= previous)    # more density only adds hits (same noise)
        previous = hits
        counts.append(int(hits.sum()))
    p = 1 / (1 + np.exp(-logits))
    assert counts[-1] >= int((p > 0.05).sum())
    assert counts[0] < counts[5] < counts[-1]


def test_max_counts_keep_the_most_likely():
    logits, vel, off = decoder_output(3)
    full = sample(logits, vel, off, density=1.0)[0]
    hits = sample(logits, vel, off, density=1.0, max_counts=np.arange(9))[0]
    for voice in range(9):
        assert hits[:, voice].sum() == min(voice, full[:, voice].sum())
        if hits[:, voice].any():
            kept = logits[hits[:, voice], voice].min()
            dropped = logits[full[:, voice] & ~hits[:, voice], voice]
            assert dropped.size == 0 or kept >= dropped.max()


def test_mutes():
    logits, vel, off = decoder_output(4)
    mutes = np.zeros(9, bool)
    mutes[[0, 8]] = True
    hits = sample(logits, vel, off, density=1.0, mutes=mutes)[0]
    assert not hits[:, 0].any() and not hits[:, 8].any() and hits[:, 1:8].any()


def test_seeded_reproducible_and_temperature_varies_more():
    logits, vel, off = decoder_output(6)
    a = sample(logits, vel, off, t=0.8, seed=11)
    b = sample(logits, vel, off, t=0.8, seed=11)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    def spread(t):
        patterns = [sample(logits, vel, off, t=t, seed=s)[0] for s in range(40)]
        mean = np.mean(patterns, axis=0)
        return float(np.mean([np.sum(p != (mean > 0.5)) for p in patterns]))

    spreads = [spread(sampling.temperature(u)) for u in (0.0, 0.3, 0.6, 1.0)]
    assert spreads[0] == 0.0                       # uncertainty 0: always the same pattern
    assert spreads[0] < spreads[1] < spreads[2] < spreads[3]


def test_temperature_mapping():
    assert sampling.temperature(0.0) == 0.0
    assert sampling.temperature(1.0) == sampling.MAX_TEMPERATURE
    values = [sampling.temperature(u) for u in np.linspace(0, 1, 11)]
    assert values == sorted(values)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="32, 9"):
        sample(np.zeros((16, 9)), np.zeros((16, 9)), np.zeros((16, 9)))
    with pytest.raises(ValueError):
        sample(*decoder_output(), density=np.full((32, 9), 0.5))   # density is per voice
    with pytest.raises(ValueError):
        sampling.density_logits(np.full(8, 0.5), 0.5)               # thresholds too
    with pytest.raises(ValueError, match="differ"):
        sampling.mix_latents(np.zeros(4), np.zeros(4), np.zeros(5), 0.5, 0.5)


def test_density_thresholds_endpoints_and_logit_linear():
    def thresholds(density):
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-sampling.density_logits(THR, density)))

    assert thresholds(0.5) == pytest.approx(THR, abs=1e-12)
    assert np.all(sampling.density_logits(THR, 0.0) == np.inf)      # never
    assert thresholds(1.0) == pytest.approx(sampling.THRESHOLD_BUSY)
    assert thresholds(1e-9) == pytest.approx(sampling.THRESHOLD_SPARSE)
    grid = np.array([thresholds(x) for x in np.linspace(0.01, 1.0, 50)])
    assert np.all(np.diff(grid, axis=0) < 0)                      # more density, lower threshold
    # equal knob moves are equal steps in logit space on each side of 0.5
    lo = np.array([sampling.density_logits(THR, x) for x in (0.1, 0.2, 0.3)])
    hi = np.array([sampling.density_logits(THR, x) for x in (0.7, 0.8, 0.9)])
    assert np.diff(lo, axis=0) == pytest.approx(np.diff(lo, axis=0)[[0, 0]])
    assert np.diff(hi, axis=0) == pytest.approx(np.diff(hi, axis=0)[[0, 0]])


def test_density_zero_wins_over_any_logit():
    logits, vel, off = decoder_output(4)
    logits[:, 2] = 1e30
    density = np.full(9, 0.5)
    density[2] = 0.0
    hits = sample(logits, vel, off, t=1.0, density=density)[0]
    assert not hits[:, 2].any()
    assert sample(logits, vel, off, t=1.0)[0][:, 2].all()


def test_density_logits_are_kept_per_setting_and_follow_every_change() -> None:
    """The last results are kept (the knobs rarely move between patterns): a kept array is read
    only, and any change of a threshold or a density gives the new numbers."""
    a = sampling.density_logits(THR, 0.5)
    assert sampling.density_logits(THR.copy(), 0.5) is a  # same setting: the kept array
    with pytest.raises(ValueError):
        a[0] = 0.0  # read only: a caller cannot change what the next pattern gets
    moved = THR.copy()
    moved[3] += 0.05
    b = sampling.density_logits(moved, 0.5)
    assert b[3] != a[3] and np.array_equal(np.delete(b, 3), np.delete(a, 3))
    dens = np.full(len(THR), 0.5)
    dens[7] = 0.6
    c = sampling.density_logits(THR, dens)
    assert c[7] < a[7] and np.array_equal(np.delete(c, 7), np.delete(a, 7))
    nan = sampling.density_logits(THR, np.r_[np.nan, dens[1:]])
    assert nan[0] == np.inf and sampling.density_logits(THR, np.r_[np.nan, dens[1:]])[0] == np.inf


# --- the kit: the style's budget and beat one (model.kit) --------------------------------------
def test_kit_budget_keeps_the_best_scoring_hits_and_scales_with_density():
    from grooverack.model.kit import budgets, keep_time

    real = np.array([8.0, 10.0, 10.0, 1.0, 1.0, 0.5, 1.0, 0.5, 5.0])
    assert budgets(real, np.full(9, 0.5), 1.5).tolist() == [12, 15, 15, 2, 2, 1, 2, 1, 8]
    assert budgets(real, np.full(9, 1.0), 1.0).tolist()[:2] == [16, 20]
    assert budgets(real, np.zeros(9), 1.5).tolist() == [0] * 9
    hits = np.zeros((32, 9), bool)
    hits[:, 6] = True                                 # a high tom on every step: an acid line
    score = np.tile(np.linspace(0.0, 2.0, 32)[:, None], (1, 9))
    out = keep_time(hits, score, real=real, density=np.full(9, 0.5), mutes=np.zeros(9, bool),
                    cap=1.5, anchor=False, follow=1.0)
    assert np.flatnonzero(out[:, 6]).tolist() == [30, 31]          # its two best
    out = keep_time(hits, score, real=real, density=np.full(9, 0.5), mutes=np.zeros(9, bool),
                    cap=1.5, anchor=False, follow=0.0)
    assert np.flatnonzero(out[:, 6]).tolist() == [29, 30, 31]      # A/B: 1.5 x more room
    onsets = np.zeros(32, bool)
    onsets[[3, 7]] = True
    out = keep_time(hits, score, real=real, density=np.full(9, 0.5), mutes=np.zeros(9, bool),
                    cap=1.5, anchor=False, onsets=onsets, follow=1.0)
    assert np.flatnonzero(out[:, 6]).tolist() == [3, 7]            # the line's own steps first
    same = keep_time(hits, score, real=real, density=np.full(9, 0.5), mutes=np.zeros(9, bool),
                     cap=0.0, anchor=False)
    assert same.sum() == 32                                        # cap 0: no budget


def test_kit_keeps_beat_one_with_the_kick_or_the_lowest_voice_left():
    from grooverack.model.kit import keep_time

    hits = np.zeros((32, 9), bool)
    score = np.zeros((32, 9))
    args = dict(real=None, density=np.full(9, 0.5), cap=1.5, anchor=True)
    out = keep_time(hits, score, mutes=np.zeros(9, bool), **args)
    assert np.flatnonzero(out[:, 0]).tolist() == [0, 16] and out.sum() == 2
    no_kick = np.zeros(9, bool)
    no_kick[0] = True
    assert not keep_time(hits, score, mutes=no_kick, **args).any()   # silenced: silent
    out = keep_time(hits, score, mutes=no_kick, kick_removed=True, **args)
    assert not out[:, 0].any() and np.flatnonzero(out[:, 4]).tolist() == [0, 8, 16, 24]
    no_snare = np.zeros(9, bool)
    no_snare[1] = True
    score[[4, 12, 20, 28], 7] = 3.0                                  # the crash is no stand-in
    score[[4, 12, 20, 28], 6] = 1.0                                  # the high tom likes it most
    out = keep_time(hits, score, mutes=no_snare, snare_removed=True, **args)
    assert np.flatnonzero(out[:, 6]).tolist() == [4, 12, 20, 28] and not out[:, 1].any()
    everything = np.ones(9, bool)
    assert not keep_time(hits, score, mutes=everything, **args).any()


def test_blend_follow_moves_from_ab_to_the_groove():
    from grooverack.model.sampling import blend_follow

    rng = np.random.default_rng(1)
    ab = (rng.normal(0, 3, (32, 9)), rng.random((32, 9)), rng.uniform(-0.5, 0.5, (32, 9)))
    gr = (rng.normal(0, 3, (32, 9)), rng.random((32, 9)), rng.uniform(-0.5, 0.5, (32, 9)))
    thr = np.full(9, 0.5)
    thr_ab = np.full(9, 0.6)
    x0, v0, _ = blend_follow(ab, gr, 0.0, thr_ab, thr)
    x1, v1, _ = blend_follow(ab, gr, 1.0, thr_ab, thr)
    sig = 1 / (1 + np.exp(-ab[0]))
    assert np.array_equal(x0 > 0, sig > 0.6 + 1e-6) or np.mean((x0 > 0) == (sig > 0.6)) > 0.99
    assert np.mean((x1 > 0) == (gr[0] > 0)) > 0.99
    assert np.allclose(v0, ab[1], atol=1e-6) and np.allclose(v1, gr[1], atol=1e-6)


def test_the_kits_colour_follows_by_colour_follow():
    """generation.colour_follow: open hat, toms, crash and ride stay A/B's at 0 whatever follow
    is; kick, snare and closed hat follow all the way; at 1 every voice follows alike."""
    from grooverack.model.sampling import COLOUR_VOICES, blend_follow, voice_follow
    from grooverack.voices import VOICE_NAMES

    colour = np.array([v in COLOUR_VOICES for v in VOICE_NAMES])
    assert list(np.flatnonzero(~colour)) == [0, 1, 2]  # kick, snare, closed hat keep time
    assert np.array_equal(voice_follow(0.8, 1.0), np.full(9, 0.8))
    assert np.array_equal(voice_follow(0.8, 0.0), np.where(colour, 0.0, 0.8))
    assert np.allclose(voice_follow(0.8, 0.5), np.where(colour, 0.4, 0.8))

    rng = np.random.default_rng(2)
    ab = (rng.normal(0, 3, (32, 9)), rng.random((32, 9)), rng.uniform(-0.5, 0.5, (32, 9)))
    gr = (rng.normal(0, 3, (32, 9)), rng.random((32, 9)), rng.uniform(-0.5, 0.5, (32, 9)))
    thr = np.full(9, 0.5)
    x_ab, v_ab, _ = blend_follow(ab, gr, 0.0, thr, thr)
    x_gr, v_gr, _ = blend_follow(ab, gr, 1.0, thr, thr)
    x, v, _ = blend_follow(ab, gr, voice_follow(1.0, 0.0), thr, thr)
    assert np.array_equal(x[:, colour] > 0, x_ab[:, colour] > 0)
    assert np.array_equal(x[:, ~colour] > 0, x_gr[:, ~colour] > 0)
    assert np.allclose(v[:, colour], v_ab[:, colour]) and np.allclose(v[:, ~colour], v_gr[:, ~colour])


def test_blend_follow_keeps_the_order_of_cells_no_decode_wants():
    """Past p = 1e-6 the logit goes on in p: the kit's floor ranks those cells, and tied at the
    clip it picked them by step index (the ride's floor moving as follow left 0)."""
    from grooverack.model.sampling import blend_follow

    x_ab = np.tile(np.linspace(-12.0, -6.0, 32)[:, None], (1, 9))  # A/B's surest last
    gr = (np.full((32, 9), -9.0), np.zeros((32, 9)), np.zeros((32, 9)))
    ab = (x_ab, np.zeros((32, 9)), np.zeros((32, 9)))
    x, _, _ = blend_follow(ab, gr, 0.1, np.full(9, 0.7), np.full(9, 0.3))  # A/B's threshold higher
    assert np.isfinite(x).all()
    assert (np.diff(x[:, 0]) > 0).all()          # the order of A/B's logits, no ties
    assert (x < np.log(1e-6 / (1 - 1e-6)) + 1e-3).all()  # all of them past the clip


def test_a_hit_the_kit_adds_plays_as_loud_as_the_voice_s_own():
    """The decoder's velocity where it wanted no hit is near 0: a floor's or the one's added hit
    would be counted and never heard. It plays at the voice's own mean (ADDED_VELOCITY where the
    voice has none of its own: never another voice's, which a mute would change); the model's
    own hits keep theirs."""
    from grooverack.model.sampling import ADDED_VELOCITY, added_velocities

    vel = np.full((32, 9), 0.02, np.float32)
    sampled = np.zeros((32, 9), bool)
    sampled[[0, 8], 1] = True
    vel[[0, 8], 1] = (0.9, 0.5)            # the snare's own: mean 0.7
    sampled[4, 2], vel[4, 2] = True, 0.4   # the hat's own
    hits = sampled.copy()
    hits[[12, 20], 1] = True               # added snares
    hits[[3, 7], 8] = True                 # added ride: the voice has none of its own
    hits[6, 2], vel[6, 2] = True, 0.8      # added, louder than the hat's mean already
    out = added_velocities(hits, sampled, vel)
    assert np.allclose(out[[12, 20], 1], 0.7) and np.allclose(out[[3, 7], 8], ADDED_VELOCITY)
    assert np.isclose(out[6, 2], 0.8) and np.allclose(out[[0, 8], 1], (0.9, 0.5))
    assert np.array_equal(out[~hits], vel[~hits])
    assert np.array_equal(added_velocities(sampled, sampled, vel), vel)  # nothing added
