"""Log-filtered magnitude spectrum: window -> |FFT| -> log-spaced bands -> dB above a floor.

Bands: triangular filters with centres `bands_per_octave` to the octave from 30 Hz up to 16 kHz
(or 0.9 of Nyquist), snapped to FFT bins (bands that would share a bin are merged), each
normalised to unit area so a band's value is a mean magnitude whatever its width: the same bands
at 16 and at 96 kHz.

Level independence: magnitudes are compressed as `20 log10(1 + Y / floor)` with `floor` a fixed
`range_db` below the recent peak band magnitude (a peak follower with a `peak_half_life_s` decay),
never below `absolute_floor` (digital silence stays silent). Scaling the input by any gain
scales peak and floor alike, so everything after this stage is the same at -30 and at 0 dBFS;
noise more than `range_db` below the music is compressed away.
"""

from __future__ import annotations

import numpy as np

LOW_HZ = 30.0
HIGH_HZ = 16000.0
ABSOLUTE_FLOOR = 10 ** (-130 / 20)  # a full-scale sine = 1.0 in these units


def band_edges(rate: int, nfft: int, bands_per_octave: int) -> list[tuple[int, int, int]]:
    """(low, centre, high) FFT bins of each triangular band, increasing, no two sharing a centre."""
    bin_hz = rate / nfft
    top = min(HIGH_HZ, 0.9 * rate / 2)
    count = int(np.floor(np.log2(top / LOW_HZ) * bands_per_octave)) + 1
    freqs = LOW_HZ * 2.0 ** (np.arange(count + 2) / bands_per_octave)
    bins = np.unique(np.round(freqs[freqs <= top * 2 ** (1 / bands_per_octave)] / bin_hz)
                     .astype(int))
    bins = bins[bins >= 1]
    return [(int(bins[i - 1]), int(bins[i]), int(bins[i + 1])) for i in range(1, len(bins) - 1)]


def filterbank(rate: int, nfft: int, bands_per_octave: int) -> np.ndarray:
    """[nfft // 2 + 1, bands] triangular filters, each of unit area."""
    edges = band_edges(rate, nfft, bands_per_octave)
    bank = np.zeros((nfft // 2 + 1, len(edges)))
    for b, (lo, mid, hi) in enumerate(edges):
        rise = np.arange(lo, mid + 1)
        bank[rise, b] = (rise - lo + 1) / (mid - lo + 1)
        fall = np.arange(mid, hi)
        bank[fall, b] = (hi - fall) / (hi - mid)
        bank[:, b] /= bank[:, b].sum()
    return bank


class LogSpectrum:
    def __init__(self, rate: int, size: int, hop: int, *, bands_per_octave: int = 12,
                 range_db: float = 60.0, peak_half_life_s: float = 4.0) -> None:
        self.window = np.hanning(size + 2)[1:-1]
        self.nfft = 1 << int(np.ceil(np.log2(size)))
        self.scale = 2.0 / self.window.sum()  # a full-scale sine -> 1.0 in its bin
        self.bank = filterbank(rate, self.nfft, bands_per_octave)
        self.bands = self.bank.shape[1]
        self.range = 10 ** (-range_db / 20)
        self.decay = 0.5 ** (hop / rate / peak_half_life_s)  # per frame
        self.peak = 0.0

    def magnitudes(self, frames: np.ndarray) -> np.ndarray:
        """[n, size] samples -> [n, bands] mean magnitude per band (linear)."""
        spec = np.abs(np.fft.rfft(frames * self.window, self.nfft, axis=1)) * self.scale
        return spec @ self.bank

    def compress(self, bands: np.ndarray) -> np.ndarray:
        """[n, bands] linear -> dB above the floor `range_db` under the running peak (in order).

        The peak follower `peak[i] = max(peak[i - 1] * decay, max(bands[i]))` in closed form:
        in logs, `peak[i] = max_j<=i (max(bands[j]) * decay ** (i - j))`, a running maximum of
        `log max(bands[j]) - j log decay` plus `i log decay` (one pass of numpy, no loop)."""
        n = len(bands)
        if not n:
            return np.empty_like(bands)
        tiny = 1e-300
        log_decay = np.log(self.decay)
        i = np.arange(n)
        start = np.log(max(self.peak, tiny)) + log_decay  # the peak carried in, one frame on
        rowmax = np.log(np.maximum(bands.max(axis=1), tiny))
        run = np.maximum.accumulate(np.maximum(rowmax - i * log_decay, start))
        peak = np.exp(run + i * log_decay)
        self.peak = float(peak[-1])
        floor = np.maximum(peak * self.range, ABSOLUTE_FLOOR)
        return 20.0 * np.log10(1.0 + bands / floor[:, None])

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.compress(self.magnitudes(frames))
