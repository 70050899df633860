"""Evaluation: metric math on hand-made arrays, threshold choice, baselines, the `eval` command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from grooverack import cli
from grooverack.training import evaluate as ev
from grooverack.training.data import Loops, make_groove
from grooverack.voices import NUM_VOICES, VOICE_NAMES


def empty(n=1):
    return np.zeros((n, 32, NUM_VOICES), np.float32)


# ------------------------------------------------------------------------------------ metrics


def test_metrics_on_a_hand_made_loop():
    th, tv, to = empty(), empty(), empty()
    ph, pv, po = empty(), empty(), empty()
    # played: kick on 0, 8, 16; snare on 4
    for step, voice, vel, off in [(0, 0, 0.8, 0.1), (8, 0, 0.6, -0.2), (16, 0, 1.0, 0.0),
                                  (4, 1, 0.5, 0.25)]:
        th[0, step, voice], tv[0, step, voice], to[0, step, voice] = 1, vel, off
    # predicted: kick on 0 and 8 (right), snare on 12 (wrong)
    for step, voice, vel, off in [(0, 0, 0.7, 0.0), (8, 0, 0.9, 0.1), (12, 1, 0.5, 0.0)]:
        ph[0, step, voice], pv[0, step, voice], po[0, step, voice] = 1, vel, off
    pv[0, 16, 0] = 0.99  # a velocity where no hit is predicted must not count
    m = ev.metrics(ph, pv, po, th, tv, to)
    assert m["hit_precision"] == pytest.approx(2 / 3)
    assert m["hit_recall"] == pytest.approx(2 / 4)
    assert m["hit_f1"] == pytest.approx(2 * 2 / (3 + 4))
    assert m["per_voice_f1"]["kick"] == pytest.approx(2 * 2 / (2 + 3))
    assert m["per_voice_f1"]["snare"] == 0.0
    assert m["per_voice_f1"]["ride"] == 0.0  # neither played nor predicted
    assert list(m["per_voice_f1"]) == list(VOICE_NAMES)
    assert m["velocity_mae"] == pytest.approx((0.1 + 0.3) / 2)
    assert m["offset_mae"] == pytest.approx((0.1 + 0.3) / 2)
    assert m["cell_accuracy"] == pytest.approx((288 - 1 - 2) / 288)
    assert set(ev.METRIC_KEYS) <= set(m)


def test_metrics_micro_average_pools_every_cell_of_every_loop():
    th, ph = empty(2), empty(2)
    th[0, :10, 2] = 1  # loop 0: 10 hats played, all predicted
    ph[0, :10, 2] = 1
    th[1, :2, 0] = 1  # loop 1: 2 kicks played, 6 predicted
    ph[1, :6, 0] = 1
    m = ev.metrics(ph, empty(2), empty(2), th, empty(2), empty(2))
    assert m["hit_precision"] == pytest.approx(12 / 16)  # not the mean of per-loop precisions
    assert m["hit_recall"] == 1.0
    assert m["per_voice_f1"]["closed_hat"] == 1.0
    assert m["per_voice_f1"]["kick"] == pytest.approx(4 / 8)
    assert m["velocity_mae"] == 0.0


def test_metrics_when_nothing_is_predicted():
    th = empty()
    th[0, 3, 4] = 1
    m = ev.metrics(empty(), empty(), empty(), th, empty(), empty())
    assert (m["hit_precision"], m["hit_recall"], m["hit_f1"]) == (0.0, 0.0, 0.0)
    assert m["velocity_mae"] is None and m["offset_mae"] is None
    assert m["cell_accuracy"] == pytest.approx(287 / 288)


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        ev.metrics(empty(2), empty(2), empty(2), empty(3), empty(3), empty(3))


# ---------------------------------------------------------------------------------- thresholds


def test_choose_thresholds_recovers_planted_thresholds():
    rng = np.random.default_rng(7)
    planted = np.array([0.35, 0.5, 0.2, 0.8, 0.65, 0.1, 0.9, 0.45, 0.55], np.float32)
    probs = rng.random((400, 32, NUM_VOICES), dtype=np.float32)
    hits = (probs > planted).astype(np.float32)
    # a little label noise away from the boundary must not move the choice
    flip = rng.random(hits.shape) < 0.01
    hits[flip] = 1 - hits[flip]
    np.testing.assert_allclose(ev.choose_thresholds(probs, hits), planted, atol=1e-6)


def test_choose_thresholds_prefers_one_half_when_nothing_distinguishes():
    probs = np.full((4, 32, NUM_VOICES), 0.01, np.float32)
    th = ev.choose_thresholds(probs, np.zeros_like(probs))
    assert th.tolist() == pytest.approx([0.5] * NUM_VOICES)
    assert ev.THRESHOLD_GRID[0] == 0.05 and ev.THRESHOLD_GRID[-1] == 0.95


# ---------------------------------------------------------------------------------- baselines


def test_majority_pattern_needs_more_than_half():
    hits, vel, off = empty(4), empty(4), empty(4)
    hits[:3, 0, 0] = 1  # 3 of 4: on
    vel[:3, 0, 0] = [0.2, 0.4, 0.9]
    off[:3, 0, 0] = [0.1, -0.1, 0.3]
    hits[:2, 4, 1] = 1  # exactly half: off
    vel[:, 8, 2] = 0.7  # velocity without a hit: ignored
    h, v, o = ev.majority_pattern(hits, vel, off)
    assert h.shape == (32, NUM_VOICES) and h.sum() == 1 and h[0, 0]
    assert v[0, 0] == pytest.approx(0.5)
    assert o[0, 0] == pytest.approx(0.1)
    assert v[8, 2] == 0


def test_nearest_neighbours_matches_brute_force_across_chunks():
    rng = np.random.default_rng(1)
    train = rng.random((50, 32, 3)).astype(np.float32)
    perm = rng.permutation(50)[:13]
    query = train[perm] + rng.normal(0, 1e-3, (13, 32, 3)).astype(np.float32)
    idx = ev.nearest_neighbours(train, query, chunk=4)
    assert idx.tolist() == perm.tolist()
    other = rng.random((7, 32, 3))
    brute = [int(np.argmin(((train - q) ** 2).sum(axis=(1, 2)))) for q in other]
    assert ev.nearest_neighbours(train, other, chunk=3).tolist() == brute


def _loops(hits, vel, off):
    n = len(hits)
    return Loops(hits, vel, off, make_groove(hits, vel, off), np.zeros(n, np.int64),
                 [f"tiny:{i}" for i in range(n)])


def test_baselines_on_a_tiny_set():
    # train: a "four on the floor" loop (x3) and a "backbeat" loop; test: one of each, slightly off
    four, back = empty(), empty()
    four[0, ::4, 0], back[0, 4::8, 1] = 1, 1
    train_h = np.concatenate([four, four, four, back])
    train = _loops(train_h, train_h * 0.8, empty(4))
    test_h = np.concatenate([four, back])
    test_v = test_h * 0.7
    test = _loops(test_h, test_v, empty(2))
    out = ev.evaluate_baselines(train, test)
    maj, nn = out["baseline_majority"], out["baseline_nearest"]
    # majority = four on the floor for both: right on loop 0, all wrong on loop 1
    assert maj["hit_precision"] == pytest.approx(0.5)
    assert maj["hit_recall"] == pytest.approx(8 / 12)
    # the grooves tell the loops apart (kick steps vs snare steps): nearest neighbour is perfect
    assert nn["hit_f1"] == 1.0
    assert nn["velocity_mae"] == pytest.approx(0.1)


# ------------------------------------------------------------------------------ the model path


class OneLoopRunner:
    """The runner contract without batched methods (the per-loop fallback)."""

    def __init__(self, runner):
        self._r = runner
        self.thresholds = runner.thresholds

    def encode(self, groove):
        return self._r.encode(groove)

    def decode(self, z, genre=0, bpm=None):
        return self._r.decode(z, genre, bpm)


@pytest.fixture(scope="module")
def shipped_runner(repo_root):
    from grooverack.model.runner import ModelRunner

    manifest = repo_root / "models" / "grooverack.json"
    if not manifest.exists():
        pytest.skip(f"no shipped model at {manifest}")
    return ModelRunner(manifest, "fp32")


def test_predict_probs_shapes_ranges_and_both_paths_agree(shipped_runner):
    rng = np.random.default_rng(3)
    hits = (rng.random((5, 32, NUM_VOICES)) < 0.15).astype(np.float32)
    grooves = make_groove(hits, hits * rng.random(hits.shape), hits * (rng.random(hits.shape) - 0.5))
    bpm = np.array([70.0, 95.0, 0.0, 120.0, 170.0], np.float32)  # 0 = unknown
    # as the module decodes a followed groove: the manifest's two bar views, pooled
    assert shipped_runner.bar_swap
    probs, vel, off = ev.predict_probs(shipped_runner, grooves, batch=2, bpm=bpm)
    assert probs.shape == vel.shape == off.shape == (5, 32, NUM_VOICES)
    assert probs.min() >= 0 and probs.max() <= 1
    assert vel.min() >= 0 and vel.max() <= 1 and off.min() >= -0.5 and off.max() <= 0.5
    pooled = shipped_runner.decode_views(shipped_runner.encode_views(grooves[4]), 0, 170.0)
    np.testing.assert_allclose(probs[4], 1 / (1 + np.exp(-pooled[0])), atol=1e-5)
    np.testing.assert_allclose(vel[4], pooled[1], atol=1e-6)
    # decoded once (bar_swap off): the batched calls and the one-loop fallback agree
    shipped_runner.bar_swap = False
    try:
        once = ev.predict_probs(shipped_runner, grooves, batch=2, bpm=bpm)[0]
    finally:
        shipped_runner.bar_swap = True
    single = ev.predict_probs(OneLoopRunner(shipped_runner), grooves, bpm=bpm)
    np.testing.assert_allclose(single[0], once, atol=1e-5)
    mu, _ = shipped_runner.encode(grooves[4])
    expect = 1 / (1 + np.exp(-shipped_runner.decode(mu, 0, 170.0)[0]))
    np.testing.assert_allclose(once[4], expect, atol=1e-5)
    assert not np.allclose(once[4], probs[4], atol=1e-3)  # the second view counts
    if shipped_runner.tempo:  # the tempo reaches the decoder
        other = 1 / (1 + np.exp(-shipped_runner.decode(mu, 0, 70.0)[0]))
        assert not np.allclose(once[4], other, atol=1e-5)


# ------------------------------------------------------------------------------- the command


def test_eval_refuses_to_tune_on_test(capsys):
    assert cli.main(["eval", "--split", "test", "--choose-thresholds"]) == 2
    assert "validation only" in capsys.readouterr().err
    assert cli.main(["eval", "--split", "train", "--choose-thresholds"]) == 2


def test_format_table_has_no_unreproduced_published_column():
    m = ev.metrics(empty(), empty(), empty(), empty(), empty(), empty())
    text = ev.format_table({"split": "test", "loops": 1, "models": {"int8": m}})
    assert "published" not in text and "0.616" not in text
    assert "accuracy, all 288 cells" in text and "F1 high_tom" in text


def _bootstrap_fixture():
    """Three performances of two loops each (one of them from eval_session): the prediction is
    perfect on the first, half right on the second, silent on the third."""
    th = empty(6)
    th[:, ::4, 0] = 1  # 8 kicks a loop
    ph = th.copy()
    ph[2:4, ::8, 0] = 0  # performance b: 4 of 8 kicks found
    ph[4:6] = 0          # performance c: nothing
    sources = ["drummer1/session1/a.mid:0", "drummer1/session1/a.mid:1",
               "drummer2/eval_session/b.mid:0", "drummer2/eval_session/b.mid:1",
               "drummer3/session2/c.mid:0", "drummer3/session2/c.mid:1"]
    return ph, th, sources


def test_file_bootstrap_resamples_whole_performances():
    ph, th, sources = _bootstrap_fixture()
    assert ev.performance_of("drummer1/session1/a.mid:12") == "drummer1/session1/a.mid"
    b = ev.file_bootstrap(ph, th, sources, resamples=4000, seed=1)
    assert b["performances"] == 3 and b["resamples"] == 4000 and b["level"] == 0.95
    point = ev.metrics(ph, th, th, th, th, th)["hit_f1"]
    assert b["hit_f1_low"] < point < b["hit_f1_high"]
    # per-file F1s are 1, 2/3 and 0: a resample can hold only c (F1 0) or only a (F1 1)
    assert b["hit_f1_low"] == pytest.approx(0.0) and b["hit_f1_high"] == pytest.approx(1.0)
    # the same seed gives the same interval; one performance gives no spread
    assert ev.file_bootstrap(ph, th, sources, resamples=4000, seed=1) == b
    one = ev.file_bootstrap(ph[:2], th[:2], sources[:2], resamples=200)
    assert one["performances"] == 1 and one["hit_f1_low"] == one["hit_f1_high"] == 1.0


def test_eval_session_is_reported_apart_from_the_rest():
    ph, th, sources = _bootstrap_fixture()
    parts = ev.split_parts(sources)
    assert parts["eval_session"].tolist() == [False, False, True, True, False, False]
    assert (parts["other"] == ~parts["eval_session"]).all()
    loops = Loops(th, th * 0.8, empty(6), make_groove(th, th * 0.8, empty(6)),
                  np.zeros(6, np.int64), sources)
    pred = (ph, ph * 0.8, empty(6))
    out = ev.with_intervals(ev.metrics(*pred, th, th * 0.8, empty(6)), pred, loops)
    assert out["bootstrap"]["performances"] == 3
    ev_part, other = out["parts"]["eval_session"], out["parts"]["other"]
    assert ev_part["loops"] == 2 and other["loops"] == 4
    assert ev_part["hit_f1"] == pytest.approx(2 * 8 / (8 + 16))  # 8 of 16 found, 8 predicted
    assert other["hit_f1"] == pytest.approx(2 * 16 / (16 + 32))
    assert ev_part["bootstrap"]["performances"] == 1 and other["bootstrap"]["performances"] == 2
    text = ev.format_table({"split": "test", "loops": 6, "models": {"int8": out}})
    assert "95 % interval (3 files)" in text
    assert "hit F1, eval_session (2 loops)" in text and "hit F1, other (4 loops)" in text
    assert "bootstrap over whole performances" in text


@pytest.mark.gmd
@pytest.mark.slow
def test_eval_end_to_end_on_the_real_split(gmd_zip, gmd_cache_dir, repo_root, tmp_path, capsys):
    if not (repo_root / "models" / "grooverack.json").exists():
        pytest.skip("no shipped model in models/")
    models = tmp_path / "models"
    shutil.copytree(repo_root / "models", models)
    manifest = models / "grooverack.json"
    common = ["--gmd", str(gmd_zip), "--cache-dir", str(gmd_cache_dir), "--model", str(manifest)]
    # thresholds: chosen on validation, written into the (copied) manifest
    assert cli.main(["eval", "--split", "validation", "--choose-thresholds", *common]) == 0
    written = json.loads(manifest.read_text())
    assert len(written["thresholds"]) == NUM_VOICES
    assert all(round(t, 2) in np.round(ev.THRESHOLD_GRID, 2) for t in written["thresholds"])
    assert written["thresholds_chosen_on"]["split"] == "validation"
    assert written["bar_swap"] == "mean_odds" and written["thresholds_chosen_on"]["bar_swap"] == \
        "mean_odds"  # the manifest's decode kept, and said with the thresholds chosen for it
    # voice redistribution: each group's own set, its voices at 1 (muted), F1 no worse than the
    # shared thresholds' against the re-voiced loops
    from grooverack.training.revoice import GROUP_VOICES

    assert set(written["removal_thresholds"]) == set(written["removal_groups"])
    for gi, group in enumerate(written["removal_groups"]):
        th = written["removal_thresholds"][group]
        assert all(th[v] == 1.0 for v in GROUP_VOICES[gi])
        row = written["thresholds_chosen_on"]["removal"][group]
        assert row["f1_objective_alone"] >= row["f1_shared"] - 1e-9
        # and lowered where needed until the remaining voices cover the groove's onsets as the
        # whole kit does
        assert row["onsets_covered"] >= row["onsets_covered_nothing_removed"]
    # the report on test with those thresholds
    out = tmp_path / "report.json"
    assert cli.main(["eval", "--split", "test", "--json", str(out), *common]) == 0
    report = json.loads(out.read_text())
    assert report["split"] == "test" and report["loops"] > 2000
    assert {"int8", "fp32", "baseline_majority", "baseline_nearest"} <= set(report["models"])
    for name, m in report["models"].items():
        assert set(ev.METRIC_KEYS) <= set(m), name
        assert list(m["per_voice_f1"]) == list(VOICE_NAMES)
        for key in ("hit_precision", "hit_recall", "hit_f1", "cell_accuracy"):
            assert 0 <= m[key] <= 1, (name, key)
    assert report["models"]["int8"]["thresholds"] == pytest.approx(written["thresholds"])
    # the baselines on the real test split: majority is weak, retrieval does better
    maj = report["models"]["baseline_majority"]["hit_f1"]
    nn = report["models"]["baseline_nearest"]["hit_f1"]
    assert 0.3 < maj < 0.5 and maj < nn < 0.7
    text = capsys.readouterr().out
    assert "published" not in text and "baseline_nearest" in text
    assert "95 % interval (75 files)" in text and "hit F1, eval_session" in text
    for name in ("int8", "baseline_nearest"):
        m = report["models"][name]
        assert m["bootstrap"]["performances"] == 75, name
        assert m["bootstrap"]["hit_f1_low"] < m["hit_f1"] < m["bootstrap"]["hit_f1_high"]
        assert m["parts"]["eval_session"]["loops"] + m["parts"]["other"]["loops"] == report["loops"]
    if written.get("trained", True):  # a trained model: the quantization and quality floors
        int8, fp32 = report["models"]["int8"]["hit_f1"], report["models"]["fp32"]["hit_f1"]
        assert abs(int8 - fp32) <= 0.01, (int8, fp32)
        assert int8 > maj, (int8, maj)


def test_style_genres_follow_the_manifest_and_reach_the_decoder(shipped_runner):
    from grooverack.training.data import STYLES

    if not shipped_runner.genres:
        pytest.skip("the shipped model has no genre conditioning")
    hits = empty(3)
    hits[:, ::4, 0] = 1
    loops = Loops(hits, hits * 0.8, empty(3), make_groove(hits, hits * 0.8, empty(3)),
                  np.array([STYLES.index("rock"), STYLES.index("jazz"), 0], np.int64),
                  ["a:0", "b:0", "c:0"])
    genres = ev.style_genres(shipped_runner, loops)
    assert [shipped_runner.genres[g] for g in genres] == ["rock", "jazz", STYLES[0]]
    probs = ev.predict_probs(shipped_runner, loops.groove, genre=genres)[0]
    for i, g in enumerate(genres):
        views = shipped_runner.encode_views(loops.groove[i])
        expect = 1 / (1 + np.exp(-shipped_runner.decode_views(views, int(g))[0]))
        np.testing.assert_allclose(probs[i], expect, atol=1e-5)


def test_threshold_objectives_trade_rare_voice_false_hits_for_micro_f1():
    """A rare voice whose own F1 peaks at a low threshold (many false hits): the per-voice
    objective takes it, the micro objective raises it, balanced stays near that voice's best."""
    rng = np.random.default_rng(3)
    n = 400
    hits = np.zeros((n, 32, 9), np.float32)
    hits[..., 0] = rng.random((n, 32)) < 0.4                  # a common, well-predicted voice
    hits[..., 4] = rng.random((n, 32)) < 0.03                 # a rare, badly predicted voice
    probs = np.where(hits > 0, 0.8, 0.2).astype(np.float32)
    probs[..., 4] = np.clip(0.3 * hits[..., 4] + rng.random((n, 32)) * 0.6, 0, 1)
    voice = ev.choose_thresholds(probs, hits, objective="voice")
    micro = ev.choose_thresholds(probs, hits, objective="micro")
    balanced = ev.choose_thresholds(probs, hits, objective="balanced")
    f1 = {name: ev.micro_f1(probs, hits, th) for name, th in
          (("voice", voice), ("micro", micro), ("balanced", balanced))}
    assert f1["micro"] >= f1["balanced"] >= f1["voice"]
    assert micro[4] >= balanced[4] >= voice[4]
    with pytest.raises(ValueError, match="objective"):
        ev.choose_thresholds(probs, hits, objective="test")


def test_cover_onsets_lowers_the_cheapest_voice_until_the_onsets_are_covered():
    """Two loops, groove onsets on steps 0 and 4 of each. Voice 0 (kick) is removed (threshold
    1); voice 1 is sure of step 0 and hesitant (0.32) on step 4, which the truth plays; voice 2 is
    hesitant (0.32) on step 4 too but the truth never plays it. Lowering voice 1 covers step 4 and
    gains F1, so it is the one lowered, just far enough; voice 2 stays."""
    probs = np.zeros((2, 32, NUM_VOICES), np.float32)
    truth = np.zeros_like(probs)
    groove = np.zeros((2, 32, 3), np.float32)
    groove[:, [0, 4], 0] = 1.0
    probs[:, 0, 1], probs[:, 4, 1], probs[:, 4, 2] = 0.9, 0.32, 0.32
    truth[:, [0, 4], 1] = 1.0
    th = np.full(NUM_VOICES, 0.5, np.float32)
    th[0] = 1.0
    out = ev.cover_onsets(probs, truth, groove, th, floor=1.0)
    assert out[0] == 1.0 and out[2] == 0.5
    assert out[1] == pytest.approx(0.3)   # the nearest grid step below 0.32
    # already covered: unchanged; a floor that cannot be reached stops at the grid's lowest
    assert np.array_equal(ev.cover_onsets(probs, truth, groove, out, floor=1.0), out)
    groove[:, 9, 0] = 1.0  # an onset no voice has any probability on
    low = ev.cover_onsets(probs, truth, groove, th, floor=1.0)
    assert low[0] == 1.0 and np.all(low[1:] >= ev.THRESHOLD_GRID[0] - 1e-6)
