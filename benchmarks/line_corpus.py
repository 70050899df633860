"""The sequencer lines of the line benchmark (`bench_lines.py`, issue 29): what a Eurorack player
patches into the module's gate + pitch inputs, kept apart from the tests (no test reads them).

Kinds (each line 2 bars of 4/4 on the 16th grid unless its cycle says otherwise, at a tempo drawn
from 70-180 BPM):
- `bach_soprano`, `bach_bass`: a 2-bar window of a Bach chorale's soprano or bass part;
- `folk`: a 2-bar window of a fiddle tune (Ryan's Mammoth Collection, 1883; O'Neill's Music of
  Ireland, 1903) in 2/4, 4/4 or 2/2;
- `rag`: a 2-bar window of the top line of Joplin's Maple Leaf Rag (1899);
- `stage`: a generated stage-sequencer line (pulse counts, gate modes single/multi/hold/rest,
  ratchets, gate lengths, octave jumps), as `grooverack.sim.sources.builtin_line` but seeded;
- `euclid`: `euclid:K:N:R` through `grooverack.sim.sources.load_source`, as `grooverack sim
  --input euclid:K:N:R` plays it;
- `acid`: a generated 16-step acid line (rests, octave jumps, slides = the gate held into the
  next note, so no new onset; accents are kept as the note's velocity, which a gate + pitch
  patch does not carry).

The melodies come from music21's bundled corpus (music21 is BSD; the compositions are in the
public domain). The Essen folksong collection is left out: its encodings are licensed for
non-commercial use only. music21 is needed only to build the corpus (`--build-corpus`); the
built corpus is data (`lines-corpus.json`), so a benchmark run needs neither music21 nor a
network.

Split: whole pieces (a chorale's soprano and bass, a tune) go to one side, alternating after a
seeded shuffle within each kind: `validation` (for choosing) and `test` (read once at the end).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grooverack.sim.sources import InputNote, Source, load_source
from grooverack.storage import atomic_write_text

CORPUS_PATH = Path(__file__).resolve().parent / "lines-corpus.json"
CORPUS_FORMAT = 1
SEED = 29  # the number: every draw of the corpus comes from this seed
BPM_RANGE = (70, 180)
WINDOW_STEPS = 32  # 2 bars of 4/4
KINDS = ("bach_soprano", "bach_bass", "folk", "rag", "stage", "euclid", "acid")
SPLITS = ("validation", "test")

CHORALES = 12  # each gives a soprano and a bass line
FOLK_TUNES = 20
RAG_WINDOWS = 4
GENERATED = 14  # stage and acid lines each
EUCLID_SPECS = ("euclid:3:8:0", "euclid:5:8:0", "euclid:5:8:2", "euclid:3:8:3",
                "euclid:5:16:0", "euclid:7:16:0", "euclid:7:16:3", "euclid:9:16:0",
                "euclid:11:16:2", "euclid:13:16:0", "euclid:5:16:4", "euclid:7:16:8",
                "euclid:4:12:0", "euclid:7:32:0")
# sparse lines (few onsets a bar, cycles across the bar) added to the VALIDATION split only, after
# the split above was drawn (issue 29: the worst line at follow 0.9 was a sparse one, and the
# validation half had none under 10 onsets a loop); they keep the split's draws as they were
SPARSE_VALIDATION_SPECS = ("euclid:2:16:0", "euclid:3:16:0", "euclid:4:16:2", "euclid:3:12:0",
                           "euclid:5:12:0", "euclid:5:32:2")


@dataclass(frozen=True)
class Line:
    """One line of the corpus: `notes` are (step, length, MIDI note, velocity) over `cycle_steps`."""

    id: str
    kind: str
    origin: str
    split: str
    bpm: float
    cycle_steps: float
    notes: tuple[tuple[float, float, int, float], ...]
    group: str = ""  # lines of one piece share a group (and a split)

    def source(self) -> Source:
        """The line as a `grooverack.sim.sources.Source`: what `grooverack sim --input` plays."""
        return Source(self.id, tuple(InputNote(s, ln, n, v) for s, ln, n, v in self.notes),
                      self.cycle_steps)

    def onset_steps(self) -> list[float]:
        return [n[0] for n in self.notes]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "origin": self.origin, "split": self.split,
                "group": self.group, "bpm": self.bpm, "cycle_steps": self.cycle_steps,
                "notes": [list(n) for n in self.notes]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Line:
        return cls(d["id"], d["kind"], d["origin"], d["split"], float(d["bpm"]),
                   float(d["cycle_steps"]),
                   tuple((float(s), float(ln), int(n), float(v)) for s, ln, n, v in d["notes"]),
                   d.get("group", ""))


# ------------------------------------------------------------------------------- music21 windows

def _score_notes(part: Any) -> list[tuple[float, float, int]]:
    """(offset in quarters, length in quarters, highest MIDI note) of each onset of a part, ties
    merged, chords reduced to their top note, grace notes dropped."""
    notes: list[tuple[float, float, int]] = []
    for el in part.stripTies().flatten().notes:
        length = float(el.quarterLength)
        if length <= 0:
            continue
        pitch = max(p.midi for p in el.pitches) if el.isChord else el.pitch.midi
        notes.append((float(el.offset), length, int(pitch)))
    notes.sort()
    return notes


def _binary_bars(part: Any) -> list[float]:
    """Offsets (quarters) of the complete measures of a part in a binary meter (2/4, 4/4, 2/2)."""
    from music21 import meter, stream

    out = []
    for m in part.getElementsByClass(stream.Measure):
        ts = m.timeSignature or m.getContextByClass(meter.TimeSignature)
        if ts is None or ts.ratioString not in ("2/4", "4/4", "2/2"):
            continue
        if abs(float(m.duration.quarterLength) - float(ts.barDuration.quarterLength)) > 1e-6:
            continue  # a pickup or a short last bar
        out.append(float(m.offset))
    return out


def _window(notes: list[tuple[float, float, int]], start: float
            ) -> tuple[tuple[float, float, int, float], ...] | None:
    """The notes of 8 quarters from `start` quantised to 16ths: (step, length, note, velocity),
    or None when the window has fewer than 4 onsets."""
    out: dict[int, tuple[float, float, int, float]] = {}
    end = start + WINDOW_STEPS / 4
    for offset, length, pitch in notes:
        if start - 1e-6 <= offset < end - 1e-6:
            step = int(round((offset - start) * 4))
            if step >= WINDOW_STEPS or step in out:
                continue
            steps = max(0.5, min(length * 4, WINDOW_STEPS - step))
            out[step] = (float(step), round(steps * 0.9, 3), pitch, 0.8)  # legato, a short gap
    if len(out) < 4:
        return None
    return tuple(out[s] for s in sorted(out))


def _windows(part: Any, rng: random.Random, count: int) -> list[tuple[float, tuple[Any, ...]]]:
    """Up to `count` non-overlapping 2-bar windows starting on a complete bar, chosen by `rng`."""
    notes = _score_notes(part)
    bars = _binary_bars(part)
    if not notes or not bars:
        return []
    last = notes[-1][0] + notes[-1][1]
    starts = [b for b in bars if b + WINDOW_STEPS / 4 <= last + 1e-6]
    # a window starts on a bar a whole 4/4 bar apart from the first complete bar (2/4 pairs)
    if starts:
        first = starts[0]
        starts = [b for b in starts if abs(((b - first) / 4) - round((b - first) / 4)) < 1e-6]
    rng.shuffle(starts)
    chosen: list[tuple[float, tuple[Any, ...]]] = []
    for s in starts:
        if any(abs(s - c) < WINDOW_STEPS / 4 for c, _ in chosen):
            continue
        w = _window(notes, s)
        if w is not None:
            chosen.append((s, w))
        if len(chosen) == count:
            break
    return chosen


def _bach(rng: random.Random) -> list[dict[str, Any]]:
    from music21 import corpus

    paths = sorted(p for p in corpus.getComposer("bach") if p.name.startswith("bwv"))
    rng.shuffle(paths)
    out: list[dict[str, Any]] = []
    pieces = 0
    for path in paths:
        if pieces == CHORALES:
            break
        score = corpus.parse(path)
        parts = {p.partName: p for p in score.parts}
        if "Soprano" not in parts or "Bass" not in parts:
            continue
        made = []
        for voice, kind in (("Soprano", "bach_soprano"), ("Bass", "bach_bass")):
            w = _windows(parts[voice], rng, 1)
            if w:
                start, notes = w[0]
                made.append({"kind": kind, "origin": f"bach/{path.stem} {voice.lower()}, "
                             f"quarters {start:g}-{start + 8:g}", "group": path.stem,
                             "notes": notes, "cycle_steps": WINDOW_STEPS})
        if len(made) == 2:
            out += made
            pieces += 1
    return out


def _folk(rng: random.Random) -> list[dict[str, Any]]:
    from music21 import corpus

    tunes: list[tuple[str, Any]] = []
    for path in sorted(corpus.getComposer("ryansMammoth")):
        tunes.append((f"ryansMammoth/{path.stem}", path))
    rng.shuffle(tunes)
    out: list[dict[str, Any]] = []
    want_ryan = FOLK_TUNES * 2 // 3
    for name, path in tunes:
        if len(out) == want_ryan:
            break
        score = corpus.parse(path)
        part = score.parts[0] if score.parts else score
        w = _windows(part, rng, 1)
        if w:
            start, notes = w[0]
            out.append({"kind": "folk", "origin": f"{name}, quarters {start:g}-{start + 8:g}",
                        "group": name, "notes": notes, "cycle_steps": WINDOW_STEPS})
    opus = corpus.parse(sorted(corpus.getComposer("oneills1850"))[0])
    scores = list(opus.scores)
    rng.shuffle(scores)
    for score in scores:
        if len(out) == FOLK_TUNES:
            break
        part = score.parts[0] if score.parts else score
        w = _windows(part, rng, 1)
        if w:
            title = (score.metadata.title if score.metadata else "") or "tune"
            start, notes = w[0]
            name = f"oneills1850/{title}"
            out.append({"kind": "folk", "origin": f"{name}, quarters {start:g}-{start + 8:g}",
                        "group": name, "notes": notes, "cycle_steps": WINDOW_STEPS})
    return out


def _rag(rng: random.Random) -> list[dict[str, Any]]:
    from music21 import corpus

    score = corpus.parse("joplin/maple_leaf_rag")
    out = []
    for start, notes in _windows(score.parts[0], rng, RAG_WINDOWS):
        out.append({"kind": "rag", "origin": f"joplin/maple_leaf_rag top line, quarters "
                    f"{start:g}-{start + 8:g}", "group": f"rag-{start:g}", "notes": notes,
                    "cycle_steps": WINDOW_STEPS})
    return out


# ----------------------------------------------------------------------------- generated lines

_SCALES = ((0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 5, 7, 9, 11), (0, 3, 5, 7, 10), (0, 2, 3, 5, 7, 9, 10))


def stage_line(rng: random.Random) -> tuple[tuple[float, float, int, float], ...]:
    """A stage sequencer's 2-bar pass: stages of 1-4 pulses, gate mode single (one gate on the
    stage's first pulse), multi (one per pulse), hold (one gate over the stage) or rest, 1-4
    ratchets, gate lengths 10-95 %, pitches from a scale over two octaves with octave jumps."""
    scale = rng.choice(_SCALES)
    root = rng.choice((36, 41, 43, 48))
    notes: list[tuple[float, float, int, float]] = []
    step = 0
    while step < WINDOW_STEPS:
        pulses = min(rng.choice((1, 1, 2, 2, 3, 4)), WINDOW_STEPS - step)
        mode = rng.choices(("single", "multi", "hold", "rest"), (4, 3, 2, 1.5))[0]
        ratchets = rng.choices((1, 2, 3, 4), (8, 2, 1, 1))[0]
        length = rng.choice((0.1, 0.25, 0.5, 0.5, 0.75, 0.95))
        note = root + rng.choice(scale) + 12 * rng.choice((0, 0, 1, 1, 2))
        if rng.random() < 0.2:
            note += rng.choice((-12, 12))  # an octave jump
        note = max(24, min(96, note))
        if mode == "hold":
            notes.append((float(step), round(pulses * length, 3), note, 0.8))
        elif mode in ("single", "multi"):
            for pulse in range(pulses if mode == "multi" else 1):
                part = 1.0 / ratchets
                for r in range(ratchets):
                    notes.append((round(step + pulse + r * part, 4), round(part * length, 4),
                                  note, 0.8))
        step += pulses
    return tuple(notes)


def acid_line(rng: random.Random) -> tuple[tuple[float, float, int, float], ...]:
    """A 16-step acid line played twice (32 steps): rests, octave-up steps, accents (velocity
    1.0, else 0.7), slides (the gate held into the next step: that step is no new onset)."""
    root = rng.choice((33, 36, 38, 40, 43))
    scale = rng.choice(((0, 3, 5, 7, 10), (0, 1, 3, 5, 7, 8, 10), (0, 2, 3, 7, 10)))
    steps: list[tuple[int, bool, bool, bool] | None] = []
    for _ in range(16):
        if rng.random() < 0.28:
            steps.append(None)
            continue
        note = root + rng.choice(scale) + (12 if rng.random() < 0.25 else 0)
        steps.append((note, rng.random() < 0.3, rng.random() < 0.2, False))
    if steps[0] is None:  # a 303 pattern almost always starts on its first step
        steps[0] = (root, True, False, False)
    notes: list[tuple[float, float, int, float]] = []
    for rep in range(2):
        i = 0
        while i < 16:
            s = steps[i]
            if s is None:
                i += 1
                continue
            note, accent, slide, _ = s
            length = 0.5
            j = i
            while slide and j + 1 < 16 and steps[j + 1] is not None:
                j += 1  # the slid-to note sounds without a new gate
                length = j - i + 0.5
                slide = steps[j][2]  # type: ignore[index]
            notes.append((float(rep * 16 + i), float(length), note, 1.0 if accent else 0.7))
            i = j + 1
    return tuple(notes)


def _generated(rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(GENERATED):
        out.append({"kind": "stage", "origin": f"stage-sequencer line, seed draw {i}",
                    "group": f"stage-{i}", "notes": stage_line(rng),
                    "cycle_steps": WINDOW_STEPS})
    for i in range(GENERATED):
        out.append({"kind": "acid", "origin": f"acid line, seed draw {i}", "group": f"acid-{i}",
                    "notes": acid_line(rng), "cycle_steps": WINDOW_STEPS})
    for spec in EUCLID_SPECS:
        src = load_source(spec)
        out.append({"kind": "euclid", "origin": f"grooverack sim --input {spec}", "group": spec,
                    "notes": tuple((n.step, n.length, n.note, n.velocity) for n in src.notes),
                    "cycle_steps": src.cycle_steps})
    return out


# ------------------------------------------------------------------------------------ building

def build_corpus() -> list[Line]:
    """Every line, deterministic for a given music21 corpus (SEED)."""
    rng = random.Random(SEED)
    raw = _bach(rng) + _folk(rng) + _rag(rng) + _generated(rng)
    # split whole pieces: within each kind, groups shuffled by the seed, alternating
    groups: dict[str, list[str]] = {}
    for r in raw:
        groups.setdefault(r["kind"], [])
        if r["group"] not in groups[r["kind"]]:
            groups[r["kind"]].append(r["group"])
    split_of: dict[str, str] = {}
    for kind in KINDS:
        names = sorted(groups.get(kind, []))
        random.Random(f"{SEED}-{kind}").shuffle(names)
        for i, name in enumerate(names):
            split_of[name] = SPLITS[i % 2]
    lines = []
    counter: dict[str, int] = {}
    for r in raw:
        counter[r["kind"]] = counter.get(r["kind"], 0) + 1
        bpm = float(random.Random(f"{SEED}-bpm-{r['origin']}").randint(*BPM_RANGE))
        lines.append(Line(f"{r['kind']}-{counter[r['kind']]:02d}", r["kind"], r["origin"],
                          split_of[r["group"]], bpm, float(r["cycle_steps"]),
                          tuple(r["notes"]), r["group"]))
    return lines + sparse_lines(counter.get("euclid", 0))


def sparse_lines(after: int) -> list[Line]:
    """The sparse Euclidean lines of the validation split (SPARSE_VALIDATION_SPECS), numbered on
    from the corpus's `after` Euclidean lines."""
    out = []
    for i, spec in enumerate(SPARSE_VALIDATION_SPECS, start=after + 1):
        src = load_source(spec)
        origin = f"grooverack sim --input {spec}"
        bpm = float(random.Random(f"{SEED}-bpm-{origin}").randint(*BPM_RANGE))
        out.append(Line(f"euclid-{i:02d}", "euclid", origin, "validation", bpm,
                        float(src.cycle_steps),
                        tuple((n.step, n.length, n.note, n.velocity) for n in src.notes), spec))
    return out


def corpus_json(lines: list[Line]) -> str:
    import music21

    body = [ln.to_json() for ln in lines]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return json.dumps({"format": CORPUS_FORMAT, "seed": SEED, "music21": music21.__version__,
                       "built_by": "python benchmarks/bench_lines.py --build-corpus",
                       "sha256": digest, "lines": body}, indent=1) + "\n"


def write_corpus(path: Path = CORPUS_PATH) -> list[Line]:
    lines = build_corpus()
    atomic_write_text(path, corpus_json(lines))
    return lines


def load_corpus(path: Path = CORPUS_PATH, split: str | None = None) -> list[Line]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != CORPUS_FORMAT:
        raise ValueError(f"{path}: corpus format {data.get('format')!r}; allowed: "
                         f"{CORPUS_FORMAT} (rebuild with --build-corpus)")
    lines = [Line.from_json(d) for d in data["lines"]]
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"split {split!r} unknown; allowed: {', '.join(SPLITS)}")
        lines = [ln for ln in lines if ln.split == split]
    return lines


def quick_subset(lines: list[Line], per_kind: int = 2) -> list[Line]:
    """The first `per_kind` lines of each kind (in corpus order)."""
    out, seen = [], {k: 0 for k in KINDS}
    for ln in lines:
        if seen.get(ln.kind, 0) < per_kind:
            out.append(ln)
            seen[ln.kind] = seen.get(ln.kind, 0) + 1
    return out
