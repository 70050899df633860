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
