"""`grooverack train --gmd PATH --out DIR`: train the GrooveTransformer VAE on the CPU.

Recipe (facts in ../shared/reference/groovetransformer.md):
- hits: BCE with a per-voice positive weight (rare voices - toms, crash, open hat - weigh more);
- velocities and offsets: MSE on the true hits, silent cells down-weighted (SILENT_WEIGHT);
- KL with cyclical beta annealing (each cycle: beta rises 0 -> beta_max over the first half);
- groove input: velocity and offset channel dropout; bar swap (roll 16 steps) of input and target;
- optional genre conditioning (GMD style + 1; index 0 = "any"), dropped to "any" at genre_dropout
  so the unconditioned module works;
- early stopping on validation hit F1 (per-voice thresholds chosen on validation with the objective
  the shipped manifest uses, z = mu);
- an exponential moving average of the weights (EMA) is what is validated, saved and exported:
  it behaves like an ensemble of the last few epochs' models at no cost at inference;
- optional distillation (`--teacher CKPT`, repeatable): the hit target becomes
  (1 - distill) * truth + distill * the teachers' mean probability (z = mu, clean groove). The
  teachers may be larger than the latency budget allows and trained with other seeds or settings;
  only the student ships. The mean of three earlier runs scored 0.01-0.02 above each of them on
  validation; the student keeps about half of that at the size of one.

Seeded and reproducible: the data order, augmentation and dropout of epoch e come from generators
seeded by (seed, e), so a resumed run continues exactly where an uninterrupted one would be.
Checkpoints: DIR/last.pt every epoch (resume), DIR/best.pt at the best validation F1. "model" holds
the EMA weights (what export and evaluation load), "raw" the optimizer's weights (resume).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.training.evaluate import choose_thresholds, micro_f1
from grooverack.voices import NUM_VOICES, STEPS_PER_BAR

SILENT_WEIGHT = 0.1
SELECT_METRICS = ("val_f1", "val_coverage_removed_mean")
REMOVE_TWO = 0.2  # of the loops with groups removed: the share with two groups (else one)


@dataclass
class TrainConfig:
    epochs: int = 40  # 4 beta cycles; the last plateau (epochs 36-40) at the lowest learning rate
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    # KL weight against per-loop SUMS of the reconstruction losses (the reference's 0.2 goes with
    # per-cell means). At 0.2 the latent carried ~50 nats: too little for which steps hit, let alone
    # their velocities and offsets (validation offset MAE 0.135 vs 0.049 for copying the groove's).
    beta_max: float = 0.02
    # velocity/offset MSE weights: their per-hit errors are small numbers (variance ~0.04), so at
    # weight 1 encoding them in z cost more KL than it saved and the decoder ignored the groove's
    # dynamics and timing
    vel_weight: float = 10.0
    off_weight: float = 10.0
    beta_cycle_epochs: int = 10
    vel_dropout: float = 0.2  # per loop: the groove's velocity channel replaced by a constant
    off_dropout: float = 0.2  # per loop: the groove's offsets zeroed (a quantized input)
    bar_swap: float = 0.5  # per loop: roll input and target by one bar
    genre_dropout: float = 0.3  # per loop: genre -> "any"
    tempo_dropout: float = 0.3  # per loop (tempo-conditioned models): tempo -> unknown (0 BPM)
    pos_weight_max: float = 8.0
    patience: int = 15  # epochs without a better validation F1 before stopping (> 1 beta cycle)
    seed: int = 1234
    genres: bool = True
    ema_decay: float = 0.999  # per step (253 steps/epoch: a window of about 4 epochs)
    distill: float = 0.5  # weight of the teachers' probabilities in the hit target (with teachers)
    # each teacher predicts a loop as the mean of its prediction for the loop and (rolled back)
    # for the loop's bar-swapped copy: the two-pass ensemble the module cannot afford, learnt in one
    teacher_swap_average: bool = False
    select_objective: str = "balanced"  # threshold objective of the validation F1 (= shipped)
    # beta held at beta_max instead of cycling: a run that starts from a trained model (--init)
    # keeps the latent space it was given instead of re-forming it from a beta of 0
    beta_hold: bool = False
    # voice redistribution (models with removal_groups): the share of loops trained with voice
    # groups removed (one group; two in REMOVE_TWO of them), the target re-voiced (training.revoice)
    redistribute: float = 0.3
    # learning-rate factor of the parameters an --init checkpoint did not have (training.prune's
    # ADDABLE inputs, zero at the start): a fine-tune's small lr would leave them near zero
    new_lr_scale: float = 30.0
    # train only the parameters whose names start with one of these (empty = all): with
    # ("decoder.removed.",) a model learns voice redistribution while everything it played
    # before stays bit for bit what it was
    train_only: tuple[str, ...] = ()
    # what picks best.pt: the validation hit F1, or (voice redistribution learnt alone, when the
    # F1 cannot move) the mean onset coverage with one group removed
    select_metric: str = "val_f1"


# --- metrics (numpy) ---------------------------------------------------------------------------
# --- the loop ----------------------------------------------------------------------------------
def positive_weights(hits: np.ndarray, cap: float) -> np.ndarray:
    """sqrt(negatives / positives) per voice, clipped to [1, cap]: rare voices weigh more without
    drowning the common ones."""
    p = hits.reshape(-1, NUM_VOICES).mean(0).clip(1e-4, 1.0)
    return np.clip(np.sqrt((1 - p) / p), 1.0, cap).astype(np.float32)


def beta_at(epoch_float: float, cfg: TrainConfig) -> float:
    if cfg.beta_hold:
        return cfg.beta_max
    phase = (epoch_float % cfg.beta_cycle_epochs) / cfg.beta_cycle_epochs
    return cfg.beta_max * min(1.0, 2.0 * phase + 1e-9)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def removal_flags(b: int, share: float, groups: int, gen: Any) -> Any:
    """[B, G] 0/1: a share of loops has one group removed (two in REMOVE_TWO of them), drawn
    uniformly."""
    import torch

    flags = torch.zeros(b, groups)
    chosen = torch.rand(b, generator=gen) < share
    two = torch.rand(b, generator=gen) < REMOVE_TWO
    order = torch.argsort(torch.rand(b, groups, generator=gen), dim=1)
    rows = torch.arange(b)
    flags[rows[chosen], order[chosen, 0]] = 1.0
    both = chosen & two
    flags[rows[both], order[both, 1]] = 1.0
    return flags


def augment(batch: dict[str, Any], cfg: TrainConfig, gen: Any, n_genres: int,
            tempo: bool = False, groups: int = 0) -> dict[str, Any]:
    """Bar swap, velocity/offset dropout and genre dropout of one batch. With teacher targets
    (batch["teacher"]: [B, 2 swap, 2 genre any/style, 32, 9]) the hit target is mixed with the
    teachers' probability for the same swap and the genre the student is given. With `groups`
    (voice redistribution), `cfg.redistribute` of the loops have voice groups removed: the input
    flags them and the target is the loop re-voiced without them (training.revoice); the
    teachers' probabilities of the removed voices are taken out of the mix."""
    import torch

    b = batch["groove"].shape[0]
    swap = torch.rand(b, generator=gen) < cfg.bar_swap
    out = {}
    for key in ("groove", "hits", "velocities", "offsets"):
        x = batch[key]
        out[key] = torch.where(swap[:, None, None], torch.roll(x, STEPS_PER_BAR, dims=1), x)
    g = out["groove"].clone()
    vel_drop = torch.rand(b, generator=gen) < cfg.vel_dropout
    const = 0.4 + 0.5 * torch.rand(b, generator=gen)  # a flat velocity, as a gate-only input gives
    g[..., 1] = torch.where(vel_drop[:, None], g[..., 0] * const[:, None], g[..., 1])
    off_drop = torch.rand(b, generator=gen) < cfg.off_dropout
    g[..., 2] = torch.where(off_drop[:, None], torch.zeros_like(g[..., 2]), g[..., 2])
    out["groove"] = g
    keep = torch.zeros(b, dtype=torch.bool)
    if n_genres:
        keep = torch.rand(b, generator=gen) >= cfg.genre_dropout
        out["genre"] = torch.where(keep, batch["style"] + 1, torch.zeros_like(batch["style"]))
    else:
        out["genre"] = None
    out["tempo"] = None
    if tempo:  # drawn after the genre so runs without tempo keep their random streams
        known = torch.rand(b, generator=gen) >= cfg.tempo_dropout
        out["tempo"] = torch.where(known, batch["bpm"], torch.zeros_like(batch["bpm"]))
    gone = None
    out["removed"] = None
    if groups:  # drawn last, so runs without redistribution keep their random streams
        from grooverack.training import revoice

        flags = removal_flags(b, cfg.redistribute, groups, gen)
        table = torch.from_numpy(revoice.substitute_table())
        matrix = torch.from_numpy(revoice.group_matrix())
        played = out["hits"] > 0.5
        out["hits"], out["velocities"], out["offsets"] = revoice.revoice_torch(
            out["hits"], out["velocities"], out["offsets"], flags, table, matrix)
        moved = (out["hits"] > 0.5) & ~played  # the hits a removed group handed on
        gone = (flags @ matrix) > 0.5
        out["removed"] = flags
    if "teacher" in batch:
        rows = torch.arange(b)
        soft = batch["teacher"][rows, swap.long(), keep.long()].float()
        if gone is not None:
            soft = soft * (~gone)[:, None, :].to(soft.dtype)
        out["hits"] = (1.0 - cfg.distill) * out["hits"] + cfg.distill * soft
        if gone is not None:  # no teacher knows them: a handed-on hit is a hard target, or
            # it would stay under the rare voices' high thresholds (low tom 0.85, ride 0.8)
            out["hits"] = torch.where(moved, torch.ones_like(out["hits"]), out["hits"])
    return out


def teacher_cache_key(paths: list[str], train_set: Any, genres: list[str],
                      swap_average: bool = False) -> str:
    """What the teacher targets depend on: each teacher file (path, size, modification time),
    the train loops themselves (grooves, styles, tempos), the genre list and whether each
    teacher's predictions are averaged over the bar swap."""
    import hashlib

    digest = hashlib.sha256()
    files = []
    for path in paths:
        st = Path(path).stat()
        files.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    record = {"version": 1, "teachers": files, "genres": list(genres)}
    if swap_average:  # absent otherwise, so the keys of existing caches stay what they were
        record["swap_average"] = True
    digest.update(json.dumps(record).encode())
    for array in (train_set.groove, train_set.style, train_set.bpm):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:20]


def teacher_targets(paths: list[str], train_set: Any, genres: list[str],
                    cache_dir: Path | None = None, swap_average: bool = False) -> np.ndarray:
    """Mean hit probability of the teacher checkpoints for every train loop, [N, 2, 2, 32, 9]
    float16: axis 1 = (as is, bar-swapped input), axis 2 = (genre "any", the loop's style).

    With `swap_average` each teacher's probability for a loop is the mean of its prediction for
    the loop and its prediction for the bar-swapped loop rolled back by a bar (on validation the
    shipped model gains 0.0024 micro F1 that way, most on the rare voices; the module, which
    decodes once per regeneration, can only have it learnt).

    With `cache_dir`, the targets are kept there (written atomically) under a key of everything
    they depend on, so runs with the same teachers share one computation (about 45 s per
    teacher on 2 cores, 37 MB per set of teachers)."""
    from grooverack.training.export import load_checkpoint

    cache = None
    if cache_dir is not None:
        for path in paths:
            if not Path(path).is_file():
                raise SystemExit(f"train: teacher: checkpoint {path} not found")
        key = teacher_cache_key(paths, train_set, genres, swap_average)
        cache = Path(cache_dir) / f"teacher-{key}.npy"
        if cache.is_file():
            try:
                targets = np.load(cache)
                if targets.shape == (len(train_set.groove), 2, 2, train_set.groove.shape[1],
                                     NUM_VOICES):
                    print(f"teacher targets: {cache} (cached)", file=sys.stderr, flush=True)
                    return targets
            except (OSError, ValueError):
                pass
            print(f"teacher targets: {cache} unreadable; computing again", file=sys.stderr)

    grooves = np.ascontiguousarray(train_set.groove)
    swapped = np.ascontiguousarray(np.roll(grooves, STEPS_PER_BAR, axis=1))
    style = np.asarray(train_set.style, dtype=np.int64) + 1
    bpm = np.asarray(train_set.bpm, dtype=np.float32)
    total = np.zeros((len(grooves), 2, 2, grooves.shape[1], NUM_VOICES), np.float32)
    for path in paths:
        model, info = load_checkpoint(path, prog="train: teacher")
        if model.cfg.n_genres and info["genres"] != list(genres):
            raise SystemExit(f"train: teacher {path} was trained with other genres")
        for gi, genre in enumerate((0, style)):
            probs = [predict_probs(model, g, genre, batch=1024, bpm=bpm)
                     for g in (grooves, swapped)]
            if swap_average:  # both as the loop is played, then each input's own timing
                mean = 0.5 * (probs[0] + np.roll(probs[1], -STEPS_PER_BAR, axis=1))
                probs = [mean, np.roll(mean, STEPS_PER_BAR, axis=1)]
            for si in range(2):
                total[:, si, gi] += probs[si]
        print(f"teacher {path}: targets computed", file=sys.stderr, flush=True)
    targets = (total / max(1, len(paths))).astype(np.float16)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, targets)
        os.replace(tmp, cache)
    return targets


def losses(model: Any, batch: dict[str, Any], pos_weight: Any) -> dict[str, Any]:
    import torch
    from torch.nn import functional as F

    hit_logits, vel, off, mu, logvar = model(batch["groove"], batch["genre"], sample=True,
                                             tempo=batch.get("tempo"),
                                             removed=batch.get("removed"))
    hits = batch["hits"]
    cell = torch.where(hits > 0.5, torch.ones_like(hits), torch.full_like(hits, SILENT_WEIGHT))
    bce = F.binary_cross_entropy_with_logits(hit_logits, hits, pos_weight=pos_weight,
                                             reduction="none").sum((1, 2)).mean()
    vel_l = (cell * (vel - batch["velocities"]) ** 2).sum((1, 2)).mean()
    off_l = (cell * (off - batch["offsets"]) ** 2).sum((1, 2)).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(1).mean()
    return {"hit": bce, "vel": vel_l, "off": off_l, "kl": kl}


def predict_probs(model: Any, grooves: np.ndarray, genre: int | np.ndarray = 0,
                  batch: int = 512, bpm: float | np.ndarray | None = None,
                  removed: np.ndarray | None = None) -> np.ndarray:
    """Hit probabilities with z = mu (validation, evaluation, teacher targets); `genre` is one
    index or one per loop; `bpm` one tempo or one per loop (0 or None = unknown; ignored by a
    model without tempo conditioning); `removed` group flags [G] or [N, G] (voice
    redistribution; None = nothing removed)."""
    import torch

    model.eval()
    per_loop = np.broadcast_to(np.asarray(genre, dtype=np.int64), (len(grooves),)).copy()
    tempos = np.broadcast_to(np.asarray(0.0 if bpm is None else bpm, dtype=np.float32),
                             (len(grooves),)).copy()
    out = []
    with torch.no_grad():
        for i in range(0, len(grooves), batch):
            g = torch.from_numpy(grooves[i:i + batch])
            genres = torch.from_numpy(per_loop[i:i + batch]) if model.cfg.n_genres else None
            rm = None
            if removed is not None and getattr(model.cfg, "removal_groups", 0):
                rm = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(
                    np.asarray(removed, np.float32), (len(g), model.cfg.removal_groups))))
            h, *_ = model(g, genres, sample=False, tempo=torch.from_numpy(tempos[i:i + batch]),
                          removed=rm)
            out.append(torch.sigmoid(h).numpy())
    return np.concatenate(out) if out else np.zeros((0, 32, NUM_VOICES), np.float32)


def validate(model: Any, val: Any, objective: str = "balanced") -> dict[str, float]:
    """Validation micro hit F1 with thresholds chosen by `objective` (the one that selects best.pt)
    and, for the log, at 0.5 and under the other objectives. Genre "any"; the loop's tempo (what
    the module knows from its clock) for a tempo-conditioned model."""
    probs = predict_probs(model, val.groove, bpm=getattr(val, "bpm", None))
    chosen = choose_thresholds(probs, val.hits, objective=objective)
    out = {"val_f1": micro_f1(probs, val.hits, chosen),
           "val_f1_at_0.5": micro_f1(probs, val.hits, 0.5)}
    groups = getattr(model.cfg, "removal_groups", 0)
    if groups:  # redistribution: onset coverage with each group removed / with nothing removed
        from grooverack.training.revoice import onset_coverage, removed_voices

        full = onset_coverage(probs > chosen, val.groove)
        ratios = []
        for g in range(groups):
            flags = np.eye(groups, dtype=np.float32)[g]
            p = predict_probs(model, val.groove, bpm=getattr(val, "bpm", None), removed=flags)
            ratios.append(onset_coverage(p > chosen, val.groove, ~removed_voices(flags)))
        out["val_coverage"] = full
        out["val_coverage_removed_min"] = min(ratios)
        out["val_coverage_removed_mean"] = float(np.mean(ratios))
    for other in ("voice", "micro", "balanced"):
        if other != objective:
            out[f"val_f1_{other}"] = micro_f1(probs, val.hits,
                                              choose_thresholds(probs, val.hits, objective=other))
    return out


class EMA:
    """Exponential moving average of a model's parameters (decay warmed up over the first steps,
    so the average is not dominated by the random initialisation)."""

    def __init__(self, model: Any, decay: float) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, model: Any, step: int) -> None:
        import torch

        d = min(self.decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            # frozen parameters (--train-only) are left exactly as they are
            pairs = [(e, p) for e, p in zip(self.model.parameters(), model.parameters(),
                                            strict=True) if p.requires_grad]
            ema = [e for e, _ in pairs]
            torch._foreach_mul_(ema, d)
            torch._foreach_add_(ema, [p.detach() for _, p in pairs], alpha=1.0 - d)


def train(splits: dict[str, Any], out_dir: Path, tcfg: TrainConfig, *, model_overrides=None,
          genres: list[str] | None = None, data_hash: str = "", resume: bool = False,
          max_steps: int | None = None, progress: bool = True, threads: int = 2,
          args_record: dict | None = None, teachers: list[str] | None = None,
          init: str | None = None, teacher_cache: Path | None = None) -> dict[str, Any]:
    """Train on splits["train"], validate on splits["validation"]; returns the summary.

    `init`: start from this checkpoint's weights (training.prune: the configuration may narrow its
    feed-forward layers, drop blocks or regroup heads). `teacher_cache`: folder for the teacher targets."""
    import torch
    from tqdm import tqdm

    from grooverack.training.vae import GrooveVAE, VAEConfig, count_parameters

    torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val = splits["train"], splits["validation"]
    genres = list(genres or []) if tcfg.genres else []
    cfg = VAEConfig(n_genres=len(genres), **(model_overrides or {}))
    torch.manual_seed(tcfg.seed)
    model = GrooveVAE(cfg)
    init_record = None
    if init and not (resume and (out_dir / "last.pt").is_file()):
        from grooverack.training.prune import init_from

        init_record = init_from(model, init, train_set, genres, seed=tcfg.seed)
        print(f"init: {init}; blocks kept where a stack is shorter: "
              f"{init_record['kept_blocks'] or 'all'}; kept share of feed-forward importance per "
              f"narrowed block: {init_record['kept_importance'] or 'all'}", file=sys.stderr)
    ema = EMA(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    last, best = out_dir / "last.pt", out_dir / "best.pt"
    resumed = (torch.load(last, map_location="cpu", weights_only=False)
               if resume and last.is_file() else None)
    if resumed is not None:
        init_record = resumed.get("init")
    added = set((init_record or {}).get("added", []))
    if tcfg.train_only:
        for key, p in model.named_parameters():
            p.requires_grad_(key.startswith(tuple(tcfg.train_only)))
        if not any(p.requires_grad for p in model.parameters()):
            raise SystemExit(f"train: --train-only {' '.join(tcfg.train_only)} names no "
                             f"parameter of this model")
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for k, p in named if k not in added], "scale": 1.0}]
    if added:
        groups.append({"params": [p for k, p in named if k in added],
                       "scale": tcfg.new_lr_scale})
    opt = torch.optim.AdamW(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    pos_weight = torch.from_numpy(positive_weights(train_set.hits, tcfg.pos_weight_max))
    n = len(train_set)
    steps_per_epoch = max(1, n // tcfg.batch_size)
    total_steps = steps_per_epoch * tcfg.epochs
    state = {"epoch": 0, "step": 0, "best_f1": -1.0, "best_epoch": -1, "history": []}
    if resumed is not None:
        ckpt = resumed
        if VAEConfig.from_dict(ckpt["config"]) != cfg:
            raise SystemExit(f"train: {last} was made with another model configuration")
        if list(ckpt.get("teachers", [])) != list(teachers or []):
            raise SystemExit(f"train: {last} was trained with teachers "
                             f"{ckpt.get('teachers', [])}, not {list(teachers or [])}")
        model.load_state_dict(ckpt.get("raw", ckpt["model"]))
        if ema is not None:
            ema.model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = {k: ckpt[k] for k in state}
        init_record = ckpt.get("init")
        print(f"resuming {last} after epoch {state['epoch']}", file=sys.stderr)
    elif resume:
        print(f"train: nothing to resume in {out_dir}; starting fresh", file=sys.stderr)

    arrays = {k: torch.from_numpy(np.ascontiguousarray(getattr(train_set, k)))
              for k in ("groove", "hits", "velocities", "offsets")}
    arrays["style"] = torch.from_numpy(np.asarray(train_set.style, dtype=np.int64))
    arrays["bpm"] = torch.from_numpy(np.asarray(train_set.bpm, dtype=np.float32))
    if teachers:
        arrays["teacher"] = torch.from_numpy(teacher_targets(
            list(teachers), train_set, genres, teacher_cache, tcfg.teacher_swap_average))
    print(f"model: encoder {count_parameters(model.encoder):,} + decoder "
          f"{count_parameters(model.decoder):,} parameters; {n} train loops, {len(val)} validation;"
          f" {steps_per_epoch} steps/epoch", file=sys.stderr)

    def save(path: Path) -> None:
        from grooverack.storage import atomic_write_bytes

        tmp = io.BytesIO()
        torch.save({"config": cfg.to_dict(),
                    "model": (ema.model if ema is not None else model).state_dict(),
                    "raw": model.state_dict(), "teachers": list(teachers or []),
                    "init": init_record,
                    "optimizer": opt.state_dict(), "genres": genres, "data_hash": data_hash,
                    "train_config": tcfg.__dict__, "args": args_record or {}, "seed": tcfg.seed,
                    **state}, tmp)
        atomic_write_bytes(path, tmp.getvalue())

    stopped = False
    for epoch in range(state["epoch"], tcfg.epochs):
        model.train()
        torch.manual_seed(tcfg.seed * 1000 + epoch)  # dropout + reparameterization noise
        gen = torch.Generator().manual_seed(tcfg.seed * 1000 + epoch + 1)
        order = np.random.default_rng([tcfg.seed, epoch]).permutation(n)
        t0 = time.perf_counter()
        sums = {"hit": 0.0, "vel": 0.0, "off": 0.0, "kl": 0.0}
        done = 0
        beta = beta_at(epoch, tcfg)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{tcfg.epochs}",
                   disable=not progress, leave=False, file=sys.stderr, mininterval=2.0)
        for i in bar:
            if max_steps is not None and state["step"] >= max_steps:
                break
            idx = torch.from_numpy(order[i * tcfg.batch_size:(i + 1) * tcfg.batch_size])
            batch = augment({k: v[idx] for k, v in arrays.items()}, tcfg, gen, len(genres),
                            cfg.tempo, cfg.removal_groups)
            beta = beta_at(epoch + i / steps_per_epoch, tcfg)
            for group in opt.param_groups:
                group["lr"] = lr_at(state["step"], total_steps, tcfg) * group.get("scale", 1.0)
            parts = losses(model, batch, pos_weight)
            loss = (parts["hit"] + tcfg.vel_weight * parts["vel"] + tcfg.off_weight * parts["off"]
                    + beta * parts["kl"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if ema is not None:
                ema.update(model, state["step"])
            state["step"] += 1
            done += 1
            for k in sums:
                sums[k] += parts[k].item()
            if i % 20 == 0:
                bar.set_postfix(hit=f"{parts['hit'].item():.2f}", vel=f"{parts['vel'].item():.3f}",
                                off=f"{parts['off'].item():.3f}", kl=f"{parts['kl'].item():.1f}",
                                beta=f"{beta:.2f}")
        metrics = validate(ema.model if ema is not None else model, val, tcfg.select_objective)
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 1),
                  **{k: round(v / max(1, done), 4) for k, v in sums.items()},
                  **{k: round(v, 4) for k, v in metrics.items()}, "beta": round(beta, 3)}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        # only epochs spent wholly at beta_max compete for best.pt: an epoch early in a beta
        # cycle reconstructs well but leaves a latent space that random latents A/B miss
        plateau = beta_at(epoch, tcfg) >= tcfg.beta_max - 1e-9 or tcfg.beta_max == 0
        score = metrics.get(tcfg.select_metric)
        if score is None:
            raise SystemExit(f"train: --select {tcfg.select_metric}: this model's validation "
                             f"has no such figure ({', '.join(sorted(metrics))})")
        improved = plateau and score > state["best_f1"]
        if improved:  # "best_f1" holds the selection score (the F1 unless --select says else)
            state["best_f1"], state["best_epoch"] = score, epoch + 1
        save(last)
        if improved:
            save(best)
        print(f"epoch {epoch + 1}/{tcfg.epochs}: hit {record['hit']:.2f} vel {record['vel']:.3f} "
              f"off {record['off']:.3f} kl {record['kl']:.1f} | val F1 {metrics['val_f1']:.4f} "
              f"({tcfg.select_objective}; @0.5 {metrics['val_f1_at_0.5']:.4f}) best {'' if tcfg.select_metric == 'val_f1' else tcfg.select_metric + ' '}{state['best_f1']:.4f} "
              f"@{state['best_epoch']} | {record['seconds']:.0f} s", file=sys.stderr, flush=True)
        with open(out_dir / "history.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if max_steps is not None and state["step"] >= max_steps:
            break
        if epoch + 1 - state["best_epoch"] >= tcfg.patience:
            print(f"early stop: no better validation F1 for {tcfg.patience} epochs",
                  file=sys.stderr)
            stopped = True
            break
    return {"best_f1": state["best_f1"], "best_epoch": state["best_epoch"],
            "epochs": state["epoch"], "early_stopped": stopped, "best": str(best)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    parser.add_argument("--gmd", default=None, help="Groove MIDI Dataset zip (default: shared/)")
    parser.add_argument("--out", default="runs/train", help="checkpoint folder (default runs/train)")
    parser.add_argument("--epochs", type=int, default=d.epochs,
                        help=f"epochs (default {d.epochs}: about 20-30 minutes on 2 idle cores)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--beta-max", type=float, default=d.beta_max)
    parser.add_argument("--patience", type=int, default=d.patience)
    parser.add_argument("--no-genres", action="store_true", help="train without genre conditioning")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--model", metavar="KEY=VALUE", action="append", default=[],
                        help="override a VAEConfig field, e.g. enc_layers=2 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--teacher", metavar="CKPT", action="append", default=[],
                        help="distil from this checkpoint too (repeatable; their mean is used)")
    parser.add_argument("--distill", type=float, default=d.distill,
                        help=f"teacher weight in the hit target (default {d.distill})")
    parser.add_argument("--teacher-swap-average", action="store_true",
                        help="each teacher predicts a loop as the mean over the loop and its "
                             "bar-swapped copy (rolled back): a two-pass ensemble learnt in one")
    parser.add_argument("--ema-decay", type=float, default=d.ema_decay,
                        help=f"per-step EMA of the weights, 0 = off (default {d.ema_decay})")
    parser.add_argument("--genre-dropout", type=float, default=d.genre_dropout,
                        help="share of loops trained with the genre \"any\" (what the module "
                             f"plays without a genre set; default {d.genre_dropout})")
    parser.add_argument("--tempo", action="store_true",
                        help="condition the decoder on the tempo (BPM; the module knows it from its "
                             "clock)")
    parser.add_argument("--tempo-dropout", type=float, default=d.tempo_dropout,
                        help="share of loops trained with an unknown tempo (default "
                             f"{d.tempo_dropout})")
    parser.add_argument("--init", metavar="CKPT", default=None,
                        help="start from this checkpoint's weights; --model enc_ff=/dec_ff= smaller "
                             "than its own keep each block's most used feed-forward units, "
                             "enc_layers=/dec_layers= fewer keep the most active blocks, "
                             "enc_heads=/dec_heads= regroup the heads (training/prune.py); beta "
                             "is held at --beta-max")
    parser.add_argument("--teacher-cache", metavar="DIR", default=None,
                        help="folder for the teachers' targets, shared by runs with the same "
                             "teachers (default: .teacher-targets beside OUT; '' = no cache)")
    parser.add_argument("--redistribute", type=float, default=d.redistribute,
                        help="with --model removal_groups=5: the share of loops trained with voice "
                             f"groups removed and re-voiced (default {d.redistribute})")
    parser.add_argument("--new-lr-scale", type=float, default=d.new_lr_scale,
                        help="with --init: learning-rate factor of the parameters the checkpoint "
                             f"lacks (new inputs; default {d.new_lr_scale})")
    parser.add_argument("--train-only", metavar="PREFIX", action="append", default=[],
                        help="train only the parameters whose names start with PREFIX "
                             "(repeatable; e.g. decoder.removed. = voice redistribution alone)")
    parser.add_argument("--select", choices=SELECT_METRICS, default=d.select_metric,
                        help="what picks best.pt (default val_f1; val_coverage_removed_mean: "
                             "the redistribution's onset coverage, for --train-only decoder.removed)")
    parser.add_argument("--pos-weight-max", type=float, default=d.pos_weight_max,
                        help="cap of the per-voice positive weight of the hit loss (default "
                             f"{d.pos_weight_max}; the rare voices reach it)")
    parser.add_argument("--select-objective", choices=("balanced", "voice", "micro"),
                        default=d.select_objective,
                        help="threshold objective of the validation F1 that picks best.pt "
                             f"(default {d.select_objective}, the one the manifest ships; runs "
                             "before 2026-11-21 used voice)")


def model_overrides(items: list[str]) -> dict[str, Any]:
    """`--model KEY=VALUE` items -> VAEConfig overrides (a later item wins)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            overrides[key] = float(value) if "." in value else int(value)
        except ValueError:
            raise ValueError(f"{item!r} is not KEY=NUMBER") from None
    return overrides


def run(args: argparse.Namespace) -> int:
    from grooverack.training import data

    for name, value, ok, allowed in (
            ("--distill", args.distill, 0.0 <= args.distill <= 1.0, "0 to 1"),
            ("--ema-decay", args.ema_decay, 0.0 <= args.ema_decay < 1.0, "0 (off) to below 1"),
            ("--genre-dropout", args.genre_dropout, 0.0 <= args.genre_dropout <= 1.0, "0 to 1"),
            ("--tempo-dropout", args.tempo_dropout, 0.0 <= args.tempo_dropout <= 1.0, "0 to 1"),
            ("--redistribute", args.redistribute, 0.0 <= args.redistribute <= 1.0, "0 to 1"),
            ("--pos-weight-max", args.pos_weight_max, 1.0 <= args.pos_weight_max <= 100.0,
             "1 to 100")):
        if not ok:
            print(f"train: {name} {value} is out of range (allowed: {allowed})", file=sys.stderr)
            return 2
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       beta_max=args.beta_max, patience=args.patience, seed=args.seed,
                       genres=not args.no_genres, distill=args.distill,
                       ema_decay=args.ema_decay, genre_dropout=args.genre_dropout,
                       tempo_dropout=args.tempo_dropout,
                       select_objective=args.select_objective, beta_hold=bool(args.init),
                       redistribute=args.redistribute, pos_weight_max=args.pos_weight_max,
                       new_lr_scale=args.new_lr_scale, train_only=tuple(args.train_only),
                       select_metric=args.select,
                       teacher_swap_average=args.teacher_swap_average)
    if args.teacher_swap_average and not args.teacher:
        print("train: --teacher-swap-average needs at least one --teacher", file=sys.stderr)
        return 2
    from grooverack.training.vae import VAEConfig

    try:
        overrides = model_overrides(args.model)
        fields = [k for k in VAEConfig.__dataclass_fields__ if k != "n_genres"]  # set from data
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"unknown field {', '.join(unknown)} (fields: {', '.join(fields)})")
        VAEConfig(**overrides)  # its own checks (e.g. enc_pair must divide the 32 steps)
    except ValueError as exc:
        print(f"train: --model {' '.join(args.model)}: {exc}", file=sys.stderr)
        return 2
    if args.tempo:
        overrides["tempo"] = True
    if args.init and not Path(args.init).is_file():
        print(f"train: --init {args.init}: checkpoint not found", file=sys.stderr)
        return 2
    try:
        splits = data.load_splits(args.gmd)
    except data.DataError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    gmd = Path(args.gmd) if args.gmd else data.DEFAULT_GMD_ZIP
    record = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    if args.teacher_cache is None:
        teacher_cache = Path(args.out).resolve().parent / ".teacher-targets"
    else:
        teacher_cache = Path(args.teacher_cache) if args.teacher_cache else None
    summary = train(splits, Path(args.out), tcfg, model_overrides=overrides,
                    genres=["any", *data.STYLES], data_hash=data.data_hash(gmd),
                    resume=args.resume, progress=not args.no_progress, threads=args.threads,
                    args_record=record, teachers=args.teacher, init=args.init,
                    teacher_cache=teacher_cache)
    print(json.dumps(summary))
    return 0
