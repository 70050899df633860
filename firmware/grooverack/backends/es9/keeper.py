"""The ES-9 stream's keeper: a thread that notices the stream went away and opens it again.

It notices a loss (a `JackWatch` on JACK, a stream no longer active, or no callback for STALLED
s), drops the stream (the engine plays on by its clock) and tries to open it again every
REOPEN_EVERY s until the device is back; each loss and each return is logged once.
`StreamKeeper` is `ES9Stream`'s side of it (the stream's state: declared here, set there).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from grooverack.backends.es9.portaudio import refresh_devices
from grooverack.backends.jack import JackWatch
from grooverack.backends.streams import STALLED_S, why_gone

log = logging.getLogger(__name__)

STALLED = STALLED_S  # s without a callback from a running stream: it went away
KEEP_POLL = 0.1  # s between the keeper's looks at the stream
REOPEN_EVERY = 1.0  # s between tries to open a stream that went away


class StreamKeeper:
    """The keeper thread's methods (normal priority, off the real-time path)."""

    stream: Any
    watch: JackWatch | None
    wanted: str
    down: bool
    device_names: tuple[str, str]
    last_callback: float
    latency_frames: int | None
    latency_s: float | None
    losses: int
    reopens: int
    gone_s: float | None
    _closed: threading.Event
    _gone: threading.Event
    _gen: int
    _rebase: bool
    _started_at: float
    _lost_at: float

    def open(self, rescan: bool = True) -> None: ...  # (ES9Stream's)

    def wait_latency(self, timeout: float = 5.0) -> float:
        raise NotImplementedError

    def _close(self, stream: Any, what: str) -> None: ...

    def _drop(self, stream: Any, what: str) -> None: ...

    def _keep(self) -> None:
        """Notice that the stream went away and open it again every REOPEN_EVERY s until it
        is back."""
        next_try = 0.0
        while not self._closed.wait(KEEP_POLL):
            if not self.down:
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
        if self.stream is None:
            return "no stream"
        return why_gone(self.stream, self.last_callback, self._started_at, STALLED)

    def _lose(self, why: str) -> None:
        """The stream went away: dropped (a JACK one untouched: its stop would wait for the dead
        server), the engine on the clock, logged once."""
        self.down = True
        self._lost_at = time.monotonic()
        self.losses += 1
        self._gone.clear()
        stream, self.stream = self.stream, None
        self._gen += 1  # its callbacks, should any come, no longer count
        log.warning("ES-9: the audio stream went away (%s); the engine plays on by its clock, "
                    "the outputs undriven; reopening the stream every %.0f s", why, REOPEN_EVERY)
        self._drop(stream, "closing the stream that went away")

    def _reopen(self) -> None:
        """One try: the JACK server there (the watch connects), PortAudio started again (its
        device list read anew), the stream opened and started, its first block in."""
        watch = self.watch
        if watch is not None and not watch.up.is_set():
            if not watch.connect():
                return  # the server is still away
            self._gone.clear()
        try:
            if self.wanted != "jack":
                refresh_devices()
            self.open(rescan=False)
        except Exception as exc:  # the device is not back yet
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
