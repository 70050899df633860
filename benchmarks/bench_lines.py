"""Drums with a sequencer line (issue 29): the line benchmark.

Every line of the corpus (`line_corpus.py`, `lines-corpus.json`: chorale sopranos and basses,
fiddle tunes, a rag, stage-sequencer, Euclidean and acid lines, each at its own tempo) is played
into the module as a sequencer plays it (gate + 1 V/oct pitch through `grooverack.sim.patch`
and `sim.direct.DirectBoard`: the engine's own pitch -> velocity mapping, capture, shipped int8
model, player), in-process as `grooverack sim --board direct` renders it, for 16 bars and two
seeds; the first loop (2 bars of A/B before the groove is captured) is not counted. Every voice
has its own output (`outputs.count=9`, `map.ride=9`). Hits are counted on the 16th they are
played nearest to.

Measured for each follow and style, against real GMD train loops (`gmd-loop-means.json`, built
once from the dataset zip with `--build-real`): hits per loop per voice, the realism distance,
bars with a kick on beat 1, bars with a backbeat, line onsets covered, cells changed per 0.1 of
follow, and (voice redistribution) with each voice group removed.

    python benchmarks/bench_lines.py --quick           # 868 renders, ~1.5 min of CPU
    python benchmarks/bench_lines.py --jobs 2 --json lines.json --renders /tmp/val.npz  # 6,480
    python benchmarks/bench_lines.py --split test --jobs 2 --json test.json   # once, at the end
    python benchmarks/bench_lines.py --quick --set generation.max_count=12 --manifest M.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from grooverack.voices import VOICE_GROUPS, VOICE_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parent))
import line_metrics as lm  # noqa: E402
from line_corpus import CORPUS_PATH, Line, load_corpus, quick_subset, write_corpus  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL_PATH = HERE / "gmd-loop-means.json"
FOLLOWS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
SWEEP = tuple(round(i / 10, 1) for i in range(11))
BARS = 16
SEEDS = 2
MUTE_FOLLOWS = (0.9,)
FLOOR_LOOPS = (1, 2, 4)
CHECKPOINT = 1000  # renders between saves of --renders
FLOOR_MIN_LOOPS = 20
QUICK_STYLES = ("any", "rock")
DETAIL_STYLES = ("any", "rock")  # every follow, the 0.1 sweep and the removals
STYLE_FOLLOWS = (0.0, 0.5, 0.9)  # the other styles: the follows the targets name
QUICK_PER_KIND = 2
BOOTSTRAP, BOOTSTRAP_LEVEL = 1000, 0.95  # resamples of the lines, interval of the mean

# targets (issue 29 items 3 and 4). T_COVERED_SLACK, T_BACKBEAT_OF_REAL, T_LOW_END and
# T_BACKBEAT_MOVED / T_GHOSTS_MOVED are this benchmark's reading of the issue's words ("never
# falls", "a backbeat", "keeps the low end", "moves the backbeat, not every ghost note")
T_DISTANCE_MEAN, T_DISTANCE_WORST, T_DISTANCE_FOLLOW0 = 0.25, 0.40, 0.22
T_KICK_ON_ONE = 0.75
T_COVERED = 0.75
T_COVERED_SLACK = 0.01  # a fall of 1 onset in 100 between two follows is run-to-run noise
T_CELLS = 8.0
T_OVER_REAL = 1.5
T_BACKBEAT_OF_REAL = 1.0  # a backbeat in at least the real loops' share of bars of the style
T_LOW_END = 0.75
T_BACKBEAT_MOVED, T_GHOSTS_MOVED = 0.75, 0.5


# ------------------------------------------------------------------------------- real GMD loops

def build_real(gmd: str | None, cache: str | None, path: Path = REAL_PATH) -> dict[str, Any]:
    """Per-loop means of the GMD train split, overall ('any') and per style -> `path`."""
    from grooverack.storage import atomic_write_text
    from grooverack.training.data import DEFAULT_GMD_ZIP, STYLES, data_hash, load_splits

    zip_path = Path(gmd) if gmd else DEFAULT_GMD_ZIP
    splits = load_splits(zip_path, cache)
    hits = np.asarray(splits["train"].hits) > 0.5
    style = np.asarray(splits["train"].style)
    v_hits = np.asarray(splits["validation"].hits) > 0.5  # never the test split
    v_style = np.asarray(splits["validation"].style)
    styles: dict[str, Any] = {}
    for name in ("any", *STYLES):
        mask = np.ones(len(style), bool) if name == "any" else style == STYLES.index(name)
        if not mask.any():
            continue
        g = hits[mask]
        kick, bars = lm.kick_on_one(g)
        back, _ = lm.backbeat(g)
        ref = lm.hits_per_loop(g)
        styles[name] = {"loops": int(mask.sum()),
                        "hits_per_loop": [round(float(x), 4) for x in ref],
                        "kick_on_one": round(kick / bars, 4), "backbeat": round(back / bars, 4)}
        v_mask = (np.ones(len(v_style), bool) if name == "any"
                  else v_style == STYLES.index(name))
        if v_mask.sum() >= FLOOR_MIN_LOOPS:
            styles[name]["floor"] = {str(k): round(lm.real_floor(v_hits[v_mask], ref, k), 4)
                                     for k in FLOOR_LOOPS}
    out = {"what": "per-loop means of the Groove MIDI Dataset's train split (2-bar loops, 1-bar "
                   "hop, grooverack.training.data), overall ('any') and per style; floor: the "
                   "mean realism distance of the mean of k random validation loops of the "
                   "style (what real drumming scores for k independent loops)",
           "built_by": "python benchmarks/bench_lines.py --build-real",
           "data_hash": data_hash(zip_path), "voices": list(VOICE_NAMES), "styles": styles}
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
    return out


def split_loop_means(gmd: str | None, cache: str | None, styles: Sequence[str],
                     split: str = "test") -> dict[str, tuple[int, np.ndarray]]:
    """Per style ('any': every loop): (loops, hits per loop per voice) of a GMD split's loops
    ('test' for issue 29 item 5, read once at the end; 'validation' for choosing)."""
    from grooverack.training.data import DEFAULT_GMD_ZIP, STYLES, load_splits

    loops = load_splits(Path(gmd) if gmd else DEFAULT_GMD_ZIP, cache)[split]
    hits = np.asarray(loops.hits) > 0.5
    style = np.asarray(loops.style)
    out: dict[str, tuple[int, np.ndarray]] = {}
    for name in styles:
        mask = np.ones(len(style), bool) if name == "any" else style == STYLES.index(name)
        if mask.any():
            out[name] = (int(mask.sum()), lm.hits_per_loop(hits[mask]))
    return out


def test_loop_means(gmd: str | None, cache: str | None, styles: Sequence[str]
                    ) -> dict[str, tuple[int, np.ndarray]]:
    """Per style: (loops, hits per loop per voice) of the GMD TEST split (issue 29 item 5)."""
    return split_loop_means(gmd, cache, styles, "test")


def against_loops(res: dict[str, Any], gmd: str | None, cache: str | None,
                  split: str = "test") -> None:
    """Issue 29 item 5: each style's realism distance against that style's real loops of a GMD
    split ('test': read once, at the end; 'validation': for choosing), of the module's mean over
    lines (every line and seed pooled) at each follow, next to the real TRAIN loops' mean against
    the same loops -> res["styles"][s]["<split>_loops"] ({"loops": 0} where the style has none
    in that split)."""
    means = split_loop_means(gmd, cache, list(res["styles"]), split)
    for style, sb in res["styles"].items():
        if style not in means:
            sb[f"{split}_loops"] = {"loops": 0}
            continue
        loops, ref = means[style]
        train = np.asarray(res["real"][style]["hits_per_loop"], float)
        sb[f"{split}_loops"] = {
            "loops": loops, "hits_per_loop": [round(float(x), 3) for x in ref],
            "real_train": round(lm.realism_distance(train, ref), 4),
            "follow": {fv: round(lm.realism_distance(r["hits_per_loop"], ref), 4)
                       for fv, r in sb["follow"].items()},
            "interval": {fv: _interval(
                [p["voices"] for p in r["lines"].values()],
                lambda v, ref=ref: np.abs(v.mean(axis=1) - ref).sum(axis=1) / ref.sum())
                for fv, r in sb["follow"].items()
                if all("voices" in p for p in r["lines"].values())}}  # older results: none


def against_test_loops(res: dict[str, Any], gmd: str | None, cache: str | None) -> None:
    """Issue 29 item 5 on the style's TEST loops (`against_loops`, read once at the end)."""
    against_loops(res, gmd, cache, "test")


def load_real(path: Path = REAL_PATH) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"{path}: missing; build it once with --build-real (needs the GMD zip)")
    return dict(json.loads(path.read_text(encoding="utf-8"))["styles"])


# ------------------------------------------------------------------------------------ rendering

@dataclass(frozen=True)
class Task:
    line: Line
    style: str
    follow: float
    seed: int
    mute: str = ""  # a voice group removed ("" = none)


@dataclass(frozen=True)
class RenderConfig:
    manifest: str | None
    overrides: tuple[str, ...]
    bars: int
    board: str
    fresh_model: bool = False  # load the model's files for every render, as `grooverack sim`


_WATCHES: dict[tuple[str, str], Any] = {}


def make_engine(settings: Any) -> Any:
    """The engine as `grooverack sim` makes it (the model loaded from its files)."""
    from grooverack.runtime.serve import make_engine as serve_engine

    return serve_engine(settings, threaded=False)


def cached_engine(settings: Any) -> Any:
    """`make_engine` with the model's files opened once per process (the sessions only run; the
    engine and its generator are new for each render): the same patterns, half the time."""
    from grooverack.engine.engine import Engine
    from grooverack.model.watch import ModelWatch

    key = (str(settings["model.path"]), str(settings["model.variant"]))
    if key not in _WATCHES:
        _WATCHES[key] = ModelWatch(settings["model.path"] or None, settings["model.variant"],
                                   quiet=settings["generation.mode"] == "rules")
    watch = _WATCHES[key]
    return Engine(settings, watch.runner, threaded=False, watch=watch)


def sim_argv(task: Task, cfg: RenderConfig) -> list[str]:
    """The `grooverack sim` command line of a render (its settings: what `--set` gives)."""
    argv = ["sim", "--board", cfg.board, "-q", "--seed", str(task.seed), "--bars", str(cfg.bars),
            "--bpm", f"{task.line.bpm:g}", "--set", "outputs.count=9", "--set", "map.ride=9"]
    for text in cfg.overrides:
        argv += ["--set", text]
    argv += ["--set", f"follow={task.follow:g}", "--set", f"genre={task.style}"]
    if cfg.manifest:
        argv += ["--set", f"model.path={cfg.manifest}"]
    for voice in VOICE_GROUPS.get(task.mute, ()):
        argv += ["--set", f"mute.{voice}=true"]
    return argv


def check_config(task: Task, cfg: RenderConfig) -> None:
    """Refuse bad overrides, a bad board or manifest before any work, naming what is wrong."""
    from grooverack.cli import build_parser
    from grooverack.config import make_settings
    from grooverack.errors import GrooverackError
    from grooverack.model.runner import ModelRunner

    try:
        make_settings(build_parser("sim").parse_args(sim_argv(task, cfg)))
        if cfg.board != "direct":
            from grooverack.boards.board import load_board

            load_board(cfg.board)
        if cfg.manifest:
            ModelRunner(cfg.manifest, variant="int8")
    except GrooverackError as exc:
        raise SystemExit(f"bench_lines: {exc}") from None


def render(task: Task, cfg: RenderConfig) -> tuple[np.ndarray, np.ndarray]:
    """The module playing `task.line` -> (hits [loops, 32, 9] bool, line onsets [loops, 32])."""
    from grooverack.cli import build_parser
    from grooverack.config import CONTROLS, make_settings
    from grooverack.sim.patch import OutputRecorder, build_patch
    from grooverack.sim.session import make_board
    from grooverack.sim.session import render as play

    settings = make_settings(build_parser("sim").parse_args(sim_argv(task, cfg)))
    settings.set("tempo", task.line.bpm)
    patch = build_patch(task.line.source(), bpm=task.line.bpm, bars=cfg.bars,
                        controls={k: settings[k] for k in CONTROLS},
                        velocity_cv_volts=settings["input.velocity_cv_volts"])
    engine = make_engine(settings) if cfg.fresh_model else cached_engine(settings)
    recorder = OutputRecorder()
    board = make_board(settings, recorder, engine, cfg.board)
    play(patch, board)
    close = getattr(board, "close", None)
    if close is not None:
        close()
    step_s = patch.step_seconds
    loops = cfg.bars // 2
    hits = [h for h in recorder.hits(settings["outputs.velocity_volts"]) if h.voice is not None]
    grid = lm.grid_from_steps([round(h.time / step_s) for h in hits],
                              [int(h.voice) for h in hits if h.voice is not None], loops)
    onsets = lm.onset_grid([round(t / step_s) for t in patch.gate_rises()], loops)
    return grid, onsets


_CFG: RenderConfig | None = None


def _init_worker(cfg: RenderConfig) -> None:
    global _CFG
    _CFG = cfg
    logging.getLogger("grooverack").setLevel(logging.ERROR)


def _run(task: Task) -> tuple[Task, np.ndarray, np.ndarray]:
    assert _CFG is not None
    grid, onsets = render(task, _CFG)
    return task, grid, onsets


def run_tasks(tasks: list[Task], cfg: RenderConfig, jobs: int, progress: bool = True,
              checkpoint: Callable[[dict[Any, Any]], None] | None = None
              ) -> dict[tuple[str, str, float, int, str], tuple[Any, Any]]:
    """Every task rendered (in `jobs` processes): {(line, style, follow, seed, mute): grids};
    `checkpoint` is given what is done every CHECKPOINT renders."""
    out: dict[tuple[str, str, float, int, str], tuple[Any, Any]] = {}
    started = time.perf_counter()

    def note(i: int) -> None:
        if progress and (i % 200 == 0 or i == len(tasks)):
            el = time.perf_counter() - started
            print(f"  {i}/{len(tasks)} renders, {el:.0f} s", file=sys.stderr, flush=True)
        if checkpoint is not None and i % CHECKPOINT == 0 and i < len(tasks):
            checkpoint(out)

    if jobs <= 1:
        _init_worker(cfg)
        for i, t in enumerate(tasks, 1):
            task, grid, onsets = _run(t)
            out[(task.line.id, task.style, task.follow, task.seed, task.mute)] = (grid, onsets)
            note(i)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(jobs, _init_worker, (cfg,)) as pool:
            for i, (task, grid, onsets) in enumerate(pool.imap_unordered(_run, tasks, 8), 1):
                out[(task.line.id, task.style, task.follow, task.seed, task.mute)] = (grid, onsets)
                note(i)
    return out


def _key(task: Task) -> tuple[str, str, float, int, str]:
    return (task.line.id, task.style, task.follow, task.seed, task.mute)


def save_renders(path: str, cfg: RenderConfig, renders: dict[Any, Any]) -> None:
    """Every render's grids (bit-packed) with what made them, to measure again without playing."""
    keys = sorted(renders, key=repr)
    grids = np.packbits(np.stack([renders[k][0] for k in keys]), axis=-1)
    onsets = np.packbits(np.stack([renders[k][1] for k in keys]), axis=-1)
    meta = json.dumps({"config": [cfg.manifest, list(cfg.overrides), cfg.bars, cfg.board],
                       "keys": [list(k) for k in keys]})
    tmp = Path(str(path) + ".tmp.npz")
    np.savez_compressed(tmp, grids=grids, onsets=onsets, meta=np.array(meta))
    os.replace(tmp, path)


def load_renders(path: str, cfg: RenderConfig) -> dict[Any, Any]:
    """The renders of `save_renders` when they were made with `cfg` (else none)."""
    if not Path(path).is_file():
        return {}
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        if meta["config"] != [cfg.manifest, list(cfg.overrides), cfg.bars, cfg.board]:
            print(f"  {path}: made with another model, overrides, length or board; not used",
                  file=sys.stderr)
            return {}
        grids = np.unpackbits(npz["grids"], axis=-1, count=len(VOICE_NAMES)).astype(bool)
        onsets = np.unpackbits(npz["onsets"], axis=-1, count=32).astype(bool)
    return {(k[0], k[1], float(k[2]), int(k[3]), k[4]): (grids[i], onsets[i])
            for i, k in enumerate(meta["keys"])}


# ----------------------------------------------------------------------------------- measuring

def plan(lines: Sequence[Line], follows_of: dict[str, list[float]], mute_styles: Sequence[str],
         mute_follows: Sequence[float], seeds: dict[str, list[int]]) -> list[Task]:
    """The renders: each line at each style's follows, and with each group removed."""
    tasks: list[Task] = []
    for line in lines:
        for style, follows in follows_of.items():
            for f in follows:
                tasks += [Task(line, style, f, s) for s in seeds[line.id]]
        for style in mute_styles:
            for f in mute_follows:
                for group in VOICE_GROUPS:
                    tasks += [Task(line, style, f, s, group) for s in seeds[line.id]]
    return tasks


def line_seeds(line_id: str, count: int, first: int = 0, same: bool = False) -> list[int]:
    """The generation seeds of a line: its own (from its id), or `first`.. for every line."""
    base = 0 if same else (zlib.crc32(line_id.encode()) % 100_000) * 10
    return [base + first + i for i in range(count)]


def _counted(grid: np.ndarray) -> np.ndarray:
    return grid[1:]  # the first loop plays A/B before the groove is captured


def measure_follow(renders: dict[Any, Any], lines: Sequence[Line], style: str, follow: float,
                   seeds: dict[str, list[int]], real: dict[str, Any]) -> dict[str, Any]:
    """The measures of one style at one follow over every line (each line: both seeds pooled)."""
    ref = np.asarray(real[style]["hits_per_loop"])
    per_line: dict[str, Any] = {}
    k_hit = k_bars = b_hit = c_hit = c_on = 0
    voices = []
    churn: list[float] = []  # cells changed from one loop to the next, nothing moved
    for line in lines:
        grids = np.concatenate([_counted(renders[(line.id, style, follow, s, "")][0])
                                for s in seeds[line.id]])
        onsets = np.concatenate([_counted(renders[(line.id, style, follow, s, "")][1])
                                 for s in seeds[line.id]])
        hpl = lm.hits_per_loop(grids)
        voices.append(hpl)
        churn.append(float(np.mean([lm.cells_changed(g[:-1], g[1:]) for g in
                              (_counted(renders[(line.id, style, follow, s, "")][0])
                               for s in seeds[line.id])])))
        k, bars = lm.kick_on_one(grids)
        b, _ = lm.backbeat(grids)
        c, on = lm.onsets_covered(grids, onsets)
        k_hit, k_bars, b_hit, c_hit, c_on = k_hit + k, k_bars + bars, b_hit + b, c_hit + c, c_on + on
        per_line[line.id] = {"distance": round(lm.realism_distance(hpl, ref), 4),
                             "hits_per_loop": round(float(hpl.sum()), 2),
                             "voices": [round(float(x), 3) for x in hpl],
                             "kick_on_one": round(k / bars, 3), "backbeat": round(b / bars, 3),
                             "covered": round(c / on, 3) if on else None}
    dist = [p["distance"] for p in per_line.values()]
    cov = [p["covered"] for p in per_line.values() if p["covered"] is not None]
    worst = max(per_line, key=lambda i: per_line[i]["distance"])
    kick_worst = min(per_line, key=lambda i: per_line[i]["kick_on_one"])
    cov_worst = min((i for i in per_line if per_line[i]["covered"] is not None),
                    key=lambda i: per_line[i]["covered"])
    mean_voices = np.mean(voices, axis=0)
    return {"hits_per_loop": [round(float(x), 2) for x in mean_voices],
            "intervals": follow_intervals(per_line, np.asarray(voices), ref),
            "real_hits_per_loop": [round(float(x), 2) for x in ref],
            "distance_mean": round(float(np.mean(dist)), 4),
            "distance_of_mean": round(lm.realism_distance(mean_voices, ref), 4),
            "distance_worst": round(float(max(dist)), 4), "distance_worst_line": worst,
            "kick_on_one": round(k_hit / k_bars, 4),
            "kick_on_one_worst": per_line[kick_worst]["kick_on_one"],
            "kick_on_one_worst_line": kick_worst,
            "backbeat": round(b_hit / k_bars, 4), "real_backbeat": real[style]["backbeat"],
            "real_kick_on_one": real[style]["kick_on_one"],
            "covered": round(float(np.mean(cov)), 4), "covered_pooled": round(c_hit / c_on, 4),
            "covered_worst": per_line[cov_worst]["covered"], "covered_worst_line": cov_worst,
            "loop_to_loop_cells": round(float(np.mean(churn)), 2),
            "lines": per_line}


def _interval(values: Sequence[float] | np.ndarray,
              statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> list[float]:
    low, high = lm.bootstrap_interval(values, statistic, BOOTSTRAP, BOOTSTRAP_LEVEL)
    return [round(low, 4), round(high, 4)]


def follow_intervals(per_line: dict[str, Any], voices: np.ndarray, ref: np.ndarray
                     ) -> dict[str, list[float]]:
    """Bootstrap intervals over lines (lines resampled with replacement) of the mean per-line
    distance, the distance of the mean, kick on beat 1, backbeat and onsets covered. Every line
    has the same bars, so the mean of its shares is the pooled share."""
    r = np.asarray(ref, float)
    rows = list(per_line.values())
    out = {"distance_mean": _interval([p["distance"] for p in rows]),
           "distance_of_mean": _interval(
               voices, lambda s: np.abs(s.mean(axis=1) - r).sum(axis=1) / r.sum()),
           "kick_on_one": _interval([p["kick_on_one"] for p in rows]),
           "backbeat": _interval([p["backbeat"] for p in rows])}
    cov = [p["covered"] for p in rows if p["covered"] is not None]
    if cov:
        out["covered"] = _interval(cov)
    return out


def measure_cells(renders: dict[Any, Any], lines: Sequence[Line], style: str,
                  seeds: dict[str, list[int]]) -> dict[str, Any]:
    """Cells (of 288) that flip per 0.1 of follow, everything else fixed (line, seed, loop)."""
    steps = []
    table: list[list[float]] = []  # [steps, lines]
    worst = (0.0, "", 0.0)
    for a, b in zip(SWEEP, SWEEP[1:], strict=False):
        per_line = []
        for line in lines:
            c = float(np.mean([lm.cells_changed(_counted(renders[(line.id, style, a, s, "")][0]),
                                                _counted(renders[(line.id, style, b, s, "")][0]))
                               for s in seeds[line.id]]))
            per_line.append(c)
            if c > worst[0]:
                worst = (c, line.id, a)
        steps.append({"from": a, "to": b, "mean": round(float(np.mean(per_line)), 2),
                      "max_line": round(float(max(per_line)), 2),
                      "interval": _interval(per_line)})
        table.append(per_line)
    means = [s["mean"] for s in steps]
    by_line = np.asarray(table).T  # [lines, steps]
    return {"steps": steps, "max": max(means), "mean": round(float(np.mean(means)), 2),
            "max_interval": _interval(by_line, lambda s: s.mean(axis=1).max(axis=1)),
            "worst_line": {"cells": round(worst[0], 2), "line": worst[1], "from": worst[2]}}


def measure_mutes(renders: dict[Any, Any], lines: Sequence[Line], style: str, follow: float,
                  seeds: dict[str, list[int]], real: dict[str, Any]) -> dict[str, Any]:
    """With each voice group removed: the remaining voices against real loops of the style, and
    where a removed kick's downbeats and a removed snare's backbeat and ghost notes went."""
    ref = np.asarray(real[style]["hits_per_loop"])
    out: dict[str, Any] = {}
    for group in VOICE_GROUPS:
        removed = lm.group_voices(group)
        voices, ratios = [], []
        low = [0, 0]
        back = [0, 0]
        ghost = [0, 0]
        cover = [0, 0, 0]  # line onsets with a hit: nothing removed, the group removed; onsets
        for line in lines:
            before = np.concatenate([_counted(renders[(line.id, style, follow, s, "")][0])
                                     for s in seeds[line.id]])
            after = np.concatenate([_counted(renders[(line.id, style, follow, s, group)][0])
                                    for s in seeds[line.id]])
            onsets = np.concatenate([_counted(renders[(line.id, style, follow, s, group)][1])
                                     for s in seeds[line.id]])
            c0, _ = lm.onsets_covered(before, onsets)
            c1, on = lm.onsets_covered(after, onsets)
            cover = [cover[0] + c0, cover[1] + c1, cover[2] + on]
            hpl = lm.hits_per_loop(after)
            voices.append(hpl)
            ratios.append((lm.over_real(hpl, ref, removed), line.id))
            if group == "kick":
                m, n = lm.moved(before, after, lm.KICK, lm.DOWNBEATS, lm.LOW_VOICES)
                low = [low[0] + m, low[1] + n]
            if group == "snare":
                m, n = lm.moved(before, after, lm.SNARE, lm.BACKBEAT)
                back = [back[0] + m, back[1] + n]
                m, n = lm.moved(before, after, lm.SNARE, lm.off_steps(lm.BACKBEAT))
                ghost = [ghost[0] + m, ghost[1] + n]
        mean_voices = np.mean(voices, axis=0)
        ratio, voice = lm.over_real(mean_voices, ref, removed)
        (wr, wv), wline = max(ratios, key=lambda r: r[0][0])
        row: dict[str, Any] = {"hits_per_loop": [round(float(x), 2) for x in mean_voices],
                               "over_real": round(ratio, 3), "over_real_voice": VOICE_NAMES[voice],
                               "over_real_worst_line": {"ratio": round(wr, 3),
                                                        "voice": VOICE_NAMES[wv], "line": wline},
                               "covered": round(cover[1] / cover[2], 4) if cover[2] else None,
                               "covered_nothing_removed": (round(cover[0] / cover[2], 4)
                                                           if cover[2] else None)}
        if group == "kick":
            row["low_end_kept"] = round(low[0] / low[1], 4) if low[1] else None
            row["kick_downbeats"] = low[1]
        if group == "snare":
            row["backbeat_moved"] = round(back[0] / back[1], 4) if back[1] else None
            row["ghosts_moved"] = round(ghost[0] / ghost[1], 4) if ghost[1] else None
            row["backbeat_snares"], row["ghost_snares"] = back[1], ghost[1]
        out[group] = row
    return out


# ------------------------------------------------------------------------------------- targets

def targets(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target of issue 29 items 3 and 4."""
    rows: list[tuple[str, str, bool]] = []
    for style, by in res["styles"].items():
        f = by["follow"]
        for fv in ("0.5", "0.9"):
            if fv in f:
                m, w = f[fv]["distance_mean"], f[fv]["distance_worst"]
                rows.append((f"{style}: realism distance at follow {fv}, mean <= "
                             f"{T_DISTANCE_MEAN} and worst line <= {T_DISTANCE_WORST}",
                             f"{m:.2f} / {w:.2f} ({f[fv]['distance_worst_line']})",
                             m <= T_DISTANCE_MEAN and w <= T_DISTANCE_WORST))
        if "0" in f:
            m = f["0"]["distance_of_mean"]
            rows.append((f"{style}: realism distance at follow 0 <= {T_DISTANCE_FOLLOW0} (of the "
                         "mean over every line and seed, as latent_bank_follow0.py measures it)",
                         f"{m:.2f} (per line: mean {f['0']['distance_mean']:.2f})",
                         m <= T_DISTANCE_FOLLOW0))
        low = {k: v["kick_on_one"] for k, v in f.items() if float(k) <= 0.9}
        if low:
            worst = min(low, key=lambda k: low[k])
            rows.append((f"{style}: kick on beat 1 in >= {T_KICK_ON_ONE:.0%} of bars at every "
                         "follow <= 0.9", f"lowest {low[worst]:.2f} at follow {worst} (real "
                         f"{f[worst]['real_kick_on_one']:.2f})", low[worst] >= T_KICK_ON_ONE))
        if style in ("any", "rock"):
            bb = {k: v["backbeat"] for k, v in f.items() if float(k) <= 0.9}
            if bb:
                worst = min(bb, key=lambda k: bb[k])
                want = T_BACKBEAT_OF_REAL * f[worst]["real_backbeat"]
                rows.append((f"{style}: a backbeat (snare on 2 and 4) in at least the real "
                             "loops' share of bars at every follow <= 0.9 (this benchmark's "
                             "reading)", f"lowest {bb[worst]:.2f} at follow {worst} (real "
                             f"{want:.2f})", bb[worst] >= want))
        if "0.9" in f:
            c = f["0.9"]["covered"]
            rows.append((f"{style}: line onsets covered at follow 0.9 >= {T_COVERED:.0%}",
                         f"{c:.2f} (worst line {f['0.9']['covered_worst']:.2f})",
                         c >= T_COVERED))
        order = sorted(f, key=float)
        cov = [f[k]["covered"] for k in order]
        falls = [(f[a]["covered"] - f[b]["covered"], f"{a}->{b}: {f[a]['covered']:.3f}->"
                  f"{f[b]['covered']:.3f}") for a, b in zip(order, order[1:], strict=False)
                 if f[b]["covered"] < f[a]["covered"]]
        rows.append((f"{style}: covered share never falls as follow rises (by more than "
                     f"{T_COVERED_SLACK:g}: this benchmark's reading)",
                     " -> ".join(f"{c:.2f}" for c in cov)
                     + (f"; falls {'; '.join(t for _, t in falls)}" if falls else ""),
                     all(d <= T_COVERED_SLACK for d, _ in falls)))
        if "cells" in by:
            c = by["cells"]
            rows.append((f"{style}: <= {T_CELLS:g} of 288 cells change per 0.1 of follow",
                         f"max {c['max']:.1f}, mean {c['mean']:.1f} (worst line "
                         f"{c['worst_line']['cells']:.1f}: {c['worst_line']['line']} from "
                         f"{c['worst_line']['from']})", c["max"] <= T_CELLS))
        for fv, groups in by.get("mutes", {}).items():
            worst_g = max(groups, key=lambda g: groups[g]["over_real"])
            g = groups[worst_g]
            rows.append((f"{style}, follow {fv}: with a group removed, no remaining voice > "
                         f"{T_OVER_REAL}x its real per-loop count",
                         f"max {g['over_real']:.2f}x ({g['over_real_voice']} with {worst_g} "
                         "removed)", g["over_real"] <= T_OVER_REAL))
            kick = groups["kick"].get("low_end_kept")
            if kick is not None:
                rows.append((f"{style}, follow {fv}: a removed kick's downbeats (beats 1, 3) "
                             f"taken by the low/mid tom >= {T_LOW_END:.0%} (this benchmark's "
                             "reading)", f"{kick:.2f}", kick >= T_LOW_END))
            sn = groups["snare"]
            if sn.get("backbeat_moved") is not None and sn.get("ghosts_moved") is not None:
                rows.append((f"{style}, follow {fv}: a removed snare's backbeat moved >= "
                             f"{T_BACKBEAT_MOVED:.0%}, its ghost notes <= {T_GHOSTS_MOVED:.0%} "
                             "(this benchmark's reading)",
                             f"backbeat {sn['backbeat_moved']:.2f}, ghosts {sn['ghosts_moved']:.2f}",
                             sn["backbeat_moved"] >= T_BACKBEAT_MOVED
                             and sn["ghosts_moved"] <= T_GHOSTS_MOVED))
    return rows


# ---------------------------------------------------------------------------------------- output

def _fmt_follow(f: float) -> str:
    return f"{f:g}"


def markdown(res: dict[str, Any]) -> str:
    out: list[str] = []
    any_style = "any" if "any" in res["styles"] else next(iter(res["styles"]))
    by = res["styles"][any_style]
    out.append(f"**Style `{any_style}`** ({res['split']}, {len(res['lines'])} lines, "
               f"{res['bars']} bars, {len(next(iter(res['seeds'].values())))} seeds a line, first loop "
               "not counted)")
    out.append("")
    floor = res["real"][any_style].get("floor", {})
    if floor:
        out.append("Realism distance of real drumming (validation loops of the style against the "
                   "train means), for a line's mean over k independent loops: "
                   + ", ".join(f"k = {k}: {v:.2f}" for k, v in floor.items())
                   + ". A line here gets about k = 2 (two seeds; the loops of one render "
                   "vary around one pattern).")
    out.append("")
    out.append("| follow | realism distance per line: mean / worst (line) | of the mean | "
               "kick on beat 1 (worst line) | backbeat (real) | onsets covered (worst line) "
               "| hits/loop (real) | cells changed loop to loop |")
    out.append("|---|---|---|---|---|---|---|---|")
    for fv, r in sorted(by["follow"].items(), key=lambda kv: float(kv[0])):
        out.append(f"| {fv} | {r['distance_mean']:.2f} / {r['distance_worst']:.2f} "
                   f"({r['distance_worst_line']}) | {r['distance_of_mean']:.2f} | "
                   f"{r['kick_on_one']:.2f} "
                   f"({r['kick_on_one_worst']:.2f} {r['kick_on_one_worst_line']}) | "
                   f"{r['backbeat']:.2f} ({r['real_backbeat']:.2f}) | {r['covered']:.2f} "
                   f"({r['covered_worst']:.2f} {r['covered_worst_line']}) | "
                   f"{sum(r['hits_per_loop']):.1f} ({sum(r['real_hits_per_loop']):.1f}) | "
                   f"{r.get('loop_to_loop_cells', float('nan')):.1f} |")
    intervals = markdown_intervals(res, by)
    if intervals:
        out += [""] + intervals
    out.append("")
    out.append("Hits per loop per voice, style `" + any_style + "` (real GMD train loops last):")
    out.append("")
    out.append("| follow | " + " | ".join(VOICE_NAMES) + " |")
    out.append("|---|" + "---|" * len(VOICE_NAMES))
    real_row = None
    for fv, r in sorted(by["follow"].items(), key=lambda kv: float(kv[0])):
        out.append(f"| {fv} | " + " | ".join(f"{x:.1f}" for x in r["hits_per_loop"]) + " |")
        real_row = r["real_hits_per_loop"]
    if real_row is not None:
        out.append("| real | " + " | ".join(f"{x:.1f}" for x in real_row) + " |")
    kinds = sorted({i.rsplit("-", 1)[0] for i in res["lines"]})
    fols = [f for f in ("0.5", "0.9") if f in by["follow"]]
    if fols and len(kinds) > 1:
        out.append("")
        out.append(f"By kind of line, style `{any_style}` (means over the kind's lines):")
        out.append("")
        out.append("| kind | lines | " + " | ".join(
            f"distance {f} | kick on 1 at {f} | backbeat {f} | covered {f}" for f in fols) + " |")
        out.append("|---|---|" + "---|---|---|---|" * len(fols))
        for kind in kinds:
            ids = [i for i in res["lines"] if i.rsplit("-", 1)[0] == kind]
            cells_k = []
            for f in fols:
                rows = [by["follow"][f]["lines"][i] for i in ids]
                for key in ("distance", "kick_on_one", "backbeat", "covered"):
                    vals = [r[key] for r in rows if r[key] is not None]
                    cells_k.append(f"{np.mean(vals):.2f}" if vals else "-")
            out.append(f"| {kind} | {len(ids)} | " + " | ".join(cells_k) + " |")
    if "cells" in by:
        out.append("")
        out.append(f"Cells (of 288) changed per 0.1 of follow, style `{any_style}`, mean over "
                   "lines and seeds (max line):")
        out.append("")
        steps = by["cells"]["steps"]
        out.append("| " + " | ".join(f"{s['from']:g}-{s['to']:g}" for s in steps) + " |")
        out.append("|" + "---|" * len(steps))
        out.append("| " + " | ".join(f"{s['mean']:.1f} ({s['max_line']:.0f})" for s in steps)
                   + " |")
        if all("interval" in s for s in steps):
            out.append("| " + " | ".join(f"[{s['interval'][0]:.1f}, {s['interval'][1]:.1f}]"
                                         for s in steps) + " |")
            lo, hi = by["cells"]["max_interval"]
            out.append("")
            out.append(f"Second row: {BOOTSTRAP_LEVEL:.0%} bootstrap interval of the mean over "
                       f"lines; the largest step's mean {by['cells']['max']:.1f}, interval "
                       f"[{lo:.1f}, {hi:.1f}] (lines resampled, the maximum over steps taken "
                       "each time).")
    if len(res["styles"]) > 1:
        out.append("")
        out.append("Per style (real loops of that style):")
        out.append("")
        fols = [f for f in ("0", "0.5", "0.9") if f in by["follow"]]
        out.append("| style | " + " | ".join(f"distance {f} mean/worst" for f in fols)
                   + " | kick on 1 at 0.5 / 0.9 | backbeat 0.9 (real) | covered 0.9 | cells max |")
        out.append("|---|" + "---|" * len(fols) + "---|---|---|---|")
        for style, sb in res["styles"].items():
            f = sb["follow"]
            cells = f"{sb['cells']['max']:.1f}" if "cells" in sb else "-"

            def g(fv: str, key: str, f: dict[str, Any] = f) -> str:
                return f"{f[fv][key]:.2f}" if fv in f else "-"

            out.append(f"| {style} | " + " | ".join(
                f"{f[x]['distance_mean']:.2f} / {f[x]['distance_worst']:.2f}" for x in fols)
                + f" | {g('0.5', 'kick_on_one')} / {g('0.9', 'kick_on_one')} | "
                f"{g('0.9', 'backbeat')} ({g('0.9', 'real_backbeat')}) | "
                f"{g('0.9', 'covered')} | {cells} |")
    for split in ("validation", "test"):
        out += _against_table(res, split)
    for style, sb in res["styles"].items():
        for fv, groups in sb.get("mutes", {}).items():
            if style != any_style and len(res["styles"]) > 2:
                continue
            out.append("")
            out.append(f"Voice redistribution, style `{style}`, follow {fv}: hits per loop with "
                       "the group removed (nothing removed, then real):")
            out.append("")
            out.append("| removed | " + " | ".join(VOICE_NAMES)
                       + " | max x real (voice) | worst line | moved |")
            out.append("|---|" + "---|" * len(VOICE_NAMES) + "---|---|---|")
            base = sb["follow"][fv]["hits_per_loop"] if fv in sb["follow"] else None
            if base is not None:
                out.append("| none | " + " | ".join(f"{x:.1f}" for x in base) + " | | | |")
            real_r = res["real"][style]["hits_per_loop"]
            out.append("| real | " + " | ".join(f"{x:.1f}" for x in real_r) + " | | | |")
            for group, r in groups.items():
                rm = set(lm.group_voices(group))
                vcells = [("-" if i in rm else f"{x:.1f}") for i, x in enumerate(r["hits_per_loop"])]
                mv = ""
                if "low_end_kept" in r and r["low_end_kept"] is not None:
                    mv = f"downbeat kicks -> low/mid tom {r['low_end_kept']:.2f}"
                if r.get("backbeat_moved") is not None:
                    mv = (f"backbeat {r['backbeat_moved']:.2f}, ghosts "
                          f"{r['ghosts_moved']:.2f}")
                w = r["over_real_worst_line"]
                out.append(f"| {group} | " + " | ".join(vcells)
                           + f" | {r['over_real']:.2f} ({r['over_real_voice']}) | "
                           f"{w['ratio']:.1f} ({w['voice']}, {w['line']}) | {mv} |")
    out.append("")
    detail = res.get("detail_styles") or [any_style]
    rows = targets(res)
    out.append("Targets:")
    out.append("")
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    others: dict[str, list[tuple[str, str, bool]]] = {}
    for name, value, met in rows:
        style, _, what = name.partition(": ")
        if style in detail or "," in style:
            out.append(f"| {name} | {value} | {'met' if met else '**not met**'} |")
        else:
            others.setdefault(what, []).append((style, value, met))
    if others:
        out.append("")
        out.append("Targets, the other styles:")
        out.append("")
        out.append("| target | met | not met (measured) |")
        out.append("|---|---|---|")
        for what, got in others.items():
            yes = [st for st, _, m in got if m]
            no = [f"{st} ({v})" for st, v, m in got if not m]
            out.append(f"| {what} | {len(yes)} of {len(got)} | {'; '.join(no) or '-'} |")
    return "\n".join(out)


def _against_table(res: dict[str, Any], split: str) -> list[str]:
    """The table of `against_loops` for one split (none when it was not measured)."""
    tested = {st: sb[f"{split}_loops"] for st, sb in res["styles"].items()
              if f"{split}_loops" in sb}
    if not tested:
        return []
    out: list[str] = []
    fols = sorted({f for t in tested.values() for f in t.get("follow", {})}, key=float)
    out.append("")
    out.append("Issue 29 item 5: each style's realism distance against that style's real "
               f"GMD {split.upper()} loops (of the mean over every line and seed; 95 % bootstrap "
               f"interval over lines), and the real TRAIN loops' mean against the same {split} "
               "loops (no worse than that: met):")
    out.append("")
    out.append(f"| style | {split} loops | real train loops | " + " | ".join(
        f"follow {f}" for f in fols) + " |")
    out.append("|---|---|---|" + "---|" * len(fols))

    def cell(t: dict[str, Any], f: str) -> str:
        if f not in t.get("follow", {}):
            return "-"
        d = t["follow"][f]
        iv = (f" [{t['interval'][f][0]:.2f}, {t['interval'][f][1]:.2f}]"
              if f in t["interval"] else "")
        return (f"{d:.3f}{iv} "
                f"({'met' if d <= t['real_train'] else 'not met'})")

    for style, t in tested.items():
        if not t["loops"]:
            out.append(f"| {style} | 0 (none in the {split} split) | - | "
                       + " | ".join("-" for _ in fols) + " |")
            continue
        out.append(f"| {style} | {t['loops']} | {t['real_train']:.3f} | "
                   + " | ".join(cell(t, f) for f in fols) + " |")
    styles_t = [t for st, t in tested.items() if st != "any" and t["loops"]]
    if styles_t:
        out.append("| **mean over styles** | | "
                   f"{np.mean([t['real_train'] for t in styles_t]):.3f} | " + " | ".join(
                       f"{np.mean([t['follow'][f] for t in styles_t if f in t['follow']]):.3f}"
                       for f in fols) + " |")
    return out


def markdown_intervals(res: dict[str, Any], by: dict[str, Any]) -> list[str]:
    """The bootstrap intervals of a style's follows (none in a result made before them)."""
    rows = sorted(((fv, r) for fv, r in by["follow"].items() if "intervals" in r),
                  key=lambda kv: float(kv[0]))
    if not rows:
        return []

    def iv(r: dict[str, Any], key: str) -> str:
        if key not in r["intervals"]:
            return "-"
        lo, hi = r["intervals"][key]
        return f"{r[key]:.2f} [{lo:.2f}, {hi:.2f}]"

    out = [f"{BOOTSTRAP_LEVEL:.0%} bootstrap intervals over lines ({len(res['lines'])} lines "
           f"resampled with replacement, {BOOTSTRAP} resamples; the worst line is one line's "
           "figure, given without an interval):", "",
           "| follow | distance per line, mean [interval] | worst line | distance of the mean "
           "| kick on beat 1 | backbeat | onsets covered |", "|---|---|---|---|---|---|---|"]
    for fv, r in rows:
        out.append(f"| {fv} | {iv(r, 'distance_mean')} | {r['distance_worst']:.2f} "
                   f"({r['distance_worst_line']}) | {iv(r, 'distance_of_mean')} | "
                   f"{iv(r, 'kick_on_one')} | {iv(r, 'backbeat')} | {iv(r, 'covered')} |")
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores visible, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from grooverack.errors import GrooverackError
    from grooverack.model.runner import ModelRunner

    real = load_real()
    if args.against_test_loops or args.against_validation_loops:
        from grooverack.training.data import DEFAULT_GMD_ZIP

        gmd = Path(args.gmd) if args.gmd else DEFAULT_GMD_ZIP
        if not gmd.is_file():
            raise SystemExit(f"--against-*-loops: {gmd}: the GMD zip is missing; give it "
                             "with --gmd PATH")
    try:
        runner = ModelRunner(args.manifest, variant="int8")
    except GrooverackError as exc:
        raise SystemExit(f"bench_lines: --manifest: {exc}") from None
    offered = tuple(getattr(runner, "genres_offered", None) or runner.genres or ("any",))
    lines = load_corpus(CORPUS_PATH, args.split)
    if args.quick:
        lines = quick_subset(lines, QUICK_PER_KIND)
    if args.lines:
        want = {w.strip() for w in args.lines.split(",") if w.strip()}
        lines = [ln for ln in lines if ln.id in want or ln.kind in want]
        if not lines:
            raise SystemExit(f"--lines {args.lines}: no line of the {args.split} split matches")
    if args.styles:
        styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    else:
        styles = list(QUICK_STYLES if args.quick else offered)
    bad = [s for s in styles if s not in offered]
    if bad:
        raise SystemExit(f"--styles: {', '.join(bad)} not offered by the model; allowed: "
                         f"{', '.join(offered)}")
    follows = ([float(x) for x in args.follow.split(",")] if args.follow else list(FOLLOWS))
    if args.detail_styles == "all":
        detail = list(styles)
    else:
        detail = [s.strip() for s in (args.detail_styles or ",".join(DETAIL_STYLES)).split(",")
                  if s.strip() in styles]
    mute_follows = ([float(x) for x in args.mute_follow.split(",")] if args.mute_follow
                    else list(MUTE_FOLLOWS))
    follows_of: dict[str, list[float]] = {}
    for style in styles:
        fs = set(follows) if style in detail else set(STYLE_FOLLOWS)
        if style in detail and not args.no_sweep:
            fs |= set(SWEEP)
        if style in detail and not args.no_mutes:
            fs |= set(mute_follows)
        follows_of[style] = sorted(fs)
    sweep_styles = [] if args.no_sweep else detail
    mute_styles = [] if args.no_mutes else (detail[:1] if args.quick else detail)
    seeds = {ln.id: line_seeds(ln.id, args.seeds, args.first_seed, args.same_seeds)
             for ln in lines}
    cfg = RenderConfig(args.manifest, tuple(args.set or ()), args.bars, args.board,
                       args.fresh_model)
    tasks = plan(lines, follows_of, mute_styles, mute_follows, seeds)
    check_config(tasks[0], cfg)
    print(f"bench_lines: {len(lines)} lines ({args.split}), styles {', '.join(styles)}, "
          f"{len(tasks)} renders, {args.jobs} job(s)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    stored = load_renders(args.renders, cfg) if args.renders else {}
    todo = [t for t in tasks if _key(t) not in stored]
    if stored:
        print(f"  {len(tasks) - len(todo)} renders from {args.renders}", file=sys.stderr)
    renders = {**stored, **run_tasks(
        todo, cfg, args.jobs, checkpoint=None if not args.renders else
        (lambda done: save_renders(args.renders, cfg, {**stored, **done})))}
    if args.renders and todo:
        save_renders(args.renders, cfg, renders)
    seconds = time.perf_counter() - started
    res: dict[str, Any] = {
        "command": "python benchmarks/bench_lines.py " + " ".join(args.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "manifest": str(runner.manifest_path), "overrides": list(cfg.overrides),
        "split": args.split, "quick": args.quick, "bars": args.bars, "seeds": seeds,
        "board": args.board, "renders": len(tasks), "seconds": round(seconds, 1),
        "lines": [ln.id for ln in lines], "voices": list(VOICE_NAMES),
        "detail_styles": detail, "real": {s: real[s] for s in styles}, "styles": {}}
    for style in styles:
        sb: dict[str, Any] = {"follow": {}}
        shown = set(follows) | set(mute_follows) if style in detail else set(STYLE_FOLLOWS)
        for f in follows_of[style]:
            if f in shown:
                sb["follow"][_fmt_follow(f)] = measure_follow(renders, lines, style, f, seeds,
                                                              real)
        if style in sweep_styles:
            sb["cells"] = measure_cells(renders, lines, style, seeds)
            sb["covered_sweep"] = {
                _fmt_follow(f): measure_follow(renders, lines, style, f, seeds, real)["covered"]
                for f in SWEEP}
        if style in mute_styles:
            sb["mutes"] = {_fmt_follow(f): measure_mutes(renders, lines, style, f, seeds, real)
                           for f in mute_follows}
        res["styles"][style] = sb
    if args.against_test_loops:
        against_test_loops(res, args.gmd, args.cache)
    if args.against_validation_loops:
        against_loops(res, args.gmd, args.cache, "validation")
    res["targets"] = [{"target": n, "measured": v, "met": m} for n, v, m in targets(res)]
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_PER_KIND} lines of each kind, styles "
                        f"{', '.join(QUICK_STYLES)}, removals with the first style only")
    parser.add_argument("--follow", help=f"follow values, comma-separated (default "
                        f"{','.join(map(_fmt_follow, FOLLOWS))}; the 0.1 sweep is added)")
    parser.add_argument("--styles", help="styles, comma-separated (default: every style the "
                        "model offers; --quick: any,rock)")
    parser.add_argument("--detail-styles", help="styles measured at every follow, with the 0.1 "
                        f"sweep and the removals (default {','.join(DETAIL_STYLES)}; 'all'); "
                        f"the others at follow {', '.join(map(_fmt_follow, STYLE_FOLLOWS))}")
    parser.add_argument("--lines", help="only these line ids or kinds, comma-separated")
    parser.add_argument("--manifest", help="model manifest (default: the shipped one)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="a config override for every render, as `grooverack sim --set` "
                        "(follow, genre and mute.* are the benchmark's own)")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--same-seeds", action="store_true",
                        help="seeds first-seed.. for every line (default: each line its own "
                        "seeds, so follow 0's A/B patterns are not the same few on every line)")
    parser.add_argument("--bars", type=int, default=BARS)
    parser.add_argument("--board", default="direct",
                        help="direct (default) or sim (over the emulated chips; slower)")
    parser.add_argument("--fresh-model", action="store_true",
                        help="load the model's files for every render as `grooverack sim` "
                        "does (the same patterns; slower)")
    parser.add_argument("--mute-follow", help="follows of the removal measures (default 0.9)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the 0.1 follow sweep")
    parser.add_argument("--no-mutes", action="store_true", help="skip the removal measures")
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--renders", help="an .npz of raw renders: those already in it (made "
                        "with the same model, overrides, bars and board) are not played again, "
                        "the new ones are added")
    parser.add_argument("--write-readme", action="store_true",
                        help="put the table into benchmarks/README.md")
    parser.add_argument("--table", metavar="JSON",
                        help="print (and with --write-readme, write) the table of a --json "
                        "result, playing nothing")
    parser.add_argument("--export", metavar="DIR",
                        help="write each line of the split as a MIDI file (--bars long) for "
                        "`grooverack sim --input FILE`, playing nothing")
    parser.add_argument("--build-corpus", action="store_true",
                        help="rebuild lines-corpus.json from music21's corpus, then stop")
    parser.add_argument("--build-real", action="store_true",
                        help="rebuild gmd-loop-means.json from the GMD zip, then stop")
    parser.add_argument("--gmd", help="GMD zip for --build-real (default: shared/datasets/gmd)")
    parser.add_argument("--cache", help="loop cache folder for --build-real and "
                        "--against-test-loops")
    parser.add_argument("--against-test-loops", action="store_true",
                        help="issue 29 item 5: each style's distance (of the mean over lines) "
                        "against that style's GMD TEST loops, next to the real train loops' "
                        "(needs the GMD zip, --gmd; read once, at the end)")
    parser.add_argument("--against-validation-loops", action="store_true",
                        help="the same against each style's GMD VALIDATION loops (for "
                        "choosing; a style with none there has no figure: use the train means, "
                        "the distance of the mean); with --table, added to a saved result")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("grooverack").setLevel(logging.ERROR)
    if args.build_corpus:
        lines = write_corpus()
        print(f"wrote {CORPUS_PATH}: {len(lines)} lines")
        return 0
    if args.build_real:
        build_real(args.gmd, args.cache)
        print(f"wrote {REAL_PATH}")
        return 0
    if args.export:
        export(Path(args.export), args.split, args.bars)
        return 0
    if args.table:
        res = json.loads(Path(args.table).read_text(encoding="utf-8"))
        if args.against_validation_loops:
            against_loops(res, args.gmd, args.cache, "validation")
        table = markdown(res)
        print(table)
        if args.write_readme:
            write_readme(res, table)
        return 0
    if args.bars < 4 or args.bars % 2:
        raise SystemExit(f"--bars {args.bars}: allowed: an even number of bars, at least 4")
    res = measure(args)
    table = markdown(res)
    print(table)
    print(f"\n{res['renders']} renders in {res['seconds']:.0f} s; {res['machine']}",
          file=sys.stderr)
    if args.json:
        from grooverack.storage import atomic_write_text

        atomic_write_text(args.json, json.dumps(res, indent=1) + "\n")
    if args.write_readme:
        write_readme(res, table)
    return 0


def export(folder: Path, split: str, bars: int) -> None:
    """Each line of `split` as the MIDI file `grooverack sim --input FILE` plays the same way
    (`bars` bars at the line's tempo: `grooverack sim --input FILE --board direct`)."""
    from grooverack.sim.patch import build_patch
    from grooverack.sim.render import input_midi
    from grooverack.storage import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    lines = load_corpus(CORPUS_PATH, split)
    for line in lines:
        patch = build_patch(line.source(), bpm=line.bpm, bars=bars)
        atomic_write_bytes(folder / f"{line.id}.mid", input_midi(patch.onsets, line.bpm))
    print(f"wrote {len(lines)} MIDI files ({split}) to {folder}")


def write_readme(res: dict[str, Any], table: str) -> None:
    from grooverack.storage import write_marked_section

    text = "\n".join([
        "### Measured",
        "",
        f"`{res['command']}` on {res['date']}: {res['machine']}; load average at the end "
        f"{', '.join(map(str, res['load_average']))}; {res['renders']} renders in "
        f"{res['seconds']:.0f} s. Model: `{Path(res['manifest']).name}` (int8)"
        + (f", overrides {', '.join(res['overrides'])}" if res["overrides"] else "") + "."
        + (f" {res['note']}." if res.get("note") else ""),
        "",
        table])
    write_marked_section(HERE / "README.md", "bench_lines_results", text)


if __name__ == "__main__":
    raise SystemExit(main())
