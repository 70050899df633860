"""Clock: internal tempo, external clock pulses (PPQN), MIDI clock -> musical position in steps.

Pure: every method takes the time `t` (float seconds on the back end's timeline); nothing here
reads a clock or sleeps.

Two coordinates:
- *linear* position `u` (steps): what the clock measures; pulses land on multiples of
  `steps_per_pulse` (4 / PPQN).
- *musical* position `p` (steps): `u` with swing applied: odd 16ths are delayed, inside each pair
  of steps the odd one starts at `u = 2k + 2 * swing`. Everything outside the clock (player,
  capture) works in musical positions.

The linear position is piecewise linear in time: an anchor `(t0, u0)`, a rate (steps/s) and a
limit. Internal tempo: no limit. External clock (pulses or MIDI clock): **the pulse is the
position** (as Grids answers each pulse; nothing regenerates a fine clock from a coarse one):
each pulse anchors the position exactly on its grid point at the pulse's own time, and between
pulses the position runs on at the tempo estimate but is *held* at the next expected pulse: what
sits on or after it (a step on an edge) waits for that pulse and plays at its time. A pulse that
comes early moves the position forward at once (what lay before it plays then, never after it);
one that comes late leaves the position waiting. `hold` is that next pulse's musical position:
the player releases nothing at or beyond it.

Tempo from an external clock (held to 20..300 BPM; pulses more than twice as fast as 300 BPM are
noise and ignored): the period is the mean of the last `clock.smoothing` accepted
intervals; the smoothed period moves toward it by `tempo_gain` per pulse (`clock.slew`). An
interval more than OUTLIER (30 %) away from the median of the recent ones is kept out of the
estimate, unless RELOCK (3) such intervals in a row agree with each other: then the clock
re-locks to them at once. Between the pulses after an outlier the position runs at the outlier's
own rate (a tempo jump is heard from its first interval; a single stray pulse costs one interval).

Transport (MIDI semantics): `start` = reset + run; `stop` freezes the position; `continue_` runs on
from it; `song_position` jumps. With `midi=True` (the message came over MIDI) they wait for the
next MIDI clock in `auto` too: Start puts step 0 on the first clock after it, always. `reset`
with an external clock is transparent: it re-arms step 0 and never fires, the next pulse plays
step 0; with the internal clock a reset in the first half of a 16th plays step 0 at once, one in
the second half makes the next 16th step 0 (a reset on a grid line makes that line step 0, and a
sequencer's line is captured on its own steps).
Every jump of the position increments `epoch`, so the player and the capture can re-base.

A clock that stops stops the drums at once: nothing at or after the next expected pulse plays.
After `clock.stop_timeout` without a pulse it is declared stalled: the position stays there,
re-armed, and the next pulse plays that step (a step-accurate restart). `auto` ("external while
pulses arrive, internal otherwise") does the same by default (`clock.auto_stop = wait`: the
drums stop with the sequencer that clocked them, as they do on a module whose clock jack is
still patched); turning the tempo control then goes on at the internal tempo from the held step.
`clock.auto_stop = internal` goes on at the internal tempo by itself once the clock is stalled.
Before any clock has arrived, `auto` runs on the internal tempo.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median
from typing import Any

STEPS_PER_BEAT = 4
MIDI_PPQN = 24
PPQN_CHOICES = (1, 2, 4, 8, 24, 48)
OUTLIER = 0.3          # relative distance from the median that makes an interval an outlier
RELOCK = 3             # this many agreeing outliers in a row re-lock the tempo
MIN_INTERVAL = 0.0005  # s: shorter pulse intervals are contact bounce, ignored
MIN_BPM, MAX_BPM = 20.0, 300.0
HISTORY = 16           # earlier segments kept for late-reported times
ON_PULSE = 1e-6        # steps: a position this close to a segment's limit waits for its pulse
NOISE_FACTOR = 0.5     # pulse intervals under half the 300 BPM period are noise, ignored


def swing_warp(p: float, swing: float) -> float:
    """Musical position -> linear position (swing 0.5..0.75 = fraction of a step pair)."""
    k = math.floor(p / 2.0) * 2.0
    f = p - k
    if f < 1.0:
        return k + f * 2.0 * swing
    return k + 2.0 * swing + (f - 1.0) * (2.0 - 2.0 * swing)


def swing_unwarp(u: float, swing: float) -> float:
    """Linear position -> musical position (inverse of swing_warp)."""
    k = math.floor(u / 2.0) * 2.0
    f = u - k
    if f < 2.0 * swing:
        return k + f / (2.0 * swing)
    return k + 1.0 + (f - 2.0 * swing) / (2.0 - 2.0 * swing)


def bpm_to_rate(bpm: float) -> float:
    """Tempo in BPM -> steps per second."""
    return bpm * STEPS_PER_BEAT / 60.0


class Clock:
    """Musical position from the internal tempo, an external clock or MIDI clock."""

    def __init__(self, settings: Any) -> None:
        self.source: str = settings["clock.source"]
        self.ppqn: int = int(settings["clock.ppqn"])
        self.smoothing: int = int(settings["clock.smoothing"])
        self.slew: float = float(settings["clock.slew"])
        self.stop_timeout: float = float(settings["clock.stop_timeout"])
        self.auto_stop: str = str(settings["clock.auto_stop"])  # auto after a stall: wait | internal
        self.tempo: float = float(settings["tempo"])   # the internal tempo (BPM)
        self.swing: float = float(settings["swing"]) / 100.0
        self.running = False     # transport: started / continued and not stopped
        self.epoch = 0           # incremented at every jump of the position
        self.driver = "external" if self.source in ("external", "midi") else "internal"
        # the linear segment
        self._t0 = 0.0
        self._u0 = 0.0
        self._rate = 0.0
        self._limit = math.inf
        self._frozen = True
        # earlier segments since the last jump, for times reported late (onsets)
        self._history: deque[tuple[float, float, float, float, bool]] = deque(maxlen=HISTORY)
        # external pulses
        self._armed = False            # the next pulse plays `_next_u` exactly (after start/reset)
        self._next_u = 0.0             # linear position of the next expected pulse
        self._last_t: float | None = None
        self._pulse_kind = ""          # "cv" or "midi": which input the intervals came from
        self._intervals: deque[float] = deque(maxlen=self.smoothing)
        self._outliers: list[float] = []
        self._period: float | None = None   # smoothed seconds per pulse
        self.stalled = False
        self.pulses = 0
        self.noise = 0                 # pulses ignored as noise
        self._snap = False             # the next pulse lands on the nearest pulse of the grid
        self._segment: float | None = None  # seconds per pulse of the next segment (an outlier)
        self._wait_since: float | None = None  # armed by MIDI transport, no clock yet (auto)

    # --- derived --------------------------------------------------------------------------------
    @property
    def steps_per_pulse(self) -> float:
        return STEPS_PER_BEAT / (MIDI_PPQN if self._pulse_kind == "midi" else self.ppqn)

    @property
    def tempo_gain(self) -> float:
        return 0.05 + 0.95 * self.slew

    @property
    def bpm(self) -> float:
        """The tempo the position runs at now (internal tempo or the external estimate)."""
        if self.driver == "internal" or self._period is None:
            return self.tempo
        return self.steps_per_pulse / self.period * 60.0 / STEPS_PER_BEAT

    @property
    def period(self) -> float:
        """Seconds per external pulse: the estimate held to the 20..300 BPM range."""
        if self._period is None:
            return self.steps_per_pulse / bpm_to_rate(self.tempo)
        return self._held_to_range(self._period)

    def _held_to_range(self, period: float) -> float:
        """Seconds per pulse held to the 20..300 BPM range."""
        sp = self.steps_per_pulse
        return min(max(period, sp / bpm_to_rate(MAX_BPM)), sp / bpm_to_rate(MIN_BPM))

    @property
    def hold(self) -> float:
        """Musical position from which events wait for the next external pulse (inf: none
        wait). A step on a clock edge plays at that edge's time, never at a prediction of it."""
        if self.driver != "external" or not math.isfinite(self._limit):
            return math.inf
        return swing_unwarp(self._limit, self.swing)

    @property
    def next_pulse(self) -> float:
        """Musical position the next external pulse plays: `hold` while the clock runs on its
        pulses; after a start, reset, song position or continue, the position its first pulse
        plays (the position waits there meanwhile); inf when no pulse is waited for."""
        hold = self.hold
        if math.isfinite(hold) or not (self.running and self._armed
                                       and self.driver == "external"):
            return hold
        return swing_unwarp(max(self._next_u, self._u0), self.swing)

    @property
    def playing(self) -> bool:
        """True while the position moves (running and not waiting for a pulse or stalled)."""
        return self.running and not self._frozen

    @property
    def rate(self) -> float:
        """Musical steps per second now (0 while frozen), without swing."""
        return 0.0 if self._frozen else self._rate

    # --- position <-> time -----------------------------------------------------------------------
    def _u(self, t: float) -> float:
        if t < self._t0 and self._history:
            # a time before the last anchor (an onset reported late): the segment it fell in,
            # never above a later anchor (the position never goes backwards)
            ceiling = self._u0
            for t0, u0, rate, limit, frozen in reversed(self._history):
                if t >= t0:
                    if frozen:
                        return min(u0, ceiling)
                    return min(u0 + (t - t0) * rate, limit, ceiling)
                ceiling = min(ceiling, u0)
            return ceiling   # before every segment kept: the oldest anchor
        if self._frozen or t <= self._t0:
            return self._u0
        return min(self._u0 + (t - self._t0) * self._rate, self._limit)

    def linear_position(self, t: float) -> float:
        return self._u(t)

    def position(self, t: float) -> float:
        """Musical position (steps since start/reset, swing applied) at time t."""
        return swing_unwarp(self._u(t), self.swing)

    def time_of(self, position: float) -> float:
        """Predicted time of a musical position; inf while the position does not move.

        Positions at or before the current anchor map to the anchor's time (never the past of a
        re-anchored segment). Beyond the limit this is a prediction at the current rate.
        """
        if self._frozen or self._rate <= 0.0:
            return math.inf
        u = swing_warp(position, self.swing)
        if u <= self._u0:
            return self._earlier_time_of(u)
        return self._t0 + (u - self._u0) / self._rate

    def _earlier_time_of(self, u: float) -> float:
        """The time a position before the current anchor was reached, through the segments kept
        since the last jump: when two clock edges are taken in at once (both in one audio block,
        or one loop wake-up), a step on the first still plays at the first edge's time, not at
        the second's. A position only reached by an anchor (held, or passed by a jump forward)
        maps to that anchor's time; before every kept segment, the current anchor's."""
        end_t = self._t0
        for t0, u0, rate, limit, frozen in reversed(self._history):
            if u >= u0:
                if frozen or rate <= 0.0 or u >= limit - ON_PULSE:
                    return end_t   # held at the segment's limit: reached when the pulse came
                return min(t0 + (u - u0) / rate, end_t)
            end_t = t0
        return self._t0

    def step_seconds(self) -> float:
        """Duration of one step at the current rate (the internal tempo's while frozen)."""
        rate = self._rate if (not self._frozen and self._rate > 0) else bpm_to_rate(self.bpm)
        return 1.0 / rate

    def _anchor(self, t: float, u: float, *, rate: float | None = None,
                limit: float = math.inf, frozen: bool = False, jump: bool = False) -> None:
        if jump:
            self._history.clear()
        else:
            self._history.append((self._t0, self._u0, self._rate, self._limit, self._frozen))
        self._t0, self._u0 = t, u
        if rate is not None:
            self._rate = max(rate, 0.0)
        self._limit = limit
        self._frozen = frozen

    def _run_internal(self, t: float, u: float, jump: bool = False) -> None:
        self.driver = "internal"
        self._anchor(t, u, rate=bpm_to_rate(self.tempo), jump=jump)

    # --- settings --------------------------------------------------------------------------------
    def set_tempo(self, bpm: float, t: float) -> None:
        """Internal tempo; takes effect from time t (the position stays continuous)."""
        tempo = min(max(float(bpm), MIN_BPM), MAX_BPM)
        moved, self.tempo = abs(tempo - self.tempo) > 1e-6, tempo
        if self.driver == "internal" and not self._frozen:
            self._anchor(t, self._u(t), rate=bpm_to_rate(self.tempo))
        elif (moved and self.source == "auto" and self.stalled and self.running
              and self._armed and self.driver == "external"):
            # auto waiting on a stopped clock (clock.auto_stop = wait): the tempo control was
            # turned, so play on at the internal tempo from the held step
            self._armed = False
            self._run_internal(t, self._u(t))

    def set_swing(self, percent: float, t: float) -> None:
        """Swing 50..75 %; the musical position stays continuous at t."""
        p = self.position(t)
        self.swing = min(max(float(percent), 50.0), 75.0) / 100.0
        u = swing_warp(p, self.swing)
        self._anchor(t, u, limit=max(self._limit, u), frozen=self._frozen)

    def set_ppqn(self, ppqn: int, t: float | None = None) -> None:
        """External clock resolution; from time t (default: the last anchor) the position runs
        on continuously at the rate the pulses now mean."""
        if ppqn not in PPQN_CHOICES:
            raise ValueError(f"clock.ppqn {ppqn!r} is not allowed; allowed: {PPQN_CHOICES}")
        if self._pulse_kind == "midi":
            self.ppqn = ppqn
            return
        t = self._t0 if t is None else max(t, self._t0)
        u = self._u(t)
        old_sp = self.steps_per_pulse
        self.ppqn = ppqn
        if self._armed:
            return
        sp = self.steps_per_pulse
        last = self._next_u - old_sp   # the last pulse stays where it was; the grid goes on
        self._next_u = last + max(1, math.ceil((u - last) / sp - 1e-9)) * sp
        if self.driver == "external" and not self._frozen:
            self._anchor(t, u, rate=self.steps_per_pulse / self.period,
                         limit=max(u, self._next_u))

    def set_source(self, source: str, t: float) -> None:
        if source not in ("auto", "internal", "external", "midi"):
            raise ValueError(f"clock.source {source!r} is not allowed")
        self.source = source
        if source == "internal" and self.driver != "internal":
            self._armed = False
            if self.running:
                self._run_internal(t, self._u(t))
            self.driver = "internal"
        elif source in ("external", "midi") and self.driver == "internal":
            # wait for the first pulse where the position is; it lands on the nearest pulse
            self.driver = "external"
            self._snap = True
            u = self._u(t)
            self._anchor(t, u, limit=u, frozen=self._frozen)

    def set_smoothing(self, intervals: int) -> None:
        self.smoothing = int(intervals)
        self._intervals = deque(self._intervals, maxlen=self.smoothing)

    # --- transport ---------------------------------------------------------------------------------
    def _midi_transport(self, t: float, midi: bool) -> None:
        """A transport message that came over MIDI: in `auto` it waits for the next MIDI clock
        too (a sequencer sends Start, then clocks), not for the internal tempo."""
        if midi and self.source in ("auto", "midi") and self.driver == "internal":
            self.driver = "external"
            self._snap = False
            self._wait_since = t

    def start(self, t: float, *, midi: bool = False) -> None:
        """Reset + run: with the internal clock step 0 plays at t; else at the next pulse
        (`midi`: the Start came over MIDI; step 0 is the first MIDI clock after it)."""
        self.running = True
        self.stalled = False
        self.epoch += 1
        self._midi_transport(t, midi)
        self._arm(t, 0.0)

    def _arm(self, t: float, u: float) -> None:
        if self.driver == "internal" and self.running:
            self._run_internal(t, u, jump=True)
            self._armed = False
        else:
            self._anchor(t, u, frozen=True, jump=True)
            self._armed = True
            self._next_u = u

    def stop(self, t: float) -> None:
        """Freeze the position where it is."""
        self._anchor(t, self._u(t), frozen=True)
        self.running = False

    def continue_(self, t: float, *, midi: bool = False) -> None:
        """Run on from where the position stopped (internal: at once; external: next pulse)."""
        if self.running:
            return
        self.running = True
        self.stalled = False
        self._midi_transport(t, midi)
        if self.driver == "internal":
            self._armed = False
            self._run_internal(t, self._u0)
        else:   # MIDI: the first clock after Continue plays the position after the last clock
            self._armed = True

    @property
    def last_pulse_time(self) -> float | None:
        return self._last_t

    def reset(self, t: float, *, at_last_pulse: bool = False) -> None:
        """Reset: re-arm step 0; the next external pulse plays it (internal clock: the nearest 16th).

        `at_last_pulse`: the reset belongs to the external pulse just before it (both edges came
        together, the clock's first): that pulse becomes step 0 (the caller checks that nothing
        of that pulse's step has sounded yet).
        """
        self.epoch += 1
        if at_last_pulse and self.driver == "external" and self._last_t is not None:
            sp = self.steps_per_pulse
            self._anchor(self._last_t, 0.0, rate=sp / self.period, limit=sp, jump=True)
            self._armed = False
            self._next_u = sp
            return
        if self.driver == "internal" and self.running and not self._frozen:
            # a reset in the first half of a 16th is that 16th's: step 0 plays now (the grid
            # moves by less than half a step); in the second half the next 16th becomes step 0
            # (the grid keeps its phase). A reset on a grid line is that line, as the sequencer
            # that sent it means: a "next 16th" rule captured its line a step early
            u = self._u(t)
            frac = u - math.floor(u)
            start = 0.0 if frac < 0.5 else u - math.ceil(u)
            self._anchor(t, start, rate=bpm_to_rate(self.tempo), jump=True)
        else:
            self._anchor(t, 0.0, frozen=True, jump=True)
            self._armed = True
            self._next_u = 0.0

    def song_position(self, t: float, sixteenths: int, *, midi: bool = False) -> None:
        """MIDI Song Position Pointer: the next clock plays `sixteenths` (steps)."""
        self.epoch += 1
        u = float(sixteenths)
        self._midi_transport(t, midi)
        if self.driver == "internal" and self.running:
            self._armed = False
            self._run_internal(t, u, jump=True)
        else:
            self._anchor(t, u, frozen=True, jump=True)
            self._armed = True
            self._next_u = u

    # --- pulses --------------------------------------------------------------------------------------
    def pulse(self, t: float) -> None:
        """An external clock edge (resolution `clock.ppqn`)."""
        if self.source in ("external", "auto"):
            self._pulse(t, "cv")

    def midi_clock(self, t: float) -> None:
        """A MIDI timing clock (0xF8, 24 PPQN)."""
        if self.source in ("midi", "auto"):
            self._pulse(t, "midi")

    def _pulse(self, t: float, kind: str) -> None:
        if kind != self._pulse_kind:
            self._pulse_kind = kind
            self._intervals.clear()
            self._outliers.clear()
            self._period = None
            self._last_t = None
        if self._last_t is not None:
            dt = t - self._last_t
            if dt < MIN_INTERVAL:
                return
            if dt < NOISE_FACTOR * self.steps_per_pulse / bpm_to_rate(MAX_BPM):
                self._last_t = t     # far faster than any tempo: noise, not a clock
                self.noise += 1
                return
            self._segment = dt if self._track(dt) else None
        self._last_t = t
        self._wait_since = None
        self.pulses += 1
        self.stalled = False
        sp = self.steps_per_pulse
        if self.driver == "internal" or self._snap:
            self.driver = "external"
            self._snap = False
            if self.running and not self._armed:
                # take over from the internal clock: this pulse is the nearest pulse of the grid
                self._next_u = round(self._u(t) / sp) * sp
        if not self.running:
            return
        period = self.period
        if self._segment is not None:   # an outlier interval: the next segment runs at its rate
            period = self._held_to_range(self._segment)
        if self._armed:   # after start / reset / song position / continue: exactly this pulse
            self._armed = False
            target = max(self._next_u, self._u0)
            self._anchor(t, target, rate=sp / period, limit=target + sp, jump=True)
        else:
            target = self._next_u
            cur = self._u(t)
            if cur <= target + 1e-9:
                # the pulse is the position: it lands on its grid point now (what lay before it
                # and had not played yet plays now; the position never passed it)
                self._anchor(t, target, rate=sp / period, limit=target + sp)
            else:
                # taken over from the internal clock with the nearest grid pulse just behind:
                # the position runs on to the next pulse, expected one period from now
                self._anchor(t, cur, rate=(target + sp - cur) / period, limit=target + sp)
        self._next_u = target + sp

    def _track(self, dt: float) -> bool:
        """Tempo estimate from one interval (outlier rejection, re-lock, slew); True when the
        interval was an outlier kept out of the estimate."""
        hist = self._intervals
        if not hist:
            hist.append(dt)
            self._period = dt
            return False
        med = median(hist)
        if abs(dt - med) > OUTLIER * med:
            self._outliers.append(dt)
            if len(self._outliers) >= RELOCK:
                m = median(self._outliers)
                if all(abs(o - m) <= OUTLIER * m for o in self._outliers):
                    hist.clear()
                    hist.extend(self._outliers)
                    self._period = sum(self._outliers) / len(self._outliers)
                    self._outliers.clear()
                    return False
                del self._outliers[0]
            return True
        self._outliers.clear()
        hist.append(dt)
        estimate = sum(hist) / len(hist)
        if self._period is None:
            self._period = estimate
        else:
            self._period += self.tempo_gain * (estimate - self._period)
        return False

    def poll(self, t: float) -> None:
        """Stop detection: no pulse for `clock.stop_timeout` -> stalled: the drums stay where they
        were held (the next expected pulse) and the next pulse plays that step; `auto` with
        `clock.auto_stop = internal`: the internal tempo goes on from it. A MIDI Start that no
        clock followed in `auto` goes on at the internal tempo either way."""
        if self.driver != "external":
            return
        if self._last_t is None:
            since = self._wait_since
            if (since is not None and self.source == "auto" and self.running and self._armed
                    and t - since > self.stop_timeout):
                self._wait_since = None
                self._armed = False
                self._run_internal(t, self._next_u, jump=True)
                self.epoch += 1
            return
        if t - self._last_t <= self.stop_timeout:
            return
        self._last_t = None
        self.stalled = True
        if self.source == "auto" and self.auto_stop == "internal":
            self.driver = "internal"
            if self.running:
                self._armed = False
                self._run_internal(t, self._u(t))
        elif self.running and not self._armed:
            self._anchor(t, self._u(t), frozen=True)
            self._armed = True   # step-accurate restart: the next pulse plays the next step
