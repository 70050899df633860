"""The ES-9's duplex stream (PortAudio's, or on JACK a JACK client of its own: `jackclient`,
`es9.transport`): its callback, and a keeper that opens it again.

The callback only moves data: it stamps each input block with its frame number and posts it
(`blocks`, `wake`), and renders the output block from the level changes queued earlier
(`LevelQueue`). The first callback measures the stream's input-to-output latency `L` (PortAudio's
DAC time minus ADC time, plus the board's `latency_trim_samples`) and sets the reaction time `R`
(two blocks); an xrun's lost blocks are counted into the frame number so the timeline holds.

When the stream goes away (the JACK server killed or restarted, the device unplugged) the keeper
thread (`keeper.py`) notices, drops it and opens it again once a second until the device is back;
its frames go on from the engine's clock, its latency is measured again.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from grooverack.backends.es9 import jackclient
from grooverack.backends.es9.jacktransport import JackTransport, check_format
from grooverack.backends.es9.keeper import StreamKeeper
from grooverack.backends.es9.midiframes import MidiFrames
from grooverack.backends.es9.outputs import LevelQueue
from grooverack.backends.es9.portaudio import (
    abandon,
    close_stream,
    current_library,
    find_device,
    hook_exit,
    mark_portaudio_stale,
)
from grooverack.backends.jack import JackWatch
from grooverack.boards.es9 import ES9Board

log = logging.getLogger(__name__)

STOP_TIMEOUT = 1.0  # s: a stream stop/close that takes longer is given up (its server is gone)
SILENT = 0.5  # s without a callback: the stream is taken as dead (no 0 V to wait for at a stop)
WATCH_NAME = "grooverack es9 watch"


class ES9Stream(JackTransport, StreamKeeper):
    """The stream on the board's devices, its timeline (input frames) and its keeper."""

    def __init__(self, board: ES9Board, levels: LevelQueue, transport: str = "portaudio") -> None:
        self.board = board
        # `es9.transport`: "jack" = a JACK client of its own (`jackclient.JackAudioStream`),
        # "portaudio", or "auto" (jack when a JACK server has the board's devices); `transport`
        # is the one the open stream uses
        self.wanted = transport
        self.transport = "portaudio"
        self._jack_origin: int | None = None  # JACK frame - our frame (native transport)
        self.device_latency = 0  # JACK's capture + playback latency of the connected ports
        self._warned: set[str] = set()  # server formats already named in a warning
        self.sr = board.samplerate
        self.levels = levels
        # the MIDI mirror on this stream's JACK client (`midiframes`), its port's name
        self.midi: MidiFrames | None = None
        self.midi_port = ""
        # callback -> engine thread: (first frame, block, ADC time); append/popleft are atomic
        self.blocks: deque[tuple[int, np.ndarray, float]] = deque()
        self.wake = threading.Event()
        self.frame = 0  # next input frame number (callback side)
        self._t0_adc: float | None = None
        self.zeroing = False  # set: the callback renders 0 V only, drops level changes
        self._zero_from: int | None = None  # the first frame it rendered so
        self.zero_frames = 0  # frames rendered at 0 V since
        self.latency_frames: int | None = None  # L: the stream's input-to-output latency
        self.latency_s: float | None = None
        self.reaction_frames: int | None = None  # R: input frame f is answered at output f + R
        self.xruns = 0
        self.dropped_frames = 0
        self.stream: Any = None
        self.device_names = ("", "")
        self.last_callback = 0.0  # time.monotonic() of the last callback
        self.mono_offset = math.inf  # engine time -> time.monotonic(), set by the engine thread
        self._lib: Any = None  # the PortAudio copy that opened `stream`
        self._jack = False  # the stream runs on JACK: a JackWatch learns when the server dies
        self.watch: JackWatch | None = None
        self._gone = threading.Event()  # set by the watch, on JACK's thread
        self._closed = threading.Event()  # set by `stop_keeper`: the keeper ends
        self._keeper: threading.Thread | None = None
        self._gen = 0  # the stream whose callbacks count (one given up may still call back)
        self.down = False  # no stream: the engine plays on by the clock, no outputs queued
        self._rebase = False  # set: the next callback is a reopened stream's first
        self._started_at = 0.0
        self._lost_at = 0.0
        self.losses = 0  # times the stream went away
        self.reopens = 0  # times it was opened again
        self.gone_s: float | None = None  # how long it was away, the last time

    # --- the real-time callback: move data, nothing else
    def callback(self, indata: Any, outdata: Any, frames: int, time_info: Any, status: Any,
                 gen: int = 0) -> None:
        self.last_callback = time.monotonic()
        if gen != self._gen:  # a stream given up that calls back after all
            outdata.fill(0.0)
            return
        if self._rebase:
            self._resume(frames)
        if status:
            self.xruns += 1
        adc = time_info.inputBufferAdcTime
        if self.latency_frames is None:
            lat = time_info.outputBufferDacTime - adc
            self.latency_s = lat if 0.0 <= lat < 1.0 else 0.0
            self.latency_frames = int(round(self.latency_s * self.sr)) + \
                self.board.latency_trim_samples
            self._t0_adc = adc - self.frame / self.sr  # the ADC time of frame 0
            self.reaction_frames = 2 * frames
        elif status and self._t0_adc is not None:
            # blocks lost in an xrun: keep the timeline. ADC times jitter within a block, so only
            # on a flagged xrun, and by whole blocks.
            gap = round(((adc - self._t0_adc) * self.sr - self.frame) / frames) * frames
            if gap > 0:
                self.frame += gap
                self.dropped_frames += gap
        self._move(self.frame, indata, outdata, frames, adc)

    def _move(self, f0: int, indata: Any, outdata: Any, frames: int, adc: float) -> None:
        """Both transports: the input block posted, the output block rendered."""
        if self.zeroing:  # stopping: every output at 0 V, nothing queued plays any more
            self.levels.render_zero(outdata)
            if self._zero_from is None:
                self._zero_from = f0
            self.frame = f0 + frames
            self.zero_frames = self.frame - self._zero_from
            self.wake.set()
            return
        self.blocks.append((f0, indata.copy(), adc))
        self.levels.render(outdata, f0, frames)
        self.frame = f0 + frames
        self.wake.set()

    def _resume(self, frames: int) -> None:
        """A reopened stream's first callback: its frames go on from the engine's clock (this
        block ends now), every output from 0 V, what was queued for the old stream dropped."""
        self._rebase = False
        if self.mono_offset != math.inf:
            now = int((self.last_callback - self.mono_offset) * self.sr)
            self.frame = max(self.frame, now - frames)
        self.levels.reset()
        if self.midi is not None:
            self.midi.reset()
        self.down = False

    # --- opening, starting, stopping
    def open(self, rescan: bool = True) -> None:
        """Open the stream (not started) on the board's devices; `rescan`: see `find_device`.
        On JACK (`es9.transport`) a JACK client of its own, else PortAudio's stream."""
        b = self.board
        fmt = check_format(b, self.wanted, self._warned)
        if self.wanted == "jack" or (self.wanted == "auto" and fmt is not None and
                                     jackclient.device_found(b.input_device, b.output_device)):
            self._open_jack()
            return
        import sounddevice as sd

        hook_exit()
        dev_in = find_device(b.input_device, "input", rescan)
        dev_out = find_device(b.output_device, "output", rescan)
        self._gen += 1
        self.stream = sd.Stream(device=(dev_in, dev_out),
                                channels=(b.input_channels, b.output_channels),
                                samplerate=b.samplerate, blocksize=b.blocksize, dtype="float32",
                                latency="low",
                                callback=functools.partial(self.callback, gen=self._gen))
        self._lib = current_library()
        out = sd.query_devices(dev_out)
        self.device_names = (sd.query_devices(dev_in)["name"], out["name"])
        self._jack = "JACK" in sd.query_hostapis(out["hostapi"])["name"]
        self.transport = "portaudio"

    def start(self) -> None:
        """Start the open stream (from 0 V), then the keeper that watches it."""
        self.zeroing, self._zero_from, self.zero_frames = False, None, 0
        self.stream.start()
        self._started_at = time.monotonic()
        self._closed.clear()
        self._gone.clear()
        self.down = False
        if self._jack and self.watch is None:
            try:
                self.watch = JackWatch(self._on_server_gone, WATCH_NAME)
            except OSError as exc:  # no libjack to load: the stream's own state tells
                log.debug("ES-9: no JACK watch: %s", exc)
            if self.watch is not None and not self.watch.connect():
                self._on_server_gone()  # gone between the stream and now
        self._keeper = threading.Thread(target=self._keep, name="grooverack-es9-keeper",
                                        daemon=True)
        self._keeper.start()

    def _on_server_gone(self) -> None:
        """JACK's thread (or ours): the server went away; PortAudio's client of it (carrying
        the stream, or only listing devices) is dead."""
        mark_portaudio_stale()
        self._gone.set()

    def zero_outputs(self, timeout: float = 1.0) -> bool:
        """Every output channel to its 0 V sample, rendered by the callback through the
        stream's latency (the block written and the one after it have passed) before this
        returns; True when it was (False: the stream stopped calling back)."""
        self.zeroing = True
        block = max(self.board.blocksize, 1)
        need = (self.latency_frames or 0) + 2 * block
        deadline = time.monotonic() + timeout
        midi = self.midi if self.transport == "jack" else None
        while self.zero_frames < need or (midi is not None and (self.levels.queue or
                                                                not midi.idle)):
            if time.monotonic() > deadline:
                log.warning("ES-9: the stream did not render the 0 V outputs within %.1f s",
                            timeout)
                return False
            time.sleep(0.002)
        return True

    def stop_keeper(self) -> bool:
        """The keeper ended; True when it was left behind inside PortAudio (then it owns the
        stream)."""
        self._closed.set()
        keeper, self._keeper = self._keeper, None
        left = False
        if keeper is not None:
            keeper.join(STOP_TIMEOUT)
            left = keeper.is_alive()
            if left:  # inside PortAudio, opening on a server that is coming back
                log.warning("ES-9: reopening the stream did not return within %.1f s; left "
                            "behind", STOP_TIMEOUT)
                mark_portaudio_stale()
        return left

    def close(self, keeper_left: bool) -> None:
        """Outputs to 0 V (rendered, see `zero_outputs`) while the stream calls back, then it is
        stopped and closed (unless the keeper was left with it); the watch closed."""
        if not keeper_left:
            stream, self.stream = self.stream, None
            if stream is not None:
                alive = time.monotonic() - self.last_callback < SILENT
                if alive and stream.active:
                    self.zero_outputs()
                self._close(stream, "stopping the stream")
        watch, self.watch = self.watch, None
        if watch is not None:
            watch.close()

    def wait_latency(self, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        while self.latency_s is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.latency_s or 0.0

    def _close(self, stream: Any, what: str) -> None:
        if self.transport == "jack":
            stream.close()
        else:
            close_stream(stream, self._lib, STOP_TIMEOUT, what)

    def _drop(self, stream: Any, what: str) -> None:
        if stream is None:
            return
        if self.transport == "jack":
            stream.close()  # (one of a server that went away is dropped untouched)
        elif self._jack:
            abandon(stream)
        else:
            close_stream(stream, self._lib, STOP_TIMEOUT, what)
