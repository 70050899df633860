"""Render files: outputs.csv columns, MIDI files that parse and keep timing, a valid PNG roll."""

from __future__ import annotations

import csv
import io
import struct
import zlib

import mido
import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.sim.patch import Hit, OutputRecorder, build_patch
from grooverack.sim.png import SIGNATURE, png_bytes, read_png_size
from grooverack.sim.render import (
    drums_midi,
    input_midi,
    lane_labels,
    output_notes,
    outputs_csv,
    piano_roll,
    write_render,
)
from grooverack.sim.sources import builtin_line, load_source
from grooverack.voices import VOICE_GM_NOTES


def decode_png(data: bytes) -> np.ndarray:
    """A reader for what png.py writes (8-bit, filter 0): checks every chunk's CRC."""
    assert data[:8] == SIGNATURE
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, *_ = header
    assert depth == 8
    channels = {0: 1, 2: 3}[colour]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * channels)
    assert (raw[:, 0] == 0).all()
    pixels = raw[:, 1:].reshape(height, width, channels)
    return pixels[:, :, 0] if channels == 1 else pixels


def test_png_round_trip_rgb_and_grey():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (7, 13, 3), dtype=np.uint8)
    data = png_bytes(rgb)
    assert read_png_size(data) == (13, 7)
    assert np.array_equal(decode_png(data), rgb)
    grey = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(png_bytes(grey)), grey)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="not a PNG"):
        read_png_size(b"GIF89a" + bytes(30))


def test_outputs_csv_columns():
    rec = OutputRecorder()
    rec.write(0.5, 1, "velocity", 6.4, 0)
    rec.write(0.5, 1, "trigger", 5.0, 0)
    rows = list(csv.DictReader(io.StringIO(outputs_csv(rec.rows))))
    assert list(rows[0]) == ["time_s", "output", "kind", "volts"]
    assert [(float(r["time_s"]), int(r["output"]), r["kind"], float(r["volts"])) for r in rows] \
        == [(0.5, 1, "velocity", 6.4), (0.5, 1, "trigger", 5.0)]


def test_drums_midi_keeps_notes_velocities_and_micro_timing():
    hits = [Hit(0.0, 1, 1.0, 0), Hit(0.2613, 2, 0.5, 1), Hit(0.5, 8, 0.25, None)]
    data = drums_midi(hits, 120.0, output_note={8: 49})
    midi = mido.MidiFile(file=io.BytesIO(data))
    now, ons = 0.0, []
    for msg in midi:  # iterating a MidiFile yields times in seconds
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            ons.append((now, msg.channel, msg.note, msg.velocity))
    assert [(c, n, v) for _, c, n, v in ons] == [(9, VOICE_GM_NOTES[0], 127), (9, 38, 64), (9, 49, 32)]
    assert [t for t, *_ in ons] == pytest.approx([0.0, 0.2613, 0.5], abs=0.0006)


def test_input_midi_round_trips_through_the_midi_source(tmp_path):
    patch = build_patch(builtin_line(), bpm=96.0, bars=4)
    path = tmp_path / "input.mid"
    path.write_bytes(input_midi(patch.onsets, patch.bpm))
    again = build_patch(load_source(str(path)), bpm=96.0, bars=4)
    assert again.gate_rises() == pytest.approx(patch.gate_rises(), abs=1e-3)
    assert [n.note for n in again.onsets] == [n.note for n in patch.onsets]


def test_roll_shows_velocity_as_brightness_and_has_a_lane_per_output():
    settings = Settings()
    lanes = lane_labels(settings, 8)
    assert lanes[1] == "1 kick" and lanes[8] == "8 crash/ride" and len(lanes) == 8
    assert output_notes(settings, 8)[8] == 49  # the crash (first mapped) names the shared output
    patch = build_patch(builtin_line(), bpm=120.0, bars=2)
    step = 0.125
    loud, soft = Hit(4 * step, 1, 1.0, 0), Hit(12 * step, 1, 0.2, 0)
    img = piano_roll(patch.onsets, [loud, soft], bpm=120.0, duration=patch.duration,
                     lanes=lanes, px_per_step=10)
    assert img.dtype == np.uint8 and img.ndim == 3
    left = 120  # the label margin

    def lane_max(t: float) -> int:
        x = left + int(round(t / step * 10)) + 3
        return int(img[:, x].sum(axis=1).max())

    assert lane_max(loud.time) > lane_max(soft.time) > 0
    assert img.shape[1] == left + 32 * 10 + 10


def test_write_render_writes_four_valid_files(tmp_path):
    settings = Settings()
    rec = OutputRecorder()
    for i, t in enumerate(np.arange(0, 2, 0.25)):
        rec.write(t, 1 + i % 3, "velocity", 4.0, i % 3)
        rec.write(t, 1 + i % 3, "trigger", 5.0, i % 3)
        rec.write(t + 0.005, 1 + i % 3, "trigger", 0.0, i % 3)
    patch = build_patch(load_source("euclid:3:8"), bpm=120.0, bars=1)
    paths = write_render(tmp_path / "r", rows=rec.rows, hits=rec.hits(8.0), notes=patch.onsets,
                         bpm=120.0, duration=patch.duration, lanes=lane_labels(settings, 8),
                         output_note=output_notes(settings, 8), title="test")
    assert sorted(p.name for p in paths.values()) == ["drums.mid", "input.mid", "outputs.csv",
                                                      "roll.png"]
    assert len(paths["outputs.csv"].read_text().splitlines()) == 1 + len(rec.rows)
    drums = mido.MidiFile(str(paths["drums.mid"]))
    assert sum(m.type == "note_on" and m.velocity > 0 for m in drums) == 8
    assert sum(m.type == "note_on" and m.velocity > 0
               for m in mido.MidiFile(str(paths["input.mid"]))) == 6  # 3 per 8 steps
    width, height = read_png_size(paths["roll.png"].read_bytes())
    assert width == 120 + 16 * 14 + 10 and height > 200


def test_long_rolls_wrap_into_rows_of_eight_bars():
    patch = build_patch(builtin_line(), bpm=120.0, bars=20)
    lanes = lane_labels(Settings(), 8)
    one = piano_roll(patch.onsets, [], bpm=120.0, duration=8 * 2.0, lanes=lanes)
    img = piano_roll(patch.onsets, [Hit(39.9, 1, 1.0, 0)], bpm=120.0, duration=patch.duration,
                     lanes=lanes)
    assert img.shape == (3 * one.shape[0], one.shape[1], 3)
    # the last hit (bar 20, the 4th bar of row 3) is drawn in row 3, in the kick lane's colour
    row3 = img[2 * one.shape[0]:]
    x = 120 + int(round((39.9 / 0.125 - 256) * 14)) + 2
    assert (row3[:, x] > 200).any(axis=1).sum() >= 10
