"""`grooverack eval`: the shipped model and two baselines measured the same way on a GMD split.

Metrics (`metrics`), all on the 32x9 cells of every loop:
- hit precision / recall / F1, micro over all cells, and F1 per voice;
- velocity MAE and offset MAE on true-positive hits (cells both predicted and played);
- `cell_accuracy`: the share of all 288 cells (silent ones included) predicted right: the "hit
  accuracy" the literature reports. Most cells are silent, so it says little; it is here to compare.

The model is evaluated with z = mu (no sampling noise), genre 0 ("any") unless `--genre style`,
each loop's tempo for a tempo-conditioned model (what the module knows from its clock; `--tempo
unknown` withholds it), and a hit wherever sigmoid(logit) > the manifest's per-voice threshold: the firmware's decision at
temperature 0 and density 0.5 (`grooverack.model.sampling`). Thresholds are chosen on validation only
(`--choose-thresholds --split validation`), never on test.

Baselines: the train split's majority pattern (a cell hits when more than half of the train loops
hit it; mean velocity and offset of those hits) and nearest-neighbour retrieval (the train loop whose
groove is closest in L2 over the 32x3 groove; its drums are the prediction).

numpy + onnxruntime only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES

log = logging.getLogger(__name__)

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
METRIC_KEYS = ("hit_precision", "hit_recall", "hit_f1", "per_voice_f1", "velocity_mae",
               "offset_mae", "cell_accuracy")

# No comparison with the published GrooveTransformer is reported: the figures once quoted here came
# from another cut of the data, chosen by its authors on the test split, with no script that
# reproduces them from the released checkpoint on this cut (issue 20).
BOOTSTRAP_RESAMPLES = 2000
EVAL_SESSION = "/eval_session/"


# ------------------------------------------------------------------------------------ metrics


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def _f1(tp: float, n_pred: float, n_true: float) -> float:
    return _ratio(2.0 * tp, n_pred + n_true)


def metrics(pred_hits: np.ndarray, pred_vel: np.ndarray, pred_off: np.ndarray,
            true_hits: np.ndarray, true_vel: np.ndarray, true_off: np.ndarray) -> dict[str, Any]:
    """Compare predicted drums with the played ones, arrays [N, 32, 9] (hits as 0/1 or bool).

    Precision, recall and F1 are 0.0 when undefined (nothing predicted / nothing played); the MAEs
    are None when there is no true-positive hit."""
    p = np.asarray(pred_hits) > 0.5
    t = np.asarray(true_hits) > 0.5
    if p.shape != t.shape or p.shape[-1] != NUM_VOICES:
        raise ValueError(f"predicted hits {list(p.shape)} and true hits {list(t.shape)} must be "
                         f"the same [N, {STEPS}, {NUM_VOICES}]")
    tp = p & t
    axes = tuple(range(p.ndim - 1))
    tp_v, pred_v, true_v = tp.sum(axes), p.sum(axes), t.sum(axes)
    n_tp = int(tp.sum())
    precision = _ratio(n_tp, p.sum())
    recall = _ratio(n_tp, t.sum())
    out: dict[str, Any] = {
        "hit_precision": precision,
        "hit_recall": recall,
        "hit_f1": _f1(n_tp, p.sum(), t.sum()),
        "per_voice_f1": {name: _f1(tp_v[i], pred_v[i], true_v[i])
                         for i, name in enumerate(VOICE_NAMES)},
        "velocity_mae": (float(np.abs(np.asarray(pred_vel, np.float64)[tp]
                                      - np.asarray(true_vel, np.float64)[tp]).mean())
                         if n_tp else None),
        "offset_mae": (float(np.abs(np.asarray(pred_off, np.float64)[tp]
                                    - np.asarray(true_off, np.float64)[tp]).mean())
                       if n_tp else None),
        "cell_accuracy": float((p == t).mean()) if p.size else 0.0,
        "per_voice_precision": {name: _ratio(tp_v[i], pred_v[i])
                                for i, name in enumerate(VOICE_NAMES)},
        "per_voice_recall": {name: _ratio(tp_v[i], true_v[i])
                             for i, name in enumerate(VOICE_NAMES)},
        "predicted_hits": int(p.sum()),
        "true_hits": int(t.sum()),
    }
    return out


def performance_of(source: str) -> str:
    """The performance (MIDI file) a loop was cut from: its source without the ":bar" suffix."""
    return source.rsplit(":", 1)[0]


def file_bootstrap(pred_hits: np.ndarray, true_hits: np.ndarray, sources: list[str],
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> dict[str, Any]:
    """A percentile bootstrap interval of the micro hit F1 that resamples whole performances (the
    loops of one MIDI file overlap and share a drummer, so loops are not independent draws)."""
    p = np.asarray(pred_hits) > 0.5
    t = np.asarray(true_hits) > 0.5
    files = [performance_of(s) for s in sources]
    names, index = np.unique(np.asarray(files, dtype=object), return_inverse=True)
    k = len(names)
    tp = np.bincount(index, (p & t).reshape(len(p), -1).sum(1), minlength=k)
    npred = np.bincount(index, p.reshape(len(p), -1).sum(1), minlength=k)
    ntrue = np.bincount(index, t.reshape(len(t), -1).sum(1), minlength=k)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(resamples, k))
    weights = np.stack([np.bincount(d, minlength=k) for d in draws]).astype(np.float64)
    f1 = 2.0 * (weights @ tp) / np.maximum(weights @ (npred + ntrue), 1.0)
    lo, hi = np.quantile(f1, [(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0])
    return {"level": level, "resamples": resamples, "performances": int(k),
            "hit_f1_low": float(lo), "hit_f1_high": float(hi)}


def split_parts(sources: list[str]) -> dict[str, np.ndarray]:
    """GMD's eval_session (4 drummers playing the same 10 grooves) and the rest, as loop masks."""
    ev = np.array([EVAL_SESSION in "/" + s for s in sources], bool)
    return {"eval_session": ev, "other": ~ev}


def with_intervals(result: dict[str, Any], pred: tuple[np.ndarray, np.ndarray, np.ndarray],
                   loops: Any) -> dict[str, Any]:
    """Add the file-level bootstrap interval and the eval_session / other figures to a result."""
    sources = list(getattr(loops, "source", []) or [])
    if len(sources) != len(loops) or not len(loops):
        return result
    ph, pv, po = pred
    result["bootstrap"] = file_bootstrap(ph, loops.hits, sources)
    parts = {}
    for name, mask in split_parts(sources).items():
        if not mask.any():
            continue
        m = metrics(ph[mask], pv[mask], po[mask], loops.hits[mask], loops.velocities[mask],
                    loops.offsets[mask])
        m["loops"] = int(mask.sum())
        m["bootstrap"] = file_bootstrap(ph[mask], loops.hits[mask],
                                        [s for s, k in zip(sources, mask, strict=True) if k])
        parts[name] = m
    result["parts"] = parts
    return result


OBJECTIVES = ("balanced", "voice", "micro")
BALANCED_SLACK = 0.02


def _grid_counts(probs: np.ndarray, hits: np.ndarray, grid: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per threshold and voice: true positives, predicted hits [G, 9]; true hits per voice [9]."""
    p = np.asarray(probs, np.float32).reshape(-1, NUM_VOICES)
    t = np.asarray(hits).reshape(-1, NUM_VOICES) > 0.5
    tp = np.empty((len(grid), NUM_VOICES))
    npred = np.empty((len(grid), NUM_VOICES))
    for g, thr in enumerate(grid):
        pred = p > thr
        tp[g] = (pred & t).sum(0)
        npred[g] = pred.sum(0)
    return tp, npred, t.sum(0).astype(np.float64)


def choose_thresholds(probs: np.ndarray, hits: np.ndarray, grid: np.ndarray = THRESHOLD_GRID,
                      objective: str = "voice", slack: float = BALANCED_SLACK,
                      passes: int = 3) -> np.ndarray:
    """Per-voice thresholds [9] (hit = prob > threshold) chosen on the given loops, which must be
    the validation split. On a tie the threshold nearest 0.5 wins.

    objective "voice": each voice's own F1 is maximised. That gives rare voices (toms, crash, open
    hat) low thresholds and many false hits, which costs the micro F1 over all cells.
    "micro": the micro F1 is maximised by coordinate ascent over the voices.
    "balanced": the micro F1 by coordinate ascent, each voice limited to thresholds that keep its
    own F1 within `slack` of its best: most of the micro gain, the rare voices keep playing.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"threshold objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    grid = np.asarray(grid, np.float32)
    order = np.argsort(np.abs(grid - 0.5), kind="stable")  # tie-break toward 0.5
    tp, npred, ntrue = _grid_counts(probs, hits, grid)
    f1_v = 2.0 * tp / np.maximum(1.0, npred + ntrue[None])
    idx = np.array([order[int(np.argmax(f1_v[order, v]))] for v in range(NUM_VOICES)])
    if objective == "voice":
        return grid[idx].astype(np.float32)
    allowed = (f1_v >= f1_v.max(0, keepdims=True) - slack if objective == "balanced"
               else np.ones_like(f1_v, dtype=bool))
    voices = np.arange(NUM_VOICES)
    for _ in range(passes):
        for v in range(NUM_VOICES):
            others = voices != v
            tp_o = tp[idx[others], voices[others]].sum()
            pr_o = npred[idx[others], voices[others]].sum()
            micro = 2.0 * (tp_o + tp[:, v]) / np.maximum(1.0, pr_o + npred[:, v] + ntrue.sum())
            score = np.where(allowed[:, v], micro, -1.0)
            idx[v] = order[int(np.argmax(score[order]))]
    return grid[idx].astype(np.float32)


def micro_f1(probs: np.ndarray, hits: np.ndarray, thresholds: np.ndarray | float) -> float:
    """Micro hit F1 over all cells with hit = prob > threshold (per voice or one value)."""
    pred = np.asarray(probs) > np.asarray(thresholds)
    t = np.asarray(hits) > 0.5
    return _f1(float(np.sum(pred & t)), float(pred.sum()), float(t.sum()))


# ---------------------------------------------------------------------------------- baselines


def majority_pattern(hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pattern for every loop: a cell hits when > 50 % of the (train) loops hit it; its
    velocity and offset are the means over the loops that hit it. Returns [32, 9] arrays."""
    on = np.asarray(hits) > 0.5
    count = on.sum(0)
    share = count / max(on.shape[0], 1)
    denom = np.maximum(count, 1)
    vel = np.where(on, velocities, 0.0).sum(0) / denom
    off = np.where(on, offsets, 0.0).sum(0) / denom
    return share > 0.5, vel.astype(np.float32), off.astype(np.float32)


def nearest_neighbours(train_grooves: np.ndarray, query_grooves: np.ndarray,
                       chunk: int = 1024) -> np.ndarray:
    """Index of the train groove closest (L2 over the flattened 32x3) to each query; [Q] int64.
    Vectorised in chunks of queries: |q|^2 - 2 q.t + |t|^2 (|q|^2 does not change the argmin)."""
    train = np.asarray(train_grooves, np.float64).reshape(len(train_grooves), -1)
    query = np.asarray(query_grooves, np.float64).reshape(len(query_grooves), -1)
    if len(train) == 0:
        raise ValueError("nearest neighbour needs at least one train loop")
    t2 = (train * train).sum(1)
    out = np.empty(len(query), np.int64)
    for start in range(0, len(query), chunk):
        q = query[start:start + chunk]
        d = t2[None, :] - 2.0 * (q @ train.T)
        out[start:start + chunk] = np.argmin(d, axis=1)
    return out


# ---------------------------------------------------------------------------------- the model


def predict_probs(runner: Any, grooves: np.ndarray, batch: int = 1,
                  genre: int | np.ndarray = 0, bpm: float | np.ndarray | None = None,
                  removed: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hit probabilities, velocities and offsets [N, 32, 9] for grooves [N, 32, 3], with z = mu
    (follow 1), decoded as the module decodes them (both bar views pooled where the manifest says
    so); `removed`: voice-group flags [G] (voice redistribution; None = nothing removed).

    Uses the runner's batched calls when it has them, else its one-loop `encode`/`decode`.
    batch=1 by default: dynamic int8 quantizes activations with one scale per call, so a batch of
    loops gives slightly different int8 numbers (0.4 % of hit decisions on test) than the loop-by-
    loop calls the firmware makes; single-threaded, batching is no faster anyway (~1 s for test)."""
    g = np.asarray(grooves, np.float32)
    genres = np.broadcast_to(np.asarray(genre, np.int64), (len(g),))
    bpms = np.broadcast_to(np.asarray(0.0 if bpm is None else bpm, np.float32), (len(g),))
    outs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    batched = hasattr(runner, "encode_batch") and hasattr(runner, "decode_batch")
    views = bool(getattr(runner, "bar_swap", False))
    for start in range(0, len(g), batch):
        part = g[start:start + batch]
        if views:  # as the module decodes a followed groove (follow 1): both views, pooled
            res = [runner.decode_views(runner.encode_views(x), int(k), float(t), removed)
                   for x, k, t in zip(part, genres[start:start + batch],
                                      bpms[start:start + batch], strict=True)]
            logits, vel, off = (np.stack([r[i] for r in res]) for i in range(3))
        elif batched:
            mu, _ = runner.encode_batch(part)
            logits, vel, off = runner.decode_batch(mu, genres[start:start + batch],
                                                   bpms[start:start + batch], removed)
        else:
            extra = () if removed is None else (removed,)
            res = [runner.decode(runner.encode(x)[0], int(k), float(t), *extra)
                   for x, k, t in zip(part, genres[start:start + batch],
                                      bpms[start:start + batch], strict=True)]
            logits, vel, off = (np.stack([r[i] for r in res]) for i in range(3))
        outs.append((np.asarray(logits, np.float32), np.asarray(vel, np.float32),
                     np.asarray(off, np.float32)))
    if not outs:
        empty = np.zeros((0, STEPS, NUM_VOICES), np.float32)
        return empty, empty.copy(), empty.copy()
    logits, vel, off = (np.concatenate([o[i] for o in outs]) for i in range(3))
    probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
    return probs.astype(np.float32), vel, off


def style_genres(runner: Any, loops: Any) -> np.ndarray:
    """The runner's genre index of each loop's GMD style (0 = "any" when it has no such genre)."""
    from grooverack.training.data import STYLES

    names = list(getattr(runner, "genres", ()))
    table = np.array([names.index(s) if s in names else 0 for s in STYLES], np.int64)
    return table[np.asarray(loops.style, np.int64)]


def evaluate_model(runner: Any, loops: Any, thresholds: np.ndarray | None = None,
                   genre: int | np.ndarray = 0, bpm: float | np.ndarray | None = None
                   ) -> dict[str, Any]:
    """Metrics of a runner on Loops with z = mu and per-voice thresholds (default: the runner's)."""
    th = np.asarray(runner.thresholds if thresholds is None else thresholds, np.float32)
    probs, vel, off = predict_probs(runner, loops.groove, genre=genre, bpm=bpm)
    pred = probs > th
    out = metrics(pred, vel, off, loops.hits, loops.velocities, loops.offsets)
    return with_intervals(out, (pred, vel, off), loops)


def evaluate_baselines(train: Any, loops: Any) -> dict[str, dict[str, Any]]:
    h, v, o = majority_pattern(train.hits, train.velocities, train.offsets)
    n = len(loops)
    rep = (n, 1, 1)
    pred = (np.tile(h, rep), np.tile(v, rep), np.tile(o, rep))
    out = {"baseline_majority": with_intervals(
        metrics(*pred, loops.hits, loops.velocities, loops.offsets), pred, loops)}
    idx = nearest_neighbours(train.groove, loops.groove)
    pred = (train.hits[idx], train.velocities[idx], train.offsets[idx])
    out["baseline_nearest"] = with_intervals(
        metrics(*pred, loops.hits, loops.velocities, loops.offsets), pred, loops)
    return out


# ---------------------------------------------------------------------------------- reporting


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def format_table(report: dict[str, Any]) -> str:
    """Rows = metrics (per-voice F1 included), columns = models; then the file-level bootstrap
    interval and GMD's eval_session apart from the rest."""
    models = report["models"]
    names = list(models)
    rows: list[tuple[str, list[Any]]] = []
    labels = {"hit_precision": "hit precision", "hit_recall": "hit recall",
              "hit_f1": "hit F1 (micro)", "velocity_mae": "velocity MAE (TP)",
              "offset_mae": "offset MAE (TP)",
              "cell_accuracy": "accuracy, all 288 cells (literature's)"}
    for key in ("hit_precision", "hit_recall", "hit_f1"):
        rows.append((labels[key], [models[m].get(key) for m in names]))
    for voice in VOICE_NAMES:
        rows.append((f"  F1 {voice}", [models[m]["per_voice_f1"].get(voice) for m in names]))
    for key in ("velocity_mae", "offset_mae", "cell_accuracy"):
        rows.append((labels[key], [models[m].get(key) for m in names]))

    def interval(m: dict[str, Any]) -> str:
        b = m.get("bootstrap")
        return f"{b['hit_f1_low']:.3f}-{b['hit_f1_high']:.3f}" if b else "-"

    rows_text: list[tuple[str, list[str]]] = [(label, [_fmt(v) for v in values])
                                              for label, values in rows]
    first = next((m for m in models.values() if m.get("bootstrap")), None)
    if first is not None:
        rows_text.insert(3, (f"  95 % interval ({first['bootstrap']['performances']} files)",
                             [interval(models[m]) for m in names]))
        for part in ("eval_session", "other"):
            have = [models[m].get("parts", {}).get(part) for m in names]
            if not any(have):
                continue
            n = next(h["loops"] for h in have if h)
            rows_text.append((f"hit F1, {part} ({n} loops)",
                              [_fmt(h["hit_f1"]) if h else "-" for h in have]))
            rows_text.append(("  95 % interval", [interval(h) if h else "-" for h in have]))
    width = max(len(r[0]) for r in rows_text) + 2
    col = max(13, *(len(n) + 2 for n in names))
    head = (f"{report['split']} split, {report['loops']} loops".ljust(width)
            + "".join(n.rjust(col) for n in names))
    lines = [head, "-" * len(head)]
    for label, values in rows_text:
        lines.append(label.ljust(width) + "".join(v.rjust(col) for v in values))
    if first is not None:
        lines.append("")
        lines.append("intervals: percentile bootstrap over whole performances (MIDI files), "
                     f"{first['bootstrap']['resamples']} resamples")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- the CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("train", "validation", "test"), default="test",
                        help="which official split to measure (default test)")
    parser.add_argument("--model", metavar="MANIFEST", default=None,
                        help="models/grooverack.json (default: the firmware's model)")
    parser.add_argument("--gmd", metavar="PATH", default=None,
                        help="groove-v1.0.0-midionly.zip (default: $GROOVERACK_GMD, else ../shared/datasets/gmd/ "
                        "next to a checkout, else ~/.local/share/grooverack/)")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="loop cache folder (default <repo>/.cache/gmd)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the report as JSON")
    parser.add_argument("--variants", default=None,
                        help="comma-separated model variants (default: every one the manifest has)")
    parser.add_argument("--genre", choices=("any", "style"), default="any",
                        help="decode with genre 0 'any' (default, the module's default) or with "
                             "each loop's GMD style (genre-conditioned models)")
    parser.add_argument("--tempo", choices=("loop", "unknown"), default="loop",
                        help="decode with each loop's tempo (default: the module knows it from its "
                             "clock) or with the tempo unknown (tempo-conditioned models)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the two baselines")
    parser.add_argument("--choose-thresholds", action="store_true",
                        help="choose per-voice thresholds on --split validation and write them "
                             "into the manifest (refused on test)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="balanced",
                        help="what the thresholds maximise on validation: balanced (default: the "
                             "micro F1 with every voice within 0.02 of its own best F1), voice "
                             "(each voice's own F1) or micro (the micro F1 alone)")
    parser.add_argument("--bar-swap", choices=("manifest", "none", "mean_odds"),
                        default="manifest",
                        help="how a groove is decoded: as the manifest says (default), once "
                             "(none), or as is and bar-swapped, pooled (mean_odds); with "
                             "--choose-thresholds the choice is written into the manifest with "
                             "the thresholds chosen for it")
    parser.add_argument("--threshold-variant", default="int8",
                        help="variant whose probabilities choose the thresholds (default int8, "
                             "the one the firmware loads)")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _choose_and_write(args: argparse.Namespace, loops: Any, manifest_path: Path) -> int:
    from grooverack.model.runner import ModelRunner
    from grooverack.storage import atomic_write_text

    runner = ModelRunner(manifest_path, args.threshold_variant)
    _set_bar_swap(runner, args)
    genre = style_genres(runner, loops) if args.genre == "style" else 0
    probs, vel, off = predict_probs(runner, loops.groove, genre=genre, bpm=_bpm(args, loops))
    before = metrics(probs > runner.thresholds, vel, off, loops.hits, loops.velocities,
                     loops.offsets)
    th = choose_thresholds(probs, loops.hits, objective=args.objective)
    after = metrics(probs > th, vel, off, loops.hits, loops.velocities, loops.offsets)
    removal, removal_report = _removal_thresholds(runner, loops, genre, _bpm(args, loops),
                                                  args.objective, th)
    # re-read right before writing: the manifest may have been re-exported meanwhile
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["thresholds"] = [round(float(x), 3) for x in th]
    if removal:
        manifest["removal_thresholds"] = removal
    else:
        manifest.pop("removal_thresholds", None)
    manifest["bar_swap"] = "mean_odds" if runner.bar_swap else "none"
    manifest["thresholds_chosen_on"] = {
        "split": args.split, "variant": args.threshold_variant, "loops": len(loops),
        "genre": args.genre, "tempo": args.tempo if runner.tempo else "none",
        "objective": args.objective, "bar_swap": manifest["bar_swap"],
        **({"slack": BALANCED_SLACK} if args.objective == "balanced" else {}),
        "grid": [float(THRESHOLD_GRID[0]), float(THRESHOLD_GRID[-1]),
                 float(round(THRESHOLD_GRID[1] - THRESHOLD_GRID[0], 3))],
        "hit_f1": round(after["hit_f1"], 4),
        "per_voice_f1": {k: round(v, 4) for k, v in after["per_voice_f1"].items()},
        **({"removal": removal_report} if removal_report else {}),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    print(f"thresholds chosen on {args.split} ({len(loops)} loops, variant "
          f"{args.threshold_variant}) written to {manifest_path}")
    for name, old, new in zip(VOICE_NAMES, runner.thresholds, th, strict=True):
        print(f"  {name:<12}{old:>6.2f} -> {new:.2f}   F1 {after['per_voice_f1'][name]:.3f}")
    print(f"hit F1 {before['hit_f1']:.4f} -> {after['hit_f1']:.4f}")
    for group, row in removal_report.items():
        print(f"  {group} removed: F1 against the re-voiced loops {row['f1_shared']:.4f} with the "
              f"thresholds above, {row['f1']:.4f} with its own {removal[group]}")
    return 0


def cover_onsets(probs: np.ndarray, truth: np.ndarray, groove: np.ndarray, thresholds: np.ndarray,
                 floor: float, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Lower per-voice thresholds until the pattern (probs > thresholds) plays on at least
    `floor` of the groove's onsets (`revoice.onset_coverage`). Each move takes one voice down to
    its nearest grid step that covers more, the voice that buys the most coverage per unit of
    hit F1 (against `truth`) it costs; voices at threshold 1 (removed) stay as they are, and it
    stops when no step of any voice covers more.
    Returns the new thresholds [9]; unchanged when the floor is met already."""
    from grooverack.training.revoice import onset_coverage

    th = np.asarray(thresholds, np.float64).copy()
    grid = np.asarray(grid, np.float64)
    p = np.asarray(probs, np.float32)
    t = np.asarray(truth) > 0.5

    def score(cand: np.ndarray) -> tuple[float, float]:
        pred = p > cand
        return onset_coverage(pred, groove), _f1(float((pred & t).sum()), float(pred.sum()),
                                                 float(t.sum()))

    cov, f1 = score(th)
    while cov < floor:
        best: tuple[float, np.ndarray, float, float] | None = None
        for v in range(NUM_VOICES):
            if th[v] >= 1.0:
                continue
            for step in grid[grid < th[v] - 1e-9][::-1]:  # the nearest step that covers more
                cand = th.copy()
                cand[v] = step
                c, f = score(cand)
                if c > cov:
                    value = (c - cov) / max(f1 - f, 1e-6)
                    if best is None or value > best[0]:
                        best = (value, cand, c, f)
                    break
        if best is None:
            break
        _, th, cov, f1 = best
    return th.astype(np.float32)


def _removal_thresholds(runner: Any, loops: Any, genre: Any, bpm: Any, objective: str,
                        thresholds: np.ndarray | None = None,
                        ) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """Voice redistribution: for each group, per-voice thresholds chosen on these (validation)
    loops for the decode told the group is removed, by the same objective, against the loops
    re-voiced without it (`training.revoice`, what the decoder was trained towards); the removed
    voices' own thresholds are 1 (they are muted). Then the issue's promise is kept: where the
    remaining voices play on fewer of the groove's onsets than the whole kit does with nothing
    removed (at `thresholds`, the ones chosen for that decode), the remaining voices'
    thresholds come down (`cover_onsets`) until they cover as many. ({} for a model without
    redistribution.)"""
    groups = tuple(getattr(runner, "removal_groups", ()))
    if not groups:
        return {}, {}
    from grooverack.training.revoice import onset_coverage, removed_voices, revoice

    base_th = runner.thresholds if thresholds is None else np.asarray(thresholds, np.float32)
    base, _, _ = predict_probs(runner, loops.groove, genre=genre, bpm=bpm)
    present = onset_coverage(base > base_th, loops.groove)
    chosen: dict[str, list[float]] = {}
    report: dict[str, dict[str, float]] = {}
    for gi, group in enumerate(groups):
        flags = np.eye(len(groups), dtype=np.float32)[gi]
        keep = ~removed_voices(flags)
        probs, _, _ = predict_probs(runner, loops.groove, genre=genre, bpm=bpm, removed=flags)
        truth, _, _ = revoice(loops.hits, loops.velocities, loops.offsets,
                              np.broadcast_to(flags, (len(loops.hits), len(groups))))
        kept = np.where(keep, probs, 0.0)
        by_f1 = np.where(keep, choose_thresholds(kept, truth, objective=objective), 1.0)
        th = cover_onsets(kept, truth, loops.groove, by_f1, present)
        chosen[group] = [round(float(x), 3) for x in th]
        report[group] = {"f1": round(micro_f1(kept, truth, th), 4),
                         "f1_objective_alone": round(micro_f1(kept, truth, by_f1), 4),
                         "f1_shared": round(micro_f1(kept, truth, runner.thresholds), 4),
                         "onsets_covered": round(onset_coverage(kept > th, loops.groove), 4),
                         "onsets_covered_objective_alone":
                             round(onset_coverage(kept > by_f1, loops.groove), 4),
                         "onsets_covered_nothing_removed": round(present, 4)}
    return chosen, report


def _set_bar_swap(runner: Any, args: argparse.Namespace) -> None:
    """`--bar-swap none|mean_odds` overrides how the manifest says a groove is decoded."""
    choice = getattr(args, "bar_swap", "manifest")
    if choice != "manifest":
        runner.bar_swap = choice == "mean_odds"


def _bpm(args: argparse.Namespace, loops: Any) -> np.ndarray | None:
    """Each loop's tempo (info.csv's bpm), or None for `--tempo unknown`."""
    return None if getattr(args, "tempo", "loop") == "unknown" else loops.bpm


def run(args: argparse.Namespace) -> int:
    from grooverack.errors import ModelError
    from grooverack.model.runner import ModelRunner, default_manifest_path
    from grooverack.training import data

    if args.choose_thresholds and args.split != "validation":
        print(f"grooverack eval: refusing to choose thresholds on the {args.split} split; "
              "thresholds are chosen on validation only (--split validation)", file=sys.stderr)
        return 2
    manifest_path = Path(args.model) if args.model else default_manifest_path()
    try:
        splits = data.load_splits(args.gmd, args.cache_dir)
    except data.DataError as exc:
        print(f"grooverack eval: {exc}", file=sys.stderr)
        return 2
    loops = splits[args.split]
    try:
        if args.choose_thresholds:
            return _choose_and_write(args, loops, manifest_path)
        from grooverack.model.runner import load_manifest

        manifest = load_manifest(manifest_path)
        variants = (args.variants.split(",") if args.variants
                    else [v for v in ("int8", "fp32") if v in manifest["variants"]]
                    + [v for v in manifest["variants"] if v not in ("int8", "fp32")])
        gmd = Path(args.gmd) if args.gmd else data.DEFAULT_GMD_ZIP
        want = manifest.get("data_hash", "")
        if want and want != "random-init" and want != data.data_hash(gmd):
            log.warning("%s: data_hash %s... differs from this dataset's %s... (trained on other "
                        "data or another pipeline version)", manifest_path, want[:12],
                        data.data_hash(gmd)[:12])
        if not manifest.get("trained", True):
            log.warning("%s: an untrained (random-weight) model", manifest_path)
        models: dict[str, Any] = {}
        for variant in variants:
            runner = ModelRunner(manifest_path, variant)
            _set_bar_swap(runner, args)
            genre = style_genres(runner, loops) if args.genre == "style" else 0
            models[variant] = evaluate_model(runner, loops, genre=genre, bpm=_bpm(args, loops))
            models[variant]["thresholds"] = [float(x) for x in runner.thresholds]
    except ModelError as exc:
        print(f"grooverack eval: {exc}", file=sys.stderr)
        return 2
    if not args.no_baselines:
        models.update(evaluate_baselines(splits["train"], loops))
    report = {"split": args.split, "loops": len(loops), "model": str(manifest_path),
              "bar_swap": (args.bar_swap if args.bar_swap != "manifest"
                           else manifest.get("bar_swap", "none")),
              "genre": args.genre, "tempo": args.tempo if manifest.get("tempo") else "none",
              "models": models}
    print(format_table(report))
    if args.json:
        from grooverack.storage import atomic_write_text

        atomic_write_text(args.json, json.dumps(_jsonable(report), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
