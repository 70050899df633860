"""Inputs that never surprise (issue 19 item 7): each bad input is refused with a message that
names what is wrong, the value and what is allowed, before any work is done; odd but usable
inputs (tempo changes, 3/4, controls after the end) are said, not silently bent.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys

import mido
import pytest
from grooverack.cli import main
from grooverack.config import load_settings
from grooverack.errors import ConfigError, SourceError
from grooverack.sim.sources import load_controls, midi_source


def write_midi(path, notes, *, tempos=((0, 500000),), ticks_per_beat=480, meter=None):
    """A type-1 file: a tempo/meter track, then one melodic track of (start, end, note) ticks."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack()
    events = [(t, mido.MetaMessage("set_tempo", tempo=tempo, time=0)) for t, tempo in tempos]
    if meter:
        events.append((0, mido.MetaMessage("time_signature", numerator=meter[0],
                                           denominator=meter[1], time=0)))
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        meta.append(msg.copy(time=tick - last))
        last = tick
    midi.tracks.append(meta)
    track = mido.MidiTrack()
    timed = []
    for start, end, note in notes:
        timed.append((start, 1, mido.Message("note_on", note=note, velocity=100)))
        timed.append((end, 0, mido.Message("note_off", note=note, velocity=0)))
    last = 0
    for tick, _, msg in sorted(timed, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - last))
        last = tick
    midi.tracks.append(track)
    midi.save(str(path))
    return path


def refused(capsys, argv, *words):
    """`argv` exits 2 with one `grooverack...:` line naming each of `words`, no traceback."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    return err


def output_times(out):
    with open(out / "outputs.csv", newline="") as f:
        return [float(r["time_s"]) for r in csv.DictReader(f)]


# --- the render stops at the requested length

def test_held_note_is_cut_at_the_end(tmp_path, capsys):
    midi = write_midi(tmp_path / "held.mid", [(0, 480, 60), (480, 480 * 120, 64)])  # 60 s note
    out = tmp_path / "out"
    assert main(["sim", "--input", str(midi), "--bars", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(4.0 s)" in printed
    assert max(output_times(out)) <= 4.0 + 0.05
    inputs = mido.MidiFile(str(out / "input.mid"))
    assert inputs.length <= 4.0 + 1e-3


# --- tempo maps

def test_tempo_in_effect_at_the_first_note(tmp_path):
    # 60 BPM before the music starts, 144 BPM from the first note on
    path = write_midi(tmp_path / "t.mid", [(1920, 2400, 60), (2400, 2880, 62)],
                      tempos=((0, mido.bpm2tempo(60)), (1920, mido.bpm2tempo(144))))
    source = midi_source(path)
    assert source.bpm == pytest.approx(144)


def test_tempo_changes_are_converted_to_seconds(tmp_path, caplog, capsys):
    # a beat at 120 BPM, then 60 BPM: the third note is at 0.5 + 1.0 = 1.5 s
    path = write_midi(tmp_path / "c.mid", [(0, 240, 60), (480, 720, 62), (960, 1200, 64)],
                      tempos=((0, mido.bpm2tempo(120)), (480, mido.bpm2tempo(60))))
    with caplog.at_level(logging.WARNING):
        source = midi_source(path)
    assert source.bpm == pytest.approx(120)
    step_s = 60 / 120 / 4
    assert [n.step * step_s for n in source.notes] == pytest.approx([0.0, 0.5, 1.5])
    assert source.notes[2].length * step_s == pytest.approx(0.5)  # 240 ticks at 60 BPM
    assert "tempo changes" in caplog.text and "120 -> 60" in caplog.text
    out = tmp_path / "out"
    assert main(["sim", "--input", str(path), "--out", str(out)]) == 0
    assert "tempo changes" in capsys.readouterr().out  # the summary says so too


def test_one_tempo_file_is_not_flagged(tmp_path, caplog):
    path = write_midi(tmp_path / "one.mid", [(0, 240, 60), (480, 720, 62)],
                      tempos=((0, mido.bpm2tempo(90)),))
    with caplog.at_level(logging.WARNING):
        source = midi_source(path)
    assert source.bpm == pytest.approx(90)
    assert [n.step for n in source.notes] == [0.0, 4.0]
    assert not source.remarks and "tempo" not in caplog.text


@pytest.mark.parametrize("meter", [(3, 4), (6, 8), (5, 4)])
def test_odd_time_signature_is_named(tmp_path, caplog, meter):
    path = write_midi(tmp_path / "m.mid", [(0, 240, 60)], meter=meter)
    with caplog.at_level(logging.WARNING):
        midi_source(path)
    assert f"time signature {meter[0]}/{meter[1]}" in caplog.text


# --- output paths checked before the render

def test_bad_out_is_refused_first(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    import grooverack.commands.sim as sim_command

    monkeypatch.setattr(sim_command, "simulate", lambda *a: pytest.fail("rendered first"))
    refused(capsys, ["sim", "--out", str(blocker)], "--out", str(blocker), "not a folder")
    refused(capsys, ["sim", "--out", str(blocker / "sub")], "--out", "is a file")


def test_bad_timing_is_refused_first(tmp_path, capsys, monkeypatch):
    import grooverack.sim.wallclock as wallclock  # the sim board's entry in the registry

    monkeypatch.setattr(wallclock, "run_board", lambda *a, **k: pytest.fail("ran first"))
    refused(capsys, ["run", "--board", "sim", "--duration", "1", "--timing", str(tmp_path)],
            "--timing", "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    refused(capsys, ["run", "--board", "sim", "--duration", "1", "--timing",
                     str(blocker / "t.csv")], "--timing", "is a file")


# --- refused with a message, no traceback

def test_config_on_a_directory(tmp_path, capsys):
    refused(capsys, ["sim", "--config", str(tmp_path)], str(tmp_path), "is a folder")
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings(tmp_path)


def test_midi_with_zero_ticks_per_beat(tmp_path, capsys):
    path = write_midi(tmp_path / "zero.mid", [(0, 240, 60)])
    data = bytearray(path.read_bytes())
    data[12:14] = b"\x00\x00"  # the header's division
    path.write_bytes(bytes(data))
    refused(capsys, ["sim", "--input", str(path), "--out", str(tmp_path / "o")],
            "0 ticks per beat", "allowed")


def test_smpte_midi_is_refused(tmp_path, capsys):
    path = write_midi(tmp_path / "smpte.mid", [(0, 240, 60)])
    data = bytearray(path.read_bytes())
    data[12:14] = bytes([0xE7, 40])  # -25 fps, 40 ticks per frame
    path.write_bytes(bytes(data))
    refused(capsys, ["sim", "--input", str(path), "--out", str(tmp_path / "o")],
            "SMPTE", "not supported", "ticks per beat")


@pytest.mark.parametrize("content", [b"", b"MThd", b"MThd\x00\x00\x00\x06\x00", b"garbage!" * 4])
def test_unreadable_midi_always_says_why(tmp_path, content):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        midi_source(path)
    message = str(info.value)
    assert "not a readable MIDI file (" in message
    assert "()" not in message


def test_non_utf8_controls(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_bytes(b"1,follow,0.5\n2,morph,\xff\n")
    refused(capsys, ["sim", "--controls", str(path), "--out", str(tmp_path / "o")],
            str(path), "not UTF-8", "0xff")


@pytest.mark.parametrize("when", ["nan", "nans", "inf", "infs", "-inf"])
def test_non_finite_control_time(tmp_path, when):
    path = tmp_path / "c.csv"
    path.write_text(f"{when},follow,0.5\n")
    with pytest.raises(SourceError, match="not a finite number"):
        load_controls(path)


@pytest.mark.parametrize("bars", ["nan", "inf", "-inf", "1e7", "0", "-1", "10001"])
def test_bad_bars(tmp_path, capsys, bars):
    refused(capsys, ["sim", f"--bars={bars}", "--out", str(tmp_path / "o"), "-q"],
            "--bars", "at most 10,000")
    assert not (tmp_path / "o").exists()


def test_max_bars_is_allowed_by_the_check():
    from grooverack.commands.common import check_positive

    check_positive(10_000, "--bars", 10_000, "bars")


@pytest.mark.parametrize("duration", ["nan", "inf", "0", "-2", "1e9"])
def test_bad_duration(capsys, duration):
    refused(capsys, ["run", "--board", "sim", f"--duration={duration}"], "--duration",
            "at most 86,400")


@pytest.mark.parametrize("bpm", ["0", "-5", "10", "301", "nan", "inf"])
def test_bad_bpm_names_the_tempo_range(tmp_path, capsys, bpm):
    refused(capsys, ["sim", f"--bpm={bpm}", "--out", str(tmp_path / "o"), "-q"],
            "--bpm", "20 to 300 BPM")


def test_file_tempo_out_of_range_names_the_file(tmp_path, capsys):
    path = write_midi(tmp_path / "slow.mid", [(0, 240, 60)], tempos=((0, mido.bpm2tempo(10)),))
    refused(capsys, ["sim", "--input", str(path), "--out", str(tmp_path / "o")],
            "slow.mid", "20 to 300 BPM")


def test_controls_after_the_end_are_named(tmp_path, caplog):
    path = tmp_path / "c.csv"
    path.write_text("9,press,randomize_a\n")  # the README's example, in the default 8 bars
    with caplog.at_level(logging.WARNING):
        assert main(["sim", "--controls", str(path), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert f"{path}:1" in caplog.text
    assert "bar 9" in caplog.text and "8 bars" in caplog.text and "16.00 s" in caplog.text


def test_unknown_key_lists_what_is_allowed(capsys):
    err = refused(capsys, ["config", "--set", "folow=1"], "'folow'", "did you mean follow",
                  "clock.*", "density.*")
    assert "allowed" in err
    with pytest.raises(ConfigError, match="density.kick"):
        load_settings(overrides=["density.kik=0.5"])


def test_config_into_a_closed_pipe_exits_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head`) is gone before a byte is written
    try:
        proc = subprocess.run([sys.executable, "-m", "grooverack", "config", "--example"],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr, proc.stderr


def test_config_broken_pipe_in_process(monkeypatch):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["config"]) == 0
