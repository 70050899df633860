"""What the module plays on its own with the latent bank (issue 20 item 1): renders at follow = 0
through the CLI's own path and compares the hits per voice with real GMD loops (train and
validation; the test split is never read). The bank itself is built by
`python -m grooverack.training.latent_bank build`.

    .venv/bin/python benchmarks/latent_bank_follow0.py [--seeds 40] [--genres any,rock,funk,jazz]
        [--ablation] [--bank-only] [--perturbation K] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from grooverack.model.bank import BANK_KEY
from grooverack.model.runner import MANIFEST_NAME, default_manifest_path, sha256_file
from grooverack.training.latent_bank import LOOPS_PER_RENDER, PRESENCE, TOMS
from grooverack.voices import STEPS, VOICE_NAMES


def variant_manifest(manifest_path: Path, folder: Path, *, bank: bool,
                     perturbation: float | None, shift: bool = True) -> Path:
    """A copy of the manifest (files linked) with the bank removed, its perturbation changed or
    (shift False) a copy of the bank without its hit_shift."""
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    if not bank:
        data.pop(BANK_KEY, None)
    elif perturbation is not None:
        data[BANK_KEY]["perturbation"] = perturbation
    if bank and not shift:
        name = data[BANK_KEY]["file"]
        with np.load(manifest_path.parent / name, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "hit_shift"}
        np.savez_compressed(folder / name, **arrays)
        data[BANK_KEY]["sha256"] = sha256_file(folder / name)
    for name in {*data["sha256"], data.get(BANK_KEY, {}).get("file", "")} - {""}:
        target = folder / name
        if not target.exists():
            try:
                target.symlink_to(manifest_path.parent / name)
            except OSError:
                shutil.copyfile(manifest_path.parent / name, target)
    out = folder / MANIFEST_NAME
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out


def render_counts(seed: int, genre: str, manifest: Path, bars: int = 2 * LOOPS_PER_RENDER
                  ) -> np.ndarray:
    """`grooverack sim --set follow=0 --seed S --set genre=G` in-process -> hits [loops, voices]:
    every voice on its own output (the default map puts crash and ride on one)."""
    from grooverack.cli import build_parser
    from grooverack.sim.session import simulate

    argv = ["sim", "--set", "follow=0", "--seed", str(seed), "--set", f"genre={genre}",
            "--set", f"model.path={manifest}", "--bars", str(bars), "-q", "--board", "direct",
            "--set", "outputs.count=9", "--set", "map.ride=9"]
    args = build_parser("sim").parse_args(argv)
    patch, recorder, settings, _ = simulate(args)
    loop_s = patch.step_seconds * STEPS
    counts = np.zeros((bars // 2, len(VOICE_NAMES)))
    for hit in recorder.hits(settings["outputs.velocity_volts"]):
        loop = int(hit.time // loop_s)
        if hit.voice is not None and loop < len(counts):
            counts[loop, hit.voice] += 1
    return counts


def compare(generated: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    """generated [loops, 9] hit counts vs real hits [loops, 9]."""
    g, r = generated.mean(axis=0), real.mean(axis=0)
    out = {"hits_per_loop": round(float(g.sum()), 2), "real_hits_per_loop": round(float(r.sum()), 2),
           "per_voice": [round(float(x), 2) for x in g],
           "real_per_voice": [round(float(x), 2) for x in r],
           "total_abs_diff_rel": round(float(np.abs(g - r).sum() / r.sum()), 3)}
    for name, voices in PRESENCE.items():
        out[f"{name}_present"] = round(float((generated[:, list(voices)].sum(1) > 0).mean()), 3)
        out[f"real_{name}_present"] = round(float((real[:, list(voices)].sum(1) > 0).mean()), 3)
    return out


def measure(args: argparse.Namespace) -> int:
    from grooverack.training.data import STYLES, load_splits

    logging.getLogger("grooverack").setLevel(logging.ERROR)  # the no-bank copy warns each render
    manifest_path = Path(args.manifest) if args.manifest else default_manifest_path()
    splits = load_splits(args.gmd, args.cache)
    real = {}
    for split in ("train", "validation"):  # never test
        loops = splits[split]
        real[split] = (loops.hits.sum(axis=1), np.asarray(loops.style))
    genres = [g.strip() for g in args.genres.split(",") if g.strip()]
    priors = {"bank": (True, True), "normal": (False, False)}
    if args.ablation:
        priors["bank-noshift"] = (True, False)
    if args.bank_only:
        priors = {"bank": (True, True)}
    results: dict[str, Any] = {"command": "python benchmarks/latent_bank_follow0.py "
                               + " ".join(sys.argv[1:] if args.argv is None else args.argv),
                               "seeds": args.seeds, "loops_per_seed": LOOPS_PER_RENDER,
                               "voices": list(VOICE_NAMES), "results": {}}
    with tempfile.TemporaryDirectory(prefix="latent-bank-") as tmp:
        for prior, (bank, shift) in priors.items():
            manifest = variant_manifest(manifest_path, Path(tmp) / prior, bank=bank,
                                        perturbation=args.perturbation, shift=shift)
            for genre in genres:
                counts = np.concatenate([render_counts(s, genre, manifest)
                                         for s in range(args.first_seed,
                                                        args.first_seed + args.seeds)])
                row = {}
                for split, (hits, style) in real.items():
                    mask = (np.ones(len(style), bool) if genre == "any"
                            else style == STYLES.index(genre))
                    if mask.any():
                        row[split] = compare(counts, hits[mask])
                results["results"][f"{prior}/{genre}"] = row
                if prior == "bank":  # the floor: how far real train and validation loops differ
                    floor = {}
                    for split in ("train", "validation"):
                        hits, style = real[split]
                        floor[split] = (hits if genre == "any"
                                        else hits[style == STYLES.index(genre)])
                    if len(floor["validation"]):
                        results["results"][f"real-train/{genre}"] = {
                            "validation": compare(floor["train"], floor["validation"])}
                print(f"{prior:6s} {genre:8s} " + "  ".join(
                    f"{split}: {c['hits_per_loop']:.1f} vs {c['real_hits_per_loop']:.1f} hits, "
                    f"diff {100 * c['total_abs_diff_rel']:.0f} %, toms {c['toms_present']:.2f} vs "
                    f"{c['real_toms_present']:.2f}" for split, c in row.items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    return 0


def markdown(results: dict[str, Any]) -> str:
    lines = ["| prior | style | vs | hits/loop (real) | kick | snare | c.hat | o.hat | toms "
             "| crash | ride | abs diff / real | loops with toms (real) | open hat | crash | ride |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in results["results"].items():
        prior, genre = key.split("/")
        for split, c in row.items():
            g, r = c["per_voice"], c["real_per_voice"]
            cells = [f"{g[i]:.1f} ({r[i]:.1f})" for i in (0, 1, 2, 3)]
            cells.append(f"{sum(g[i] for i in TOMS):.1f} ({sum(r[i] for i in TOMS):.1f})")
            cells += [f"{g[i]:.1f} ({r[i]:.1f})" for i in (7, 8)]
            pres = [f"{c[f'{n}_present']:.2f} ({c[f'real_{n}_present']:.2f})" for n in PRESENCE]
            lines.append(f"| {prior} | {genre} | {split} | {c['hits_per_loop']:.1f} "
                         f"({c['real_hits_per_loop']:.1f}) | " + " | ".join(cells)
                         + f" | {100 * c['total_abs_diff_rel']:.0f} % | " + " | ".join(pres) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="model manifest (default: the shipped one)")
    parser.add_argument("--gmd", help="Groove MIDI Dataset zip (default: shared/datasets/gmd)")
    parser.add_argument("--cache", help="loop cache folder (default: .cache/gmd)")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--genres", default="any,rock,funk,jazz")
    parser.add_argument("--perturbation", type=float, help="override the manifest's perturbation")
    parser.add_argument("--bank-only", action="store_true", help="skip the N(0, I) comparison")
    parser.add_argument("--ablation", action="store_true",
                        help="also the bank without its hit_shift")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return measure(args)


if __name__ == "__main__":
    raise SystemExit(main())
