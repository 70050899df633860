"""MIDI on JACK as JACK clients of the module's own (JACK-Client): every event at its frame.

python-rtmidi's JACK input stamps a cycle's events by the wall clock of its process callback and
its output writes each message at the start of the next cycle; between them and JACK's frame
clock sit a period of jitter each way. `JackMidiIn` / `JackMidiOut` have the shape of rtmidi's
`MidiIn` / `MidiOut` that `PortKeeper` and the back end use (`get_ports`, `open_virtual_port`,
`open_port`, `get_message`, `send_message`, `close_port`, `delete`), so the ports, the restarts
and the engine loop stay as they are; underneath:

- input: the process callback only appends (frame, bytes) of each event; `get_message()` hands
  it on with the time since the previous one from their frames (exact: nothing is ignored or
  merged, a SysEx without F7 is one event like any other);
- output: `send_message()` places the message `lead` frames on from JACK's current frame
  estimate (`frame_time`), one period: always within the next cycle, so every message leaves
  exactly one period after it was sent, without jitter (the sender hands it over that much
  early, `MidiSender._ahead`); one sent late by `late` seconds goes that much earlier, never
  before the next cycle; the process callback writes what falls into its cycle at its frame.
- the step table (`StepTable`): a step that waits for a MIDI clock tick is written by the input's
  process callback itself, the moment that tick is read: at the tick's own frame, the output's
  client running later in the same cycle (an `order` port connects the input's client to the
  output's: JACK runs them in that order); should that connection be missing, at the tick's
  frame + one period (`JackMidiOut.write_later`). The engine loop hands the table over (one
  reference, swapped whole: the callback only compares two counts and moves bytes) and learns
  from `fired` what was written.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from grooverack.backends.jack import CLIENT_NAME

WRAP = 1 << 32  # jack_nframes_t
TICK = b"\xf8"
ORDER_PORT = "order"  # each client's port of the input -> output connection (`order_after`)
TRANSPORT = (0xFA, 0xFB, 0xFC, 0xF2)  # Start, Continue, Stop, Song Position


def count_clock(msg: bytes, counts: list[int]) -> None:
    """counts[0] += 1 for a MIDI clock tick, counts[1] += 1 for a transport message: the same
    rule on both sides of the step table (the process callback, the engine loop)."""
    if msg == TICK:
        counts[0] += 1
    elif msg and msg[0] in TRANSPORT:
        counts[1] += 1


@dataclass(frozen=True, eq=False)
class StepTable:
    """What the output writes when the input's clock tick number `tick` arrives (counted since
    the input port opened), if `transport` transport messages came before it (a Start, Stop,
    Continue or Song Position in between: the engine's phase moved, the table is void). `notes`:
    (step row, output, message) in sending order."""

    tick: int
    transport: int
    notes: tuple[tuple[int, int, bytes], ...]
    out: JackMidiOut


class _JackMidi:
    """One JACK client carrying one MIDI port (as rtmidi does: a client per port)."""

    is_input = False

    def __init__(self, _api: int = 0, name: str = CLIENT_NAME) -> None:
        import jack  # type: ignore[import-untyped]

        self.client = jack.Client(name, no_start_server=True)
        self.samplerate = int(self.client.samplerate)
        self.blocksize = int(self.client.blocksize)  # kept: a dead client is never called
        self.dead = False  # the server went away: nothing touches the client any more
        self.client.set_shutdown_callback(self._shutdown)
        self.client.set_blocksize_callback(self._blocksize)
        self.port: Any = None
        self.order_port: Any = None
        self._lock = threading.Lock()  # open/close vs the process callback

    def _shutdown(self, _status: Any, _reason: str) -> None:
        self.dead = True

    def _blocksize(self, frames: int) -> None:
        self.blocksize = int(frames)

    def ignore_types(self, **_kinds: bool) -> None:
        """Nothing is ignored on JACK (the parser and the handler drop what is not used)."""

    def get_ports(self) -> list[str]:
        """The other clients' MIDI ports this one can connect to, by full name."""
        ports = self.client.get_ports(is_midi=True, is_output=self.is_input,
                                      is_input=not self.is_input)
        own = self.client.name + ":"
        return [p.name for p in ports if not p.name.startswith(own)]

    def _register(self, name: str) -> Any:
        ports = self.client.midi_inports if self.is_input else self.client.midi_outports
        port = ports.register(name)
        # the order port: input -> output, so that JACK runs the output's client after the
        # input's in every cycle (`order_after`); it carries nothing
        order = self.client.midi_outports if self.is_input else self.client.midi_inports
        self.order_port = order.register(ORDER_PORT)
        self.client.set_process_callback(self._process)
        self.client.activate()
        self.port = port
        return port

    def open_virtual_port(self, name: str) -> None:
        self._register(name)

    def open_port(self, index: int) -> None:
        target = self.get_ports()[index]
        port = self._register("in" if self.is_input else "out")
        if self.is_input:
            self.client.connect(target, port)
        else:
            self.client.connect(port, target)

    def close_port(self) -> None:
        with self._lock:
            port, self.port = self.port, None
        if port is not None and not self.dead:
            self.client.deactivate()

    def delete(self) -> None:
        if not self.dead:
            self.client.close()

    def _process(self, frames: int) -> None:
        raise NotImplementedError


class JackMidiIn(_JackMidi):
    """rtmidi's `MidiIn` on JACK: events with their frame-exact time deltas."""

    is_input = True

    def __init__(self, _api: int = 0, name: str = CLIENT_NAME) -> None:
        super().__init__(_api, name)
        self._events: deque[tuple[int, bytes]] = deque(maxlen=65536)
        self._base = 0
        self._raw: int | None = None
        self._prev: int | None = None  # frame of the last event handed on
        self.heard = [0, 0]  # (clock ticks, transport messages) the process callback read
        self.taken = [0, 0]  # the same, of what `get_message` handed on
        self.table: StepTable | None = None  # set by the engine loop, read by the callback
        self.fired: deque[tuple[StepTable, int]] = deque(maxlen=1024)  # (table, out frame)

    def _process(self, frames: int) -> None:
        port = self.port
        if port is None:
            return
        raw = self.client.last_frame_time
        if self._raw is not None and raw < self._raw:
            self._base += WRAP
        self._raw = raw
        f0 = self._base + raw
        self.order_port.clear_buffer()  # (an output port's buffer is written every cycle)
        heard = self.heard
        for offset, data in port.incoming_midi_events():
            msg = bytes(data)
            count_clock(msg, heard)
            table = self.table
            if (msg == TICK and table is not None and table.tick == heard[0]
                    and table.transport == heard[1]):
                frame = table.out.write_later(raw + offset, table.notes, self)
                if frame is not None:
                    self.fired.append((table, frame))  # before the tick is handed on
            self._events.append((f0 + offset, msg))

    def get_message(self) -> tuple[list[int], float] | None:
        """(message bytes, seconds since the previous message), or None when none waits."""
        try:
            frame, data = self._events.popleft()
        except IndexError:
            return None
        count_clock(data, self.taken)
        delta = 0.0 if self._prev is None else (frame - self._prev) / self.samplerate
        self._prev = frame
        return list(data), delta


class JackMidiOut(_JackMidi):
    """rtmidi's `MidiOut` on JACK: each message one period after it is sent, at its frame."""

    def __init__(self, _api: int = 0, name: str = CLIENT_NAME) -> None:
        super().__init__(_api, name)
        self._queue: deque[tuple[int, bytes]] = deque(maxlen=65536)
        self._last = 0  # the frame the last message was placed at (JACK wants them in order)
        self._moved: dict[tuple[int, int], int] = {}  # (channel, note) -> frames placed late
        self._now: deque[tuple[int, bytes]] = deque(maxlen=4096)  # the step table's, by frame
        self.after: JackMidiIn | None = None  # the input JACK runs this client after, each cycle

    @property
    def lead(self) -> float:
        """Seconds from `send_message` to the message's frame (one period)."""
        return self.blocksize / self.samplerate

    def send_message(self, data: Any, late: float = 0.0) -> None:
        """Place `data` one period from now, less `late` seconds (a message sent after its time:
        at its frame if that is still to come, else at the first frame that is)."""
        if self.dead:
            return
        c = self.client
        n = self.blocksize
        data = bytes(data)
        want = int(c.frame_time) + n - int(round(late * self.samplerate))
        frame = max(want, int(c.last_frame_time) + n, self._last)
        kind = data[0] & 0xF0 if data else 0
        if kind in (0x80, 0x90) and len(data) > 2:
            key = (data[0] & 0x0F, data[1])
            if kind == 0x90 and data[2]:
                self._moved[key] = frame - want  # a late note-on: its note keeps its length
            else:
                frame = max(frame, want + self._moved.pop(key, 0))
        self._last = frame
        self._queue.append((frame, data))

    def order_after(self, inp: JackMidiIn) -> None:
        """Connect `inp`'s order port to this client's: JACK then runs this client after `inp`'s
        in every cycle, and a step table `inp` fires is written in the tick's own cycle."""
        self.after = None
        self.client.connect(inp.order_port, self.order_port)
        self.after = inp

    def write_later(self, frame: int, notes: tuple[tuple[int, int, bytes], ...],
                    source: JackMidiIn | None = None) -> int | None:
        """The input's process callback: `notes` written at JACK frame `frame` itself when this
        client runs after `source` (`order_after`: later in the tick's own cycle), else at
        `frame` + one period (the next cycle, whichever of the two JACK runs first): a fixed
        latency either way. Returns the frame; None when this client is gone."""
        if self.dead or self.port is None:
            return None
        at = frame if source is not None and source is self.after else \
            (frame + self.blocksize) % WRAP
        for _, _, data in notes:
            self._now.append((at, data))
        return at

    def placed(self, data: bytes, frame: int, late: float = 0.0) -> None:
        """The engine loop: `data`, due `late` s ago, was written at `frame` already
        (`write_later`): its note-off keeps the note's length from there."""
        if not self.dead and len(data) > 2 and data[0] & 0xF0 == 0x90 and data[2]:
            c = self.client
            want = int(c.frame_time) + self.blocksize - int(round(late * self.samplerate))
            self._moved[(data[0] & 0x0F, data[1])] = (frame - want + WRAP // 2) % WRAP - WRAP // 2

    def _process(self, frames: int) -> None:
        port = self.port
        if port is None:
            return
        port.clear_buffer()
        f0 = self.client.last_frame_time
        due: list[tuple[int, bytes]] = []
        for q in (self._queue, self._now):  # (at one frame, the loop's messages first)
            while q:
                frame, data = q[0]
                rel = (frame - f0) % WRAP  # frame_time wraps with last_frame_time
                if rel >= frames and rel < WRAP // 2:
                    break  # a later cycle's
                q.popleft()
                due.append((rel if rel < frames else 0, data))
        due.sort(key=lambda e: e[0])  # JACK takes a cycle's events in frame order
        for rel, data in due:
            port.write_midi_event(rel, data)
