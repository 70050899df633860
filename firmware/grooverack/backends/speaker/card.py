"""`Speaker`: the drum voices through a sound card in this process (the package's text:
`grooverack.backends.speaker`)."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from grooverack.backends.streams import STALLED_S, why_gone
from grooverack.drums.kit import RATES, Kit
from grooverack.errors import ConfigError

log = logging.getLogger("grooverack.backends.speaker")  # the same name in the sound process

QUEUE = 8192  # pushed writes not yet taken by the callback (a second of a busy pattern: 200)
PUSH_MARGIN_S = 0.005  # a write pushed this long after its own time still sounds on time (a
# step on a clock edge is pushed when the loop has the edge in, a little after it)
OFFSET_WINDOW = 24  # callbacks whose clock offsets the smallest is taken from (0.5 s of 1024)
REALIGN_S = 0.005  # the kit's frames are set from the stream's time when they drift this far
WATCH_S = 0.2  # how often the watch thread looks at the stream
STOP_S = 1.0  # a stop/close that takes longer is left behind (its server is gone)
REOPEN_S = 1.0  # a device that went away is looked for this often


class Speaker:
    def __init__(self, voices: Mapping[int, str | Sequence[str]], *, rate: int = 48000,
                 velocity_volts: float = 8.0, device: str = "", delay_ms: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.voices = dict(voices)
        self.rate = int(rate)
        self.velocity_volts = float(velocity_volts)
        self.device = device
        self.extra_delay = float(delay_ms) / 1000.0
        self.clock = clock
        self.queue: deque[tuple[float, int, str, float, int | None]] = deque()
        self.t0: float | None = None  # patch time 0 on `clock`
        self.kit: Kit | None = None
        self.stream: Any = None
        self.device_name = ""
        self.delay: float | None = None  # s from an output's time to its sound; first callback
        self.block = 0
        self.dropped = 0  # pushes refused while the queue was full
        self.late = 0
        self.realigned = 0
        self.callbacks = 0
        self.rendered = 0  # frames
        self.render_s = 0.0  # time spent rendering (CPU of the callback, roughly)
        self.last_callback = 0.0
        self.gone: str | None = None  # why the sound stopped, once it has
        self._heap: list[tuple[int, int, int, str, float, int | None]] = []
        self._order = 0
        self._offset: float | None = None  # clock - stream time (smallest of the recent ones)
        self._offsets: deque[float] = deque(maxlen=OFFSET_WINDOW)
        self._aligned = False  # the kit's frames set from the stream's time
        self._jack = False
        self._lost: str | None = None  # set by the JACK watch's thread
        self._lib: Any = None
        self._watch: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.losses = 0  # times the device went away while playing
        self.reopens = 0  # times it came back

    # --- the real-time side: never blocks
    def push(self, t: float, output: int, kind: str, volts: float,
             voice: int | None = None) -> None:
        """An output write at patch time `t` (called from the real-time loop); `voice`: the
        model voice behind it (which voice a jack of several strikes)."""
        if self.gone is not None:
            return
        if len(self.queue) >= QUEUE:
            self.dropped += 1
            return
        self.queue.append((t, output, kind, volts, voice))

    # --- lifecycle (the main thread)
    def start(self) -> bool:
        """Open the device and play silence until `begin`; False (one warning) when there is no
        device to play on: the module plays on without sound."""
        try:
            self._open()
        except Exception as exc:  # no PortAudio, no such device, a rate it refuses ...
            self._give_up(f"no sound, the module plays on without it: {exc} (see `grooverack "
                          "ports`)")
            return False
        self._thread = threading.Thread(target=self._watch_loop, name="grooverack-speaker-watch",
                                        daemon=True)
        self._thread.start()
        return True

    def begin(self, t0: float) -> None:
        """Patch time 0 is `t0` on the clock: pushed writes sound from now on."""
        self.t0 = t0

    def wait_delay(self, timeout: float = 2.0) -> float | None:
        """The delay, once the first callback has measured it (None: no callback in time)."""
        deadline = time.monotonic() + timeout
        while self.delay is None and self.gone is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.delay

    def drain(self, until: float, timeout: float = 2.0) -> None:
        """Wait (bounded) until the sound has played to patch time `until`."""
        deadline = time.monotonic() + timeout
        while self.stream is not None and self.gone is None and time.monotonic() < deadline:
            kit = self.kit
            if kit is not None and self.t0 is not None and kit.frame >= until * self.rate:
                return
            time.sleep(0.01)

    def _open(self) -> None:
        import sounddevice as sd  # type: ignore[import-untyped]

        from grooverack.backends.es9 import portaudio

        portaudio.hook_exit()  # a stream left on a dead JACK server is never terminated at exit
        index: int | None = None
        if self.device:
            try:
                index = portaudio.find_device(self.device, "output")
            except ConfigError:
                names = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
                raise ConfigError(
                    f"audio device {self.device!r}: no output device has that in its name; "
                    f"output devices: {', '.join(map(repr, names)) or 'none'}") from None
        info = sd.query_devices(index, "output")
        self.device_name = str(info["name"])
        self._jack = "JACK" in sd.query_hostapis(info["hostapi"])["name"]
        rate = self.rate
        try:
            sd.check_output_settings(index, channels=2, dtype="float32", samplerate=rate)
        except Exception:
            own = int(round(info["default_samplerate"]))
            if own not in RATES:
                raise ConfigError(f"audio.rate: {self.device_name!r} refuses {rate} Hz and runs "
                                  f"at {own} Hz; allowed: {', '.join(map(str, RATES))}") from None
            log.warning("audio: %r refuses %d Hz; playing at its own %d Hz", self.device_name,
                        rate, own)
            rate = own
        self.rate = rate
        self.kit = Kit(rate, self.voices, velocity_volts=self.velocity_volts)
        self.stream = sd.OutputStream(device=index, samplerate=rate, channels=2,
                                      dtype="float32", callback=self._callback)
        self._lib = portaudio.current_library()
        if self._jack:
            from grooverack.backends.jack import JackWatch

            try:
                self._watch = JackWatch(self._server_gone, "grooverack speaker watch")
                self._watch.connect()
            except OSError as exc:  # no libjack: the stream's own state tells
                log.debug("audio: no JACK watch: %s", exc)
                self._watch = None
        self._started = time.monotonic()
        self.stream.start()

    def _server_gone(self) -> None:  # JACK's thread
        from grooverack.backends.es9.portaudio import mark_portaudio_stale

        mark_portaudio_stale()
        self._lost = "the JACK server went away"

    # --- the audio callback (PortAudio's thread): renders
    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        try:
            began = time.perf_counter()
            self._render(outdata, frames, time_info)
            self.render_s += time.perf_counter() - began
        except Exception:  # never let the stream die of a bug here; say it once
            outdata.fill(0.0)
            if self.gone is None:
                log.exception("audio: the callback failed; silence from here")
                self.gone = "callback failed"

    def _render(self, outdata: np.ndarray, frames: int, time_info: Any) -> None:
        kit = self.kit
        now = self.clock()
        self.last_callback = time.monotonic()
        self.callbacks += 1
        current, dac = float(time_info.currentTime), float(time_info.outputBufferDacTime)
        if current > 0.0 and dac >= current:
            # clock - stream time: a late wake-up makes it larger, so the smallest of the last
            # OFFSET_WINDOW callbacks (an xrun moves the stream's time: within a window, the
            # new offset is taken)
            self._offsets.append(now - current)
            self._offset = min(self._offsets)
            dac_at = dac + self._offset
            latency = dac - current
        else:  # a host without stream times: the stream's reported latency from now
            latency = float(getattr(self.stream, "latency", 0.0) or 0.0)
            dac_at = now + latency
        if self.delay is None:
            self.block = frames
            self.delay = latency + frames / self.rate + PUSH_MARGIN_S + self.extra_delay
        if kit is None or self.t0 is None or self.gone is not None:
            outdata.fill(0.0)
            return
        # the kit frame this block's first sample plays at
        want = int(round((dac_at - self.t0 - self.delay) * self.rate))
        if not self._aligned or abs(want - kit.frame) > REALIGN_S * self.rate:
            self.realigned += self._aligned
            self._aligned = True
            kit.frame = want
        heap, queue = self._heap, self.queue
        while queue:
            t, output, kind, volts, voice = queue.popleft()
            self._order += 1
            heapq.heappush(heap, (int(round(t * self.rate)), self._order, output, kind, volts,
                                  voice))
        stop = kit.frame + frames
        while heap and heap[0][0] < stop:
            frame, _, output, kind, volts, voice = heapq.heappop(heap)
            kit.cv(frame, output, kind, volts, voice)
        outdata[:] = kit.render(frames)
        self.late = kit.late
        self.rendered += frames

    # --- the watch thread: one warning when the stream goes away, the device opened again
    def _watch_loop(self) -> None:
        while not self._stop.wait(WATCH_S):
            why = self._why_gone()
            if why is None:
                continue
            self._give_up(f"the sound stopped ({why}); the module plays on without it, and "
                          "the sound comes back with the device")
            self._drop()
            if why == "callback failed":  # a bug here, not the device: it would fail again
                return
            self.losses += 1
            while not self._stop.wait(REOPEN_S):
                if self._reopen():
                    break

    def _reopen(self) -> bool:
        """The device opened again (the watch thread, once a second while it is away)."""
        from grooverack.backends.es9 import portaudio

        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()  # (a dead server's client is only dropped)
        try:
            portaudio.refresh_devices()  # the devices now there (a new PortAudio after JACK's)
            self._lost = None
            self._open()
        except Exception as exc:  # not back yet
            log.debug("audio: the device is not back yet: %s", exc)
            stream, self.stream = self.stream, None
            if stream is not None:
                portaudio.abandon(stream)
            return False
        # what was pushed while it was away is not played late, all at once
        self.queue.clear()
        self._heap.clear()
        self._offsets.clear()
        self._aligned, self.delay = False, None  # the new stream's delay, measured again
        self.reopens += 1
        self.gone = None
        log.warning("audio: the sound is back (%r)", self.device_name)
        return True

    def _why_gone(self) -> str | None:
        if self.gone is not None:
            return self.gone
        if self._lost is not None:
            return self._lost
        if self.stream is None:
            return "the stream stopped"
        return why_gone(self.stream, self.last_callback, self._started, STALLED_S)

    def _give_up(self, message: str) -> None:
        if self.gone is None or self.gone == "callback failed":
            log.warning("audio: %s", message)
        self.gone = self.gone or message

    def _drop(self) -> None:
        """Let go of a stream that went away: one on JACK untouched (its stop waits for the
        dead server), another closed in a bounded helper thread."""
        from grooverack.backends.es9 import portaudio

        stream, self.stream = self.stream, None
        if stream is None:
            return
        if self._jack:
            portaudio.abandon(stream)
        else:
            portaudio.close_stream(stream, self._lib, STOP_S, "closing the sound card stream")

    def stop(self) -> None:
        """Stop playing (bounded whether the device is there or gone)."""
        from grooverack.backends.es9 import portaudio

        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_S + WATCH_S)
            self._thread = None
        stream, self.stream = self.stream, None
        if stream is not None:
            if self._lost is not None or (self._jack and portaudio.portaudio_stale()):
                portaudio.keep(stream)
            else:
                portaudio.close_stream(stream, self._lib, STOP_S, "stopping the sound card stream")
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def describe(self) -> str:
        if self.gone is not None and self.delay is None:
            return f"audio: {self.gone}"
        delay = f"{self.delay * 1e3:.1f} ms" if self.delay is not None else "not measured yet"
        return (f"audio: {self.device_name!r}, {self.rate} Hz, block {self.block or 'host'}; "
                f"the sound {delay} after the outputs")

    def report(self) -> str:
        seconds = self.rendered / self.rate if self.rate else 0.0
        cpu = 100.0 * self.render_s / seconds if seconds else 0.0
        return (f"audio: {self.kit.hits if self.kit else 0} hits, {seconds:.1f} s rendered "
                f"({cpu:.1f} % of it in the callback), {self.late} late, {self.dropped} "
                f"dropped, {self.realigned} realigned"
                + (f", device lost {self.losses}x, back {self.reopens}x" if self.losses else "")
                + (f"; {self.gone}" if self.gone else ""))
