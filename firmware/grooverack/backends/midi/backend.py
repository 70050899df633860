"""The MIDI back end: input polled into the engine, the player's events out as notes.

Threads, as the back-end contract wants them:
- rtmidi queues incoming messages in its own (C++) input thread, with their time deltas; no
  Python runs there, so a JACK or ALSA thread never waits for the GIL;
- the engine loop (one thread) polls that queue every POLL seconds and turns the messages into
  engine calls (`inputs.MidiInputHandler`) at the times the MIDI system stamped them, calls
  `engine.advance(now + LOOKAHEAD)` and hands each event to the output, which turns it into
  timed messages; once a second it looks for ports that went away or came back;
- the sender (one thread, `output.MidiSender`) sleeps, then spins, to each message's time and
  sends it; a message already due when the engine loop makes it leaves at once from the loop;
- on JACK (`midi.api = jack`) a step that waits for a MIDI clock tick is not sent from here: the
  engine loop hands the input's process callback the step table (`hand_over_step_table`) and
  that callback writes the step's notes at the tick's own frame (`jackport`).
Generation runs in the engine's own worker (`Engine(threaded=True)`), never in these threads.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from grooverack.backends.jack import JackWatch
from grooverack.backends.midi.inputs import MidiInputHandler
from grooverack.backends.midi.jackport import JackMidiIn, JackMidiOut
from grooverack.backends.midi.output import MidiOutput, MidiSender
from grooverack.backends.midi.ports import PortKeeper
from grooverack.backends.midi.steptable import StepTable
from grooverack.boards.midi import midi_options
from grooverack.config import Settings
from grooverack.engine.player import OutputEvent
from grooverack.engine.seam import EngineSeam
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.listen import AudioListener
from grooverack.runtime.priority import realtime, short_gil_slices

log = logging.getLogger(__name__)

LOOKAHEAD = 0.02  # s: events are taken from the player this far ahead of their time
POLL = 0.001  # s: the engine loop looks at its input and the player at least this often (a
#              step on a MIDI clock tick goes out within this of the tick's arrival)
DRIFT = 0.0005  # s/s: how fast the MIDI system's clock may drift from time.monotonic()
PORT_CHECK = 1.0  # s between looks for ports that went away or came back (or the JACK server)
WRITTEN_TICKS = 5  # clock ticks a step the step table wrote waits for the engine to play it (a
#                    tick the engine took as noise, as in a bunch after an xrun, delays it)


class MidiBackend:
    """Drives an Engine from MIDI input and plays its events on a MIDI output."""

    def __init__(self, engine: EngineSeam, settings: Settings, board: Any = None, *,
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
        self.output = MidiOutput(self.options, self.sender, settings["outputs.clock_ppqn"],
                                 length=engine.trigger_seconds)
        self.input.on_transport = self.output.transport
        # internal clock: play from the start; MIDI clock: wait for Start
        self.autostart = (settings["clock.source"] != "midi") if autostart is None else autostart
        self.played: deque[OutputEvent] = deque(maxlen=100_000)  # the player's events, for tests/bench
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ports: list[PortKeeper] = []
        self.watch: JackWatch | None = None  # midi.api = "jack": whether the server is there
        self._server_lost = False
        self.server_returns = 0  # times the ports were re-registered on a restarted server
        # input.source = audio: the onsets heard on input.audio_device (its own thread)
        self.listener = (AudioListener(settings, clock) if settings["input.source"] == "audio"
                         else None)
        self.input.notes_are_onsets = self.listener is None  # one source: never both
        # a companion (the web page's link) called between the engine loop's passes (every POLL)
        self.hook: LoopHook | None = None

    @property
    def transport(self) -> str:
        """"jack" (`midi.api = jack`: JACK clients of its own, `jackport`) or "rtmidi"."""
        return "jack" if self.options.api == "jack" else "rtmidi"

    def _attach_input(self, port: Any) -> None:
        self._jt, self._offset = 0.0, math.inf  # a new port: a new time base
        self._order()

    def _order(self) -> None:
        """On JACK: the output's client runs after the input's in every cycle (`order_after`),
        so a step table is written in its tick's own cycle."""
        inp = self.in_port.port if self._ports else None
        out = self.out_port.port if self._ports else None
        if isinstance(inp, JackMidiIn) and isinstance(out, JackMidiOut) and out.after is not inp:
            try:
                out.order_after(inp)
            except Exception as exc:  # then one period later (`write_later`)
                log.warning("MIDI: the JACK clients could not be put in order (%s): notes on "
                            "a clock tick leave one period after it", exc)

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
        # what the step table wrote on the ticks just taken (the callback records it first)
        fired = getattr(port, "fired", None)
        while fired:
            table, frame, tick, start = fired.popleft()
            sr = table.out.samplerate
            notes, offs = (table.start, table.start_offs) if start else (table.notes, table.offs)
            self.output.wrote(tick, frame, notes, tuple(length / sr for length, _ in offs))
        for jt, data in batch:
            self.input.feed(self._offset + jt, data)
        return len(batch)

    def hand_over_step_table(self) -> StepTable | None:
        """On JACK (`jackport`): what the next MIDI clock tick releases (`Engine.on_next_pulse`)
        handed to the input's process callback, which writes it at that tick's own frame
        (`StepTable`); notes a table wrote that the engine has not played WRITTEN_TICKS ticks
        later are forgotten. Returns the table handed over (None: nothing waits for a tick)."""
        inp = self.in_port.port if self._ports else None
        out = self.out_port.port if self._ports else None
        if not isinstance(inp, JackMidiIn):
            return None
        self.output.forget_written(inp.taken[0] - WRITTEN_TICKS)
        table = None
        if isinstance(out, JackMidiOut) and not self.sender.paused:
            eng = self.engine
            notes = self.output.step_table(eng.on_next_pulse())
            # step 0 should a Start come before this loop takes it (`StepTable.start`)
            offered = eng.patterns_offered
            first = eng.on_start_pulse()
            start = self.output.start_table(first) if first else ()
            if notes or start:
                tick, transport, other = inp.taken[0] + 1, inp.taken[1], inp.taken[2]
                sr = out.samplerate  # each note's length in frames: its note-off's offset

                def frames(o: int) -> int:
                    return round(eng.trigger_seconds(o) * sr)

                offs = self.output.note_offs(notes, frames)
                start_offs = self.output.note_offs(start, frames)
                old = inp.table
                if (old is not None and old.out is out and old.tick == tick
                        and old.transport == transport and old.notes == notes
                        and old.offs == offs and old.start == start
                        and old.start_offs == start_offs and old.other == other
                        and old.offered == offered):
                    return old
                table = StepTable(tick, transport, notes, out, offs, start, start_offs, other,
                                  offered, lambda: eng.patterns_offered)
        inp.table = table
        return table

    def _attach_output(self, port: Any) -> None:
        self.sender.port = port
        self._order()

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
        eng, clock, hook = self.engine, self.clock, self.hook
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
            if hook is not None:  # after this pass's messages are queued
                hook.between(now)
            self.hand_over_step_table()  # (after the hook: a control it set is in the table)
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
