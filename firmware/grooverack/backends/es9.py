"""ES-9 back end (sounddevice / PortAudio): CV as audio samples, in and out.

One duplex stream. Its callback only moves data: it stamps each input block with its frame number
and posts it, and renders the output block from level changes the engine thread queued earlier,
each at its own sample. The engine thread turns input blocks into engine calls (Schmitt-trigger
edges placed to the sample, pitch read a settle time after the edge, control CVs) and engine
events into level changes; generation runs in the engine's worker.

The timeline is input frames: engine time `t = frame / samplerate` is when that sample was at the
input jacks. Steps on a clock edge fire from that edge (`Clock.hold`): an edge at input frame `f`
is answered at output frame `f + R`, `R` being the reaction time, two blocks (the engine thread
takes a block in after its callback and has one more block's time to answer it); every event at
`t` is written at output frame `round(t * samplerate) + R`, so the whole pattern keeps its
micro-timing and each step on an edge sounds exactly `R + L` after that edge at the jacks, `L`
being the stream's own input-to-output latency (PortAudio's DAC time minus ADC time of the
callback, plus the board's `latency_trim_samples`). `describe()` reports both.

Button inputs (`[es9.inputs] next_style = 10`): gates through the same Schmitt trigger; a rising
edge is `Engine.press(action)` on the engine thread at its frame, as the panel's debounced buttons
are on its loop (never in the callback). Accent outputs (`[es9.outputs] accent`): accent n rises
with trigger n when that hit's velocity CV reaches `outputs.accent_threshold` and falls with it,
on the trigger's own samples (`engine.accents`, as the panel's accent jacks).

Volts <-> samples: `volts = gain * sample * volts_per_unit + offset` per channel (nominal:
gain 1, offset 0, 10 V per unit, i.e. +-1.0 = +-10 V), from the board's `[es9.calibration]`;
outputs are written through a `calibration.Calibration` (`es9_calibration`: a calibration file's
measurements, per-volt tables included, over the board's; the safe range kept). Control CVs go
through `grooverack.controls`, the one door to control values.

When the stream goes away (the JACK server killed or restarted, the device unplugged) the engine
plays on on its clock (pattern and position kept; nothing drives the outputs), and a keeper thread
opens the stream again once a second until the device is back; its frames go on from the clock,
its latency is measured again. Each loss and each return is logged once.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from grooverack.backends import jackaudio
from grooverack.backends import midi as midi_io
from grooverack.boards.es9 import ES9Board, parse_board
from grooverack.boards.midi import midi_options
from grooverack.calibration import (
    Calibration,
    apply_to_es9,
    default_path,
    es9_calibration,
    es9_output_channels,
)
from grooverack.config import CONTROLS, Settings
from grooverack.controls import ControlRange, ControlReader
from grooverack.engine.accents import AccentFollower
from grooverack.errors import ConfigError
from grooverack.runtime.priority import realtime, short_gil_slices
from grooverack.runtime.serve import Lifecycle, make_engine
from grooverack.state import state_dir

log = logging.getLogger(__name__)

EDGE_JACKS = ("gate", "clock", "reset", "fill")  # fill: a gate, both edges count
CONTROL_STEP = 1.0 / 256  # a control CV moves the engine when it moved more (its hysteresis)
STOP_TIMEOUT = 1.0  # s: a stream stop/close that takes longer is given up (its server is gone)
SILENT = 0.5  # s without a callback: the stream is taken as dead (no 0 V to wait for at a stop)
STALLED = 2.0  # s without a callback from a running stream: it went away (a hung device)
KEEP_POLL = 0.1  # s between the keeper's looks at the stream
REOPEN_EVERY = 1.0  # s between tries to open a stream that went away
WATCH_NAME = "grooverack es9 watch"

_abandoned: list[Any] = []  # streams whose stop never returned: never collected (no GC close)


def _bounded(fn: Callable[[], Any], timeout: float, what: str) -> bool:
    """Run `fn` in a helper thread; True when it returned within `timeout`. PortAudio's JACK
    stream stop waits for a process callback that never comes once jackd has died."""
    done = threading.Event()

    def call() -> None:
        try:
            fn()
        except Exception as exc:  # the device or server went away
            log.debug("ES-9: %s: %s", what, exc)
        finally:
            done.set()

    threading.Thread(target=call, name="grooverack-es9-stop", daemon=True).start()
    if done.wait(timeout):
        return True
    log.warning("ES-9: %s did not return within %.1f s (audio server gone?); left behind",
                what, timeout)
    return False


# --- input processing (engine thread)

class Schmitt:
    """Schmitt trigger over sample blocks: rising above `high`, falling below `low`."""

    def __init__(self, threshold: float, hysteresis: float) -> None:
        self.high = threshold + hysteresis / 2
        self.low = threshold - hysteresis / 2
        self.state = False

    def edges(self, volts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rising, falling) sample indices within this block."""
        above, below = volts > self.high, volts < self.low
        idx = np.flatnonzero(above | below)
        if idx.size == 0:
            return idx, idx
        states = above[idx]
        prev = np.concatenate(([self.state], states[:-1]))
        change = states != prev
        self.state = bool(states[-1])
        return idx[change & states], idx[change & ~states]


def find_device(name: str, kind: str, rescan: bool = True) -> int:
    """Index of the first PortAudio device whose name contains `name` and has `kind` channels;
    the device list is read again once when it is not there (hot-plugged, or a JACK client that
    appeared after PortAudio started) unless `rescan` is false."""
    import sounddevice as sd

    want = name.lower()
    for attempt in range(2 if rescan else 1):
        for i, dev in enumerate(sd.query_devices()):
            if want in dev["name"].lower() and dev[f"max_{kind}_channels"] > 0:
                return i
        if attempt == 0 and rescan:
            refresh_devices()
    names = ", ".join(repr(d["name"]) for d in sd.query_devices()) or "none"
    raise ConfigError(f"es9: no audio {kind} device matching {name!r}; devices: {names} "
                      "(see `grooverack ports`)")


# --- PortAudio, terminated and started again

_stale = False  # PortAudio's state can't be terminated: next refresh loads a new copy of it
_library: str | None = None  # the PortAudio library file sounddevice loaded first
_exit_hook = False


def mark_portaudio_stale() -> None:
    """PortAudio holds a stream or a JACK client of a server that died: its terminate would abort
    that stream, whose stop waits 10 minutes for a process callback that never comes (pa_jack's
    `RealStop`), and libjack's deactivate of the dead client fails an assertion (abort). The next
    `refresh_devices()` gives sounddevice a new copy of the library instead; at exit it is not
    terminated."""
    global _stale
    _stale = True


def portaudio_stale() -> bool:
    return _stale


def _library_file() -> str | None:
    """The file of the PortAudio library this process loaded first (Linux: /proc/self/maps)."""
    global _library
    if _library is None:
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    path = line.split(maxsplit=5)[-1].strip()
                    name = os.path.basename(path)
                    if name.startswith("libportaudio") and os.path.isfile(path):
                        _library = path
                        break
        except OSError:
            return None
    return _library


def _load_new_copy(sd: Any) -> bool:
    """sounddevice on a copy of the PortAudio library of its own (a copy, not a link: the dynamic
    loader would hand back the loaded one), its own state, not initialized; the old copy stays
    loaded and is never called again. False where there is no file to copy."""
    path = _library_file()
    if path is None:
        return False
    folder = tempfile.mkdtemp(prefix="grooverack-portaudio-")
    try:
        copy = os.path.join(folder, os.path.basename(path))
        shutil.copyfile(path, copy)
        sd._lib = sd._ffi.dlopen(copy)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sd._initialized = 0
    return True


def _at_exit() -> None:
    # runs before sounddevice's own exit handler (registered later): a stale PortAudio is left
    # alone, its terminate would wait on or abort at the dead server's stream
    if _stale:
        import sounddevice as sd

        sd._initialized = 0


def _hook_exit() -> None:
    global _exit_hook
    if not _exit_hook:
        import sounddevice  # noqa: F401  (its exit handler first, so that this one runs before)

        _library_file()  # while only the first copy is loaded
        atexit.register(_at_exit)
        _exit_hook = True


def refresh_devices() -> None:
    """Make PortAudio read its device list again (and connect to a JACK server started since);
    a stale one (`mark_portaudio_stale`) is replaced by a new copy rather than terminated."""
    global _stale
    import sounddevice as sd

    _hook_exit()
    if _stale:
        _stale = False  # before: a server that dies while it starts marks the new copy stale
        if _load_new_copy(sd):
            sd._initialize()
            return
        log.warning("ES-9: no PortAudio library file to load again; terminating the old one")
    if sd._initialized:
        sd._terminate()
    sd._initialize()


def _close_stream(stream: Any, lib: Any, timeout: float, what: str) -> bool:
    """Stop and close `stream` through the PortAudio copy `lib` that opened it, bounded (see
    `_bounded`); a stop that returns only after it was given up does not close (its server is
    gone: the close would touch a dead JACK client)."""
    given_up = threading.Event()

    def close() -> None:
        lib.Pa_StopStream(stream._ptr)
        if not given_up.is_set():
            lib.Pa_CloseStream(stream._ptr)

    if _bounded(close, timeout, what):
        return True
    given_up.set()
    _abandoned.append(stream)
    mark_portaudio_stale()
    return False


class ES9Backend:
    """Drives an Engine from CV inputs and renders its events into the output channels."""

    def __init__(self, engine: Any, settings: Settings, board: Any, *,
                 midi_output: Any = None, autostart: bool | None = None,
                 calibration: Calibration | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.board = parse_board(board, settings) if not isinstance(board, ES9Board) else board
        b = self.board
        # volts -> samples through a Calibration, as on the Pi: the board's [es9.calibration],
        # a calibration file's measurements over it (`calibration`), the safe range kept
        self.cal = es9_calibration(b, calibration)
        self.output_names = {ch: name for name, ch in es9_output_channels(b).items()}
        self.sr = b.samplerate
        self.midi_output = midi_output  # a midi.MidiOutput to mirror the events on, or None
        # play from the first block, as the panel does: on the internal clock at once, on an
        # external clock from its next pulse (a Eurorack clock has no Start message); only MIDI
        # clock waits for MIDI Start
        self.autostart = (settings["clock.source"] != "midi") if autostart is None else autostart
        self.settle = int(round(settings["input.pitch_settle_ms"] * 1e-3 * self.sr))
        self.schmitt = {jack: Schmitt(settings["es9.threshold"], settings["es9.hysteresis"])
                        for jack in EDGE_JACKS if jack in b.inputs}
        # button gates: the same Schmitt trigger, a rise is a press
        self.button_schmitt = {action: Schmitt(settings["es9.threshold"],
                                               settings["es9.hysteresis"])
                               for action in b.buttons}
        self.presses: deque[tuple[str, int, Any]] = deque(maxlen=10_000)  # (action, frame, result)
        # accent outputs: accent n high with trigger n when its velocity CV reached the threshold
        self.accents = AccentFollower([n for n, ch in enumerate(b.accent, 1) if ch],
                                      float(settings["outputs.accent_threshold"]))
        self.cv_volts = settings["es9.cv_volts"]
        self.velocity_volts = settings["outputs.velocity_volts"]
        self.velocity_mode = settings["input.velocity_mode"]
        # callback <-> engine thread: deques (append/popleft are atomic in CPython)
        self._in: deque[tuple[int, np.ndarray, float]] = deque()
        self._out: deque[tuple[int, int, float]] = deque()  # (frame, column, sample), by frame
        self._wake = threading.Event()
        self._frame = 0  # next input frame number (callback side)
        self._t0_adc: float | None = None
        # every output channel's sample for 0 V through the board's scaling (its calibration)
        self.zero_levels = np.array([self.to_sample(c, 0.0)
                                     for c in range(1, b.output_channels + 1)],
                                    dtype=np.float32)
        self._levels = self.zero_levels.copy()
        self._zeroing = False  # set: the callback renders zero_levels only, drops level changes
        self._zero_from: int | None = None  # the first frame it rendered so
        self.zero_frames = 0  # frames rendered at 0 V since
        self.latency_frames: int | None = None  # L: the stream's input-to-output latency
        self.latency_s: float | None = None
        self.reaction_frames: int | None = None  # R: input frame f is answered at output f + R
        self.late_events = 0  # level changes that reached the callback after their sample
        self.late: deque[tuple[int, int]] = deque(maxlen=1000)  # (their frame, written at)
        self.xruns = 0
        self.dropped_frames = 0
        # what happened, for `run` output, tests and benchmarks
        self.edges: deque[tuple[str, str, int]] = deque(maxlen=100_000)  # (jack, rise/fall, frame)
        self.onsets: deque[tuple[float, float | None, float | None]] = deque(maxlen=100_000)
        self.scheduled: deque[tuple[int, int, float, Any]] = deque(maxlen=100_000)
        self.played: deque[Any] = deque(maxlen=100_000)  # every engine event, in order
        self._pending: list[tuple[int, int]] = []  # (edge frame, frame to read pitch CVs at)
        # recent blocks of the CVs read after a gate edge: (first frame, {jack: volts})
        self._history: deque[tuple[int, dict[str, np.ndarray]]] = deque(maxlen=64)
        # control CVs through the one door (`grooverack.controls`): 0..es9.cv_volts spans the
        # control's schema range; a block's mean is one reading, moves under CONTROL_STEP are held.
        # es9.cv_mode = "offset": the configured value is the pot, +-es9.cv_volts sweeps the
        # whole range around it (an unpatched input, 0 V, leaves the control where it is)
        offset = settings["es9.cv_mode"] == "offset"
        self.control_readers = {
            jack: ControlReader(ControlRange.for_key(jack),
                                cv_per_volt=1.0 / (self.cv_volts * (2.0 if offset else 1.0)),
                                hysteresis=CONTROL_STEP, has_pot=offset)
            for jack in CONTROLS if jack in b.inputs}
        if offset:
            for jack, reader in self.control_readers.items():
                reader.pot(reader.range.position(settings[jack]))
        self._processed = 0  # frames the engine thread has taken in
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stream: Any = None
        self.last_callback = 0.0  # time.monotonic() of the last callback
        self._mono_offset = math.inf  # engine time -> time.monotonic() (`to_monotonic`)
        self._mirror_at = -math.inf
        # a stream that goes away is opened again by the keeper thread (`_keep`)
        self._lib: Any = None  # the PortAudio copy that opened `stream`
        self._jack = False  # the stream runs on JACK: a JackWatch learns when the server dies
        self._watch: Any = None
        self._gone = threading.Event()  # set by the watch, on JACK's thread
        self._closed = threading.Event()  # set by `stop`: the keeper ends
        self._keeper: threading.Thread | None = None
        self._gen = 0  # the stream whose callbacks count (one given up may still call back)
        self._down = False  # no stream: the engine plays on by the clock, no outputs queued
        self._rebase = False  # set: the next callback is a reopened stream's first
        self._started_at = 0.0
        self._lost_at = 0.0
        self.losses = 0  # times the stream went away
        self.reopens = 0  # times it was opened again
        self.gone_s: float | None = None  # how long it was away, the last time
        # "jack": the back end is a JACK client itself (`jackaudio.JackAudioStream`), every
        # sample at its JACK frame; "portaudio": through sounddevice (`es9.transport`)
        self.transport = "portaudio"
        self._jack_origin: int | None = None  # JACK frame - our frame (native transport)
        self._jack_latency = 0  # capture + playback latency of the connected JACK ports
        self._warned: set[str] = set()  # server formats already named in a warning

    # --- the real-time callback: move data, nothing else
    def _callback(self, indata, outdata, frames, time_info, status, gen: int = 0) -> None:
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
            self._t0_adc = adc - self._frame / self.sr  # the ADC time of frame 0
            self.reaction_frames = 2 * frames
        elif status and self._t0_adc is not None:
            # blocks lost in an xrun: keep the timeline. ADC times jitter within a block, so only
            # on a flagged xrun, and by whole blocks.
            gap = round(((adc - self._t0_adc) * self.sr - self._frame) / frames) * frames
            if gap > 0:
                self._frame += gap
                self.dropped_frames += gap
        self._move(self._frame, indata, outdata, frames, adc)

    def _jack_callback(self, f0_jack: int, indata: np.ndarray, outdata: np.ndarray,
                       frames: int, gen: int = 0) -> None:
        """The native transport's process callback (`jackaudio.JackAudioStream`): frames are
        JACK's, so a skipped cycle (an xrun) leaves its frames out, never shifts the rest."""
        self.last_callback = time.monotonic()
        if gen != self._gen:
            outdata.fill(0.0)
            return
        if self._rebase:
            self._resume(frames)
            self._jack_origin = None
        if self._jack_origin is None:  # a new stream: our frames go on from where they were
            self._jack_origin = f0_jack - self._frame
        f0 = f0_jack - self._jack_origin
        if f0 > self._frame and self.latency_frames is not None:
            self.dropped_frames += f0 - self._frame
            self.xruns += 1
        if self.latency_frames is None:
            # in JACK's frames a sample read at f and one written at f + R are R apart: the
            # transport adds nothing (the device's own latency, `_jack_latency`, is the same
            # for every path through the graph and is only reported)
            self.latency_frames = self.board.latency_trim_samples
            self.latency_s = max(self.latency_frames, 0) / self.sr
            self.reaction_frames = 2 * frames  # the engine thread answers within one period
        self._move(f0, indata, outdata, frames, 0.0)

    def _move(self, f0: int, indata: np.ndarray, outdata: np.ndarray, frames: int,
              adc: float) -> None:
        """Both transports: the input block posted, the output block rendered from the queued
        level changes, each at its own frame."""
        if self._zeroing:  # stopping: every output at 0 V, nothing queued plays any more
            levels = self._levels
            levels[:] = self.zero_levels
            self._out.clear()
            outdata[:] = levels
            if self._zero_from is None:
                self._zero_from = f0
            self._frame = f0 + frames
            self.zero_frames = self._frame - self._zero_from
            self._wake.set()
            return
        self._in.append((f0, indata.copy(), adc))
        levels = self._levels
        outdata[:] = levels
        end = f0 + frames
        q = self._out
        while q and q[0][0] < end:
            frame, col, value = q.popleft()
            k = frame - f0
            if k < 0:
                k = 0
                self.late_events += 1
                self.late.append((frame, f0))
            outdata[k:, col] = value
            levels[col] = value
        self._frame = end
        self._wake.set()

    def _resume(self, frames: int) -> None:
        """A reopened stream's first callback: its frames go on from the engine's clock (this
        block ends now), every output from 0 V, what was queued for the old stream dropped."""
        self._rebase = False
        if self._mono_offset != math.inf:
            now = int((self.last_callback - self._mono_offset) * self.sr)
            self._frame = max(self._frame, now - frames)
        self._out.clear()
        self._levels[:] = self.zero_levels
        self._down = False

    # --- engine thread
    def _volts(self, block: np.ndarray, jack: str) -> np.ndarray:
        ch = self.board.inputs[jack]
        scale, offset = self.board.in_scale(ch)
        return block[:, ch - 1].astype(np.float64) * scale + offset

    def _read_at(self, jack: str, frame: int) -> float | None:
        """The volts of `jack` at `frame` (None when not patched or no longer kept)."""
        for f0, cvs in self._history:
            volts = cvs.get(jack)
            if volts is not None and f0 <= frame < f0 + len(volts):
                return float(volts[frame - f0])
        return None

    def _onset(self, edge: int, pitch: float | None, vcv: float | None) -> None:
        t = edge / self.sr
        if self.velocity_mode == "cv":  # the engine reads these volts as a velocity CV
            self.onsets.append((t, None, vcv))
            self.engine.onset(t, pitch_volts=vcv)
        else:
            self.onsets.append((t, pitch, None))
            self.engine.onset(t, pitch_volts=pitch)

    def process_block(self, f0: int, block: np.ndarray) -> None:
        """Input block -> engine calls, in time order (pitch reads may wait for the next block)."""
        if not self._started and self.autostart:
            self.engine.start(f0 / self.sr)
            self._started = True
        b, eng = self.board, self.engine
        n = len(block)
        calls: list[tuple[int, int, Any]] = []  # (frame, order, call)
        cvs = {jack: self._volts(block, jack) for jack in ("pitch", "velocity_cv")
               if jack in b.inputs}
        if cvs:
            self._history.append((f0, cvs))
        still = []
        for edge, read in self._pending:
            if read < f0 + n:
                p, v = self._read_at("pitch", read), self._read_at("velocity_cv", read)
                calls.append((edge, 1, lambda e=edge, p=p, v=v: self._onset(e, p, v)))
            else:
                still.append((edge, read))
        self._pending = still
        for jack in EDGE_JACKS:
            if jack not in self.schmitt:
                continue
            rising, falling = self.schmitt[jack].edges(self._volts(block, jack))
            for k in falling:
                self.edges.append((jack, "fall", f0 + int(k)))
                if jack == "fill":
                    frame = f0 + int(k)
                    calls.append((frame, 0, lambda t=frame / self.sr: eng.fill(t, False)))
            for k in rising:
                frame = f0 + int(k)
                self.edges.append((jack, "rise", frame))
                t = frame / self.sr
                if jack == "gate":  # pitch (or velocity) CV read a settle time after the edge
                    read = frame + self.settle
                    if not cvs or read < f0 + n:
                        p, v = self._read_at("pitch", read), self._read_at("velocity_cv", read)
                        calls.append((frame, 1, lambda e=frame, p=p, v=v: self._onset(e, p, v)))
                    else:
                        self._pending.append((frame, read))
                elif jack == "clock":
                    calls.append((frame, 0, lambda t=t: eng.clock_pulse(t)))
                elif jack == "fill":
                    calls.append((frame, 0, lambda t=t: eng.fill(t, True)))
                else:
                    calls.append((frame, 0, lambda t=t: eng.reset(t)))
        for action, schmitt in self.button_schmitt.items():
            ch = b.buttons[action]
            scale, offset = b.in_scale(ch)
            rising, falling = schmitt.edges(block[:, ch - 1].astype(np.float64) * scale + offset)
            for k in falling:
                self.edges.append((action, "fall", f0 + int(k)))
            for k in rising:
                frame = f0 + int(k)
                self.edges.append((action, "rise", frame))
                calls.append((frame, 0, lambda a=action, f=frame: self._press(a, f)))
        for jack, reader in self.control_readers.items():
            reader.cv(float(self._volts(block, jack).mean()))
            value = reader.read()
            if value is not None:
                calls.append((f0, 2, lambda j=jack, v=value: eng.set_control(j, v)))
        for _, _, call in sorted(calls, key=lambda c: (c[0], c[1])):
            call()
        self._processed = max(self._processed, f0 + n)  # the clock may be a little ahead

    def _press(self, action: str, frame: int) -> None:
        """A button gate's rise: `Engine.press`, as the panel's buttons (a press that cannot act,
        an empty preset slot, is logged by the engine and returns None)."""
        self.presses.append((action, frame, self.engine.press(action)))

    def to_sample(self, channel: int, volts: float) -> float:
        """Output volts -> the sample of host channel `channel` (1-based) through the
        calibration: clamped to the safe range, then to +-1.0."""
        name = self.output_names.get(channel)
        if name is None:  # a channel no output uses: the board's scaling
            return self.board.to_sample(channel, volts)
        return float(self.cal.to_code(name, volts))

    def schedule(self, events: list[Any]) -> None:
        """Engine events -> level changes at output frames (velocity a little before its rise)."""
        b = self.board
        react = self.reaction_frames or 0
        changes = []
        for ev in self.accents(events):  # + accent rises / falls with their triggers
            frame = int(round(ev.time * self.sr)) + react
            if ev.kind == "accent":  # on its trigger's samples; not played over MIDI
                ch = b.accent[ev.output - 1]
                if not self._down:
                    volts = b.trigger_volts * ev.value
                    changes.append((frame, ch - 1, self.to_sample(ch, volts)))
                    self.scheduled.append((frame, ch, volts, ev))
                continue
            self.played.append(ev)
            if ev.kind == "velocity":
                ch = b.velocity[ev.output - 1] if 0 < ev.output <= len(b.velocity) else 0
                volts = ev.value * self.velocity_volts
                frame -= b.velocity_lead_samples
            elif ev.kind == "trigger":
                ch = b.trigger[ev.output - 1] if 0 < ev.output <= len(b.trigger) else 0
                volts = b.trigger_volts if ev.value > 0.5 else 0.0
            elif ev.kind == "clock":
                ch, volts = b.clock_out, b.trigger_volts * ev.value
            elif ev.kind == "reset":
                ch, volts = b.reset_out, b.trigger_volts * ev.value
            else:
                continue
            if ch and not self._down:  # no stream, nothing drives the outputs
                changes.append((frame, ch - 1, self.to_sample(ch, volts)))
                self.scheduled.append((frame, ch, volts, ev))
            if self.midi_output is not None:
                # the offset estimate only falls (it improves while the stream starts): never let
                # a later event fall due before an earlier one, so MIDI keeps the player's order
                self._mirror_at = max(self._mirror_at, self.to_monotonic(ev.time + self.delay_s))
                self.midi_output.play(ev, at=self._mirror_at)
        changes.sort(key=lambda c: c[0])
        self._out.extend(changes)

    @property
    def delay_s(self) -> float:
        """Seconds from an edge at the input jacks to the step it fires at the output jacks
        (reaction R plus the stream's latency L)."""
        return ((self.reaction_frames or 0) + (self.latency_frames or 0)) / self.sr

    def to_monotonic(self, t: float) -> float:
        """Engine time -> time.monotonic() (for MIDI out beside the CV outputs)."""
        return t + self._mono_offset

    def _engine_loop(self, heartbeat: Callable[[], Any] | None = None) -> None:
        eng = self.engine
        self._mono_offset = math.inf
        self._mirror_at = -math.inf  # due time of the last event mirrored as MIDI
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            if heartbeat is not None:
                heartbeat()
            while self._in:
                f0, block, adc = self._in.popleft()
                n = len(block)
                # monotonic at the end of this block's capture: the least-delayed wake-up wins
                self._mono_offset = min(self._mono_offset, time.monotonic() - (f0 + n) / self.sr)
                self.process_block(f0, block)
            if self._down and self._mono_offset != math.inf:
                # no stream: time goes on by the clock, the engine keeps its pattern and place
                clock = int((time.monotonic() - self._mono_offset) * self.sr)
                self._processed = max(self._processed, clock)
            if self._processed and self.reaction_frames is not None:
                # events up to one block ahead (half the reaction time): what lies between clock
                # edges is placed by the tempo estimate this little ahead, what sits on an edge
                # waits for it (`Clock.hold`)
                now = self._processed / self.sr
                events = eng.advance(now + self.reaction_frames / 2 / self.sr)
                if events:
                    self.schedule(events)

    # --- lifecycle
    def open(self, rescan: bool = True) -> None:
        """Open the stream (not started) on the board's devices; `rescan`: see `find_device`."""
        b = self.board
        fmt = self._server_format()
        if self.settings["es9.transport"] == "jack" or (
                self.settings["es9.transport"] == "auto" and fmt is not None
                and jackaudio.device_found(b.input_device, b.output_device)):
            self._open_jack()
            return
        import sounddevice as sd

        _hook_exit()
        dev_in = find_device(b.input_device, "input", rescan)
        dev_out = find_device(b.output_device, "output", rescan)
        self._gen += 1
        self.stream = sd.Stream(device=(dev_in, dev_out),
                                channels=(b.input_channels, b.output_channels),
                                samplerate=b.samplerate, blocksize=b.blocksize, dtype="float32",
                                latency="low",
                                callback=functools.partial(self._callback, gen=self._gen))
        self._lib = sd._lib
        out = sd.query_devices(dev_out)
        self.device_names = (sd.query_devices(dev_in)["name"], out["name"])
        self._jack = "JACK" in sd.query_hostapis(out["hostapi"])["name"]
        self.transport = "portaudio"

    def _open_jack(self) -> None:
        """The native transport: a JACK client of its own (not started)."""
        b = self.board
        self._gen += 1
        stream = jackaudio.JackAudioStream(
            b.input_device, b.output_device, b.input_channels, b.output_channels,
            functools.partial(self._jack_callback, gen=self._gen), self._on_server_gone,
            b.samplerate)
        self.stream = stream
        self._jack_latency = stream.latency()
        self.device_names = (stream.capture[0].split(":", 1)[0],
                             stream.playback[0].split(":", 1)[0])
        self._jack = True
        self.transport = "jack"
        self._jack_origin = None

    def _server_format(self) -> tuple[int, int] | None:
        """The JACK server's (rate, period), None where none runs; a rate other than the
        board's, or a period longer than its block, named in one warning each."""
        fmt = jackaudio.server_format()
        if fmt is None:
            return None
        rate, period = fmt
        b = self.board
        if rate != b.samplerate and f"rate {rate}" not in self._warned:
            self._warned.add(f"rate {rate}")
            log.warning("ES-9: the JACK server runs at %d Hz, the board at %d Hz (%s): no "
                        "stream until the server runs at %d Hz (restart jackd with -r %d)",
                        rate, b.samplerate, getattr(self, "board_path", "es9.samplerate"),
                        b.samplerate, b.samplerate)
        elif b.blocksize and period > b.blocksize and f"period {period}" not in self._warned:
            self._warned.add(f"period {period}")
            if self.settings["es9.transport"] == "portaudio":
                why = ("PortAudio hands over whole periods: output changes come late")
            else:
                why = (f"a step on a clock edge sounds {2 * period} samples after it "
                       f"({2 * period / rate * 1e3:.1f} ms), not {2 * b.blocksize}")
            log.warning("ES-9: the JACK period (%d frames) is larger than the board's block "
                        "(es9.blocksize = %d): %s; run jackd with -p %d", period, b.blocksize,
                        why, b.blocksize)
        return fmt

    def start(self, heartbeat: Callable[[], Any] | None = None) -> None:
        """Open the stream and play; `heartbeat()` is called by the engine thread every pass
        (the service's watchdog). The keeper thread then watches the stream."""
        if self.stream is None:
            try:
                self.open()
            except jackaudio.RateMismatch as exc:
                raise ConfigError(f"es9.samplerate = {exc.board}: {exc}; allowed: the server's "
                                  f"rate, or restart jackd with -r {exc.board}") from None
        short_gil_slices(0.001)
        self._stop.clear()
        self._zeroing, self._zero_from, self.zero_frames = False, None, 0
        self._thread = threading.Thread(target=self._engine_loop, args=(heartbeat,),
                                        name="grooverack-es9-engine", daemon=True)
        self._thread.start()
        self.stream.start()
        self._started_at = time.monotonic()
        self._closed.clear()
        self._gone.clear()
        self._down = False
        if self._jack and self._watch is None:
            try:
                self._watch = midi_io.JackWatch(self._on_server_gone, WATCH_NAME)
            except OSError as exc:  # no libjack to load: the stream's own state tells
                log.debug("ES-9: no JACK watch: %s", exc)
            if self._watch is not None and not self._watch.connect():
                self._on_server_gone()  # gone between the stream and now
        self._keeper = threading.Thread(target=self._keep, name="grooverack-es9-keeper",
                                        daemon=True)
        self._keeper.start()

    def _on_server_gone(self) -> None:
        """JACK's thread (or ours): the server went away; PortAudio's client of it (whether
        it carried the stream or only listed devices) is dead."""
        mark_portaudio_stale()
        self._gone.set()

    # --- the keeper thread (normal priority, off the real-time path)
    def _keep(self) -> None:
        """Notice that the stream went away (the JACK server's shutdown, a stream no longer
        active, or no callback for STALLED s) and open it again every REOPEN_EVERY s until it
        is back."""
        next_try = 0.0
        while not self._closed.wait(KEEP_POLL):
            if not self._down:
                why = self._why_gone()
                if why is not None:
                    self._lose(why)
                    next_try = time.monotonic()
                continue
            now = time.monotonic()
            if now >= next_try:
                next_try = now + REOPEN_EVERY
                self._reopen()

    def _why_gone(self) -> str | None:
        if self._gone.is_set():
            return "the JACK server went away"
        stream = self.stream
        if stream is None:
            return "no stream"
        try:
            if not stream.active:
                return "the stream stopped"
        except Exception as exc:  # the device went away
            return str(exc)
        silent = time.monotonic() - max(self.last_callback, self._started_at)
        return f"no callback for {silent:.1f} s" if silent > STALLED else None

    def _lose(self, why: str) -> None:
        """The stream went away: dropped (a JACK one untouched: its stop would wait for the dead
        server), the engine on the clock, logged once."""
        self._down = True
        self._lost_at = time.monotonic()
        self.losses += 1
        self._gone.clear()
        stream, self.stream = self.stream, None
        self._gen += 1  # its callbacks, should any come, no longer count
        log.warning("ES-9: the audio stream went away (%s); the engine plays on by its clock, "
                    "the outputs undriven; reopening the stream every %.0f s", why, REOPEN_EVERY)
        self._drop(stream, "closing the stream that went away")

    def _drop(self, stream: Any, what: str) -> None:
        if stream is None:
            return
        if self.transport == "jack":
            stream.close()  # (one of a server that went away is dropped untouched)
        elif self._jack:
            _abandoned.append(stream)
            mark_portaudio_stale()
        else:
            _close_stream(stream, self._lib, STOP_TIMEOUT, what)

    def _reopen(self) -> None:
        """One try: the JACK server there (the watch connects), PortAudio started again (its
        device list read anew), the stream opened and started, its first block in."""
        watch = self._watch
        if watch is not None and not watch.up.is_set():
            if not watch.connect():
                return  # the server is still away
            self._gone.clear()
        try:
            if self.settings["es9.transport"] != "jack":
                refresh_devices()
            self.open(rescan=False)
        except Exception as exc:  # the device is not back yet
            if isinstance(exc, jackaudio.RateMismatch):
                pass  # named in one warning (`_server_format`)
            log.debug("ES-9: reopening the stream: %s", exc)
            self.stream = None
            return
        stream = self.stream
        self.latency_frames = self.latency_s = None  # measured again by the first callback
        self._rebase = True
        try:
            stream.start()
            self._started_at = time.monotonic()
            latency = self.wait_latency(STALLED)
            if self.latency_s is None:
                raise RuntimeError(f"no callback within {STALLED:.0f} s")
        except Exception as exc:
            log.debug("ES-9: starting the reopened stream: %s", exc)
            self._rebase = False
            self.stream = None
            self._gen += 1
            self._drop(stream, "closing a stream that did not start")
            return
        if self._closed.is_set():  # stopped meanwhile, maybe without waiting for this
            self.stream = None
            self._gen += 1
            self._close(stream, "stopping the reopened stream")
            return
        self.gone_s = time.monotonic() - self._lost_at
        self.reopens += 1
        log.warning("ES-9: the audio stream is back after %.1f s away (in %r, out %r; stream "
                    "latency %.2f ms); the outputs play again on the clock", self.gone_s,
                    self.device_names[0], self.device_names[1], latency * 1e3)

    def _close(self, stream: Any, what: str) -> None:
        if self.transport == "jack":
            stream.close()
        else:
            _close_stream(stream, self._lib, STOP_TIMEOUT, what)

    def zero_outputs(self, timeout: float = 1.0) -> bool:
        """Every output channel to its 0 V sample, rendered by the callback through the
        stream's latency (the block written and the one after it have passed) before this
        returns; True when it was (False: the stream stopped calling back)."""
        self._zeroing = True
        block = max(self.board.blocksize, 1)
        need = (self.latency_frames or 0) + 2 * block
        deadline = time.monotonic() + timeout
        while self.zero_frames < need:
            if time.monotonic() > deadline:
                log.warning("ES-9: the stream did not render the 0 V outputs within %.1f s",
                            timeout)
                return False
            time.sleep(0.002)
        return True

    def stop(self) -> None:
        """Keeper ended, outputs to 0 V (rendered, see `zero_outputs`), engine thread stopped,
        stream stopped and closed; bounded whether the server is there, gone or coming back."""
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
        self._zeroing = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not left:  # (else the keeper owns the stream)
            stream, self.stream = self.stream, None
            if stream is not None:
                alive = time.monotonic() - self.last_callback < SILENT
                if alive and stream.active:
                    self.zero_outputs()
                self._close(stream, "stopping the stream")
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def realtime(self, mirror: MidiMirror | None = None) -> bool:
        """SCHED_FIFO for the engine thread (and a MIDI sender above it, the generator below),
        when permitted (`runtime.priority.realtime`); the audio callback is already real-time
        (JACK / ALSA thread). With `rt.below_jack` on JACK all of them sit below JACK's
        client threads, the audio callback's among them (`JackWatch.client_priority`)."""
        ceiling = self._watch.rt_ceiling(self.settings) if self._watch is not None else None
        return realtime(writer=mirror.sender.thread if mirror is not None else None,
                        loop=self._thread, ceiling=ceiling)

    def wait_latency(self, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        while self.latency_s is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.latency_s or 0.0

    def describe(self) -> str:
        lat, react = self.latency_frames, self.reaction_frames
        if lat is None or react is None:
            shown = "unknown"
        else:
            shown = (f"{lat + react} samples ({(lat + react) / self.sr * 1e3:.2f} ms: reaction "
                     f"{react}, stream {lat})")
            if self.transport == "jack":
                shown += (f" + the devices' own {self._jack_latency} (JACK's capture + "
                          "playback latency)")
        block = (f"JACK client, period {self.stream.blocksize}"
                 if self.transport == "jack" and self.stream is not None
                 else f"block {self.board.blocksize or 'host'}")
        return (f"ES-9: in {self.device_names[0]!r}, out {self.device_names[1]!r}, "
                f"{self.sr} Hz, {block}; clock edge to step "
                f"{shown}")


class MidiMirror:
    """The player's events as MIDI too, beside the CV outputs (a board's `[midi]` table: ES-9 in,
    MIDI out to a Poly 2 or any MIDI device), on the same micro-timing."""

    def __init__(self, board: Any, settings: Settings) -> None:

        options = midi_options(settings, board)
        self.sender = midi_io.MidiSender()
        self.output = midi_io.MidiOutput(options, self.sender, settings["outputs.clock_ppqn"])
        self.keeper = midi_io.PortKeeper("output", options.api, options.output_port,
                                         lambda port: setattr(self.sender, "port", port),
                                         lambda: setattr(self.sender, "port", None))
        # MIDI over JACK: whether the server is there, as the MIDI back end has it (rtmidi's
        # clients never notice a dead server; `midi.JackWatch`)
        self.watch: midi_io.JackWatch | None = None
        self._server_lost = False
        self.server_returns = 0

    def start(self) -> None:
        self.keeper.open()
        if self.keeper.api == "jack":
            self.watch = midi_io.JackWatch(self._on_server_gone, f"{WATCH_NAME} midi")
            if not self.watch.connect():
                self._on_server_gone()
        self.sender.start()

    def _on_server_gone(self) -> None:
        """JACK's thread: the server went away; nothing goes to its clients any more."""
        self.sender.paused = True

    def check(self) -> bool:
        """About once a second (the main thread): the port looked for (a named one that went
        away or came back); on JACK, a server that went away logged once and its clients
        dropped, and once it is back the port registered again, as the MIDI back end does
        (`MidiBackend.check_server`). True while the port is there."""
        watch = self.watch
        if watch is not None and (self._server_lost or not watch.up.is_set()):
            if not self._server_lost:
                self._server_lost = True
                self.sender.paused = True
                log.warning("ES-9: the JACK server went away under the MIDI mirror; MIDI out "
                            "dropped until it is back, then its port registered again")
                self.keeper.abandon()
            if not watch.connect():
                return False
            try:
                self.keeper.reconnect()
            except Exception as exc:  # it went away again, or is still starting
                log.debug("ES-9: re-registering the MIDI mirror's port: %s", exc)
                self.keeper.abandon()
                return False
            self._server_lost = False
            self.sender.paused = False
            self.server_returns += 1
            log.warning("ES-9: the JACK server is back; the MIDI mirror's port registered again "
                        "(%d messages dropped while it was away)", self.sender.dropped)
        return self.keeper.check()

    def stop(self) -> None:
        self.output.stop(time.monotonic())
        self.sender.flush()
        self.sender.stop()
        watch, self.watch = self.watch, None
        if watch is not None and (self._server_lost or not watch.up.is_set()):
            self.keeper.abandon()  # a dead client's close would hold the GIL for a second
        else:
            self.keeper.close()
        if watch is not None:
            watch.close()


def run_backend(board: Any, settings: Settings, args: Any = None) -> int:
    """`grooverack run --board es9` (any board of kind "es9"; a [midi] table adds MIDI out).

    The lifecycle is `runtime.serve.Lifecycle`: state restored before it plays, READY + the
    watchdog (the engine thread beats), and on SIGTERM/SIGINT or at the end of `--duration`:
    every output channel at its 0 V sample (rendered before the stream stops), the MIDI mirror's
    notes off, then the state saved; exit status 0."""

    es9 = parse_board(board, settings)
    # a calibration file written by `grooverack calibrate --board es9` overrides [es9.calibration]

    measured = Calibration.load(default_path(state_dir(settings), board.name), board)
    apply_to_es9(measured, es9)  # the inputs' scaling (block volts, vectorised)
    engine = make_engine(settings, threaded=True)
    mirror: MidiMirror | None = None
    backend: ES9Backend | None = None
    try:
        life = Lifecycle(settings, engine)
        life.restore()  # presets + last performance, before the first step plays
        mirror = MidiMirror(board, settings) if es9.midi is not None else None
        if mirror is not None:
            mirror.start()
        backend = ES9Backend(engine, settings, es9, calibration=measured,
                             midi_output=mirror.output if mirror is not None else None)
        backend.start(heartbeat=life.beat)
    except BaseException:
        if backend is not None:
            backend.stop()
        if mirror is not None:
            mirror.stop()
        engine.close()
        raise
    es9_backend = backend

    def outputs_to_zero() -> None:
        es9_backend.stop()  # every channel's 0 V sample rendered, then the stream stopped
        if mirror is not None:
            mirror.stop()  # note-offs, all notes off, MIDI Stop

    def every() -> None:  # the main thread, about once a second
        if es9_backend._thread is None or not es9_backend._thread.is_alive():
            raise RuntimeError("the ES-9 engine thread stopped")
        if mirror is not None:
            try:
                mirror.check()
            except Exception as exc:  # listing can fail while a device unplugs
                log.debug("MIDI port check: %s", exc)

    try:
        if getattr(args, "rt", False):
            backend.realtime(mirror)
        backend.wait_latency()
        life.ready(f"board {board.name} up ({backend.describe()})",
                   outputs_to_zero=outputs_to_zero)
        print(f"grooverack: {backend.describe()}; Ctrl-C to stop", file=sys.stderr)
        life.wait(getattr(args, "duration", None), every=every)
        status = life.shutdown()  # outputs to 0 V, state saved, engine stopped
    except BaseException:
        log.exception("ES-9 back end stopped by an error: outputs to 0 V")
        if life.service is None:
            outputs_to_zero()
        life.shutdown()
        raise
    lost = (f", stream lost {backend.losses}x, reopened {backend.reopens}x"
            if backend.losses else "")
    presses = f", {len(backend.presses)} button presses" if es9.buttons else ""
    print(f"grooverack: {len(backend.onsets)} onsets in{presses}, {len(backend.scheduled)} "
          f"output changes, {backend.late_events} late, {backend.xruns} xruns{lost}",
          file=sys.stderr)
    return status
