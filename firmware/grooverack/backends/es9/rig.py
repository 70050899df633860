"""The ES-9 as the calibration's converters (`grooverack calibrate --board es9`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

from grooverack.backends.es9.portaudio import find_device
from grooverack.boards.es9 import parse_board
from grooverack.calibration import es9_output_channels
from grooverack.errors import CalibrationError


def open_calibration_rig(board: Any, settings: Any) -> AudioRig:
    """The calibration rig of an ES-9 board (ARCHITECTURE.md, "Calibration contract")."""
    return AudioRig(board, settings)


class AudioRig:
    """An audio interface's DC-coupled channels (the ES-9) as the calibration's converters: an
    output holds a constant sample value, an input reads the mean sample of each block. The
    person patches (`patch`/`loopback` do nothing): a reference voltage into an input, or a cable
    from an output into the meter input."""

    SETTLE_BLOCKS = 4     # blocks dropped after an output changes (DAC -> ADC through the cable)

    def __init__(self, board: Any, settings: Any) -> None:
        import sounddevice as sd

        es9 = parse_board(board, settings)
        self.inputs = {jack: ch for jack, ch in es9.inputs.items()}
        self.outputs = es9_output_channels(es9)
        n_in = max(self.inputs.values(), default=1)
        n_out = max(self.outputs.values(), default=1)
        self.levels = np.zeros(n_out, dtype=np.float32)
        self._blocks: deque[Any] = deque(maxlen=4096)
        self._count = 0
        self._changed_at = 0
        self._cond = threading.Condition()
        self.blocksize = es9.blocksize or 256
        self.samplerate = es9.samplerate

        def callback(indata: Any, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            outdata[:] = self.levels
            means = indata.mean(axis=0)
            with self._cond:
                self._blocks.append(means)
                self._count += 1
                self._cond.notify_all()

        self.stream = sd.Stream(
            device=(find_device(es9.input_device, "input"), find_device(es9.output_device, "output")),
            channels=(n_in, n_out), samplerate=es9.samplerate, blocksize=self.blocksize,
            dtype="float32", callback=callback)
        self.stream.start()

    def read_code(self, channel: str, n: int) -> list[float]:
        """Mean sample of each of `n` blocks, after the outputs have settled."""
        index = self.inputs[channel] - 1
        timeout = 5.0 + (n + self.SETTLE_BLOCKS) * self.blocksize / self.samplerate * 4
        with self._cond:
            first = max(self._count, self._changed_at + self.SETTLE_BLOCKS)
            if not self._cond.wait_for(lambda: self._count >= first + n, timeout):
                raise CalibrationError(f"{channel}: no audio from the interface for {timeout:.0f} s")
            blocks = list(self._blocks)[-n:]
        return [float(b[index]) for b in blocks]

    def write_code(self, channel: str, code: float) -> None:
        self.levels[self.outputs[channel] - 1] = code
        with self._cond:
            self._changed_at = self._count + 1  # the block being played may hold the old level

    def patch(self, channel: str, volts: float | None) -> None:
        pass  # the person patches the reference voltage

    def loopback(self, output: str, input_: str | None) -> None:
        pass  # the person patches the cable

    def close(self) -> None:
        self.levels[:] = 0.0
        time.sleep(3 * self.blocksize / self.samplerate)  # the zeros reach the outputs
        self.stream.stop()
        self.stream.close()
