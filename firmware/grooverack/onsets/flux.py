"""The detection function: spectral flux of the compressed bands.

`D(n) = mean_b max(0, L(n, b) - max_k M(n - k, b))`, k = 1..lag: the mean rise in dB of each band
over the loudest of the last `lag` frames, each maximum-filtered over `width` neighbouring bands
(a vibrato or a sliding pitch moving into the next band is not a rise, nor is the beating of a
held low note from one frame to the next). Only rises count (half-wave
rectification): a note dying away says nothing. The mean, not the sum, so the scale does not
depend on how many bands fit under the Nyquist frequency.
"""

from __future__ import annotations

import numpy as np


class SpectralFlux:
    def __init__(self, bands: int, lag: int = 1, width: int = 3) -> None:
        self.lag = max(1, lag)
        self.width = max(1, width)
        self._past = np.zeros((self.lag, bands))  # the last `lag` frames, max-filtered, oldest first

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
        out = np.maximum(compressed - ref, 0.0).mean(axis=1)
        self._past = filtered[-self.lag:].copy()
        return out
