"""The page in a process of its own: a relay thread in the module's process and a `RemoteLink` in
the page's.

Measured (benchmarks/README.md, "The web page"): an HTTP server in the module's own process
costs the real-time loop milliseconds, even with the loop at SCHED_FIFO, whenever the server's
thread is preempted while it holds the GIL. So the page's server (uvicorn, Starlette, every JSON
text, every client) runs in a child process, and the module's process only keeps a small relay
thread that does bounded work: it forwards commands to the `EngineLink` inbox, their results back,
and at most every `PUSH_S` the newest `Snapshot` (plain values, the arrays as raw bytes; the
pattern, groove and presets only when they changed). It sleeps on the pipe and on a wake-up pipe the engine's loop pokes (one non-blocking
`os.write`) when a command is done, so an answer leaves at once.

    module process                                   page process (spawned)
    loop thread --between()--> EngineLink <--> Relay thread <==pipe==> RemoteLink <-- Starlette
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
from grooverack.engine.pattern import Pattern
from grooverack.runtime.priority import COMPANION_THREADS
from grooverack.voices import NUM_VOICES, STEPS
from grooverack.web.library import Refused
from grooverack.web.link import Busy, EngineLink, Snapshot

log = logging.getLogger(__name__)

PUSH_S = 0.05  # the newest snapshot goes out at most this often (the page draws at 25 fps)
RELAY_THREAD = COMPANION_THREADS[0]


def _error(exc: BaseException) -> tuple[str, str, str]:
    return type(exc).__name__, str(exc), getattr(exc, "field", "")


def _raise(kind: str, message: str, field: str) -> BaseException:
    if kind == "Busy":
        return Busy(message)
    if kind == "Refused":
        return Refused(field, message)
    return ValueError(message)


class Relay:
    """In the module's process: between the `EngineLink` and the page's process."""

    def __init__(self, link: EngineLink, conn: Connection) -> None:
        self.link, self.conn = link, conn
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._pending: dict[int, Future[Any]] = {}
        self._stop = threading.Event()
        self._presets_key: tuple[tuple[int, int], ...] | None = None
        self._sent_pattern: Pattern | None = None
        self._sent_groove: np.ndarray | None = None
        # the name `runtime.priority.realtime` knows: SCHED_FIFO below the generator with --rt
        self.thread = threading.Thread(target=self._run, name=RELAY_THREAD, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        self.thread.join(2.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self, _: object = None) -> None:
        """From any thread (the engine's loop, as a command's done callback): never blocks."""
        with contextlib.suppress(OSError):  # a full wake-up pipe already wakes the relay
            os.write(self._wake_w, b"!")

    def _run(self) -> None:
        seen, sent_at = -1, 0.0
        try:
            while not self._stop.is_set():
                ready = wait([self.conn, self._wake_r], timeout=PUSH_S)
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                if self.conn in ready:
                    while self.conn.poll():
                        self._command(self.conn.recv())
                answered = [n for n, f in self._pending.items() if f.done()]
                snap = self.link.latest
                now = time.monotonic()
                # a command done: the snapshot that shows it goes first (the link published it
                # before answering), so the page's state is never older than an answer it gave
                if snap is not None and snap.serial != seen and (answered
                                                                 or now - sent_at >= PUSH_S):
                    seen, sent_at = snap.serial, now
                    self._send_snapshot(snap)
                self._answer(answered)
        except (EOFError, OSError):  # the page's process ended: the module plays on
            log.info("web page process ended")

    def _command(self, message: tuple[Any, ...]) -> None:
        _, number, kind, args = message
        try:
            future = self.link.submit(kind, *args)
        except (Busy, ValueError) as exc:
            self.conn.send(("done", number, False, _error(exc)))
            return
        self._pending[number] = future
        future.add_done_callback(self._wake)

    def _answer(self, numbers: list[int]) -> None:
        for number in numbers:
            future = self._pending.pop(number)
            exc = future.exception()
            self.conn.send(("done", number, exc is None,
                            future.result() if exc is None else _error(exc)))

    def _send_snapshot(self, snap: Snapshot) -> None:
        """The snapshot as plain values: arrays as raw bytes (pickling a numpy array costs ~40x
        more GIL), the pattern and groove only when they changed, the presets likewise."""
        key = tuple((slot, id(data)) for slot, data in sorted(snap.presets.items()))
        presets = None
        if key != self._presets_key:
            self._presets_key, presets = key, dict(snap.presets)
        pattern = None
        if snap.pattern is not self._sent_pattern:
            self._sent_pattern = snap.pattern
            pattern = (snap.pattern.serial, snap.pattern.hits.tobytes(),
                       snap.pattern.velocities.tobytes(), snap.pattern.offsets.tobytes())
        groove = None
        if snap.groove is not self._sent_groove:
            self._sent_groove = snap.groove
            groove = np.asarray(snap.groove, dtype=np.float32).tobytes()
        values = {name: getattr(snap, name) for name in _PLAIN}
        self.conn.send(("snapshot", values, pattern, groove, presets,
                        dict(self.link.fault_counts())))


# the Snapshot fields that travel as they are (the arrays travel as bytes)
_PLAIN = tuple(f.name for f in dataclasses.fields(Snapshot)
               if f.name not in ("pattern", "groove", "presets"))


class RemoteLink:
    """In the page's process: what `web.app` needs of a link, over the pipe to the relay."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._latest: Snapshot | None = None
        self._faults: Mapping[str, int] = {}
        self._presets: Mapping[int, Mapping[str, Any]] = {}
        self._pattern = Pattern.empty()
        self._groove = np.zeros((STEPS, 3), dtype=np.float32)
        self._futures: dict[int, Future[Any]] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, name="grooverack-web-reader",
                                       daemon=True)
        self.thread.start()

    @property
    def latest(self) -> Snapshot | None:
        return self._latest

    @property
    def ready(self) -> bool:
        return self._latest is not None and not self.closed.is_set()

    def fault_counts(self) -> Mapping[str, int]:
        return self._faults

    def submit(self, kind: str, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self.closed.is_set():
                raise Busy("the module has stopped")
            number = next(self._numbers)
            self._futures[number] = future
            self.conn.send(("command", number, kind, args))
        return future

    def forget(self, future: Future[Any]) -> None:
        """A request that stopped waiting (timed out)."""
        with self._lock:
            for number, f in list(self._futures.items()):
                if f is future:
                    del self._futures[number]

    def _snapshot(self, values: dict[str, Any], pattern: tuple[Any, ...] | None,
                  groove: bytes | None, presets: Mapping[int, Mapping[str, Any]] | None,
                  faults: Mapping[str, int]) -> None:
        if pattern is not None:
            serial, hits, velocities, offsets = pattern
            shape = (STEPS, NUM_VOICES)
            self._pattern = Pattern(np.frombuffer(hits, dtype=bool).reshape(shape),
                                    np.frombuffer(velocities, dtype=np.float32).reshape(shape),
                                    np.frombuffer(offsets, dtype=np.float32).reshape(shape),
                                    serial)
        if groove is not None:
            self._groove = np.frombuffer(groove, dtype=np.float32).reshape(STEPS, 3)
        if presets is not None:
            self._presets = presets
        self._faults = faults
        self._latest = Snapshot(**values, pattern=self._pattern, groove=self._groove,
                                presets=self._presets)

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "snapshot":
                    self._snapshot(*message[1:])
                elif message[0] == "done":
                    _, number, ok, value = message
                    with self._lock:
                        future = self._futures.pop(number, None)
                    if future is None:
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(_raise(*value))
        except (EOFError, OSError):
            self.closed.set()
            with self._lock:
                for future in self._futures.values():
                    future.set_exception(Busy("the module has stopped"))
                self._futures.clear()
