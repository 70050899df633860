"""Render files of a simulated performance: outputs.csv, drums.mid, input.mid, roll.png and
drums.wav.

Everything here is a pure function of its arguments (no clock, no randomness), so a render is
byte-for-byte repeatable. mido writes the MIDI files; the piano roll is drawn with numpy and
written by `grooverack.sim.png`; drums.wav is the drum voices of `grooverack.drums` played by
the rows of outputs.csv, written by the standard library's `wave` (16-bit PCM, stereo). Every
file is written atomically (`grooverack.storage`).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from grooverack.config import Settings
from grooverack.drums.kit import Kit, render_events, to_pcm16
from grooverack.sim.patch import Hit, OutputRow, PatchNote
from grooverack.sim.png import png_bytes
from grooverack.storage import atomic_write_files
from grooverack.voices import NOTE_TO_VOICE, VOICE_GM_NOTES, VOICE_NAMES

TICKS_PER_BEAT = 960  # ~0.5 ms at 120 BPM: keeps the model's micro-timing
DRUM_CHANNEL = 9


# ---------------------------------------------------------------------------------------------
# outputs.csv

def outputs_csv(rows: Sequence[OutputRow]) -> str:
    lines = ["time_s,output,kind,volts"]
    lines += [f"{r.time:.6f},{r.output},{r.kind},{r.volts:.4f}" for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# MIDI files

class MidiMessage(Protocol):
    """What `_midi_bytes` needs of a mido.Message (mido ships no types)."""

    def copy(self, **overrides: int) -> MidiMessage: ...


def _midi_bytes(events: list[tuple[float, int, MidiMessage]], bpm: float, name: str) -> bytes:
    """events: (seconds, order, mido.Message) -> a type-0 MIDI file's bytes at `bpm`."""
    import mido

    ticks_per_s = TICKS_PER_BEAT * bpm / 60.0
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for seconds, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        tick = max(0, int(round(seconds * ticks_per_s)))
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _velocity7(velocity: float) -> int:
    return int(min(127, max(1, round(velocity * 127))))


def output_notes(settings: Settings, outputs: int) -> dict[int, int]:
    """Output -> the GM drum note it plays as: its first mapped voice (louder wins on shared ones)."""
    notes = {}
    for voice, name in enumerate(VOICE_NAMES):
        out = int(settings[f"map.{name}"])
        if out and out not in notes:
            notes[out] = VOICE_GM_NOTES[voice]
    return notes


def drums_midi(hits: Sequence[Hit], bpm: float, output_note: Mapping[int, int],
               note_seconds: float = 0.05) -> bytes:
    """The generated performance as a GM drum track (channel 10) with velocities and timing."""
    import mido

    events: list[tuple[float, int, MidiMessage]] = []
    for h in hits:
        if h.voice is not None:
            note = VOICE_GM_NOTES[h.voice]
        elif h.output in output_note:
            note = output_note[h.output]
        else:
            continue
        vel = _velocity7(h.velocity)
        events.append((h.time, 1, mido.Message("note_on", channel=DRUM_CHANNEL, note=note,
                                               velocity=vel)))
        events.append((h.time + note_seconds, 0, mido.Message("note_off", channel=DRUM_CHANNEL,
                                                              note=note, velocity=0)))
    return _midi_bytes(events, bpm, "grooverack drums")


def input_midi(notes: Sequence[PatchNote], bpm: float) -> bytes:
    """The input as the sequencer played it: melodic notes on channel 1, drum notes on 10."""
    import mido

    events: list[tuple[float, int, MidiMessage]] = []
    for n in notes:
        channel = DRUM_CHANNEL if n.drum else 0
        events.append((n.time, 1, mido.Message("note_on", channel=channel, note=n.note,
                                               velocity=_velocity7(n.velocity))))
        events.append((n.time + max(n.duration, 0.001), 0,
                       mido.Message("note_off", channel=channel, note=n.note, velocity=0)))
    return _midi_bytes(events, bpm, "grooverack input")


# ---------------------------------------------------------------------------------------------
# roll.png: a tiny bitmap font and a piano roll

_FONT_ROWS = {  # 3x5 glyphs: five rows of three pixels, top to bottom
    "A": ".#.#.#####.##.#", "B": "##.#.###.#.###.", "C": ".###..#..#...##", "D": "##.#.##.##.###.",
    "E": "####..##.#..###", "F": "####..##.#..#..", "G": ".###..#.##.#.##", "H": "#.##.#####.##.#",
    "I": "###.#..#..#.###", "J": "..#..#..##.#.#.", "K": "#.##.###.#.##.#", "L": "#..#..#..#..###",
    "M": "#.########.##.#", "N": "##.#.##.##.##.#", "O": ".#.#.##.##.#.#.", "P": "##.#.###.#..#..",
    "Q": ".#.#.##.###..##", "R": "##.#.###.#.##.#", "S": ".###...#...###.", "T": "###.#..#..#..#.",
    "U": "#.##.##.##.####", "V": "#.##.##.##.#.#.", "W": "#.##.########.#", "X": "#.##.#.#.#.##.#",
    "Y": "#.##.#.#..#..#.", "Z": "###..#.#.#..###", "0": "####.##.##.####", "1": ".#.##..#..#.###",
    "2": "##...#.#.#..###", "3": "##...#.#...###.", "4": "#.##.####..#..#", "5": "####..##...###.",
    "6": ".###..####.####", "7": "###..#.#..#..#.", "8": "####.#####.####", "9": "####.####..###.",
    " ": "...............", "-": "......###......", "/": "..#..#.#.#..#..", ".": ".............#.",
    ":": "....#.....#....", "_": "............###", "=": "...###...###...", "+": "....#.###.#....",
    "%": "#.#..#.#.#..#.#", "(": "..#.#..#..#...#", ")": "#...#..#..#.#..", "#": "#.#####.#####.#",
    ",": "..........#.#..",
}


def _glyph(char: str) -> np.ndarray:
    rows = _FONT_ROWS.get(char.upper(), _FONT_ROWS[" "])
    return np.array([c == "#" for c in rows], dtype=bool).reshape(5, 3)


def draw_text(img: np.ndarray, x: int, y: int, text: str, colour: Sequence[int],
              scale: int = 2) -> None:
    """Draw `text` with its top-left corner at (x, y), clipped to the image."""
    for i, char in enumerate(text):
        mask = np.kron(_glyph(char), np.ones((scale, scale), dtype=bool))
        x0 = x + i * 4 * scale
        h, w = mask.shape
        sub = img[max(y, 0):y + h, max(x0, 0):x0 + w]
        m = mask[max(-y, 0):max(-y, 0) + sub.shape[0], max(-x0, 0):max(-x0, 0) + sub.shape[1]]
        sub[m] = colour


_PALETTE = np.array([  # one hue per output lane
    (255, 99, 71), (255, 190, 60), (120, 220, 90), (60, 200, 200), (90, 150, 255),
    (170, 110, 255), (255, 110, 200), (230, 230, 230), (200, 160, 120), (140, 200, 160),
    (255, 140, 140), (150, 180, 255), (220, 220, 120), (120, 220, 220), (255, 170, 90),
    (190, 190, 255)], dtype=np.float32)
BACKGROUND = (18, 18, 24)
LANE_BG = (28, 28, 36)
INPUT_COLOUR = np.array((240, 240, 255), dtype=np.float32)


BARS_PER_ROW = 8  # a long render wraps into rows of this many bars, like lines of a score
MAX_ROWS = 16  # and draws at most this many rows (the title says when it stops early)


def piano_roll(notes: Sequence[PatchNote], hits: Sequence[Hit], *, bpm: float, duration: float,
               lanes: Mapping[int, str], title: str = "", clock_rows: Sequence[OutputRow] = (),
               px_per_step: int | None = None) -> np.ndarray:
    """Input (top) and outputs (one lane each) on a bars/beats/16ths grid; brightness = velocity.

    Returns uint8 RGB pixels. A hit is a block starting at its exact time (micro-timing shows as
    a shift against the grid) and lasting 2/3 of a step. Up to 8 bars make one row; a longer
    render wraps into rows of 8 bars (at most 16 rows) stacked top to bottom.
    """
    step_s = 60.0 / bpm / 4
    steps = max(1, int(np.ceil(duration / step_s - 1e-9)))
    per_row = BARS_PER_ROW * 16
    if px_per_step is not None or steps <= per_row:
        px = px_per_step or int(min(14, max(3, 2400 // steps)))
        return _roll_row(notes, hits, clock_rows, step_s=step_s, first=0, steps=steps, px=px,
                         lanes=lanes, title=title)
    rows = min(MAX_ROWS, -(-steps // per_row))
    if rows * per_row < steps:
        title = f"{title}  (bars 1-{rows * BARS_PER_ROW} of {-(-steps // 16)})"
    images = [_roll_row(notes, hits, clock_rows, step_s=step_s, first=r * per_row,
                        steps=min(per_row, steps - r * per_row), px=14, lanes=lanes,
                        title=title if r == 0 else "", width_steps=per_row)
              for r in range(rows)]
    return np.concatenate(images, axis=0)


def _roll_row(notes: Sequence[PatchNote], hits: Sequence[Hit], clock_rows: Sequence[OutputRow],
              *, step_s: float, first: int, steps: int, px: int, lanes: Mapping[int, str],
              title: str, width_steps: int | None = None) -> np.ndarray:
    """One row of the roll: steps `first` .. `first + steps` (the image is `width_steps` wide)."""
    left, right, top, gap = 120, 10, 34, 6
    width = left + (width_steps or steps) * px + right
    end_x = left + steps * px  # the right edge of this row's music
    t_first, t_end = first * step_s, (first + steps) * step_s

    melodic = [n for n in notes if not n.drum]
    drum_in = [n for n in notes if n.drum]
    if melodic:
        lo = min(n.note for n in melodic) - 1
        hi = max(n.note for n in melodic) + 1
        row_px = max(2, min(5, 140 // (hi - lo + 1)))
        input_h = (hi - lo + 1) * row_px
    else:
        lo = hi = 0
        row_px = 7
        input_h = len(VOICE_NAMES) * row_px if drum_in else 24
    lane_h = 22
    lane_keys = sorted(lanes)
    extra = 1 if clock_rows else 0
    height = top + input_h + gap * 2 + (len(lane_keys) + extra) * (lane_h + 2) + 10
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND

    def x_of(t: float) -> int:
        return left + int(round((t / step_s - first) * px))

    def span(t0: float, t1: float) -> slice | None:
        """Columns of [t0, t1) inside this row, or None."""
        if t1 <= t_first or t0 >= t_end:
            return None
        x0, x1 = max(x_of(t0), left), min(x_of(t1), end_x)
        return slice(x0, x1) if x1 > x0 else None

    # Lane backgrounds first, grid lines over them, notes over the grid.
    y_input = top
    img[y_input:y_input + input_h, left:end_x] = LANE_BG
    lane_y = []
    y = top + input_h + gap * 2
    for _ in range(len(lane_keys) + extra):
        img[y:y + lane_h, left:end_x] = LANE_BG
        lane_y.append(y)
        y += lane_h + 2
    bottom = y
    for k in range(steps + 1):
        s = first + k
        x = min(left + k * px, end_x - 1)
        if s % 16 == 0:
            colour, y0 = (120, 120, 135), top - 6
        elif s % 4 == 0:
            colour, y0 = (62, 62, 74), top
        elif px >= 6:
            colour, y0 = (38, 38, 48), top
        else:
            continue
        column = img[y0:bottom, x]
        lanes_mask = (column != BACKGROUND).any(axis=1) | (s % 16 == 0)
        column[lanes_mask] = colour
        if s % 16 == 0 and k < steps:
            draw_text(img, x + 3, top - 13, str(s // 16 + 1), (200, 200, 210))
    draw_text(img, 6, 6, title[:100], (235, 235, 245))

    # Input lane.
    draw_text(img, 6, y_input + 2, "INPUT", (235, 235, 245))
    if melodic:
        draw_text(img, 6, y_input + 16, _note_name(hi - 1), (150, 150, 165))
        draw_text(img, 6, y_input + input_h - 12, _note_name(lo + 1), (150, 150, 165))
        for c in range(lo, hi + 1):
            if c % 12 == 0:  # a faint line at every C
                yy = y_input + (hi - c) * row_px + row_px // 2
                img[yy, left:end_x] = np.maximum(img[yy, left:end_x], 48)
    elif drum_in:
        for voice, name in enumerate(VOICE_NAMES):
            draw_text(img, 64, y_input + voice * row_px + 1, _short(name), (150, 150, 165), 1)
    for n in notes:
        if n.drum:
            drum_voice = NOTE_TO_VOICE.get(n.note)
            if drum_voice is None:
                continue
            y0 = y_input + drum_voice * row_px
        else:
            y0 = y_input + (hi - n.note) * row_px
        cols = span(n.time, n.time + max(n.duration if not n.drum else step_s * 0.6,
                                         2 * step_s / px))
        if cols is not None:
            shade = (0.35 + 0.65 * float(n.velocity)) * INPUT_COLOUR
            img[y0:y0 + row_px - (1 if row_px > 2 else 0), cols] = shade

    # Output lanes: a faint column at every input onset shows where the drums meet the input.
    guide = np.array((44, 46, 64), dtype=np.uint8)
    for n in notes:
        cols = span(n.time, n.time + max(1, px // 4) * step_s / px)
        if cols is not None:
            for y0 in lane_y[:len(lane_keys)]:
                img[y0:y0 + lane_h, cols] = np.maximum(img[y0:y0 + lane_h, cols], guide)
    for index, key in enumerate(lane_keys):
        colour = _PALETTE[index % len(_PALETTE)]
        draw_text(img, 6, lane_y[index] + 6, lanes[key][:13], tuple(int(c) for c in colour))
    lane_of = {key: i for i, key in enumerate(lane_keys)}
    block = max(2, int(round(px * 2 / 3))) * step_s / px
    for h in hits:
        cols = span(h.time, h.time + block) if h.output in lane_of else None
        if cols is not None:
            i = lane_of[h.output]
            colour = _PALETTE[i % len(_PALETTE)] * (0.25 + 0.75 * float(h.velocity))
            img[lane_y[i] + 2:lane_y[i] + lane_h - 2, cols] = colour
    if clock_rows:
        y0 = lane_y[-1]
        draw_text(img, 6, y0 + 6, "CLOCK/RESET", (160, 160, 170))
        half = lane_h // 2
        for r in clock_rows:
            cols = span(r.time, r.time + 2 * step_s / px) if r.volts > 0.5 else None
            if cols is not None:
                yy = y0 + 2 if r.kind == "clock" else y0 + half
                img[yy:yy + half - 2, cols] = (170, 170, 180)
    return img


def _short(voice: str) -> str:
    return voice.replace("closed_hat", "hh").replace("open_hat", "oh").replace("_tom", "tom")


_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _note_name(note: int) -> str:
    return f"{_NAMES[note % 12]}{note // 12 - 1}"


def lane_labels(settings: Settings, outputs: int) -> dict[int, str]:
    """Output number -> "N VOICE[/VOICE]" from the voice map (outputs with no voice are left out)."""
    names: dict[int, list[str]] = {}
    for name in VOICE_NAMES:
        out = int(settings[f"map.{name}"])
        if 0 < out <= outputs:
            names.setdefault(out, []).append(_short(name))
    return {out: f"{out} {'/'.join(v)}" for out, v in sorted(names.items())}


# ---------------------------------------------------------------------------------------------
# drums.wav

def drums_audio(rows: Sequence[OutputRow], *, rate: int,
                voices: Mapping[int, str | Sequence[str]], velocity_volts: float,
                duration: float) -> np.ndarray:
    """The drum voices patched to the outputs, played by `rows` (outputs.csv's writes, each
    with the voice behind it: a jack of several voices strikes that one): float32
    [frames, 2], `duration` and the last hits' ring (`drums.kit.render_events`)."""
    kit = Kit(rate, voices, velocity_volts=velocity_volts)
    return render_events(kit, ((r.time, r.output, r.kind, r.volts, r.voice) for r in rows),
                         duration)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """float [frames, channels] in -1..1 -> a 16-bit PCM WAV file's bytes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_pcm16(audio).tobytes())
    return buffer.getvalue()


def write_render(out_dir: str | Path, *, rows: Sequence[OutputRow], hits: Sequence[Hit],
                 notes: Sequence[PatchNote], bpm: float, duration: float,
                 lanes: Mapping[int, str], output_note: Mapping[int, int], title: str,
                 wav: tuple[int, Mapping[int, str | Sequence[str]], float] | None = None
                 ) -> dict[str, Path]:
    """Write the render files into `out_dir`; returns their paths by name. `wav` = (sample
    rate, output -> voice, velocity volts of full level) adds drums.wav."""
    out = Path(out_dir)
    names = ["outputs.csv", "drums.mid", "input.mid", "roll.png"] + (["drums.wav"] if wav else [])
    paths = {name: out / name for name in names}
    clock_rows = [r for r in rows if r.kind in ("clock", "reset")]
    img = piano_roll(notes, hits, bpm=bpm, duration=duration, lanes=lanes, title=title,
                     clock_rows=clock_rows)
    files = {paths["outputs.csv"]: outputs_csv(rows).encode("utf-8"),
             paths["drums.mid"]: drums_midi(hits, bpm, output_note),
             paths["input.mid"]: input_midi(notes, bpm),
             paths["roll.png"]: png_bytes(img)}
    if wav is not None:
        rate, voices, velocity_volts = wav
        audio = drums_audio(rows, rate=rate, voices=voices, velocity_volts=velocity_volts,
                            duration=duration)
        files[paths["drums.wav"]] = wav_bytes(audio, rate)
    # every file made in memory first, then each written atomically: a full disk leaves each
    # file either its earlier render or the new one, and the message says which
    atomic_write_files(files)
    return paths
