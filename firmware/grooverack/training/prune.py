"""Start a run from a trained checkpoint, optionally with narrower feed-forward layers or fewer
blocks (how the shipped model was made from its 3-block predecessor: models/README.md, "Training").

`grooverack train --init CKPT [--model enc_ff=256 --model dec_ff=192]`: the new model takes every
weight of the checkpoint's EMA model. Where the new configuration gives a block's feed-forward
layer fewer units than the checkpoint's, the block keeps its most used units (structured pruning):

    importance of unit i = mean over train loops and steps of relu(ff1(x))_i  *  |ff2[:, i]|_2

i.e. how much the unit adds to the residual stream on the data, not only how large its weights
are. The kept units stay in their order, so the pruned block computes exactly the sum of the kept
units' contributions. Fine-tuning (with the usual recipe and, ideally, the same teachers) then
recovers what the dropped units carried; it starts from a trained model, which is why it keeps
more quality than training the smaller shape from scratch (models/README.md, "Speed and memory").

A stack may also lose whole blocks (`--model enc_layers=2`): it keeps the blocks that change the
residual stream most on the data (mean |block(x) - x| / |x| over loops and steps), in their order.

A stack's attention may also be regrouped into fewer heads (`--model dec_heads=2`, REGROUPABLE):
the q/k/v and projection weights keep their shapes and values, and each new head reads the
channels of the old heads it takes in (heads 0 and 1 of 24 channels become one head of 48: its
scores are the sum of theirs, scaled by 1/sqrt(48) instead of 1/sqrt(24)). Fewer heads are less
work for onnxruntime's Attention kernel at the same width; fine-tuning adapts the model to the
merged attention.

Only these may change; any other field (widths, latent size, genres, tempo) must match the
checkpoint, or the run stops before any work with the field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PRUNABLE = ("enc_ff", "dec_ff", "enc_layers", "dec_layers")
REGROUPABLE = ("enc_heads", "dec_heads")  # any count that divides the stack's width (Block checks)
# inputs a checkpoint without them may be given (0 -> N): their parameters keep the model's zero
# initialisation, so the model plays as its source did until it learns to use them
ADDABLE = {"removal_groups": "decoder.removed.", "removal_tokens": "decoder.removed_tokens.",
           "removal_out": "decoder.removed_out.", "removal_mix": "decoder.removed_mix.",
           "removal_adapter": "decoder.removed_adapters."}
STACKS = {"encoder.stack": "enc_layers", "decoder.stack": "dec_layers"}
IMPORTANCE_LOOPS = 4096  # train loops the unit importance is measured on (about 2 s on one core)
BATCH = 512


def check_compatible(src_cfg: Any, dst_cfg: Any, path: str | Path) -> None:
    """SystemExit naming every field that differs where it may not (PRUNABLE may shrink)."""
    src, dst = src_cfg.to_dict(), dst_cfg.to_dict()
    bad = []
    for key in sorted(set(src) | set(dst)):
        if key in ("dropout",):  # a training setting, not a weight shape
            continue
        if key in ADDABLE and not src.get(key):  # new inputs, their weights start at zero
            continue
        a, b = src.get(key), dst.get(key)
        if key in PRUNABLE:
            if b > a:
                bad.append(f"{key} {b} > the checkpoint's {a} (can be removed, not added)")
        elif key in REGROUPABLE:  # the model itself refuses a count that does not divide
            continue
        elif a != b:
            bad.append(f"{key} {b!r} != the checkpoint's {a!r}")
    if bad:
        raise SystemExit(f"train: --init {path}: " + "; ".join(bad)
                         + f" (only {', '.join(PRUNABLE)} may be smaller, and "
                         + f"{', '.join(REGROUPABLE)} any divisor of the width)")


def _forward(model: Any, grooves: np.ndarray, genres: np.ndarray | None,
             bpm: np.ndarray | None) -> None:
    """The model on the loops in batches (z = mu), for the hooks that measure it."""
    import torch

    model.eval()
    grooves = np.ascontiguousarray(grooves, dtype=np.float32)
    with torch.no_grad():
        for i in range(0, len(grooves), BATCH):
            part = slice(i, i + BATCH)
            genre = (torch.from_numpy(np.ascontiguousarray(genres[part]))
                     if genres is not None and model.cfg.n_genres else None)
            tempo = torch.from_numpy(np.ascontiguousarray(bpm[part])) if bpm is not None else None
            model(torch.from_numpy(grooves[part]), genre, sample=False, tempo=tempo)


def _means(model: Any, modules: dict[str, Any], measure: Any, grooves: np.ndarray,
           genres: np.ndarray | None, bpm: np.ndarray | None) -> dict[str, Any]:
    """Key -> mean over the loops and steps of `measure(input, output)` of modules[key], run on
    the data. `measure` gives (the sum over loops and steps, how many loops x steps it covers)."""
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    hooks = []
    for key, module in modules.items():
        def hook(_m, inp, out, key=key):
            total, n = measure(inp[0], out)
            sums[key] = sums.get(key, 0.0) + total
            counts[key] = counts.get(key, 0) + n

        hooks.append(module.register_forward_hook(hook))
    try:
        _forward(model, grooves, genres, bpm)
    finally:
        for h in hooks:
            h.remove()
    return {key: sums[key] / counts[key] for key in modules}


def block_updates(model: Any, grooves: np.ndarray, genres: np.ndarray | None,
                  bpm: np.ndarray | None) -> dict[str, np.ndarray]:
    """Stack name ('encoder.stack', 'decoder.stack') -> each block's mean relative update of the
    residual stream, |block(x) - x| / |x| per loop and step [layers]."""
    def relative_update(x, out):
        rel = (out - x).norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-6)
        return float(rel.sum()), rel.numel()

    named = dict(model.named_modules())
    blocks = {f"{stack}.blocks.{i}": block
              for stack in STACKS for i, block in enumerate(named[f"{stack}.blocks"])}
    means = _means(model, blocks, relative_update, grooves, genres, bpm)
    return {stack: np.array([means[f"{stack}.blocks.{i}"]
                             for i in range(len(named[f"{stack}.blocks"]))])
            for stack in STACKS}


def unit_importance(model: Any, grooves: np.ndarray, genres: np.ndarray | None,
                    bpm: np.ndarray | None) -> dict[str, np.ndarray]:
    """Block name (e.g. 'encoder.stack.blocks.0') -> importance of each feed-forward unit [ff]."""
    from torch.nn import functional as F

    def mean_activation(_x, out):
        return F.relu(out).sum(dim=tuple(range(out.dim() - 1))), out[..., 0].numel()

    named = dict(model.named_modules())
    ff1 = {name[: -len(".ff1")]: module for name, module in named.items()
           if name.endswith(".ff1") and ".blocks." in name}
    means = _means(model, ff1, mean_activation, grooves, genres, bpm)
    return {block: (act * named[f"{block}.ff2"].weight.detach().norm(dim=0)).numpy()
            .astype(np.float64) for block, act in means.items()}


def init_from(model: Any, path: str | Path, train_set: Any, genres: list[str],
              seed: int = 0) -> dict[str, Any]:
    """Copy the checkpoint's EMA weights into `model` (a GrooveVAE), keeping each stack's most
    active blocks and each block's most important feed-forward units where `model` has fewer.
    Returns a record for the checkpoint (kept_importance is named by the source's blocks)."""
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
    grooves = np.asarray(train_set.groove)[rows]
    importance = unit_importance(src, grooves, style, bpm)
    updates = block_updates(src, grooves, style, bpm)
    source = src.state_dict()
    state = {k: v for k, v in source.items() if ".blocks." not in k}
    target = model.state_dict()
    kept: dict[str, float] = {}
    blocks: dict[str, list[int]] = {}
    for stack, field in STACKS.items():
        update = updates[stack]
        layers = getattr(model.cfg, field)
        order = sorted(np.argsort(-update, kind="stable")[:layers].tolist())
        if layers < len(update):
            blocks[stack] = order
        for new, old in enumerate(order):
            for key, value in source.items():
                prefix = f"{stack}.blocks.{old}."
                if key.startswith(prefix):
                    state[f"{stack}.blocks.{new}.{key[len(prefix):]}"] = value
            score = importance[f"{stack}.blocks.{old}"]
            block = f"{stack}.blocks.{new}"
            width = target[f"{block}.ff1.weight"].shape[0]
            if width == len(score):
                continue
            keep = torch.from_numpy(np.sort(np.argsort(-score, kind="stable")[:width]))
            state[f"{block}.ff1.weight"] = state[f"{block}.ff1.weight"][keep]
            state[f"{block}.ff1.bias"] = state[f"{block}.ff1.bias"][keep]
            state[f"{block}.ff2.weight"] = state[f"{block}.ff2.weight"][:, keep]
            share = float(score[keep.numpy()].sum() / max(score.sum(), 1e-12))
            kept[f"{stack}.blocks.{old}"] = round(share, 4)
    added = [k for k in target if k not in state and k.startswith(tuple(ADDABLE.values()))]
    state.update({k: target[k] for k in added})
    model.load_state_dict(state)
    return {"path": str(path), "config": src.cfg.to_dict(), "kept_importance": kept,
            "added": added,
            "kept_blocks": blocks,
            "block_updates": {k: [round(float(x), 4) for x in v] for k, v in updates.items()}}
