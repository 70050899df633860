"""The ES-9's MIDI mirror: the player's events as MIDI too, beside the CV outputs."""

from __future__ import annotations

import logging
import time
from typing import Any

from grooverack.backends.jack import JackWatch
from grooverack.backends.midi.output import MidiOutput, MidiSender
from grooverack.backends.midi.ports import PortKeeper
from grooverack.boards.midi import midi_options
from grooverack.config import Settings

log = logging.getLogger(__name__)

WATCH_NAME = "grooverack es9 midi watch"


class MidiMirror:
    """A board's `[midi]` table (ES-9 in, MIDI out to a Poly 2 or any MIDI device): the events
    the CV outputs play, on the same micro-timing. On JACK it watches the server as the MIDI
    back end does (rtmidi's clients never notice a dead server, `JackWatch`): MIDI out paused
    the moment the server goes, its port registered again once it is back (`check`)."""

    def __init__(self, board: Any, settings: Settings) -> None:
        options = midi_options(settings, board)
        self.sender = MidiSender()
        self.output = MidiOutput(options, self.sender, settings["outputs.clock_ppqn"])
        self.keeper = PortKeeper("output", options.api, options.output_port,
                                 lambda port: setattr(self.sender, "port", port),
                                 lambda: setattr(self.sender, "port", None))
        self.watch: JackWatch | None = None
        self._server_lost = False
        self.server_returns = 0  # times the port was registered again on a restarted server

    def start(self) -> None:
        self.keeper.open()
        if self.keeper.api == "jack":
            self.watch = JackWatch(self._on_server_gone, WATCH_NAME)
            if not self.watch.connect():
                self._on_server_gone()
        self.sender.start()

    def _on_server_gone(self) -> None:
        """JACK's thread: the server went away; nothing goes to its clients any more."""
        self.sender.paused = True

    def check(self) -> bool:
        """About once a second (the main thread): a named port that went away or came back
        looked for; on JACK, a server that went away logged once and the clients dropped, and
        once it is back the port registered again and logged. True while the port is there."""
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
        return bool(self.keeper.check())

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
