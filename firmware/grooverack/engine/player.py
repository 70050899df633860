"""Player: the playing Pattern + the Clock -> OutputEvents (velocity CVs, triggers, clock, reset).

Each hit is placed at musical position `step + offset * (1 - quantize)` and timed through the
clock, so micro-timing follows tempo changes and swing. Step `s` is *committed* (its events taken
from the one pattern playing then) when the position reaches `s - 0.5`, so hits with negative
offsets can sound early; the player swaps in a new pattern from its PatternBuffer only at a
commit, so every step's events come from exactly one pattern.

Outputs: `map.<voice>` names the output (1..outputs.count, 0 = none) of each of the 9 voices;
several voices on one output at a step -> the louder wins. Per output: a "velocity" event (value
0..1, times `outputs.scale.N`; with `outputs.accent`, hits at or above `accent_threshold` jump to
full) at the same time as and before its "trigger" rise (1.0), then the fall (0.0) after
`outputs.trigger_ms`, or half a step in gate mode (`outputs.gate_mode` for every output,
`outputs.mode.N` = "gate" for output N; clock out in gate mode is a square wave, half of each
pulse period; `outputs.mode.reset`). A new rise on an output still high ends the
previous trigger first (RETRIGGER_GAP before, never before the previous rise): triggers never merge
or stick. Clock out (`outputs.clock_ppqn`, swung like the steps) and reset out (the first step 0
after a start or reset) are "clock" / "reset" events on output 0 with voice -1.

With an external clock, nothing on or after the next expected pulse is returned before that
pulse arrives (`Clock.hold`): a step on a clock edge plays at the edge's own time.

Events are returned once each, sorted by (time, order) with order fall < velocity < rise, and
never earlier than an event already returned.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from grooverack.engine.clock import STEPS_PER_BEAT, Clock
from grooverack.engine.pattern import Pattern, PatternBuffer
from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES

RETRIGGER_GAP = 0.0005   # s: a retriggered output goes low this long before the new rise
MIN_RETRIGGER = 0.001    # s: a second rise this close to the previous one is a double: dropped
HOLD_EPS = 1e-6         # steps: a position this close to the next external pulse is on it
ORDER = {"fall": 0, "velocity": 1, "rise": 2}


EventKind = Literal["velocity", "trigger", "clock", "reset"]
EVENT_KINDS: tuple[EventKind, ...] = ("velocity", "trigger", "clock", "reset")


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """One thing to write at `time`: kind "velocity" (0..1), "trigger", "clock", "reset" (1/0)."""

    time: float
    output: int
    kind: EventKind
    value: float
    step: int
    voice: int

    @property
    def order(self) -> int:
        if self.kind == "velocity":
            return ORDER["velocity"]
        return ORDER["rise"] if self.value > 0 else ORDER["fall"]


@dataclass(slots=True)
class _Due:
    """A rise scheduled in musical position (hits, clock and reset pulses)."""

    position: float
    seq: int
    kind: EventKind  # "trigger", "clock", "reset"
    output: int
    value: float     # velocity for triggers
    step: int
    voice: int
    absolute: int    # the step counted since start/reset

    def __lt__(self, other: _Due) -> bool:
        return (self.position, self.seq) < (other.position, other.seq)


class Player:
    """Turns the playing pattern and the clock into output events."""

    def __init__(self, settings: Any, buffer: PatternBuffer | None = None) -> None:
        self.buffer = buffer if buffer is not None else PatternBuffer()
        # the fill the engine plays now (its number, 0 = none) and that fill's pattern, kept
        # beside the normal one: a fill ends on its bar line with the normal pattern at hand
        self.fill = 0
        self._fill_pattern: Pattern | None = None
        self.pattern = Pattern.empty()
        self.outputs: int = int(settings["outputs.count"])
        self.trigger_s: float = float(settings["outputs.trigger_ms"]) / 1000.0
        self.gate_mode: bool = bool(settings["outputs.gate_mode"])
        self.accent: bool = bool(settings["outputs.accent"])
        self.accent_threshold: float = float(settings["outputs.accent_threshold"])
        self.clock_ppqn: int = int(settings["outputs.clock_ppqn"])
        self.gates: set[tuple[str, int]] = set()  # (kind, output) played as gates
        self.read_modes(settings)
        self.quantize: float = float(settings["quantize"])
        self.voice_map: list[int] = [int(settings[f"map.{v}"]) for v in VOICE_NAMES]
        self.scale: list[float] = [float(settings[f"outputs.scale.{n}"]) for n in range(1, 17)]
        self.next_step = 0            # the next step (counted since start/reset) to commit
        self._due: list[_Due] = []
        self._falls: dict[tuple[EventKind, int], tuple[float, float, int, int]] = {}  # key -> fall, rise, step, voice
        self._last_time = -math.inf   # no event earlier than one already returned
        self._seq = 0
        self._reset_out = True        # the next step 0 fires reset out
        self._floor_position = 0.0    # clock out starts here (the last start/reset position)
        self.steps_played = 0
        self.sounded = -1             # the latest step (since start/reset) that sent a rise
        self._committing = 0

    @property
    def pattern(self) -> Pattern:
        """The pattern playing: the fill's while a fill plays and its pattern is in, else the
        newest normal one."""
        fill = self._fill_pattern
        if self.fill and fill is not None and fill.info.get("fill") == self.fill:
            return fill
        return self._base

    @pattern.setter
    def pattern(self, pattern: Pattern) -> None:
        self._base = pattern

    def _take(self, new: Pattern) -> None:
        fill = int(new.info.get("fill", 0) or 0)
        if not fill:
            self._base = new
        elif fill == self.fill:
            self._fill_pattern = new
        # else: the pattern of a fill that is over (made late by the worker): never played

    # --- settings ------------------------------------------------------------------------------------
    def set_map(self, voice: int, output: int) -> None:
        self.voice_map[voice] = int(output)

    def read_modes(self, settings: Any) -> None:
        """Which outputs are gates (`outputs.mode.N`, `.clock`, `.reset` = "gate")."""
        self.gates = {("trigger", n) for n in range(1, 17)
                      if settings[f"outputs.mode.{n}"] == "gate"}
        self.gates |= {(kind, 0) for kind in ("clock", "reset")
                       if settings[f"outputs.mode.{kind}"] == "gate"}

    # --- transport --------------------------------------------------------------------------------------
    def rebase(self, position: float) -> None:
        """The position jumped: forget what was committed but not yet played."""
        self._due.clear()
        self.next_step = math.ceil(position - 1e-9)
        self.sounded = self.next_step - 1
        self._floor_position = position
        self._reset_out = self.next_step <= 0

    def stop(self, t: float, position: float | None = None) -> None:
        """Transport stopped at t (at `position`): drop pending hits, end every high output now.

        With the position, the steps not yet played are committed again when the transport
        continues, so a stop/continue neither loses nor repeats a step.
        """
        self._due.clear()
        if position is not None:
            self.next_step = math.ceil(position - 1e-9)
        t = max(t, self._last_time)
        for key, (_fall, rise, step, voice) in list(self._falls.items()):
            self._falls[key] = (max(t, rise), rise, step, voice)

    # --- committing steps ----------------------------------------------------------------------------
    def _push(self, position: float, kind: EventKind, output: int, value: float, step: int,
              voice: int) -> None:
        self._seq += 1
        heapq.heappush(self._due, _Due(position, self._seq, kind, output, value, step, voice,
                                       self._committing))

    def _commit(self, step: int) -> None:
        self._committing = step
        new = self.buffer.take()
        if new is not None:
            self._take(new)
        row = step % STEPS
        for output, velocity, voice, offset in self._hits(self.pattern, row):
            self._push(step + offset, "trigger", output, velocity, row, voice)
        spacing = STEPS_PER_BEAT / self.clock_ppqn   # clock-out pulses at multiples of this
        j = math.ceil(max(step - 0.5, self._floor_position) / spacing - 1e-9)
        while j * spacing < step + 0.5 - 1e-9:
            self._push(j * spacing, "clock", 0, 1.0, row, -1)
            j += 1
        if step == 0 and self._reset_out:
            self._push(0.0, "reset", 0, 1.0, 0, -1)
        self._reset_out = False
        self.steps_played += 1

    # --- events ------------------------------------------------------------------------------------------
    def _velocity_value(self, output: int, velocity: float) -> float:
        if self.accent and velocity >= self.accent_threshold:
            velocity = 1.0
        return min(max(velocity * self.scale[output - 1], 0.0), 1.0)

    def _width(self, kind: str, clock: Clock, output: int = 0) -> float:
        step_s = clock.step_seconds()
        gate = (kind, output) in self.gates
        if kind == "trigger":
            return 0.5 * step_s if self.gate_mode or gate else self.trigger_s
        spacing_s = STEPS_PER_BEAT / self.clock_ppqn * step_s
        if kind == "clock":
            return 0.5 * spacing_s if gate else min(self.trigger_s, 0.5 * spacing_s)
        return 0.5 * step_s if gate else self.trigger_s

    def advance(self, t_until: float, clock: Clock,
                before_commit: Callable[[int], None] | None = None) -> list[OutputEvent]:
        """Every event with time < t_until not yet returned, sorted by (time, order)."""
        horizon = clock.position(t_until)
        if clock.running:
            while self.next_step - 0.5 <= horizon:
                if before_commit is not None:
                    before_commit(self.next_step)
                self._commit(self.next_step)
                self.next_step += 1
        # an external clock holds what sits on or after its next pulse until that pulse comes
        # (it then plays at the pulse's time): lookahead never guesses where an edge will fall
        hold = clock.hold - HOLD_EPS
        out: list[OutputEvent] = []
        while True:
            rise_t = math.inf
            if self._due and self._due[0].position <= horizon and self._due[0].position < hold:
                rise_t = max(clock.time_of(self._due[0].position), self._last_time)
            fall_key: tuple[EventKind, int] | None = None
            fall_t = math.inf
            for key, (when, *_rest) in self._falls.items():
                if when < fall_t:
                    fall_key, fall_t = key, when
            fall_t = max(fall_t, self._last_time)
            if min(rise_t, fall_t) >= t_until:
                break
            if fall_t <= rise_t:
                assert fall_key is not None  # fall_t is finite: some fall is pending
                kind, output = fall_key
                _when, _rise, step, voice = self._falls.pop(fall_key)
                out.append(OutputEvent(fall_t, output, kind, 0.0, step, voice))
                self._last_time = fall_t
                continue
            due = heapq.heappop(self._due)
            t = rise_t
            key = (due.kind, due.output)
            if key in self._falls and t - self._falls[key][1] < MIN_RETRIGGER:
                continue             # a double trigger (e.g. hits squeezed together by a jump)
            if key in self._falls:   # still high: end it first, never merge two triggers
                _fall, prev_rise, step, voice = self._falls.pop(key)
                end = max(self._last_time, prev_rise, t - RETRIGGER_GAP)
                out.append(OutputEvent(end, due.output, due.kind, 0.0, step, voice))
            if due.kind == "trigger":
                out.append(OutputEvent(t, due.output, "velocity",
                                       self._velocity_value(due.output, due.value),
                                       due.step, due.voice))
            out.append(OutputEvent(t, due.output, due.kind, 1.0, due.step, due.voice))
            self.sounded = max(self.sounded, due.absolute)
            self._falls[key] = (t + self._width(due.kind, clock, due.output), t, due.step, due.voice)
            self._last_time = t
        out.sort(key=lambda e: (e.time, e.order))
        return out

    def on_next_pulse(self, clock: Clock) -> list[OutputEvent]:
        """What the next external pulse will release at its own time, as `advance` will return
        it then (the velocity events, then the rises): the committed hits sitting on the pulse
        (`Clock.hold`), each on an output that is low (a retrigger, whose fall comes first, is
        left to `advance`), and the clock-out pulse on it; after a start (reset, song position,
        continue) the same of the step its first pulse plays; [] when nothing waits for a
        pulse. Nothing changes here. `time` is
        the pulse's predicted time: a back end may write these at the pulse's frame as the
        pulse arrives, `advance` still returns them once it is in."""
        hold = clock.next_pulse  # (after a start: the step its first pulse plays)
        if not math.isfinite(hold):
            return []
        t = clock.time_of(hold)
        out: list[OutputEvent] = []
        for d in sorted(self._due):
            if abs(d.position - hold) > HOLD_EPS:
                continue
            if d.kind == "trigger" and (d.kind, d.output) not in self._falls:
                out.append(OutputEvent(t, d.output, "velocity",
                                       self._velocity_value(d.output, d.value), d.step, d.voice))
                out.append(OutputEvent(t, d.output, "trigger", 1.0, d.step, d.voice))
            elif d.kind == "clock":  # (a clock pulse still high falls first: it plays too)
                out.append(OutputEvent(t, 0, "clock", 1.0, d.step, -1))
        if self._pulse_committed_by(hold) and not any(e.kind == "clock" for e in out):
            # a clock-out pulse on the very position that commits the next step (half a step
            # before it): pushed by that commit, when the pulse arrives; it plays then too
            out.append(OutputEvent(t, 0, "clock", 1.0, self.next_step % STEPS, -1))
        out.sort(key=lambda e: e.order)  # (one time: velocities, then rises, as `advance`)
        return out

    def _hits(self, pattern: Pattern, row: int) -> list[tuple[int, float, int, float]]:
        """(output, velocity, voice, offset in steps) of `pattern`'s `row` as `_commit` pushes
        them: the loudest voice of each output, in output order."""
        best: dict[int, tuple[float, int]] = {}
        for voice in range(NUM_VOICES):
            if not pattern.hits[row, voice]:
                continue
            output = self.voice_map[voice]
            if not 1 <= output <= self.outputs:
                continue
            velocity = float(pattern.velocities[row, voice])
            if output not in best or velocity > best[output][0]:
                best[output] = (velocity, voice)
        shift = 1.0 - self.quantize
        return [(output, velocity, voice, float(pattern.offsets[row, voice]) * shift)
                for output, (velocity, voice) in sorted(best.items())]

    def on_start_pulse(self) -> list[OutputEvent] | None:
        """What the first pulse after a Start taken now would release at its own time (a
        guess the back end writes should the Start come before the engine has taken it): step 0
        of the pattern playing, as `on_next_pulse` gives it (velocity events, then rises; no
        clock-out pulse: the first goes with the Start the back end sends); a micro-timed hit
        (off the pulse) or one on an output still high is left to `advance`. None when the
        Start would change what step 0 plays: a pattern waits in the buffer (taken at step 0's
        commit). A Start rebases the player (`rebase`: step 0 next, nothing due) and ends a fill
        whose gate is low; neither changes the pattern, so step 0's hits are known now. `time`
        is 0.0 (the pulse's time is not known)."""
        if self.buffer.pending:
            return None
        out: list[OutputEvent] = []
        for output, velocity, voice, offset in self._hits(self.pattern, 0):
            if abs(offset) > HOLD_EPS or ("trigger", output) in self._falls:
                continue
            out.append(OutputEvent(0.0, output, "velocity",
                                   self._velocity_value(output, velocity), 0, voice))
            out.append(OutputEvent(0.0, output, "trigger", 1.0, 0, voice))
        out.sort(key=lambda e: e.order)
        return out

    def _pulse_committed_by(self, position: float) -> bool:
        """Whether the commit of `next_step`, which `position` reaches, pushes a clock-out pulse
        at `position` itself (`_commit`'s grid: multiples of the spacing from the floor)."""
        step = self.next_step
        if not step - 0.5 <= position + HOLD_EPS < step + 0.5:
            return False
        spacing = STEPS_PER_BEAT / self.clock_ppqn
        j = round(position / spacing)
        return (abs(position - j * spacing) <= HOLD_EPS
                and j >= math.ceil(max(step - 0.5, self._floor_position) / spacing - 1e-9)
                and j * spacing < step + 0.5 - 1e-9)

    def trigger_seconds(self, clock: Clock, output: int) -> float:
        """How long a trigger rising now on `output` stays high, unless something ends it
        sooner (a retrigger, a stop): `outputs.trigger_ms`, or half a step in gate mode."""
        return self._width("trigger", clock, output)

    @property
    def high(self) -> set[tuple[str, int]]:
        """(kind, output) pairs now high (risen, fall not yet returned)."""
        return set(self._falls)
