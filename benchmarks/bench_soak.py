"""Soak: hours of musical time through the simulated CV layer, faster than real time.

The engine (the shipped model, synchronous generation) is driven through the sim board's jack
layer (`sim.direct.DirectBoard`: Schmitt-triggered gate/clock/reset, pitch sampled after the gate) in
virtual time, segment after segment with random scenarios:

- internal clock at a random tempo, or an external clock at a random PPQN (with timing jitter);
- now and then a 1 kHz clock burst, a clock that stops mid-bar for longer than the stop timeout,
  a reset at a random moment, a transport stop/continue;
- gates with random pitches (including +-12 V), contact-bounce noise bursts around the Schmitt
  thresholds, open-jack noise on pitch;
- random control changes (every panel control, swing, quantize, trigger width) and button presses.

Checked throughout (an AssertionError names the time and what): no exception, every trigger
falls within its width (no stuck output), every output voltage in range, the loop position
advances exactly as the clock says (internal: tempo x time; external: one pulse = 4/PPQN steps
once locked) with the error reported, and memory flat (RSS per simulated hour).

    python benchmarks/bench_soak.py --hours 8            # the full soak (report in README.md)
    python benchmarks/bench_soak.py --minutes 10 --seed 3
"""

from __future__ import annotations

import argparse
import gc
import heapq
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grooverack.config import CONTROLS, Settings
from grooverack.engine.engine import Engine
from grooverack.model.runner import ModelRunner
from grooverack.sim.direct import DirectBoard
from grooverack.sim.patch import OutputRecorder
from grooverack.storage import write_marked_section

README = Path(__file__).resolve().parent / "README.md"

GATE_VOLTS = 5.0


def rss_mb() -> float:
    """Resident set size now (not the peak), from /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StuckOutput(AssertionError):
    pass


class CheckingRecorder(OutputRecorder):
    """Checks each write as it comes and keeps only counters (memory stays flat)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.high_since: dict[int, float] = {}
        self.high_limit: dict[int, float] = {}
        self.triggers = 0
        self.retriggers = 0
        self.writes = 0
        self.max_width = 0.0
        self.max_volts = 0.0
        self.last_time = -math.inf

    def write(self, time: float, output: int, kind: str, volts: float,
              voice: int | None = None) -> None:
        self.writes += 1
        if not math.isfinite(volts) or not -0.001 <= volts <= 10.001:
            raise StuckOutput(f"t={time:.4f}: output {output} {kind} written {volts!r} V")
        self.max_volts = max(self.max_volts, volts)
        if kind != "trigger":
            return
        if volts > 0.5:
            if output in self.high_since:
                # a rise while high (two steps caught up at once by a very fast clock): the jack
                # stays high, one trigger; it must still fall within a width of this rise
                self.retriggers += 1
            self.high_since[output] = time
            self.high_limit[output] = self.limit()  # the mode at the rise decides the width
            self.triggers += 1
        else:
            rose = self.high_since.pop(output, None)
            if rose is None:
                return
            limit = self.high_limit.pop(output)
            width = time - rose
            self.max_width = max(self.max_width, width)
            if width > limit + 1e-6:
                raise StuckOutput(f"t={time:.4f}: output {output} stayed high {width * 1000:.2f} ms "
                                  f"(trigger width {limit * 1000:.2f} ms)")

    def limit(self) -> float:
        if self.settings["outputs.gate_mode"]:
            return 60.0 / 20.0 / 4.0  # a step at the slowest tempo
        return 10.0 / 1000.0          # the widest trigger the schema allows

    def check_idle(self, now: float) -> None:
        """Nothing may be high longer than the widest trigger."""
        for output, since in self.high_since.items():
            if now - since > self.high_limit[output] + 0.05:
                raise StuckOutput(f"t={now:.4f}: output {output} high since {since:.4f}")


@dataclass
class SoakReport:
    musical_s: float = 0.0
    wall_s: float = 0.0
    segments: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    triggers: int = 0
    retriggers: int = 0
    writes: int = 0
    onsets: int = 0
    controls: int = 0
    presses: int = 0
    resets: int = 0
    max_width_ms: float = 0.0
    max_internal_drift_steps: float = 0.0
    max_external_error_steps: float = 0.0
    rss_mb: list[float] = field(default_factory=list)  # after each simulated hour (or chunk)
    patterns: int = 0
    errors: int = 0
    pulses_sent: int = 0

    def summary(self) -> str:
        growth = (self.rss_mb[-1] - self.rss_mb[0]) if len(self.rss_mb) > 1 else 0.0
        return (f"{self.musical_s / 3600:.2f} h musical time in {self.wall_s:.0f} s wall "
                f"({self.musical_s / max(self.wall_s, 1e-9):.0f}x real time); "
                f"{self.segments} segments {self.kinds}; {self.triggers} triggers "
                f"({self.retriggers} rising while high), "
                f"{self.onsets} onsets, {self.controls} control changes, {self.presses} presses, "
                f"{self.resets} resets, {self.patterns} patterns; widest trigger "
                f"{self.max_width_ms:.3f} ms; drift internal {self.max_internal_drift_steps:.2e} "
                f"steps, external {self.max_external_error_steps:.3f} steps, "
                f"{self.pulses_sent} clock pulses counted exactly; RSS "
                f"{', '.join(f'{m:.1f}' for m in self.rss_mb)} MB (growth {growth:+.1f} MB); "
                f"generator errors {self.errors}")


class Soak:
    """`board`: "direct" (the jack layer straight into the engine) or a sim board name (the
    emulated chips, drivers, panel scanning and calibration in between: slower)."""

    def __init__(self, seed: int = 0, runner: Any = None, board: str = "direct") -> None:
        self.rng = random.Random(seed)
        self.settings = Settings({"generation.seed": seed, "clock.source": "auto",
                                  "clock.stop_timeout": 1.0})
        self.engine = Engine(self.settings, runner or ModelRunner(), threaded=False)
        self.recorder = CheckingRecorder(self.engine.settings)
        if board == "direct":
            self.board = DirectBoard(self.engine, self.engine.settings, self.recorder)
        else:
            from grooverack.sim.session import make_board

            self.board = make_board(self.engine.settings, self.recorder, self.engine, board)
        self.t = 0.0
        self.report = SoakReport()
        self.board.start(0.0)

    # --- the jack layer -------------------------------------------------------------------

    def apply(self, t: float, jack: str, value: float) -> None:
        self.board.advance(t)
        self.board.apply(t, jack, value)

    def pulse(self, t: float, jack: str, width: float = 0.002) -> None:
        self.apply(t, jack, GATE_VOLTS)
        self.apply(t + width, jack, 0.0)

    def set_control(self, t: float, name: str, value: Any) -> None:
        self.board.advance(t)
        self.engine.set_control(name, value)
        self.report.controls += 1

    # --- one segment ------------------------------------------------------------------------

    def segment(self) -> None:
        rng, eng = self.rng, self.engine
        kind = rng.choices(["internal", "external", "fast_clock", "clock_stops", "transport"],
                           [5, 5, 1, 1, 1])[0]
        self.report.kinds[kind] = self.report.kinds.get(kind, 0) + 1
        self.report.segments += 1
        bars = rng.randint(2, 16)
        t0 = self.t
        events: list[tuple[float, int, str, Any]] = []  # (time, order, what, value)
        external = kind in ("external", "fast_clock", "clock_stops")
        bpm = round(rng.uniform(60, 180), 3)
        if not external:
            self.set_control(t0, "tempo", bpm)
        step_s = 15.0 / bpm
        duration = bars * 16 * step_s
        if external:
            ppqn = rng.choice([1, 2, 4, 8, 24, 48])
            self.set_control(t0, "clock.ppqn", ppqn)
            pulse_s = step_s * 4 / ppqn
            # a sequencer's clock wobbles by up to 2 ms, never by more than a tenth of a pulse
            jitter = min(rng.choice([0.0, 0.0005, 0.002]), 0.1 * pulse_s)
            n = int(duration / pulse_s)
            stop_at = rng.uniform(0.3, 0.7) * duration if kind == "clock_stops" else math.inf
            for k in range(n):
                tk = t0 + k * pulse_s + (rng.uniform(-jitter, jitter) if k else 0.0)
                if tk - t0 > stop_at and tk - t0 < stop_at + 2.5:  # silent > stop_timeout
                    continue
                events.append((tk, 0, "clock", None))
            if kind == "fast_clock":  # a 1 kHz burst for half a second
                start = t0 + rng.uniform(0.2, 0.6) * duration
                events += [(start + i * 0.001, 0, "clock_fast", None) for i in range(500)]
        # gates: a 16th grid, some notes off the grid, pitches anywhere (+-12 V)
        for s in range(bars * 16):
            if rng.random() < 0.35:
                tg = t0 + s * step_s + rng.uniform(-0.2, 0.2) * step_s
                pitch = rng.choice([rng.uniform(-2, 5), rng.uniform(-12, 12), 12.0, -12.0])
                events.append((max(tg, t0), 1, "gate", pitch))
        for _ in range(rng.randint(0, 3)):  # contact-bounce / open-jack noise bursts
            tb = t0 + rng.uniform(0, duration)
            for i in range(rng.randint(5, 40)):
                events.append((tb + i * 0.00013, 2, "noise", rng.uniform(-1.0, 3.0)))
        for _ in range(rng.randint(0, 6)):
            events.append((t0 + rng.uniform(0, duration), 3, "control", None))
        if rng.random() < 0.3:
            events.append((t0 + rng.uniform(0, duration), 4, "press", None))
        if rng.random() < 0.3:
            events.append((t0 + rng.uniform(0, duration), 5, "reset", None))
        if kind == "transport":
            ts = t0 + rng.uniform(0.2, 0.5) * duration
            events.append((ts, 6, "stop", None))
            events.append((ts + rng.uniform(0.1, 2.0), 6, "continue", None))
        # one queue in time order: a pulse's fall is queued when it rises, so every jack change
        # reaches the board in time order (the panel reads edges as they come, like a Pi)
        queue = [(t, order, i, what, value) for i, (t, order, what, value) in enumerate(events)]
        heapq.heapify(queue)
        seq = len(queue)

        def fall_later(t: float, jack: str) -> None:
            nonlocal seq
            heapq.heappush(queue, (t, -1, seq, "fall", jack))
            seq += 1

        # drift references: internal tempo x time from the first moment after the tempo change;
        # external: the position at each pulse once locked
        u_ref, t_ref = eng.clock.linear_position(t0), t0
        pulses_seen = pulses_sent = 0
        pulses_counted0 = eng.clock.pulses
        direct = isinstance(self.board, DirectBoard)
        ext_ref: tuple[int, float] | None = None
        clean = kind in ("internal", "external")
        while queue:
            tk, _, _, what, value = heapq.heappop(queue)
            if what == "fall":
                self.apply(tk, value, 0.0)
            elif what in ("clock", "clock_fast"):
                self.apply(tk, "clock", GATE_VOLTS)
                fall_later(tk + (0.0004 if what == "clock_fast" else 0.002), "clock")
                pulses_seen += what == "clock"
                pulses_sent += what == "clock"
                # the panel reads edges at its scan: only the direct path has them at once
                if clean and kind == "external" and what == "clock" and direct:
                    if pulses_seen == 48:  # locked by now: the reference
                        ext_ref = (pulses_seen, eng.clock.linear_position(tk))
                    elif pulses_seen > 48 and ext_ref is not None:
                        self._check_external(tk, pulse_s, jitter, ext_ref, pulses_seen)
            elif what == "gate":
                self.apply(tk, "pitch", value)
                self.apply(tk, "gate", GATE_VOLTS)
                fall_later(tk + rng.uniform(0.001, 0.5 * step_s), "gate")
                self.report.onsets += 1
            elif what == "noise":
                jack = rng.choice(["gate", "pitch", "reset"] if not external else ["gate", "pitch"])
                self.apply(tk, jack, value)
                if jack == "reset":
                    u_ref = None  # a noise edge on reset is a reset
            elif what == "control":
                name = rng.choice([*CONTROLS, "quantize", "swing", "outputs.trigger_ms",
                                   "outputs.gate_mode", "record"])
                if name == "tempo":
                    if not external and clean:
                        continue  # the drift reference holds one tempo per segment
                    value = round(rng.uniform(40, 240), 3)
                elif name == "swing":
                    value = rng.uniform(50, 75)
                elif name == "outputs.trigger_ms":
                    value = rng.uniform(1, 10)
                elif name == "outputs.gate_mode":
                    value = rng.random() < 0.1
                elif name == "record":
                    value = rng.choice(["record", "overdub", "off"])
                else:
                    value = rng.random()
                if name == "swing" and clean:
                    continue  # swing re-maps the linear position: not in a drift-measuring segment
                self.set_control(tk, name, value)
            elif what == "press":
                self.board.advance(tk)
                eng.press(rng.choice(["record", "clear", "randomize_a", "randomize_b"]))
                self.report.presses += 1
            elif what == "reset":
                self.apply(tk, "reset", GATE_VOLTS)
                fall_later(tk + 0.002, "reset")
                self.report.resets += 1
                u_ref, t_ref = None, None  # a reset re-arms step 0: a new reference below
                pulses_seen, ext_ref = 0, None
            elif what == "stop":
                self.board.advance(tk)
                eng.stop(tk)
            elif what == "continue":
                self.board.advance(tk)
                eng.continue_(tk)
            self.recorder.check_idle(tk)
        t_end = t0 + duration
        self.board.advance(t_end)
        if kind == "internal" and u_ref is not None:
            expected = u_ref + (t_end - t_ref) * bpm / 15.0
            drift = abs(eng.clock.linear_position(t_end) - expected)
            self.report.max_internal_drift_steps = max(self.report.max_internal_drift_steps, drift)
            if drift > 1e-6:
                raise AssertionError(f"t={t_end:.3f}: internal clock drifted {drift:.3g} steps "
                                     f"over {t_end - t_ref:.1f} s at {bpm:.2f} BPM")
        if clean and kind == "external":  # every pulse arrived: none lost, none doubled
            counted = eng.clock.pulses - pulses_counted0
            self.report.pulses_sent += pulses_sent
            if counted != pulses_sent:
                raise AssertionError(f"t={t_end:.3f}: {pulses_sent} clock pulses sent, the "
                                     f"clock counted {counted}")
        if external and not clean:
            # after a fast burst or a stop the module is back on its internal clock; make the
            # next segment start from a known state
            self.set_control(t_end, "clock.ppqn", 4)
        # after an external clock, the stop timeout passes before the next segment: `auto` is
        # back on the internal clock when it starts
        self.t = t_end + rng.uniform(0.0, 0.5) + (1.5 if external else 0.0)
        self.board.advance(self.t)
        self.recorder.check_idle(self.t)

    def _check_external(self, t: float, pulse_s: float, jitter: float, ref: tuple[int, float],
                        pulses: int) -> None:
        """Once locked, every pulse moves the position by exactly 4/PPQN steps: no drift."""
        clock = self.engine.clock
        spp = clock.steps_per_pulse
        u = clock.linear_position(t)
        expected = ref[1] + (pulses - ref[0]) * spp
        error = abs(u - expected)
        # a pulse early or late by the jitter moves the position by that much time's worth;
        # drift would grow past a pulse, a pulse's own wobble does not
        allowed = spp + 2 * jitter / pulse_s * spp
        # the tempo estimate is only as steady as the clock it follows
        rate_error = abs(clock.rate * pulse_s - spp) / spp if jitter == 0.0 else 0.0
        self.report.max_external_error_steps = max(self.report.max_external_error_steps, error)
        if error > allowed or rate_error > 0.01:
            raise AssertionError(f"t={t:.3f}: external clock drifted: position {u:.4f} steps, "
                                 f"expected {expected:.4f} after {pulses - ref[0]} pulses of "
                                 f"{spp:g} steps; rate error {rate_error:.1%}")

    def run(self, musical_s: float, rss_every_s: float = 3600.0,
            progress: bool = False) -> SoakReport:
        wall0 = time.perf_counter()
        next_rss = self.t + min(rss_every_s, musical_s / 4)
        gc.collect()
        self.report.rss_mb.append(rss_mb())
        while self.t < musical_s:
            self.segment()
            if self.t >= next_rss:
                gc.collect()
                self.report.rss_mb.append(rss_mb())
                next_rss += min(rss_every_s, musical_s / 4)
                if progress:
                    print(f"  {self.t / 3600:.2f} h musical, {time.perf_counter() - wall0:.0f} s "
                          f"wall, RSS {self.report.rss_mb[-1]:.1f} MB, {self.recorder.triggers} "
                          f"triggers", file=sys.stderr, flush=True)
        self.board.finish(self.t)
        if self.recorder.high_since:
            raise StuckOutput(f"outputs still high at the end: {self.recorder.high_since}")
        r = self.report
        r.musical_s = self.t
        r.wall_s = time.perf_counter() - wall0
        r.triggers, r.writes = self.recorder.triggers, self.recorder.writes
        r.retriggers = self.recorder.retriggers
        r.max_width_ms = self.recorder.max_width * 1000
        r.patterns = int(self.engine.generator.generated)
        r.errors = int(getattr(self.engine.generator, "errors", 0))
        self.engine.close()
        return r


def readme_text(report: SoakReport, seed: int) -> str:
    import os
    import platform

    growth = report.rss_mb[-1] - report.rss_mb[1] if len(report.rss_mb) > 1 else 0.0
    return f"""## Soak (`bench_soak.py`, issue 6)

`python benchmarks/bench_soak.py --hours {report.musical_s / 3600:.0f} --seed {seed} --write-readme`
on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {platform.processor() or platform.machine()},
{os.cpu_count()} cores shared with the other engineers and a training run, Python
{platform.python_version()}. The engine with the shipped model (synchronous generation) behind the
sim board's jack layer (`sim.direct.DirectBoard`), in virtual time. The CI variant
(`tests/sim/test_soak.py`) runs 2 x 30 min of musical time; the full run is `pytest -m slow
tests/sim/test_soak.py` or this script.

| measure | result |
|---|---|
| musical time | {report.musical_s / 3600:.2f} h in {report.wall_s:.0f} s wall ({report.musical_s / max(report.wall_s, 1e-9):.0f}x real time) |
| segments | {report.segments}: {', '.join(f'{k} {v}' for k, v in sorted(report.kinds.items()))} |
| inputs | {report.onsets} gates (pitch -12..+12 V, noise bursts), {report.controls} control changes, {report.presses} presses, {report.resets} resets |
| outputs | {report.triggers} triggers, {report.writes} writes, {report.patterns} patterns generated |
| exceptions | none (any would end the run) |
| stuck outputs | none: every fall within its width (widest {report.max_width_ms:.1f} ms, gate mode included), nothing high at the end |
| drift, internal clock | {report.max_internal_drift_steps:.1e} steps (position vs tempo x time per segment) |
| drift, external clock | {report.max_external_error_steps:.3f} steps max deviation from pulses x 4/PPQN after lock (bounded by one pulse + jitter; does not grow); {report.pulses_sent} clock pulses sent in clean external segments, every one counted by the clock |
| memory (RSS per simulated hour) | {', '.join(f'{m:.1f}' for m in report.rss_mb)} MB: {growth:+.1f} MB after the first hour |
| generator errors | {report.errors} |

Segments: internal clock at 60-180 BPM; external clock at 1-48 PPQN with 0-2 ms jitter; a 1 kHz
clock burst; a clock stopping mid-bar for longer than the stop timeout; transport stop/continue.
Each with random gates, contact-bounce and open-jack noise, control changes (every panel control,
swing, quantize, trigger width, gate mode, record mode) and button presses.

The same scenarios run through the emulated chips and the panel code with `--board sim`
(`tests/sim/test_soak.py` runs 5 min of it, ~50x real time): no exception, no stuck output, every
clock pulse counted; its memory grows (~40 MB per musical hour) because the emulators keep every
bus transfer and GPIO edge in `history`/`edges` lists (emulator-only: the Pi has no emulators;
reported to the hardware owner)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--minutes", type=float, help="instead of --hours")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--board", default="direct",
                        help="direct (default) or a sim board (sim, sim-offnominal): emulated chips")
    parser.add_argument("--write-readme", action="store_true",
                        help="put the figures in benchmarks/README.md (section bench_soak)")
    args = parser.parse_args(argv)
    musical = args.minutes * 60 if args.minutes else args.hours * 3600
    soak = Soak(args.seed, board=args.board)
    report = soak.run(musical, progress=True)
    print(report.summary())
    if args.write_readme:
        print(f"wrote {write_marked_section(README, 'bench_soak', readme_text(report, args.seed))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
