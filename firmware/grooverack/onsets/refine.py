"""Where inside the frame the onset is: the sample of the largest energy rise; and its level.

A frame says an onset happened somewhere within its span (tens of ms); the groove wants it to the
millisecond. Over 1 ms blocks of the raw samples, the onset is the block where the energy of the
next `post_ms` over the energy of the `pre_ms` before jumps most (in dB): the attack. The
energy is of the first difference of the samples (a gentle high-pass: an attack is broadband, the
ringing of what came before mostly low), and the ratio is scale-free, so the answer does not
depend on the level or on a DC offset.
"""

from __future__ import annotations

import numpy as np

BLOCK_MS = 1.0
PRE_MS = 10.0
POST_MS = 4.0


def refine_onset(samples: np.ndarray, rate: int, lo: int, hi: int) -> int:
    """Index into `samples` of the onset: the start of the 1 ms block in [lo, hi) whose energy
    rise is largest. `samples` holds enough before `lo` for the `pre` window where it can."""
    block = max(1, int(round(rate * BLOCK_MS / 1000)))
    pre = max(1, int(round(PRE_MS / BLOCK_MS)))
    post = max(1, int(round(POST_MS / BLOCK_MS)))
    x = np.diff(samples, prepend=samples[0])  # attacks are broadband; tails mostly low
    n = len(x) // block
    if n < 2:
        return lo
    energy = (x[:n * block].reshape(n, block) ** 2).mean(axis=1)
    eps = energy.max() * 1e-6 + 1e-20
    csum = np.concatenate(([0.0], np.cumsum(energy)))
    first = max(1, lo // block)
    last = min(n - 1, max(first, (hi - 1) // block))
    if first > last:  # (the window lies past the samples held)
        return lo
    k = np.arange(first, last + 1)
    before = (csum[k] - csum[np.maximum(k - pre, 0)]) / np.minimum(k, pre)
    top = np.minimum(k + post, n)
    after = (csum[top] - csum[k]) / (top - k)
    jump = np.log10((after + eps) / (before + eps))
    return int(k[int(np.argmax(jump))] * block)


def onset_level(samples: np.ndarray) -> float:
    """Peak absolute amplitude of `samples` around their mean (DC does not count)."""
    if not len(samples):
        return 0.0
    return float(np.abs(samples - samples.mean()).max())
