"""The genre classifier (`grooverack.training.genre_classifier`) and the style recognition
benchmark's own functions (`benchmarks/style_recognition.py`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from grooverack.model.runner import default_manifest_path  # noqa: E402
from grooverack.sim.patch import Hit  # noqa: E402
from grooverack.training import genre_classifier as gc  # noqa: E402
from grooverack.voices import NUM_VOICES, STEPS  # noqa: E402

from benchmarks import style_recognition as sr  # noqa: E402

MANIFEST = default_manifest_path()


def synthetic_loops(n: int, style: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Style 0: kick on the quarters, snare on 2 and 4. Style 1: kick on the off-16ths, ride on
    the 8ths. Hits dropped at random, velocities and offsets noisy."""
    h = np.zeros((n, STEPS, NUM_VOICES), np.float32)
    if style == 0:
        h[:, 0::4, 0] = 1
        h[:, 4::8, 1] = 1
    else:
        h[:, 3::4, 0] = 1
        h[:, 0::2, 8] = 1
    h *= rng.random(h.shape) > 0.2
    v = h * rng.uniform(0.3, 1.0, h.shape).astype(np.float32)
    o = h * rng.uniform(-0.3, 0.3, h.shape).astype(np.float32)
    return h, v, o


def two_styles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [synthetic_loops(n, s, rng) for s in (0, 1)]
    x = gc.loop_features(*[np.concatenate([p[k] for p in parts]) for k in range(3)])
    return x, np.repeat([0, 1], n)


def test_the_classifier_learns_two_synthetic_styles_and_keeps_the_best_epoch():
    x, y = two_styles(128, 1)
    xv, yv = two_styles(32, 2)
    model, history = gc.train_classifier(x, y, xv, yv, 2, epochs=8, width=8, batch=32,
                                         lr=1e-2, patience=8)
    assert len(history) == 8
    pred = gc.predict(model, xv)
    assert gc.balanced_accuracy(pred, yv, 2) >= 0.95
    # the weights kept are the best epoch's: its validation figure is what predict gives now
    best = max(h["validation_balanced"] for h in history)
    assert gc.balanced_accuracy(pred, yv, 2) == pytest.approx(best, abs=1e-4)


def test_a_checkpoint_round_trips(tmp_path):
    x, y = two_styles(16, 3)
    model, _ = gc.train_classifier(x, y, x, y, 2, epochs=1, width=8)
    path = tmp_path / "c.pt"
    gc.save_checkpoint(path, model, ["a", "b"], {"c": "a"}, {"seed": 7, "epochs": 1})
    loaded, info = gc.load_checkpoint(path)
    assert info["classes"] == ["a", "b"] and info["merges"] == {"c": "a"}
    np.testing.assert_allclose(gc.predict_logits(loaded, x), gc.predict_logits(model, x),
                               atol=1e-6)


def test_features_hold_hits_velocities_and_offsets_per_voice():
    h = np.zeros((1, STEPS, NUM_VOICES), np.float32)
    v, o = np.full_like(h, 0.7), np.full_like(h, 0.2)  # silent cells' values must not leak
    h[0, 5, 2] = 1
    x = gc.loop_features(h, v, o)
    assert x.shape == (1, 27, STEPS)
    assert x[0, 2, 5] == 1 and x[0, 9 + 2, 5] == pytest.approx(0.7)
    assert x[0, 18 + 2, 5] == pytest.approx(0.4) and x.sum() == pytest.approx(2.1)


def test_class_weights_balance_the_styles_and_floor_the_tiny_ones():
    y = np.array([0] * 800 + [1] * 200 + [2] * 10)
    w = gc.class_weights(y, 4, floor=100)
    assert w[3] == 0 and w[0] * 800 == pytest.approx(w[1] * 200)
    assert w[2] == pytest.approx(w[1] * 200 / 100)  # 10 loops weighed as 100
    assert w[:3].mean() == pytest.approx(1.0)


def test_recalls_recognition_and_the_criterion_on_hand_made_arrays():
    true = np.array([0, 0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 2, 1, 0, 2])
    np.testing.assert_allclose(gc.recalls(pred, true, 4)[:3], [0.5, 0.5, 1.0])
    assert np.isnan(gc.recalls(pred, true, 4)[3])
    assert gc.balanced_accuracy(pred, true, 4) == pytest.approx(2 / 3)
    assert sr.recognition(np.array([3, 3, 1, 3]), 3) == 0.75
    assert np.isnan(sr.recognition(np.array([], dtype=int), 0))
    rows = {"a": {"real_validation": 0.6, "follow0": 0.9, "follow05": 0.5},
            "b": {"real_validation": 0.2, "follow0": 0.1, "follow05": 0.4},
            "c": {"real_validation": float("nan"), "follow0": 1.0, "follow05": float("nan")}}
    cr = sr.criterion(rows)
    assert cr["styles"] == ["a", "b"]  # no real validation loops: not in the criterion
    assert cr["real_validation"] == pytest.approx(0.4)
    assert cr["follow0"] == pytest.approx(0.5) and cr["follow0_meets"]
    assert cr["follow05"] == pytest.approx(0.45) and cr["follow05_meets"]
    rows["b"]["follow05"] = 0.2
    assert not sr.criterion(rows)["follow05_meets"]


def test_classes_come_from_the_offered_styles_and_merges_move_labels():
    manifest = {"genres": ["any", "jazz", "pop", "rock"],
                "genres_offered": ["any", "jazz", "pop", "rock"]}
    assert gc.offered_classes(manifest) == ["jazz", "pop", "rock"]
    merges = gc.parse_merges(["pop=rock"])
    assert gc.offered_classes(manifest, merges) == ["jazz", "rock"]
    names = ("gospel", "jazz", "pop", "rock")
    np.testing.assert_array_equal(
        gc.style_labels(np.array([0, 1, 2, 3]), names, ["jazz", "rock"], merges), [-1, 0, 1, 1])
    with pytest.raises(ValueError, match="allowed STYLE=CLASS"):
        gc.parse_merges(["pop"])
    with pytest.raises(ValueError, match="not an offered class"):
        gc.offered_classes(manifest, {"pop": "gospel"})


def test_performance_folds_never_split_a_performance():
    sources = [f"drummer{d}/take{t}.mid:{b:03d}" for d in range(3) for t in range(4)
               for b in range(5)]
    y = np.array([d % 2 for d in range(3) for _ in range(4) for _ in range(5)])
    folds = gc.performance_folds(sources, y, 4, seed=1)
    files = np.array([s.rsplit(":", 1)[0] for s in sources])
    for f in set(files):
        assert len(set(folds[files == f])) == 1
    for c in (0, 1):  # 8 and 4 performances: every fold holds some of each
        assert set(folds[y == c]) == {0, 1, 2, 3}


def test_linear_svm_separates_two_blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 0.5, (100, 4)), rng.normal(1, 0.5, (100, 4))])
    y = np.repeat([0, 1], 100)
    model = sr.fit_linear_svm(x, y, 2, steps=100)
    assert (sr.svm_predict(model, x) == y).mean() > 0.95


def test_output_hits_become_grids_with_early_hits_on_the_next_step():
    step_s = 0.125
    hits = [Hit(0.0, 1, 0.8, 0),                      # loop 0, step 0
            Hit(4.7 * step_s, 2, 0.5, 1),             # step 5, played 0.3 early
            Hit((32 + 2.2) * step_s, 1, 0.6, 0),      # loop 1, step 2, 0.2 late
            Hit(3 * step_s, 3, 0.9, None),            # an output with no voice: ignored
            Hit(200 * step_s, 1, 1.0, 0)]             # past the loops asked for
    h, v, o = sr.grids_from_hits(hits, step_s, 2)
    assert h.sum() == 3
    assert h[0, 0, 0] and v[0, 0, 0] == pytest.approx(0.8)
    assert h[0, 5, 1] and o[0, 5, 1] == pytest.approx(-0.3)
    assert h[1, 2, 0] and o[1, 2, 0] == pytest.approx(0.2)


def test_a_groove_written_as_midi_reads_back_as_the_same_onsets(tmp_path):
    from grooverack.sim.sources import midi_source

    groove = np.zeros((STEPS, 3), np.float32)
    for s, vel, off in ((0, 1.0, -0.2), (6, 0.5, 0.1), (20, 0.25, 0.0), (31, 0.8, 0.45)):
        groove[s] = (1, vel, off)
    path = tmp_path / "g.mid"
    assert sr.groove_midi(groove, 97.0, path)
    src = midi_source(path)
    assert src.drum and src.cycle_steps == STEPS and src.bpm == pytest.approx(97.0, abs=0.01)
    steps = sorted(round(n.step, 3) for n in src.notes)
    assert steps == [6.1, 20.0, 31.45, 31.8]  # the early hit of step 0 closes the loop
    assert sorted(round(n.velocity, 2) for n in src.notes) == [0.25, 0.5, 0.8, 1.0]
    one_bar = np.zeros_like(groove)
    one_bar[3] = (1, 0.5, 0)
    assert not sr.groove_midi(one_bar, 120.0, tmp_path / "h.mid")


def test_a_follow0_render_reads_back_the_pattern_the_engine_played():
    grids, engine = sr.render({"follow": 0, "genre": "rock", "uncertainty": 0}, 3, MANIFEST,
                              loops=2)
    h, v, o = grids
    p = engine.pattern
    np.testing.assert_array_equal(h[1] > 0, np.asarray(p.hits, bool))
    np.testing.assert_allclose(v[1], np.where(p.hits, p.velocities, 0), atol=1e-6)
    np.testing.assert_allclose(o[1], np.where(p.hits, p.offsets, 0), atol=1e-4)


@pytest.mark.gmd
@pytest.mark.slow  # reads the whole GMD zip (~25 s)
def test_a_followed_validation_groove_is_heard_as_make_groove(gmd_zip, gmd_cache_dir, tmp_path):
    from grooverack.training.data import load_splits

    val = load_splits(gmd_zip, gmd_cache_dir)["validation"]
    midi = tmp_path / "g.mid"
    for r in (0, 700, 1500):
        assert sr.groove_midi(val.groove[r], float(val.bpm[r]), midi)
        (h, _, _), engine = sr.render({"follow": 0.5, "genre": "funk"}, r, MANIFEST,
                                      input_file=midi)
        np.testing.assert_allclose(np.asarray(engine.groove), val.groove[r], atol=1e-4)
        assert h[list(sr.FOLLOW_LOOPS)].sum() > 0


def test_the_shipped_manifest_gives_the_offered_styles_as_classes():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    classes = gc.offered_classes(manifest)
    assert "any" not in classes and classes == manifest["genres_offered"][1:]


def test_realism_distance_of_a_style_is_zero_for_the_same_counts_and_grows_with_a_gap():
    real = np.zeros((4, 32, 9), np.float32)
    real[:, ::4, 0] = 1.0                          # 8 kicks a loop
    real[:, 4::8, 1] = 1.0                         # 4 snares a loop
    assert sr.realism_distance(real, real) == 0.0
    doubled = real.copy()
    doubled[:, 2::4, 0] = 1.0                      # 16 kicks: 8 too many of 12 real hits
    assert abs(sr.realism_distance(doubled, real) - 8 / 12) < 1e-9
