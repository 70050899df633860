"""`grooverack export CHECKPOINT --out models/`: torch checkpoint -> ONNX fp32 + int8 + manifest.

Writes the encoder and decoder as separate graphs (a latent-only change then skips the encoder),
with a dynamic batch axis and the names and metadata of the model contract (ARCHITECTURE.md).
Checks the fp32 graphs against torch (max abs difference printed), quantizes to int8 twice with
onnxruntime's tools (dynamic, and static with calibration grooves from the train split), measures
both against fp32 and ships the better one as the `int8` variant. Finally writes
`grooverack.json` with the sha256 of every file.

`--random-init` exports an untrained model (manifest `"trained": false`) for integration and tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.model.runner import MANIFEST_FORMAT, MANIFEST_NAME, sha256_file
from grooverack.voices import NUM_VOICES, STEPS, VOICE_GROUPS, VOICE_NAMES

ENCODER_FP32 = "grooverack-encoder.fp32.onnx"
DECODER_FP32 = "grooverack-decoder.fp32.onnx"
ENCODER_INT8 = "grooverack-encoder.int8.onnx"
DECODER_INT8 = "grooverack-decoder.int8.onnx"
# a model with voice redistribution also ships its decoder without the removal terms: what the
# runner decodes with while no group is removed (the same numbers, without their cost)
DECODER_PLAIN_FP32 = "grooverack-decoder-plain.fp32.onnx"
DECODER_PLAIN_INT8 = "grooverack-decoder-plain.int8.onnx"
OPSET = 17
DEFAULT_THRESHOLD = 0.5
PARITY_TOLERANCE = 1e-3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="training checkpoint (.pt) to export")
    parser.add_argument("--out", default="models", help="folder to write (default: models/)")
    parser.add_argument("--random-init", action="store_true",
                        help="export an untrained model with random weights (for tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-init weights")
    parser.add_argument("--gmd", default=None, help="GMD zip (calibration grooves for static int8)")
    parser.add_argument("--calibration", type=int, default=512,
                        help="train grooves used to calibrate static int8 (default 512)")
    parser.add_argument("--int8", choices=("auto", "dynamic", "static"), default="auto",
                        help="which int8 method to ship (default: measure both, ship the better)")
    parser.add_argument("--keep-encoder", metavar="MANIFEST", default=None,
                        help="ship this model's encoder files instead of exporting the encoder "
                             "again (a run that trained only the decoder: re-exporting the same "
                             "weights moves int8 activation scales and so a few hit decisions)")


# --- model <-> checkpoint ----------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike[str], prog: str = "export"
                    ) -> tuple[Any, dict[str, Any]]:
    """Checkpoint file -> (GrooveVAE in eval mode, info dict). Errors name the file (and `prog`,
    the job that read it)."""
    import torch

    from grooverack.training.vae import GrooveVAE, VAEConfig

    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{prog}: checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = VAEConfig.from_dict(ckpt["config"])
        model = GrooveVAE(cfg)
        model.load_state_dict(ckpt["model"])
    except Exception as exc:
        raise SystemExit(f"{prog}: {path} is not a grooverack checkpoint ({exc})") from None
    model.eval()
    info = {
        "genres": list(ckpt.get("genres", [])),
        "data_hash": str(ckpt.get("data_hash", "")),
        "trained": True,
        "epoch": ckpt.get("epoch"),
        "best_epoch": ckpt.get("best_epoch"),
        "validation_f1": _best_f1(ckpt),
        "train_args": ckpt.get("args", {}),
        "seed": ckpt.get("seed"),
    }
    return model, info


def _best_f1(ckpt: dict[str, Any]) -> Any:
    """The validation hit F1 of the checkpoint's best epoch (its "best_f1" is the selection
    score, which `train --select` may make another figure)."""
    history, best = ckpt.get("history") or [], ckpt.get("best_epoch")
    if isinstance(best, int) and 0 < best <= len(history) and "val_f1" in history[best - 1]:
        return history[best - 1]["val_f1"]
    return ckpt.get("best_f1")


def default_genres() -> list[str]:
    """'any' + the GMD styles of the data pipeline (what a trained model is conditioned on)."""
    try:
        from grooverack.training.data import STYLES
    except ImportError:  # data pipeline not installed: an unconditioned model
        return []
    return ["any", *STYLES]


def random_model(seed: int = 0, genres: list[str] | None = None, **overrides: Any) -> tuple[Any, dict]:
    import torch

    from grooverack.training.vae import GrooveVAE, VAEConfig

    genres = default_genres() if genres is None else genres
    torch.manual_seed(seed)
    cfg = VAEConfig(n_genres=len(genres), **overrides)
    model = GrooveVAE(cfg).eval()
    info = {"genres": genres, "data_hash": "random-init", "trained": False, "seed": seed}
    return model, info


# --- ONNX --------------------------------------------------------------------------------------
def _wrappers(model: Any) -> tuple[Any, Any]:
    from torch import nn

    class Enc(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.encoder

        def forward(self, groove):
            return self.encoder(groove)

    names = decoder_input_names(model)

    class Dec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = model.decoder

        def forward(self, z, *rest):
            given = dict(zip(names[1:], rest, strict=True))
            return self.decoder(z, given.get("genre"), given.get("tempo"), given.get("removed"))

    return Enc().eval(), Dec().eval()


def decoder_input_names(model: Any) -> list[str]:
    """The decoder graph's inputs: z, then genre (genre-conditioned), then tempo (BPM), then
    removed (voice redistribution: [B, G] 0/1 flags of the removed voice groups)."""
    names = ["z"]
    if model.decoder.genre is not None:
        names.append("genre")
    if getattr(model.decoder, "tempo", None) is not None:
        names.append("tempo")
    if getattr(model.decoder, "removed", None) is not None:
        names.append("removed")
    return names


def decoder_feeds(session: Any, z: np.ndarray, genre: int | np.ndarray | None = None,
                  bpm: float | np.ndarray | None = None,
                  removed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Feeds for whichever of genre / tempo / removed the decoder graph takes (0 = "any" /
    unknown / nothing removed)."""
    b = z.shape[0]
    feeds = {"z": np.ascontiguousarray(z, dtype=np.float32)}
    names = {i.name for i in session.get_inputs()}
    if "genre" in names:
        feeds["genre"] = np.broadcast_to(np.asarray(0 if genre is None else genre, np.int64),
                                         (b,)).copy()
    if "tempo" in names:
        feeds["tempo"] = np.broadcast_to(np.asarray(0.0 if bpm is None else bpm, np.float32),
                                         (b,)).copy()
    if "removed" in names:
        shape = next(i.shape for i in session.get_inputs() if i.name == "removed")
        groups = int(shape[-1])
        flags = np.zeros(groups, np.float32) if removed is None else removed
        feeds["removed"] = np.broadcast_to(np.asarray(flags, np.float32), (b, groups)).copy()
    return feeds


def export_fp32(model: Any, out_dir: Path, metadata: dict[str, str]) -> tuple[Path, Path]:
    """Write the two fp32 graphs with a dynamic batch axis and the contract's metadata."""
    import warnings

    import onnx
    import torch

    enc, dec = _wrappers(model)
    latent = model.cfg.latent_size
    dec_names = decoder_input_names(model)
    enc_path, dec_path = out_dir / ENCODER_FP32, out_dir / DECODER_FP32
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            enc, (torch.zeros(2, STEPS, 3),), str(enc_path), dynamo=False, opset_version=OPSET,
            input_names=["groove"], output_names=["mu", "logvar"],
            dynamic_axes={"groove": {0: "batch"}, "mu": {0: "batch"}, "logvar": {0: "batch"}})
        examples = {"z": torch.zeros(2, latent), "genre": torch.zeros(2, dtype=torch.long),
                    "tempo": torch.tensor([120.0, 0.0]),
                    "removed": torch.zeros(2, max(1, model.cfg.removal_groups))}
        dec_inputs = tuple(examples[name] for name in dec_names)
        outputs = ["hit_logits", "velocities", "offsets"]
        torch.onnx.export(
            dec, dec_inputs, str(dec_path), dynamo=False, opset_version=OPSET,
            input_names=dec_names, output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in dec_names + outputs})
    for path, role in ((enc_path, "encoder"), (dec_path, "decoder")):
        set_metadata(path, {**metadata, "role": role})
        onnx.checker.check_model(str(path))
    return enc_path, dec_path


def _copy_atomic(src: Path, dst: Path) -> None:
    """A model file into the models folder through the one atomic writer: a full disk leaves the
    old file, never half a graph next to a manifest that names it."""
    from grooverack.storage import atomic_write_bytes

    atomic_write_bytes(dst, Path(src).read_bytes())


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    proto.producer_name = "grooverack"
    from grooverack.storage import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString())


def _session(path: Path):
    """The session the firmware would open (model.runner.open_session): what is measured here is
    what plays."""
    from grooverack.model.runner import open_session

    return open_session(path)


def run_pair(enc_path: Path, dec_path: Path, grooves: np.ndarray, genres: np.ndarray | None,
             bpm: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run an ONNX pair with z = mu on a batch of grooves."""
    enc, dec = _session(enc_path), _session(dec_path)
    mu, logvar = enc.run(None, {"groove": grooves.astype(np.float32)})
    h, v, o = dec.run(None, decoder_feeds(dec, mu, genres, bpm))
    return {"mu": mu, "logvar": logvar, "hit_logits": h, "velocities": v, "offsets": o}


def run_torch(model: Any, grooves: np.ndarray, genres: np.ndarray | None,
              bpm: np.ndarray | None = None) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        g = torch.from_numpy(grooves.astype(np.float32))
        mu, logvar = model.encoder(g)
        genre = tempo = None  # a decoder without genre or tempo conditioning ignores them
        if genres is not None:
            genre = torch.from_numpy(np.asarray(genres, np.int64))
        if bpm is not None:
            tempo = torch.from_numpy(np.broadcast_to(np.asarray(bpm, np.float32),
                                                     (len(grooves),)).copy())
        h, v, o = model.decoder(mu, genre, tempo)
    return {k: t.numpy() for k, t in
            {"mu": mu, "logvar": logvar, "hit_logits": h, "velocities": v, "offsets": o}.items()}


def parity(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs difference per output (hit logits compared as probabilities too)."""
    out = {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}
    pa = 1.0 / (1.0 + np.exp(-a["hit_logits"]))
    pb = 1.0 / (1.0 + np.exp(-b["hit_logits"]))
    out["hit_prob"] = float(np.max(np.abs(pa - pb)))
    return out


# --- int8 --------------------------------------------------------------------------------------
class _QuietQuantizer:
    """onnxruntime's quantizer logs every skipped node through the root logger."""

    def __enter__(self) -> None:
        import logging

        self._root = logging.getLogger()
        self._level = self._root.level
        self._root.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._root.setLevel(self._level)


def fp32_nodes(src: Path) -> list[str]:
    """Nodes int8 leaves alone: the tempo term's two small layers (2 -> 32 -> latent, once per
    tempo) and the voice-redistribution terms (5 flags -> latent, tokens, outputs). Quantizing
    them saves nothing and adds about ten quantize/rescale nodes per call."""
    import onnx

    names = [n.name for n in onnx.load(str(src)).graph.node
             if "/tempo/" in n.name or "/removed" in n.name]
    # the integer-ops quantizer first splits each Gemm into "<name>_MatMul" + "<name>_Add"
    return names + [f"{n}_MatMul" for n in names]


# The Attention nodes (training/vae.py, OrtAttention) are onnxruntime's own operator, unknown to
# ONNX's shape inference: both quantizers read the type of what they output from the option
# DefaultTensorType (onnx.TensorProto.FLOAT).


def quantize_dynamic(src: Path, dst: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as qd

    with _QuietQuantizer():
        qd(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False,
           op_types_to_quantize=["MatMul", "Gemm", "Attention"], nodes_to_exclude=fp32_nodes(src),
           extra_options={"DefaultTensorType": TensorProto.FLOAT})


def quantize_static(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as qs

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    with _QuietQuantizer():
        qs(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
           activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
           op_types_to_quantize=["MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax,
           nodes_to_exclude=fp32_nodes(src),
           extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                          "DefaultTensorType": TensorProto.FLOAT})


def median_latencies_ms(pairs: dict[str, tuple[Path, Path]], groove: np.ndarray,
                        genre: int | None, rounds: int = 16, block: int = 20,
                        bpm: float | None = None) -> dict[str, float]:
    """Median encode + decode time (ms, batch 1) of each (encoder, decoder) pair. The pairs take
    turns in blocks of `block` calls, `rounds` times over after one warm-up round, so a busy spell
    of a shared machine costs all of them alike instead of whichever is measured first; a block's
    first call (caches just taken by the other pairs) is not timed."""
    g = groove[None].astype(np.float32)
    sessions = {name: (_session(e), _session(d)) for name, (e, d) in pairs.items()}
    # the decoder's genre/tempo feeds do not change between calls: built once, outside the timing
    fixed = {name: {k: v for k, v in decoder_feeds(dec, np.zeros((1, 1), np.float32), genre,
                                                   bpm).items() if k != "z"}
             for name, (_, dec) in sessions.items()}
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for r in range(rounds + 1):
        for name, (enc, dec) in sessions.items():
            for i in range(block):
                t0 = time.perf_counter()
                mu, _ = enc.run(None, {"groove": g})
                dec.run(None, {"z": mu, **fixed[name]})
                if r > 0 and i > 0:
                    times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}


def hit_agreement(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray],
                  targets: np.ndarray | None) -> dict[str, float]:
    """How close an int8 pair stays to fp32: decision flips at 0.5, prob error, F1 if targets."""
    pr = ref["hit_logits"] > 0
    pc = cand["hit_logits"] > 0
    out = {"decision_flips": float(np.mean(pr != pc)),
           "hit_prob_mae": float(np.mean(np.abs(1 / (1 + np.exp(-ref["hit_logits"]))
                                                - 1 / (1 + np.exp(-cand["hit_logits"])))))}
    if targets is not None:
        t = targets > 0.5
        tp = float(np.sum(pc & t))
        out["f1_at_0.5"] = 2 * tp / max(1.0, float(np.sum(pc) + np.sum(t)))
    return out


# --- data for calibration and checks -------------------------------------------------------------
def reference_grooves(gmd: str | None, n: int, seed: int = 0, synthetic: bool = False):
    """(train grooves/styles/tempi for calibration, validation grooves/styles/hits/tempi for
    checking, source), or synthetic grooves when asked to or when the data pipeline or the dataset
    is not available."""
    rng = np.random.default_rng(seed)
    try:
        from grooverack.training.data import load_splits

        if synthetic:
            raise LookupError("synthetic grooves requested")
        splits = load_splits(gmd)
        train, val = splits["train"], splits["validation"]
        ti = rng.choice(len(train.groove), size=min(n, len(train.groove)), replace=False)
        vi = rng.choice(len(val.groove), size=min(1024, len(val.groove)), replace=False)
        ti, vi = np.sort(ti), np.sort(vi)
        return (train.groove[ti], train.style[ti] + 1, train.bpm[ti], val.groove[vi],
                val.style[vi] + 1, val.hits[vi], val.bpm[vi], "gmd")
    except Exception as exc:  # no data: synthetic grooves of the right shape and density
        if not synthetic:
            print(f"export: no GMD data ({exc}); calibrating on synthetic grooves",
                  file=sys.stderr)

    def synth(k: int) -> np.ndarray:
        hits = (rng.random((k, STEPS)) < 0.6).astype(np.float32)
        vel = rng.uniform(0.2, 1.0, (k, STEPS)).astype(np.float32) * hits
        off = rng.uniform(-0.3, 0.3, (k, STEPS)).astype(np.float32) * hits
        return np.stack([hits, vel, off], axis=-1)

    return (synth(n), np.zeros(n, np.int64), rng.uniform(60, 180, n).astype(np.float32), synth(256),
            np.zeros(256, np.int64), None, rng.uniform(60, 180, 256).astype(np.float32),
            "synthetic")


# --- the job -------------------------------------------------------------------------------------
def export_model(model: Any, info: dict[str, Any], out_dir: Path, *, gmd: str | None = None,
                 calibration: int = 512, int8: str = "auto", verbose: bool = True,
                 synthetic: bool = False) -> dict:
    """Export `model` into `out_dir` (fp32 + int8 pairs + manifest); returns the manifest."""
    from grooverack.training.vae import count_parameters, multiply_adds

    def say(msg: str) -> None:
        if verbose:
            print(msg)

    out_dir.mkdir(parents=True, exist_ok=True)
    genres = list(info.get("genres", []))
    conditioned = model.decoder.genre is not None
    tempo = getattr(model.decoder, "tempo", None) is not None
    if conditioned != bool(genres) or (genres and len(genres) != model.cfg.n_genres):
        raise SystemExit(f"export: model has {model.cfg.n_genres} genre embeddings but the "
                         f"checkpoint lists {len(genres)} genres")
    metadata = {
        "grooverack_format": str(MANIFEST_FORMAT),
        "latent_size": str(model.cfg.latent_size),
        "voices": ",".join(VOICE_NAMES),
        "data_hash": info.get("data_hash", ""),
        "genres": ",".join(genres),
    }
    with tempfile.TemporaryDirectory(prefix="grooverack-export-") as tmp_name:
        tmp = Path(tmp_name)
        enc32, dec32 = export_fp32(model, tmp, metadata)
        (cal_g, cal_s, cal_bpm, val_g, val_s, val_hits, val_bpm,
         source) = reference_grooves(gmd, calibration, synthetic=synthetic)
        s_val = val_s if conditioned else None
        # the checks see each loop's tempo, as the module plays it (and every 4th one unknown)
        t_val = np.where(np.arange(len(val_g)) % 4 == 3, 0.0, val_bpm).astype(np.float32)
        ref_torch = run_torch(model, val_g, s_val, t_val)
        ref = run_pair(enc32, dec32, val_g, s_val, t_val)
        diffs = parity(ref_torch, ref)
        say("fp32 ONNX vs torch, max abs difference: "
            + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        if max(diffs.values()) > PARITY_TOLERANCE:
            raise SystemExit(f"export: fp32 ONNX differs from torch by {max(diffs.values()):.3g} "
                             f"(> {PARITY_TOLERANCE})")

        # int8 candidates
        enc_feeds = [{"groove": cal_g[i:i + 1]} for i in range(len(cal_g))]
        mu_cal = _session(enc32).run(None, {"groove": cal_g})[0]
        dec_feeds = []
        dec_probe = _session(dec32)
        for i in range(len(cal_g)):
            # half of the calibration with the style, half unconditioned ("any"); a quarter with
            # the tempo unknown
            # (and, for voice redistribution, a third with one group removed)
            groups = model.cfg.removal_groups
            flags = (np.eye(groups, dtype=np.float32)[(i // 3) % groups]
                     if groups and i % 3 == 1 else None)
            dec_feeds.append(decoder_feeds(dec_probe, mu_cal[i:i + 1], cal_s[i] if i % 2 == 0 else 0,
                                           0.0 if i % 4 == 3 else cal_bpm[i], flags))
        methods = ["dynamic", "static"] if int8 == "auto" else [int8]
        results: dict[str, dict] = {}
        probe = val_g[0]
        for method in methods:
            e8, d8 = tmp / f"{method}-enc.onnx", tmp / f"{method}-dec.onnx"
            if method == "dynamic":
                quantize_dynamic(enc32, e8)
                quantize_dynamic(dec32, d8)
            else:
                quantize_static(enc32, e8, enc_feeds)
                quantize_static(dec32, d8, dec_feeds)
            out = run_pair(e8, d8, val_g, s_val, t_val)
            res = hit_agreement(ref, out, val_hits)
            res["mu_max_abs"] = float(np.max(np.abs(out["mu"] - ref["mu"])))
            res["bytes"] = e8.stat().st_size + d8.stat().st_size
            results[method] = res
        pairs = {m: (tmp / f"{m}-enc.onnx", tmp / f"{m}-dec.onnx") for m in methods}
        latencies = median_latencies_ms({**pairs, "fp32": (enc32, dec32)}, probe,
                                        1 if conditioned else None, bpm=120.0)
        for method, res in results.items():
            res["latency_ms"] = latencies[method]
            say(f"int8 {method:7s}: decision flips vs fp32 {res['decision_flips']:.4f}, "
                f"hit prob MAE {res['hit_prob_mae']:.4f}"
                + (f", F1@0.5 {res['f1_at_0.5']:.4f}" if "f1_at_0.5" in res else "")
                + f", encode+decode median {res['latency_ms']:.3f} ms, {res['bytes']} bytes")
        fp32_lat = latencies["fp32"]
        say(f"fp32 pair: encode+decode median {fp32_lat:.3f} ms")
        chosen = choose_int8(results)
        say(f"shipping int8 = {chosen} (calibration/check data: {source})")

        _copy_atomic(enc32, out_dir / ENCODER_FP32)
        _copy_atomic(dec32, out_dir / DECODER_FP32)
        _copy_atomic(tmp / f"{chosen}-enc.onnx", out_dir / ENCODER_INT8)
        _copy_atomic(tmp / f"{chosen}-dec.onnx", out_dir / DECODER_INT8)
        plain = model.cfg.removal_groups > 0
        if plain:
            p32, p8 = export_plain_decoder(model, tmp, metadata, chosen,
                                           [{k: v for k, v in f.items() if k != "removed"}
                                            for f in dec_feeds])
            _copy_atomic(p32, out_dir / DECODER_PLAIN_FP32)
            _copy_atomic(p8, out_dir / DECODER_PLAIN_INT8)
    int8_files = [(ENCODER_INT8, "encoder"), (DECODER_INT8, "decoder")]
    if plain:
        int8_files.append((DECODER_PLAIN_INT8, "decoder"))
    for name, role in int8_files:
        set_metadata(out_dir / name, {**metadata, "role": role, "quantization": chosen})

    enc_macs, dec_macs = multiply_adds(model.cfg)
    files = [ENCODER_INT8, DECODER_INT8, ENCODER_FP32, DECODER_FP32]
    if plain:
        files += [DECODER_PLAIN_INT8, DECODER_PLAIN_FP32]
    manifest = {
        "format": MANIFEST_FORMAT,
        "trained": bool(info.get("trained", False)),
        "latent_size": model.cfg.latent_size,
        "voices": list(VOICE_NAMES),
        "genres": genres,
        "tempo": tempo,  # the decoder takes the tempo (BPM, 0 = unknown) as its input "tempo"
        # voice redistribution: the decoder's input "removed" flags these groups, in this order
        **({"removal_groups": list(VOICE_GROUPS)[:model.cfg.removal_groups]}
           if model.cfg.removal_groups else {}),
        # chosen later on validation by `grooverack eval --split validation --choose-thresholds`
        "thresholds": [DEFAULT_THRESHOLD] * NUM_VOICES,
        "variants": {
            "int8": {"encoder": ENCODER_INT8, "decoder": DECODER_INT8,
                     **({"decoder_plain": DECODER_PLAIN_INT8} if plain else {})},
            "fp32": {"encoder": ENCODER_FP32, "decoder": DECODER_FP32,
                     **({"decoder_plain": DECODER_PLAIN_FP32} if plain else {})},
        },
        "data_hash": info.get("data_hash", ""),
        "sha256": {name: sha256_file(out_dir / name) for name in files},
        "model": {
            "config": model.cfg.to_dict(),
            "parameters": {"encoder": count_parameters(model.encoder),
                           "decoder": count_parameters(model.decoder)},
            "multiply_adds": {"encoder": enc_macs, "decoder": dec_macs},
        },
        "quantization": {"shipped": chosen, "check_data": source, "candidates": results,
                         "fp32_latency_ms": fp32_lat, "fp32_vs_torch_max_abs": diffs},
        "training": {k: info.get(k) for k in ("epoch", "best_epoch", "validation_f1", "seed",
                                               "train_args") if info.get(k) is not None},
    }
    write_manifest(out_dir / MANIFEST_NAME, manifest)
    say(f"wrote {out_dir / MANIFEST_NAME} and {len(files)} ONNX files "
        f"({sum((out_dir / f).stat().st_size for f in files) / 1e6:.2f} MB)")
    return manifest


def export_plain_decoder(model: Any, tmp: Path, metadata: dict[str, str], method: str,
                         feeds: list[dict[str, np.ndarray]]) -> tuple[Path, Path]:
    """The decoder of `model` without its voice-redistribution terms (the same weights, the
    removal paths left out: what it computes while no group is removed), fp32 and int8 by
    `method`. Checked against the full decoder with nothing removed."""
    import torch

    from grooverack.training.vae import GrooveVAE, VAEConfig

    fields = {k: f.default for k, f in VAEConfig.__dataclass_fields__.items()
              if k.startswith("removal_")}  # every removal term off
    plain = GrooveVAE(VAEConfig.from_dict({**model.cfg.to_dict(), **fields})).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith("decoder.removed")})
    folder = tmp / "plain"
    folder.mkdir()
    _, dec32 = export_fp32(plain, folder, metadata)
    dec8 = folder / "plain-dec.int8.onnx"
    if method == "dynamic":
        quantize_dynamic(dec32, dec8)
    else:
        quantize_static(dec32, dec8, feeds)
    z = torch.randn(4, model.cfg.latent_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model.decoder(z, None, None, torch.zeros(4, model.cfg.removal_groups))
        base = plain.decoder(z)
    worst = max(float((a - b).abs().max()) for a, b in zip(full, base, strict=True))
    if worst > 1e-5:
        raise SystemExit(f"export: the plain decoder differs from the full one with nothing "
                         f"removed by {worst:.3g}")
    return dec32, dec8


def choose_int8(results: dict[str, dict]) -> str:
    """The int8 method that stays closest to fp32 (F1 on validation when known, else decision
    flips); a clearly slower one (> 1.25x) wins only if it is clearly more accurate."""
    if len(results) == 1:
        return next(iter(results))

    def quality(r: dict) -> float:
        return r.get("f1_at_0.5", -r["decision_flips"])

    ranked = sorted(results, key=lambda m: quality(results[m]), reverse=True)
    best, other = ranked[0], ranked[1]
    if (results[best]["latency_ms"] > 1.25 * results[other]["latency_ms"]
            and quality(results[best]) - quality(results[other]) < 0.005):
        return other
    return best


def write_manifest(path: Path, manifest: dict) -> None:
    from grooverack.storage import atomic_write_text

    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    path.chmod(0o644)  # a shipped file: readable like the ONNX files next to it


def run(args: argparse.Namespace) -> int:
    if args.random_init == bool(args.checkpoint):
        print("export: give a CHECKPOINT or --random-init (one of them)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.random_init:
        model, info = random_model(args.seed)
    else:
        model, info = load_checkpoint(args.checkpoint)
    out = Path(args.out)
    if args.keep_encoder:
        check_kept_encoder(model, Path(args.keep_encoder))
    export_model(model, info, out, gmd=args.gmd, calibration=args.calibration, int8=args.int8)
    if args.keep_encoder:
        keep_encoder(model, Path(args.keep_encoder), out)
    return 0


def check_kept_encoder(model: Any, manifest_path: Path) -> None:
    """SystemExit unless the other model's fp32 encoder computes what `model`'s encoder does."""
    from grooverack.model.runner import load_manifest

    try:
        other = load_manifest(manifest_path)
    except Exception as exc:  # noqa: BLE001 - ModelError names the file
        raise SystemExit(f"export: --keep-encoder: {exc}") from None
    enc = manifest_path.parent / other["variants"]["fp32"]["encoder"]
    grooves = reference_grooves(None, 64, synthetic=True)[0]
    mu = _session(enc).run(None, {"groove": grooves})[0]
    ref = run_torch(model, grooves, None)["mu"]
    worst = float(np.abs(mu - ref).max())
    if worst > PARITY_TOLERANCE:
        raise SystemExit(f"export: --keep-encoder: {enc} is not this model's encoder (mu differs "
                         f"by {worst:.3g})")


def keep_encoder(model: Any, manifest_path: Path, out: Path) -> None:
    """Replace the exported encoder files by the other model's and update the manifest."""
    from grooverack.model.runner import load_manifest

    other = load_manifest(manifest_path)
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    kept = {}
    for variant in ("int8", "fp32"):
        src = manifest_path.parent / other["variants"][variant]["encoder"]
        dst = out / manifest["variants"][variant]["encoder"]
        if src.resolve() != dst.resolve():
            _copy_atomic(src, dst)
        manifest["sha256"][dst.name] = sha256_file(dst)
        kept[variant] = {"file": dst.name, "sha256": manifest["sha256"][dst.name]}
    manifest["encoder_kept_from"] = {"manifest": str(manifest_path), **kept}
    write_manifest(out / MANIFEST_NAME, manifest)
    print(f"kept the encoder of {manifest_path} (int8 and fp32)")
