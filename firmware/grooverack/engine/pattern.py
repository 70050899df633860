"""Pattern (one complete 32-step x 9-voice drum loop) and PatternBuffer (the hand-over).

The generator builds a whole Pattern, then `offer`s it; the player `take`s the newest complete one
at a step boundary. A Pattern is immutable once made (its arrays are read-only), so the player can
never see half of one, and the buffer holds one reference, so two patterns never play at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grooverack.voices import NUM_VOICES, STEPS


def _frozen(array: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.array(array, dtype=dtype, copy=True)
    if out.shape != (STEPS, NUM_VOICES):
        raise ValueError(f"pattern arrays must be [{STEPS}, {NUM_VOICES}], got {list(out.shape)}")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Pattern:
    """hits bool [32, 9]; velocities 0..1 and offsets -0.5..0.5 (in steps) float32 [32, 9].

    Velocities and offsets are zero where there is no hit. `serial` counts generated patterns.
    """

    hits: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    serial: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        hits = _frozen(self.hits, bool)
        vel = np.where(hits, np.clip(self.velocities, 0.0, 1.0), 0.0)
        off = np.where(hits, np.clip(self.offsets, -0.5, 0.5), 0.0)
        object.__setattr__(self, "hits", hits)
        object.__setattr__(self, "velocities", _frozen(vel, np.float32))
        object.__setattr__(self, "offsets", _frozen(off, np.float32))

    @classmethod
    def empty(cls, serial: int = 0) -> Pattern:
        zeros = np.zeros((STEPS, NUM_VOICES))
        return cls(zeros.astype(bool), zeros, zeros, serial)

    def hit_count(self) -> np.ndarray:
        """Hits per voice, int [9]."""
        counts: np.ndarray = self.hits.sum(axis=0)
        return counts

    def same_as(self, other: Pattern) -> bool:
        return (np.array_equal(self.hits, other.hits)
                and np.array_equal(self.velocities, other.velocities)
                and np.array_equal(self.offsets, other.offsets))

    def __repr__(self) -> str:
        return f"Pattern(serial={self.serial}, hits={self.hit_count().tolist()})"


class PatternBuffer:
    """Double buffer between the generator (any thread) and the player (the real-time loop).

    `offer` replaces any pattern not yet taken (only the newest matters); `take` returns the
    newest complete pattern once, or None. A lock guards one reference swap: cheap on both sides.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: Pattern | None = None
        self.offered = 0
        self.taken = 0

    def offer(self, pattern: Pattern) -> None:
        if not isinstance(pattern, Pattern):
            raise TypeError(f"PatternBuffer.offer takes a Pattern, got {type(pattern).__name__}")
        with self._lock:
            self._next = pattern
            self.offered += 1

    def take(self) -> Pattern | None:
        with self._lock:
            pattern, self._next = self._next, None
            if pattern is not None:
                self.taken += 1
            return pattern

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._next is not None
