"""A byte-level MIDI 1.0 stream parser: bytes in, complete messages out.

It survives what a real cable or driver delivers: garbage bytes, data bytes without a status,
running status, real-time bytes (0xF8..0xFF) interleaved anywhere (even inside a message or a
SysEx), a status byte cutting a message short, unterminated SysEx. Whatever cannot be a message is
dropped and counted, never raised: the module keeps playing.

Messages come out as `bytes` (status first, running status expanded), so the same code handles
what python-rtmidi hands over (already framed) and a raw serial or rawmidi stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Data bytes after a channel status, by high nibble.
_CHANNEL_DATA = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
# Data bytes after a system common status (0xF4/0xF5 are undefined: they carry none).
_COMMON_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF4: 0, 0xF5: 0, 0xF6: 0}
_UNDEFINED = (0xF4, 0xF5, 0xF9, 0xFD)

SYSEX_MAX = 4096  # longer SysEx is cut off and dropped: we never need it, memory stays bounded


class MidiParser:
    """Feed bytes in any chunks; get complete messages in stream order."""

    def __init__(self) -> None:
        self._running: int | None = None  # running status (channel messages only)
        self._msg: list[int] = []  # the message being collected, status first
        self._need = 0  # data bytes still missing from _msg
        self._sysex: bytearray | None = None
        self.dropped = 0  # bytes that could not belong to a message

    def feed(self, data: Iterable[int] | bytes) -> list[bytes]:
        return list(self.iter_feed(data))

    def iter_feed(self, data: Iterable[int] | bytes) -> Iterator[bytes]:
        for byte in data:
            if not 0 <= byte <= 0xFF:
                self.dropped += 1
                continue
            if byte >= 0xF8:  # real-time: never disturbs anything around it
                if byte in _UNDEFINED:
                    self.dropped += 1
                else:
                    yield bytes((byte,))
                continue
            if self._sysex is not None:
                if byte == 0xF7:
                    msg = bytes(self._sysex) + b"\xf7"
                    self._sysex = None
                    yield msg
                    continue
                if byte < 0x80:
                    if len(self._sysex) < SYSEX_MAX:
                        self._sysex.append(byte)
                    else:  # runaway SysEx: drop it, resynchronise on the next status
                        self.dropped += len(self._sysex) + 1
                        self._sysex = None
                    continue
                self.dropped += len(self._sysex)  # unterminated: cut short by a status
                self._sysex = None
            if byte >= 0x80:
                if self._need:  # a message cut short by this status byte
                    self.dropped += len(self._msg)
                self._msg, self._need = [], 0
                if byte == 0xF0:
                    self._running = None
                    self._sysex = bytearray(b"\xf0")
                elif byte == 0xF7:  # end of a SysEx that never started
                    self.dropped += 1
                elif byte >= 0xF0:  # system common cancels running status
                    self._running = None
                    need = _COMMON_DATA[byte]
                    if byte in _UNDEFINED:
                        self.dropped += 1
                    elif need == 0:
                        yield bytes((byte,))
                    else:
                        self._msg, self._need = [byte], need
                else:
                    self._running = byte
                    self._msg, self._need = [byte], _CHANNEL_DATA[byte & 0xF0]
                continue
            # a data byte
            if not self._need:
                if self._running is None:
                    self.dropped += 1
                    continue
                self._msg, self._need = [self._running], _CHANNEL_DATA[self._running & 0xF0]
            self._msg.append(byte)
            self._need -= 1
            if not self._need:
                msg = bytes(self._msg)
                self._msg = []
                yield msg


# --- decoding complete messages into what the module acts on

@dataclass(frozen=True)
class NoteOn:
    channel: int  # 0..15
    note: int
    velocity: int  # 1..127 (a note-on with velocity 0 decodes as NoteOff)


@dataclass(frozen=True)
class NoteOff:
    channel: int
    note: int


@dataclass(frozen=True)
class ControlChange:
    channel: int
    control: int
    value: int


@dataclass(frozen=True)
class SongPosition:
    sixteenths: int  # MIDI beats: 16th notes since the song start


@dataclass(frozen=True)
class Realtime:
    kind: str  # "clock", "start", "continue", "stop", "active_sensing", "reset"


_REALTIME = {0xF8: "clock", 0xFA: "start", 0xFB: "continue", 0xFC: "stop",
             0xFE: "active_sensing", 0xFF: "reset"}

Event = NoteOn | NoteOff | ControlChange | SongPosition | Realtime


def decode(msg: bytes) -> Event | None:
    """The event a complete message means to grooverack, or None for the ones it ignores."""
    if not msg:
        return None
    status = msg[0]
    if status in _REALTIME:
        return Realtime(_REALTIME[status])
    if status == 0xF2 and len(msg) == 3:
        return SongPosition(msg[1] | (msg[2] << 7))
    kind, channel = status & 0xF0, status & 0x0F
    if kind == 0x90 and len(msg) == 3:
        return NoteOn(channel, msg[1], msg[2]) if msg[2] else NoteOff(channel, msg[1])
    if kind == 0x80 and len(msg) == 3:
        return NoteOff(channel, msg[1])
    if kind == 0xB0 and len(msg) == 3:
        return ControlChange(channel, msg[1], msg[2])
    return None
