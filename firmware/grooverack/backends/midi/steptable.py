"""The step table: what the MIDI output on JACK writes at a clock tick's own frame.

The engine loop hands the input's process callback an immutable `StepTable` (one reference,
swapped whole): the notes the next tick plays, their note-offs, the forwarded clock and a guess
of step 0 after a Start. The callback counts the clock ticks, transport and other messages it
reads by the same rule as the loop (`count_clock`), so it only compares counts and moves bytes
(`jackport.JackMidiIn`, `jackport.JackMidiOut.write_later`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

TICK = b"\xf8"
START = 0xFA
TRANSPORT = (START, 0xFB, 0xFC, 0xF2)  # Start, Continue, Stop, Song Position


class TickWriter(Protocol):
    """The output that writes a table's notes (`jackport.JackMidiOut`)."""

    def write_later(self, frame: int, notes: tuple[tuple[int, int, bytes], ...],
                    source: Any = None,
                    offs: tuple[tuple[int, bytes], ...] = ()) -> int | None: ...


def count_clock(msg: bytes, counts: list[int]) -> None:
    """counts[0] += 1 for a MIDI clock tick, counts[1] += 1 for a transport message, counts[2]
    += 1 for any other message but real-time ones (a note, a CC: what may change a control):
    the same rule on both sides of the step table (the process callback, the engine loop)."""
    if msg == TICK:
        counts[0] += 1
    elif msg and msg[0] in TRANSPORT:
        counts[1] += 1
    elif msg and msg[0] < 0xF8:
        counts[2] += 1


@dataclass(frozen=True, eq=False)
class StepTable:
    """What the output writes when the input's clock tick number `tick` arrives (counted since
    the input port opened), if `transport` transport messages came before it (a Start, Stop,
    Continue or Song Position in between: the engine's phase moved, the table is void). `notes`:
    (step row, output, message) in sending order; `offs`: each note's note-off as (frames after
    the tick's frame, message), in the same order (the note's gate length in frames).

    `start` / `start_offs`: the same for the first tick after a MIDI Start that comes after
    the `transport`-th transport message and `other` other messages (nothing else in between:
    a CC may change what step 0 plays), while the engine has offered `offered` patterns
    (`patterns()` reads the count now; one offered since voids the guess): step 0 of the
    pattern playing (`Engine.on_start_pulse`); () when not known ahead."""

    tick: int
    transport: int
    notes: tuple[tuple[int, int, bytes], ...]
    out: TickWriter
    offs: tuple[tuple[int, bytes], ...] = ()
    start: tuple[tuple[int, int, bytes], ...] = ()
    start_offs: tuple[tuple[int, bytes], ...] = ()
    other: int = 0
    offered: int = 0
    patterns: Callable[[], int] | None = None


def note_key(data: bytes) -> tuple[int, int, bool] | None:
    """(channel, note, is a note-on) of a note message (a note-on of velocity 0 is an off)."""
    if len(data) < 3 or data[0] & 0xE0 != 0x80:
        return None
    return data[0] & 0x0F, data[1], data[0] & 0xF0 == 0x90 and data[2] > 0
