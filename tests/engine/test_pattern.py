"""Pattern (immutable, complete) and PatternBuffer (the double buffer between threads)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.engine.clock import Clock
from grooverack.engine.pattern import Pattern, PatternBuffer
from grooverack.engine.player import Player

N = 2000


def coded(serial: int) -> Pattern:
    """A pattern whose every cell tells which serial it belongs to."""
    rng = np.random.default_rng(serial)
    hits = np.ones((32, 9), dtype=bool)
    hits[rng.integers(0, 32), rng.integers(0, 9)] = False
    value = (serial % 997) / 997.0
    return Pattern(hits, np.full((32, 9), value), np.full((32, 9), value / 4), serial)


def check_whole(p: Pattern) -> None:
    expect = coded(p.serial)
    assert p.same_as(expect), f"pattern {p.serial} is a mix"


def test_pattern_is_read_only_and_zero_where_silent():
    hits = np.zeros((32, 9), dtype=bool)
    hits[0, 0] = True
    p = Pattern(hits, np.full((32, 9), 0.7), np.full((32, 9), 0.9), 1)
    assert p.velocities[0, 0] == pytest.approx(0.7) and p.velocities[1, 1] == 0.0
    assert p.offsets[0, 0] == 0.5          # clipped to the offset range
    with pytest.raises(ValueError):
        p.hits[0, 0] = False
    hits[0, 1] = True                       # the caller's array is copied
    assert not p.hits[0, 1]
    with pytest.raises(ValueError, match="32, 9"):
        Pattern(np.zeros((16, 9), bool), np.zeros((16, 9)), np.zeros((16, 9)))


def test_buffer_hands_over_the_newest_once():
    b = PatternBuffer()
    assert b.take() is None
    b.offer(coded(1))
    b.offer(coded(2))
    got = b.take()
    assert got is not None and got.serial == 2
    assert b.take() is None
    with pytest.raises(TypeError):
        b.offer("pattern")  # type: ignore[arg-type]


def test_threaded_worker_hammering_offers_never_gives_a_mix():
    b = PatternBuffer()
    done = threading.Event()

    def worker():
        for serial in range(1, N + 1):
            b.offer(coded(serial))
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    last = 0
    taken = 0
    while not done.is_set() or b.pending:
        p = b.take()
        if p is None:
            continue
        check_whole(p)
        assert p.serial > last          # never an older pattern after a newer one
        last = p.serial
        taken += 1
    thread.join()
    assert last == N and taken >= 1


def test_player_steps_each_come_from_one_pattern_while_a_worker_offers():
    values = {f"map.{v}": i + 1 for i, v in enumerate(
        ("kick", "snare", "closed_hat", "open_hat", "low_tom", "mid_tom", "high_tom", "crash",
         "ride"))}
    s = Settings({"clock.source": "internal", "tempo": 300.0, "outputs.count": 9,
                  "quantize": 1.0, **values})
    clock = Clock(s)
    player = Player(s)
    player.pattern = coded(0)
    stop = threading.Event()

    def worker():
        serial = 1
        while not stop.is_set():
            player.buffer.offer(coded(serial))
            serial += 1

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        clock.start(0.0)
        per_step: dict[int, set[float]] = {}
        t = 0.0
        absolute = 0
        for _ in range(400):
            t += 0.01
            offered = player.buffer.offered
            while player.buffer.offered == offered:   # let the worker in between steps
                time.sleep(0)
            for e in player.advance(t, clock):
                if e.kind == "velocity":
                    per_step.setdefault(int(round(clock.position(e.time))), set()).add(e.value)
            absolute = player.next_step
    finally:
        stop.set()
        thread.join()
    assert absolute > 60
    mixed = {step: vals for step, vals in per_step.items() if len(vals) != 1}
    assert not mixed, f"steps with velocities from several patterns: {mixed}"
    assert len({next(iter(v)) for v in per_step.values()}) > 10   # patterns did change
