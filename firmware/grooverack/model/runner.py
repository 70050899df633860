"""ModelRunner: the shipped GrooveTransformer encoder/decoder pair, run with onnxruntime.

The manifest (`models/grooverack.json`, see ARCHITECTURE.md "Model contract") names the ONNX files
of each variant (int8, fp32), the voices, genres and per-voice thresholds. Every file is checked
(present, sha256, ONNX metadata) when the runner opens it, so a wrong or damaged model fails at
start with a message naming the file, never in the middle of a performance. Two optional keys:
`genres_offered` (the styles a user may choose; default all genres) and `latent_bank` (the file of
train-loop latents random A/B are drawn from, `model.bank`); a missing or damaged bank is a
warning naming the file, and A/B then come from N(0, I).

Each file is read once: the bytes that are hashed are the bytes the session is made from, so a
file replaced while the model loads cannot mix into it (`model.watch` swaps whole models).

onnxruntime + numpy only: the runtime never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.errors import ModelError
from grooverack.model.bank import BANK_KEY, DEFAULT_PERTURBATION, LatentBank, load_bank
from grooverack.resources import shipped_models_dir
from grooverack.storage import read_text_bounded, read_upto
from grooverack.voices import NUM_VOICES, STEPS, STEPS_PER_BAR, VOICE_GROUPS, VOICE_NAMES

MANIFEST_FORMAT = 1
MANIFEST_NAME = "grooverack.json"
VARIANTS = ("int8", "fp32")
ENV_MODELS = "GROOVERACK_MODELS"  # a models/ folder or a manifest file that replaces the default

ENCODER_INPUTS = ("groove",)
ENCODER_OUTPUTS = ("mu", "logvar")
DECODER_OUTPUTS = ("hit_logits", "velocities", "offsets")

log = logging.getLogger("grooverack.model")


# onnxruntime fuses each residual Add with the LayerNormalization after it into one
# SkipLayerNormalization node. Its CPU kernel is slower than the two nodes it replaces: measured on
# the shipped pair, about 16 us of the encoder's 178 and 12 us of the decoder's 110; the outputs
# differ by float rounding only (int8: 9 of 590,112 test cells decided the other way, the same
# figures at three decimals; models/README.md, "Graph"). Every other graph optimization stays on.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def open_session(model: str | os.PathLike[str] | bytes) -> Any:
    """An onnxruntime session as the firmware runs one: CPU, one thread, sequential, every graph
    optimization but DISABLED_OPTIMIZERS. `model` is a file path or the serialized model."""
    import onnxruntime as ort  # the runtime dependency; imported here to keep import cheap

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))


def default_manifest_path() -> Path:
    """`$GROOVERACK_MODELS` (folder or manifest), else the shipped `grooverack.json` (the package's
    data: the repository's `models/` in a checkout, a copy in a wheel; `grooverack.resources`)."""
    env = os.environ.get(ENV_MODELS, "").strip()
    if env:
        path = Path(env).expanduser()
        return path / MANIFEST_NAME if path.is_dir() else path
    return shipped_models_dir() / MANIFEST_NAME


MAX_MODEL_FILE_BYTES = 256 * 1024 * 1024  # a model file or bank bigger than this is refused


def read_model_file(path: Path) -> bytes:
    """The bytes of a model file or bank, at most MAX_MODEL_FILE_BYTES (a device that never ends
    is refused, not read until memory runs out; `storage.read_upto` allocates only what is
    there); OSError as open() raises it."""
    with open(path, "rb") as f:
        data = read_upto(f, MAX_MODEL_FILE_BYTES)
    if len(data) > MAX_MODEL_FILE_BYTES:
        raise ModelError(f"{path}: larger than {MAX_MODEL_FILE_BYTES:,} bytes (or never ends); "
                         f"allowed: a model file of at most {MAX_MODEL_FILE_BYTES:,} bytes")
    return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# How a followed groove is decoded (the manifest's "bar_swap"): "none" = once; "mean_odds" = as
# is and bar-swapped (the two bars exchanged, the model's training symmetry) in one call of each
# network, the second view rolled back a bar and the two pooled by the mean of their odds
# (a soft "or": a hit either view is sure of survives). The thresholds are chosen for it.
BAR_SWAP_POOLS = ("none", "mean_odds")


def pool_views(first: tuple[np.ndarray, np.ndarray, np.ndarray],
               second: tuple[np.ndarray, np.ndarray, np.ndarray], weight: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two decodes of one pattern ([32, 9] or [B, 32, 9] hit logits, velocities, offsets; the
    second already rolled back into the first's bars) -> one: the hit odds are mixed
    (1 - weight) : weight, velocities and offsets the same way. weight 0 = the first alone."""
    w = min(max(float(weight), 0.0), 1.0)
    if w <= 0.0:
        return first
    h0, v0, o0 = (np.asarray(a, np.float32) for a in first)
    h1, v1, o1 = (np.asarray(a, np.float32) for a in second)
    if w >= 1.0:
        return h1, v1, o1
    logits = np.logaddexp(h0 + np.float32(math.log1p(-w)), h1 + np.float32(math.log(w)))
    return (logits.astype(np.float32), ((1.0 - w) * v0 + w * v1).astype(np.float32),
            ((1.0 - w) * o0 + w * o1).astype(np.float32))


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and validate a manifest; raises ModelError naming the file and the bad field."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model manifest not found")
    text = read_text_bounded(path, "model manifest", ModelError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not a readable JSON model manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: manifest must be a JSON object, found {type(data).__name__}")
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelError(
            f"{path}: manifest format {data.get('format')!r}, this firmware reads format "
            f"{MANIFEST_FORMAT}")
    for key in ("latent_size", "voices", "genres", "thresholds", "variants", "sha256"):
        if key not in data:
            raise ModelError(f"{path}: manifest lacks the key {key!r}")
    latent = data["latent_size"]
    if not isinstance(latent, int) or isinstance(latent, bool) or latent <= 0:
        raise ModelError(f"{path}: latent_size must be a positive integer, found {latent!r}")
    if list(data["voices"]) != list(VOICE_NAMES):
        raise ModelError(
            f"{path}: voices {data['voices']!r} differ from the firmware's {list(VOICE_NAMES)!r}")
    genres = data["genres"]
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        raise ModelError(f"{path}: genres must be a list of names, found {genres!r}")
    if genres and genres[0] != "any":
        raise ModelError(f"{path}: genres[0] must be 'any' (the unconditioned embedding)")
    offered = data.get("genres_offered", genres)
    if (not isinstance(offered, list) or not all(g in genres for g in offered)
            or (genres and "any" not in offered)):
        raise ModelError(f"{path}: genres_offered must be a list of the genres including 'any', "
                         f"found {offered!r}")
    if not isinstance(data.get("tempo", False), bool):
        raise ModelError(f"{path}: tempo must be true or false, found {data['tempo']!r}")
    removal = data.get("removal_groups", [])
    if removal and list(removal) != list(VOICE_GROUPS):
        raise ModelError(f"{path}: removal_groups must be the firmware's voice groups "
                         f"{list(VOICE_GROUPS)!r} in that order, found {removal!r}")
    thresholds = data["thresholds"]
    if (not isinstance(thresholds, list) or len(thresholds) != NUM_VOICES
            or not all(isinstance(t, (int, float)) and 0.0 <= t <= 1.0 for t in thresholds)):
        raise ModelError(f"{path}: thresholds must be {NUM_VOICES} numbers in 0..1, "
                         f"found {thresholds!r}")
    groups = data.get("removal_groups", [])
    per_removal = data.get("removal_thresholds", {})
    if not isinstance(per_removal, dict) or not set(per_removal) <= set(groups) or not all(
            isinstance(t, list) and len(t) == NUM_VOICES
            and all(isinstance(x, (int, float)) and 0.0 <= x <= 1.0 for x in t)
            for t in per_removal.values()):
        raise ModelError(f"{path}: removal_thresholds must map removal groups "
                         f"({', '.join(groups) or 'none'}) to {NUM_VOICES} numbers in 0..1, "
                         f"found {per_removal!r}")
    if data.get("bar_swap", "none") not in BAR_SWAP_POOLS:
        raise ModelError(f"{path}: bar_swap must be one of {', '.join(BAR_SWAP_POOLS)}, found "
                         f"{data['bar_swap']!r}")
    if not isinstance(data["variants"], dict) or not data["variants"]:
        raise ModelError(f"{path}: variants must name at least one encoder/decoder pair")
    for name, pair in data["variants"].items():
        if not isinstance(pair, dict) or set(pair) < {"encoder", "decoder"}:
            raise ModelError(f"{path}: variant {name!r} must name an 'encoder' and a 'decoder'")
    return data


def _metadata(session: Any) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


class ModelRunner:
    """Runs the encoder (groove -> latent) and decoder (latent [+ genre] -> pattern logits).

    `encode`/`decode` take one item (what the engine needs); `encode_batch`/`decode_batch` take a
    leading batch axis (what evaluation needs) and give the same numbers as item by item. onnxruntime runs single-threaded and sequential:
    a predictable latency on a Pi matters more than throughput.
    """

    problem = ""  # the model plays (`model.watch.NoModel` says why it does not)

    def __init__(self, manifest_path: str | os.PathLike[str] | None = None,
                 variant: str = "int8", *, verify_hashes: bool = True,
                 require_bank: bool = False) -> None:
        self.manifest_path = Path(manifest_path) if manifest_path else default_manifest_path()
        self.manifest = load_manifest(self.manifest_path)
        if variant not in self.manifest["variants"]:
            raise ModelError(
                f"{self.manifest_path}: no variant {variant!r}; the manifest has "
                f"{', '.join(sorted(self.manifest['variants']))}")
        self.variant = variant
        self.latent_size: int = int(self.manifest["latent_size"])
        self.voices: tuple[str, ...] = tuple(self.manifest["voices"])
        self.genres: tuple[str, ...] = tuple(self.manifest["genres"])
        # the styles a user may choose: a genre with too few train loops (gospel: none) has an
        # embedding that was never (or hardly) trained; the manifest says which are offered
        self.genres_offered: tuple[str, ...] = tuple(
            self.manifest.get("genres_offered", self.manifest["genres"]))
        # the decoder takes the tempo (BPM, 0 = unknown) as an input: the module knows it from its
        # clock, and drummers play differently at 70 and at 170 BPM
        self.tempo: bool = bool(self.manifest.get("tempo", False))
        # voice redistribution: the decoder's input "removed" flags these voice groups (in this
        # order) as taken away, and it re-voices the groove onto the remaining instruments
        self.removal_groups: tuple[str, ...] = tuple(self.manifest.get("removal_groups", ()))
        # a followed groove decoded as is and bar-swapped, pooled (BAR_SWAP_POOLS)
        self.bar_swap: bool = self.manifest.get("bar_swap", "none") == "mean_odds"
        self.thresholds = np.asarray(self.manifest["thresholds"], dtype=np.float32)
        # thresholds chosen on validation for the decode with one group removed (F1 against the
        # loop re-voiced without it); a group without its own set uses `thresholds`
        self.removal_thresholds: dict[str, np.ndarray] = {
            g: np.asarray(t, dtype=np.float32)
            for g, t in self.manifest.get("removal_thresholds", {}).items()}
        self.trained: bool = bool(self.manifest.get("trained", True))
        self.data_hash: str = str(self.manifest.get("data_hash", ""))
        pair = self.manifest["variants"][variant]
        folder = self.manifest_path.parent
        self.encoder_path = folder / pair["encoder"]
        self.decoder_path = folder / pair["decoder"]
        self._encoder = self._open(self.encoder_path, "encoder", verify_hashes)
        self._decoder = self._open(self.decoder_path, "decoder", verify_hashes)
        # voice redistribution: the same decoder without the removal terms, run while no group
        # is removed (the same numbers without their cost); absent: the full one runs always
        self.decoder_plain_path = folder / pair["decoder_plain"] if pair.get("decoder_plain") \
            else None
        self._decoder_plain = (self._open(self.decoder_plain_path, "decoder", verify_hashes)
                               if self.decoder_plain_path is not None else None)
        self._check_io()
        # Dynamic int8 quantizes activations with one scale per call: a batch would then be
        # computed with other scales than the single items the firmware runs. Run such a model
        # item by item so that evaluation measures exactly what plays.
        self.per_item = any(_metadata(s).get("quantization") == "dynamic"
                            for s in (self._encoder, self._decoder))
        self.latent_bank: LatentBank | None = self._open_bank(verify_hashes, require_bank)

    def close(self) -> None:
        """Let go of the sessions and the bank one at a time, handing the GIL over after each:
        a whole runner dropped at once holds it for every session's teardown in one go (2.4 ms
        measured on x86, several times that on a Pi). The generator's worker calls this on the
        model it replaced, so the real-time loop never frees a model. Inference ends here."""
        for name in ("_encoder", "_decoder", "_decoder_plain", "latent_bank"):
            setattr(self, name, None)
            time.sleep(0)  # a real hand-over: a waiting real-time thread runs now

    def _open_bank(self, verify_hash: bool, required: bool = False) -> LatentBank | None:
        """The manifest's latent bank (random A/B latents drawn where real grooves live), or None
        (then they come from N(0, I)) with a warning naming the file: the bank is optional, a
        missing or damaged one must not stop the module from playing. `required` (a model
        replacing one that plays, `model.watch`): a listed bank that fails raises the
        ModelError instead, and the model that plays goes on whole."""
        entry = self.manifest.get(BANK_KEY)
        if entry is None:
            log.warning("%s: no latent bank listed; random latents A/B are drawn from N(0, I)",
                        self.manifest_path)
            return None
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise ModelError(f"{self.manifest_path}: {BANK_KEY} must be an object naming "
                                 f"its 'file', found {entry!r}")
            path = self.manifest_path.parent / entry["file"]
            data = read_model_file(path) if path.is_file() else None  # hashed is what loads
            if verify_hash and data is not None:
                expected = entry.get("sha256")
                actual = hashlib.sha256(data).hexdigest()
                if actual != expected:
                    raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the "
                                     f"manifest's {str(expected)[:12]}... (damaged or replaced "
                                     f"file)")
            found = entry.get("built")
            built: dict[str, Any] = found if isinstance(found, dict) else {}
            encoder, built_sha = built.get("encoder"), built.get("encoder_sha256")
            # an encoder-only fine-tune (training.swap_encoder) leaves the decoders, and so the
            # latent space the bank's latents are played in, as they were: the bank built with
            # the encoder it started from stays valid
            tuned = self.manifest.get("encoder_fine_tune")
            started = tuned.get("from", {}) if isinstance(tuned, dict) else {}
            if (encoder and built_sha and self.manifest["sha256"].get(encoder) != built_sha
                    and (not isinstance(started, dict) or started.get(encoder) != built_sha)):
                raise ModelError(f"{path}: latent bank built with another {encoder} than this "
                                 f"manifest's (rebuild it: python -m "
                                 f"grooverack.training.latent_bank build)")
            perturbation = entry.get("perturbation", DEFAULT_PERTURBATION)
            if not isinstance(perturbation, (int, float)) or isinstance(perturbation, bool):
                raise ModelError(f"{self.manifest_path}: {BANK_KEY}.perturbation must be a "
                                 f"number, found {perturbation!r}")
            bank = load_bank(path, self.latent_size, self.genres, float(perturbation), data=data)
        except ModelError as exc:
            if required:
                raise
            log.warning("%s; random latents A/B are drawn from N(0, I) instead", exc)
            return None
        except Exception as exc:  # unreadable (permissions, a folder, I/O error): only the bank
            where = entry.get("file") if isinstance(entry, dict) else entry
            if required:
                raise ModelError(f"{self.manifest_path}: latent bank {where!r} not readable "
                                 f"({type(exc).__name__}: {exc})") from None
            log.warning("%s: latent bank %r not readable (%s: %s); the model plays, random "
                        "latents A/B are drawn from N(0, I) instead", self.manifest_path, where,
                        type(exc).__name__, exc)
            return None
        fitted = built.get("thresholds")
        if bank.hit_shift.any() and fitted is not None and not np.allclose(
                np.asarray(fitted, dtype=np.float64), self.thresholds, atol=1e-6):
            log.warning("%s: its A/B hit_shift was fitted for thresholds %s, the manifest has %s; "
                        "A/B use the manifest's thresholds unshifted (rebuild the bank: python -m "
                        "grooverack.training.latent_bank build)", path, fitted,
                        self.thresholds.tolist())
            bank.hit_shift = np.zeros_like(bank.hit_shift)
        return bank

    # --- loading -------------------------------------------------------------------------
    def _open(self, path: Path, role: str, verify_hash: bool) -> Any:
        if not path.is_file():
            raise ModelError(f"{path}: {role} model file not found (named by {self.manifest_path})")
        try:
            data = read_model_file(path)  # once: the hashed bytes are the session's
        except OSError as exc:
            raise ModelError(f"{path}: {role} model file not readable ({exc.strerror or exc})"
                             ) from None
        if verify_hash:
            expected = self.manifest["sha256"].get(path.name)
            if expected is None:
                raise ModelError(f"{self.manifest_path}: no sha256 listed for {path.name}")
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the manifest's "
                                 f"{expected[:12]}... (damaged or replaced file)")
        try:
            session = open_session(data)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from None
        meta = _metadata(session)
        expected_meta = {
            "grooverack_format": str(MANIFEST_FORMAT),
            "role": role,
            "latent_size": str(self.latent_size),
            "voices": ",".join(VOICE_NAMES),
        }
        for key, value in expected_meta.items():
            if meta.get(key) != value:
                raise ModelError(f"{path}: metadata {key}={meta.get(key)!r}, expected {value!r} "
                                 f"(wrong or foreign model file)")
        if self.data_hash and meta.get("data_hash", "") != self.data_hash:
            raise ModelError(f"{path}: metadata data_hash={meta.get('data_hash')!r} differs from "
                             f"the manifest's {self.data_hash!r} (files from different trainings)")
        return session

    def _check_io(self) -> None:
        enc_in = [i.name for i in self._encoder.get_inputs()]
        enc_out = [o.name for o in self._encoder.get_outputs()]
        if enc_in != list(ENCODER_INPUTS) or enc_out != list(ENCODER_OUTPUTS):
            raise ModelError(f"{self.encoder_path}: inputs {enc_in} / outputs {enc_out}, expected "
                             f"{list(ENCODER_INPUTS)} / {list(ENCODER_OUTPUTS)}")
        dec_in = [i.name for i in self._decoder.get_inputs()]
        dec_out = [o.name for o in self._decoder.get_outputs()]
        want_in = ["z", *(["genre"] if self.genres else []), *(["tempo"] if self.tempo else []),
                   *(["removed"] if self.removal_groups else [])]
        if dec_in != want_in or dec_out != list(DECODER_OUTPUTS):
            raise ModelError(f"{self.decoder_path}: inputs {dec_in} / outputs {dec_out}, expected "
                             f"{want_in} / {list(DECODER_OUTPUTS)}")
        if self._decoder_plain is not None:
            plain_in = [i.name for i in self._decoder_plain.get_inputs()]
            plain_out = [o.name for o in self._decoder_plain.get_outputs()]
            want_plain = [n for n in want_in if n != "removed"]
            if not self.removal_groups or plain_in != want_plain or plain_out != list(
                    DECODER_OUTPUTS):
                raise ModelError(f"{self.decoder_plain_path}: inputs {plain_in} / outputs "
                                 f"{plain_out}, expected {want_plain} / {list(DECODER_OUTPUTS)} "
                                 f"(the decoder without removal terms, beside one with them)")

    def thresholds_for(self, removed: Any = None) -> np.ndarray:
        """Per-voice hit thresholds [9] for a decode with these groups removed ([G] flags in
        `removal_groups` order; None or none set = `thresholds`): each removed group's own set
        where the manifest has one, several removed groups the lowest of their sets per voice (a
        voice that takes over from either group plays at the threshold chosen for that; the
        removed voices themselves are muted)."""
        if removed is None or not self.removal_thresholds:
            return self.thresholds
        flags = np.asarray(removed, dtype=np.float32).reshape(-1)
        sets = [self.removal_thresholds.get(g, self.thresholds)
                for g, on in zip(self.removal_groups, flags, strict=False) if on > 0.5]
        return np.min(sets, axis=0) if sets else self.thresholds

    # --- inference -------------------------------------------------------------------------
    def encode_batch(self, grooves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """grooves float32 [B, 32, 3] -> (mu [B, L], logvar [B, L])."""
        g = np.ascontiguousarray(grooves, dtype=np.float32)
        if g.ndim != 3 or g.shape[1:] != (STEPS, 3):
            raise ValueError(f"groove batch must be [B, {STEPS}, 3], got {list(g.shape)}")
        if self.per_item and len(g) > 1:
            parts = [self._encoder.run(None, {"groove": g[i:i + 1]}) for i in range(len(g))]
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        mu, logvar = self._encoder.run(None, {"groove": g})
        return mu, logvar

    def encode(self, groove: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """groove float32 [32, 3] (hit, velocity, offset) -> (mu [L], logvar [L])."""
        g = np.asarray(groove, dtype=np.float32)
        if g.shape != (STEPS, 3):
            raise ValueError(f"groove must be [{STEPS}, 3], got {list(g.shape)}")
        mu, logvar = self.encode_batch(g[None])
        return mu[0], logvar[0]

    def encode_views(self, groove: np.ndarray) -> np.ndarray:
        """groove [32, 3] -> mu [2, L] of the groove and of its bar-swapped copy, in one call."""
        g = np.asarray(groove, dtype=np.float32)
        if g.shape != (STEPS, 3):
            raise ValueError(f"groove must be [{STEPS}, 3], got {list(g.shape)}")
        pair = np.ascontiguousarray(np.stack([g, np.roll(g, STEPS_PER_BAR, axis=0)]))
        mu, _logvar = self._encoder.run(None, {"groove": pair})
        return np.asarray(mu)

    def decode_views(self, z_pair: np.ndarray, genre: int = 0, bpm: float | None = None,
                     removed: Any = None, weight: float = 0.5
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z_pair [2, L]: the latent of the groove as is and of its bar-swapped copy (each mixed
        with A/B the same way) -> one pattern [32, 9] (hit logits, velocities, offsets): both
        decoded in one call, the second rolled back a bar, pooled by `pool_views` with `weight`
        for the second (0.5 = the two views alike, what the thresholds were chosen for)."""
        zz = np.asarray(z_pair, dtype=np.float32)
        if zz.shape != (2, self.latent_size):
            raise ValueError(f"latent pair must be [2, {self.latent_size}], got {list(zz.shape)}")
        feeds = self._decoder_feeds(zz, genre, bpm, removed)
        h, v, o = self._session_for(feeds).run(None, feeds)
        back = (np.roll(h[1], -STEPS_PER_BAR, axis=0), np.roll(v[1], -STEPS_PER_BAR, axis=0),
                np.roll(o[1], -STEPS_PER_BAR, axis=0))
        return pool_views((h[0], v[0], o[0]), back, weight)

    def decode_batch(self, z: np.ndarray, genre: np.ndarray | int | None = None,
                     bpm: np.ndarray | float | None = None, removed: Any = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z float32 [B, L], genre int [B] (or one int), bpm float [B] (or one; None or 0 =
        unknown; ignored by a model without tempo), removed: voice-group flags [G] or [B, G]
        (None = nothing removed; ignored by a model without redistribution) -> hit_logits,
        velocities, offsets [B,32,9]."""
        zz = np.ascontiguousarray(z, dtype=np.float32)
        if zz.ndim != 2 or zz.shape[1] != self.latent_size:
            raise ValueError(f"latent batch must be [B, {self.latent_size}], got {list(zz.shape)}")
        feeds = self._decoder_feeds(zz, genre, bpm, removed)
        session = self._session_for(feeds)
        if self.per_item and len(zz) > 1:
            parts = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()})
                     for i in range(len(zz))]
            return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))  # type: ignore[return-value]
        hit_logits, velocities, offsets = session.run(None, feeds)
        return hit_logits, velocities, offsets

    def _session_for(self, feeds: dict[str, np.ndarray]) -> Any:
        """The plain decoder while nothing is removed (its "removed" feed dropped), else the full
        one."""
        if self._decoder_plain is not None and not feeds["removed"].any():
            del feeds["removed"]
            return self._decoder_plain
        return self._decoder

    def decode(self, z: np.ndarray, genre: int = 0, bpm: float | None = None,
               removed: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z float32 [L] -> (hit_logits, velocities 0..1, offsets -0.5..0.5), each [32, 9];
        `bpm` the tempo the pattern will play at (None = unknown); `removed` the voice groups
        taken away ([G] flags in `removal_groups` order, None = none)."""
        zz = np.asarray(z, dtype=np.float32)
        if zz.shape != (self.latent_size,):
            raise ValueError(f"latent must be [{self.latent_size}], got {list(zz.shape)}")
        feeds = self._decoder_feeds(zz[None], genre, bpm, removed)
        h, v, o = self._session_for(feeds).run(None, feeds)
        return h[0], v[0], o[0]

    def _decoder_feeds(self, zz: np.ndarray, genre: np.ndarray | int | None,
                       bpm: np.ndarray | float | None,
                       removed: Any = None) -> dict[str, np.ndarray]:
        """The decoder's inputs for a checked latent batch [B, L]. One genre and one tempo (the
        module's every regeneration) are checked as Python numbers: a few microseconds less per
        pattern than the array checks a batch needs."""
        n = zz.shape[0]
        feeds: dict[str, np.ndarray] = {"z": np.ascontiguousarray(zz)}
        if self.genres:
            if genre is None or np.ndim(genre) == 0:
                gi = 0 if genre is None else int(genre)
                if not 0 <= gi < len(self.genres):
                    raise ValueError(f"genre index out of range 0..{len(self.genres) - 1}: {gi}")
                feeds["genre"] = np.full(n, gi, dtype=np.int64)
            else:
                g = np.broadcast_to(np.asarray(genre, dtype=np.int64), (n,))
                if g.min(initial=0) < 0 or g.max(initial=0) >= len(self.genres):
                    raise ValueError(f"genre index out of range 0..{len(self.genres) - 1}: "
                                     f"{g.tolist()}")
                feeds["genre"] = np.ascontiguousarray(g)
        if self.tempo:
            if bpm is None or np.ndim(bpm) == 0:
                b = 0.0 if bpm is None else float(bpm)
                if not (math.isfinite(b) and b >= 0.0):
                    raise ValueError(f"tempo must be a finite BPM >= 0 (0 = unknown): {b}")
                feeds["tempo"] = np.full(n, b, dtype=np.float32)
            else:
                t = np.broadcast_to(np.asarray(bpm, dtype=np.float32), (n,))
                if not np.all(np.isfinite(t)) or t.min(initial=0.0) < 0.0:
                    raise ValueError(f"tempo must be a finite BPM >= 0 (0 = unknown): {t.tolist()}")
                feeds["tempo"] = np.ascontiguousarray(t)
        if self.removal_groups:
            k = len(self.removal_groups)
            if removed is None:
                feeds["removed"] = np.zeros((n, k), np.float32)
            else:
                r = np.asarray(removed, dtype=np.float32)
                if r.shape not in ((k,), (n, k)):
                    raise ValueError(f"removed must be [{k}] or [{n}, {k}] flags (groups "
                                     f"{', '.join(self.removal_groups)}), got {list(r.shape)}")
                feeds["removed"] = np.ascontiguousarray(np.broadcast_to(r, (n, k)))
        return feeds

    def genre_index(self, name: str) -> int:
        """Index of a genre by name ('any' = 0 = unconditioned); ValueError names the choices."""
        if not self.genres:
            if name == "any":
                return 0
            raise ValueError(f"{self.manifest_path}: this model has no genre conditioning; "
                             f"only 'any' is allowed, got {name!r}")
        try:
            return self.genres.index(name)
        except ValueError:
            raise ValueError(f"unknown genre {name!r}; allowed: {', '.join(self.genres)}") from None

    def __repr__(self) -> str:
        return (f"ModelRunner({str(self.manifest_path)!r}, variant={self.variant!r}, "
                f"latent_size={self.latent_size}, genres={len(self.genres)}, tempo={self.tempo})")
