"""Raw codes in and out for `grooverack calibrate` (real buses, or the emulated world).
"""

from __future__ import annotations

import logging
from typing import Any

from grooverack.backends.panel.hardware import Hardware, open_hardware
from grooverack.boards.board import Board
from grooverack.config import Settings
from grooverack.emulators.world import EmulatedWorld

log = logging.getLogger(__name__)


class CalibrationRig:
    """Raw codes in and out for `grooverack calibrate`; over emulators `patch`/`loopback` set the
    emulated jacks, on a Pi they are what the person was asked to do."""

    def __init__(self, board: Board, hw: Hardware, world: Any = None) -> None:
        self.board, self.hw, self.world = board, hw, world
        self.loops: dict[str, str] = {}
        for dac in hw.dacs.values():
            dac.configure()

    def read_code(self, channel: str, n: int) -> list[float]:
        item = self.board.inputs[channel]
        if self.world is not None:
            for out, inp in self.loops.items():
                if inp == channel:
                    self.world.set_cv(inp, self.world.output_volts(out))
        adc = self.hw.adcs[item.chip]
        return [float(adc.read(item.channel)) for _ in range(n)]

    def write_code(self, channel: str, code: float) -> None:
        out = self.board.outputs[channel]
        dac = self.hw.dacs[out.chip]
        writes = [(out.channel, int(code))]
        dac.write_many(writes)

    def patch(self, channel: str, volts: float | None) -> None:
        if self.world is not None:
            self.world.set_cv(channel, 0.0 if volts is None else volts)

    def loopback(self, output: str, input_: str | None) -> None:
        if input_ is None:
            self.loops.pop(output, None)
            if self.world is not None:
                for name in self.board.inputs:
                    self.world.set_cv(name, 0.0)
        else:
            self.loops = {output: input_}

    def close(self) -> None:
        for out in self.board.outputs.values():
            try:
                self.write_code(out.name, 0 if out.offset == 0 else
                                round((0.0 - out.offset) / out.gain))
            except OSError as exc:
                log.error("%s: could not set to 0 V: %s", out.name, exc)
        self.hw.close()


def open_calibration_rig(board: Board, settings: Settings) -> CalibrationRig:
    if board.kind == "sim":
        world = EmulatedWorld(board)
        return CalibrationRig(board, open_hardware(board, world=world), world)
    return CalibrationRig(board, open_hardware(board))
