"""A genre classifier of our own: is a pattern recognisable as the style it was asked for?

    python -m grooverack.training.genre_classifier train [--manifest M] [--merge pop=rock]
        [--out runs/genre-classifier] [--epochs 30] [--seed 7]

A small 1-D CNN over the 32 steps of a loop's full drums (hits, velocities, offsets of the 9
voices: 27 channels), the GrooveGen paper's kind of style probe. Trained on TRAIN loops only;
the epoch kept is the one with the best balanced accuracy (mean recall over the classes present)
on VALIDATION; test is never read here (`benchmarks/style_recognition.py` reports it once).

Classes: the styles the model offers (the manifest's `genres_offered`, less "any"), or a merged
set (`--merge pop=rock` puts pop's loops under rock). Loops of styles outside the classes are left
out. The styles are very unbalanced (rock 5,264 train loops, blues 87), so the loss weighs each
class by 1 / its train loops (at most as much as a class of 80 loops, the offering rule's minimum):
the classifier is asked for equal recall per style, the figure the recognition criterion averages.
`performance_folds` splits train by performance for held-out classifiers (a file's windows
overlap: they never straddle folds). Augmentation: the two bars swapped (p 0.5), as the VAE's training.

Seeded (data order, initialisation, augmentation, dropout) and run on the thread count given (1 by
default): a few minutes on one CPU core. The checkpoint (`classifier.pt`: weights, classes, merges,
the validation history) is what the benchmark reuses. Training-only code: the runtime never
imports torch.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger("grooverack.training.genre_classifier")

CHECKPOINT = Path("runs") / "genre-classifier" / "classifier.pt"
CHECKPOINT_FORMAT = 1
EPOCHS = 20
PATIENCE = 8
BATCH = 128
LR = 2e-3
WEIGHT_DECAY = 1e-2
SEED = 7
WIDTH = 32
DROPOUT = 0.5
HIT_DROPOUT = 0.1
LABEL_SMOOTHING = 0.1
WEIGHT_FLOOR = 80          # the offering rule's minimum of train loops per style


# ------------------------------------------------------------------------------------- classes


def parse_merges(specs: Sequence[str]) -> dict[str, str]:
    """["pop=rock", "blues=jazz"] -> {"pop": "rock", "blues": "jazz"} (style -> the class it joins)."""
    out: dict[str, str] = {}
    for spec in specs:
        src, sep, dst = spec.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"merge {spec!r}: allowed STYLE=CLASS, e.g. pop=rock")
        out[src.strip()] = dst.strip()
    return out


def offered_classes(manifest: dict[str, Any], merges: dict[str, str] | None = None) -> list[str]:
    """The classifier's classes: the manifest's offered styles less "any", merged styles gone."""
    offered = [g for g in manifest.get("genres_offered", manifest.get("genres", [])) if g != "any"]
    if not offered:
        raise ValueError("the manifest offers no style besides 'any': nothing to classify")
    merges = merges or {}
    for src, dst in merges.items():
        if dst not in offered or dst in merges:
            raise ValueError(f"merge {src}={dst}: {dst!r} is not an offered class; allowed: "
                             f"{', '.join(g for g in offered if g not in merges)}")
    return [g for g in offered if g not in merges]


def style_labels(style: np.ndarray, style_names: Sequence[str], classes: Sequence[str],
                 merges: dict[str, str] | None = None) -> np.ndarray:
    """GMD style indices -> class indices (-1: a style outside the classes)."""
    merges = merges or {}
    lookup = np.full(len(style_names), -1, dtype=np.int64)
    for i, name in enumerate(style_names):
        name = merges.get(name, name)
        if name in classes:
            lookup[i] = list(classes).index(name)
    return lookup[np.asarray(style, dtype=np.int64)]


# ------------------------------------------------------------------------------------- features


def loop_features(hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Drums [N, 32, 9] x 3 -> [N, 27, 32] float32: 9 hit, 9 velocity, 9 offset (x2) channels."""
    h = np.asarray(hits, dtype=np.float32)
    on = h > 0.5
    v = np.where(on, np.asarray(velocities, dtype=np.float32), 0.0)
    o = np.where(on, 2.0 * np.asarray(offsets, dtype=np.float32), 0.0)
    x = np.concatenate([on.astype(np.float32), v, o], axis=-1)  # [N, 32, 27]
    return np.ascontiguousarray(np.transpose(x, (0, 2, 1)), dtype=np.float32)


# ---------------------------------------------------------------------------------------- model


class GenreCNN(nn.Module):
    """27 channels x 32 steps -> class logits: three conv stages (32 -> 16 -> 8 steps), then the
    mean and max over the steps, dropout and a linear layer. About 60 k parameters."""

    def __init__(self, n_classes: int, width: int = WIDTH, dropout: float = DROPOUT,
                 channels: int = 27) -> None:
        super().__init__()

        def stage(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding=1, padding_mode="circular"),
                                 nn.BatchNorm1d(c_out), nn.ReLU(),
                                 nn.Conv1d(c_out, c_out, 3, padding=1, padding_mode="circular"),
                                 nn.BatchNorm1d(c_out), nn.ReLU())

        self.body = nn.Sequential(stage(channels, width), nn.MaxPool1d(2),
                                  stage(width, width), nn.MaxPool1d(2),
                                  stage(width, 2 * width))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, n_classes))
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1))


def class_weights(y: np.ndarray, n_classes: int, floor: int = WEIGHT_FLOOR) -> np.ndarray:
    """1 / train loops per class (a class with fewer than `floor` loops weighed as if it had
    `floor`: a handful of loops must not dominate the loss), scaled to mean 1 over the classes
    present (0 for absent)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, float(max(floor, 1))), 0.0)
    present = counts > 0
    return w / w[present].mean()


def recalls(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class the share of its loops predicted as it (NaN where a class has none)."""
    pred, true = np.asarray(pred), np.asarray(true)
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        mask = true == c
        if mask.any():
            out[c] = float((pred[mask] == c).mean())
    return out


def balanced_accuracy(pred: np.ndarray, true: np.ndarray, n_classes: int) -> float:
    r = recalls(pred, true, n_classes)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def predict_logits(model: GenreCNN, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))).numpy())
    if not out:
        return np.zeros((0, model.n_classes), np.float32)
    return np.concatenate(out)


def predict(model: GenreCNN, x: np.ndarray) -> np.ndarray:
    """Class index per loop."""
    return predict_logits(model, x).argmax(axis=1)


def train_classifier(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                     n_classes: int, *, epochs: int = EPOCHS, patience: int = PATIENCE,
                     seed: int = SEED, batch: int = BATCH, lr: float = LR,
                     width: int = WIDTH, dropout: float = DROPOUT, threads: int = 1,
                     bar_swap: bool = True, hit_dropout: float = HIT_DROPOUT,
                     label_smoothing: float = LABEL_SMOOTHING, weight_decay: float = WEIGHT_DECAY
                     ) -> tuple[GenreCNN, list[dict[str, float]]]:
    """Train on (x, y), keep the epoch with the best validation balanced accuracy (ties: the
    earlier one); stop after `patience` epochs without a better one. Returns the model (the kept
    epoch's weights) and the per-epoch history."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GenreCNN(n_classes, width=width, dropout=dropout)
    weights = torch.tensor(class_weights(y, n_classes), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * int(np.ceil(len(x) / batch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    best, best_state, since, history = -1.0, None, 0, []
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb = xt[idx]
            if bar_swap:
                swap = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(swap[:, None, None], torch.roll(xb, 16, dims=-1), xb)
            if hit_dropout > 0.0:  # forget a few hits (hit, velocity and offset together)
                keep = torch.from_numpy(rng.random((len(idx), 9, xb.shape[-1])) >= hit_dropout)
                xb = xb * keep.repeat(1, 3, 1).to(xb.dtype)
            loss = loss_fn(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        pred = predict(model, x_val) if len(x_val) else np.zeros(0, np.int64)
        val_bal = balanced_accuracy(pred, y_val, n_classes) if len(x_val) else float("nan")
        val_acc = float((pred == y_val).mean()) if len(x_val) else float("nan")
        history.append({"epoch": epoch + 1, "loss": round(total / len(x), 4),
                        "validation_balanced": round(val_bal, 4),
                        "validation_accuracy": round(val_acc, 4),
                        "seconds": round(time.perf_counter() - started, 1)})
        log.info("epoch %d loss %.4f validation balanced %.4f accuracy %.4f (%.1f s)",
                 epoch + 1, total / len(x), val_bal, val_acc, time.perf_counter() - started)
        if not len(x_val) or val_bal > best:
            best, since = val_bal, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


# ----------------------------------------------------------------------------------- checkpoint


def save_checkpoint(path: str | Path, model: GenreCNN, classes: Sequence[str],
                    merges: dict[str, str], meta: dict[str, Any]) -> None:
    from grooverack.storage import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "state": model.state_dict(),
                "classes": list(classes), "merges": dict(merges),
                "width": int(model.body[0][0].out_channels), "meta": meta}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path) -> tuple[GenreCNN, dict[str, Any]]:
    """(model, the rest of the checkpoint: classes, merges, meta)."""
    path = Path(path)
    data = torch.load(path, map_location="cpu", weights_only=True)
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: genre classifier checkpoint format {data.get('format')!r}, "
                         f"this code reads {CHECKPOINT_FORMAT}")
    model = GenreCNN(len(data["classes"]), width=int(data["width"]))
    model.load_state_dict(data["state"])
    model.eval()
    return model, {k: v for k, v in data.items() if k != "state"}


# ------------------------------------------------------------------------------------ training


def performance_folds(sources: Sequence[str], y: np.ndarray, folds: int, seed: int = SEED
                      ) -> np.ndarray:
    """Fold index per loop, grouped by performance (the file part of `source`: a file's windows
    overlap, so they never straddle folds); each class's performances are dealt round-robin in a
    seeded order, so every fold holds some of every class that has enough performances."""
    rng = np.random.default_rng(seed)
    files = np.array([src.rsplit(":", 1)[0] for src in sources])
    out = np.zeros(len(files), dtype=np.int64)
    for c in np.unique(y):
        names = sorted(set(files[y == c]))
        order = rng.permutation(len(names))
        for j, k in enumerate(order):
            out[(files == names[k]) & (y == c)] = j % folds
    return out


def fit_on_gmd(manifest: dict[str, Any], merges: dict[str, str], splits: dict[str, Any], *,
               epochs: int = EPOCHS, seed: int = SEED, threads: int = 1,
               fold: int | None = None, folds: int = 0) -> tuple[GenreCNN, dict[str, Any]]:
    """Train on the GMD train loops of the classes (less fold `fold` of `folds`, grouped by
    performance, when given), choose the epoch on validation."""
    from grooverack.training.data import STYLES

    classes = offered_classes(manifest, merges)
    data = {}
    for split in ("train", "validation"):  # never test
        loops = splits[split]
        y = style_labels(loops.style, STYLES, classes, merges)
        keep = y >= 0
        if split == "train" and fold is not None:
            keep &= performance_folds(loops.source, y, folds, seed) != fold
        data[split] = (loop_features(loops.hits[keep], loops.velocities[keep],
                                     loops.offsets[keep]), y[keep])
    started = time.perf_counter()
    model, history = train_classifier(*data["train"], *data["validation"], len(classes),
                                      epochs=epochs, seed=seed, threads=threads)
    best = max(history, key=lambda h: (h["validation_balanced"], -h["epoch"]))
    meta = {"seed": seed, "epochs": epochs, "threads": threads, "history": history,
            "best_epoch": best["epoch"], "train_loops": int(len(data["train"][1])),
            "train_per_class": np.bincount(data["train"][1], minlength=len(classes)).tolist(),
            "fold": fold, "folds": folds, "seconds": round(time.perf_counter() - started, 1)}
    return model, {"classes": classes, "merges": merges, "meta": meta}


def load_or_train(path: str | Path, manifest: dict[str, Any], merges: dict[str, str],
                  splits: dict[str, Any], *, retrain: bool = False, epochs: int = EPOCHS,
                  seed: int = SEED, threads: int = 1, fold: int | None = None, folds: int = 0
                  ) -> tuple[GenreCNN, dict[str, Any]]:
    """The checkpoint at `path` when it was trained for these classes, merges, recipe and fold;
    otherwise train one and save it there."""
    path = Path(path)
    classes = offered_classes(manifest, merges)
    if path.is_file() and not retrain:
        model, info = load_checkpoint(path)
        meta = info.get("meta", {})
        if (info["classes"] == classes and info.get("merges", {}) == merges
                and meta.get("seed") == seed and meta.get("epochs") == epochs
                and meta.get("fold") == fold and meta.get("folds", 0) == folds):
            log.info("genre classifier: %s (epoch %s)", path, meta.get("best_epoch"))
            return model, info
        log.info("%s was trained for other classes, recipe or fold: training again", path)
    model, info = fit_on_gmd(manifest, merges, splits, epochs=epochs, seed=seed, threads=threads,
                             fold=fold, folds=folds)
    save_checkpoint(path, model, info["classes"], info["merges"], info["meta"])
    log.info("saved %s", path)
    return model, info


def main(argv: list[str] | None = None) -> int:
    from grooverack.model.runner import default_manifest_path
    from grooverack.training.data import load_splits

    parser = argparse.ArgumentParser(prog="python -m grooverack.training.genre_classifier",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train",))
    parser.add_argument("--manifest", help="model manifest (default: the shipped one)")
    parser.add_argument("--merge", action="append", default=[], metavar="STYLE=CLASS",
                        help="put STYLE's loops under CLASS (repeatable)")
    parser.add_argument("--out", default=str(CHECKPOINT), help=f"checkpoint (default {CHECKPOINT})")
    parser.add_argument("--gmd", help="Groove MIDI Dataset zip (default: shared/datasets/gmd)")
    parser.add_argument("--cache", help="loop cache folder (default: .cache/gmd)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest_path = Path(args.manifest) if args.manifest else default_manifest_path()
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    model, info = fit_on_gmd(manifest, parse_merges(args.merge), load_splits(args.gmd, args.cache),
                             epochs=args.epochs, seed=args.seed, threads=args.threads)
    save_checkpoint(args.out, model, info["classes"], info["merges"], info["meta"])
    print(f"saved {args.out}: classes {', '.join(info['classes'])}; best epoch "
          f"{info['meta']['best_epoch']} of {len(info['meta']['history'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
