"""Generator on the fake ONNX model through the real ModelRunner: latents, caching, determinism,
genres, the worker thread (coalescing, errors, heartbeat)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from grooverack.controls import GenerationControls
from grooverack.engine.generator import Generator, Request
from grooverack.model.runner import ModelRunner

from tests.rig.fakemodel import build_fake_model


def groove_on(steps, velocity=0.9):
    g = np.zeros((32, 3), np.float32)
    for s in steps:
        g[s] = (1.0, velocity, 0.0)
    return g


REQUEST_FIELDS = ("genre", "variation", "bpm", "fill")


def request(gen: Generator, serial=1, groove=None, version=0, **kw) -> Request:
    """A request; `density` the effective density per voice (the knob at 0.5, so the per-voice
    values are the effective ones exactly), the other keywords GenerationControls' fields or
    Request's own (genre index, variation, bpm, fill)."""
    own = {k: kw.pop(k) for k in REQUEST_FIELDS if k in kw}
    values = dict(follow=1.0, morph=0.0, uncertainty=0.0, voice_density=kw.pop("density", (0.5,) * 9))
    values.update(kw)
    return Request(controls=GenerationControls(**values), z_a=gen.z_a.copy(), z_b=gen.z_b.copy(),
                   groove=groove if groove is not None else groove_on(range(0, 32, 4)),
                   groove_version=version, serial=serial, **{"genre": 0, "variation": 0, **own})


def test_sync_generation_is_deterministic(fake_runner):
    a, b = Generator(fake_runner, seed=3), Generator(fake_runner, seed=3)
    pa = a.generate(request(a, uncertainty=0.6, variation=2))
    pb = b.generate(request(b, uncertainty=0.6, variation=2))
    assert pa.same_as(pb) and pa.hits.any()
    a.request(request(a, serial=9))
    taken = a.buffer.take()
    assert taken is not None and taken.serial == 9


def test_encoder_runs_only_for_a_new_groove_decoders_only_for_new_latents(fake_runner):
    """Two decodes, each cached: A/B's and the groove's; follow crossfades them (no decode)."""
    g = Generator(fake_runner)
    g.generate(request(g, version=1))
    assert (g.encodes, g.decodes) == (1, 2)
    g.generate(request(g, version=1, density=(0.8,) * 9))   # sampling only
    assert (g.encodes, g.decodes) == (1, 2)
    g.generate(request(g, version=1, follow=0.5))           # follow moved: a crossfade only
    assert (g.encodes, g.decodes) == (1, 2)
    g.generate(request(g, version=2, groove=groove_on([1, 5]), follow=0.5))
    assert (g.encodes, g.decodes) == (2, 3)                 # the groove's decode alone
    g.generate(request(g, version=2, groove=groove_on([1, 5]), follow=0.5, morph=0.5))
    assert (g.encodes, g.decodes) == (2, 4)                 # A/B's decode alone


def test_follow_changes_each_cell_at_most_once_over_the_knob(fake_runner):
    """The crossfade is monotone per cell: sweeping follow 0 -> 1 flips a cell once at most."""
    g = Generator(fake_runner)
    groove = groove_on([0, 3, 6, 10, 12, 19, 22, 27])
    pats = [g.generate(request(g, version=1, groove=groove, follow=f / 20,
                               anchor=False, kit_cap=0.0)).hits for f in range(21)]
    flips = sum((a != b).astype(int) for a, b in zip(pats, pats[1:], strict=False))
    assert flips.max() <= 1
    assert (pats[0] != pats[-1]).any()


def test_follow_one_tracks_the_groove_follow_zero_ignores_it(fake_runner):
    g = Generator(fake_runner)
    on_beats = g.generate(request(g, version=1, groove=groove_on(range(0, 32, 4))))
    off_beats = g.generate(request(g, version=2, groove=groove_on(range(2, 32, 4))))
    assert not on_beats.same_as(off_beats)
    kick = 0
    assert set(np.nonzero(on_beats.hits[:, kick])[0]) >= set(range(0, 32, 4))
    encodes = g.encodes
    x = g.generate(request(g, version=3, groove=groove_on(range(0, 32, 4)), follow=0.0))
    y = g.generate(request(g, version=4, groove=groove_on(range(2, 32, 4)), follow=0.0))
    assert x.same_as(y) and g.encodes == encodes     # follow 0: the encoder is not even run


def test_latents_random_seeded_and_settable(fake_runner):
    g1, g2 = Generator(fake_runner, seed=5), Generator(fake_runner, seed=5)
    assert np.array_equal(g1.z_a, g2.z_a) and not np.array_equal(g1.z_a, g1.z_b)
    z = g1.randomize("a")
    assert np.array_equal(z, g2.randomize("a")) and np.array_equal(g1.z_a, z)
    assert abs(float(z.std()) - 1.0) < 0.3
    g1.set_latent("b", np.zeros(g1.latent_size))
    assert not g1.z_b.any()
    with pytest.raises(ValueError, match="64"):
        g1.set_latent("a", np.zeros(3))
    with pytest.raises(ValueError, match="'a' or 'b'"):
        g1.set_latent("c", np.zeros(64))
    with pytest.raises(ValueError, match="non-finite"):
        g1.set_latent("a", np.full(64, np.nan))


def test_morph_moves_between_a_and_b(fake_runner):
    g = Generator(fake_runner)
    a = g.generate(request(g, follow=0.0, morph=0.0))
    b = g.generate(request(g, follow=0.0, morph=1.0))
    assert not a.same_as(b)


def test_genre_changes_the_decoder_input(tmp_path):
    runner = ModelRunner(build_fake_model(tmp_path, genres=("any", "rock", "funk"), seed=2))
    g = Generator(runner)
    outs = [g.generate(request(g, genre=i, density=(0.9,) * 9)) for i in range(3)]
    assert g.decodes == 6   # A/B and the groove, for each genre
    assert not (outs[0].same_as(outs[1]) and outs[1].same_as(outs[2]))


def test_threaded_worker_coalesces_keeps_last_good_and_beats(tmp_path, caplog):
    runner = ModelRunner(build_fake_model(tmp_path, genres=("any", "rock")))
    g = Generator(runner, threaded=True)
    try:
        assert g.alive
        for serial in range(1, 201):
            g.request(request(g, serial=serial, morph=serial / 200, follow=0.3))
        assert g.wait_idle(10.0)
        newest = g.buffer.take()
        assert newest is not None and newest.serial == 200
        assert g.generated < 200                         # only the newest mattered
        with caplog.at_level(logging.ERROR, logger="grooverack.generator"):
            g.request(request(g, serial=201, genre=9))   # the runner refuses: genre out of range
            assert g.wait_idle(10.0)
        assert g.errors == 1 and "genre" in g.last_error and "genre" in caplog.text
        assert g.buffer.take() is None                   # nothing half-made was offered
        assert g.alive
        beat = g.heartbeat
        g.request(request(g, serial=202))
        assert g.wait_idle(10.0)
        assert g.buffer.take().serial == 202 and g.heartbeat >= beat
    finally:
        g.close()
    assert not g.alive


def test_an_empty_groove_plays_the_latents(fake_runner):
    g = Generator(fake_runner)
    empty = g.generate(request(g, groove=np.zeros((32, 3), np.float32), follow=1.0))
    ab = g.generate(request(g, follow=0.0))
    assert empty.same_as(ab) and g.encodes == 0


def test_synchronous_failure_is_logged_and_the_last_pattern_stays(tmp_path, caplog):
    runner = ModelRunner(build_fake_model(tmp_path, genres=("any", "rock")))
    g = Generator(runner)
    g.request(request(g, serial=1))
    assert g.buffer.take().serial == 1
    with caplog.at_level(logging.ERROR, logger="grooverack.generator"):
        g.request(request(g, serial=2, genre=5))
    assert g.errors == 1 and "genre" in caplog.text and g.buffer.take() is None
    g.request(request(g, serial=3))
    assert g.buffer.take().serial == 3


def test_a_followed_groove_is_decoded_in_both_bar_views_and_crossfaded_with_ab():
    """The shipped model (manifest bar_swap = mean_odds): a followed groove is encoded and
    decoded as is and bar-swapped in one call of each network, the two views pooled alike; A/B
    are decoded once, on their own; follow crossfades the two decodes; at follow 0 the encoder
    does not run."""
    from grooverack.model import sampling

    runner = ModelRunner()
    assert runner.bar_swap
    gen = Generator(runner, seed=1)
    g = groove_on([0, 3, 6, 8, 12, 16, 19, 22, 24, 27, 30])
    for follow in (1.0, 0.5):
        gen.generate(request(gen, groove=g, follow=follow, bpm=120.0))
        mus = runner.encode_views(g)
        want = runner.decode_views(np.stack([mus[0], mus[1]]), 0, 120.0, weight=0.5)
        np.testing.assert_allclose(gen._decoded["groove"][1][0], want[0], atol=1e-6)
        once = runner.decode(mus[0], 0, 120.0)
        assert not np.allclose(gen._decoded["groove"][1][0], once[0], atol=1e-3)
        ab = sampling.mix_latents(gen.z_a, gen.z_b, None, 0.0, 0.0)
        np.testing.assert_allclose(gen._decoded["ab"][1][0], runner.decode(ab, 0, 120.0)[0],
                                   atol=1e-6)
    encodes = gen.encodes
    gen.generate(request(gen, groove=g, follow=0.0, bpm=120.0))
    assert gen.encodes == encodes               # follow 0: no encoder
    np.testing.assert_allclose(gen._decoded["ab"][1][0], runner.decode(gen.z_a, 0, 120.0)[0],
                               atol=1e-6)


def test_a_removed_group_plays_at_the_thresholds_chosen_for_it():
    """Voice redistribution: with a group removed the generator samples with the runner's
    thresholds for that decode (the manifest's removal_thresholds), not the shared ones."""
    runner = ModelRunner()
    gen = Generator(runner, seed=1)
    snare = tuple(i == 1 for i in range(len(runner.removal_groups)))
    flags = np.asarray(snare, np.float32)
    np.testing.assert_array_equal(gen._thresholds(0.0, snare), runner.thresholds_for(flags))
    assert not np.array_equal(gen._thresholds(0.0, snare), gen._thresholds(0.0))
    # the bank's A/B shift applies on top of that set
    shifted = gen._thresholds(1.0, snare)
    if gen._hit_shift is not None:
        p = np.clip(runner.thresholds_for(flags), 1e-6, 1 - 1e-6)
        want = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + gen._hit_shift)))
        np.testing.assert_allclose(shifted, want, atol=1e-9)
