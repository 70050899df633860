"""A small random-weight encoder/decoder pair with the model contract's names, shapes, metadata and
manifest, built with onnx.helper + numpy and run by the real onnxruntime (through ModelRunner).

Not random noise only: the encoder writes each groove step's hit into latent dimension `step`
(strongly), and the decoder reads latent `step` into that step's hit logits (kick, snare and hats
most), so with follow = 1 the drums land where the input plays, as a trained model's would. The
other latent dimensions and small random weights give A/B latents varied patterns.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import onnx
from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
VOICE_GAIN = np.array([1.6, 1.3, 1.6, 0.5, 0.4, 0.4, 0.3, 0.3, 0.8], dtype=np.float32)
VOICE_BIAS = np.array([0.0, -0.4, 0.6, -2.0, -2.5, -2.5, -3.0, -3.0, -1.0], dtype=np.float32)
DATA_HASH = "fake-model"


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def _meta(model: onnx.ModelProto, role: str, latent_size: int) -> None:
    for key, value in {"grooverack_format": "1", "latent_size": str(latent_size),
                       "voices": ",".join(VOICE_NAMES), "data_hash": DATA_HASH,
                       "role": role}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def encoder_model(latent_size: int, rng: np.random.Generator) -> onnx.ModelProto:
    w_mu = rng.normal(0.0, 0.05, (STEPS * 3, latent_size)).astype(np.float32)
    b_mu = np.zeros(latent_size, dtype=np.float32)
    for step in range(STEPS):
        w_mu[step * 3 + 0, step] += 4.0   # the hit of step s -> latent s
        w_mu[step * 3 + 1, step] += 0.5   # louder -> a little more
        b_mu[step] = -2.0
    w_lv = rng.normal(0.0, 0.05, (STEPS * 3, latent_size)).astype(np.float32)
    b_lv = np.full(latent_size, -3.0, dtype=np.float32)
    nodes = [
        helper.make_node("Reshape", ["groove", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_mu"], ["mu_raw"]),
        helper.make_node("Add", ["mu_raw", "b_mu"], ["mu"]),
        helper.make_node("MatMul", ["flat", "w_lv"], ["lv_raw"]),
        helper.make_node("Add", ["lv_raw", "b_lv"], ["logvar"]),
    ]
    graph = helper.make_graph(
        nodes, "grooverack_encoder",
        [helper.make_tensor_value_info("groove", TensorProto.FLOAT, ["B", STEPS, 3])],
        [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["B", latent_size]),
         helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["B", latent_size])],
        [_init("flat_shape", np.array([-1, STEPS * 3], dtype=np.int64)),
         _init("w_mu", w_mu), _init("b_mu", b_mu), _init("w_lv", w_lv), _init("b_lv", b_lv)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    _meta(model, "encoder", latent_size)
    onnx.checker.check_model(model)
    return model


def decoder_model(latent_size: int, genres: int, rng: np.random.Generator) -> onnx.ModelProto:
    cells = STEPS * NUM_VOICES
    w_h = rng.normal(0.0, 0.08, (latent_size, STEPS, NUM_VOICES)).astype(np.float32)
    for step in range(STEPS):
        w_h[step, step, :] += VOICE_GAIN   # latent s -> the hits of step s
    b_h = np.broadcast_to(VOICE_BIAS, (STEPS, NUM_VOICES)).astype(np.float32)
    w_v = rng.normal(0.0, 0.2, (latent_size, cells)).astype(np.float32)
    b_v = np.full(cells, 0.4, dtype=np.float32)
    w_o = rng.normal(0.0, 0.1, (latent_size, cells)).astype(np.float32)
    b_o = np.zeros(cells, dtype=np.float32)
    shape = np.array([-1, STEPS, NUM_VOICES], dtype=np.int64)
    inits = [_init("w_h", w_h.reshape(latent_size, cells)), _init("b_h", b_h.reshape(cells)),
             _init("w_v", w_v), _init("b_v", b_v), _init("w_o", w_o), _init("b_o", b_o),
             _init("out_shape", shape), _init("half", np.array(0.5, dtype=np.float32))]
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", latent_size])]
    nodes = []
    source = "z"
    if genres:
        emb = rng.normal(0.0, 0.5, (genres, latent_size)).astype(np.float32)
        emb[0] = 0.0   # "any": unconditioned
        inits.append(_init("genre_embedding", emb))
        inputs.append(helper.make_tensor_value_info("genre", TensorProto.INT64, ["B"]))
        nodes += [helper.make_node("Gather", ["genre_embedding", "genre"], ["genre_z"], axis=0),
                  helper.make_node("Add", ["z", "genre_z"], ["zg"])]
        source = "zg"
    nodes += [
        helper.make_node("MatMul", [source, "w_h"], ["h0"]),
        helper.make_node("Add", ["h0", "b_h"], ["h1"]),
        helper.make_node("Reshape", ["h1", "out_shape"], ["hit_logits"]),
        helper.make_node("MatMul", [source, "w_v"], ["v0"]),
        helper.make_node("Add", ["v0", "b_v"], ["v1"]),
        helper.make_node("Sigmoid", ["v1"], ["v2"]),
        helper.make_node("Reshape", ["v2", "out_shape"], ["velocities"]),
        helper.make_node("MatMul", [source, "w_o"], ["o0"]),
        helper.make_node("Add", ["o0", "b_o"], ["o1"]),
        helper.make_node("Tanh", ["o1"], ["o2"]),
        helper.make_node("Mul", ["o2", "half"], ["o3"]),
        helper.make_node("Reshape", ["o3", "out_shape"], ["offsets"]),
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", STEPS, NUM_VOICES])
               for name in ("hit_logits", "velocities", "offsets")]
    graph = helper.make_graph(nodes, "grooverack_decoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    _meta(model, "decoder", latent_size)
    onnx.checker.check_model(model)
    return model


def _quantize(folder: Path, files: dict[str, str]) -> dict[str, str]:
    """int8 copies (dynamic quantization keeps the metadata); fp32 files if it is unavailable."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return dict(files)
    out = {}
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # its advice to pre-process does not apply to these graphs
    try:
        for role, name in files.items():
            target = name.replace(".onnx", ".int8.onnx")
            quantize_dynamic(str(folder / name), str(folder / target), weight_type=QuantType.QInt8)
            out[role] = target
    finally:
        quiet.setLevel(level)
    return out


def build_fake_model(folder: str | Path, *, latent_size: int = 64,
                     genres: tuple[str, ...] = (), seed: int = 0,
                     thresholds: tuple[float, ...] = (0.5,) * NUM_VOICES,
                     quantize: bool = True) -> Path:
    """Write encoder, decoder (fp32, and int8 by onnxruntime's dynamic quantization) and
    `grooverack.json` into folder; returns the manifest path."""
    if latent_size < STEPS:
        raise ValueError(f"the fake model needs latent_size >= {STEPS}")
    if genres and genres[0] != "any":
        raise ValueError("genres[0] must be 'any'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {"encoder": "fake-encoder.onnx", "decoder": "fake-decoder.onnx"}
    onnx.save(encoder_model(latent_size, rng), folder / files["encoder"])
    onnx.save(decoder_model(latent_size, len(genres), rng), folder / files["decoder"])
    int8 = _quantize(folder, files) if quantize else dict(files)
    sha = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
           for name in {*files.values(), *int8.values()}}
    manifest = {
        "format": 1, "latent_size": latent_size, "voices": list(VOICE_NAMES),
        "genres": list(genres), "thresholds": list(thresholds),
        "variants": {"int8": int8, "fp32": dict(files)},
        "data_hash": DATA_HASH, "sha256": sha, "trained": False,
    }
    path = folder / "grooverack.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path

