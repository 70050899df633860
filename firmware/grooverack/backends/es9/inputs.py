"""ES-9 inputs: sample blocks -> engine calls, on the engine thread.

Gate, clock, reset and fill jacks go through a Schmitt trigger, each edge placed to its sample;
a gate's pitch (or velocity) CV is read a settle time after its edge; button gates are presses;
control CVs go through `grooverack.controls`, the one door to control values. Calls are made in
time order within a block (a pitch read may wait for the next block).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from grooverack.boards.es9 import ES9Board
from grooverack.calibration import Calibration, es9_calibration
from grooverack.config import CONTROLS, Settings
from grooverack.controls import ControlRange, ControlReader, SchmittGate
from grooverack.engine.seam import EngineSeam
from grooverack.runtime.listen import AudioListener

EDGE_JACKS = ("gate", "clock", "reset", "fill")  # fill: a gate, both edges count
CONTROL_STEP = 1.0 / 256  # a control CV moves the engine when it moved more (its hysteresis)


class ES9Inputs:
    """The input channels of one ES-9 board, read into one engine."""

    def __init__(self, engine: EngineSeam, settings: Settings, board: ES9Board, *,
                 autostart: bool, calibration: Calibration | None = None) -> None:
        self.engine = engine
        self.board = board
        # samples -> volts through the Calibration (`es9_calibration`: a calibration file's
        # measurements over the board's [es9.calibration]); the Schmitt-read jacks and buttons,
        # which have nothing to calibrate, by the board's scaling
        cal = calibration if calibration is not None else es9_calibration(board)
        self.scale: dict[str, tuple[int, float, float]] = {}  # name -> (column, gain, offset)
        for name, ch in (*board.inputs.items(), *board.buttons.items()):
            c = cal.input_cal.get(name) if name in board.inputs else None
            gain, offset = (c.gain, c.offset) if c is not None else board.in_scale(ch)
            self.scale[name] = (ch - 1, gain, offset)
        self.sr = board.samplerate
        self.autostart = autostart
        self.started = False
        self.settle = int(round(settings["input.pitch_settle_ms"] * 1e-3 * self.sr))
        self.velocity_mode = settings["input.velocity_mode"]
        threshold, hysteresis = settings["es9.threshold"], settings["es9.hysteresis"]
        self.schmitt = {jack: SchmittGate.centred(threshold, hysteresis)
                        for jack in EDGE_JACKS if jack in board.inputs}
        # button gates: the same Schmitt trigger, a rise is a press
        self.button_schmitt = {action: SchmittGate.centred(threshold, hysteresis)
                               for action in board.buttons}
        # what happened, for `run` output, tests and benchmarks
        self.presses: deque[tuple[str, int, Any]] = deque(maxlen=10_000)  # (action, frame, result)
        self.edges: deque[tuple[str, str, int]] = deque(maxlen=100_000)  # (jack, rise/fall, frame)
        self.onsets: deque[tuple[float, float | None, float | None]] = deque(maxlen=100_000)
        self._pending: list[tuple[int, int]] = []  # (edge frame, frame to read pitch CVs at)
        # recent blocks of the CVs read after a gate edge: (first frame, {jack: volts})
        self._history: deque[tuple[int, dict[str, np.ndarray]]] = deque(maxlen=64)
        # control CVs: 0..es9.cv_volts spans the control's schema range; a block's mean is one
        # reading, moves under CONTROL_STEP are held. es9.cv_mode = "offset": the configured
        # value is the pot, +-es9.cv_volts sweeps the whole range around it (an unpatched input,
        # 0 V, leaves the control where it is)
        cv_volts = settings["es9.cv_volts"]
        offset = settings["es9.cv_mode"] == "offset"
        self.control_readers = {
            jack: ControlReader(ControlRange.for_key(jack),
                                cv_per_volt=1.0 / (cv_volts * (2.0 if offset else 1.0)),
                                hysteresis=CONTROL_STEP, has_pot=offset)
            for jack in CONTROLS if jack in board.inputs}
        if offset:
            for jack, reader in self.control_readers.items():
                reader.pot(reader.range.position(settings[jack]))
        self.processed = 0  # frames taken in
        # [es9.inputs] audio = N: channel N is heard by the onset detector (its own thread,
        # runtime.listen) instead of a gate + pitch; onsets land at their own frame / rate
        # input.source = audio without that input: a capture device of its own
        # (`input.audio_device`, opened by the listener); its onsets come stamped on
        # time.monotonic() and land at that time - `mono_offset()` (the stream's engine time ->
        # monotonic offset, set by the back end). Either way the gate jack plays nothing.
        self.listener: AudioListener | None = None
        self.mono_offset: Callable[[], float] = lambda: 0.0
        if "audio" in board.inputs:
            self.listener = AudioListener(settings, open_device=False, rate=self.sr)
        elif settings["input.source"] == "audio":
            self.listener = AudioListener(settings)
        self.from_device = self.listener is not None and "audio" not in board.inputs
        self.gate_onsets = self.listener is None
        self.gates_ignored = 0

    def volts(self, block: np.ndarray, jack: str) -> np.ndarray:
        """The volts of input (or button) `jack` over a block of samples."""
        column, gain, offset = self.scale[jack]
        return block[:, column].astype(np.float64) * gain + offset

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
        if not self.started and self.autostart:
            self.engine.start(f0 / self.sr)
            self.started = True
        b, eng = self.board, self.engine
        n = len(block)
        calls: list[tuple[int, int, Callable[[], Any]]] = []  # (frame, order, call)
        cvs: dict[str, np.ndarray] = {jack: self.volts(block, jack)
                                      for jack in ("pitch", "velocity_cv") if jack in b.inputs}
        if cvs:
            self._history.append((f0, cvs))
        still = []
        for edge, read in self._pending:
            if read < f0 + n:
                p, v = self._read_at("pitch", read), self._read_at("velocity_cv", read)
                calls.append((edge, 1, partial(self._onset, edge, p, v)))
            else:
                still.append((edge, read))
        self._pending = still
        for jack in EDGE_JACKS:
            if jack not in self.schmitt:
                continue
            rising, falling = self.schmitt[jack].edges(self.volts(block, jack))
            for k in falling:
                self.edges.append((jack, "fall", f0 + int(k)))
                if jack == "fill":
                    frame = f0 + int(k)
                    calls.append((frame, 0, partial(eng.fill, frame / self.sr, False)))
            for k in rising:
                frame = f0 + int(k)
                self.edges.append((jack, "rise", frame))
                t = frame / self.sr
                if jack == "gate" and not self.gate_onsets:
                    self.gates_ignored += 1  # input.source = audio: the audio's onsets only
                elif jack == "gate":  # pitch (or velocity) CV read a settle time after the edge
                    read = frame + self.settle
                    if not cvs or read < f0 + n:
                        p, v = self._read_at("pitch", read), self._read_at("velocity_cv", read)
                        calls.append((frame, 1, partial(self._onset, frame, p, v)))
                    else:
                        self._pending.append((frame, read))
                elif jack == "clock":
                    calls.append((frame, 0, partial(eng.clock_pulse, t)))
                elif jack == "fill":
                    calls.append((frame, 0, partial(eng.fill, t, True)))
                else:
                    calls.append((frame, 0, partial(eng.reset, t)))
        for action, schmitt in self.button_schmitt.items():
            rising, falling = schmitt.edges(self.volts(block, action))
            for k in falling:
                self.edges.append((action, "fall", f0 + int(k)))
            for k in rising:
                frame = f0 + int(k)
                self.edges.append((action, "rise", frame))
                calls.append((frame, 0, partial(self._press, action, frame)))
        if self.listener is not None:
            if not self.from_device:
                self.listener.feed_frames(block[:, b.inputs["audio"] - 1], f0)
            shift = self.mono_offset() if self.from_device else 0.0
            for heard, velocity in self.listener.drain():  # heard earlier, at their own time
                t = heard - shift
                frame = int(round(t * self.sr))
                self.onsets.append((t, velocity, None))
                calls.append((frame, 1, partial(eng.onset, t, velocity=velocity)))
        for jack, reader in self.control_readers.items():
            reader.cv(float(self.volts(block, jack).mean()))
            value = reader.read()
            if value is not None:
                calls.append((f0, 2, partial(eng.set_control, jack, value)))
        for _, _, call in sorted(calls, key=lambda c: (c[0], c[1])):
            call()
        self.processed = max(self.processed, f0 + n)  # the clock may be a little ahead

    def drain_device(self) -> int:
        """While the ES-9 stream is down (the engine thread goes on by the clock): the onsets of a
        capture device of its own (`input.source = audio` with `input.audio_device`) still go to
        the engine, each at its own time on the ES-9's timeline (the last frame -> monotonic
        offset). The capture has its own thread and stream, so it keeps feeding the groove
        whatever the ES-9 does. Returns how many were taken (0 where there is no such device or
        no timeline yet)."""
        if self.listener is None or not self.from_device:
            return 0
        shift = self.mono_offset()
        if not math.isfinite(shift):  # the stream never ran: no timeline to place them on
            return 0
        taken = 0
        for heard, velocity in self.listener.drain():
            t = heard - shift
            self.onsets.append((t, velocity, None))
            self.engine.onset(t, velocity=velocity)
            taken += 1
        return taken

    def _press(self, action: str, frame: int) -> None:
        """A button gate's rise: `Engine.press`, as the panel's buttons (a press that cannot act,
        an empty preset slot, is logged by the engine and returns None)."""
        self.presses.append((action, frame, self.engine.press(action)))
