"""The one way every back end makes its engine and serves it.

`make_engine(settings, threaded=...)` opens the configured model and builds the `Engine`;
`serve(settings, build)` is the one skeleton every real-time back end runs in (the Pi loop, the
ES-9, MIDI, the wall-clock sim; a back end whose loop runs in threads of its own as well): the
engine built, the back end built on it (`build(engine) -> Backend`), the state restored, the
back end started, READY + the watchdog, its loop until a signal or its own end, then the one
shutdown: every output to 0 V (and MIDI Stop + all notes off where MIDI goes out) before the
state is saved, the engine's worker stopped, the back end closed; exit status 0. An error in
the loop ends through the same shutdown (and is raised on). SIGHUP, SIGTERM and SIGINT all stop
it; a second signal never interrupts the shutdown (`runtime.service`). `Lifecycle` is the
service side of it.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from grooverack.config import Settings
from grooverack.engine.engine import Engine
from grooverack.errors import GrooverackError
from grooverack.model.watch import ModelWatch
from grooverack.runtime.service import SIGNALLED, STOP_SIGNALS, Service, supervise
from grooverack.state import StateKeeper

log = logging.getLogger(__name__)


def make_engine(settings: Settings, *, threaded: bool) -> Engine:
    """The engine on the configured model (`model.path`, `model.variant`). `threaded`: a worker
    thread generates (real time); False generates at step boundaries (virtual time, tests).

    A model that is missing, damaged or fails to load does not stop the module: one warning names
    the file and the reason, rule patterns play (`engine.generation == "fallback"`), and the
    model's files are looked at again (`model.watch.ModelWatch`) until it loads."""
    watch = ModelWatch(settings["model.path"] or None, settings["model.variant"],
                       quiet=settings["generation.mode"] == "rules")
    return Engine(settings, watch.runner, threaded=threaded, watch=watch)


class Lifecycle:
    """The service lifecycle of one real-time run, the same on every back end:

    1. `restore()`: presets and the last performance state into the engine (before it plays);
    2. `ready(status, outputs_to_zero=...)`: SIGHUP/SIGTERM/SIGINT handlers, READY=1, the
       watchdog (it pings while the loop beats, `beat()`, and the generator's heartbeat is
       fresh), presets saved in the background as the panel stores them; everything start-up made (the model's
       sessions, the board, the engine) is frozen out of the garbage collector (`gc.freeze`), so
       no full collection walks it while the module plays (a pause of several milliseconds in
       whichever thread holds the GIL: the real-time loop's, the MIDI sender's);
    3. the back end's loop runs until `stopping` (a signal) or its own end;
    4. `shutdown()`: every output to 0 V (the back end's `outputs_to_zero`: DAC codes, audio
       samples, and MIDI Stop + all notes off where MIDI goes out), then the state saved, then
       the engine's worker stopped; returns the exit status 0.
    """

    def __init__(self, settings: Settings, engine: Engine, *, signals: bool = True) -> None:
        self.settings, self.engine, self.signals = settings, engine, signals
        self.keeper = StateKeeper(settings, engine)
        self.service: Service | None = None
        self._closed = False

    def restore(self) -> bool:
        return self.keeper.restore()

    def ready(self, status: str, *, outputs_to_zero: Callable[[], Any],
              after: Iterable[Callable[[], Any]] = ()) -> Service:
        """Up and playing: READY=1, the watchdog, the shutdown steps in order (outputs to 0 V,
        state saved, then `after`)."""
        self.service = supervise(self.engine, status=status, outputs_to_zero=outputs_to_zero,
                                 save_state=self.keeper.save_all, signals=self.signals)
        for step in after:
            self.service.on_shutdown(step)
        self.keeper.start_background()
        gc.collect()
        gc.freeze()
        return self.service

    @property
    def stopping(self) -> bool:
        return self.service is not None and self.service.stopping

    def beat(self, name: str = "loop") -> None:
        if self.service is not None:
            self.service.beat(name)

    def wait(self, duration: float | None, every: Callable[[], Any] | None = None,
             period: float = 0.1) -> None:
        """For back ends whose loop runs in threads of their own (ES-9, MIDI): the main thread
        waits for a signal or the end of `duration`, calling `every()` about once a second."""
        end = time.monotonic() + duration if duration else math.inf
        next_every = time.monotonic() + 1.0
        while not self.stopping:
            now = time.monotonic()
            if now >= end:
                break
            if every is not None and now >= next_every:
                next_every = now + 1.0
                every()
            time.sleep(min(period, max(0.0, end - now)))

    def shutdown(self) -> int:
        """Outputs to 0 V, state saved, engine worker stopped; exit status 0. Safe twice."""
        if self._closed:
            return 0
        self._closed = True
        status = self.service.shutdown() if self.service is not None else 0
        self.engine.close()
        if self.service is not None:
            self.service.restore_signal_handlers()
        return status


class Backend(Protocol):
    """One real-time world around one engine, as `serve()` runs it (built by `serve`'s `build`
    on the engine: hardware, streams or ports opened, nothing playing yet)."""

    def start(self, beat: Callable[[], None]) -> str:
        """Play (threads, streams, ports started); a loop calls `beat()` every pass (the
        watchdog). Returns the status line for READY (`"board X up (...)"`)."""
        ...

    def run(self, life: Lifecycle) -> None:
        """Until `life.stopping` or the back end's own end (`--duration`): the loop on this
        thread, or `life.wait(...)` while threads of its own play. Raises to stop on an error."""
        ...

    def outputs_to_zero(self) -> None:
        """Every output to 0 V (DAC codes, samples, MIDI note-offs + Stop), nothing queued left
        to rise after it."""
        ...

    def close(self) -> None:
        """After the state is saved: whatever is left to release or write (ports, reports)."""
        ...


def serve(settings: Settings, build: Callable[[Engine], Backend], *,
          engine: Engine | None = None, signals: bool | None = None) -> int:
    """Run one back end in the one skeleton (module docstring); returns the exit status 0.

    `engine`: one already made (else `make_engine(settings, threaded=True)`); `signals`: install
    the SIGHUP/SIGTERM/SIGINT handlers (default: when called on the main thread; a back end
    served from another thread is stopped by its own means)."""
    if engine is None:
        engine = make_engine(settings, threaded=True)
    try:
        backend = build(engine)
    except BaseException:
        engine.close()
        raise
    if signals is None:
        signals = threading.current_thread() is threading.main_thread()
    life = Lifecycle(settings, engine, signals=signals)
    try:
        life.restore()  # presets + last performance, before the first step plays
        status = backend.start(life.beat)
        life.ready(status, outputs_to_zero=backend.outputs_to_zero)
        _READY.set()  # serve's handlers are in: process_signals' own only log from now on
        backend.run(life)
    except BaseException as exc:
        if isinstance(exc, GrooverackError):  # a message for a person (cli prints it once)
            log.error("stopped: %s; outputs to 0 V", exc)
        elif isinstance(exc, Exception):
            log.exception("the back end stopped by an error: outputs to 0 V, state saved")
        _end(life, backend)
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C before the handlers were in
            return 0
        raise
    return _end(life, backend)


def _end(life: Lifecycle, backend: Backend) -> int:
    """The one shutdown: outputs to 0 V (also when start-up never reached READY), state saved
    (once READY), engine stopped, then the back end closed."""
    if life.service is None:
        try:
            backend.outputs_to_zero()
        except Exception:
            log.exception("outputs to 0 V failed")
    status = life.shutdown()
    try:
        backend.close()
    except Exception:
        log.exception("closing the back end failed")
    return status


@contextmanager
def process_signals() -> Iterator[None]:
    """For a whole `grooverack run` process, around `serve()`: a SIGHUP/SIGTERM/SIGINT before
    serve's own handlers are in (start-up: model, hardware) ends the start-up cleanly (exit
    status 0 through every cleanup); one after serve handed them back (the shutdown done: the
    summary and files being written, the interpreter ending) is logged and ignored, so the
    process still exits 0 (after a stop signal the stop signals are ignored until it ends)."""
    _READY.clear()
    asked = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if asked.is_set() or _READY.is_set():
            log.warning("%s: already stopping", name)
            return
        asked.set()
        log.info("%s during start-up: stopping", name)
        raise SystemExit(0)

    SIGNALLED.clear()
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        asked.set()  # from here a signal is only logged
        for sig, old in previous.items():
            # a run stopped by a signal is ending: another one, between here and the exit, is
            # ignored (the interpreter's finalization puts Python handlers back to the default,
            # which would end the process with status 143; an ignored signal it leaves alone)
            signal.signal(sig, signal.SIG_IGN if SIGNALLED.is_set() else old)


_READY = threading.Event()  # set by serve() once the back end plays (see process_signals)
