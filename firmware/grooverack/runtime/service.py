"""Running as a systemd service: readiness, watchdog, real-time priority, clean shutdown.

- `sd_notify` without extra dependencies: a datagram to `$NOTIFY_SOCKET` (a path, or `@name` for
  the abstract namespace). Outside systemd (no socket) every call is a no-op.
- READY=1 once the hardware is up; STATUS= lines a person sees in `systemctl status`.
- WATCHDOG=1 only while every watched part proves it is alive: the real-time loop beats, the
  generator beats or answers its probe. A stuck part stops the pings and systemd restarts the
  service (`WatchdogSec=`, `Restart=always`).
- SCHED_FIFO for the real-time thread when the limits allow it (`LimitRTPRIO=`), said in the log
  either way; memory locked when `LimitMEMLOCK=` allows it.
- SIGHUP (the terminal or ssh session closed), SIGTERM and SIGINT: the first asks the loop to stop
  (`service.stopping`), the loop then calls `shutdown()`: outputs to 0 V, state saved,
  STOPPING=1, exit status 0. Another signal after that is logged and changes nothing: nothing
  interrupts the shutdown. A loop that has not started the shutdown `stop_grace` seconds after
  the first signal is stopped for it (the shutdown run from the signal's timer, then exit 0).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from grooverack.engine.seam import EngineSeam
from grooverack.runtime.priority import RT_PRIORITY, lock_memory, set_fifo

log = logging.getLogger(__name__)

DEFAULT_STALE_S = 2.0      # a part that has not beaten for this long is stuck
SEND_TIMEOUT_S = 0.05     # an sd_notify datagram that cannot leave this soon is dropped
STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
SIGNALLED = threading.Event()  # a stop signal reached a Service of this process
STOP_GRACE_S = 5.0         # a loop that has not stopped this long after SIGTERM is stopped for it
                           # (outputs 0 V, state saved, exit 0) before systemd's TimeoutStopSec=10


def notify_address(value: str | None = None) -> str | None:
    """The socket address from `$NOTIFY_SOCKET` (abstract namespace for a leading '@')."""
    value = os.environ.get("NOTIFY_SOCKET") if value is None else value
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract: notifications off", value)
    return None


def watchdog_interval() -> float | None:
    """Half of systemd's `WatchdogSec` (from `$WATCHDOG_USEC`), when it is meant for us."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1e6 / 2


class Notifier:
    """sd_notify over an AF_UNIX datagram socket."""

    def __init__(self, address: str | None = None) -> None:
        self.address = notify_address(address)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: Any) -> bool:
        """`send(READY=1, STATUS="...")`; True when systemd got it, False outside systemd."""
        if self.address is None:
            return False
        text = "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items())
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    # a listener that stopped reading (its queue full) must never hold up the
                    # loop or the shutdown: a datagram that cannot leave soon is dropped
                    self._sock.settimeout(SEND_TIMEOUT_S)
                self._sock.sendto(text.encode("utf-8"), self.address)
            except OSError as exc:
                if not self._failed:  # log once per burst of failures
                    log.warning("sd_notify to %r failed: %s", self.address.lstrip("\0"), exc)
                self._failed = True
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                return False
        if self._failed:
            log.info("sd_notify to %r works again", self.address.lstrip("\0"))
            self._failed = False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class Service:
    """Readiness, watchdog and shutdown of one grooverack process."""

    def __init__(self, *, notifier: Notifier | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier or Notifier()
        self.interval = interval if interval is not None else watchdog_interval()
        self.clock = clock
        self._beats: dict[str, tuple[float, float]] = {}  # name -> (last beat, stale after s)
        self._probes: dict[str, Callable[[], bool]] = {}
        self._stale_reported: set[str] = set()
        self._last_ping = -1e300
        self._callbacks: list[Callable[[], Any]] = []
        self.stop_event = threading.Event()
        self._shutdown_done = False  # set when the shutdown starts: it runs once
        self._shutdown_lock = threading.RLock()  # a second caller waits for the first to finish
        self._thread: threading.Thread | None = None
        self._previous: dict[int, Any] = {}
        self.stop_grace = STOP_GRACE_S

    # --- liveness

    def watch(self, name: str, stale_after: float = DEFAULT_STALE_S) -> None:
        """Expect `beat(name)` at least every `stale_after` seconds from now on."""
        self._beats[name] = (self.clock(), stale_after)

    def watch_probe(self, name: str, probe: Callable[[], bool]) -> None:
        """A part that says itself whether it is alive (e.g. the generator's heartbeat check)."""
        self._probes[name] = probe

    def beat(self, name: str) -> None:
        stale = self._beats.get(name, (0.0, DEFAULT_STALE_S))[1]
        self._beats[name] = (self.clock(), stale)

    def stale(self) -> list[str]:
        """Names of the watched parts that are not alive now."""
        now = self.clock()
        out = [n for n, (t, limit) in self._beats.items() if now - t > limit]
        for name, probe in self._probes.items():
            try:
                if not probe():
                    out.append(name)
            except Exception as exc:  # a probe that raises is a part that is not alive
                log.debug("probe %s raised %r", name, exc)
                out.append(name)
        return out

    def tick(self) -> bool:
        """Ping the watchdog when due and every part is alive; True when a ping went out.

        Call it from any thread often enough (the watchdog thread does it every interval/4)."""
        stale = self.stale()
        for name in sorted(set(stale) - self._stale_reported):
            log.error("%s is not alive: watchdog pings stop (systemd restarts the service)", name)
            self.notifier.send(STATUS=f"{name} stalled")
        for name in sorted(self._stale_reported - set(stale)):
            log.warning("%s is alive again", name)
        self._stale_reported = set(stale)
        if stale or self.interval is None:
            return False
        now = self.clock()
        if now - self._last_ping < self.interval:
            return False
        self._last_ping = now
        return self.notifier.send(WATCHDOG=1)

    def start_watchdog(self) -> None:
        """A daemon thread that calls `tick()`; it pings only while the watched parts beat."""
        if self.interval is None or self._thread is not None:
            return
        period = self.interval / 4

        def loop() -> None:
            while not self.stop_event.wait(period):
                self.tick()

        self._thread = threading.Thread(target=loop, name="grooverack-watchdog", daemon=True)
        self._thread.start()

    # --- systemd states

    def ready(self, status: str = "") -> None:
        """The hardware is up: READY=1 (and start the watchdog pings)."""
        fields: dict[str, Any] = {"READY": 1}
        if status:
            fields["STATUS"] = status
        self.notifier.send(**fields)
        log.info("ready%s", f": {status}" if status else "")
        self.start_watchdog()

    def status(self, text: str) -> None:
        self.notifier.send(STATUS=text)

    # --- real time

    def realtime(self, priority: int = RT_PRIORITY) -> bool:
        """SCHED_FIFO for the calling thread when permitted; logs which it got."""
        return set_fifo(priority, "real-time thread")

    @staticmethod
    def lock_memory() -> bool:
        """mlockall so that the real-time loop never waits for a page; logs when not permitted."""
        return lock_memory()

    # --- shutdown

    def on_shutdown(self, callback: Callable[[], Any]) -> None:
        """Run at shutdown in registration order (outputs to 0 V first, then state saving)."""
        self._callbacks.append(callback)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    # how the signal's timer ends a process whose loop did not stop (tests replace it: a test
    # process must fail, not vanish with status 0)
    _exit = staticmethod(os._exit)

    def install_signal_handlers(self) -> None:
        """SIGHUP/SIGTERM/SIGINT set `stopping`; later ones are only logged. Call from the main
        thread."""
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        SIGNALLED.set()
        if not self.stop_event.is_set():
            log.info("%s: stopping", name)
            self.stop_event.set()
            self.notifier.send(STOPPING=1, STATUS=f"stopping ({name})")
            timer = threading.Timer(self.stop_grace, self._force_stop)
            timer.daemon = True
            timer.start()
            return
        # never raise here: the handler runs between two bytecodes of whatever the main thread
        # does, the shutdown's own steps included (outputs to 0 V, state being written)
        log.warning("%s again: already stopping (outputs to 0 V, state saved, then exit)", name)

    def _force_stop(self) -> None:
        if self._shutdown_done:
            return
        log.error("the loop did not stop %.1f s after the signal: outputs to 0 V and state saved "
                  "from the signal's timer", self.stop_grace)
        self.shutdown()
        self._exit(0)

    def shutdown(self) -> int:
        """Run the shutdown callbacks once (each one's failure logged, the rest still run);
        returns the exit status 0. A second caller (another thread) waits until they ran."""
        with self._shutdown_lock:
            if self._shutdown_done:
                return 0
            self._shutdown_done = True
            self.stop_event.set()
            self.notifier.send(STOPPING=1)
            for callback in self._callbacks:
                try:
                    callback()
                except Exception:
                    log.exception("shutdown step %s failed",
                                  getattr(callback, "__name__", callback))
            self.notifier.close()
        try:  # a caller that goes on (tests, an in-process run) gets its own handlers back
            self.restore_signal_handlers()
        except ValueError:
            pass  # not the main thread: the process is ending anyway
        return 0

    def restore_signal_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


# --------------------------------------------------------------------------------------------
# The run loop's side: one call wires the engine, the outputs and the state into the service.

LOOP_STALE_S = 1.0        # the real-time loop wakes every few ms: a second of silence is stuck
GENERATOR_STALE_S = 3.0   # one inference on a Zero 2 W takes well under a second


def engine_probe(engine: EngineSeam, stale_after: float = GENERATOR_STALE_S) -> Callable[[], bool]:
    """Alive while the engine's generator runs and its heartbeat (time.monotonic() of the
    worker's last loop) is recent: a stalled inference stops the watchdog pings."""
    def probe() -> bool:
        if not engine.alive:
            return False
        return time.monotonic() - float(engine.heartbeat) <= stale_after
    return probe


def supervise(engine: EngineSeam, *, status: str, outputs_to_zero: Callable[[], Any],
              save_state: Callable[[], Any] | None = None, signals: bool = True) -> Service:
    """For `grooverack run`, after the hardware is up: watch the loop ("loop" beats) and the
    generator, shut down by outputs to 0 V then state saved, SIGHUP/SIGTERM/SIGINT handlers,
    READY=1.

    The loop then calls `svc.beat("loop")` every pass, stops when `svc.stopping`, and returns
    `svc.shutdown()` (0) as the exit status."""
    svc = Service()
    svc.watch("loop", LOOP_STALE_S)
    svc.watch_probe("generator", engine_probe(engine))
    svc.on_shutdown(outputs_to_zero)
    if save_state is not None:
        svc.on_shutdown(save_state)
    if signals:
        svc.install_signal_handlers()
    svc.ready(status)
    return svc
