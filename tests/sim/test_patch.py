"""The virtual patch: sources (built-in line, euclid, MIDI files), controls CSV, jack timelines."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
from grooverack.errors import SourceError
from grooverack.sim.patch import (
    GATE_MIN_LOW_S,
    VELOCITY_CV_VOLTS,
    OutputRecorder,
    build_patch,
    note_volts,
    pot_position,
    pot_value,
)
from grooverack.sim.sources import builtin_line, euclid, load_controls, load_source
from hypothesis import given
from hypothesis import strategies as st


def jack_at(patch, jack: str, t: float, default: float = 0.0) -> float:
    """The value of `jack` in force at time t (changes at t included)."""
    value = default
    for time, name, v in patch.changes:
        if time > t:
            break
        if name == jack:
            value = v
    return value


def write_midi(path: Path, tracks: list[list[tuple[int, int, int, int, int]]], *,
               bpm: float = 100.0, ticks_per_beat: int = 480) -> Path:
    """tracks of (start_tick, end_tick, note, velocity, channel) -> a type-1 MIDI file."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    midi.tracks.append(meta)
    for notes in tracks:
        events = []
        for start, end, note, vel, ch in notes:
            events.append((start, 1, mido.Message("note_on", note=note, velocity=vel, channel=ch)))
            events.append((end, 0, mido.Message("note_off", note=note, velocity=0, channel=ch)))
        track = mido.MidiTrack()
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))
    return path


# --- euclid --------------------------------------------------------------------------------

@given(st.integers(1, 64).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n),
                                                      st.integers(-70, 70))))
def test_euclid_has_exactly_k_hits_spread_evenly(case):
    hits, steps, rotate = case
    pattern = euclid(hits, steps, rotate)
    assert len(pattern) == steps
    assert sum(pattern) == hits
    if hits >= 2:  # maximally even: gaps differ by at most one step
        on = [i for i, x in enumerate(pattern) if x]
        gaps = [(b - a) % steps for a, b in zip(on, on[1:] + on[:1], strict=True)]
        assert max(gaps) - min(gaps) <= 1


def test_euclid_known_patterns():
    assert "".join("x" if x else "." for x in euclid(3, 8)) == "x..x..x."
    assert "".join("x" if x else "." for x in euclid(3, 8, 1)) == ".x..x..x"
    with pytest.raises(SourceError, match="hits"):
        euclid(9, 8)


def test_euclid_source_tiles_over_bars():
    patch = build_patch(load_source("euclid:5:16"), bpm=120.0, bars=4)
    rises = patch.gate_rises()
    assert len(rises) == 5 * 4
    step = 60 / 120 / 4
    assert rises[:5] == pytest.approx([0, 4 * step, 7 * step, 10 * step, 13 * step])
    # the first hit of every cycle is accented an octave up
    assert jack_at(patch, "pitch", rises[0]) == 1.0
    assert jack_at(patch, "pitch", rises[1]) == 0.0
    with pytest.raises(SourceError, match="euclid:HITS:STEPS"):
        load_source("euclid:5")


# --- the built-in line -----------------------------------------------------------------------

def test_builtin_line_is_a_two_octave_line_with_ratchets_and_lengths():
    line = builtin_line()
    notes = {n.note for n in line.notes}
    assert min(notes) == 48 and max(notes) == 72  # C3..C5
    assert line.cycle_steps == 64
    steps = [n.step for n in line.notes]
    assert steps == sorted(steps)
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert min(gaps) < 0.5  # ratchets: several gates inside one 16th
    assert len({round(n.length, 3) for n in line.notes}) >= 4  # varied gate lengths


def test_patch_orders_pitch_before_gate_and_keeps_legato_gates_apart():
    patch = build_patch(builtin_line(), bpm=150.0, bars=4)
    times = [c[0] for c in patch.changes]
    assert times == sorted(times)
    level, fell = 0.0, -1.0
    for t, jack, value in patch.changes:
        if jack == "gate":
            if value > 0 and level == 0:
                assert t - fell >= GATE_MIN_LOW_S - 1e-12
            elif value == 0:
                fell = t
            level = value
    for i, (t, jack, _) in enumerate(patch.changes):
        if jack == "pitch":  # a pitch change never comes after the gate rising at the same time
            assert not any(c[0] == t and c[1] == "gate" and c[2] > 0 for c in patch.changes[:i])
    assert len(patch.gate_rises()) == len(patch.onsets)
    assert patch.bars == pytest.approx(4.0)


def test_clock_and_reset_pulses():
    patch = build_patch(load_source("euclid:4:16"), bpm=120.0, bars=2, clock_ppqn=4)
    clock_rises = [t for t, jack, v in patch.changes if jack == "clock" and v > 0]
    assert len(clock_rises) == 2 * 4 * 4
    assert clock_rises[1] - clock_rises[0] == pytest.approx(0.125)
    assert [t for t, jack, v in patch.changes if jack == "reset" and v > 0] == [0.0]


# --- MIDI files --------------------------------------------------------------------------------

def test_monophonic_midi_track_becomes_gate_and_pitch(tmp_path):
    # bass on channel 1: C3, legato into Eb3, a chord (G3 + C4: the highest wins), a rest, F4
    notes = [(0, 240, 48, 100, 0), (240, 480, 51, 90, 0), (480, 700, 55, 80, 0),
             (480, 700, 60, 80, 0), (960, 1080, 65, 70, 0)]
    path = write_midi(tmp_path / "bass.mid", [notes], bpm=100.0)
    source = load_source(str(path))
    assert not source.drum and source.bpm == pytest.approx(100.0)
    assert [n.note for n in source.notes] == [48, 51, 60, 65]
    patch = build_patch(source, bpm=source.bpm, bars=1)
    step = 60 / 100 / 4  # 480 ticks per beat: 120 ticks per 16th
    assert patch.gate_rises() == pytest.approx([0, 2 * step, 4 * step, 8 * step])
    for rise, note in zip(patch.gate_rises(), [48, 51, 60, 65], strict=True):
        assert jack_at(patch, "pitch", rise) == pytest.approx(note_volts(note))
    assert note_volts(60) == 0.0 and note_volts(72) == 1.0  # 1 V/oct, 0 V = C4
    # --bpm overrides the file's tempo: the same steps, shorter seconds
    fast = build_patch(source, bpm=200.0, bars=1)
    assert fast.gate_rises() == pytest.approx([t / 2 for t in patch.gate_rises()])


def test_drum_track_becomes_a_groove_with_velocities(tmp_path):
    # channel 10: kick + closed hat together (one onset, the louder velocity), a snare, a flam
    drums = [(0, 60, 36, 100, 9), (0, 60, 42, 60, 9), (240, 300, 38, 127, 9),
             (480, 540, 38, 40, 9), (485, 540, 42, 80, 9)]
    path = write_midi(tmp_path / "drums.mid", [drums], bpm=120.0)
    source = load_source(str(path))
    assert source.drum
    assert len(source.notes) == 5  # every drum note is kept for input.mid and the roll
    patch = build_patch(source, bpm=120.0, bars=1)
    rises = patch.gate_rises()
    assert len(rises) == 3
    velocities = [jack_at(patch, "velocity_cv", t) / VELOCITY_CV_VOLTS for t in rises]
    assert velocities == pytest.approx([100 / 127, 1.0, 80 / 127])


def test_polyphonic_drum_notes_on_another_channel_are_drums(tmp_path):
    kit = [(0, 60, 36, 100, 0), (0, 60, 42, 70, 0), (240, 300, 38, 90, 0)]
    bass = [(0, 200, 40, 100, 1), (240, 440, 43, 100, 1)]  # drum-range notes, one at a time
    assert load_source(str(write_midi(tmp_path / "kit.mid", [kit]))).drum
    assert not load_source(str(write_midi(tmp_path / "bass.mid", [bass]))).drum


def test_bad_midi_sources_name_the_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(SourceError, match="bad.mid"):
        load_source(str(bad))
    with pytest.raises(SourceError, match="missing.mid"):
        load_source(str(tmp_path / "missing.mid"))
    with pytest.raises(SourceError, match="unknown source"):
        load_source("metropolis")


# --- panel values and changes over time --------------------------------------------------------

def test_controls_csv_in_seconds_and_bars(tmp_path):
    path = tmp_path / "moves.csv"
    path.write_text("time,key,value\n# a comment\n2.5s,follow,0.3\n3,morph,1\n"
                    "3.5,tempo,140\n4,press,randomize_a\n", encoding="utf-8")
    changes = load_controls(path)
    patch = build_patch(builtin_line(), bpm=120.0, bars=8, changes=changes,
                        controls={"follow": 0.8, "tempo": 120.0})
    by_jack = [(t, j, v) for t, j, v in patch.changes if j in ("follow", "morph", "tempo")
               or j.startswith("press.")]
    assert [(t, j) for t, j, _ in by_jack] == [
        (0.0, "follow"), (0.0, "tempo"), (2.5, "follow"), (4.0, "morph"), (5.0, "tempo"),
        (6.0, "press.randomize_a")]
    assert pot_value("tempo", by_jack[4][2]) == pytest.approx(140.0)
    assert by_jack[2][2] == pytest.approx(0.3)


@pytest.mark.parametrize("row, message", [
    ("1,volume,0.5", "'volume' is not a panel control"),
    ("1,follow,1.5", "follow"),
    ("soon,follow,0.5", "neither seconds"),
    ("0,follow,0.5", "bars count from 1"),
    ("1,press,explode", "button 'explode'"),
    ("1,follow", "expected time_or_bar,key,value"),
])
def test_controls_csv_errors_name_file_and_line(tmp_path, row, message):
    path = tmp_path / "c.csv"
    path.write_text(f"1,follow,0.5\n{row}\n", encoding="utf-8")
    with pytest.raises((SourceError, ValueError)) as info:
        load_controls(path)
    assert message in str(info.value)
    assert "c.csv" in str(info.value)


def test_pot_positions_cover_the_schema_range():
    assert pot_position("tempo", 20.0) == 0.0 and pot_position("tempo", 300.0) == 1.0
    assert pot_value("follow", 0.25) == 0.25
    assert pot_value("tempo", 2.0) == 300.0  # a pot cannot go past its end


def test_recorder_hits_take_the_velocity_written_before_the_trigger():
    rec = OutputRecorder()
    rec.write(0.0, 1, "velocity", 4.0, voice=0)
    rec.write(0.0, 1, "trigger", 5.0, voice=0)
    rec.write(0.005, 1, "trigger", 0.0, voice=0)
    rec.write(0.5, 2, "velocity", 8.0)
    rec.write(0.5, 2, "trigger", 5.0)
    rec.write(0.5, 99, "clock", 5.0)
    hits = rec.hits(velocity_full_volts=8.0)
    assert [(h.time, h.output, h.velocity, h.voice) for h in hits] == [
        (0.0, 1, 0.5, 0), (0.5, 2, 1.0, None)]
