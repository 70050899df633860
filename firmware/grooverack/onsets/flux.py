"""The detection function: spectral flux of the compressed bands.

`D(n) = mean_b max(0, L(n, b) - max_k M(n - k, b))`, k = 1..lag: the mean rise in dB of each band
over the loudest of the last `lag` frames, each maximum-filtered over `width` neighbouring bands
(a vibrato or a sliding pitch moving into the next band is not a rise, nor is the beating of a
held low note from one frame to the next). Only rises count (half-wave
rectification): a note dying away says nothing. The mean, not the sum, so the scale does not
depend on how many bands fit under the Nyquist frequency.

The steady part (`margin`, config `onsets.ring_margin`): a second function beside it, the same
mean rise with each band's rise first lowered by `margin` x that band's own jitter (the mean
|frame-to-frame change| over the last `window` frames). A noisy sound that rings on (an open
hi-hat, a crash, room noise) jitters by several dB in the bands that hold only one or two FFT
bins, and now and then a few neighbouring ones rise together: a rise of the mean that is no new
event. Less its own jitter such a rise is nothing; a new attack rises over it. The picker
(peaks.py) uses it as a veto only, far from the last onset (`onsets.ring_after_ms`); off by
default (`onsets.ring_margin` = 0, docs/onsets.md says why).
"""

from __future__ import annotations

import numpy as np


class SpectralFlux:
    def __init__(self, bands: int, lag: int = 1, width: int = 3, margin: float = 0.0,
                 window: int = 20) -> None:
        self.lag = max(1, lag)
        self.width = max(1, width)
        self.margin = margin
        self.window = max(1, window)
        self._past = np.zeros((self.lag, bands))  # the last `lag` frames, max-filtered, oldest first
        self._jitter = np.zeros((self.window, bands))  # |change| of the last `window` frames
        self._last = np.zeros(bands)  # the last compressed frame
        self.steady = np.empty(0)  # the steady function of the frames of the last call

    def _max_filter(self, rows: np.ndarray) -> np.ndarray:
        """[n, bands] -> each band the largest of its `width` neighbours (edges repeated)."""
        half = self.width // 2
        if not half:
            return rows
        out = rows.copy()
        for k in range(1, half + 1):  # (a few whole-array maxima: cheap for a block's frames)
            np.maximum(out[:, k:], rows[:, :-k], out=out[:, k:])
            np.maximum(out[:, :-k], rows[:, k:], out=out[:, :-k])
        return out

    def __call__(self, compressed: np.ndarray) -> np.ndarray:
        """[n, bands] compressed frames, in order -> [n] detection function."""
        n = len(compressed)
        if not n:
            return np.empty(0)
        filtered = np.concatenate((self._past, self._max_filter(compressed)))
        ref = filtered[:n].copy()  # frame i's reference: the largest of the `lag` filtered
        for k in range(1, self.lag):  # frames before it
            np.maximum(ref, filtered[k:k + n], out=ref)
        rise = compressed - ref
        out = np.maximum(rise, 0.0).mean(axis=1)
        self._past = filtered[-self.lag:].copy()
        if self.margin > 0:
            change = np.abs(np.diff(compressed, axis=0, prepend=self._last[None]))
            jitter = np.concatenate((self._jitter, change))
            total = np.concatenate((np.zeros((1, jitter.shape[1])), np.cumsum(jitter, axis=0)))
            before = total[self.window:self.window + n] - total[:n]  # the `window` frames before
            self.steady = np.maximum(rise - (self.margin / self.window) * before, 0.0).mean(axis=1)
            self._jitter = jitter[-self.window:].copy()
            self._last = compressed[-1].copy()
        else:
            self.steady = out
        return out
