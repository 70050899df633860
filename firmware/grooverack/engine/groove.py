"""Groove capture (input onsets -> the 32 x 3 groove the encoder reads) and pitch -> velocity.

An onset at musical position `p` lands on loop step `floor(p + 0.5) % 32` with offset
`p - floor(p + 0.5)` in [-0.5, 0.5). Within a step the louder onset wins (its offset is kept).

Passes and expiry: the capture counts, per loop step, how often the playhead has entered that
step's window (position crossing `step - 0.5`). An onset remembers the count when it was played;
it expires once the playhead has entered its step `window` more times:
- record: window 1, each pass replaces the previous pass step by step as the playhead moves on
  (the groove is always the last loop played);
- overdub: window `memory` loops (0 = never), onsets accumulate;
- off: new onsets are ignored and nothing expires (the groove is frozen).
Counting passes per step (instead of absolute time) keeps this right across resets and jumps.

`groove_velocity` / `groove_offset` (0 = flat, 1 = as played) scale each hit's velocity around the
mean velocity of the live onsets and its offset toward the grid. `version` increments whenever
the groove array changes, so the generator knows when to re-encode.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from grooverack.voices import STEPS, STEPS_PER_BAR

MODES = ("record", "overdub", "off")


@dataclass(frozen=True)
class Onset:
    step: int        # loop step 0..31
    offset: float    # -0.5..0.5 steps
    velocity: float  # 0..1
    visit: int       # pass count of its step when it was played


def split_position(position: float) -> tuple[int, float]:
    """Musical position -> (loop step, offset in [-0.5, 0.5))."""
    nearest = math.floor(position + 0.5)
    offset = min(max(position - nearest, -0.5), math.nextafter(0.5, 0.0))
    return nearest % STEPS, offset


class GrooveCapture:
    """Input onsets -> 32-step groove [hit, velocity, offset]."""

    def __init__(self, settings: Any) -> None:
        self.mode: str = settings["record"]
        self.memory: int = int(settings["memory"])
        self.velocity_amount: float = float(settings["groove_velocity"])
        self.offset_amount: float = float(settings["groove_offset"])
        self._onsets: list[Onset] = []
        self._visits = [0] * STEPS
        self._last: float | None = None
        self._groove = np.zeros((STEPS, 3), dtype=np.float32)
        self._groove.setflags(write=False)
        self.version = 0

    # --- settings ----------------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"record mode {mode!r} is not allowed; allowed: {', '.join(MODES)}")
        self.mode = mode
        self._expire()

    def cycle_mode(self) -> str:
        """The record button: record -> overdub -> off -> record."""
        self.set_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)])
        return self.mode

    def set_memory(self, loops: int) -> None:
        self.memory = int(loops)
        self._expire()

    def set_amounts(self, velocity: float | None = None, offset: float | None = None) -> None:
        if velocity is not None:
            self.velocity_amount = min(max(float(velocity), 0.0), 1.0)
        if offset is not None:
            self.offset_amount = min(max(float(offset), 0.0), 1.0)
        self._rebuild()

    def clear(self) -> None:
        self._onsets.clear()
        self._rebuild()

    # --- time ------------------------------------------------------------------------------------------
    @property
    def window(self) -> int:
        """Passes an onset lives (0 = forever)."""
        if self.mode == "record":
            return 1
        if self.mode == "off":
            return 0
        return self.memory

    def rebase(self, position: float) -> None:
        """The position jumped (start, reset, song position): entering a step afresh."""
        self._last = position
        if self.mode != "off":
            self._visits[math.floor(position + 0.5) % STEPS] += 1
        self._expire()

    def advance(self, position: float) -> None:
        """The playhead moved on to `position`: count the steps entered, expire old onsets."""
        if self._last is None:
            self.rebase(position)
            return
        if position <= self._last:
            return
        if self.mode != "off":
            first = math.floor(self._last + 0.5) + 1   # step windows start at k - 0.5
            entered = math.floor(position + 0.5) - first + 1
            if entered > 0:
                full, rest = divmod(entered, STEPS)
                for s in range(STEPS):
                    self._visits[s] += full
                for k in range(first, first + rest):
                    self._visits[k % STEPS] += 1
                self._last = position
                self._expire()   # only a step entered can expire anything
        self._last = position

    # --- onsets ------------------------------------------------------------------------------------------
    def add(self, position: float, velocity: float) -> bool:
        """An onset at musical position; returns True when it was captured (not mode off)."""
        if self.mode == "off":
            return False
        self.advance(position)
        step, offset = split_position(position)
        velocity = min(max(float(velocity), 0.0), 1.0)
        self._onsets.append(Onset(step, offset, velocity, self._visits[step]))
        self._rebuild()
        return True

    @property
    def onsets(self) -> tuple[Onset, ...]:
        return tuple(self._onsets)

    def _expire(self) -> None:
        window = self.window
        if window <= 0:
            return
        keep = [o for o in self._onsets if self._visits[o.step] - o.visit < window]
        if len(keep) != len(self._onsets):
            self._onsets = keep
            self._rebuild()

    # --- the groove ------------------------------------------------------------------------------------
    def raw(self) -> np.ndarray:
        """[32, 3] as played: loudest onset per step (hit, velocity, offset), no amounts."""
        out = np.zeros((STEPS, 3), dtype=np.float32)
        for o in self._onsets:
            if out[o.step, 0] == 0.0 or o.velocity > out[o.step, 1]:
                out[o.step] = (1.0, o.velocity, o.offset)
        return out

    def _rebuild(self) -> None:
        g = self.raw()
        hit = g[:, 0] > 0
        if hit.any():
            mean = float(g[hit, 1].mean())
            g[hit, 1] = np.clip(mean + self.velocity_amount * (g[hit, 1] - mean), 0.0, 1.0)
            g[hit, 2] *= self.offset_amount
        if not np.array_equal(g, self._groove):
            g.setflags(write=False)
            self._groove = g
            self.version += 1

    @property
    def groove(self) -> np.ndarray:
        """The groove the encoder reads: float32 [32, 3] (read-only)."""
        return self._groove


def bar_filled(groove: np.ndarray, first: int, until: int) -> np.ndarray:
    """A first groove heard from step `first` up to (not including) step `until` (counted since
    start, less than a loop apart), as the encoder should read it: each loop step not heard yet
    takes the step a bar away when that one was heard, so a one-bar line reads as that bar
    played twice (the "bar swap" the model was trained with) instead of a bar of silence.
    Returns a new read-only float32 [32, 3]."""
    heard = np.zeros(STEPS, dtype=bool)
    heard[np.arange(first, max(until, first)) % STEPS] = True
    other = (np.arange(STEPS) + STEPS_PER_BAR) % STEPS
    take = ~heard & heard[other]
    out = np.array(groove, dtype=np.float32)
    out[take] = out[other[take]]
    out[~heard & ~take] = 0.0
    out.setflags(write=False)
    return out


class PitchToVelocity:
    """Onset velocity from the pitch CV (window / auto), a fixed value, or a velocity CV.

    window: `input.pitch_low`..`pitch_high` volts -> `velocity_low`..`velocity_high` (clamped).
    auto: the pitch range of the last `input.auto_notes` notes is spread over the velocity range,
      so a melody in any octave yields dynamics (one repeated pitch -> the middle of the range).
    fixed: `input.fixed_velocity` for every onset.
    cv: the volts are a velocity CV: 0 V -> 0, `input.velocity_cv_volts` -> 1 (clamped).
    An onset without volts (a gate only) gets the fixed velocity.
    """

    def __init__(self, settings: Any) -> None:
        self.mode: str = settings["input.velocity_mode"]
        self.pitch_low = float(settings["input.pitch_low"])
        self.pitch_high = float(settings["input.pitch_high"])
        self.velocity_low = float(settings["input.velocity_low"])
        self.velocity_high = float(settings["input.velocity_high"])
        self.fixed = float(settings["input.fixed_velocity"])
        self.cv_volts = float(settings["input.velocity_cv_volts"])
        self._recent: deque[float] = deque(maxlen=int(settings["input.auto_notes"]))

    def _spread(self, volts: float, low: float, high: float) -> float:
        if high - low < 1e-6:
            return 0.5 * (self.velocity_low + self.velocity_high)
        x = min(max((volts - low) / (high - low), 0.0), 1.0)
        return self.velocity_low + x * (self.velocity_high - self.velocity_low)

    def velocity(self, volts: float | None) -> float:
        if volts is None or self.mode == "fixed":
            return self.fixed
        volts = float(volts)
        if self.mode == "cv":
            return min(max(volts / self.cv_volts, 0.0), 1.0)
        if self.mode == "window":
            if self.pitch_high < self.pitch_low:  # an inverted window maps high pitch to low velocity
                return self._spread(-volts, -self.pitch_low, -self.pitch_high)
            return self._spread(volts, self.pitch_low, self.pitch_high)
        self._recent.append(volts)
        return self._spread(volts, min(self._recent), max(self._recent))
