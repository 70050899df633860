"""MIDI back end (python-rtmidi): notes, clock and CCs in; the player's events out as notes.

Threads, as the back-end contract wants them:
- rtmidi queues incoming messages in its own (C++) input thread, with their time deltas; no
  Python runs there, so a JACK or ALSA thread never waits for the GIL;
- the engine loop (one thread) polls that queue every POLL seconds and turns the messages into
  engine calls (onsets, clock, transport, controls) at the times the MIDI system stamped them,
  calls `engine.advance(now + LOOKAHEAD)` and hands each event to the output, which turns it into
  timed messages; once a second it looks for ports that went away or came back;
- the sender (one thread, the shared `runtime.scheduler.TimedScheduler`) sleeps, then spins,
  to each message's time and sends it; a message already due when the engine loop makes it (a
  step on a clock tick that just came in) leaves at once from the loop, no thread hand-over.
Generation runs in the engine's own worker (`Engine(threaded=True)`), never in these threads.

The timeline is `time.monotonic()`. Output messages leave at the time the player scheduled,
micro-timing included: the same events the CV outputs would play.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from grooverack.backends.midiparse import (
    ControlChange,
    MidiParser,
    NoteOff,
    NoteOn,
    Realtime,
    SongPosition,
    decode,
)
from grooverack.boards.midi import MidiOptions, midi_options
from grooverack.config import Settings
from grooverack.controls import CC_MAX, ControlRange, cc_position
from grooverack.errors import ConfigError
from grooverack.runtime.listen import AudioListener
from grooverack.runtime.priority import realtime, short_gil_slices
from grooverack.runtime.scheduler import TimedScheduler
from grooverack.runtime.serve import Lifecycle, make_engine
from grooverack.voices import VOICE_GM_NOTES, VOICE_GROUPS

log = logging.getLogger(__name__)


CLIENT_NAME = "grooverack"
VIRTUAL_IN = "grooverack in"
VIRTUAL_OUT = "grooverack out"
LOOKAHEAD = 0.02  # s: events are taken from the player this far ahead of their time
POLL = 0.001  # s: the engine loop looks at its input and the player at least this often (a
#              step on a MIDI clock tick goes out within this of the tick's arrival)
DRIFT = 0.0005  # s/s: how fast the MIDI system's clock may drift from time.monotonic()
SPIN = 0.0015  # s: the sender sleeps until this long before a message, then spins
PORT_CHECK = 1.0  # s between looks for ports that went away or came back (or the JACK server)


def load_rtmidi():
    """python-rtmidi (the desktop extra), imported when MIDI is first used: `grooverack --help`
    and the other jobs never need it."""
    import rtmidi

    return rtmidi


def api_id(name: str) -> int:
    rtmidi = load_rtmidi()
    return {"default": rtmidi.API_UNSPECIFIED, "alsa": rtmidi.API_LINUX_ALSA,
            "jack": rtmidi.API_UNIX_JACK}[name]


# --- input: messages -> engine calls

class MidiInputHandler:
    """Turns complete MIDI messages into engine calls (on the engine loop's thread)."""

    def __init__(self, engine: Any, options: MidiOptions) -> None:
        self.engine = engine
        self.options = options
        self.parser = MidiParser()
        self.counts: dict[str, int] = {}
        self.ranges: dict[str, ControlRange] = {}  # CC'd controls' ranges (`grooverack.controls`)
        self._high: dict[int, bool] = {}  # press CC -> its last value was 64..127
        self.presses: deque[tuple[float, str, Any]] = deque(maxlen=10_000)  # (t, action, result)
        # called with t before a Start / Stop / Continue / Song Position is handed on: the back
        # end drops what the old phase queued past it (`MidiOutput.transport`)
        self.on_transport: Callable[[float], Any] | None = None

    def feed(self, t: float, data: bytes) -> None:
        for msg in self.parser.iter_feed(data):
            self.handle(t, msg)

    def handle(self, t: float, msg: bytes) -> None:
        event = decode(msg)
        eng, opts = self.engine, self.options
        if isinstance(event, Realtime):
            self._count(event.kind)
            if event.kind != "clock" and self.on_transport is not None:
                self.on_transport(t)
            if event.kind == "clock":
                eng.midi_clock(t)
            elif event.kind == "start":
                eng.start(t, midi=True)
            elif event.kind == "stop":
                eng.stop(t)
            elif event.kind == "continue":
                eng.continue_(t, midi=True)
            return
        if isinstance(event, SongPosition):
            self._count("song_position")
            if self.on_transport is not None:
                self.on_transport(t)
            eng.song_position(t, event.sixteenths)
            return
        if not isinstance(event, NoteOn | NoteOff | ControlChange):
            return
        if opts.input_channel and event.channel != opts.input_channel - 1:
            return
        if isinstance(event, NoteOn | NoteOff) and opts.fill_note \
                and event.note == opts.fill_note:
            self._count("fill")
            eng.fill(t, isinstance(event, NoteOn))  # held = the fill gate high
            return
        if isinstance(event, ControlChange) and opts.fill_cc and event.control == opts.fill_cc:
            self._count("fill")
            eng.fill(t, event.value >= 64)
            return
        if isinstance(event, NoteOn | NoteOff) and event.note in opts.press_notes:
            if isinstance(event, NoteOn):  # (its note-off: nothing, as a button's release)
                self._press(t, opts.press_notes[event.note])
            return
        if isinstance(event, ControlChange) and self._button_cc(t, event):
            return
        if isinstance(event, NoteOn):
            self._count("note")
            if opts.velocity_source == "pitch":  # note number as 1 V/oct pitch, C4 (60) = 0 V
                eng.onset(t, pitch_volts=(event.note - 60) / 12.0)
            else:
                eng.onset(t, velocity=event.velocity / 127.0)
        elif isinstance(event, ControlChange):
            control = opts.cc.get(event.control)
            if control is not None:
                self._count("cc")
                rng = self.ranges.get(control)
                if rng is None:
                    rng = self.ranges[control] = ControlRange.for_key(control)
                eng.set_control(control, rng.value(cc_position(event.value)))

    def _button_cc(self, t: float, event: ControlChange) -> bool:
        """A press CC, a mute group's CC or the style CC: acted on, True; else False."""
        opts, eng, number, high = self.options, self.engine, event.control, event.value >= 64
        if number in opts.press_cc:
            was, self._high[number] = self._high.get(number, False), high
            if high and not was:  # 64..127 after a value below 64 (or the first one)
                self._press(t, opts.press_cc[number])
            return True
        if number in opts.mute_cc:
            self._count("mute")
            keys = [f"mute.{v}" for v in VOICE_GROUPS[opts.mute_cc[number]]]
            if any(eng.settings[k] != high for k in keys):  # a repeated value asks for nothing
                for key in keys:
                    eng.set_control(key, high)
            return True
        if opts.style_cc and number == opts.style_cc:  # (0 = none: CC 0 is bank select)
            self._count("style")
            styles = eng.offered_styles
            style = styles[min(len(styles) - 1, event.value * len(styles) // (CC_MAX + 1))]
            if eng.settings["genre"] != style:
                eng.set_control("genre", style)
            return True
        return False

    def _press(self, t: float, action: str) -> None:
        """A panel button pressed from MIDI: `Engine.press`, as the panel's buttons do (a press
        that cannot act, an empty preset slot, is logged by the engine and returns None)."""
        self._count("press")
        self.presses.append((t, action, self.engine.press(action)))

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


# --- output: player events -> timed messages

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
            self._emit, clock=clock, t0=0.0, spin=SPIN, name="grooverack-midi-send",
            direct=direct)
        self._send_lock = threading.Lock()  # the scheduler's thread and flush() both send
        self.sent: deque[tuple[float, float, bytes]] = deque(maxlen=log_size)  # (due, sent, msg)
        self.flushed: list[tuple[float, float, bytes]] = []  # sent early by flush() at a stop
        # set while the JACK server is away: messages are dropped (and counted), never handed to
        # a dead rtmidi client, whose send spins forever once its ring buffer is full (`JackWatch`)
        self.paused = False
        self.dropped = 0

    @property
    def thread(self) -> threading.Thread | None:
        return self.scheduler.thread

    def queued(self) -> list[tuple[float, bytes]]:
        """What waits to be sent, in sending order (the queue itself is left alone)."""
        return self.scheduler.queued()

    def schedule(self, t: float, data: bytes) -> None:
        self.scheduler.schedule(t, bytes(data))

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

    def _emit(self, data: bytes, due: float, actual: float) -> None:
        self._send(due, data, self.sent)

    def _send(self, due: float, data: bytes, log_to: Any) -> None:
        with self._send_lock:
            port = self.port
            if self.paused:
                self.dropped += 1
            elif port is not None:
                try:
                    port.send_message(data)
                except Exception as exc:  # a port that vanished mid-send: keep playing
                    log.debug("MIDI send failed: %s", exc)
            log_to.append((due, self.clock(), data))


class MidiOutput:
    """Turns player events into note-on/off (and clock) messages on the sender."""

    def __init__(self, options: MidiOptions, sender: MidiSender, clock_ppqn: int = 4) -> None:
        self.map = OutputMap(options)
        self.sender = sender
        self.clock_out = options.clock_out
        self.clock_ppqn = clock_ppqn
        self._velocity: dict[int, int] = {}  # output -> MIDI velocity of its next note
        self._sounding: dict[int, tuple[int, int]] = {}  # output -> (channel, note) now on
        self.channels: set[int] = set()  # every channel a note went out on (all notes off)
        self._last_clock: float | None = None
        self._clock_count = 0
        self.started = False

    def play(self, event: Any, at: float | None = None) -> None:
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
                self.sender.schedule(t, bytes((0x90 | channel, note, velocity)))
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


# --- ports: by name substring, virtual when none is named, reopened when they come back

def find_port(names: list[str], wanted: str) -> int | None:
    """Index of the first port whose name contains `wanted` (case-insensitive), skipping
    grooverack's own ports unless asked for by name."""
    w = wanted.lower()
    for i, name in enumerate(names):
        low = name.lower()
        if w in low and (CLIENT_NAME not in low or CLIENT_NAME in w):
            return i
    return None


_JACK_NO_START_SERVER = 0x01
CLOSE_TIMEOUT = 2.0  # s: a JACK client close that takes longer is left behind
_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_quiet = _ERROR(lambda _msg: None)


class JackWatch:
    """Whether the JACK server is there: a libjack client of its own (ctypes; no ports, never
    activated) whose shutdown callback runs the moment the server goes away.

    rtmidi's JACK clients never notice a server that died: their port lists go stale, sends go
    on into a 16 KiB ring buffer nobody drains, and once it is full (~2200 note messages, ~40 s of
    playing) `send_message` spins in `sched_yield()` holding the GIL, wedging every thread of the
    process; closing or deleting a dead rtmidi output waits 1 s, GIL held. So: `on_down()` (called
    on JACK's thread) pauses the sender, and the back end re-creates its clients when `connect()`
    succeeds again."""

    def __init__(self, on_down: Callable[[], None], name: str = f"{CLIENT_NAME} watch") -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                         ctypes.POINTER(ctypes.c_int)]
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _SHUTDOWN, ctypes.c_void_p]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        lib.jack_set_error_function.argtypes = [_ERROR]
        lib.jack_client_real_time_priority.restype = ctypes.c_int
        lib.jack_client_real_time_priority.argtypes = [ctypes.c_void_p]
        lib.jack_is_realtime.restype = ctypes.c_int
        lib.jack_is_realtime.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self.name = name
        self.on_down = on_down
        self.up = threading.Event()
        self.downs = 0  # how many times the server went away
        self._client: int | None = None
        self._callback = _SHUTDOWN(self._shutdown)  # referenced for as long as libjack may call it

    def _shutdown(self, _arg: Any) -> None:
        self.up.clear()
        self.downs += 1
        self.on_down()

    def connect(self) -> bool:
        """(Re)open the watch client; True when the server is there. libjack's own complaints
        about a missing server are silenced while it tries."""
        self.close()
        lib = self._lib
        try:
            handler = ctypes.c_void_p.in_dll(lib, "jack_error_callback")
            saved = handler.value
        except ValueError:
            handler, saved = None, None
        if handler is not None:
            lib.jack_set_error_function(_quiet)
        try:
            status = ctypes.c_int(0)
            client = lib.jack_client_open(self.name.encode(), _JACK_NO_START_SERVER,
                                          ctypes.byref(status))
        finally:
            if handler is not None:
                handler.value = saved
        if not client:
            return False
        lib.jack_on_shutdown(client, self._callback, None)
        self._client = client
        self.up.set()
        return True

    def client_priority(self) -> int | None:
        """The SCHED_FIFO priority JACK gives its clients' process threads (0 when the server
        runs without real-time; None while not connected): grooverack's own real-time threads
        go below it (`runtime.priority.levels`)."""
        client = self._client
        if client is None or not self.up.is_set():
            return None
        if not self._lib.jack_is_realtime(client):
            return 0
        return max(int(self._lib.jack_client_real_time_priority(client)), 0)

    def rt_ceiling(self, settings: Settings) -> int | None:
        """The `ceiling` for `runtime.priority.realtime`: JACK's client priority when the
        setting `rt.below_jack` asks for grooverack's threads below it, else None (the fixed
        levels)."""
        return self.client_priority() if settings["rt.below_jack"] else None

    def close(self) -> None:
        """Close the client while its server is up; one of a dead server is only dropped
        (libjack's close of it, beside other clients' calls, crashed the process here)."""
        client, self._client = self._client, None
        if client is not None and self.up.is_set():
            # bounded: libjack's close waits for the server's answer, and once (a loaded box,
            # the server up) it never came: the stop, and the test run, hung for good. ctypes
            # lets go of the GIL, so a close left waiting in its own thread blocks nothing.
            done = threading.Event()

            def close() -> None:
                try:
                    self._lib.jack_client_close(client)
                finally:
                    done.set()

            threading.Thread(target=close, name="grooverack-jack-close", daemon=True).start()
            if not done.wait(CLOSE_TIMEOUT):
                log.warning("MIDI: closing the JACK watch client did not return within %.1f s; "
                            "left behind", CLOSE_TIMEOUT)


_dead_clients: list[Any] = []


def _forget(client: Any) -> None:
    """Keep a dead rtmidi client for good: deleting one whose JACK server died holds the GIL for
    a second (an output's close waits on a semaphore its process callback would post), so it is
    never deallocated, not even when the interpreter exits."""
    _dead_clients.append(client)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(client))


class PortKeeper:
    """One MIDI input or output: a named port (reopened when it returns) or a virtual one."""

    def __init__(self, direction: str, api: str, wanted: str,
                 on_open: Callable[[Any], None], on_close: Callable[[], None]) -> None:
        self.direction = direction  # "input" / "output"
        self.api = api
        self.wanted = wanted
        self.on_open, self.on_close = on_open, on_close
        self.port: Any = None
        self.port_name = ""
        self.opened = 0  # how many times a port was opened (reopens count)
        rtmidi = load_rtmidi()
        kind = rtmidi.MidiIn if direction == "input" else rtmidi.MidiOut
        self._kind = kind
        # listing goes through a client of its own, never the one carrying the data
        self._probe = self._client(f"{CLIENT_NAME} probe") if wanted else None

    def _client(self, name: str) -> Any:
        try:
            return self._kind(api_id(self.api), name=name)
        except Exception as exc:  # no ALSA sequencer, no JACK server, ...
            raise ConfigError(f"config key 'midi.api' = {self.api!r}: the MIDI system cannot be "
                              f"opened ({exc}); allowed: one that runs here (see `grooverack "
                              "ports`)") from None

    def _new(self) -> Any:
        port = self._client(CLIENT_NAME)
        if self.direction == "input":
            port.ignore_types(sysex=True, timing=False, active_sense=True)  # keep MIDI clock
        return port

    def open(self) -> None:
        if not self.wanted:
            port = self._new()
            name = VIRTUAL_IN if self.direction == "input" else VIRTUAL_OUT
            try:
                port.open_virtual_port(name)
            except (NotImplementedError, load_rtmidi().SystemError) as exc:
                raise ConfigError(f"midi.{self.direction}_port is empty and this MIDI system has "
                                  f"no virtual ports ({exc}); allowed: a port name from "
                                  "`grooverack ports`") from None
            self.port, self.port_name = port, name
            self.opened += 1
            self.on_open(port)
            log.info("MIDI %s: virtual port %r", self.direction, name)
            return
        if not self.check():
            log.warning("MIDI %s port %r not found; waiting for it (ports now: %s)",
                        self.direction, self.wanted, self.list() or "none")

    def list(self) -> list[str]:
        return self._probe.get_ports() if self._probe is not None else []

    def check(self) -> bool:
        """Close a port that went away, open a wanted one that is there. True when open."""
        if not self.wanted:
            return self.port is not None
        names = self.list()
        if self.port is not None:
            if self.port_name in names:
                return True
            log.warning("MIDI %s %r went away; reopening when it returns", self.direction,
                        self.port_name)
            self._close()
        index = find_port(names, self.wanted)
        if index is None:
            return False
        port = self._new()
        try:
            port.open_port(index)
        except Exception as exc:
            log.warning("MIDI %s %r could not be opened: %s", self.direction, names[index], exc)
            port.delete()
            return False
        self.port, self.port_name = port, names[index]
        self.opened += 1
        self.on_open(port)
        log.info("MIDI %s: %r", self.direction, self.port_name)
        return True

    def abandon(self) -> None:
        """The server went away: drop the clients without touching them (see `_forget`)."""
        port, self.port = self.port, None
        probe, self._probe = self._probe, None
        if port is not None:
            self.on_close()
        for client in (port, probe):
            if client is not None:
                _forget(client)

    def reconnect(self) -> None:
        """The server is back: new clients, the virtual port registered again or the named one
        looked for again."""
        self.abandon()
        if self.wanted:
            self._probe = self._client(f"{CLIENT_NAME} probe")
        self.open()

    def _close(self) -> None:
        port, self.port = self.port, None
        self.on_close()
        if port is not None:
            port.close_port()
            port.delete()

    def close(self) -> None:
        self._close()
        if self._probe is not None:
            self._probe.delete()
            self._probe = None


# --- the back end

class MidiBackend:
    """Drives an Engine from MIDI input and plays its events on a MIDI output."""

    def __init__(self, engine: Any, settings: Settings, board: Any = None, *,
                 clock: Callable[[], float] = time.monotonic, autostart: bool | None = None):
        self.engine = engine
        self.settings = settings
        self.options = midi_options(settings, board)
        self.clock = clock
        self._jt = 0.0  # the MIDI system's time of the last message (sum of rtmidi's deltas)
        self._offset = math.inf  # time.monotonic() - MIDI system time (a leaky minimum)
        self._last_poll = 0.0
        self.input = MidiInputHandler(engine, self.options)
        self.sender = MidiSender(clock, direct=True)  # a step on a tick leaves from the loop
        self.output = MidiOutput(self.options, self.sender, settings["outputs.clock_ppqn"])
        self.input.on_transport = self.output.transport
        # internal clock: play from the start; MIDI clock: wait for Start
        self.autostart = (settings["clock.source"] != "midi") if autostart is None else autostart
        self.played: deque[Any] = deque(maxlen=100_000)  # the player's events, for tests/bench
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ports: list[PortKeeper] = []
        self.watch: JackWatch | None = None  # midi.api = "jack": whether the server is there
        self._server_lost = False
        self.server_returns = 0  # times the ports were re-registered on a restarted server
        # input.source = audio: the onsets heard on input.audio_device (its own thread)
        self.listener = (AudioListener(settings, clock) if settings["input.source"] == "audio"
                         else None)

    def _attach_input(self, port: Any) -> None:
        self._jt, self._offset = 0.0, math.inf  # a new port: a new time base

    def poll_input(self) -> int:
        """Take every queued input message into the engine, at the time the MIDI system stamped
        it: the deltas rtmidi records are exact differences of that clock; its offset to
        time.monotonic() is the smallest (arrival - stamp) seen, leaking slowly for drift."""
        port = self.in_port.port if self._ports else None
        if port is None:
            return 0
        now = self.clock()
        self._offset += DRIFT * (now - self._last_poll) if self._offset != math.inf else 0.0
        self._last_poll = now
        batch = []
        while (msg := port.get_message()) is not None:
            data, delta = msg
            self._jt += delta
            self._offset = min(self._offset, now - self._jt)
            batch.append((self._jt, bytes(data)))
        for jt, data in batch:
            self.input.feed(self._offset + jt, data)
        return len(batch)

    def _attach_output(self, port: Any) -> None:
        self.sender.port = port

    def _detach_output(self) -> None:
        self.sender.port = None

    def open_ports(self) -> None:
        o = self.options
        self.in_port = PortKeeper("input", o.api, o.input_port, self._attach_input, lambda: None)
        self.out_port = PortKeeper("output", o.api, o.output_port, self._attach_output,
                                   self._detach_output)
        self._ports = [self.in_port, self.out_port]
        for keeper in self._ports:
            keeper.open()
        if o.api == "jack":
            self.watch = JackWatch(self._on_server_gone)
            if not self.watch.connect():  # gone between the ports and now
                self._on_server_gone()

    def _on_server_gone(self) -> None:
        """JACK's thread (or ours): the server went away; nothing goes to its clients any more."""
        self.sender.paused = True

    def check_server(self) -> bool:
        """The engine loop, once a second: True while the JACK server is there. When it went
        away: logged once, the clients dropped (messages dropped and counted meanwhile); when it
        is back: new clients, ports registered again, logged."""
        watch = self.watch
        if watch is None or (watch.up.is_set() and not self._server_lost):
            return True
        if not self._server_lost:
            self._server_lost = True
            self.sender.paused = True
            log.warning("MIDI: the JACK server went away; MIDI out dropped until it is back, "
                        "then the ports are registered again")
            for keeper in self._ports:
                keeper.abandon()
        if not watch.connect():
            return False
        try:
            for keeper in self._ports:
                keeper.reconnect()
        except Exception as exc:  # it went away again, or is still starting
            log.debug("MIDI: re-registering the ports failed: %s", exc)
            for keeper in self._ports:
                keeper.abandon()
            return False
        self._server_lost = False
        self.sender.paused = False
        self.server_returns += 1
        log.warning("MIDI: the JACK server is back; ports registered again (%d messages "
                    "dropped while it was away)", self.sender.dropped)
        return True

    def start(self, rt: bool = False, heartbeat: Callable[[], Any] | None = None) -> None:
        """Start playing. `rt`: SCHED_FIFO for the sender, the engine loop one step below and
        the generator worker below that (a worker preempted while it holds the GIL would hold
        up the others), when permitted. `heartbeat()` is called by the engine loop every pass
        (the service's watchdog)."""
        if not self._ports:
            self.open_ports()
        short_gil_slices(0.0005)  # the sender must not wait 5 ms behind other threads' Python
        self.sender.start()
        if self.listener is not None:
            self.listener.start()
        if self.autostart:
            self.engine.start(self.clock())
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(heartbeat,),
                                        name="grooverack-midi-engine", daemon=True)
        self._thread.start()
        if rt:
            self.realtime()

    def realtime(self) -> bool:
        """SCHED_FIFO: the sender as the writer, the engine loop below it, the generator below
        that (`runtime.priority.realtime`); memory locked. With `rt.below_jack` on JACK all
        three sit below JACK's own client threads (`JackWatch.client_priority`) instead."""
        ceiling = self.watch.rt_ceiling(self.settings) if self.watch is not None else None
        return realtime(writer=self.sender.thread, loop=self._thread, ceiling=ceiling)

    def stop(self) -> None:
        """Stop playing, outputs off: the engine loop stopped, then at once note-offs for what
        sounds, all notes off (CC 123) on each channel used, MIDI Stop when clock goes out, and
        everything still queued sent now; then the ports closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.listener is not None:
            self.listener.stop()
        now = self.clock()
        self.output.stop(now)
        self.sender.flush()
        self.sender.stop()
        gone = self.watch is not None and (self._server_lost or not self.watch.up.is_set())
        for keeper in self._ports:
            if gone:
                keeper.abandon()  # a dead client's close would hold the GIL for a second
            else:
                keeper.close()
        self._ports = []
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def _loop(self, heartbeat: Callable[[], Any] | None = None) -> None:
        next_check = self.clock() + PORT_CHECK
        eng, clock = self.engine, self.clock
        while not self._stop.wait(POLL):
            if heartbeat is not None:
                heartbeat()
            self.poll_input()
            if self.listener is not None:  # onsets heard in audio, at their own sample's time
                for t, velocity in self.listener.drain():
                    eng.onset(t, velocity=velocity)
            now = clock()
            for event in eng.advance(now + LOOKAHEAD):
                self.played.append(event)
                self.output.play(event)
            if now >= next_check:
                next_check = now + PORT_CHECK
                try:
                    if not self.check_server():
                        continue
                except Exception as exc:
                    log.debug("MIDI: JACK server check: %s", exc)
                for keeper in self._ports:
                    try:
                        keeper.check()
                    except Exception as exc:  # listing can fail while a device unplugs
                        log.debug("MIDI port check: %s", exc)
        self.poll_input()  # what arrived before the stop still counts

    def run(self, duration: float | None = None) -> None:
        """Play until Ctrl-C (or for `duration` seconds)."""
        self.start()
        try:
            if duration is None:
                while True:
                    time.sleep(1.0)
            else:
                time.sleep(duration)
        finally:
            self.stop()


def run_backend(board: Any, settings: Settings, args: Any = None) -> int:
    """`grooverack run --board midi` (or any board of kind "midi").

    The lifecycle is `runtime.serve.Lifecycle`: state restored before it plays, READY + the
    watchdog (the engine loop beats), and on SIGTERM/SIGINT or at the end of `--duration`:
    note-offs, all notes off and MIDI Stop (clock out) sent, then the state saved; exit 0."""
    engine = make_engine(settings, threaded=True)
    try:
        backend = MidiBackend(engine, settings, board)
        life = Lifecycle(settings, engine)
        life.restore()  # presets + last performance, before the first step plays
        backend.open_ports()
    except BaseException:
        engine.close()
        raise
    duration = getattr(args, "duration", None)
    print(f"grooverack: MIDI in {backend.in_port.port_name or backend.options.input_port!r}, "
          f"out {backend.out_port.port_name or backend.options.output_port!r}, "
          f"profile {backend.options.profile}; Ctrl-C to stop", file=sys.stderr)

    def loop_alive() -> None:
        if backend._thread is None or not backend._thread.is_alive():
            raise RuntimeError("the MIDI engine loop stopped")

    try:
        backend.start(rt=bool(getattr(args, "rt", False)), heartbeat=life.beat)
        life.ready(f"board {getattr(board, 'name', 'midi')} up (MIDI, profile "
                   f"{backend.options.profile})", outputs_to_zero=backend.stop)
        life.wait(duration, every=loop_alive)
        return life.shutdown()  # outputs off, state saved, engine stopped
    except BaseException:
        log.exception("MIDI back end stopped by an error: outputs off")
        if life.service is None:
            backend.stop()
        life.shutdown()
        raise
