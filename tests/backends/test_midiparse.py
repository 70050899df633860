"""The byte-level MIDI parser: running status, interleaved real-time bytes, garbage, SysEx."""

from __future__ import annotations

import mido
from grooverack.backends.midi.parse import (
    ControlChange,
    MidiParser,
    NoteOff,
    NoteOn,
    Realtime,
    SongPosition,
    decode,
)
from hypothesis import given, settings
from hypothesis import strategies as st

channel_msg = st.one_of(
    st.tuples(st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0xE0]), st.integers(0, 15),
              st.integers(0, 127), st.integers(0, 127)).map(lambda t: bytes((t[0] | t[1], t[2], t[3]))),
    st.tuples(st.sampled_from([0xC0, 0xD0]), st.integers(0, 15),
              st.integers(0, 127)).map(lambda t: bytes((t[0] | t[1], t[2]))),
    st.tuples(st.integers(0, 127), st.integers(0, 127)).map(lambda t: bytes((0xF2, *t))),
    st.lists(st.integers(0, 127), max_size=20).map(lambda d: bytes((0xF0, *d, 0xF7))),
)
realtime = st.sampled_from([0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF])


def running_status(msgs: list[bytes]) -> bytes:
    """Encode as a sender using running status would (status omitted when it repeats)."""
    out, running = bytearray(), None
    for m in msgs:
        if m[0] < 0xF0 and m[0] == running:
            out += m[1:]
        else:
            out += m
            running = m[0] if m[0] < 0xF0 else None
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(channel_msg, max_size=30), st.data())
def test_running_status_and_interleaved_realtime(msgs, data):
    stream = bytearray(running_status(msgs))
    # real-time bytes may appear between any two bytes, even inside a message or a SysEx
    inserts = data.draw(st.lists(st.tuples(st.integers(0, len(stream)), realtime), max_size=10))
    for pos, byte in sorted(inserts, reverse=True):
        stream.insert(pos, byte)
    chunks = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=50))
    parser, out, i = MidiParser(), [], 0
    for size in chunks * (len(stream) + 1):  # feed in arbitrary chunk sizes
        if i >= len(stream):
            break
        out += parser.feed(stream[i:i + size])
        i += size
    assert [m for m in out if m[0] < 0xF8] == msgs
    assert sorted(m[0] for m in out if m[0] >= 0xF8) == sorted(b for _, b in inserts)
    assert parser.dropped == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.lists(channel_msg, min_size=1, max_size=10))
def test_resynchronises_after_garbage(garbage, msgs):
    parser = MidiParser()
    parser.feed(garbage)
    # a clean status byte starts over: every message after it comes through intact
    # (a garbage SysEx start is closed by the first status byte; 0xF7 only ends it)
    out = parser.feed(b"\xf7" + b"".join(msgs))
    assert out[-len(msgs):] == msgs


def test_garbage_is_dropped_and_counted():
    parser = MidiParser()
    # stray data, a note cut short by a new status, a stray 0xF7, undefined 0xF4 / 0xFD
    out = parser.feed(bytes([0x12, 0x40, 0x90, 0x3C, 0x80, 0x3C, 0x00, 0xF7, 0xF4, 0xFD, 0x05]))
    # 0x05 after an undefined system common byte has no running status left: dropped
    assert out == [bytes([0x80, 0x3C, 0x00])]
    assert parser.dropped == 2 + 2 + 1 + 1 + 1 + 1


def test_realtime_inside_a_note_keeps_the_note():
    parser = MidiParser()
    assert parser.feed(bytes([0x99, 0x24, 0xF8, 0x64, 0x26, 0xFA, 0x50])) == [
        b"\xf8", bytes([0x99, 0x24, 0x64]), b"\xfa", bytes([0x99, 0x26, 0x50])]


def test_matches_mido_on_a_real_file(tmp_path):
    # a file written by mido, parsed back from its raw track bytes
    track = mido.MidiTrack()
    notes = [(36, 100), (42, 60), (38, 127), (42, 1)]
    for note, vel in notes:
        track.append(mido.Message("note_on", channel=9, note=note, velocity=vel, time=0))
        track.append(mido.Message("clock", time=0))
        track.append(mido.Message("note_on", channel=9, note=note, velocity=0, time=120))
    track.append(mido.Message("songpos", pos=300))
    raw = b"".join(bytes(m.bytes()) for m in track)
    events = [decode(m) for m in MidiParser().feed(raw)]
    assert [e for e in events if isinstance(e, NoteOn)] == [NoteOn(9, n, v) for n, v in notes]
    assert [e for e in events if isinstance(e, NoteOff)] == [NoteOff(9, n) for n, _ in notes]
    assert events.count(Realtime("clock")) == 4
    assert events[-1] == SongPosition(300)


def test_decode():
    assert decode(bytes([0x91, 60, 0])) == NoteOff(1, 60)
    assert decode(bytes([0xB2, 20, 64])) == ControlChange(2, 20, 64)
    assert decode(b"\xfc") == Realtime("stop")
    assert decode(bytes([0xC0, 3])) is None
    assert decode(b"") is None
