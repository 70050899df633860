"""The ES-9's MIDI mirror on the ES-9's own JACK client: each message at its CV change's frame.

On JACK (`es9.transport` jack, `midi.api = jack`) the mirror has no client of its own: the ES-9's
JACK client (`jackclient.JackAudioStream`) carries one MIDI output port beside its audio ports,
and the process callback that writes the trigger, velocity and clock levels at their frames
writes each mirrored message at the same frame, in the same cycle. `MidiFrames` takes the
place of the mirror's `MidiSender` (`MidiOutput.sender`): the engine thread places each message
at the frame `ES9Outputs.changes` gives the event (`round(t x rate) + R` on the stream's
frames) and hands it over in the `LevelQueue` with the pass's level changes, in one step (`take`),
so one late to the callback is late with its CV change; `render` (the process callback) only
moves bytes. A note-off is the trigger's fall
(the engine's event), so it lands on the fall's frame. Without JACK the mirror keeps its own
port (rtmidi, or a `JackMidiOut` beside a PortAudio stream).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from grooverack.backends.es9.outputs import MIDI

CLOCK = b"\xf8"


def _is_note_on(data: bytes) -> bool:
    return len(data) >= 3 and data[0] & 0xF0 == 0x90 and data[2] > 0


class MidiFrames:
    """Mirrored messages on the ES-9 stream's frames: queued by the engine thread, written by
    the stream's process callback at their frames (the `MidiOutput` sender of the mirror)."""

    def __init__(self, samplerate: int) -> None:
        self.sr = samplerate
        self.react = 0  # R: set by the engine thread with each pass's events (`ES9Backend`)
        self.driven = False  # a stream plays: set by the engine thread; else messages dropped
        self.staged: list[tuple[int, int, bytes]] = []  # the engine thread's, for `take`
        self._pending: list[tuple[int, bytes]] = []  # the callback's own, for later cycles
        self.written: deque[tuple[int, int, bytes]] = deque(maxlen=100_000)  # (frame, at, msg)
        self.dropped = 0  # messages of a pass without a stream
        self.late = 0  # messages that reached the callback after their frame

    # --- the engine thread (MidiOutput's sender)
    def frame(self, t: float) -> int:
        """Engine time -> output frame, as `ES9Outputs.changes` places a level change."""
        return int(round(t * self.sr)) + self.react

    def schedule(self, t: float, data: bytes, length: float | None = None) -> None:
        """`data` at the frame of engine time `t` (a note's `length` is its fall's business)."""
        if not self.driven:
            self.dropped += 1
            return
        self.staged.append((self.frame(t), MIDI, bytes(data)))

    def take(self) -> list[tuple[int, int, bytes]]:
        """What was placed since the last take, as `LevelQueue` entries (column `MIDI`)."""
        staged, self.staged = self.staged, []
        return staged

    def placed(self, t: float, data: bytes, frame: int, length: float | None = None) -> None:
        """(A step table's: the ES-9 has none.)"""

    def cancel(self, after: float, data: bytes | None = None,
               where: Callable[[bytes], bool] | None = None) -> int:
        """Nothing is taken back: what is queued is the callback's (a stop drops its note-ons,
        `render(zeroing=True)`)."""
        return 0

    def reset(self) -> None:
        """A new stream: what was queued for the old one dropped (the callback's)."""
        self._pending = []

    @property
    def idle(self) -> bool:
        """Nothing taken off the queue waits for its frame."""
        return not self._pending

    # --- the process callback
    def render(self, port: Any, f0: int, frames: int, taken: list[tuple[int, bytes]],
               zeroing: bool = False) -> None:
        """Write what falls into the cycle from frame `f0` at its frame (one already late at the
        cycle's first), in frame order, a note-off before a note-on of one frame. `zeroing`
        (stopping): note-ons and clock ticks dropped, the rest (note-offs, all notes off, Stop)
        now. `taken`: the messages the `LevelQueue` handed over this cycle (emptied)."""
        pending = self._pending
        if taken:
            pending.extend(taken)
            taken.clear()
        if not pending:
            return
        due: list[tuple[int, bool, int, bytes]] = []
        keep: list[tuple[int, bytes]] = []
        for frame, data in pending:
            rel = frame - f0
            on = _is_note_on(data)
            if zeroing:
                if on or data == CLOCK:  # (a clock tick predicted past the stop)
                    continue
                rel = min(max(rel, 0), frames - 1)
            elif rel >= frames:
                keep.append((frame, data))
                continue
            elif rel < 0:
                rel = 0
                self.late += 1
            due.append((rel, on, frame, data))
        self._pending = keep
        # (late ones in their own order: a note-on and its note-off both late stay in order)
        due.sort(key=lambda e: (e[0], e[2], e[1]))
        for rel, _, frame, data in due:
            port.write_midi_event(rel, data)
            self.written.append((frame, f0 + rel, data))
