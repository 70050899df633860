"""MIDI -> audio with FluidSynth (Debian's `fluidsynth` + `fluid-soundfont-gm`), and the truth.

For measuring the onset detector (tests, benchmarks/bench_onsets.py): a MIDI file is rendered
offline by the `fluidsynth` program at a chosen rate, and its note-ons, read with mido, are the
onsets a listener should hear (note-ons within `merge_s` of each other count as one: a kick and a
hat struck together are one onset of the groove). Nothing is shipped: audio is made when asked.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from grooverack.errors import SourceError
from grooverack.voices import NOTE_TO_VOICE, VOICE_GM_NOTES

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# The truth side of onset scoring: note-ons within 30 ms of a group's first are one onset (a
# drummer's flam, kick + hat played together: one audible event, as in the onset-evaluation
# convention of Böck, Krebs and Schedl 2012, which combines annotated onsets within 30 ms). It is
# fixed here, never tuned to the detector; matching uses a +-25 ms window (`matched_offsets`).
MERGE_S = 0.030
# The keys FluidR3 GM's drum kits have samples for (channel 10). GM's percussion map is 35-81;
# FluidR3 adds 27-34 and 82-87. A note-on outside (GMD's hi-hat edge notes 22 and 26, for one)
# renders as silence: no sound, so no onset to hear, and `note_ons` leaves it out of the truth.
DRUM_KEYS = range(27, 88)
DRUM_CHANNEL = 9
# The Groove MIDI Dataset records a Roland TD-11 kit. Three of its keys mean another sound in GM:
# the hi-hat edge strokes (22 closed, 26 open) have no GM sound (FluidR3 plays silence) and the
# floor tom's rim (58) is GM's vibraslap, a rattle. A GMD performance is rendered with those
# played as the GM key of the voice they fold into (`voices.NOTE_TO_VOICE`, the GMD paper's
# mapping; `voices.VOICE_GM_NOTES`: 42, 46 and 43): what the drummer struck is what a listener
# hears, and what the truth counts.
ROLAND_TO_GM = {note: VOICE_GM_NOTES[NOTE_TO_VOICE[note]] for note in (22, 26, 58)}


def available() -> str | None:
    """Why FluidSynth cannot render here, or None when it can."""
    if shutil.which("fluidsynth") is None:
        return "the fluidsynth program is not installed (Debian: apt install fluidsynth)"
    if not SOUNDFONT.is_file():
        return f"{SOUNDFONT} is missing (Debian: apt install fluid-soundfont-gm)"
    return None


def render(midi: str | Path, rate: int, out: str | Path | None = None) -> np.ndarray:
    """`midi` rendered at `rate` Hz: float samples [frames, 2] (FluidSynth's stereo)."""
    import soundfile

    why = available()
    if why:
        raise SourceError(f"cannot render {midi}: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(out) if out is not None else Path(tmp) / "render.wav"
        cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(rate), "-O", "float",
               "-T", "wav", str(SOUNDFONT), str(midi)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not wav.is_file():
            raise SourceError(f"fluidsynth could not render {midi}: {done.stderr.strip()}")
        data, got = soundfile.read(str(wav), dtype="float64", always_2d=True)
    if got != rate:
        raise SourceError(f"fluidsynth rendered {midi} at {got} Hz, not {rate}")
    return data


def gm_drums(src: str | Path, dst: str | Path) -> Path:
    """`src` (a GMD performance) written to `dst` with each Roland-only drum key on channel 10
    played as the GM key of the same drum (`ROLAND_TO_GM`); everything else as it was."""
    import mido

    mid = mido.MidiFile(str(src))
    for track in mid.tracks:
        for i, msg in enumerate(track):
            if (msg.type in ("note_on", "note_off") and msg.channel == DRUM_CHANNEL
                    and msg.note in ROLAND_TO_GM):
                track[i] = msg.copy(note=ROLAND_TO_GM[msg.note])
    mid.save(str(dst))
    return Path(dst)


def note_ons(midi: str | Path, merge_s: float = MERGE_S) -> list[tuple[float, float]]:
    """(seconds, velocity 0..1) of each onset of `midi`: note-ons within `merge_s` of a group's
    first are one onset, at the first one's time with the loudest velocity. A drum note-on
    (channel 10) FluidR3 has no sample for (outside `DRUM_KEYS`) makes no sound and is left out."""
    import mido

    t = 0.0
    times: list[tuple[float, float]] = []
    for msg in mido.MidiFile(str(midi)):
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            if msg.channel == DRUM_CHANNEL and msg.note not in DRUM_KEYS:
                continue  # silent in the render: not an onset
            times.append((t, msg.velocity / 127.0))
    times.sort()
    groups: list[list[tuple[float, float]]] = []
    for when, vel in times:
        if groups and when - groups[-1][0][0] < merge_s:
            groups[-1].append((when, vel))
        else:
            groups.append([(when, vel)])
    out = []
    for group in groups:
        out.append((group[0][0], max(n[1] for n in group)))
    return out


def at_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """`audio` scaled so its peak is `dbfs` (0 = full scale)."""
    peak = float(np.abs(audio).max())
    return audio * (10 ** (dbfs / 20) / peak) if peak > 0 else audio


def room_noise(frames: int, rate: int, level_db: float, seed: int = 0) -> np.ndarray:
    """Pink-ish room noise (1/f power from 20 Hz) plus a mains hum, `level_db` RMS (dBFS), mono."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.normal(size=frames))
    f = np.fft.rfftfreq(frames, 1 / rate)
    spec /= np.sqrt(np.maximum(f, 20.0))
    noise = np.fft.irfft(spec, frames)
    noise += 0.3 * np.std(noise) * np.sin(2 * np.pi * 50.0 * np.arange(frames) / rate)
    return noise * (10 ** (level_db / 20) / np.sqrt(np.mean(noise ** 2)))


def matched_offsets(heard: list[float], truth: list[float], window: float = 0.025
                    ) -> list[float]:
    """Heard onsets vs true ones, matched one to one in time order within `window` seconds:
    the offsets (heard - true) of the matched pairs."""
    heard, truth = sorted(heard), sorted(truth)
    i = j = 0
    offsets: list[float] = []
    while i < len(heard) and j < len(truth):
        d = heard[i] - truth[j]
        if abs(d) <= window:
            offsets.append(d)
            i += 1
            j += 1
        elif d < 0:
            i += 1
        else:
            j += 1
    return offsets


def score(heard: list[float], truth: list[float], window: float = 0.025
          ) -> dict[str, float]:
    """`matched_offsets` summed up: precision, recall, F1, the offsets' median and spread."""
    offsets = matched_offsets(heard, truth, window)
    tp = len(offsets)
    precision = tp / len(heard) if heard else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    med = float(np.median(offsets)) if offsets else 0.0
    spread = float(np.percentile(np.abs(np.asarray(offsets) - med), 90)) if offsets else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": tp,
            "heard": len(heard), "truth": len(truth), "median_ms": med * 1000,
            "p90_spread_ms": spread * 1000}


# General MIDI programs (0-based) of the monophonic lines, and the range each plays in
LINE_PROGRAMS: dict[str, tuple[int, int, int]] = {
    "guitar": (25, 52, 76),   # steel-string acoustic guitar, E3..E5
    "bass": (33, 28, 52),     # electric bass (finger), E1..E3
    "piano": (0, 48, 84),     # acoustic grand, C3..C6
    "synth": (80, 48, 79),    # lead 1 (square), C3..G5
}


def write_line(path: str | Path, instrument: str, seed: int, *, bpm: float = 110.0,
               bars: int = 4) -> Path:
    """A monophonic line for `instrument` (LINE_PROGRAMS) as a MIDI file: a random walk of
    pitches in its range over 16th/8th/dotted-8th/quarter notes, some legato (each note up to the
    next), some detached, repeated pitches, velocities 50..120, a few rests."""
    import mido

    program, low, high = LINE_PROGRAMS[instrument]
    rng = np.random.default_rng(seed)
    ppq = 480
    mid = mido.MidiFile(ticks_per_beat=ppq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    step = ppq // 4
    lengths = [1, 2, 2, 3, 4]
    pitch = int(rng.integers(low + 6, high - 6))
    tick, end = 0, bars * 16 * step
    events: list[tuple[int, int, int, int]] = []  # (tick, kind 0 off / 1 on, note, velocity)
    pending = step  # start after a 16th: the render's first samples are not an onset
    while pending + tick < end:
        tick += pending
        length = int(rng.choice(lengths)) * step
        if rng.random() < 0.08:  # a rest
            pending = length
            continue
        if rng.random() > 0.15:  # else the same pitch again
            pitch = int(np.clip(pitch + rng.integers(-5, 6), low, high))
        velocity = int(rng.integers(50, 121))
        held = length if rng.random() < 0.5 else max(step // 2, int(length * 0.6))
        events.append((tick, 1, pitch, velocity))
        events.append((tick + held, 0, pitch, 0))
        pending = length
    events.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for when, kind, note, velocity in events:
        track.append(mido.Message("note_on" if kind else "note_off", channel=0, note=note,
                                  velocity=velocity, time=when - last))
        last = when
    track.append(mido.MetaMessage("end_of_track", time=ppq))
    path = Path(path)
    mid.save(str(path))
    return path
