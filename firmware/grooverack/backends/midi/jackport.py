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
- output: `send_message()` places the message at the frame of its due time one period on
  (`lead`; `_map`, a steady map of `time.monotonic()` to JACK's frames; without a due time, one
  period on from JACK's current frame estimate), never before the next cycle (the sender hands
  it over that much early, `MidiSender._ahead`); the process callback writes what falls into
  its cycle at its frame. A note-off goes at its note-on's frame + the note's length: written
  by the callback itself when the length came with the note-on (`_offs`).
- the step table (`steptable.StepTable`): a step that waits for a MIDI clock tick is written by
  the input's process callback itself, the moment that tick is read: at the tick's own frame,
  the output's client running later in the same cycle (an `order` port connects the input's
  client to the output's: JACK runs them in that order); should that connection be missing, at
  the tick's frame + one period (`JackMidiOut.write_later`), each note's note-off its length
  later. The engine loop hands the table over (one reference, swapped whole: the callback only
  compares two counts and moves bytes) and learns from `fired` what was written.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from grooverack.backends.jack import CLIENT_NAME
from grooverack.backends.midi.steptable import (
    START,
    TICK,
    TRANSPORT,
    StepTable,
    count_clock,
    note_key,
)

WRAP = 1 << 32  # jack_nframes_t
ORDER_PORT = "order"  # each client's port of the input -> output connection (`order_after`)
MAP_DRIFT = 0.0001  # s/s: how fast `JackMidiOut._map` follows a JACK clock faster than ours
ENDS_EARLY = 0.002  # s: a note-off the engine loop sends this much before the one written with
#                     its note-on (a retrigger, a stop) goes out too (the second is harmless)


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
        # (clock ticks, transport messages, other messages) the process callback read
        self.heard = [0, 0, 0]
        self.taken = [0, 0, 0]  # the same, of what `get_message` handed on
        self.table: StepTable | None = None  # set by the engine loop, read by the callback
        # (table, out frame, tick, whether its `start` was written) of each table written
        self.fired: deque[tuple[StepTable, int, int, bool]] = deque(maxlen=1024)
        self._started: StepTable | None = None  # a Start read after this table, no tick yet

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
            if table is not None and msg == TICK:
                if table.tick == heard[0] and table.transport == heard[1]:
                    frame = table.out.write_later(raw + offset, table.notes, self, table.offs)
                    if frame is not None:
                        self.fired.append((table, frame, heard[0], False))  # before the tick
                elif table is self._started and table.other == heard[2] \
                        and table.patterns is not None and table.patterns() == table.offered:
                    frame = table.out.write_later(raw + offset, table.start, self,
                                                  table.start_offs)
                    if frame is not None:
                        self.fired.append((table, frame, heard[0], True))
                self._started = None
            elif table is not None and msg and msg[0] in TRANSPORT:
                # the first Start after the table, nothing else since (no tick either: a note
                # it wrote may still sound): its first tick writes `start` (a second transport
                # message voids it)
                self._started = table if (msg[0] == START and table.start
                                          and table.transport + 1 == heard[1]
                                          and table.tick == heard[0] + 1) else None
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
    """rtmidi's `MidiOut` on JACK: each message one period after it is sent, at its frame; a
    note-off at its note-on's frame + the note's length in frames."""

    def __init__(self, _api: int = 0, name: str = CLIENT_NAME) -> None:
        super().__init__(_api, name)
        # handed to the process callback (deques: appended by other threads, drained by it)
        # (frame, message, for a note-off written with its note-on the frame of that, else -1)
        self._queue: deque[tuple[int, bytes, int]] = deque(maxlen=65536)  # the engine loop's
        self._now: deque[tuple[int, bytes, int]] = deque(maxlen=4096)  # the step table's notes
        self._offs: deque[tuple[int, bytes, int]] = deque(maxlen=4096)  # the note-offs
        self._pending: list[tuple[int, bytes, int]] = []  # the process callback's own, to write
        self._last = 0  # the frame the last message was placed at (JACK wants them in order)
        # (channel, note) -> (frame, due time, length in s or None) of the last note-on placed:
        # its note-off goes at that frame + the note's length (due times' difference) in frames
        self._on: dict[tuple[int, int], tuple[int, float, float | None]] = {}
        self.after: JackMidiIn | None = None  # the input JACK runs this client after, each cycle
        self._offset: tuple[float | None, float] = (None, 0.0)  # `_map`: (frames, at time)

    @property
    def lead(self) -> float:
        """Seconds from `send_message` to the message's frame (one period)."""
        return self.blocksize / self.samplerate

    def _map(self, now: float) -> float:
        """JACK frame - seconds x rate at time `now` (`time.monotonic`), the map from a due time
        to its frame: the frame estimate less the time, read together; a thread preempted
        between the two reads only makes that larger, so the map is their leaky minimum
        (rising MAP_DRIFT a second for a device clock that runs fast, at once down to a lower
        one, as when the server missed cycles; a restarted server is a new client)."""
        raw = float(self.client.frame_time) - now * self.samplerate
        off, since = self._offset
        if off is None or raw < off:
            off = raw
        else:
            off = min(raw, off + MAP_DRIFT * self.samplerate * max(0.0, now - since))
        self._offset = (off, now)
        return off

    def send_message(self, data: Any, late: float = 0.0, due: float | None = None,
                     length: float | None = None, now: float | None = None) -> None:
        """Place `data` one period from now, less `late` seconds (a message sent after its time:
        at its frame if that is still to come, else at the first frame that is). A note-on with
        its note's `length` (s): its note-off is written here too, that many frames after it.
        A note-off with its `due` time goes at its note-on's frame + (due - the note-on's due)
        in frames, whatever the frame estimate says (never before the next cycle); one due when
        the note-off written here is, is that one (dropped)."""
        if self.dead:
            return
        c = self.client
        n = self.blocksize
        data = bytes(data)
        if due is not None and now is not None:  # its frame from its time, on a steady map
            want = int(round(due * self.samplerate + self._map(now))) + n
        else:
            want = int(c.frame_time) + n - int(round(late * self.samplerate))
        first = int(c.last_frame_time) + n
        frame = max(want, first, self._last)
        key = note_key(data)
        if key is not None:
            note = key[:2]
            if key[2]:
                if due is not None:
                    self._on[note] = (frame, due, length)
                if length is not None:
                    off = bytes((0x80 | note[0], note[1], 0))
                    self._offs.append(((frame + round(length * self.samplerate)) % WRAP, off,
                                       frame))
            else:
                on = self._on.pop(note, None)
                if on is not None and due is not None:
                    if on[2] is not None and due >= on[1] + on[2] - ENDS_EARLY:
                        return  # its note-off is written already (`_offs`)
                    frame = max(first, on[0] + int(round((due - on[1]) * self.samplerate)))
        self._last = max(self._last, frame)
        self._queue.append((frame, data, -1))

    def order_after(self, inp: JackMidiIn) -> None:
        """Connect `inp`'s order port to this client's: JACK then runs this client after `inp`'s
        in every cycle, and a step table `inp` fires is written in the tick's own cycle."""
        self.after = None
        self.client.connect(inp.order_port, self.order_port)
        self.after = inp

    def write_later(self, frame: int, notes: tuple[tuple[int, int, bytes], ...],
                    source: JackMidiIn | None = None,
                    offs: tuple[tuple[int, bytes], ...] = ()) -> int | None:
        """The input's process callback: `notes` written at JACK frame `frame` itself when this
        client runs after `source` (`order_after`: later in the tick's own cycle), else at
        `frame` + one period (the next cycle, whichever of the two JACK runs first): a fixed
        latency either way; each of `offs` (frames after the note, note-off) that many frames
        after it. Returns the frame; None when this client is gone."""
        if self.dead or self.port is None:
            return None
        at = frame if source is not None and source is self.after else \
            (frame + self.blocksize) % WRAP
        for _, _, data in notes:
            self._now.append((at, data, -1))
        for length, data in offs:
            if data:
                self._offs.append(((at + length) % WRAP, data, at))
        return at

    def placed(self, data: bytes, frame: int, due: float, length: float | None = None) -> None:
        """The engine loop: `data`, due at `due`, was written at `frame` already (`write_later`,
        with its note-off `length` s later): a note-off the loop sends for it goes the note's
        length from there (at `length`: it is the one written, dropped)."""
        key = note_key(data)
        if not self.dead and key is not None and key[2]:
            self._on[key[:2]] = (frame, due, length)

    def _process(self, frames: int) -> None:
        port = self.port
        if port is None:
            return
        port.clear_buffer()
        f0 = self.client.last_frame_time
        pending = self._pending
        for q in (self._queue, self._now, self._offs):
            while q:
                pending.append(q.popleft())
        # (frame in the cycle, 1 for a note-on, message, the frame of its note-on for a note-off
        # written with it, else -1)
        due: list[tuple[int, int, bytes, int]] = []
        starts: dict[tuple[int, int, bool] | None, int] = {}  # note -> frame it starts again at
        keep: list[tuple[int, bytes, int]] = []
        for p in pending:
            rel = (p[0] - f0) % WRAP  # frame_time wraps with last_frame_time
            if rel >= frames and rel < WRAP // 2:
                keep.append(p)  # a later cycle's
                continue
            rel = rel if rel < frames else 0  # late: the cycle's first frame
            key = note_key(p[1])
            if key is not None and key[2]:
                starts.setdefault((key[0], key[1], False), rel)
            due.append((rel, int(key is not None and key[2]), p[1], p[2]))
        if starts:  # a note-off written with its note-on, still to come when that note starts
            #        again: just before the new note-on (a retrigger ends the old note only)
            def earlier(data: bytes, at: int, rel: int) -> int:
                start = starts.get(note_key(data), -1)
                old = at >= 0 and 0 < (f0 + start - at) % WRAP < WRAP // 2
                return start if old and 0 <= start < rel else rel

            due = [(earlier(data, at, rel), kind, data, at) for rel, kind, data, at in due]
            moved = [(earlier(p[1], p[2], WRAP), p) for p in keep]
            due += [(rel, 0, p[1], p[2]) for rel, p in moved if rel != WRAP]
            keep = [p for rel, p in moved if rel == WRAP]
        self._pending = keep
        due.sort(key=lambda e: (e[0], e[1]))  # in frame order; at one frame note-offs first
        for rel, _, data, _ in due:
            port.write_midi_event(rel, data)
