"""ModelRunner on the shipped model files (real onnxruntime), and its errors for bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from grooverack.errors import ModelError
from grooverack.model.runner import MANIFEST_NAME, ModelRunner, default_manifest_path, sha256_file
from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES


def groove(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hits = (rng.random(STEPS) < 0.6).astype(np.float32)
    return np.stack([hits, hits * rng.uniform(0.2, 1, STEPS), hits * rng.uniform(-0.4, 0.4, STEPS)],
                    axis=-1).astype(np.float32)


@pytest.fixture()
def models_copy(tmp_path: Path, repo_root: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(repo_root / "models", dst)
    return dst


def rewrite(manifest: Path, **changes) -> None:
    data = json.loads(manifest.read_text())
    data.update(changes)
    manifest.write_text(json.dumps(data))


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_shipped_model_shapes_and_ranges(variant: str) -> None:
    runner = ModelRunner(variant=variant)
    assert runner.manifest_path == default_manifest_path()
    assert runner.voices == VOICE_NAMES
    assert runner.thresholds.shape == (NUM_VOICES,)
    mu, logvar = runner.encode(groove())
    assert mu.shape == logvar.shape == (runner.latent_size,)
    assert mu.dtype == np.float32 and np.isfinite(mu).all() and np.isfinite(logvar).all()
    for genre in range(max(1, len(runner.genres))):
        h, v, o = runner.decode(mu, genre=genre)
        assert h.shape == v.shape == o.shape == (STEPS, NUM_VOICES)
        assert np.isfinite(h).all()
        assert (v >= 0).all() and (v <= 1).all()
        assert (o >= -0.5).all() and (o <= 0.5).all()


def test_batch_matches_single_items() -> None:
    runner = ModelRunner()
    grooves = np.stack([groove(s) for s in range(4)])
    mu_b, lv_b = runner.encode_batch(grooves)
    genres = np.arange(4) % max(1, len(runner.genres))
    h_b, v_b, o_b = runner.decode_batch(mu_b, genres)
    for i in range(4):
        mu, lv = runner.encode(grooves[i])
        np.testing.assert_allclose(mu, mu_b[i], atol=1e-4)
        h, v, o = runner.decode(mu_b[i], genre=int(genres[i]))
        np.testing.assert_allclose(h, h_b[i], atol=1e-4)
        np.testing.assert_allclose(v, v_b[i], atol=1e-4)


def test_int8_stays_close_to_fp32() -> None:
    a, b = ModelRunner(variant="int8"), ModelRunner(variant="fp32")
    grooves = np.stack([groove(s) for s in range(16)])
    pa = 1 / (1 + np.exp(-a.decode_batch(b.encode_batch(grooves)[0])[0]))
    pb = 1 / (1 + np.exp(-b.decode_batch(b.encode_batch(grooves)[0])[0]))
    assert np.mean(np.abs(pa - pb)) < 0.02


def test_bad_inputs_are_refused() -> None:
    runner = ModelRunner()
    with pytest.raises(ValueError, match="groove"):
        runner.encode(np.zeros((16, 3), np.float32))
    with pytest.raises(ValueError, match="latent"):
        runner.decode(np.zeros(runner.latent_size + 1, np.float32))
    if runner.genres:
        with pytest.raises(ValueError, match="genre"):
            runner.decode(np.zeros(runner.latent_size, np.float32), genre=len(runner.genres))
        with pytest.raises(ValueError, match="genre"):
            runner.decode(np.zeros(runner.latent_size, np.float32), genre=-1)
        with pytest.raises(ValueError, match="genre"):
            runner.decode_batch(np.zeros((2, runner.latent_size), np.float32), genre=[0, -1])
        # one genre as a numpy integer takes the scalar path and gives the batch's answer
        z = np.random.default_rng(1).standard_normal(runner.latent_size).astype(np.float32)
        one = runner.decode(z, genre=np.int64(2), bpm=np.float32(97.0))[0]
        batch = runner.decode_batch(np.stack([z, z]), genre=np.array([0, 2]), bpm=[120.0, 97.0])[0]
        np.testing.assert_array_equal(one, batch[1])
        assert runner.genre_index("any") == 0
        with pytest.raises(ValueError, match="allowed"):
            runner.genre_index("polka")


def test_env_var_points_at_another_models_folder(models_copy: Path, monkeypatch) -> None:
    monkeypatch.setenv("GROOVERACK_MODELS", str(models_copy))
    assert default_manifest_path() == models_copy / MANIFEST_NAME
    assert ModelRunner().manifest_path == models_copy / MANIFEST_NAME


def test_missing_manifest_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ModelError, match="nowhere.json"):
        ModelRunner(path)


def test_corrupt_manifest_names_the_file(models_copy: Path) -> None:
    manifest = models_copy / MANIFEST_NAME
    manifest.write_text("{ not json")
    with pytest.raises(ModelError, match=str(manifest)):
        ModelRunner(manifest)


@pytest.mark.parametrize("changes, words", [
    ({"format": 99}, "format"),
    ({"voices": ["kick"] * 9}, "voices"),
    ({"thresholds": [0.5] * 3}, "thresholds"),
    ({"genres": ["rock", "any"]}, "genres"),
    ({"bar_swap": "mean"}, "bar_swap"),
    ({"removal_thresholds": {"bass": [0.5] * 9}}, "removal_thresholds"),
    ({"removal_thresholds": {"kick": [0.5] * 3}}, "removal_thresholds"),
])
def test_wrong_manifest_format_names_file_and_field(models_copy: Path, changes, words) -> None:
    manifest = models_copy / MANIFEST_NAME
    rewrite(manifest, **changes)
    with pytest.raises(ModelError, match=words) as info:
        ModelRunner(manifest)
    assert str(manifest) in str(info.value)


def test_unknown_variant(models_copy: Path) -> None:
    with pytest.raises(ModelError, match="variant"):
        ModelRunner(models_copy / MANIFEST_NAME, variant="fp16")


def test_missing_onnx_file_names_it(models_copy: Path) -> None:
    (models_copy / "grooverack-decoder.int8.onnx").unlink()
    with pytest.raises(ModelError, match="grooverack-decoder.int8.onnx.*not found"):
        ModelRunner(models_copy / MANIFEST_NAME)


def test_damaged_onnx_file_fails_its_hash(models_copy: Path) -> None:
    path = models_copy / "grooverack-encoder.int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="grooverack-encoder.int8.onnx.*sha256"):
        ModelRunner(models_copy / MANIFEST_NAME)


def test_garbage_onnx_file_is_not_loadable(models_copy: Path) -> None:
    path = models_copy / "grooverack-encoder.int8.onnx"
    path.write_bytes(b"this is not a protobuf" * 10)
    manifest = models_copy / MANIFEST_NAME
    data = json.loads(manifest.read_text())
    data["sha256"][path.name] = sha256_file(path)
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="grooverack-encoder.int8.onnx.*not a loadable ONNX"):
        ModelRunner(manifest)


def test_swapped_roles_are_caught_by_metadata(models_copy: Path) -> None:
    manifest = models_copy / MANIFEST_NAME
    data = json.loads(manifest.read_text())
    pair = data["variants"]["int8"]
    pair["encoder"], pair["decoder"] = pair["decoder"], pair["encoder"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="grooverack-decoder.int8.onnx.*role"):
        ModelRunner(manifest)


def test_foreign_onnx_file_is_refused(models_copy: Path) -> None:
    """A valid ONNX graph without grooverack metadata (someone else's model) is refused."""
    import onnx
    from onnx import TensorProto, helper

    path = models_copy / "grooverack-encoder.int8.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["groove"], ["mu"])], "foreign",
                              [helper.make_tensor_value_info("groove", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("mu", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, ir_version=8,
                               opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError, match="grooverack-encoder.int8.onnx.*metadata"):
        ModelRunner(models_copy / MANIFEST_NAME, verify_hashes=False)


# --- both bar views (the manifest's bar_swap) -------------------------------------------------------
def test_shipped_model_decodes_a_followed_groove_in_both_bar_views() -> None:
    runner = ModelRunner()
    assert runner.bar_swap  # the shipped thresholds were chosen for it
    g = groove(3)
    mus = runner.encode_views(g)
    assert mus.shape == (2, runner.latent_size)
    # the second view is the groove with its two bars exchanged, encoded in the same call
    pair = np.stack([g, np.roll(g, 16, axis=0)])
    want_mu, _ = runner._encoder.run(None, {"groove": pair})
    np.testing.assert_array_equal(mus, want_mu)
    logits, vel, off = runner.decode_views(mus, 0, 120.0)
    assert logits.shape == vel.shape == off.shape == (STEPS, NUM_VOICES)
    # pooled by hand: both decoded together, the second rolled back a bar, mean of the odds
    h, v, o = runner.decode_batch(mus, 0, 120.0) if not runner.per_item else \
        runner._decoder_plain.run(None, {k: x for k, x in runner._decoder_feeds(mus, 0, 120.0)
                                         .items() if k != "removed"})
    h1, v1, o1 = (np.roll(a[1], -16, axis=0) for a in (h, v, o))
    np.testing.assert_allclose(logits, np.logaddexp(h[0], h1) - np.log(2.0), atol=1e-5)
    np.testing.assert_allclose(vel, (v[0] + v1) / 2, atol=1e-6)
    np.testing.assert_allclose(off, (o[0] + o1) / 2, atol=1e-6)
    # a groove whose bars are the same gives views that agree (up to int8 activation scales)
    same = np.concatenate([g[:16], g[:16]])
    m2 = runner.encode_views(same)
    np.testing.assert_allclose(m2[0], m2[1], atol=1e-6)
    # weight 0 is the first view alone; a removed group reaches both views
    first = runner.decode_views(mus, 0, 120.0, weight=0.0)
    np.testing.assert_allclose(first[0], h[0], atol=1e-6)
    kick = np.eye(len(runner.removal_groups), dtype=np.float32)[0]
    removed = runner.decode_views(mus, 0, 120.0, kick)
    assert not np.allclose(removed[0], logits)
    with pytest.raises(ValueError, match="pair"):
        runner.decode_views(mus[:1], 0, 120.0)


def test_pool_views_mixes_odds_by_weight() -> None:
    from grooverack.model.runner import pool_views

    a = (np.full((2, 2), 0.0, np.float32), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    b = (np.full((2, 2), np.log(3.0), np.float32), np.ones((2, 2), np.float32),
         np.full((2, 2), 0.4, np.float32))
    h, v, o = pool_views(a, b, 0.5)          # odds 1 and 3 -> 2
    np.testing.assert_allclose(h, np.log(2.0), atol=1e-6)
    np.testing.assert_allclose(v, 0.5)
    np.testing.assert_allclose(o, 0.2)
    h, v, _ = pool_views(a, b, 0.25)         # 0.75 * 1 + 0.25 * 3 = 1.5
    np.testing.assert_allclose(h, np.log(1.5), atol=1e-6)
    np.testing.assert_allclose(v, 0.25)
    assert pool_views(a, b, 0.0) is a
    np.testing.assert_array_equal(pool_views(a, b, 1.0)[0], b[0])


def test_a_manifest_without_bar_swap_decodes_once(models_copy: Path) -> None:
    manifest = models_copy / MANIFEST_NAME
    data = json.loads(manifest.read_text())
    del data["bar_swap"]
    manifest.write_text(json.dumps(data))
    assert not ModelRunner(manifest).bar_swap


def test_thresholds_for_a_removed_group() -> None:
    runner = ModelRunner()
    assert set(runner.removal_thresholds) == set(runner.removal_groups)
    np.testing.assert_array_equal(runner.thresholds_for(None), runner.thresholds)
    none = np.zeros(len(runner.removal_groups), np.float32)
    np.testing.assert_array_equal(runner.thresholds_for(none), runner.thresholds)
    kick, snare = (np.eye(len(runner.removal_groups), dtype=np.float32)[i] for i in (0, 1))
    np.testing.assert_array_equal(runner.thresholds_for(kick), runner.removal_thresholds["kick"])
    both = runner.thresholds_for(kick + snare)  # two removed: the lower of their sets per voice
    np.testing.assert_array_equal(both, np.minimum(runner.removal_thresholds["kick"],
                                                   runner.removal_thresholds["snare"]))
