"""Voice redistribution, measured (issue 20 item 3): with a voice group removed, do the remaining
voices still cover the input's onsets?

For every VALIDATION loop (`--split test`: the held-out report, once, selecting nothing) the groove the module hears is encoded
and decoded as it plays with follow = 1 (z = mu, genre "any", the loop's tempo, the manifest's
thresholds, no sampling noise), through the runner (int8 by default). Per group:
- "present": share of the groove's onsets on which any voice plays (nothing removed);
- "muted": the same pattern with the group's voices silenced (what muting alone leaves);
- "revoiced": the decoder told the group is removed, counting the remaining voices only.
The issue's criterion: revoiced >= present for every group. Also the hits per loop of the
remaining voices, and how far the revoiced pattern is from the re-voiced real loop
(`training.revoice`, hit F1 of the remaining voices).

    .venv/bin/python benchmarks/revoice_coverage.py [--manifest M] [--variant int8] [--json F]
        [--split validation|test]

The removal thresholds are chosen on validation (`grooverack eval --split validation
--choose-thresholds`, which lowers them where needed until the remaining voices cover the onsets
as the whole kit does), so validation meets the criterion by construction; test says whether
that holds on performances nothing was chosen on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from grooverack.model.runner import ModelRunner
from grooverack.voices import VOICE_GROUPS


def measure(runner: ModelRunner, loops: Any) -> dict[str, Any]:
    from grooverack.training.evaluate import predict_probs
    from grooverack.training.revoice import onset_coverage, removed_voices, revoice

    bpm = loops.bpm if runner.tempo else None
    th = runner.thresholds
    # decoded as the module decodes a followed groove (both bar views pooled where the manifest
    # says so: evaluate.predict_probs)
    base = predict_probs(runner, loops.groove, bpm=bpm)[0] > th
    present = onset_coverage(base, loops.groove)
    out: dict[str, Any] = {"loops": len(loops), "variant": runner.variant,
                           "present": present, "groups": {}}
    for gi, group in enumerate(VOICE_GROUPS):
        flags = np.eye(len(VOICE_GROUPS), dtype=np.float32)[gi]
        keep = ~removed_voices(flags)
        row: dict[str, Any] = {"muted": onset_coverage(base, loops.groove, keep)}
        truth, _, _ = revoice(loops.hits, loops.velocities, loops.offsets,
                              np.broadcast_to(flags, (len(loops), len(flags))))
        if runner.removal_groups:
            # the thresholds the module uses with this group removed (the manifest's
            # removal_thresholds, chosen on validation against the re-voiced loops)
            pred = (predict_probs(runner, loops.groove, bpm=bpm, removed=flags)[0]
                    > runner.thresholds_for(flags))
            row["revoiced"] = onset_coverage(pred, loops.groove, keep)
        else:
            pred = base.copy()
        pred = pred & keep
        tp = float((pred & (truth > 0.5)).sum())
        row["f1_vs_revoiced_loop"] = 2 * tp / max(float(pred.sum() + (truth > 0.5).sum()), 1.0)
        row["hits_per_loop_remaining"] = float(pred.sum() / len(loops))
        row["hits_per_loop_present"] = float((base & keep).sum() / len(loops))
        row["hits_per_loop_real_revoiced"] = float((truth > 0.5).sum() / len(loops))
        out["groups"][group] = row
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{result.get('split', 'validation')}, {result['loops']} loops, {result['variant']}: onsets covered with "
             f"nothing removed {result['present']:.3f}",
             "| group removed | muted only | revoiced | revoiced >= present | hits/loop left "
             "(muted, revoiced, real re-voiced) | F1 vs the re-voiced loop |",
             "|---|---|---|---|---|---|"]
    for group, row in result["groups"].items():
        rev = row.get("revoiced")
        lines.append(
            f"| {group} | {row['muted']:.3f} | {'-' if rev is None else f'{rev:.3f}'} | "
            f"{'-' if rev is None else ('yes' if rev >= result['present'] else 'no')} | "
            f"{row['hits_per_loop_present']:.1f}, {row['hits_per_loop_remaining']:.1f}, "
            f"{row['hits_per_loop_real_revoiced']:.1f} | {row['f1_vs_revoiced_loop']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from grooverack.training import data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=None)
    parser.add_argument("--variant", default="int8", choices=("int8", "fp32"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    args = parser.parse_args(argv)
    runner = ModelRunner(args.manifest, variant=args.variant)
    loops = data.load_splits()[args.split]
    result = measure(runner, loops)
    result["split"] = args.split
    result["manifest"] = str(runner.manifest_path)
    print(table(result))
    if args.json:
        from grooverack.storage import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
