"""What a real-time loop lets a companion (the web page's link) do: one typed seam.

A back end that takes a `LoopHook` calls `attach(engine, faults, wake)` once, before it is ready,
and `between(now)` on its loop thread between two `advance` calls. A loop that idles in a plain
sleep (the wall-clock sim) sleeps through `sleep(seconds)`; a loop that waits on an event of its
own (the ES-9's engine thread waits for the next audio block) passes `wake`, which the companion
calls (never blocking) when it has a command: either way a command is picked up at once.
`between` must never block: it only drains a bounded inbox and swaps a reference
(`grooverack.web.link.EngineLink`), so the loop keeps its time whatever the companion's thread
is doing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from grooverack.engine.seam import EngineSeam

# faults the back end counts (late writes, bus errors, xruns): name -> count, read by the hook
# from its own thread, never from the loop's
FaultReader = Callable[[], Mapping[str, int]]


class LoopHook(Protocol):
    def attach(self, engine: EngineSeam, faults: FaultReader | None = None,
               wake: Callable[[], None] | None = None) -> None: ...

    def between(self, now: float) -> None: ...

    def sleep(self, seconds: float) -> bool:
        """The loop's idle wait (instead of `time.sleep`): ends early when the companion has
        something for the loop, which then makes its next pass at once; True when it did."""
        ...
