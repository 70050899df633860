"""The ES-9 back end: the stream, the inputs and the outputs around one engine thread.

The engine thread wakes on each input block, hands it to `ES9Inputs` (engine calls at their
frames), advances the engine half the reaction time ahead and hands the events to `ES9Outputs`
(level changes for the callback, and the MIDI mirror's messages). While the stream is away it
goes on by `time.monotonic()`, so the engine keeps its pattern and place, and a capture device
of its own (`input.source = audio`, `input.audio_device`) still feeds the groove.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from grooverack.backends.es9 import jackclient
from grooverack.backends.es9.inputs import ES9Inputs
from grooverack.backends.es9.mirror import MidiMirror
from grooverack.backends.es9.outputs import ES9Outputs, LevelQueue
from grooverack.backends.es9.stream import ES9Stream
from grooverack.backends.midi.output import MidiOutput
from grooverack.boards.es9 import ES9Board, parse_board
from grooverack.calibration import Calibration, es9_calibration
from grooverack.config import Settings
from grooverack.engine.player import OutputEvent
from grooverack.engine.seam import EngineSeam
from grooverack.errors import ConfigError
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.priority import realtime, short_gil_slices

log = logging.getLogger(__name__)


class ES9Backend:
    """Drives an Engine from CV inputs and renders its events into the output channels."""

    def __init__(self, engine: EngineSeam, settings: Settings, board: Any, *,
                 midi_output: MidiOutput | None = None, autostart: bool | None = None,
                 calibration: Calibration | None = None, mirror: MidiMirror | None = None
                 ) -> None:
        self.engine = engine
        self.settings = settings
        self.board = parse_board(board, settings) if not isinstance(board, ES9Board) else board
        self.sr = self.board.samplerate
        self.midi_output = midi_output  # a MidiOutput to mirror the events on, or None
        # play from the first block, as the panel does: on the internal clock at once, on an
        # external clock from its next pulse (a Eurorack clock has no Start message); only MIDI
        # clock waits for MIDI Start
        if autostart is None:
            autostart = settings["clock.source"] != "midi"
        # one Calibration for both directions: the board's [es9.calibration], a calibration
        # file's measurements over it (`calibration`, per-volt tables included)
        self.cal = es9_calibration(self.board, calibration)
        self.inputs = ES9Inputs(engine, settings, self.board, autostart=autostart,
                                calibration=self.cal)
        self.outputs = ES9Outputs(settings, self.board, self.cal)
        self.levels = LevelQueue(self.outputs.zero_levels)
        self.stream = ES9Stream(self.board, self.levels, settings["es9.transport"])
        self.inputs.mono_offset = lambda: self.stream.mono_offset  # (set before each block)
        # a MIDI mirror started with the stream (`start`): on JACK on the stream's own client
        self.mirror = mirror
        if mirror is not None:
            self.midi_output = mirror.output
            mirror.attach(self.stream)
        self._mirror_at = -math.inf  # due time of the last event mirrored as MIDI
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # a companion (the web page's link) called between the engine thread's passes; a
        # command it queues wakes the thread at once (`stream.wake`), not at the next block
        self.hook: LoopHook | None = None

    # what happened, for `run` output, tests and benchmarks
    @property
    def edges(self) -> deque[tuple[str, str, int]]:
        return self.inputs.edges

    @property
    def onsets(self) -> deque[tuple[float, float | None, float | None]]:
        return self.inputs.onsets

    @property
    def presses(self) -> deque[tuple[str, int, Any]]:
        return self.inputs.presses

    @property
    def played(self) -> deque[OutputEvent]:
        return self.outputs.played

    @property
    def scheduled(self) -> deque[tuple[int, int, float, Any]]:
        return self.outputs.scheduled

    @property
    def late_events(self) -> int:
        return self.levels.late_events

    @property
    def xruns(self) -> int:
        return self.stream.xruns

    @property
    def reaction_frames(self) -> int | None:
        return self.stream.reaction_frames

    @property
    def latency_frames(self) -> int | None:
        return self.stream.latency_frames

    @property
    def zero_levels(self) -> np.ndarray:
        return self.outputs.zero_levels

    def to_sample(self, channel: int, volts: float) -> float:
        return self.outputs.to_sample(channel, volts)

    def process_block(self, f0: int, block: np.ndarray) -> None:
        self.inputs.process_block(f0, block)

    def schedule(self, events: list[OutputEvent]) -> None:
        """Engine events -> level changes at output frames (velocity a little before its rise),
        and MIDI beside them when the mirror is on."""
        levels, played = self.outputs.changes(events, self.stream.reaction_frames or 0,
                                              driven=not self.stream.down)
        changes: list[tuple[int, int, Any]] = list(levels)
        frames = self.mirror.frames if self.mirror is not None else None
        if frames is not None and self.midi_output is not None:
            # on the stream's own JACK client: each message at its CV change's frame
            frames.react = self.stream.reaction_frames or 0
            frames.driven = not self.stream.down
            for ev in played:
                self.midi_output.play(ev)
            # one hand-over: a message reaches the callback in the cycle its CV change does
            changes += frames.take()
            changes.sort(key=lambda c: c[0])
        elif self.midi_output is not None:
            for ev in played:
                # the offset estimate only falls (it improves while the stream starts): never let
                # a later event fall due before an earlier one, so MIDI keeps the player's order
                self._mirror_at = max(self._mirror_at, self.to_monotonic(ev.time + self.delay_s))
                self.midi_output.play(ev, at=self._mirror_at)
        self.levels.extend(changes)

    @property
    def delay_s(self) -> float:
        """Seconds from an edge at the input jacks to the step it fires at the output jacks
        (reaction R plus the stream's latency L)."""
        s = self.stream
        return ((s.reaction_frames or 0) + (s.latency_frames or 0)) / self.sr

    def to_monotonic(self, t: float) -> float:
        """Engine time -> time.monotonic() (for MIDI out beside the CV outputs)."""
        return t + self.stream.mono_offset

    # --- the engine thread
    def _engine_loop(self, heartbeat: Callable[[], Any] | None = None) -> None:
        eng, stream, inputs, hook = self.engine, self.stream, self.inputs, self.hook
        stream.mono_offset = math.inf
        self._mirror_at = -math.inf
        while not self._stop.is_set():
            stream.wake.wait(0.05)
            stream.wake.clear()
            if heartbeat is not None:
                heartbeat()
            while stream.blocks:
                f0, block, _adc = stream.blocks.popleft()
                n = len(block)
                # monotonic at the end of this block's capture: the least-delayed wake-up wins
                stream.mono_offset = min(stream.mono_offset,
                                         time.monotonic() - (f0 + n) / self.sr)
                inputs.process_block(f0, block)
            if stream.down and stream.mono_offset != math.inf:
                # no stream: time goes on by the clock, the engine keeps its pattern and place
                clock = int((time.monotonic() - stream.mono_offset) * self.sr)
                inputs.processed = max(inputs.processed, clock)
                inputs.drain_device()  # a capture device of its own still feeds the groove
            if inputs.processed and stream.reaction_frames is not None:
                # events up to one block ahead (half the reaction time): what lies between clock
                # edges is placed by the tempo estimate this little ahead, what sits on an edge
                # waits for it (`Clock.hold`)
                now = inputs.processed / self.sr
                events = eng.advance(now + stream.reaction_frames / 2 / self.sr)
                if events:
                    self.schedule(events)
            if hook is not None:  # after this pass's levels are queued: never delays them
                hook.between(inputs.processed / self.sr)

    def faults(self) -> dict[str, int]:
        """What the page shows of the stream's health (read from the companion's thread)."""
        s = self.stream
        return {"xruns": s.xruns, "late_events": self.levels.late_events,
                "stream_losses": s.losses, "stream_reopens": s.reopens}

    # --- lifecycle
    def start(self, heartbeat: Callable[[], Any] | None = None) -> None:
        """Open the stream and play; `heartbeat()` is called by the engine thread every pass
        (the service's watchdog). The keeper thread then watches the stream."""
        if self.stream.stream is None:
            try:
                self.stream.open()
            except jackclient.RateMismatch as exc:
                raise ConfigError(f"{self.board.path}: es9.samplerate = {exc.board}: {exc}; "
                                  f"allowed: the server's rate, or jackd -r {exc.board}") from None
        if self.mirror is not None:
            self.mirror.start()  # (its port on the stream's JACK client, or one of its own)
        short_gil_slices(0.001)
        if self.inputs.listener is not None:  # audio in: the detector's thread (and its device)
            self.inputs.listener.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._engine_loop, args=(heartbeat,),
                                        name="grooverack-es9-engine", daemon=True)
        self._thread.start()
        self.stream.start()
        if self.mirror is not None and self.mirror.frames is not None:
            self.mirror.check()  # (a named port connected once the client is active)

    def stop(self) -> None:
        """Keeper ended, outputs to 0 V (rendered, see `ES9Stream.zero_outputs`), engine thread
        stopped, stream stopped and closed; bounded whether the server is there, gone or coming
        back."""
        left = self.stream.stop_keeper()
        self.stream.zeroing = True
        self._stop.set()
        self.stream.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.mirror is not None and self.mirror.frames is not None:
            # note-offs, all notes off, Stop: written while the stream renders 0 V
            self.mirror.stop_on_stream(self.inputs.processed / self.sr)
            self.levels.extend(self.mirror.frames.take())
        if self.inputs.listener is not None:
            self.inputs.listener.stop()
        self.stream.close(keeper_left=left)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def realtime(self, mirror: MidiMirror | None = None) -> bool:
        """SCHED_FIFO for the engine thread (and a MIDI sender above it, the generator below),
        when permitted (`runtime.priority.realtime`); the audio callback is already real-time
        (JACK / ALSA thread). With `rt.below_jack` on JACK all of them sit below JACK's
        client threads, the audio callback's among them (`JackWatch.client_priority`)."""
        watch = self.stream.watch
        ceiling = watch.rt_ceiling(self.settings) if watch is not None else None
        return realtime(writer=mirror.sender.thread if mirror is not None else None,
                        loop=self._thread, ceiling=ceiling)

    def wait_latency(self, timeout: float = 5.0) -> float:
        return self.stream.wait_latency(timeout)

    def describe(self) -> str:
        lat, react = self.stream.latency_frames, self.stream.reaction_frames
        if lat is None or react is None:
            shown = "unknown"
        else:
            shown = (f"{lat + react} samples ({(lat + react) / self.sr * 1e3:.2f} ms: reaction "
                     f"{react}, stream {lat})")
        names, stream = self.stream.device_names, self.stream
        if stream.transport == "jack" and stream.stream is not None:
            block = f"a JACK client, period {stream.stream.blocksize}"
            if lat is not None and react is not None:
                shown += f" + the devices' own {stream.device_latency} (JACK's latencies)"
        else:
            block = f"block {self.board.blocksize or 'host'}"
        return (f"ES-9: in {names[0]!r}, out {names[1]!r}, {self.sr} Hz, {block}; clock edge "
                f"to step {shown}")

    @property
    def transport(self) -> str:
        """"jack" (a JACK client of its own) or "portaudio"."""
        return self.stream.transport
