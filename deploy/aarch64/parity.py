"""Model parity between two machines (x86-64 and aarch64 under qemu): the same shipped int8
model on the same validation grooves must give the same numbers.

    python parity.py dump OUT.npz [--count 300]     # on the host: grooves + host outputs
    python parity.py run IN.npz OUT.npz              # on the other machine: its outputs
    python parity.py compare HOST.npz OTHER.npz      # on the host: within tolerance?

`dump` reads the Groove MIDI Dataset's validation split (`grooverack.training.data`, numpy + mido,
no torch) and takes `--count` loops spread evenly over it; `run` needs only numpy + onnxruntime.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from grooverack.model.runner import ModelRunner

TOLERANCE = 1e-4    # largest difference allowed in mu, logvar and the decoder's outputs
FLIPS_ALLOWED = 8   # hit decisions (probability vs the shipped thresholds) that may differ
INT8_ERROR_RATIO = 1.1  # int8: the other machine's error against its fp32, relative to the host's
INT8_FLIPS_SHARE = 0.005  # int8: at most this share of hit decisions may differ
KEYS = ("mu", "logvar", "hit_logits", "velocities", "offsets")


def outputs(runner: ModelRunner, grooves: np.ndarray) -> dict[str, np.ndarray]:
    """One groove at a time, as the module runs it (dynamic int8 quantizes each call's own
    activations, so a batch would give other numbers than the firmware sees)."""
    rows: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    for groove in grooves:
        mu, logvar = runner.encode(groove)
        hit_logits, velocities, offsets = runner.decode(mu, 0)
        for k, v in zip(KEYS, (mu, logvar, hit_logits, velocities, offsets), strict=True):
            rows[k].append(v)
    return {k: np.stack(v) for k, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out")
    d.add_argument("--count", type=int, default=300)
    r = sub.add_parser("run")
    r.add_argument("grooves")
    r.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("host")
    c.add_argument("other")
    c.add_argument("--fp32", nargs=2, metavar=("HOST32", "OTHER32"),
                   help="int8: each machine's fp32 outputs, to compare the int8 error of both")
    parser.add_argument("--variant", default="int8", choices=("int8", "fp32"))
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        from grooverack.training.data import load_splits

        val = load_splits()["validation"]
        pick = np.linspace(0, len(val.groove) - 1, args.count).round().astype(int)
        grooves = val.groove[pick].astype(np.float32)
        np.savez(args.out, grooves=grooves, **outputs(ModelRunner(variant=args.variant), grooves))
        print(f"{len(grooves)} validation grooves and the host's outputs -> {args.out}")
        return 0
    if args.cmd == "run":
        grooves = np.load(args.grooves)["grooves"]
        np.savez(args.out, **outputs(ModelRunner(variant=args.variant), grooves))
        print(f"{len(grooves)} grooves -> {args.out}")
        return 0
    host, other = np.load(args.host), np.load(args.other)
    worst = {k: float(np.max(np.abs(host[k] - other[k]))) for k in KEYS}
    thresholds = ModelRunner(variant=args.variant).thresholds
    prob = {k: 1 / (1 + np.exp(-x["hit_logits"].astype(np.float64)))
            for k, x in (("h", host), ("o", other))}
    flips = int(np.sum((prob["h"] > thresholds) != (prob["o"] > thresholds)))
    cells = prob["h"].size
    print(f"{args.variant}: largest differences: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"{args.variant}: hit decisions that differ: {flips} of {cells} "
          f"({100 * flips / cells:.2f} %)")
    if args.fp32 is None:  # fp32: the same arithmetic on both machines, to float rounding
        ok = max(worst.values()) <= TOLERANCE and flips <= FLIPS_ALLOWED
        print("parity: " + ("ok" if ok else f"FAILED (tolerance {TOLERANCE:g}, "
                                              f"{FLIPS_ALLOWED} flips allowed)"))
        return 0 if ok else 1
    # int8: onnxruntime's integer kernels round differently on x86-64 (AVX2 u8s8) and aarch64
    # (NEON), so the two int8 outputs differ by quantization noise; what must hold is that
    # neither is further from the fp32 model than the other, and few decisions move.
    h32, o32 = (np.load(f) for f in args.fp32)
    err_h = float(np.mean(np.abs(host["hit_logits"] - h32["hit_logits"])))
    err_o = float(np.mean(np.abs(other["hit_logits"] - o32["hit_logits"])))
    print(f"int8 vs fp32, mean |hit logit difference|: host {err_h:.4f}, other {err_o:.4f}")
    ok = err_o <= INT8_ERROR_RATIO * err_h and flips <= INT8_FLIPS_SHARE * cells
    print("parity: " + ("ok" if ok else f"FAILED (int8 error within {INT8_ERROR_RATIO:g}x of the "
                                          f"host's, at most {100 * INT8_FLIPS_SHARE:g} % flips)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
