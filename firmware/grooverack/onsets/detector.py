"""The online onset detector: the stages of this package in a row, fed blocks of any size.

    det = OnsetDetector(48000, OnsetParams.from_settings(settings))
    for block in stream:                   # 1-D (mono) or [frames, channels] (`channel` chosen)
        for onset in det.feed(block):      # Onset(time, velocity, ...): time = its own sample's
            ...                            # time from the stream's first sample, in seconds
    det.flush()                            # the stream ended: what is still waiting

Causal: every decision uses samples already fed. An onset is reported once `velocity_ms` of
samples after its own sample are in (its level needs them), so it is reported at most about one
frame + `velocity_ms` after it sounded, and it carries the time it sounded, not the time it was
reported: placed by that time, the reporting delay does not move it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from grooverack.errors import SourceError
from grooverack.onsets.flux import SpectralFlux
from grooverack.onsets.frames import Framer, ms_to_samples
from grooverack.onsets.peaks import PeakPicker
from grooverack.onsets.refine import onset_level, refine_onset
from grooverack.onsets.spectrum import LogSpectrum
from grooverack.onsets.velocity import VelocityCurve

MIN_RATE = 16000
MAX_RATE = 96000
CHUNK = 4096  # samples the stages take at a time (a longer block is cut up)


def check_rate(rate: float, where: str = "audio") -> int:
    """`rate` as an int when it is one the detector takes, else a SourceError naming it."""
    if not MIN_RATE <= rate <= MAX_RATE or int(rate) != rate:
        raise SourceError(f"{where}: sample rate {rate:g} Hz is not allowed; allowed: "
                          f"{MIN_RATE:,} to {MAX_RATE:,} Hz")
    return int(rate)


@dataclass(frozen=True)
class OnsetParams:
    """The detector's settings; each field is config key `onsets.<field>` (config.py)."""

    frame_ms: float = 30.0       # analysis window
    hop_ms: float = 5.0          # one frame every hop: the detection function's rate
    threshold: float = 0.4       # dB of mean band rise above the moving median (+ spread)
    average_ms: float = 100.0    # the moving average's length (adaptive threshold)
    combine_ms: float = 30.0     # onsets closer than this are one
    range_db: float = 80.0       # what the spectrum keeps under the recent peak
    velocity_ms: float = 10.0    # the onset's level: peak over this long after it
    velocity_curve: float = 2.0  # amplitude = velocity ** curve (velocity.py)
    velocity_min: float = 0.1    # the softest onset's velocity
    spread: float = 2.0          # + this x the median absolute deviation over that window
    rearm: float = 0.5           # re-armed once the function fell under this x the event's peak
    start_db: float = 2.0        # a sound already there at the stream's start: an onset only if
                                 # its level changes this much within 2 frames (a hit, not noise)
    ring_margin: float = 0.0     # the steady function: each band's rise less this x its jitter (0 = off)
    ring_gate: float = 0.05      # far from the last onset an onset needs this much steady rise
    ring_after_ms: float = 400.0  # ... from this long after the last onset on (0 = always)

    @classmethod
    def from_settings(cls, settings: Any) -> OnsetParams:
        return cls(**{f.name: float(settings[f"onsets.{f.name}"]) for f in fields(cls)})


@dataclass(frozen=True)
class Onset:
    time: float       # seconds from the stream's first sample: when its own sample was heard
    velocity: float   # 0..1
    strength: float   # the detection function at the onset (dB of mean band rise)
    sample: int       # the sample index of `time`
    reported: int     # samples fed when it was reported (reported - sample = its delay)


class OnsetDetector:
    def __init__(self, rate: int, params: OnsetParams | None = None, channel: int = 0) -> None:
        self.rate = check_rate(rate)
        self.params = p = params or OnsetParams()
        self.channel = channel
        self.lag = max(1, int(round(p.frame_ms / 2 / p.hop_ms)))  # half a window back
        hop = ms_to_samples(p.hop_ms, rate)
        size = ms_to_samples(p.frame_ms, rate)
        self.velocity_samples = ms_to_samples(p.velocity_ms, rate)
        self.pre_samples = ms_to_samples(12.0, rate)
        history_ms = (size + self.lag * hop) * 1000 / rate + p.velocity_ms + 20 + CHUNK * 1000 / rate
        self.framer = Framer(rate, p.frame_ms, p.hop_ms, history_ms)
        self.spectrum = LogSpectrum(rate, self.framer.size, self.framer.hop, range_db=p.range_db)
        frames = lambda ms: max(1, int(round(ms / p.hop_ms)))  # noqa: E731
        self.flux = SpectralFlux(self.spectrum.bands, lag=self.lag, margin=p.ring_margin,
                                 window=frames(p.average_ms))
        self.picker = PeakPicker(p.threshold, frames(p.average_ms), frames(p.combine_ms),
                                 frames(p.combine_ms), p.spread, p.rearm, p.ring_gate,
                                 int(round(p.ring_after_ms / p.hop_ms)))
        self._gated = p.ring_margin > 0
        self.curve = VelocityCurve(p.velocity_curve, p.velocity_min)
        self.combine_samples = ms_to_samples(p.combine_ms, rate)
        self._last: int | None = None  # sample of the last onset
        self._pending: list[tuple[int, float]] = []  # (sample, strength) waiting for their level
        self.start_samples = self.framer.size  # an onset this early began with the stream
        self.peak_level = 0.0  # the loudest sample heard (for the silence check)

    def _mono(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 2:
            if not 0 <= self.channel < block.shape[1]:
                raise SourceError(f"audio channel {self.channel + 1} is not there; the stream "
                                  f"has {block.shape[1]} channel(s)")
            block = block[:, self.channel]
        return block

    def feed(self, block: np.ndarray) -> list[Onset]:
        """Samples in (any number; 1-D, or [frames, channels]); onsets out, in time order."""
        mono = self._mono(block)
        out: list[Onset] = []
        for i in range(0, len(mono), CHUNK):
            out.extend(self._feed(mono[i:i + CHUNK]))
        return out

    def _feed(self, mono: np.ndarray) -> list[Onset]:
        if len(mono):
            self.peak_level = max(self.peak_level, float(np.abs(mono).max()))
        frames, ends = self.framer.feed(mono)
        if len(frames):
            frames = frames - frames.mean(axis=1, keepdims=True)  # DC offset out
            detection = self.flux(self.spectrum(frames))
            steady = self.flux.steady if self._gated else [None] * len(detection)
            for value, still, end in zip(detection, steady, ends, strict=True):
                if self.picker(float(value), None if still is None else float(still)):
                    self._found(int(end), float(value))
        return self._ready(final=False)

    def _found(self, end: int, strength: float) -> None:
        fr = self.framer
        lo = end - fr.size - self.lag * fr.hop
        if self._last is not None:
            lo = max(lo, self._last + self.combine_samples)
        lo = max(lo, 0)
        if lo >= end:
            return
        begin = lo - self.pre_samples
        samples = fr.history(begin, end)
        sample = begin + refine_onset(samples, self.rate, lo - begin, end - begin)
        self._last = sample
        self._pending.append((sample, strength))

    def _ready(self, final: bool) -> list[Onset]:
        out = []
        fed = self.framer.samples_in
        while self._pending:
            sample, strength = self._pending[0]
            starting = sample < self.start_samples and self.params.start_db > 0
            wait = self.velocity_samples + (2 * self.framer.size if starting else 0)
            if not (final or sample + wait <= fed):
                break
            self._pending.pop(0)
            if starting and not self._changes(sample, fed):
                continue
            level = onset_level(self.framer.history(sample, min(fed, sample + self.velocity_samples)))
            t = sample / self.rate
            out.append(Onset(t, self.curve(t, level), strength, sample, fed))
        return out

    def _changes(self, sample: int, fed: int) -> bool:
        """Whether the sound at `sample`, at the stream's very start, is an event: the energy of
        its first difference (as in refine.py) over `velocity_ms` differs by `start_db` or more
        from that of the same length one or two frames later (a hit decays, a hit under a
        ringing one changes it). Noise or a hum that starts with the stream stays level: the
        stream's start is then a sound already playing, not an onset."""
        n = self.velocity_samples
        size = self.framer.size
        if sample + 2 * size + n > fed:  # (the stream ended first: too short to tell)
            return True
        x = np.diff(self.framer.history(sample - 1, sample + 2 * size + n))
        energy = [float(np.mean(x[k * size:k * size + n] ** 2)) for k in range(3)]
        if energy[0] <= 0.0:
            return False
        bar = 10 ** (self.params.start_db / 10)
        return any(not e > 0.0 or not 1 / bar < energy[0] / e < bar for e in energy[1:])

    def flush(self) -> list[Onset]:
        """The stream has ended: the onsets still waiting for their level."""
        return self._ready(final=True)

    @property
    def delay_ms(self) -> float:
        """The longest an onset waits between its sample and its report."""
        fr = self.framer
        return (fr.size + fr.hop) * 1000 / self.rate + self.params.velocity_ms + (
            2 * fr.size * 1000 / self.rate if self.params.start_db > 0 else 0.0)


def detect(samples: np.ndarray, rate: int, params: OnsetParams | None = None,
           channel: int = 0, block: int = 1024) -> list[Onset]:
    """Every onset of a whole recording, streamed through the detector block by block."""
    det = OnsetDetector(rate, params, channel)
    out: list[Onset] = []
    for i in range(0, len(samples), block):
        out.extend(det.feed(samples[i:i + block]))
    out.extend(det.flush())
    return out
