"""Start a run from a trained checkpoint, optionally with narrower feed-forward layers.

`grooverack train --init CKPT [--model enc_ff=256 --model dec_ff=192]`: the new model takes every
weight of the checkpoint's EMA model. Where the new configuration gives a block's feed-forward
layer fewer units than the checkpoint's, the block keeps its most used units (structured pruning):

    importance of unit i = mean over train loops and steps of relu(ff1(x))_i  *  |ff2[:, i]|_2

i.e. how much the unit adds to the residual stream on the data, not only how large its weights
are. The kept units stay in their order, so the pruned block computes exactly the sum of the kept
units' contributions. Fine-tuning (with the usual recipe and, ideally, the same teachers) then
recovers what the dropped units carried; it starts from a trained model, which is why it keeps
more quality than training the smaller shape from scratch (models/README.md, "Smaller models").

Only the feed-forward widths may differ; any other field (widths, heads, layers, latent size,
genres, tempo) must match the checkpoint, or the run stops before any work with the field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PRUNABLE = ("enc_ff", "dec_ff")
IMPORTANCE_LOOPS = 4096  # train loops the unit importance is measured on (about 2 s on one core)
BATCH = 512


def check_compatible(src_cfg: Any, dst_cfg: Any, path: str | Path) -> None:
    """SystemExit naming every field that differs where it may not (PRUNABLE may shrink)."""
    src, dst = src_cfg.to_dict(), dst_cfg.to_dict()
    bad = []
    for key in sorted(set(src) | set(dst)):
        if key in ("dropout",):  # a training setting, not a weight shape
            continue
        a, b = src.get(key), dst.get(key)
        if key in PRUNABLE:
            if b > a:
                bad.append(f"{key} {b} > the checkpoint's {a} (units can be removed, not added)")
        elif a != b:
            bad.append(f"{key} {b!r} != the checkpoint's {a!r}")
    if bad:
        raise SystemExit(f"train: --init {path}: " + "; ".join(bad)
                         + f" (only {' and '.join(PRUNABLE)} may be smaller)")


def unit_importance(model: Any, grooves: np.ndarray, genres: np.ndarray | None,
                    bpm: np.ndarray | None) -> dict[str, np.ndarray]:
    """Block name (e.g. 'encoder.stack.blocks.0') -> importance of each feed-forward unit [ff]."""
    import torch
    from torch.nn import functional as F

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if name.endswith(".ff1") and ".blocks." in name:
            block = name[: -len(".ff1")]

            def hook(_m, _inp, out, block=block):
                act = F.relu(out).sum(dim=tuple(range(out.dim() - 1)))  # over loops and steps
                sums[block] = sums.get(block, 0.0) + act
                counts[block] = counts.get(block, 0) + out[..., 0].numel()

            hooks.append(module.register_forward_hook(hook))
    model.eval()
    grooves = np.ascontiguousarray(grooves, dtype=np.float32)
    try:
        with torch.no_grad():
            for i in range(0, len(grooves), BATCH):
                part = slice(i, i + BATCH)
                genre = (torch.from_numpy(np.ascontiguousarray(genres[part]))
                         if genres is not None and model.cfg.n_genres else None)
                tempo = torch.from_numpy(np.ascontiguousarray(bpm[part])) if bpm is not None else None
                model(torch.from_numpy(grooves[part]), genre, sample=False, tempo=tempo)
    finally:
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    out = {}
    for block, act in sums.items():
        w2 = modules[f"{block}.ff2"].weight.detach()  # [d, ff]
        out[block] = (act / counts[block] * w2.norm(dim=0)).numpy().astype(np.float64)
    return out


def init_from(model: Any, path: str | Path, train_set: Any, genres: list[str],
              seed: int = 0) -> dict[str, Any]:
    """Copy the checkpoint's EMA weights into `model` (a GrooveVAE), keeping each block's most
    important feed-forward units where `model` has fewer. Returns a record for the checkpoint."""
    import torch

    from grooverack.training.export import load_checkpoint

    src, info = load_checkpoint(path, prog="train: --init")
    check_compatible(src.cfg, model.cfg, path)
    if src.cfg.n_genres and info["genres"] != list(genres):
        raise SystemExit(f"train: --init {path} was trained with other genres")
    n = len(train_set)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:min(n, IMPORTANCE_LOOPS)])
    style = np.asarray(train_set.style, dtype=np.int64)[rows] + 1
    bpm = np.asarray(train_set.bpm, dtype=np.float32)[rows] if model.cfg.tempo else None
    importance = unit_importance(src, np.asarray(train_set.groove)[rows], style, bpm)
    state = src.state_dict()
    target = model.state_dict()
    kept: dict[str, int] = {}
    for block, score in importance.items():
        width = target[f"{block}.ff1.weight"].shape[0]
        if width == len(score):
            continue
        keep = torch.from_numpy(np.sort(np.argsort(-score, kind="stable")[:width]))
        state[f"{block}.ff1.weight"] = state[f"{block}.ff1.weight"][keep]
        state[f"{block}.ff1.bias"] = state[f"{block}.ff1.bias"][keep]
        state[f"{block}.ff2.weight"] = state[f"{block}.ff2.weight"][:, keep]
        share = float(score[keep.numpy()].sum() / max(score.sum(), 1e-12))
        kept[block] = round(share, 4)
    model.load_state_dict(state)
    return {"path": str(path), "config": src.cfg.to_dict(), "kept_importance": kept}
