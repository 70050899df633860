"""The drum voices: one small class each, as analog Eurorack drum modules build them.

Every voice is driven like a module behind a trigger and a velocity CV: `strike(at, velocity)`
at an absolute sample number (the trigger's rise) with the velocity the CV held then (0..1),
and `render(start, out)` adds the samples `start .. start + len(out)` into `out`. A hit's sound
is a closed-form function of the time since its trigger (phase of a swept sine, exponential
envelopes, loop tables read at the absolute sample), so a voice renders the same samples
however the timeline is cut into blocks, and keeps no state but its sounding hits.

The velocity CV sets the level (a VCA: amplitude proportional to it) and, where the circuit
does it, a little more: the kick's and toms' decay and drive, the snare's snappy noise, the
hats' and cymbals' ring (a harder strike rings longer). A new trigger on a voice still sounding
fades the old hit out over 2 ms (an analog voice's envelope restarts; the fade keeps it from
clicking); `choke` does the same with another voice's trigger (the open hat, closed by the
closed hat, as the two share one circuit on the drum machines these model).

Sources of the facts (no code): the TR-808's six square oscillators for its metal voices, its
bridged-T bass drum and toms (a sine whose pitch falls in the first milliseconds), its snare's
two tones plus filtered noise; Mutable Instruments Plaits' drum models (analog bass drum,
snare, hi-hat) as small classes rendering one block at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grooverack.drums import tables

SILENT = 3e-5  # a hit has ended when its envelope is below this (-90 dB: under 16-bit's floor)
RETRIGGER_S = 0.002  # a hit cut by a new trigger fades out over this
CHOKE_S = 0.006  # an open hat closed by the closed hat fades out over this
TWO_PI = 2.0 * math.pi

# TR-808 metal voices: six square oscillators (Hz), as published for the circuit
HAT_OSCILLATORS = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
# a denser, lower set for the crash (the 808 cymbal's six, with two more between them)
CRASH_OSCILLATORS = (205.3, 260.1, 304.4, 369.6, 431.9, 522.7, 540.0, 800.0)


@dataclass
class Hit:
    start: int  # absolute sample of the trigger's rise
    velocity: float  # 0..1, from the velocity CV
    end: int  # first sample after its sound
    cut: int = -1  # fades out from this sample on (a retrigger or choke); -1 = never
    fade: int = 1  # over this many samples


def decay_length(tau: float, rate: int) -> int:
    """Samples until an exponential envelope of time constant `tau` s falls below SILENT."""
    return int(math.ceil(tau * math.log(1.0 / SILENT) * rate))


class Voice:
    """A voice's hits and block rendering; subclasses say how one hit sounds (`sound`) and
    how long (`length`)."""

    name = "voice"

    def __init__(self, rate: int) -> None:
        self.rate = int(rate)
        self.hits: list[Hit] = []

    # --- what a subclass says
    def length(self, velocity: float) -> int:
        raise NotImplementedError

    def sound(self, t: np.ndarray, first: int, velocity: float) -> np.ndarray:
        """One hit's samples at times `t` (s since its trigger); `first` is the absolute sample
        number of `t[0]` (for the loop tables)."""
        raise NotImplementedError

    # --- driven by the jack
    def strike(self, at: int, velocity: float) -> None:
        """A trigger rise at absolute sample `at` with the velocity CV at `velocity` (0..1)."""
        self.cut(at, RETRIGGER_S)
        velocity = min(max(float(velocity), 0.0), 1.0)
        if velocity > 0.0:
            self.hits.append(Hit(at, velocity, at + self.length(velocity)))

    def cut(self, at: int, seconds: float) -> None:
        """Every hit sounding at `at` fades out over `seconds` from there."""
        fade = max(1, int(round(seconds * self.rate)))
        for hit in self.hits:
            if hit.start <= at < hit.end and (hit.cut < 0 or at + fade < hit.cut + hit.fade):
                hit.cut, hit.fade = at, fade
                hit.end = min(hit.end, at + fade)

    choke = cut

    @property
    def sounding(self) -> bool:
        return bool(self.hits)

    def render(self, start: int, out: np.ndarray) -> None:
        """Add samples `start .. start + len(out)` of every hit into `out` (float64, mono)."""
        stop = start + len(out)
        keep = []
        for hit in self.hits:
            lo, hi = max(start, hit.start), min(stop, hit.end)
            if hi > lo:
                n = np.arange(lo, hi)
                y = self.sound((n - hit.start) / self.rate, lo, hit.velocity)
                if hit.cut >= 0 and hi > hit.cut:
                    y *= np.clip(1.0 - (n - hit.cut) / hit.fade, 0.0, 1.0)
                out[lo - start:hi - start] += y
            if hit.end > stop:
                keep.append(hit)
        self.hits = keep


def attack(t: np.ndarray, seconds: float) -> np.ndarray:
    """A rise from 0 over about `seconds` (keeps a hit's first sample from clicking)."""
    return -np.expm1(-t / seconds)


class BassDrum(Voice):
    """A sine whose pitch falls from `f0 * (1 + sweep)` to `f0` with time constant `sweep_s`,
    an exponential level envelope, soft saturation (harder hits drive it more, and ring a
    little longer) and a short filtered-noise click for the beater."""

    name = "kick"
    f0, sweep, sweep_s = 50.0, 2.6, 0.011
    decay_s, decay_per_velocity = 0.10, 0.12
    drive, drive_per_velocity = 1.2, 1.8
    click, click_s = 0.22, 0.0015
    click_band = (1200.0, 9000.0)
    seed = 11

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self.noise = tables.band_noise(rate, *self.click_band, seed=self.seed)

    def tau(self, velocity: float) -> float:
        return self.decay_s + self.decay_per_velocity * velocity

    def length(self, velocity: float) -> int:
        return decay_length(self.tau(velocity), self.rate)

    def sound(self, t: np.ndarray, first: int, velocity: float) -> np.ndarray:
        phase = TWO_PI * self.f0 * (t + self.sweep * self.sweep_s * -np.expm1(-t / self.sweep_s))
        drive = self.drive + self.drive_per_velocity * velocity
        tone = np.tanh(drive * np.sin(phase)) / math.tanh(drive)
        body = tone * np.exp(-t / self.tau(velocity)) * attack(t, 0.0003)
        beater = tables.read(self.noise, first, t.size) * np.exp(-t / self.click_s)
        return velocity * (body + self.click * beater)


class Tom(BassDrum):
    """The bass drum's circuit tuned up: less sweep, a shorter click."""

    name = "tom"
    sweep, sweep_s = 0.55, 0.03
    decay_s, decay_per_velocity = 0.10, 0.08
    drive, drive_per_velocity = 1.0, 0.8
    click, click_s = 0.15, 0.003
    click_band = (500.0, 6000.0)


class LowTom(Tom):
    name, f0, seed = "low_tom", 98.0, 41


class MidTom(Tom):
    name, f0, seed = "mid_tom", 131.0, 51
    decay_s = 0.09


class HighTom(Tom):
    name, f0, seed = "high_tom", 175.0, 61
    decay_s = 0.08


class SnareDrum(Voice):
    """Two sine tones (the shell) with a slight pitch drop, and band-passed noise (the snares),
    whose decay grows with the velocity CV (a harder hit is snappier and longer)."""

    name = "snare"
    tones = ((185.0, 0.62), (330.0, 0.38))
    tone_s = 0.05
    noise_s, noise_per_velocity = 0.05, 0.06
    tone_level, noise_level = 0.55, 0.62

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self.noise = tables.band_noise(rate, 1800.0, 9000.0, seed=21)

    def length(self, velocity: float) -> int:
        return decay_length(max(self.tone_s, self.noise_s + self.noise_per_velocity * velocity),
                            self.rate)

    def sound(self, t: np.ndarray, first: int, velocity: float) -> np.ndarray:
        bend = t + 0.15 * 0.02 * -np.expm1(-t / 0.02)  # pitch 15 % up at the strike
        tone = sum(level * np.sin(TWO_PI * f * bend) for f, level in self.tones)
        tone = tone * np.exp(-t / self.tone_s)
        snares = tables.read(self.noise, first, t.size) * np.exp(
            -t / (self.noise_s + self.noise_per_velocity * velocity))
        return velocity * attack(t, 0.0004) * (self.tone_level * tone + self.noise_level * snares)


class Metal(Voice):
    """Square oscillators summed and high-passed (a metal table), with some high noise, under
    an exponential envelope whose decay grows with the velocity CV."""

    name = "metal"
    oscillators: tuple[float, ...] = HAT_OSCILLATORS
    high_pass, noise_band = 6000.0, (7000.0, 15000.0)
    metal_level, noise_level = 0.75, 0.35
    decay_s, decay_per_velocity = 0.012, 0.012
    attack_s = 0.0003
    seed = 31

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self.metal = tables.metal(rate, self.oscillators, self.high_pass)
        self.noise = tables.band_noise(rate, *self.noise_band, seed=self.seed)

    def tau(self, velocity: float) -> float:
        return self.decay_s + self.decay_per_velocity * velocity

    def length(self, velocity: float) -> int:
        return decay_length(self.tau(velocity), self.rate)

    def source(self, first: int, count: int) -> np.ndarray:
        return (self.metal_level * tables.read(self.metal, first, count)
                + self.noise_level * tables.read(self.noise, first, count))

    def sound(self, t: np.ndarray, first: int, velocity: float) -> np.ndarray:
        envelope = np.exp(-t / self.tau(velocity)) * attack(t, self.attack_s)
        return velocity * envelope * self.source(first, t.size)


class ClosedHat(Metal):
    name = "closed_hat"


class OpenHat(Metal):
    name = "open_hat"
    decay_s, decay_per_velocity = 0.12, 0.12
    seed = 32


class Crash(Metal):
    """The metal of more, lower oscillators, opened wider, a long wash and a bright burst."""

    name = "crash"
    oscillators = CRASH_OSCILLATORS
    high_pass, noise_band = 3800.0, (3000.0, 15000.0)
    metal_level, noise_level = 0.6, 0.5
    decay_s, decay_per_velocity = 0.5, 0.5
    attack_s = 0.002
    seed = 71

    def sound(self, t: np.ndarray, first: int, velocity: float) -> np.ndarray:
        wash = super().sound(t, first, velocity)
        burst = np.exp(-t / 0.06) * attack(t, self.attack_s) * tables.read(self.noise, first,
                                                                             t.size)
        return wash + 0.4 * velocity * burst


class Ride(Metal):
    """A bell of a few sine partials over a quieter metal wash, and a stick's tick."""

    name = "ride"
    high_pass, noise_band = 6000.0, (7000.0, 16000.0)
    metal_level, noise_level = 0.45, 0.25
    decay_s, decay_per_velocity = 0.35, 0.3
    bell = ((512.0, 0.30), (1187.0, 0.18), (1761.0, 0.12), (2442.0, 0.08))
    bell_s = 0.35
    seed = 81

    def sound(self, t: np.ndarray, first: int, velocity: float) -> np.ndarray:
        wash = super().sound(t, first, velocity)
        bell = sum(level * np.sin(TWO_PI * f * t) for f, level in self.bell)
        tick = np.exp(-t / 0.002) * tables.read(self.noise, first, t.size)
        return wash + velocity * (bell * np.exp(-t / self.bell_s) * attack(t, 0.0005)
                                  + 0.3 * tick)


VOICES: dict[str, type[Voice]] = {cls.name: cls for cls in (
    BassDrum, SnareDrum, ClosedHat, OpenHat, LowTom, MidTom, HighTom, Crash, Ride)}
