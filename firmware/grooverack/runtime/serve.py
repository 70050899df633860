"""The one way every back end makes its engine and serves it.

`make_engine(settings, threaded=...)` opens the configured model and builds the `Engine`;
`serve(...)` is the service lifecycle around a real-time loop (see `Lifecycle`).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from grooverack.config import Settings
from grooverack.engine.engine import Engine
from grooverack.model.watch import ModelWatch
from grooverack.runtime.service import Service, supervise
from grooverack.state import StateKeeper


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
    2. `ready(status, outputs_to_zero=...)`: SIGTERM/SIGINT handlers, READY=1, the watchdog (it
       pings while the loop beats, `beat()`, and the generator's heartbeat is fresh), presets
       saved in the background as the panel stores them; everything start-up made (the model's
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
