"""`input.source = audio`: a capture stream -> the onset detector on its own thread -> onsets
for the engine loop of any back end.

    listener = AudioListener(settings, clock=time.monotonic)
    listener.start()                 # opens input.audio_device; reopens it when it returns
    ... in the back end's loop, each pass (where the gate path applies its edges):
    for t, velocity in listener.drain():
        engine.onset(t, velocity=velocity)
    listener.stop()

The capture callback only moves data: it copies the chosen channel (`input.audio_channel`) of
each block and stamps its arrival on the back end's clock. The detector runs on the
`grooverack-onsets` thread, never on the real-time loop. Each onset carries the time of its own
sample: sample index / rate + the stream's start on the back end's clock, estimated as the
smallest (arrival - samples so far / rate) seen (a late callback only adds to it), leaking slowly
for the drift between the audio clock and the back end's. A back end that owns the audio stream
(the ES-9) hands blocks in itself with `feed(block, t_first_sample)` and no device is opened.

Sources: `input.audio_device` = a substring of a PortAudio capture device (sounddevice; empty =
the default input), or `jack:PORT` (a JACK client of ours, `grooverack-audio-in`, connected to
that output port). A device that vanishes (unplugged, JACK server gone, no block for
`STALL_S`) is logged once; the module plays on (the last groove stays), and the device is
looked for again every `RETRY_S` and taken back when it returns.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from grooverack.errors import SourceError
from grooverack.onsets import OnsetDetector, OnsetParams, check_rate

log = logging.getLogger(__name__)
RETRY_S = 2.0
STALL_S = 1.0
DRIFT = 1e-4  # the start estimate leaks this many seconds per second (audio clock drift)
JACK_PREFIX = "jack:"


def capture_devices() -> list[dict[str, Any]]:
    """PortAudio devices with inputs: index, name, host API, inputs, default rate."""
    import sounddevice as sd

    apis = sd.query_hostapis()
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "inputs": d["max_input_channels"], "samplerate": d["default_samplerate"]}
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def find_device(name: str) -> int | None:
    """The index of the first capture device whose name contains `name` (None: the default);
    SourceError naming the setting and the devices there are when none matches."""
    if not name:
        return None
    devices = capture_devices()
    for d in devices:
        if name.lower() in d["name"].lower():
            return int(d["index"])
    there = ", ".join(repr(d["name"]) for d in devices) or "none"
    raise SourceError(f"input.audio_device = {name!r}: no capture device matches; there are: "
                      f"{there} (`grooverack ports` lists them; jack:PORT for a JACK port)")


def check_capture(settings: Any) -> str:
    """Open the configured capture device at its configured rate and channel count, as the
    back end will (doctor); a sentence saying what opened, else SourceError saying why not."""
    device = str(settings["input.audio_device"])
    channel = int(settings["input.audio_channel"])
    if device.startswith(JACK_PREFIX):
        import jack

        port = device[len(JACK_PREFIX):]
        client = jack.Client("grooverack-doctor", no_start_server=True)
        try:
            found = client.get_ports(port, is_output=True, is_audio=True)
            if not found:
                raise SourceError(f"input.audio_device = {device!r}: no JACK audio output port "
                                  f"matches {port!r}")
            rate = check_rate(client.samplerate, f"JACK server ({found[0].name})")
            return f"JACK port {found[0].name} at {rate} Hz"
        finally:
            client.close()
    import sounddevice as sd

    rate = check_rate(int(settings["input.audio_rate"]), "input.audio_rate")
    index = find_device(device)
    try:
        sd.check_input_settings(device=index, channels=channel, samplerate=rate,
                                dtype="float32")
    except Exception as exc:
        raise SourceError(f"input.audio_device = {device or '(default)'!r}: cannot open "
                          f"{channel} channel(s) at {rate} Hz: {exc}") from None
    name = sd.query_devices(index, "input")["name"]
    return f"{name}: channel {channel} at {rate} Hz"


class AudioListener:
    def __init__(self, settings: Any, clock: Callable[[], float] = time.monotonic, *,
                 open_device: bool = True, rate: int | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.device = str(settings["input.audio_device"])
        self.channel = int(settings["input.audio_channel"]) - 1
        self.rate = check_rate(rate if rate is not None else int(settings["input.audio_rate"]),
                               "input.audio_rate")
        self.block = int(settings["input.audio_block"])
        self.params = OnsetParams.from_settings(settings)
        self.open_device = open_device
        # (block, arrival, stream generation, the block's first frame on the stream's counter)
        self._blocks: queue.Queue[tuple[np.ndarray, float, int, int]] = queue.Queue()
        self._onsets: deque[tuple[float, float, float]] = deque()  # (t, velocity, reported)
        self.handoff_s: deque[float] = deque(maxlen=10_000)  # report -> drained, per onset
        self.recent: deque[tuple[float, float]] = deque(maxlen=10_000)  # (t, velocity) drained
        self.heard = 0
        self.lost = 0  # times the device vanished
        self.xruns = 0  # JACK cycles missed while we listened (each may click: a false onset)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._generation = 0  # a new stream: a new detector and time base
        self._gone = threading.Event()
        self._last_block = 0.0
        self._inport: Any = None  # a JACK input port of ours: connected while its source is there
        self._next_look = 0.0

    # --- the capture side: only moves data -----------------------------------------------------
    def feed(self, block: np.ndarray, arrival: float | None = None, frame: int = -1) -> None:
        """One block of the chosen channel (1-D), `arrival` = when its last sample was in (the
        back end's clock; default now), `frame` its first frame on the stream's counter when
        known (a gap is a missed block). From any thread; the detector thread does the work."""
        self._blocks.put((np.array(block, dtype=np.float32),
                          self.clock() if arrival is None else arrival, self._generation, frame))

    def _sd_callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        self._blocks.put((indata[:, self.channel].copy(), self.clock(), self._generation, -1))

    # --- opening and reopening ----------------------------------------------------------------
    def _open(self) -> None:
        self._generation += 1
        self._gone.clear()
        if self.device.startswith(JACK_PREFIX):
            self._open_jack(self.device[len(JACK_PREFIX):])
            return
        import sounddevice as sd

        check_rate(self.rate, "input.audio_rate")
        index = find_device(self.device)
        stream = sd.InputStream(device=index, samplerate=self.rate, blocksize=self.block,
                                channels=self.channel + 1, dtype="float32",
                                callback=self._sd_callback, finished_callback=self._gone.set)
        stream.start()
        self._stream = stream
        log.info("audio in: %s, channel %d at %d Hz", sd.query_devices(index, "input")["name"],
                 self.channel + 1, self.rate)

    def _open_jack(self, port: str) -> None:
        import jack

        client = jack.Client("grooverack-audio-in", no_start_server=True)
        inport = client.inports.register("in")
        rate = check_rate(client.samplerate, "the JACK server")
        generation = self._generation
        put, clock = self._blocks.put, self.clock

        def process(frames: int) -> None:  # JACK's thread: copy the block, stamp it
            put((np.array(inport.get_array(), dtype=np.float32), clock(), generation,
                 client.last_frame_time))

        client.set_process_callback(process)

        client.set_shutdown_callback(lambda status, reason: self._gone.set())

        def xrun(_delay: float) -> None:  # a missed cycle: a gap or a repeat in the audio
            self.xruns += 1

        client.set_xrun_callback(xrun)

        client.activate()
        try:
            found = client.get_ports(port, is_output=True, is_audio=True)
            if not found:
                raise SourceError(f"input.audio_device = 'jack:{port}': no JACK audio output "
                                  f"port matches {port!r}")
            client.connect(found[0], inport)
        except BaseException:
            client.deactivate()
            client.close()
            raise
        self.rate = rate
        self._stream = client
        self._inport = inport
        log.info("audio in: JACK port %s at %d Hz", found[0].name, rate)

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        self._inport = None
        if stream is None:
            return
        try:
            if hasattr(stream, "deactivate"):
                if not self._gone.is_set():
                    stream.deactivate()
                stream.close()
            else:
                stream.abort()
                stream.close()
        except Exception as exc:  # a device already gone
            log.debug("audio in: closing: %s", exc)

    # --- the detector thread ------------------------------------------------------------------
    def start(self) -> None:
        if self.open_device:
            self._open()  # the first time, a wrong setting is an error for the person
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="grooverack-onsets", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def _work(self) -> None:
        generation = -1
        detector: OnsetDetector | None = None
        start = math.inf  # the stream's sample 0 on our clock
        samples = 0
        next_frame = 0
        self._last_block = self.clock()
        next_try = 0.0
        while not self._stop.is_set():
            try:
                block, arrival, gen, frame = self._blocks.get(timeout=0.1)
            except queue.Empty:
                block = None
            now = self.clock()
            if self.open_device:
                if self._inport is not None and self._stream is not None and now >= self._next_look:
                    self._next_look = now + 0.25  # a JACK source port gone: no connection left
                    try:
                        if not self._inport.connections:
                            self._gone.set()
                    except Exception:
                        self._gone.set()
                stalled = self._stream is not None and now - self._last_block > STALL_S
                if self._stream is not None and (self._gone.is_set() or stalled):
                    self.lost += 1
                    log.warning("audio in: %s went away; the module plays on with the last "
                                "groove and takes it back when it returns",
                                self.device or "the default input")
                    self._close()
                    next_try = now
                if self._stream is None and now >= next_try:
                    next_try = now + RETRY_S
                    try:
                        self._open()
                        self._last_block = now
                        log.warning("audio in: %s is back", self.device or "the default input")
                    except Exception as exc:
                        log.debug("audio in: reopening: %s", exc)
                        self._stream = None
            if block is None:
                continue
            self._last_block = now
            end_frame = frame + len(block)
            if frame >= 0 and detector is not None and gen == generation:
                gap = frame - next_frame  # JACK's frame counter: a missed cycle is a gap
                if 0 < gap < self.rate:  # silence where it was missed: later samples keep time
                    block = np.concatenate((np.zeros(gap, dtype=np.float32), block))
                elif gap < 0:  # (part of) a block seen before: only what is new
                    block = block[min(-gap, len(block)):]
                elif gap:
                    detector = None  # lost for a second or more: a new time base
            if gen != generation or detector is None:  # a new stream: a new time base
                generation, samples, start = gen, 0, math.inf
                detector = OnsetDetector(self.rate, self.params)
            if frame >= 0:
                next_frame = max(next_frame, end_frame) if samples else end_frame
            if not len(block):
                continue
            samples += len(block)
            if start != math.inf:
                start += DRIFT * len(block) / self.rate
            start = min(start, arrival - samples / self.rate)
            for onset in detector.feed(block):
                self.heard += 1
                self._onsets.append((start + onset.time, onset.velocity, self.clock()))

    def feed_frames(self, block: np.ndarray, f0: int) -> None:
        """A back end whose timeline is the stream's frames (the ES-9: t = frame / rate) hands
        each block with its first frame: every onset then lands at its own frame / rate."""
        self.feed(block, (f0 + len(block)) / self.rate, f0)

    def drain(self) -> list[tuple[float, float]]:
        """The onsets heard since the last call: (time on the back end's clock, velocity)."""
        out = []
        now = self.clock()
        while self._onsets:
            t, velocity, reported = self._onsets.popleft()
            self.handoff_s.append(now - reported)
            self.recent.append((t, velocity))
            out.append((t, velocity))
        return out
