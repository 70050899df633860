"""Rebuild a torch checkpoint from a shipped model's fp32 ONNX graphs.

`python -m grooverack.training.recover [models/grooverack.json] --out runs/shipped/best.pt`

The training runs (`runs/`) are not in the repository, so a fine-tune of the shipped model (new
inputs, other losses) starts from its exported weights. The export keeps the parameters it does
not fold under their module names (`decoder.genre.weight`, biases, LayerNorms, the Gemm
weights); each Linear that became a MatMul, and each attention block's qkv projection that
became one `com.microsoft::Attention` node, is an unnamed initializer holding the transposed
weight, in the order of the module's parameters. The graphs' nodes are walked in order, each
unnamed weight is given to the next Linear whose weight has no named initializer, shapes are
checked, and the rebuilt model must reproduce both graphs' outputs on random input (max
|difference| under `PARITY_ATOL`) or nothing is written.

The checkpoint has the layout `train.py` writes ("config", "model", "genres", ...), marked
`"recovered_from"` with the manifest's path and sha256s; `export.load_checkpoint` and
`train --init` read it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.voices import STEPS

PARITY_ATOL = 1e-4


def _initializers(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # noqa: BLE001 - any damage names the file
        raise SystemExit(f"recover: {path} is not a readable ONNX graph ({exc})") from None
    return graph, {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _unnamed_weights(graph: Any, inits: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(node kind, weight as torch stores it [out, in]) for each MatMul / Attention weight
    initializer, in node order."""
    out = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Attention") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in inits:
            out.append((node.op_type, np.ascontiguousarray(inits[name].T)))
    return out


def recover_state(model: Any, encoder: Path, decoder: Path) -> dict[str, Any]:
    """The state dict of `model` (a GrooveVAE of the manifest's configuration) from the graphs."""
    import torch

    state = model.state_dict()
    new: dict[str, Any] = {}
    for part, path in (("encoder", encoder), ("decoder", decoder)):
        graph, inits = _initializers(path)
        keys = [k for k in state if k.startswith(part + ".")]
        named = {k for k in keys if k in inits}
        for k in named:
            if tuple(inits[k].shape) != tuple(state[k].shape):
                raise SystemExit(f"recover: {path}: {k} is {list(inits[k].shape)}, the "
                                 f"configuration wants {list(state[k].shape)}")
            new[k] = torch.from_numpy(inits[k].copy())
        missing = [k for k in keys if k not in named]
        linear = [k for k in missing if k.endswith(".weight") and state[k].dim() == 2]
        weights = _unnamed_weights(graph, inits)
        if len(weights) != len(linear):
            raise SystemExit(f"recover: {path} has {len(weights)} unnamed weights, the "
                             f"configuration {len(linear)} Linear layers without one")
        for key, (kind, w) in zip(linear, weights, strict=True):
            if (kind == "Attention") != key.endswith(".qkv.weight"):
                raise SystemExit(f"recover: {path}: a {kind} weight does not belong to {key}")
            if tuple(w.shape) != tuple(state[key].shape):
                raise SystemExit(f"recover: {path}: {key} is {list(state[key].shape)}, the "
                                 f"graph's weight {list(w.shape)}")
            new[key] = torch.from_numpy(w)
        rest = [k for k in missing if k not in linear]
        if rest:
            raise SystemExit(f"recover: {path} lacks {', '.join(rest)}")
    return new


def parity(model: Any, encoder: Path, decoder: Path, genres: int, tempo: bool,
           seed: int = 0) -> float:
    """Largest |torch - onnxruntime| over both graphs' outputs on random grooves and latents."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    n = 8
    hits = (rng.random((n, STEPS)) < 0.4).astype(np.float32)
    groove = np.stack([hits, hits * rng.uniform(0.2, 1.0, (n, STEPS)),
                       hits * rng.uniform(-0.4, 0.4, (n, STEPS))], -1).astype(np.float32)
    z = rng.standard_normal((n, model.cfg.latent_size)).astype(np.float32)
    genre = rng.integers(0, max(1, genres), n).astype(np.int64)
    bpm = rng.uniform(50, 250, n).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    enc = ort.InferenceSession(str(encoder), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(decoder), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        mu, logvar = model.encoder(torch.from_numpy(groove))
        got = enc.run(None, {"groove": groove})
        for a, b in zip((mu, logvar), got, strict=True):
            worst = max(worst, float(np.abs(a.numpy() - b).max()))
        feeds: dict[str, np.ndarray] = {"z": z}
        names = {i.name for i in dec.get_inputs()}
        if "genre" in names:
            feeds["genre"] = genre
        if "tempo" in names:
            feeds["tempo"] = bpm
        ref = model.decoder(torch.from_numpy(z),
                            torch.from_numpy(genre) if genres else None,
                            torch.from_numpy(bpm) if tempo else None)
        got = dec.run(None, feeds)
        for a, b in zip(ref, got, strict=True):
            worst = max(worst, float(np.abs(a.numpy() - b).max()))
    return worst


def recover(manifest_path: Path, out: Path, plain: bool = False) -> dict[str, Any]:
    import torch

    from grooverack.model.runner import sha256_file
    from grooverack.training.vae import GrooveVAE, VAEConfig

    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        config = dict(manifest["model"]["config"])
        files = dict(manifest["variants"]["fp32"])
        if plain:  # the model without its voice-redistribution terms: from the plain decoder
            config.update({k: 0 for k in config if k.startswith("removal")})
            files["decoder"] = files.get("decoder_plain", files["decoder"])
        cfg = VAEConfig.from_dict(config)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"recover: {manifest_path} is not a model manifest with an fp32 "
                         f"variant and its configuration ({exc})") from None
    encoder, decoder = (manifest_path.parent / files["encoder"],
                        manifest_path.parent / files["decoder"])
    for path in (encoder, decoder):
        if not path.is_file():
            raise SystemExit(f"recover: {path} not found")
    model = GrooveVAE(cfg)
    model.load_state_dict(recover_state(model, encoder, decoder))
    model.eval()
    worst = parity(model, encoder, decoder, cfg.n_genres, cfg.tempo)
    if worst > PARITY_ATOL:
        raise SystemExit(f"recover: the rebuilt model differs from {encoder.name} / "
                         f"{decoder.name} by {worst:.2e} (allowed {PARITY_ATOL:.0e})")
    training = manifest.get("training", {})
    record = {"manifest": str(manifest_path), "encoder": sha256_file(encoder),
              "decoder": sha256_file(decoder), "parity_max_abs": worst}
    from grooverack.storage import atomic_write_bytes

    tmp = io.BytesIO()
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(),
                "raw": model.state_dict(), "genres": list(manifest.get("genres", [])),
                "data_hash": manifest.get("data_hash", ""), "teachers": [],
                "args": training.get("args", {}), "seed": training.get("seed"),
                "epoch": training.get("epoch"), "best_epoch": training.get("best_epoch"),
                "best_f1": training.get("validation_f1"), "recovered_from": record}, tmp)
    atomic_write_bytes(out, tmp.getvalue())
    return record


def main(argv: list[str] | None = None) -> int:
    from grooverack.model.runner import default_manifest_path

    parser = argparse.ArgumentParser(prog="python -m grooverack.training.recover",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("manifest", nargs="?", type=Path, default=None,
                        help="model manifest (default: the shipped models/grooverack.json)")
    parser.add_argument("--out", type=Path, default=Path("runs/shipped/best.pt"))
    parser.add_argument("--plain", action="store_true",
                        help="the model without its voice-redistribution terms (from the plain "
                             "decoder): the start of an encoder-only fine-tune")
    args = parser.parse_args(argv)
    manifest = args.manifest or Path(default_manifest_path())
    record = recover(manifest, args.out, plain=args.plain)
    print(f"recovered {manifest} -> {args.out} (torch vs onnxruntime max |diff| "
          f"{record['parity_max_abs']:.1e})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
