"""Adaptive threshold and peak picking that looks only backwards (decides on the frame just heard).

A frame n is an onset when all hold:
1. `D(n) >= median + threshold + spread * MAD` over `D(n - avg .. n - 1)` (the moving median
   follows the background: a dense passage raises the bar, a quiet one lowers it; the median
   absolute deviation MAD measures its jitter: room noise raises the bar over it; both medians,
   so the spike of the last hit does not hide the next one);
2. `D(n) >= max(D(n - before .. n - 1))` (a local maximum, as far as the past can tell: on a
   rising slope the first frame over the bar wins);
3. the picker is armed: after an onset it waits until the detection function has fallen below
   `rearm` (half) of that event's peak (the rest of one attack is not a second onset), and at least
   `combine` frames.
4. far from the last onset (`quiet` frames or more since it: `onsets.ring_after_ms`) the
   steady function (flux.py: the rise less each band's own jitter) is at least `gate`: the tail of
   a ringing cymbal, a bell or room noise jitters over the bar now and then, a new attack rises
   over its jitter. Close to an onset (a groove's next hits) the rule does not act.
The detector adds its own rule: an onset's sample is at least `combine_ms` after the last one.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class PeakPicker:
    def __init__(self, threshold: float, avg: int, before: int, combine: int,
                 spread: float = 0.0, rearm: float = 0.5, gate: float = 0.0,
                 quiet: int = 0) -> None:
        self.threshold = threshold
        self.gate = gate
        self.quiet = quiet
        self.spread = spread
        self.rearm = rearm
        self.combine = max(1, combine)
        self._avg: deque[float] = deque(maxlen=max(1, avg))
        self._before: deque[float] = deque(maxlen=max(1, before))
        self._since = 1 << 30  # frames since the last onset
        self._armed = True
        self._event_peak = 0.0

    def __call__(self, value: float, steady: float | None = None) -> bool:
        if self._avg:
            past = np.fromiter(self._avg, float, len(self._avg))
            base = float(np.median(past))
            if self.spread:
                base += self.spread * float(np.median(np.abs(past - base)))
        else:
            base = 0.0
        peak = max(self._before) if self._before else 0.0
        self._since += 1
        if not self._armed:
            self._event_peak = max(self._event_peak, value)
            if value < self.rearm * self._event_peak:
                self._armed = True
        onset = (self._armed and self._since >= self.combine
                 and value >= base + self.threshold and value >= peak
                 and (steady is None or self._since < self.quiet or steady >= self.gate))
        if onset:
            self._since = 0
            self._armed = False
            self._event_peak = value
        self._avg.append(value)
        self._before.append(value)
        return onset
