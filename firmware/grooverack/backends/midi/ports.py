"""MIDI ports (python-rtmidi; on JACK, `jackport`'s clients of the module's own): by name
substring, virtual when none is named, reopened when they come back; dead JACK clients kept for
good."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any

from grooverack.backends.jack import CLIENT_NAME
from grooverack.backends.midi.jackport import JackMidiIn, JackMidiOut
from grooverack.errors import ConfigError

log = logging.getLogger(__name__)

VIRTUAL_IN = "grooverack in"
VIRTUAL_OUT = "grooverack out"


def load_rtmidi():
    """python-rtmidi (the desktop extra), imported when MIDI is first used: `grooverack --help`
    and the other jobs never need it."""
    import rtmidi

    return rtmidi


def api_id(name: str) -> int:
    rtmidi = load_rtmidi()
    return {"default": rtmidi.API_UNSPECIFIED, "alsa": rtmidi.API_LINUX_ALSA,
            "jack": rtmidi.API_UNIX_JACK}[name]


def find_port(names: list[str], wanted: str) -> int | None:
    """Index of the first port whose name contains `wanted` (case-insensitive), skipping
    grooverack's own ports unless asked for by name."""
    w = wanted.lower()
    for i, name in enumerate(names):
        low = name.lower()
        if w in low and (CLIENT_NAME not in low or CLIENT_NAME in w):
            return i
    return None


_dead_clients: list[Any] = []


def _forget(client: Any) -> None:
    """Keep a dead rtmidi client for good: deleting one whose JACK server died holds the GIL for
    a second (an output's close waits on a semaphore its process callback would post), so it is
    never deallocated, not even when the interpreter exits."""
    _dead_clients.append(client)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(client))


class PortKeeper:
    """One MIDI input or output: a named port (reopened when it returns) or a virtual one."""

    def __init__(self, direction: str, api: str, wanted: str,
                 on_open: Callable[[Any], None], on_close: Callable[[], None]) -> None:
        self.direction = direction  # "input" / "output"
        self.api = api
        self.wanted = wanted
        self.on_open, self.on_close = on_open, on_close
        self.port: Any = None
        self.port_name = ""
        self.opened = 0  # how many times a port was opened (reopens count)
        kind: Any
        if api == "jack":  # JACK clients of its own, every event at its frame (`jackport`)
            kind = JackMidiIn if direction == "input" else JackMidiOut
        else:
            rtmidi = load_rtmidi()
            kind = rtmidi.MidiIn if direction == "input" else rtmidi.MidiOut
        self._kind = kind
        # listing goes through a client of its own, never the one carrying the data
        self._probe = self._client(f"{CLIENT_NAME} probe") if wanted else None

    def _client(self, name: str) -> Any:
        try:
            if self.api == "jack":
                return self._kind(0, name=name)
            return self._kind(api_id(self.api), name=name)
        except Exception as exc:  # no ALSA sequencer, no JACK server, ...
            raise ConfigError(f"config key 'midi.api' = {self.api!r}: the MIDI system cannot be "
                              f"opened ({exc}); allowed: one that runs here (see `grooverack "
                              "ports`)") from None

    def _new(self) -> Any:
        port = self._client(CLIENT_NAME)
        if self.direction == "input":
            # nothing ignored in rtmidi: an ignored message's time delta is lost with it (Active
            # Sensing every 300 ms put the clock 33 ms/s behind); the parser and
            # `MidiInputHandler.handle` drop what grooverack does not use
            port.ignore_types(sysex=False, timing=False, active_sense=False)
        return port

    def open(self) -> None:
        if not self.wanted:
            port = self._new()
            name = VIRTUAL_IN if self.direction == "input" else VIRTUAL_OUT
            try:
                port.open_virtual_port(name)
            except (NotImplementedError, load_rtmidi().SystemError) as exc:
                raise ConfigError(f"midi.{self.direction}_port is empty and this MIDI system has "
                                  f"no virtual ports ({exc}); allowed: a port name from "
                                  "`grooverack ports`") from None
            self.port, self.port_name = port, name
            self.opened += 1
            self.on_open(port)
            log.info("MIDI %s: virtual port %r", self.direction, name)
            return
        if not self.check():
            log.warning("MIDI %s port %r not found; waiting for it (ports now: %s)",
                        self.direction, self.wanted, self.list() or "none")

    def list(self) -> list[str]:
        return self._probe.get_ports() if self._probe is not None else []

    def check(self) -> bool:
        """Close a port that went away, open a wanted one that is there. True when open."""
        if not self.wanted:
            return self.port is not None
        names = self.list()
        if self.port is not None:
            if self.port_name in names:
                return True
            log.warning("MIDI %s %r went away; reopening when it returns", self.direction,
                        self.port_name)
            self._close()
        index = find_port(names, self.wanted)
        if index is None:
            return False
        port = self._new()
        try:
            port.open_port(index)
        except Exception as exc:
            log.warning("MIDI %s %r could not be opened: %s", self.direction, names[index], exc)
            port.delete()
            return False
        self.port, self.port_name = port, names[index]
        self.opened += 1
        self.on_open(port)
        log.info("MIDI %s: %r", self.direction, self.port_name)
        return True

    def abandon(self) -> None:
        """The server went away: drop the clients without touching them (see `_forget`)."""
        port, self.port = self.port, None
        probe, self._probe = self._probe, None
        if port is not None:
            self.on_close()
        for client in (port, probe):
            if client is not None:
                _forget(client)

    def reconnect(self) -> None:
        """The server is back: new clients, the virtual port registered again or the named one
        looked for again."""
        self.abandon()
        if self.wanted:
            self._probe = self._client(f"{CLIENT_NAME} probe")
        self.open()

    def _close(self) -> None:
        port, self.port = self.port, None
        self.on_close()
        if port is not None:
            port.close_port()
            port.delete()

    def close(self) -> None:
        self._close()
        if self._probe is not None:
            self._probe.delete()
            self._probe = None
