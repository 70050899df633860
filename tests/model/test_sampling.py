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
