"""Groove MIDI Dataset zip -> cached 2-bar loops (hits, velocities, offsets, groove). numpy + mido.

How loops are cut (the choice that reproduces the literature's counts, see `cut_loops`):

- Only rows of `info.csv` with `beat_type == "beat"` and `time_signature == "4-4"` are used, and a
  file whose own MIDI time signature is not 4/4 is skipped.
- Positions are musical: a note at absolute tick `t` sits at `4 * t / ticks_per_beat` 16th steps.
  In a standard MIDI file the tick is the musical clock; tempo changes move seconds, not beats, so
  reading positions in ticks honours every tempo change (a loader that converts seconds back with
  one BPM drifts after a change).
- The file length in bars is `round(last note event / 1 bar)` (a final bar counts when at least half
  of it is played), and 2-bar windows start on every bar: `bars - 1` windows per file. This is the
  sliding window with a 1-bar hop of the TFDS `groove/2bar` cut the published models were trained
  on; on v1.0.0 it gives 16,196 / 2,010 / 2,049 loops against the published 16,195 / 2,021 / 2,054.
  Windows with fewer than `MIN_HITS` hits are dropped (none are in GMD beats; it guards silence).
- Each hit goes to `step = floor(pos - start + 0.5)`, `offset = pos - start - step` in [-0.5, 0.5).
  A window owns positions `[start - 0.5, start + 31.5)`: a hit played up to half a 16th early before
  the window's first downbeat is step 0 with a negative offset. The published cut (split by time)
  lost those; here they are kept, in every window.
- Same voice, same step: the louder hit wins (on equal velocity, the earlier one).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from grooverack.errors import DataError
from grooverack.voices import NOTE_TO_VOICE, NUM_VOICES, STEPS, STEPS_PER_BAR, VOICE_NAMES

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1
MIN_HITS = 1  # a window with fewer hits than this is not a loop
SPLITS = ("train", "validation", "test")

# The GMD primary styles (first part of info.csv's "style", e.g. "funk/groove1"), sorted.
STYLES: tuple[str, ...] = (
    "afrobeat", "afrocuban", "blues", "country", "dance", "funk", "gospel", "highlife", "hiphop",
    "jazz", "latin", "middleeastern", "neworleans", "pop", "punk", "reggae", "rock", "soul",
)

_REPO = Path(__file__).resolve().parents[3]
GMD_NAME = "groove-v1.0.0-midionly.zip"
GMD_URL = "https://magenta.tensorflow.org/datasets/groove"
ENV_GMD = "GROOVERACK_GMD"


def _in_checkout() -> bool:
    return (_REPO / "pyproject.toml").is_file() and (_REPO / "firmware").is_dir()


def _default_gmd_zip() -> Path:
    """`$GROOVERACK_GMD`, else next to a checkout (`../shared/datasets/gmd/`), else in the
    user's data folder (an installed package has no checkout around it)."""
    env = os.environ.get(ENV_GMD, "").strip()
    if env:
        return Path(env).expanduser()
    if _in_checkout():
        return _REPO.parent / "shared" / "datasets" / "gmd" / GMD_NAME
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "grooverack" / GMD_NAME


DEFAULT_GMD_ZIP = _default_gmd_zip()
DEFAULT_CACHE_DIR = (_REPO / ".cache" / "gmd" if _in_checkout()
                     else Path.home() / ".cache" / "grooverack" / "gmd")

# Published shares of hits per voice in GMD (reference, for the summary printout).
REFERENCE_HIT_SHARE = {
    "kick": 0.196, "snare": 0.30, "closed_hat": 0.265, "open_hat": 0.032, "low_tom": 0.036,
    "mid_tom": 0.032, "high_tom": 0.003, "crash": 0.020, "ride": 0.115,
}
PUBLISHED_COUNTS = {"train": 16195, "validation": 2021, "test": 2054}
_ARRAYS = ("hits", "velocities", "offsets", "groove", "style", "source", "bpm")
# The cache file's own format: 2 added each loop's tempo (info.csv's bpm). The loops themselves are
# those of PIPELINE_VERSION, so the data hash (what a model was trained on) did not change.
CACHE_FORMAT = 2


@dataclass
class Loops:
    """N two-bar loops: hits/velocities/offsets [N,32,9], groove [N,32,3] float32, style [N],
    bpm [N] float32 (the performance's tempo from info.csv; 0 = unknown)."""

    hits: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    groove: np.ndarray
    style: np.ndarray
    source: list[str]
    bpm: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.bpm is None:
            self.bpm = np.zeros(len(self.hits), np.float32)
        self.bpm = np.asarray(self.bpm, dtype=np.float32)
        if self.bpm.shape != (len(self.hits),):
            raise ValueError(f"bpm must be [{len(self.hits)}], got {list(self.bpm.shape)}")

    def __len__(self) -> int:
        return int(self.hits.shape[0])

    @classmethod
    def empty(cls) -> Loops:
        z = np.zeros((0, STEPS, NUM_VOICES), np.float32)
        return cls(z, z.copy(), z.copy(), np.zeros((0, STEPS, 3), np.float32),
                   np.zeros(0, np.int64), [])


def make_groove(hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Collapse drums [...,32,9] to the groove [...,32,3]: hit if any voice hits, the maximum
    velocity among the hitting voices, and the offset of the loudest hit (first voice on a tie)."""
    hits = np.asarray(hits, np.float32)
    on = hits > 0.5
    vel = np.where(on, np.asarray(velocities, np.float32), -1.0)
    loudest = np.argmax(vel, axis=-1)[..., None]
    any_hit = on.any(axis=-1)
    g_vel = np.where(any_hit, np.take_along_axis(vel, loudest, axis=-1)[..., 0], 0.0)
    g_off = np.where(any_hit,
                     np.take_along_axis(np.asarray(offsets, np.float32), loudest, axis=-1)[..., 0],
                     0.0)
    return np.stack([any_hit.astype(np.float32), g_vel, g_off], axis=-1).astype(np.float32)


# ---------------------------------------------------------------------------------------- MIDI


def parse_midi(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Drum hits of a MIDI file: (position in 16th steps, voice, velocity 0..1) sorted by position,
    and the position of the last note event (note on or off) in 16ths.

    Raises DataError naming the file when it cannot be read or is not in 4/4 throughout."""
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises several types for broken files
        raise DataError(f"{name}: not a readable MIDI file ({exc})") from exc
    if mid.type == 2:
        raise DataError(f"{name}: MIDI type 2 (asynchronous tracks) is not supported")
    tpb = mid.ticks_per_beat
    if not tpb or tpb <= 0:
        raise DataError(f"{name}: ticks_per_beat {tpb!r} is not a positive number (SMPTE?)")
    ticks = 0
    pos: list[int] = []
    voices: list[int] = []
    vels: list[int] = []
    last = 0
    unknown: set[int] = set()
    # merge_tracks keeps delta times in ticks; positions stay musical across tempo changes.
    for msg in mido.merge_tracks(mid.tracks):
        ticks += msg.time
        if msg.type == "time_signature" and (msg.numerator, msg.denominator) != (4, 4):
            raise DataError(f"{name}: time signature {msg.numerator}/{msg.denominator} at tick "
                            f"{ticks}; only 4/4 is used")
        if msg.type in ("note_on", "note_off"):
            last = ticks
            if msg.type == "note_on" and msg.velocity > 0:
                voice = NOTE_TO_VOICE.get(msg.note)
                if voice is None:
                    unknown.add(msg.note)
                    continue
                pos.append(ticks)
                voices.append(voice)
                vels.append(msg.velocity)
    if unknown:
        log.debug("%s: notes outside the 9-voice mapping ignored: %s", name, sorted(unknown))
    steps_per_tick = 4.0 / tpb
    p = np.asarray(pos, np.float64) * steps_per_tick
    order = np.argsort(p, kind="stable")
    return (p[order], np.asarray(voices, np.int64)[order],
            np.asarray(vels, np.float64)[order] / 127.0, last * steps_per_tick)


def cut_loops(pos: np.ndarray, voice: np.ndarray, vel: np.ndarray, end: float,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """2-bar windows with a 1-bar hop (see the module doc). Returns hits, velocities, offsets
    [W,32,9] float32 and the starting bar of each window kept."""
    bars = int(np.floor(end / STEPS_PER_BAR + 0.5))
    out_h, out_v, out_o, starts = [], [], [], []
    # Louder first, then earlier: the first hit written into a cell is the one kept.
    rank = np.lexsort((pos, -vel))
    pos, voice, vel = pos[rank], voice[rank], vel[rank]
    for bar in range(max(0, bars - 1)):
        start = bar * STEPS_PER_BAR
        rel = pos - start
        inside = (rel >= -0.5) & (rel < STEPS - 0.5)
        if int(inside.sum()) < MIN_HITS:
            continue
        r, v, ve = rel[inside], voice[inside], vel[inside]
        step = np.floor(r + 0.5).astype(np.int64)
        off = r - step
        cell = step * NUM_VOICES + v
        _, first = np.unique(cell, return_index=True)  # first occurrence = loudest, earliest
        h = np.zeros((STEPS, NUM_VOICES), np.float32)
        vv = np.zeros_like(h)
        oo = np.zeros_like(h)
        s, vo = step[first], v[first]
        h[s, vo] = 1.0
        vv[s, vo] = ve[first]
        oo[s, vo] = off[first]
        out_h.append(h)
        out_v.append(vv)
        out_o.append(oo)
        starts.append(bar)
    if not starts:
        z = np.zeros((0, STEPS, NUM_VOICES), np.float32)
        return z, z.copy(), z.copy(), []
    offsets = np.stack(out_o)
    # float32 rounding must not push an offset onto +0.5
    np.minimum(offsets, np.nextafter(np.float32(0.5), np.float32(0)), out=offsets)
    return np.stack(out_h), np.stack(out_v), offsets, starts


# ------------------------------------------------------------------------------------- the zip


def _info_rows(zf: zipfile.ZipFile, zip_path: Path) -> tuple[str, list[dict[str, str]]]:
    infos = sorted((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "info.csv"), key=len)
    if not infos:
        raise DataError(f"{zip_path}: no info.csv inside; is this the GMD zip?")
    prefix = infos[0][: -len("info.csv")]
    with zf.open(infos[0]) as f:
        rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
    need = {"style", "beat_type", "time_signature", "midi_filename", "split"}
    if rows and not need <= set(rows[0]):
        raise DataError(f"{zip_path}:{infos[0]}: missing columns "
                        f"{sorted(need - set(rows[0]))}; has {sorted(rows[0])}")
    return prefix, rows


def build_splits(gmd_zip: str | Path) -> dict[str, Loops]:
    """Parse the zip in place (nothing is unpacked) into loops per official split."""
    gmd_zip = Path(gmd_zip)
    parts: dict[str, list] = {s: [] for s in SPLITS}
    with zipfile.ZipFile(gmd_zip) as zf:
        prefix, rows = _info_rows(zf, gmd_zip)
        for row in rows:
            if row["beat_type"] != "beat" or row["time_signature"] != "4-4":
                continue
            split = row["split"]
            if split not in parts:
                raise DataError(f"{gmd_zip}:info.csv: split {split!r} of "
                                f"{row['midi_filename']}; allowed: {', '.join(SPLITS)}")
            primary = row["style"].split("/")[0]
            if primary not in STYLES:
                raise DataError(f"{gmd_zip}:info.csv: style {row['style']!r} of "
                                f"{row['midi_filename']}; allowed primaries: {', '.join(STYLES)}")
            member = prefix + row["midi_filename"]
            try:
                data = zf.read(member)
            except KeyError:
                raise DataError(f"{gmd_zip}: {member} listed in info.csv is missing") from None
            try:
                pos, voice, vel, end = parse_midi(data, f"{gmd_zip}:{member}")
            except DataError as exc:
                log.warning("skipped: %s", exc)
                continue
            try:
                bpm = float(row.get("bpm") or 0.0)
            except ValueError:
                raise DataError(f"{gmd_zip}:info.csv: bpm {row['bpm']!r} of "
                                f"{row['midi_filename']} is not a number") from None
            h, v, o, starts = cut_loops(pos, voice, vel, end)
            if starts:
                parts[split].append((h, v, o, STYLES.index(primary),
                                     [f"{row['midi_filename']}:{b:03d}" for b in starts], bpm))
    out = {}
    for split, items in parts.items():
        if not items:
            out[split] = Loops.empty()
            continue
        hits = np.concatenate([i[0] for i in items])
        vels = np.concatenate([i[1] for i in items])
        offs = np.concatenate([i[2] for i in items])
        style = np.concatenate([np.full(len(i[4]), i[3], np.int64) for i in items])
        bpm = np.concatenate([np.full(len(i[4]), i[5], np.float32) for i in items])
        out[split] = Loops(hits, vels, offs, make_groove(hits, vels, offs), style,
                           [s for i in items for s in i[4]], bpm)
    return out


# ----------------------------------------------------------------------------------- the cache


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hash(gmd_zip: str | Path) -> str:
    """The cache key, also written into exported models: sha256 of the zip + pipeline version."""
    return hashlib.sha256(f"{file_sha256(gmd_zip)}:v{PIPELINE_VERSION}".encode()).hexdigest()


def _save_cache(path: Path, splits: dict[str, Loops]) -> None:
    from grooverack.storage import atomic_write_bytes

    arrays = {}
    for split, loops in splits.items():
        for key in _ARRAYS:
            value = getattr(loops, key)
            arrays[f"{split}/{key}"] = np.asarray(value, dtype=str) if key == "source" else value
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_cache(path: Path) -> dict[str, Loops]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for split in SPLITS:
                a = {k: npz[f"{split}/{k}"] for k in _ARRAYS}
                out[split] = Loops(a["hits"], a["velocities"], a["offsets"], a["groove"],
                                   a["style"].astype(np.int64), [str(s) for s in a["source"]],
                                   a["bpm"].astype(np.float32))
            return out
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable cache ({exc})") from exc


def load_splits(gmd_zip: str | Path | None = None,
                cache_dir: str | Path | None = None) -> dict[str, Loops]:
    """{"train", "validation", "test"} -> Loops, from the cache when it matches the zip's hash and
    the pipeline version, else parsed from the zip and cached."""
    gmd_zip = Path(gmd_zip) if gmd_zip is not None else DEFAULT_GMD_ZIP
    if not gmd_zip.is_file():
        raise DataError(f"{gmd_zip}: Groove MIDI Dataset zip not found\n  fix: download "
                        f"{GMD_NAME} from {GMD_URL} and give it with --gmd PATH, or put it "
                        f"there, or set ${ENV_GMD} to its path")
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    path = cache_dir / f"gmd-{data_hash(gmd_zip)[:16]}-v{PIPELINE_VERSION}c{CACHE_FORMAT}.npz"
    if path.is_file():
        try:
            return _load_cache(path)
        except DataError as exc:
            log.warning("%s; rebuilding it", exc)
    splits = build_splits(gmd_zip)
    _save_cache(path, splits)
    log.info("cached %s", path)
    return splits


# --------------------------------------------------------------------------------- the summary


def summary(splits: dict[str, Loops]) -> str:
    lines = ["split        loops  published  hits/loop  groove onsets/loop"]
    for split in SPLITS:
        n = len(splits[split])
        per = splits[split].hits.sum() / max(n, 1)
        onsets = splits[split].groove[..., 0].sum() / max(n, 1)
        lines.append(f"{split:<12}{n:>6}{PUBLISHED_COUNTS[split]:>11}{per:>11.1f}{onsets:>20.1f}")
    train = splits["train"]
    lines.append("")
    lines.append("train style     loops")
    counts = np.bincount(train.style, minlength=len(STYLES))
    for i in np.argsort(-counts, kind="stable"):
        if counts[i]:
            lines.append(f"{STYLES[i]:<14}{counts[i]:>7}")
    all_hits = np.concatenate([splits[s].hits for s in SPLITS])
    per_voice = all_hits.sum(axis=(0, 1))
    share = per_voice / max(per_voice.sum(), 1)
    early = sum(int(((splits[s].hits[:, 0] > 0) & (splits[s].offsets[:, 0] < 0)).sum())
                for s in SPLITS)
    lines.append("")
    lines.append("voice        share  reference")
    for name, value in zip(VOICE_NAMES, share, strict=True):
        lines.append(f"{name:<12}{value:>6.1%}{REFERENCE_HIT_SHARE[name]:>11.1%}")
    lines.append("")
    lines.append(f"early hits kept on step 0 (negative offset): {early} "
                 f"({early / max(per_voice.sum(), 1):.1%} of all hits)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grooverack.training.data",
                                     description="build the GMD loop cache and summarise it")
    parser.add_argument("--gmd", metavar="PATH", default=None,
                        help=f"groove-v1.0.0-midionly.zip (default {DEFAULT_GMD_ZIP})")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help=f"where the npz cache lives (default {DEFAULT_CACHE_DIR})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        splits = load_splits(args.gmd, args.cache_dir)
    except DataError as exc:
        print(f"grooverack data: {exc}", file=sys.stderr)
        return 2
    print(summary(splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
