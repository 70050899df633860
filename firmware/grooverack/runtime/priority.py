"""Real-time priority: the one place that gives grooverack's threads SCHED_FIFO.

Three levels, as every back end uses them: the thread that writes outputs at their times (the
scheduler's, or the audio callback's, which JACK/ALSA already run real-time) highest; the loop
that turns inputs into engine calls and asks the engine for events one step below; the engine's
generator worker one more step below. A worker left at normal priority that other processes
preempt while it holds the GIL would hold up the loop and the writer too (priority inversion
through the GIL: 30-50 ms stalls measured on a shared 2-core box, benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

RT_PRIORITY = 80           # below the kernel's IRQ threads (50 on PREEMPT_RT are below, 99 above)
WRITER_PRIORITY = RT_PRIORITY
LOOP_PRIORITY = RT_PRIORITY - 5
GENERATOR_PRIORITY = RT_PRIORITY - 10
SWITCH_S = 0.0001  # GIL hand-over interval: a loop waits at most this long behind another thread
GENERATOR_THREAD = "grooverack-generator"  # the engine's worker thread (engine/generator.py)
# Threads beside the loop whose work is bounded (web/relay.py: one snapshot every 50 ms, the
# commands of a bounded inbox): one level below the generator, for the same reason as it (left at
# normal priority, a busy box preempts them while they hold the GIL: 45 ms stalls of the loop
# measured with the web page open, benchmarks/README.md)
COMPANION_THREADS = ("grooverack-web-relay",)


def set_fifo(priority: int, what: str, native_id: int = 0) -> bool:
    """SCHED_FIFO `priority` for a thread (0 = the calling one); logs when not permitted."""
    try:
        os.sched_setscheduler(native_id, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        log.warning("%s stays at normal priority (SCHED_FIFO %d: %s; the service unit's "
                    "LimitRTPRIO= allows it)", what, priority, getattr(exc, "strerror", None) or exc)
        return False
    log.info("%s runs SCHED_FIFO priority %d", what, priority)
    return True


def lock_memory() -> bool:
    """mlockall so that the real-time threads never wait for a page; logs when not permitted."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    mcl_current, mcl_future = 1, 2
    if libc.mlockall(mcl_current | mcl_future) != 0:
        log.warning("memory not locked (mlockall: %s); LimitMEMLOCK=infinity allows it",
                    os.strerror(ctypes.get_errno()))
        return False
    log.info("memory locked")
    return True


def short_gil_slices(seconds: float = SWITCH_S) -> None:
    """Hand the GIL over at least this often, so a real-time thread never waits long behind the
    Python work of another (the default 5 ms would be a 5 ms late trigger)."""
    if sys.getswitchinterval() > seconds:
        sys.setswitchinterval(seconds)


def levels(ceiling: int | None = None) -> tuple[int, int, int] | None:
    """(writer, loop, generator) priorities. `ceiling`: the SCHED_FIFO priority of a JACK
    server's client threads when the back end runs on JACK (`jack_client_real_time_priority`):
    grooverack's threads then sit just below them (ceiling - 1, - 2, - 3; at least 1), as
    JACK's rule for a client's helper threads has it (setting `rt.below_jack`; jackd's default
    -P 10 gives clients 5). Not the default: measured against the fixed levels above JACK in
    alternating takes, the MIDI path missed its target more often below JACK (7 of 12 takes
    within against 11 of 12, benchmarks/README.md). A ceiling <= 0 (JACK runs without
    real-time) gives None: grooverack's threads stay at normal priority too."""
    if ceiling is None:
        return WRITER_PRIORITY, LOOP_PRIORITY, GENERATOR_PRIORITY
    if ceiling <= 0:
        return None
    return max(ceiling - 1, 1), max(ceiling - 2, 1), max(ceiling - 3, 1)


def realtime(*, writer: threading.Thread | None = None, loop: threading.Thread | int | None = 0,
             lock: bool = True, ceiling: int | None = None) -> bool:
    """SCHED_FIFO for the writer, the loop (a thread, 0 = the calling thread, None = none) and
    every generator worker, one level below the other (below `ceiling`, JACK's client priority,
    when given: `levels`); memory locked. True when all got it."""
    if lock:
        lock_memory()
    chosen = levels(ceiling)
    if chosen is None:
        log.warning("the JACK server runs without real-time priority: grooverack's threads stay "
                    "at normal priority, below it (start jackd with -R -P 70 for both)")
        return False
    writer_p, loop_p, generator_p = chosen
    if ceiling is not None:
        log.info("JACK's client threads run SCHED_FIFO %d: grooverack's at %d / %d / %d below them",
                 ceiling, writer_p, loop_p, generator_p)
    ok = True
    if writer is not None and writer.native_id is not None:
        ok &= set_fifo(writer_p, f"thread {writer.name}", writer.native_id)
    if loop is not None:
        if isinstance(loop, threading.Thread):
            if loop.native_id is not None:
                ok &= set_fifo(loop_p, f"thread {loop.name}", loop.native_id)
        else:
            ok &= set_fifo(loop_p, f"thread {threading.current_thread().name}", loop)
    for thread in threading.enumerate():
        if thread.name == GENERATOR_THREAD and thread.native_id is not None:
            ok &= set_fifo(generator_p, "generator thread", thread.native_id)
        elif thread.name in COMPANION_THREADS and thread.native_id is not None:
            ok &= set_fifo(max(generator_p - 5, 1), f"thread {thread.name}", thread.native_id)
    return bool(ok)
