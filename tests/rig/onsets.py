"""Onsets of rendered drum audio found by a simple energy method, and the trigger rises of an
outputs.csv: what the drums.wav and live-sound tests compare.

The detection function is the energy of the signal's first difference (a high-pass: every
voice's attack is broadband, a kick's ringing tail is not) in 1 ms windows every 0.25 ms,
against the loudest such window in the 10 ms before: an onset is where it first exceeds RATIO
times that (and a floor), with a refractory time after it. The onset time is the middle of that
window, refined to the first 0.25 ms window 5 % of the way from the background up to it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

WINDOW_S = 0.001  # energy window
HOP_S = 0.00025  # windows start every this long
BACKGROUND_S = 0.010  # compared with the loudest window of this long before
RATIO = 6.0  # an onset: this much more energy than any window just before
REFRACTORY_S = 0.002
SAME_HIT_S = 0.008  # a low-band onset this soon after a high-band one is the same hit
FINE_S = 0.00025  # the onset: where 0.25 ms windows first rise above twice the background


def energy_onsets(x: np.ndarray, rate: int, floor: float = 1e-6) -> np.ndarray:
    """Onset times (s) in mono `x`, in two bands: the whole signal (a kick or tom: its energy is
    low) and its first difference (hats, snares, cymbals: high). Where both find one, the
    earlier counts."""
    x = x.astype(np.float64)
    high = band_onsets(np.diff(x, prepend=0.0), rate, floor)
    low = band_onsets(x, rate, floor)
    # a snare's shell tone or a kick's body a few ms after its attack is the same hit
    low = np.array([t for t in low if not np.any((high <= t) & (high > t - SAME_HIT_S))])
    onsets: list[float] = []
    for t in np.sort(np.concatenate((high, low))):
        if not onsets or t - onsets[-1] >= REFRACTORY_S:
            onsets.append(float(t))
    return np.array(onsets)


def band_onsets(x: np.ndarray, rate: int, floor: float) -> np.ndarray:
    """Where the energy of `x` in a window first exceeds RATIO times that of the loudest window
    in the BACKGROUND_S before it, refined to the first 0.25 ms window 5 % of the way up."""
    d = x ** 2
    c = np.concatenate(([0.0], np.cumsum(d)))
    w, hop = max(1, round(WINDOW_S * rate)), max(1, round(HOP_S * rate))
    starts = np.arange(0, len(x) - w, hop)
    energy = (c[starts + w] - c[starts]) / w
    back = round(BACKGROUND_S / HOP_S)
    lag = -(-w // hop)  # windows that overlap the current one are not "before" it
    padded = np.concatenate((np.zeros(back + lag), energy))
    before = np.lib.stride_tricks.sliding_window_view(padded, back)[:len(energy)].max(axis=1)
    hot = np.flatnonzero(energy > RATIO * before + floor)
    fine_w = max(1, round(FINE_S * rate))
    onsets: list[float] = []
    for i in hot:
        # the attack starts inside window i: its first 0.25 ms window 5 % of the way
        # from the background to the window's energy
        lo, hi = max(int(starts[i]) - fine_w, 0), int(starts[i]) + w
        m = np.arange(lo, hi)
        fine = (c[np.minimum(m + fine_w, len(x))] - c[m]) / fine_w
        first = np.flatnonzero(fine > before[i] + 0.05 * (energy[i] - before[i]) + floor)
        t = (m[first[0]] + fine_w) / rate if first.size else (starts[i] + w / 2) / rate
        if not onsets or t - onsets[-1] >= REFRACTORY_S:
            onsets.append(t)
    return np.array(onsets)


def trigger_rises(csv_path: Path) -> list[tuple[float, int, float]]:
    """(time, output, velocity volts held then) of every trigger rise in an outputs.csv."""
    level: dict[int, float] = {}
    high: dict[int, bool] = {}
    rises = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            out, kind, volts = int(row["output"]), row["kind"], float(row["volts"])
            if kind == "velocity":
                level[out] = volts
            elif kind == "trigger":
                if volts > 1.0 and not high.get(out, False):
                    rises.append((float(row["time_s"]), out, level.get(out, 8.0)))
                high[out] = volts > 1.0
    return rises


def check_heard_loop(heard: list[float], truth: list[float], groove: np.ndarray, position,
                     xruns: int, spread_ms: float = 5.0) -> float:
    """The checks of a rendered loop played into an audio input: the onsets `heard` (their own
    sample's time, a timeline one constant apart from the MIDI `truth`) scored against it
    (`sim.fluid.score`, every bound eased by each missed JACK cycle), and the engine's `groove`
    [32, 3] holding the steps the truth lands on (`position(t)`: the clock's step at time t).
    Returns the constant found (truth time + it = heard time)."""
    from grooverack.sim import fluid

    assert heard, "no onsets heard"
    coarse = heard[0] - truth[0]  # the loop opens on a loud kick
    near = [min((h - coarse - t for t in truth), key=abs) for h in heard]
    delta = coarse + float(np.median([d for d in near if abs(d) < 0.025]))
    score = fluid.score([h - delta for h in heard], truth)
    # every hit heard; a few soft extras allowed: on a loaded host PortAudio / JACK can drop or
    # repeat a block without flagging it, and the click is (rightly) an onset
    assert score["recall"] >= 0.95 - 0.05 * xruns, (score, xruns)
    assert score["f1"] >= 0.85 - 0.05 * xruns, (score, xruns)
    assert score["p90_spread_ms"] <= spread_ms + 5.0 * xruns, (score, xruns)
    # the groove is the loop's: the steps the MIDI truth lands on at the same time base; a hit
    # within the heard spread of a step's edge may go to either step (both are right)
    edge_s = spread_ms / 1000.0
    expected: set[frozenset[int]] = set()
    for t in truth:
        lo, hi = position(t + delta - edge_s) + 0.5, position(t + delta + edge_s) + 0.5
        expected.add(frozenset({int(np.floor(lo)) % 32, int(np.floor(hi)) % 32}))
    allowed = set().union(*expected)
    got = set(np.flatnonzero(groove[:, 0] > 0))
    found = sum(1 for steps in expected if steps & got)
    assert found >= (0.9 - 0.05 * xruns) * len(expected), (
        sorted(got), sorted(map(sorted, expected)), xruns)
    assert len(got - allowed) <= 0.25 * len(expected) + xruns, (
        sorted(got), sorted(map(sorted, expected)))
    return delta
