"""The ES-9's MIDI mirror: the player's events as MIDI too, beside the CV outputs.

On JACK (the ES-9 a JACK client of its own, `midi.api = jack`) its port is one more port of the
ES-9's client, written by the same process callback at the CV changes' frames (`midiframes`);
otherwise a port of its own (`PortKeeper`: rtmidi, or a `JackMidiOut`) fed by a `MidiSender`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from grooverack.backends.es9.midiframes import MidiFrames
from grooverack.backends.jack import JackWatch
from grooverack.backends.midi.output import MidiOutput, MidiSender
from grooverack.backends.midi.ports import VIRTUAL_OUT, PortKeeper, find_port
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
        options = self.options = midi_options(settings, board)
        self.sender = MidiSender()
        self.output = MidiOutput(options, self.sender, settings["outputs.clock_ppqn"])
        self.keeper = PortKeeper("output", options.api, options.output_port,
                                 lambda port: setattr(self.sender, "port", port),
                                 lambda: setattr(self.sender, "port", None))
        self.watch: JackWatch | None = None
        self._server_lost = False
        self.server_returns = 0  # times the port was registered again on a restarted server
        # on the ES-9's JACK client (`attach`, then `start` on a JACK stream): its stream, and
        # the sender in the stream's frames; None: a port of its own
        self._stream: Any = None
        self.frames: MidiFrames | None = None
        self._connected = False  # the named port connected (on the ES-9's client)
        self.started = False

    def attach(self, stream: Any) -> None:
        """Before the ES-9's stream (`ES9Stream`) opens: on JACK (`midi.api = jack`) the port is
        asked of the stream's JACK client, should it open one."""
        if self.options.api == "jack" and stream.wanted != "portaudio":
            stream.midi = MidiFrames(stream.sr)
            stream.midi_port = VIRTUAL_OUT if not self.options.output_port else "out"
            self._stream = stream

    def start(self) -> None:
        """After the stream opened: its JACK client carries the port, or a port of its own."""
        self.started = True
        stream = self._stream
        if stream is not None and stream.transport == "jack" and stream.midi is not None:
            self.frames = stream.midi
            self.output.sender = self.frames
            self._connect()
            return
        if stream is not None:  # PortAudio after all (es9.transport = auto): a port of its own
            stream.midi, self._stream = None, None
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
        if self.frames is not None:
            return self._check_stream()
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

    def _check_stream(self) -> bool:
        """The port on the ES-9's client: away while its stream is, back with it (the keeper
        opens the client again, the port with it)."""
        assert self.frames is not None
        down = bool(self._stream.down)
        if down and not self._server_lost:
            self._server_lost, self._connected = True, False
            log.warning("ES-9: the stream went away under the MIDI mirror; MIDI out dropped "
                        "until it is back, then its port registered again")
        elif not down and self._server_lost:
            self._server_lost = False
            self.server_returns += 1
            log.warning("ES-9: the stream is back; the MIDI mirror's port registered again "
                        "(%d messages dropped while it was away)", self.frames.dropped)
        return not down and self._connect()

    def _connect(self) -> bool:
        """A named port (`midi.output_port`) connected from the ES-9 client's MIDI port when
        it is there; True when connected (or none is named)."""
        jack_stream = self._stream.stream
        wanted = self.options.output_port
        if not wanted:
            return True
        if jack_stream is None or jack_stream.midi is None or jack_stream.gone.is_set():
            return False
        client = jack_stream.client
        try:
            if client.get_all_connections(jack_stream.midi):
                return True
            own = client.name + ":"
            names = [p.name for p in client.get_ports(is_midi=True, is_input=True)
                     if not p.name.startswith(own)]
            index = find_port(names, wanted)
            if index is None:
                if self._connected:
                    log.warning("MIDI output %r went away; connecting when it returns", wanted)
                self._connected = False
                return False
            client.connect(jack_stream.midi, names[index])
        except Exception as exc:  # the server going away meanwhile
            log.debug("ES-9: connecting the MIDI mirror's port: %s", exc)
            return False
        self._connected = True
        log.info("MIDI output: %r (on the ES-9's JACK client)", names[index])
        return True

    def stop_on_stream(self, t: float) -> None:
        """The ES-9's stop, before its stream closes: note-offs, all notes off and MIDI Stop
        queued at engine time `t` (the stream writes them while it renders 0 V)."""
        if self.frames is not None:
            self.output.stop(t)

    def stop(self) -> None:
        if self.frames is not None or not self.started:  # (with the stream: `stop_on_stream`)
            return
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
