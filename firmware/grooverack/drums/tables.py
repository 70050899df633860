"""Loop tables the noisy and metallic voices read: shaped in the frequency domain, seamless.

A table is one period of a signal built as a spectrum and turned into samples with one inverse
FFT, so it loops without a seam and every partial is band-limited (no aliasing of the square
waves' harmonics). A voice reads it at the absolute sample number, so what it plays does not
depend on how the timeline is cut into blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TABLE_BITS = 16  # 65536 samples: 1.4 s at 48 kHz, far longer than any hit's bright part
TABLE_SIZE = 1 << TABLE_BITS
TABLE_MASK = TABLE_SIZE - 1


def _slopes(freqs: np.ndarray, low: float, high: float, order: int = 4) -> np.ndarray:
    """Magnitude of a high-pass at `low` and a low-pass at `high` (Butterworth-like slopes,
    `order` * 6 dB per octave); 0 or less switches that side off."""
    with np.errstate(divide="ignore"):
        gain = np.ones_like(freqs)
        if low > 0:
            gain /= np.sqrt(1.0 + (low / np.maximum(freqs, 1e-9)) ** (2 * order))
        if high > 0:
            gain /= np.sqrt(1.0 + (freqs / high) ** (2 * order))
    gain[0] = 0.0  # no DC
    return gain


def _to_table(spectrum: np.ndarray) -> np.ndarray:
    table = np.fft.irfft(spectrum, TABLE_SIZE)
    peak = float(np.max(np.abs(table)))
    return (table / peak if peak > 0 else table).astype(np.float32)


def band_noise(rate: int, low: float, high: float, seed: int) -> np.ndarray:
    """White noise through a band (high-pass at `low`, low-pass at `high`), peak 1."""
    rng = np.random.default_rng(seed)
    freqs = np.fft.rfftfreq(TABLE_SIZE, 1.0 / rate)
    phase = rng.uniform(0.0, 2.0 * np.pi, freqs.size)
    magnitude = rng.rayleigh(1.0, freqs.size)
    return _to_table(magnitude * np.exp(1j * phase) * _slopes(freqs, low, high))


def metal(rate: int, oscillators: Sequence[float], low: float, high: float = 0.0) -> np.ndarray:
    """Square waves at the `oscillators`' frequencies summed and high-passed at `low`, peak 1:
    the metallic source of analog hats and cymbals. Each square is its odd harmonics (1/k) up
    to 0.45 of the rate, each partial on the nearest table bin (frequencies move by at most
    half a bin, rate / 131072 Hz, and the table loops exactly)."""
    freqs = np.fft.rfftfreq(TABLE_SIZE, 1.0 / rate)
    spectrum = np.zeros(freqs.size, dtype=np.complex128)
    for f in oscillators:
        k = 1
        while k * f < 0.45 * rate:
            spectrum[int(round(k * f * TABLE_SIZE / rate))] += -1j / k
            k += 2
    return _to_table(spectrum * _slopes(freqs, low, high))


def read(table: np.ndarray, start: int, count: int) -> np.ndarray:
    """`count` samples of `table` from absolute sample `start` on (looping)."""
    return table[(np.arange(start, start + count) & TABLE_MASK)]
