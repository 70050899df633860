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

    def _max_filter(self, row: np.ndarray) -> np.ndarray:
        if self.width == 1:
            return row
        half = self.width // 2
        padded = np.pad(row, half, mode="edge")
        return np.lib.stride_tricks.sliding_window_view(padded, self.width).max(axis=1)

    def __call__(self, compressed: np.ndarray) -> np.ndarray:
        """[n, bands] compressed frames, in order -> [n] detection function."""
        out = np.empty(len(compressed))
        for i, row in enumerate(compressed):
            rise = row - self._past.max(axis=0)
            out[i] = float(np.maximum(rise, 0.0).mean())
            self._past = np.roll(self._past, -1, axis=0)
            self._past[-1] = self._max_filter(row)
        return out
