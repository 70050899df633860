"""Export of a small random model built here: fp32 ONNX matches torch, int8 loads and stays close."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs torch (extra 'train')")

from grooverack.model.runner import MANIFEST_NAME, ModelRunner, sha256_file  # noqa: E402
from grooverack.training import export  # noqa: E402
from grooverack.voices import NUM_VOICES, STEPS  # noqa: E402

SMALL = {"latent_size": 16, "enc_d": 32, "enc_heads": 2, "enc_ff": 64, "enc_layers": 1,
         "dec_d": 32, "dec_heads": 2, "dec_ff": 64, "dec_layers": 1, "squeeze": 4}
GENRES = ["any", "funk", "rock"]


def grooves(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, STEPS)) < 0.5).astype(np.float32)
    return np.stack([hits, hits * rng.uniform(0.1, 1, (n, STEPS)),
                     hits * rng.uniform(-0.5, 0.5, (n, STEPS))], axis=-1).astype(np.float32)


def export_small(model, info, out: Path) -> tuple[object, Path, dict]:
    manifest = export.export_model(model, info, out, calibration=64, synthetic=True,
                                   verbose=False)
    return model, out, manifest


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[object, Path, dict]:
    model, info = export.random_model(seed=3, genres=GENRES, **SMALL)
    return export_small(model, info, tmp_path_factory.mktemp("models"))


def test_fp32_onnx_matches_torch(exported) -> None:
    model, out, _ = exported
    g = grooves(8)
    genres = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    ref = export.run_torch(model, g, genres)
    onnx_out = export.run_pair(out / export.ENCODER_FP32, out / export.DECODER_FP32, g, genres)
    diffs = export.parity(ref, onnx_out)
    print("fp32 ONNX vs torch max abs:", diffs)
    assert max(diffs.values()) < 1e-4


def test_genre_changes_the_decoder_output(exported) -> None:
    _, out, _ = exported
    runner = ModelRunner(out / MANIFEST_NAME, variant="fp32")
    z = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    assert not np.allclose(runner.decode(z, 0)[0], runner.decode(z, 2)[0])


def test_manifest_and_metadata(exported) -> None:
    _, out, manifest = exported
    on_disk = json.loads((out / MANIFEST_NAME).read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["trained"] is False and on_disk["latent_size"] == 16
    assert on_disk["genres"] == GENRES
    assert len(on_disk["thresholds"]) == NUM_VOICES
    assert on_disk["quantization"]["shipped"] in ("dynamic", "static")
    assert set(on_disk["quantization"]["candidates"]) == {"dynamic", "static"}
    for name, digest in on_disk["sha256"].items():
        assert sha256_file(out / name) == digest


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_exported_pair_loads_and_gives_valid_ranges(exported, variant: str) -> None:
    _, out, _ = exported
    runner = ModelRunner(out / MANIFEST_NAME, variant=variant)
    assert runner.latent_size == 16 and runner.genres == tuple(GENRES)
    mu, logvar = runner.encode_batch(grooves(5))
    h, v, o = runner.decode_batch(mu, np.array([0, 1, 2, 1, 0]))
    assert h.shape == v.shape == o.shape == (5, STEPS, NUM_VOICES)
    assert np.isfinite(h).all() and (v >= 0).all() and (v <= 1).all()
    assert (o >= -0.5).all() and (o <= 0.5).all()


def test_int8_is_smaller_and_close_to_fp32(exported) -> None:
    _, out, _ = exported
    a = ModelRunner(out / MANIFEST_NAME, variant="int8")
    b = ModelRunner(out / MANIFEST_NAME, variant="fp32")
    g = grooves(32, seed=7)
    pa = 1 / (1 + np.exp(-a.decode_batch(a.encode_batch(g)[0])[0]))
    pb = 1 / (1 + np.exp(-b.decode_batch(b.encode_batch(g)[0])[0]))
    assert np.mean(np.abs(pa - pb)) < 0.02
    assert a.encoder_path.stat().st_size < b.encoder_path.stat().st_size


def test_export_needs_checkpoint_or_random_init(capsys) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    assert export.run(parser.parse_args([])) == 2
    assert "CHECKPOINT" in capsys.readouterr().err


def test_unreadable_checkpoint_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="bad.pt"):
        export.load_checkpoint(bad)


def test_latencies_are_measured_in_turns(exported, monkeypatch) -> None:
    """Every candidate's latency is in the manifest, and the pairs are timed in turns, block by
    block (a busy spell of the machine must not fall on whichever method is measured first)."""
    _, out, manifest = exported
    quant = manifest["quantization"]
    assert set(quant["candidates"]) == {"dynamic", "static"}
    assert all(c["latency_ms"] > 0 for c in quant["candidates"].values())
    assert quant["fp32_latency_ms"] > 0

    order: list[str] = []
    real = export._session

    class Tagged:
        def __init__(self, path: Path) -> None:
            self._s, self._name = real(path), path.name

        def get_inputs(self):
            return self._s.get_inputs()

        def run(self, names, feeds):
            order.append(self._name)
            return self._s.run(names, feeds)

    monkeypatch.setattr(export, "_session", Tagged)
    files = json.loads((out / MANIFEST_NAME).read_text())["variants"]
    pairs = {v: (out / f["encoder"], out / f["decoder"]) for v, f in files.items()}
    lat = export.median_latencies_ms(pairs, grooves(1)[0], 1, rounds=2, block=3)
    assert set(lat) == set(pairs) and all(v > 0 for v in lat.values())
    encoders = [name for name in order if "encoder" in name]
    n = len(pairs)
    assert len(encoders) == 3 * n * 3  # warm-up round + 2 rounds, blocks of 3 calls
    turns = encoders[::3]
    assert all(encoders[i:i + 3] == [turns[i // 3]] * 3 for i in range(0, len(encoders), 3))
    assert turns[:n] == turns[n:2 * n] == turns[2 * n:] and len(set(turns[:n])) == n


# --- tempo conditioning: the decoder's third input ------------------------------------------------
@pytest.fixture(scope="module")
def tempo_exported(tmp_path_factory) -> tuple[object, Path, dict]:
    model, info = export.random_model(seed=5, genres=GENRES, tempo=True, **SMALL)
    with torch.no_grad():  # a random init barely moves with tempo; make the term count
        for p in model.decoder.tempo.parameters():
            p.mul_(20.0)
    return export_small(model, info, tmp_path_factory.mktemp("tempo-models"))


def test_tempo_model_exports_with_a_tempo_input(tempo_exported) -> None:
    model, out, manifest = tempo_exported
    assert manifest["tempo"] is True
    assert export.decoder_input_names(model) == ["z", "genre", "tempo"]
    g = grooves(8)
    genres = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    bpm = np.array([60, 90, 120, 0, 150, 174, 300, 45], np.float32)  # 0 = unknown
    ref = export.run_torch(model, g, genres, bpm)
    onnx_out = export.run_pair(out / export.ENCODER_FP32, out / export.DECODER_FP32, g, genres,
                               bpm)
    assert max(export.parity(ref, onnx_out).values()) < 1e-4


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_runner_feeds_the_tempo(tempo_exported, variant: str) -> None:
    _, out, _ = tempo_exported
    runner = ModelRunner(out / MANIFEST_NAME, variant=variant)
    assert runner.tempo
    z = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    slow, fast = runner.decode(z, 0, 70.0)[0], runner.decode(z, 0, 170.0)[0]
    assert not np.allclose(slow, fast)
    # None and 0 both mean "unknown"; a batch gives the numbers of its items
    np.testing.assert_array_equal(runner.decode(z, 0, None)[0], runner.decode(z, 0, 0.0)[0])
    h, _, _ = runner.decode_batch(np.stack([z, z]), 0, np.array([70.0, 170.0]))
    np.testing.assert_allclose(h[0], slow, atol=1e-5)
    np.testing.assert_allclose(h[1], fast, atol=1e-5)
    with pytest.raises(ValueError, match="tempo"):
        runner.decode(z, 0, -5.0)
    with pytest.raises(ValueError, match="tempo"):
        runner.decode(z, 0, float("nan"))


def test_runner_refuses_a_manifest_whose_tempo_flag_misstates_the_decoder(tempo_exported,
                                                                          tmp_path) -> None:
    import shutil

    from grooverack.errors import ModelError

    _, out, _ = tempo_exported
    for f in out.iterdir():
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["tempo"] = False
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"inputs \['z', 'genre', 'tempo'\]"):
        ModelRunner(path)
    manifest["tempo"] = "yes"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="tempo must be true or false"):
        ModelRunner(path)


def test_int8_leaves_the_tempo_layers_in_fp32(tempo_exported) -> None:
    import onnx

    _, out, _ = tempo_exported
    graph = onnx.load(str(out / export.DECODER_INT8)).graph
    tempo_ops = sorted(n.op_type for n in graph.node if "/tempo/" in n.name)
    # fp32 (the dynamic quantizer splits a Gemm it leaves alone into MatMul + Add)
    assert tempo_ops in (["Gemm", "Gemm", "Relu"], ["Add", "Add", "MatMul", "MatMul", "Relu"])
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "QuantizeLinear")
               for n in graph.node)  # the rest is int8


# --- paired tokens: each token two 16ths (VAEConfig.enc_pair / dec_pair) ---------------------------
@pytest.mark.parametrize("pairs", [(2, 2), (2, 1)])
def test_paired_tokens_export_and_match_torch(tmp_path: Path, pairs: tuple[int, int]) -> None:
    enc_pair, dec_pair = pairs
    model, info = export.random_model(seed=7, genres=GENRES, tempo=True, enc_pair=enc_pair,
                                      dec_pair=dec_pair, **SMALL)
    assert model.encoder.stack.positions.shape[0] == STEPS // enc_pair
    assert model.decoder.stack.positions.shape[0] == STEPS // dec_pair
    _, out, manifest = export_small(model, info, tmp_path)
    assert manifest["model"]["config"]["enc_pair"] == enc_pair
    g = grooves(8)
    genres = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    bpm = np.array([60, 90, 120, 0, 150, 174, 300, 45], np.float32)
    ref = export.run_torch(model, g, genres, bpm)
    assert ref["hit_logits"].shape == (8, STEPS, NUM_VOICES)
    onnx_out = export.run_pair(out / export.ENCODER_FP32, out / export.DECODER_FP32, g, genres,
                               bpm)
    assert max(export.parity(ref, onnx_out).values()) < 1e-4
    runner = ModelRunner(out / MANIFEST_NAME)  # int8
    h, v, o = runner.decode(runner.encode(g[0])[0], 1, 120.0)
    assert h.shape == v.shape == o.shape == (STEPS, NUM_VOICES)


def test_a_paired_token_holds_two_consecutive_steps() -> None:
    from grooverack.training.vae import VAEConfig

    model, _ = export.random_model(seed=7, genres=GENRES, enc_pair=2, dec_pair=2, **SMALL)
    model.eval()
    g = torch.from_numpy(grooves(1))
    g[:, 0] = torch.tensor([1.0, 0.9, 0.1])  # a hit on step 0, none on step 1
    g[:, 1] = 0.0
    with torch.no_grad():
        base = model.encoder(g)[0]
        # swapping the two steps inside token 0 changes the latent: the token sees its steps
        # in order
        swapped = g.clone()
        swapped[:, [0, 1]] = g[:, [1, 0]]
        assert not torch.allclose(model.encoder(swapped)[0], base)
        # the decoder writes a token's two steps to consecutive rows: the out layer's first
        # 27 outputs are step 2t, the next 27 step 2t + 1
        z = torch.zeros(1, SMALL["latent_size"])
        model.decoder.out.bias.zero_()
        model.decoder.out.bias[3 * NUM_VOICES] = 5.0  # token t's second step, hit logit 0
        model.decoder.out.weight.zero_()
        h, _, _ = model.decoder(z, torch.zeros(1, dtype=torch.long))
        assert torch.all(h[0, 1::2, 0] == 5.0) and torch.all(h[0, 0::2, 0] == 0.0)
    with pytest.raises(ValueError, match="dec_pair must divide"):
        VAEConfig(dec_pair=3)


# --- attention as one onnxruntime node (training/vae.py, OrtAttention) ---------------------------
def test_each_attention_exports_as_one_node(exported) -> None:
    import onnx

    model, out, manifest = exported
    for role, layers in (("encoder", SMALL["enc_layers"]), ("decoder", SMALL["dec_layers"])):
        fp32 = onnx.load(str(out / f"grooverack-{role}.fp32.onnx")).graph.node
        assert [n.op_type for n in fp32].count("Attention") == layers
        assert not [n for n in fp32 if n.op_type in ("Softmax", "Split", "Transpose")]
        if manifest["quantization"]["shipped"] == "dynamic":
            int8 = onnx.load(str(out / f"grooverack-{role}.int8.onnx")).graph.node
            assert [n.op_type for n in int8].count("QAttention") == layers


def test_ort_attention_matches_torchs_attention() -> None:
    """The function traced on export computes multi-head attention as torch's own kernel does:
    q, k, v in that order, each head's channels together, scale 1 / sqrt(head width)."""
    from grooverack.training.vae import OrtAttention
    from torch.nn import functional as F

    torch.manual_seed(0)
    b, d, heads = 2, 24, 3
    x, w, bias = torch.randn(b, STEPS, d), torch.randn(3 * d, d), torch.randn(3 * d)
    q, k, v = (t.reshape(b, STEPS, heads, d // heads).transpose(1, 2)
               for t in F.linear(x, w, bias).chunk(3, dim=-1))
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, STEPS, d)
    assert torch.allclose(OrtAttention.apply(x, w, bias, heads), ref, atol=1e-5)
    assert not torch.allclose(OrtAttention.apply(x, w, bias, 1), ref, atol=1e-3)
