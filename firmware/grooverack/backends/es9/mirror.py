"""The ES-9's MIDI mirror: the player's events as MIDI too, beside the CV outputs."""

from __future__ import annotations

import time
from typing import Any

from grooverack.backends.midi.output import MidiOutput, MidiSender
from grooverack.backends.midi.ports import PortKeeper
from grooverack.boards.midi import midi_options
from grooverack.config import Settings


class MidiMirror:
    """A board's `[midi]` table (ES-9 in, MIDI out to a Poly 2 or any MIDI device): the events
    the CV outputs play, on the same micro-timing."""

    def __init__(self, board: Any, settings: Settings) -> None:
        options = midi_options(settings, board)
        self.sender = MidiSender()
        self.output = MidiOutput(options, self.sender, settings["outputs.clock_ppqn"])
        self.keeper = PortKeeper("output", options.api, options.output_port,
                                 lambda port: setattr(self.sender, "port", port),
                                 lambda: setattr(self.sender, "port", None))

    def start(self) -> None:
        self.keeper.open()
        self.sender.start()

    def stop(self) -> None:
        self.output.stop(time.monotonic())
        self.sender.flush()
        self.sender.stop()
        self.keeper.close()
