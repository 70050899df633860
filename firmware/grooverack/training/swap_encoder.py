"""Put a fine-tuned encoder into a shipped model, keeping its decoders and latent bank.

`python -m grooverack.training.swap_encoder CKPT [--manifest models/grooverack.json]`

A run trained with `--train-only encoder.` (e.g. on line-like inputs, `train --line-inputs`)
changes only the encoder: the decoders, and with them the latent space the bank's latents A/B are
decoded in, stay bit for bit what they were. This exports the checkpoint (fp32 and int8, as
`grooverack export` does), checks that its decoder still computes what the shipped plain decoder
computes, copies the two encoder files over the shipped ones and rewrites the manifest: the new
sha256s, and `encoder_fine_tune` = {"from": the previous encoders' sha256s, "checkpoint", the
run's arguments}. The bank built with the previous encoder stays valid (`ModelRunner` accepts a
bank built with the encoder a fine-tune started from); the thresholds are the manifest's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PARITY_ATOL = 1e-4


def _decoder_parity(exported: Path, shipped: Path) -> float:
    """Largest |difference| of the two plain fp32 decoders' outputs on random latents."""
    import onnxruntime as ort

    def session(path: Path) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    a, b = session(exported), session(shipped)
    rng = np.random.default_rng(0)
    n = 8
    feeds: dict[str, np.ndarray] = {"z": rng.standard_normal((n, 128)).astype(np.float32)}
    names = {i.name for i in b.get_inputs()}
    if "genre" in names:
        feeds["genre"] = rng.integers(0, 5, n).astype(np.int64)
    if "tempo" in names:
        feeds["tempo"] = rng.uniform(60, 200, n).astype(np.float32)
    worst = 0.0
    for x, y in zip(a.run(None, feeds), b.run(None, feeds), strict=True):
        worst = max(worst, float(np.abs(x - y).max()))
    return worst


def swap(checkpoint: Path, manifest_path: Path) -> dict[str, Any]:
    from grooverack.model.runner import sha256_file
    from grooverack.storage import atomic_write_text
    from grooverack.training import export

    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    folder = manifest_path.parent
    model, info = export.load_checkpoint(str(checkpoint))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        export.export_model(model, info, out, int8="dynamic", verbose=False)
        fresh = json.loads((out / "grooverack.json").read_text(encoding="utf-8"))
        plain = folder / manifest["variants"]["fp32"].get("decoder_plain",
                                                          manifest["variants"]["fp32"]["decoder"])
        worst = _decoder_parity(out / fresh["variants"]["fp32"]["decoder"], plain)
        if worst > PARITY_ATOL:
            raise SystemExit(f"swap_encoder: {checkpoint}'s decoder differs from {plain.name} by "
                             f"{worst:.2e}: not an encoder-only fine-tune of this model")
        before = {}
        for variant in ("int8", "fp32"):
            name = manifest["variants"][variant]["encoder"]
            before[name] = manifest["sha256"][name]
            shutil.copyfile(out / fresh["variants"][variant]["encoder"], folder / name)
            (folder / name).chmod(0o644)
            manifest["sha256"][name] = sha256_file(folder / name)
    previous = manifest.get("encoder_fine_tune", {}).get("from", {})
    record = {"from": {k: previous.get(k, v) for k, v in before.items()},
              "checkpoint": str(checkpoint), "decoder_parity_max_abs": worst,
              "train_args": info.get("args", {}) if isinstance(info, dict) else {}}
    manifest["encoder_fine_tune"] = record
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    from grooverack.model.runner import default_manifest_path

    parser = argparse.ArgumentParser(prog="python -m grooverack.training.swap_encoder",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--manifest", type=Path, default=None)
    args = parser.parse_args(argv)
    manifest = args.manifest or Path(default_manifest_path())
    record = swap(args.checkpoint, manifest)
    print(f"swap_encoder: {manifest}: encoders from {args.checkpoint} (decoder parity "
          f"{record['decoder_parity_max_abs']:.1e})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
