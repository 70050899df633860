"""The ES-9's MIDI mirror on its JACK client (`es9.midiframes.MidiFrames`): what the process
callback writes, cycle by cycle (the real JACK path: test_jack_native's
test_es9_mirror_notes_on_the_trigger_frames)."""

from __future__ import annotations

import numpy as np
from grooverack.backends.es9.midiframes import MidiFrames
from grooverack.backends.es9.outputs import LevelQueue

SR = 48000
ON, OFF = bytes((0x91, 36, 100)), bytes((0x81, 36, 0))


class Written:
    """What a JACK MIDI port's `write_midi_event` got, in order (JACK wants offsets in order)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, bytes]] = []

    def write_midi_event(self, offset: int, data: bytes) -> None:
        assert not self.events or offset >= self.events[-1][0], (offset, self.events)
        self.events.append((offset, bytes(data)))


def frames(react: int = 128) -> MidiFrames:
    m = MidiFrames(SR)
    m.react, m.driven = react, True
    return m


def render(m: MidiFrames, f0: int, frames: int = 64, zeroing: bool = False) -> Written:
    """One cycle: what the engine thread placed since the last, handed over (as the
    LevelQueue hands it), then written."""
    port = Written()
    m.render(port, f0, frames, [(f, d) for f, _, d in m.take()], zeroing)
    return port


def test_each_message_at_its_events_frame():
    """Engine time t -> frame round(t x rate) + R, as ES9Outputs.changes places the CV."""
    m = frames()
    m.schedule(1000 / SR, ON)  # frame 1128
    m.schedule(1096 / SR, OFF)  # frame 1224
    port = render(m, 1088)
    assert port.events == [(40, ON)]
    port = render(m, 1152)
    assert port.events == []
    port = render(m, 1216)
    assert port.events == [(8, OFF)] and m.idle and m.late == 0


def test_a_note_on_and_its_note_off_both_late_stay_in_order():
    """Both reached the callback after their frames: at the cycle's first frame, the note-on
    first (a note-off first would leave the note hanging); a retrigger's note-off at one frame
    goes before the note-on."""
    m = frames()
    m.schedule(0.0, ON)
    m.schedule(96 / SR, OFF)
    port = render(m, 640)
    assert port.events == [(0, ON), (0, OFF)] and m.late == 2
    m.schedule(1000 / SR, ON)
    m.schedule(1000 / SR, OFF)  # (sent after it: a retrigger's end of the old note)
    port = render(m, 1088)
    assert port.events == [(40, OFF), (40, ON)]


def test_no_stream_drops_and_a_stop_writes_all_but_note_ons_now():
    m = frames()
    m.driven = False
    m.schedule(0.0, ON)
    assert m.dropped == 1 and m.idle
    m.driven = True
    m.schedule(10.0, ON)  # far ahead: a note-on a stop drops
    m.schedule(10.0, OFF)
    m.schedule(10.0, bytes((0xB1, 123, 0)))
    m.schedule(10.5, b"\xf8")  # a clock tick predicted past the stop
    port = render(m, 0, zeroing=True)
    assert port.events == [(63, OFF), (63, bytes((0xB1, 123, 0)))] and m.idle


def test_a_message_reaches_the_callback_with_its_level_change():
    """Handed over in the LevelQueue with the pass's level changes: both late in the same cycle
    (the level from the cycle's first sample, the note-on at its first frame), never one on
    time and the other a cycle later."""
    levels = LevelQueue(np.zeros(2, dtype=np.float32))
    m = frames()
    m.schedule(1000 / SR, ON)  # frame 1128, the trigger's rise
    levels.extend(sorted([(1128, 0, 0.4), *m.take()], key=lambda c: c[0]))
    out = np.zeros((64, 2), dtype=np.float32)
    levels.render(out, 1152, 64)
    port = Written()
    m.render(port, 1152, 64, levels.midi)
    assert out[0, 0] == np.float32(0.4) and port.events == [(0, ON)]
    assert levels.late_events == 1 and m.late == 1 and not levels.midi
