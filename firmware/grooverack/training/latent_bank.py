"""Build the latent bank (random A/B latents where real grooves live) and measure what it plays.

    python -m grooverack.training.latent_bank build [--per-genre 256] [--min-loops 80]
        [--typical 0.7]
    python benchmarks/latent_bank_follow0.py [--seeds 40] [--genres any,rock,funk,jazz]

`build` encodes every TRAIN loop of the Groove MIDI Dataset with the shipped encoder (the int8
variant the module runs, through `ModelRunner`: onnxruntime, item by item as on the module), keeps
up to `--per-genre` mus per style, from the `--typical` share of the style's loops most typical of
it (`typicality`: p(style | mu) of a linear classifier on mu that never saw the loop's
performance), spread over the style's performances (one loop of each file before a second of
any), and writes `models/latent-bank.npz` (`grooverack.model.bank`) with the
encoder's mean posterior standard deviation per latent dimension (the perturbation's scale) and
the per-voice `hit_shift` (logit) that makes the decoder, fed the train loops' mus (genre "any",
each loop's tempo, the manifest's thresholds, no sampling noise), play as many hits per voice as
those loops have (`--no-hit-shift`: none). It
records the file in the manifest (`latent_bank`: file, sha256, perturbation, how it was built) and
the styles a user may choose (`genres_offered`: "any" and every style with at least `--min-loops`
train loops from at least `--min-performances` performances; the rest are listed with their
counts under `genres_offered_rule`). Only the keys it owns are rewritten.

`benchmarks/latent_bank_follow0.py` (beside the benchmarks: it renders through the CLI, which
the training room never imports) renders the module at follow = 0 through the CLI's own path (`grooverack sim --set
follow=0 --seed S`, in-process: the same parser, settings, board and engine), once with the bank and
once with the old N(0, I) draw (a copy of the manifest without the bank), over `--seeds` seeds and
the `--genres` given, and compares the mean hits per voice per 2-bar loop with the real train and
validation loops of that style (all styles for "any"): the total absolute difference relative to
the real total, and how often a loop has a tom, an open hat, a crash, a ride. The test split is
never read.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.model.bank import BANK_KEY, DEFAULT_PERTURBATION, save_bank
from grooverack.model.runner import ModelRunner, default_manifest_path, sha256_file

log = logging.getLogger("grooverack.training.latent_bank")

BANK_FILE = "latent-bank.npz"
PER_GENRE = 256
MIN_LOOPS = 80            # fewer train loops than this: the style's embedding is hardly trained
MIN_PERFORMANCES = 2      # one performance is one drummer's take of one groove, not a style
SEED = 20
TYPICAL = 0.7             # a style's A/B from its 70 % most typical train loops (models/README.md)
LOOPS_PER_RENDER = 4      # 8 bars
TOMS = (4, 5, 6)
PRESENCE = {"toms": TOMS, "open_hat": (3,), "crash": (7,), "ride": (8,)}


# ----------------------------------------------------------------------------------------- build


def spread_pick(sources: list[str], rows: np.ndarray, k: int, rng: np.random.Generator
                ) -> np.ndarray:
    """Up to k of `rows`, spread over their performances (the file part of `source`): a random
    loop of every file, then a second of every file that has one, and so on."""
    files: dict[str, list[int]] = {}
    for r in rows:
        files.setdefault(sources[r].rsplit(":", 1)[0], []).append(int(r))
    rank = np.empty(len(rows), dtype=np.int64)
    order = np.empty(len(rows), dtype=np.int64)
    n = 0
    for members in files.values():
        perm = rng.permutation(len(members))
        for j, p in enumerate(perm):
            order[n], rank[n] = members[p], j
            n += 1
    tie = rng.random(len(rows))
    chosen = order[np.lexsort((tie, rank))][:k]
    return np.sort(chosen)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float = 1e-3,
                steps: int = 400, lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (numpy, full-batch gradient descent, class-balanced: each
    class weighs as much as any other whatever its count, so rock does not swamp the small
    styles). Returns (W [D, C], b [C]) for logits x @ W + b; x should be standardised."""
    d = x.shape[1]
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = np.where(counts[y] > 0, 1.0 / np.maximum(counts[y], 1.0), 0.0)
    weight *= 1.0 / max(weight.sum(), 1e-12)
    onehot = np.eye(n_classes)[y]
    w = np.zeros((d, n_classes))
    b = np.zeros(n_classes)
    for _ in range(steps):
        g = (_softmax(x @ w + b) - onehot) * weight[:, None]
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return w, b


def typicality(mu: np.ndarray, genre: np.ndarray, sources: Sequence[str], n_genres: int,
               folds: int = 4, seed: int = SEED) -> np.ndarray:
    """How typical of its own style each train loop's latent is: p(its style | mu) from a
    class-balanced linear classifier on the encoder's mu that never saw the loop's performance
    (cross-fitted over `folds` folds by performance, `genre_classifier.performance_folds`);
    [N] in 0..1. A linear model of the latent, not the CNN on patterns that judges the styles
    (benchmarks/style_recognition.py)."""
    from grooverack.training.genre_classifier import performance_folds

    x = np.asarray(mu, np.float64)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    y = np.asarray(genre, np.int64)
    fold = performance_folds(sources, y, folds, seed)
    out = np.zeros(len(x))
    for k in range(folds):
        held = fold == k
        w, b = fit_softmax(x[~held], y[~held], n_genres)
        out[held] = _softmax(x[held] @ w + b)[np.arange(int(held.sum())), y[held]]
    return out


def typical_rows(rows: np.ndarray, score: np.ndarray, fraction: float) -> np.ndarray:
    """The `fraction` of `rows` (at least one) whose `score` is highest, in row order."""
    if fraction >= 1.0 or len(rows) == 0:
        return rows
    k = max(1, int(round(fraction * len(rows))))
    best = rows[np.argsort(-score[rows], kind="stable")[:k]]
    return np.sort(best)


def fit_hit_shift(logits: np.ndarray, hits: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per voice the logit shift s of the threshold for which `logit > logit(thr) + s` holds
    in as many cells as `hits` has: decoded loops then play the real number of hits per voice."""
    p = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    base = np.log(p / (1 - p))
    shift = np.zeros(len(base))
    for v in range(len(base)):
        vals = np.sort((logits[..., v].astype(np.float64) - base[v]).ravel())[::-1]
        c = int(np.asarray(hits[..., v] > 0).sum())
        if c == 0:
            shift[v] = vals[0] + 1.0
        elif c >= len(vals):
            shift[v] = vals[-1] - 1.0
        else:
            shift[v] = 0.5 * (vals[c - 1] + vals[c])
    return np.clip(shift, -10.0, 10.0)


# Styles not offered although they have the loops: a classifier trained on other performances does
# not recognise them even in the drummers' own loops (benchmarks/style_recognition.py, models/
# README.md "Styles that are recognisable"): country 0 % out of fold (2 performances), punk 10 %
# (fast straight beats, taken for rock and hiphop; a punk groove is offered as rock); blues and
# reggae at chance at follow 0, hiphop and pop under 2 x chance with a sequencer line at the
# default follow (issue 29, models/README.md "Sequencer lines")
NOT_RECOGNISABLE = ("blues", "country", "hiphop", "pop", "punk", "reggae")


def offered_genres(genres: list[str], loops: dict[str, int], performances: dict[str, int],
                   min_loops: int, min_performances: int,
                   not_offered: Sequence[str] = ()) -> tuple[list[str], dict[str, Any]]:
    offered, dropped = ["any"], {}
    for g in genres[1:]:
        enough = loops.get(g, 0) >= min_loops and performances.get(g, 0) >= min_performances
        if enough and g not in not_offered:
            offered.append(g)
        else:
            dropped[g] = {"train_loops": loops.get(g, 0),
                          "train_performances": performances.get(g, 0)}
            if enough:
                dropped[g]["reason"] = "not recognisable (benchmarks/style_recognition.py)"
    return offered, dropped


def build(args: argparse.Namespace) -> int:
    from grooverack.training.data import STYLES, data_hash, load_splits

    typical = getattr(args, "typical", TYPICAL)
    if not 0.0 < typical <= 1.0:
        raise SystemExit(f"latent_bank: --typical {typical}; allowed: more than 0, at most 1 "
                         "(the share of each style's train loops to draw from)")
    manifest_path = Path(args.manifest) if args.manifest else default_manifest_path()
    runner = ModelRunner(manifest_path, args.variant)
    genres = list(runner.genres)
    train = load_splits(args.gmd, args.cache)["train"]
    started = time.perf_counter()
    mu, logvar = runner.encode_batch(train.groove)
    log.info("encoded %d train loops in %.1f s", len(mu), time.perf_counter() - started)
    sigma = np.exp(0.5 * logvar.astype(np.float64)).mean(axis=0)
    hit_shift = None
    if not args.no_hit_shift:
        bpm = train.bpm if runner.tempo and train.bpm is not None else None
        logits, _, _ = runner.decode_batch(mu, 0, bpm)
        hit_shift = fit_hit_shift(logits, train.hits, runner.thresholds)
        log.info("hit_shift %s", np.round(hit_shift, 3).tolist())
    # genre index of each loop: GMD style + 1 (genres[0] = "any"), as training conditions it
    if genres:
        names = ["any", *STYLES]
        if genres != names:
            raise SystemExit(f"latent_bank: the model's genres {genres} are not 'any' + the GMD "
                             f"styles {list(STYLES)}")
        genre = np.asarray(train.style, dtype=np.int64) + 1
    else:
        genre = np.zeros(len(mu), dtype=np.int64)
    n_genres = max(len(genres), 1)
    loops = np.bincount(genre, minlength=n_genres)
    files = [s.rsplit(":", 1)[0] for s in train.source]
    perf = {g: len({f for f, gi in zip(files, genre, strict=True) if gi == i})
            for i, g in enumerate(genres)}
    score = (typicality(mu, genre, train.source, n_genres)
             if typical < 1.0 and n_genres > 1 else np.ones(len(mu)))
    rng = np.random.default_rng(args.seed)
    keep = np.concatenate([
        spread_pick(train.source, typical_rows(np.flatnonzero(genre == g), score, typical),
                    args.per_genre, rng)
        for g in range(n_genres) if loops[g]])
    folder = manifest_path.parent
    out = folder / BANK_FILE
    per_loop = train.hits.sum(axis=1)
    real_hits = np.zeros((n_genres, per_loop.shape[1]))
    real_hits[0] = per_loop.mean(axis=0)
    for g in range(1, n_genres):
        if loops[g]:
            real_hits[g] = per_loop[genre == g].mean(axis=0)
    save_bank(out, mu[keep], genre[keep], genres, loops, sigma, hit_shift, real_hits)
    digest = sha256_file(out)
    counts = dict(zip(genres, loops.tolist(), strict=False))
    not_offered = [g for g in args.not_offered.split(",") if g]
    offered, dropped = offered_genres(genres, counts, perf, args.min_loops,
                                      args.min_performances, not_offered) if genres else ([], {})
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest[BANK_KEY] = {
        "file": BANK_FILE,
        "sha256": digest,
        "perturbation": args.perturbation,
        "built": {
            "command": "python -m grooverack.training.latent_bank build " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in (
                    ("per_genre", args.per_genre), ("min_loops", args.min_loops),
                    ("min_performances", args.min_performances), ("seed", args.seed),
                    ("perturbation", args.perturbation), ("typical", typical),
                    ("variant", args.variant),
                    ("not_offered", args.not_offered)))
                + (" --no-hit-shift" if args.no_hit_shift else ""),
            "split": "train",
            "train_loops": int(len(mu)),
            "entries": int(len(keep)),
            "per_genre_max": args.per_genre,
            "typical": typical,
            "typical_rule": ("each style's latents with the highest p(style | mu) of a "
                             "class-balanced linear classifier on mu that never saw the "
                             "loop's performance (4 folds by performance)"
                             if typical < 1.0 else "all of the style's train loops"),
            "encoder": runner.encoder_path.name,
            "encoder_sha256": sha256_file(runner.encoder_path),
            "data_hash": data_hash(args.gmd) if args.gmd else runner.data_hash,
            "sigma_mean": round(float(sigma.mean()), 4),
            "hit_shift": (None if hit_shift is None
                          else [round(float(x), 4) for x in hit_shift]),
            "hit_shift_fit": "train loops, genre any, loop tempo, manifest thresholds, T = 0",
            "thresholds": [float(t) for t in runner.manifest["thresholds"]],
            "bytes": out.stat().st_size,
        },
    }
    if genres:
        manifest["genres_offered"] = offered
        manifest["genres_offered_rule"] = {"min_train_loops": args.min_loops,
                                           "min_train_performances": args.min_performances,
                                           "not_recognisable": not_offered,
                                           "dropped": dropped}
    from grooverack.storage import atomic_write_bytes

    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(keep)} latents of {len(mu)} train "
          f"loops, sigma mean {sigma.mean():.3f}); manifest {manifest_path} updated")
    if genres:
        print("offered: " + ", ".join(offered))
        print("dropped: " + ", ".join(f"{g} ({d['train_loops']} loops, "
                                      f"{d['train_performances']} performances)"
                                      for g, d in dropped.items()))
    return 0


# -------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grooverack.training.latent_bank",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="model manifest (default: the shipped one)")
    parser.add_argument("--gmd", help="Groove MIDI Dataset zip (default: shared/datasets/gmd)")
    parser.add_argument("--cache", help="loop cache folder (default: .cache/gmd)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="encode the train loops, write the bank, update the manifest")
    b.add_argument("--per-genre", type=int, default=PER_GENRE)
    b.add_argument("--min-loops", type=int, default=MIN_LOOPS)
    b.add_argument("--min-performances", type=int, default=MIN_PERFORMANCES)
    b.add_argument("--perturbation", type=float, default=DEFAULT_PERTURBATION,
                   help="k in z = mu + k * sigma * eps (1 = a sample of the encoder's posterior)")
    b.add_argument("--seed", type=int, default=SEED)
    b.add_argument("--typical", type=float, default=TYPICAL,
                   help="keep, per style, this fraction of its train loops most typical of it "
                        "(p(style | mu) of a linear classifier on mu cross-fitted by "
                        f"performance) before spreading over performances (default {TYPICAL}; "
                        "1: every loop)")
    b.add_argument("--not-offered", default=",".join(NOT_RECOGNISABLE),
                   help="styles not offered although they have the loops (comma-separated; "
                        f"default {','.join(NOT_RECOGNISABLE)}: not recognisable)")
    b.add_argument("--variant", default="int8", choices=("int8", "fp32"))
    b.add_argument("--no-hit-shift", action="store_true",
                   help="no per-voice threshold shift for A/B (the decoder's own density)")
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return build(args)


if __name__ == "__main__":
    raise SystemExit(main())
