"""Framing: a stream of blocks of any size -> overlapping frames, sized in ms (any sample rate).

Frame k ends at sample `(k + 1) * hop` (exclusive) and spans the `size` samples before it (the
first sample's value before the stream's start), so a frame only holds samples already heard. The framer also keeps a
short history of raw samples for `refine.py` (the onset's own sample inside a frame).
"""

from __future__ import annotations

import numpy as np


def ms_to_samples(ms: float, rate: int) -> int:
    return max(1, int(round(ms * rate / 1000.0)))


class Framer:
    def __init__(self, rate: int, frame_ms: float, hop_ms: float, history_ms: float) -> None:
        self.rate = rate
        self.size = ms_to_samples(frame_ms, rate)
        self.hop = ms_to_samples(hop_ms, rate)
        self.keep = max(self.size, ms_to_samples(history_ms, rate)) + self.hop
        self._buf = np.zeros(self.keep, dtype=np.float64)  # samples [start, start + len)
        self.start = -self.keep  # absolute index of _buf[0]: the zeros before the stream
        self.frames_out = 0  # frames returned so far

    @property
    def samples_in(self) -> int:
        """Samples fed so far (the absolute index of the next sample)."""
        return self.start + len(self._buf)

    def feed(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append `block` (1-D); returns (frames [n, size], end sample of each frame [n])."""
        block = np.asarray(block, dtype=np.float64)
        if self.samples_in == 0 and len(block):  # before the stream: its first value (a DC
            self._buf[:] = block[0]              # offset is not a step at the start)
        self._buf = np.concatenate((self._buf, block))
        total = self.samples_in
        first = self.frames_out
        last = total // self.hop  # frames 0..last-1 end at or before `total`
        n = max(0, last - first)
        ends = (np.arange(first, last, dtype=np.int64) + 1) * self.hop
        if n:
            view = np.lib.stride_tricks.sliding_window_view(self._buf, self.size)
            frames = view[ends - self.size - self.start]
            frames = np.array(frames)  # own the memory before the buffer is trimmed
        else:
            frames = np.zeros((0, self.size))
        self.frames_out = last
        drop = len(self._buf) - self.keep
        if drop > 0:
            self._buf = self._buf[drop:]
            self.start += drop
        return frames, ends

    def history(self, begin: int, end: int) -> np.ndarray:
        """Raw samples [begin, end) (absolute indices), zeros for those no longer (or never) held."""
        out = np.zeros(max(0, end - begin))
        lo, hi = max(begin, self.start), min(end, self.samples_in)
        if hi > lo:
            out[lo - begin:hi - begin] = self._buf[lo - self.start:hi - self.start]
        return out
