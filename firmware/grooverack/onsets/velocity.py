"""Onset level -> velocity 0..1 (the documented curve; config keys `onsets.velocity_*`).

The level of an onset is its peak amplitude over the first `onsets.velocity_ms` after it. It is
taken relative to the loudest recent onset (a peak follower that halves every `HALF_LIFE_S`
seconds), so the same playing gives the same velocities at any input gain:

    relative = level / loudest_recent                      (0..1, amplitude)
    velocity = max(velocity_min, relative ** (1 / velocity_curve))

`velocity_curve` is the exponent of amplitude over velocity: 2 (the default) is the General MIDI
habit of amplitude growing as velocity squared (a hit 12 dB under the loudest -> velocity 0.5,
24 dB under -> 0.25); 1 makes velocity the plain amplitude ratio (12 dB under -> 0.25).
"""

from __future__ import annotations

HALF_LIFE_S = 4.0


class VelocityCurve:
    def __init__(self, curve: float = 2.0, minimum: float = 0.1) -> None:
        self.curve = curve
        self.minimum = minimum
        self.loudest = 0.0
        self._last_t: float | None = None

    def __call__(self, t: float, level: float) -> float:
        if self._last_t is not None:
            self.loudest *= 0.5 ** (max(0.0, t - self._last_t) / HALF_LIFE_S)
        self._last_t = t
        self.loudest = max(self.loudest, level)
        if self.loudest <= 0.0:
            return self.minimum
        relative = min(level / self.loudest, 1.0)
        return max(self.minimum, relative ** (1.0 / self.curve))
