"""Whether the JACK server is there: a libjack watch client shared by the ES-9 and MIDI back
ends (ctypes: no ports, never activated)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from typing import Any

from grooverack.config import Settings

log = logging.getLogger(__name__)

CLIENT_NAME = "grooverack"

_JACK_NO_START_SERVER = 0x01
CLOSE_TIMEOUT = 2.0  # s: a JACK client close that takes longer is left behind
_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_quiet = _ERROR(lambda _msg: None)


class JackWatch:
    """Whether the JACK server is there: a libjack client of its own (ctypes; no ports, never
    activated) whose shutdown callback runs the moment the server goes away.

    rtmidi's JACK clients never notice a server that died: their port lists go stale, sends go
    on into a 16 KiB ring buffer nobody drains, and once it is full (~2200 note messages, ~40 s of
    playing) `send_message` spins in `sched_yield()` holding the GIL, wedging every thread of the
    process; closing or deleting a dead rtmidi output waits 1 s, GIL held. So: `on_down()` (called
    on JACK's thread) pauses the sender, and the back end re-creates its clients when `connect()`
    succeeds again."""

    def __init__(self, on_down: Callable[[], None], name: str = f"{CLIENT_NAME} watch") -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                         ctypes.POINTER(ctypes.c_int)]
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _SHUTDOWN, ctypes.c_void_p]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        lib.jack_set_error_function.argtypes = [_ERROR]
        lib.jack_client_real_time_priority.restype = ctypes.c_int
        lib.jack_client_real_time_priority.argtypes = [ctypes.c_void_p]
        lib.jack_is_realtime.restype = ctypes.c_int
        lib.jack_is_realtime.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self.name = name
        self.on_down = on_down
        self.up = threading.Event()
        self.downs = 0  # how many times the server went away
        self._client: int | None = None
        self._callback = _SHUTDOWN(self._shutdown)  # referenced for as long as libjack may call it

    def _shutdown(self, _arg: Any) -> None:
        self.up.clear()
        self.downs += 1
        self.on_down()

    def connect(self) -> bool:
        """(Re)open the watch client; True when the server is there. libjack's own complaints
        about a missing server are silenced while it tries."""
        self.close()
        lib = self._lib
        try:
            handler = ctypes.c_void_p.in_dll(lib, "jack_error_callback")
            saved = handler.value
        except ValueError:
            handler, saved = None, None
        if handler is not None:
            lib.jack_set_error_function(_quiet)
        try:
            status = ctypes.c_int(0)
            client = lib.jack_client_open(self.name.encode(), _JACK_NO_START_SERVER,
                                          ctypes.byref(status))
        finally:
            if handler is not None:
                handler.value = saved
        if not client:
            return False
        lib.jack_on_shutdown(client, self._callback, None)
        self._client = client
        self.up.set()
        return True

    def client_priority(self) -> int | None:
        """The SCHED_FIFO priority JACK gives its clients' process threads (0 when the server
        runs without real-time; None while not connected): grooverack's own real-time threads
        go below it (`runtime.priority.levels`)."""
        client = self._client
        if client is None or not self.up.is_set():
            return None
        if not self._lib.jack_is_realtime(client):
            return 0
        return max(int(self._lib.jack_client_real_time_priority(client)), 0)

    def rt_ceiling(self, settings: Settings) -> int | None:
        """The `ceiling` for `runtime.priority.realtime`: JACK's client priority when the
        setting `rt.below_jack` asks for grooverack's threads below it, else None (the fixed
        levels)."""
        return self.client_priority() if settings["rt.below_jack"] else None

    def close(self) -> None:
        """Close the client while its server is up; one of a dead server is only dropped
        (libjack's close of it, beside other clients' calls, crashed the process here)."""
        client, self._client = self._client, None
        if client is not None and self.up.is_set():
            # bounded: libjack's close waits for the server's answer, and once (a loaded box,
            # the server up) it never came: the stop, and the test run, hung for good. ctypes
            # lets go of the GIL, so a close left waiting in its own thread blocks nothing.
            done = threading.Event()

            def close() -> None:
                try:
                    self._lib.jack_client_close(client)
                finally:
                    done.set()

            threading.Thread(target=close, name="grooverack-jack-close", daemon=True).start()
            if not done.wait(CLOSE_TIMEOUT):
                log.warning("MIDI: closing the JACK watch client did not return within %.1f s; "
                            "left behind", CLOSE_TIMEOUT)
