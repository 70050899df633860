"""The one timed scheduler of every real-time back end: a heap of items due at times, and one
thread that sleeps to just before each item's time, spins to it, and hands it on.

Used by the Pi loop (DAC/GPIO writes), `grooverack run --board sim` (the recorder on the wall
clock), and MIDI out (the MIDI back end, and the ES-9's MIDI mirror). The thread only moves data:
`emit(item, due, actual)` writes a level, sends a message or records a row; whatever computed the
item ran earlier, in another thread, so engine work never delays a write by more than one GIL
hand-over (`runtime.priority.short_gil_slices`).

The spin adapts: twice the worst of the last `WAKES` sleep overshoots, within `SPIN_MIN_S` and
the starting spin (`SPIN_S`; `RT_SPIN_S` under SCHED_FIFO, where a sleep overshoots far less).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from grooverack.runtime.priority import set_fifo

SPIN_S = 0.0005  # sleep to this long before a deadline, then spin (sleep overshoots ~0.1 ms)
RT_SPIN_S = 0.0003  # under SCHED_FIFO a sleep overshoots far less (p99 ~60 us here)
SPIN_MIN_S = 0.0001  # the adaptive spin: 2 x the worst of the last WAKES sleep overshoots,
WAKES = 64  # within SPIN_MIN_S..the starting spin

T = TypeVar("T")


class TimedScheduler(Generic[T]):
    """Items at times on `clock() - t0`; one thread emits each at its time.

    `schedule(t, item)` may be called from any thread, ahead of time; items due at the same time
    leave in the order they were scheduled. `emit(item, due, actual)` runs on the scheduler's
    thread (`actual` on the same timeline as `due`). `close()` emits what is still queued, at its
    time, then stops; `flush()` emits everything queued now (a stop: no note left hanging).
    """

    def __init__(self, emit: Callable[[T, float, float], Any], *,
                 clock: Callable[[], float] = time.perf_counter, t0: float = 0.0,
                 spin: float = SPIN_S, name: str = "grooverack-writer",
                 priority: int | None = None, direct: bool = False) -> None:
        self.emit = emit
        # `direct`: an item already due when it is scheduled is emitted at once on the caller's
        # thread (with any others due by then, in order), not after a GIL hand-over to ours;
        # `emit` then runs on either thread, one item at a time (it must not schedule)
        self.direct = direct
        self._emitting = threading.Lock()
        self.clock = clock
        self.t0 = t0
        self.spin = spin
        self.name = name
        self.priority = priority
        self.cpu_s = 0.0
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def __len__(self) -> int:
        return len(self._heap)

    def start(self) -> TimedScheduler[T]:
        if self._thread is None:
            self._closing = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def schedule(self, t: float, item: T) -> None:
        entry = (float(t), next(self._seq), item)
        if self.direct and self._thread is not None and self.t0 + entry[0] <= self.clock():
            with self._emitting:
                with self._cond:
                    heapq.heappush(self._heap, entry)
                    now = self.clock() - self.t0
                    due = []
                    while self._heap and self._heap[0][0] <= now:
                        due.append(heapq.heappop(self._heap))
                for when, _, thing in due:
                    self.emit(thing, when, self.clock() - self.t0)
            return
        with self._cond:
            earliest = not self._heap or entry[0] < self._heap[0][0]
            heapq.heappush(self._heap, entry)
            if earliest:  # the thread may be asleep waiting for a later one
                self._cond.notify()

    def cancel(self, predicate: Callable[[float, T], bool]) -> int:
        """Drop queued items for which `predicate(time, item)` holds; returns how many."""
        with self._cond:
            keep = [e for e in self._heap if not predicate(e[0], e[2])]
            dropped = len(self._heap) - len(keep)
            heapq.heapify(keep)
            self._heap = keep
        return dropped

    def queued(self) -> list[tuple[float, T]]:
        """What is queued, in time order, without taking it."""
        with self._cond:
            entries = sorted(self._heap)
        return [(t, item) for t, _, item in entries]

    def flush(self) -> list[tuple[float, T]]:
        """Take everything queued now, in time order (the caller emits or drops it)."""
        with self._cond:
            entries, self._heap = sorted(self._heap), []
        return [(t, item) for t, _, item in entries]

    def close(self, timeout: float | None = None) -> None:
        """Emit everything queued at its time, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def stop(self, timeout: float | None = 2.0) -> list[tuple[float, T]]:
        """Stop now; returns what was still queued (see `flush`)."""
        left = self.flush()
        self.close(timeout)
        return left

    def _run(self) -> None:
        if self.priority is not None:
            set_fifo(self.priority, self.name)
        cond, clock, t0, spin = self._cond, self.clock, self.t0, self.spin
        overshoots: deque[float] = deque([spin / 2] * WAKES, maxlen=WAKES)
        cpu0 = time.thread_time()
        while True:
            with cond:
                while not self._heap and not self._closing:
                    cond.wait()
                if not self._heap:
                    break
                deadline = t0 + self._heap[0][0]
                remaining = deadline - clock()
                if remaining > spin:  # woken early by a sooner item, or on time: look again
                    wake = deadline - spin
                    if not cond.wait(remaining - spin):  # timed out: learn how late it woke
                        overshoots.append(clock() - wake)
                        spin = min(max(2 * max(overshoots), SPIN_MIN_S), self.spin)
                    continue
            now = clock()
            while now < deadline:
                now = clock()
            with self._emitting:
                with cond:
                    if not self._heap or t0 + self._heap[0][0] != deadline:
                        continue  # cancelled, flushed or emitted directly while spinning
                    due, _, item = heapq.heappop(self._heap)
                self.emit(item, due, clock() - t0)
        self.cpu_s = time.thread_time() - cpu0
