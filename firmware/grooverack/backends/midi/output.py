"""MIDI output: player events -> timed messages (`MidiOutput`) on the sender (`MidiSender`, the
shared `TimedScheduler`), notes and channels per profile (`OutputMap`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from grooverack.boards.midi import MidiOptions
from grooverack.engine.player import OutputEvent
from grooverack.runtime.scheduler import TimedScheduler
from grooverack.voices import VOICE_GM_NOTES

log = logging.getLogger(__name__)

SPIN = 0.0015  # s: the sender sleeps until this long before a message, then spins


class OutputMap:
    """Which note and channel each output plays, per profile."""

    def __init__(self, options: MidiOptions) -> None:
        self.options = options

    def note(self, output: int, voice: int) -> tuple[int, int]:
        """(channel 0..15, note) for an engine output (1..16) and the voice that fired it."""
        o = self.options
        if o.profile == "gm":
            return (o.channel or 10) - 1, VOICE_GM_NOTES[voice]
        if o.profile == "custom":
            channel, note = o.notes[output - 1]
            return (channel or o.channel or 1) - 1, note
        return (o.channel or 1) - 1, min(127, o.poly2_note + output - 1)


class MidiSender:
    """MIDI out on the shared `TimedScheduler` (its thread sleeps, then spins, to each message's
    time and sends it); records when each really left. Clock: `clock()` (time.monotonic).

    `direct`: a message already due when it is scheduled (a step on a clock tick that just came
    in) is sent at once from the scheduling thread, with whatever else is due, in order, instead
    of after a wake-up of the sender thread and a GIL hand-over to it (`TimedScheduler(direct=
    True)`, as the Pi loop and the wall-clock sim board do). The MIDI back end's engine loop
    sends that way; the ES-9's mirror, scheduled from JACK's process callback, does not."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, log_size: int = 100_000,
                 direct: bool = False):
        self.clock = clock
        self.port: Any = None  # an open rtmidi.MidiOut, or None while the port is away
        self.scheduler: TimedScheduler[bytes] = TimedScheduler(
            self._emit, clock=self._ahead, t0=0.0, spin=SPIN, name="grooverack-midi-send",
            direct=direct)
        self._send_lock = threading.Lock()  # the scheduler's thread and flush() both send
        self.sent: deque[tuple[float, float, bytes]] = deque(maxlen=log_size)  # (due, sent, msg)
        self.flushed: list[tuple[float, float, bytes]] = []  # sent early by flush() at a stop
        # set while the JACK server is away: messages are dropped (and counted), never handed to
        # a dead rtmidi client, whose send spins forever once its ring buffer is full (`JackWatch`)
        self.paused = False
        self.dropped = 0
        self.placed_count = 0  # messages the port's real-time path wrote (`placed`)
        # (due, note-on) -> its note's length in s, for a port that writes the note-off itself
        # at the note-on's frame + that length (`jackport.JackMidiOut`); read as it is sent
        self.lengths: dict[tuple[float, bytes], float] = {}

    def _ahead(self) -> float:
        """The scheduler's clock: a port that sends its messages a fixed time after it is
        handed them (`jackport.JackMidiOut.lead`, one JACK period) is handed them that early."""
        return self.clock() + getattr(self.port, "lead", 0.0)

    @property
    def thread(self) -> threading.Thread | None:
        return self.scheduler.thread

    def queued(self) -> list[tuple[float, bytes]]:
        """What waits to be sent, in sending order (the queue itself is left alone)."""
        return self.scheduler.queued()

    def schedule(self, t: float, data: bytes, length: float | None = None) -> None:
        """Send `data` at `t`; a note-on with its note's `length` (s): a JACK port of its own
        writes the note-off itself, that many frames after the note-on's (the engine loop's
        note-off, when it comes at that time, is then dropped by the port)."""
        data = bytes(data)
        if length is not None:
            if len(self.lengths) > 4096:  # notes dropped before they were sent (`cancel`)
                now = self.clock()
                self.lengths = {k: v for k, v in self.lengths.items() if k[0] > now - 1.0}
            self.lengths[(t, data)] = length
        self.scheduler.schedule(t, data)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the thread; what is still queued is dropped (`flush()` first sends it)."""
        self.scheduler.stop(timeout=2.0)

    def cancel(self, after: float, data: bytes | None = None,
               where: Callable[[bytes], bool] | None = None) -> int:
        """Drop queued copies of `data` (or messages for which `where(msg)` holds) due after
        `after` (predicted clock ticks, note-ons not yet sounding at a stop)."""
        return self.scheduler.cancel(
            lambda t, msg: t > after and (msg == data if where is None else where(msg)))

    def flush(self) -> None:
        """Send everything still queued now (at shutdown: no note left hanging)."""
        for t, data in self.scheduler.flush():
            self._send(t, data, self.flushed)

    def placed(self, t: float, data: bytes, frame: int, length: float | None = None) -> None:
        """`data`, due at `t`, was written at JACK frame `frame` by the port's real-time path
        (the step table; with its note-off `length` s later): logged as sent, and the port told
        (a note-off sent for it from here goes the note's length after that frame)."""
        with self._send_lock:
            port = self.port
            if port is not None and not self.paused and hasattr(port, "placed"):
                port.placed(data, frame, due=t, length=length)
            self.placed_count += 1
            self.sent.append((t, self.clock(), data))

    def _emit(self, data: bytes, due: float, actual: float) -> None:
        self._send(due, data, self.sent)

    def _send(self, due: float, data: bytes, log_to: Any) -> None:
        length = self.lengths.pop((due, data), None) if self.lengths else None
        with self._send_lock:
            port = self.port
            if self.paused:
                self.dropped += 1
            elif port is not None:
                try:
                    if hasattr(port, "lead"):  # a JACK port of its own: late by how much
                        now = self.clock()
                        port.send_message(data, late=max(0.0, now + port.lead - due), due=due,
                                          length=length, now=now)
                    else:
                        port.send_message(data)
                except Exception as exc:  # a port that vanished mid-send: keep playing
                    log.debug("MIDI send failed: %s", exc)
            log_to.append((due, self.clock(), data))


class Sender(Protocol):
    """Where `MidiOutput` puts its messages: `MidiSender`, or on the ES-9's own JACK client
    `es9.midiframes.MidiFrames` (each message at its CV change's frame)."""

    def schedule(self, t: float, data: bytes, length: float | None = None) -> None: ...

    def placed(self, t: float, data: bytes, frame: int, length: float | None = None) -> None: ...

    def cancel(self, after: float, data: bytes | None = None,
               where: Callable[[bytes], bool] | None = None) -> int: ...


class MidiOutput:
    """Turns player events into note-on/off (and clock) messages on the sender."""

    def __init__(self, options: MidiOptions, sender: Sender, clock_ppqn: int = 4,
                 length: Callable[[int], float] | None = None) -> None:
        self.map = OutputMap(options)
        # output -> how long a note rising now on it lasts (`Engine.trigger_seconds`): handed
        # over with each note-on, so that a JACK port writes the note-off at its frame itself
        self.length = length
        self.sender = sender
        self.clock_out = options.clock_out
        self.clock_ppqn = clock_ppqn
        self._velocity: dict[int, int] = {}  # output -> MIDI velocity of its next note
        self._sounding: dict[int, tuple[int, int]] = {}  # output -> (channel, note) now on
        self.channels: set[int] = set()  # every channel a note went out on (all notes off)
        self._last_clock: float | None = None
        self._clock_count = 0
        self.started = False
        # (step row, output) -> (clock tick, JACK frame, note-on, its length in s) written by the
        # port's real-time path from the step table, not yet played here (`written`, `play`)
        self.written: dict[tuple[int, int], tuple[int, int, bytes, float | None]] = {}
        # (clock tick, JACK frame) of each MIDI clock the step table forwarded, in order, not yet
        # played here (`_clock_tick` takes the oldest)
        self.written_clock: deque[tuple[int, int]] = deque()
        # (clock tick, JACK frame, step row, note-on) of each note played from the step table
        self.placed: deque[tuple[int, int, int, bytes]] = deque(maxlen=100_000)

    def step_table(self, events: list[OutputEvent]) -> tuple[tuple[int, int, bytes], ...]:
        """The note-ons `play` would send for `events` (`Engine.on_next_pulse`: velocity events
        and rises), as (step row, output, message), less those a table already wrote that the
        engine has not played yet (a tick it took as noise: its step waits for the next one),
        and the MIDI clock it forwards (step row, 0, 0xF8); nothing changes."""
        velocity = dict(self._velocity)
        notes = []
        # MIDI clock forwarded (24 PPQN and more out, once started): each clock-out pulse the
        # tick releases, as `_clock_tick` counts them (none while one written waits to be played)
        count = self._clock_count if self.clock_out and self.started and self.clock_ppqn >= 24 \
            and not self.written_clock else None
        for event in events:
            if event.kind == "clock" and count is not None and event.value > 0.5:
                count += 1
                if count % (self.clock_ppqn // 24) == 0:
                    notes.append((event.step, 0, b"\xf8"))
                continue
            if event.kind == "velocity":
                velocity[event.output] = max(1, min(127, round(event.value * 127)))
            elif event.kind == "trigger" and event.value > 0.5 \
                    and event.output not in self._sounding \
                    and (event.step, event.output) not in self.written:
                channel, note = self.map.note(event.output, event.voice)
                notes.append((event.step, event.output,
                              bytes((0x90 | channel, note, velocity.get(event.output, 100)))))
        return tuple(notes)

    def start_table(self, events: list[OutputEvent]) -> tuple[tuple[int, int, bytes], ...]:
        """The note-ons `play` would send for `events` (`Engine.on_start_pulse`: step 0 after a
        Start) as (step row, output, message): velocities as they will be then, no note on an
        output sounding now (left to the engine loop), nothing forwarded; nothing changes."""
        velocity = dict(self._velocity)
        notes = []
        for event in events:
            if event.kind == "velocity":
                velocity[event.output] = max(1, min(127, round(event.value * 127)))
            elif event.kind == "trigger" and event.value > 0.5 \
                    and event.output not in self._sounding:
                channel, note = self.map.note(event.output, event.voice)
                notes.append((event.step, event.output,
                              bytes((0x90 | channel, note, velocity.get(event.output, 100)))))
        return tuple(notes)

    def note_offs(self, notes: tuple[tuple[int, int, bytes], ...],
                  frames: Callable[[int], int]) -> tuple[tuple[int, bytes], ...]:
        """Each of `notes`' note-off as (its length in frames, `frames(output)`, message): what
        the port writes after the note-on when a step table fires ((0, b"") for a clock)."""
        return tuple((frames(output), bytes((0x80 | data[0] & 0x0F, data[1], 0)))
                     if data[0] & 0xF0 == 0x90 else (0, b"") for _, output, data in notes)

    def wrote(self, tick: int, frame: int, notes: tuple[tuple[int, int, bytes], ...],
              lengths: tuple[float, ...] = ()) -> None:
        """The port's real-time path wrote `notes` (a step table) at `frame` on clock tick
        `tick`, each with its note-off `lengths` s later (none: the note-off is `play`'s):
        `play` sends them no more."""
        for i, (step, output, data) in enumerate(notes):
            if data == b"\xf8":
                self.written_clock.append((tick, frame))
                continue
            length = lengths[i] if i < len(lengths) else None
            self.written[(step, output)] = (tick, frame, data, length)

    def forget_written(self, tick: int) -> None:
        """Tables that fired on clock ticks up to `tick` whose rises the engine did not play (a
        tick it ignored as noise): forgotten."""
        if self.written:
            self.written = {k: v for k, v in self.written.items() if v[0] > tick}
        while self.written_clock and self.written_clock[0][0] <= tick:
            self.written_clock.popleft()

    def play(self, event: OutputEvent, at: float | None = None) -> None:
        """Schedule what an engine OutputEvent means at `at` (default: its own time)."""
        t = event.time if at is None else at
        kind = event.kind
        if kind == "velocity":
            self._velocity[event.output] = max(1, min(127, round(event.value * 127)))
        elif kind == "trigger":
            if event.value > 0.5:
                if event.output in self._sounding:  # retrigger before the fall: end it first
                    self._note_off(t, event.output)
                channel, note = self.map.note(event.output, event.voice)
                velocity = self._velocity.get(event.output, 100)
                data = bytes((0x90 | channel, note, velocity))
                written = self.written.pop((event.step, event.output), None)
                if written is not None and written[2] == data:
                    self.sender.placed(t, data, written[1], written[3])
                    self.placed.append((written[0], written[1], event.step, data))
                else:
                    self.sender.schedule(t, data, None if self.length is None
                                         else self.length(event.output))
                self._sounding[event.output] = (channel, note)
                self.channels.add(channel)
            elif event.output in self._sounding:
                self._note_off(t, event.output)
        elif kind == "clock" and self.clock_out and event.value > 0.5:
            self._clock_tick(t)

    def _note_off(self, t: float, output: int) -> None:
        channel, note = self._sounding.pop(output)
        self.sender.schedule(t, bytes((0x80 | channel, note, 0)))

    def _clock_tick(self, t: float) -> None:
        """24 PPQN out of the player's clock at clock_ppqn: subdivide by the last interval."""
        if not self.started:
            self.sender.schedule(t, b"\xfa")
            self.started = True
        if self.clock_ppqn >= 24:
            self._clock_count += 1
            if self._clock_count % (self.clock_ppqn // 24) == 0:
                if self.written_clock:  # forwarded by the step table at its tick's frame
                    self.sender.placed(t, b"\xf8", self.written_clock.popleft()[1])
                else:
                    self.sender.schedule(t, b"\xf8")
            self._last_clock = t
            return
        ticks = 24 // self.clock_ppqn
        if self._last_clock is None or t - self._last_clock > 4.0:
            self.sender.schedule(t, b"\xf8")  # no interval yet: one tick now
        else:
            interval = t - self._last_clock
            for k in range(ticks):
                self.sender.schedule(t + k * interval / ticks, b"\xf8")
        self._last_clock = t

    def transport(self, t: float) -> int:
        """A MIDI Start / Stop / Continue / Song Position came in at `t`: the note-ons (and the
        clock ticks predicted) that the old phase queued past it are dropped, so nothing of the
        free-running or stopped pattern sounds after it (`auto` plays ahead on the internal
        clock until a Start arrives; Start's step 0 waits for the next clock). A dropped note's
        note-off still goes out, harmlessly. Returns how many were dropped."""
        dropped = self.sender.cancel(t, where=lambda msg: msg[0] & 0xF0 == 0x90)
        if self.clock_out and self.started:
            dropped += self.sender.cancel(t, b"\xf8")
            self._last_clock = None
        return dropped

    def stop(self, t: float) -> None:
        """Everything off at `t`: note-ons queued past it dropped, a note-off for each sounding
        note, all notes off (CC 123) on every channel used, and MIDI Stop when clock goes out."""
        self.sender.cancel(t, where=lambda msg: msg[0] & 0xF0 == 0x90)
        for output in list(self._sounding):
            self._note_off(t, output)
        for channel in sorted(self.channels):
            self.sender.schedule(t, bytes((0xB0 | channel, 123, 0)))
        if self.clock_out and self.started:
            self.sender.cancel(t, b"\xf8")  # ticks predicted past the stop
            self.sender.schedule(t, b"\xfc")
            self.started = False
        self._last_clock = None
