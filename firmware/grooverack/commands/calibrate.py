"""`grooverack calibrate`: the guided calibration of a board's inputs and outputs.

1. Inputs: pitch inputs at two points ("patch +1.000 V into PITCH, press Enter", then +3.000 V),
   every other input at 0 V with nothing patched. A reading far from the board's nominal scaling is
   rejected with the reason, and the step repeats.
2. Outputs: each output drives a few voltages, measured by a calibrated input used as the meter
   ("patch OUT1 into PITCH") or by a meter whose readings are typed in (`--typed`); a least-squares
   gain/offset, or with `--table` a per-volt table.
3. Verification: every channel again with the new calibration; the residual error is printed.
4. The file is saved atomically (the previous one kept as `.bak`).

The procedure talks to the hardware through a rig the board's back end provides
(ARCHITECTURE.md "Calibration seams"), so it is the same on a Pi board, on the ES-9 (loopback
from an output to an input) and on the sim board, whose emulated front end is deliberately off
nominal.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO

from grooverack.boards.board import load_board
from grooverack.calibration import (
    PITCH_POINTS,
    Calibration,
    ChannelSpec,
    default_path,
    fit_output,
    two_point,
    zero_offset,
)
from grooverack.commands.backends import backend_for, kinds_with
from grooverack.commands.common import add_common, check_output_file
from grooverack.config import load_settings
from grooverack.errors import CalibrationError, PathError
from grooverack.state import state_dir

SAMPLES = 32              # codes averaged per reading
VERIFY_PITCH = 2.0        # volts patched into pitch inputs for the verification pass
MAX_NOISE_VOLTS = 0.05    # a reading spread wider than this is refused (loose cable, noise)
TOLERANCE_PITCH = 0.005   # residual allowed after calibration: 5 mV = 1/17 semitone
TOLERANCE_CV = 0.02
MAX_TRIES = 5


class Rig(Protocol):
    """The board's converters, as the calibration procedure needs them."""

    def read_code(self, channel: str, n: int) -> list[float]: ...
    def write_code(self, channel: str, code: float) -> None: ...
    def patch(self, channel: str, volts: float | None) -> None: ...
    def loopback(self, output: str, input_: str | None) -> None: ...
    def close(self) -> None: ...


def open_rig(board: Any, settings: Any) -> Rig:
    """The rig of the board's back end (`commands.backends` registry)."""
    entry = backend_for(board)
    if entry.rig is None:
        raise CalibrationError(f"board {board.name!r} (kind {board.kind!r}) has no converters to "
                               f"calibrate; kinds with converters: {', '.join(kinds_with('rig'))}")
    rig: Rig = entry.load("rig")(board, settings)
    return rig


class Aborted(Exception):
    pass


class Session:
    """One calibration run: prompts on `out`, answers from `inp`, hardware through `rig`."""

    def __init__(self, cal: Calibration, rig: Rig, *, inp: TextIO = sys.stdin,
                 out: TextIO = sys.stdout, samples: int = SAMPLES, meter: str | None = None,
                 typed: bool = False, table: bool = False) -> None:
        self.cal, self.rig, self.inp, self.out = cal, rig, inp, out
        self.samples, self.typed, self.table = samples, typed, table
        self.meter = meter if meter is not None else self._default_meter()
        if not typed and self.meter is not None and self.meter not in cal.inputs:
            raise CalibrationError(f"--meter {self.meter!r}: board {cal.board!r} has no such "
                                   f"input; its inputs: {', '.join(cal.inputs)}")
        self.residuals: list[tuple[str, float, float, float, float]] = []

    def _default_meter(self) -> str | None:
        pitch = [n for n, s in self.cal.inputs.items() if s.role == "pitch"]
        return pitch[0] if pitch else (next(iter(self.cal.inputs), None))

    # --- talking to the person

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask(self, prompt: str) -> str:
        print(prompt, end=" ", file=self.out, flush=True)
        line = self.inp.readline()
        if not line:
            raise Aborted("no more input")
        if not self.inp.isatty():  # a piped answer is not echoed: end the prompt's line
            print(file=self.out)
        answer = line.strip()
        if answer.lower() in ("q", "quit"):
            raise Aborted("quit")
        return answer

    def retry(self, what: str, step: Callable[[], Any]) -> Any:
        """Run `step` until it gives a plausible result; a refused reading says why."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                return step()
            except CalibrationError as exc:
                self.say(f"  REJECTED: {exc}")
                if attempt == MAX_TRIES:
                    raise Aborted(f"{what}: {MAX_TRIES} readings rejected") from None
                self.say("  Fix the patch and try again.")
        return None

    # --- measuring

    def read(self, channel: str) -> float:
        """The mean code of `samples` readings; a noisy reading is refused."""
        codes = self.rig.read_code(channel, self.samples)
        if not codes or any(not math.isfinite(c) for c in codes):
            raise CalibrationError(f"{channel}: the converter returned no usable codes ({codes[:4]!r})")
        spec = self.cal.inputs[channel]
        spread = (max(codes) - min(codes)) * abs(spec.gain)
        if spread > MAX_NOISE_VOLTS:
            raise CalibrationError(
                f"{channel}: the reading moves by {spread * 1000:.0f} mV over {len(codes)} samples "
                f"(more than {MAX_NOISE_VOLTS * 1000:.0f} mV): a loose cable or a noisy source?")
        return statistics.fmean(codes)

    def _read_volts(self, channel: str) -> float:
        return self.cal.to_volts(channel, self.read(channel))

    def meter_volts(self, output: str) -> float:
        if self.typed:
            while True:
                text = self.ask(f"  Meter reading at {output.upper()} in volts (e.g. 2.503):")
                try:
                    value = float(text)
                except ValueError:
                    self.say(f"  {text!r} is not a number of volts")
                    continue
                if math.isfinite(value) and abs(value) <= 15:
                    return value
                self.say(f"  {value!r} V is not a Eurorack voltage (within +-15 V)")
        assert self.meter is not None
        return self.cal.to_volts(self.meter, self.read(self.meter))

    def output_points(self, spec: ChannelSpec) -> list[float]:
        """Whole volts the output reaches that the meter can read (at most 11)."""
        lo, hi = spec.volts_range
        if not self.typed and self.meter is not None:
            mlo, mhi = self.cal.inputs[self.meter].volts_range
            lo, hi = max(lo, mlo), min(hi, mhi)
        lo, hi = lo + 0.1, hi - 0.1  # keep clear of the rails and clipping
        points = [float(v) for v in range(math.ceil(lo), math.floor(hi) + 1)]
        if len(points) < 3:
            points = [lo + (hi - lo) * f for f in (0.2, 0.5, 0.8)] if hi > lo else []
        while len(points) > 11:
            points = points[::2]
        return points

    # --- the procedure

    def calibrate_inputs(self, names: list[str]) -> None:
        for name in names:
            spec = self.cal.inputs[name]
            jack = name.upper()
            if spec.role == "pitch":
                def step(spec: ChannelSpec = spec, jack: str = jack) -> None:
                    codes = []
                    for volts in PITCH_POINTS:
                        self.ask(f"Patch {volts:+.3f} V into {jack}, press Enter")
                        self.rig.patch(spec.name, volts)
                        codes.append(self.read(spec.name))
                    result = two_point(spec, codes[0], codes[1])
                    self.cal.set_input(spec.name, result)
                    self.say(f"  {jack}: gain {result.gain:.6g} V/code "
                             f"({result.gain / spec.gain * 100:.2f} % of nominal), "
                             f"offset {result.offset:+.4f} V")
            else:
                def step(spec: ChannelSpec = spec, jack: str = jack) -> None:
                    self.ask(f"Unpatch {jack} (nothing in the jack), press Enter")
                    self.rig.patch(spec.name, None)
                    result = zero_offset(spec, self.read(spec.name))
                    self.cal.set_input(spec.name, result)
                    self.say(f"  {jack}: offset {result.offset:+.4f} V "
                             f"({result.offset - spec.offset:+.4f} V from nominal)")
            self.retry(name, step)

    def calibrate_outputs(self, names: list[str]) -> None:
        for name in names:
            spec = self.cal.outputs[name]
            points = self.output_points(spec)
            if len(points) < 2:
                self.say(f"{name.upper()}: skipped, the meter {self.meter!r} cannot read its range")
                continue

            def step(spec: ChannelSpec = spec, points: list[float] = points) -> None:
                self._connect(spec.name)
                measured = []
                for volts in points:
                    code = spec.nominal_code(volts)
                    code = round(code) if spec.integer else code
                    self.rig.write_code(spec.name, code)
                    measured.append((code, self.meter_volts(spec.name)))
                self.rig.write_code(spec.name, self._zero_code(spec))
                result = fit_output(spec, measured, table=self.table)
                self.cal.set_output(spec.name, result)
                self.say(f"  {spec.name.upper()}: gain {result.gain:.6g} V/code "
                         f"({result.gain / spec.gain * 100:.2f} % of nominal), offset "
                         f"{result.offset:+.4f} V" + (f", table of {len(result.table)} points"
                                                      if result.table else ""))
            self.retry(name, step)
        if names and not self.typed:
            self.rig.loopback(names[-1], None)

    def _connect(self, output: str) -> None:
        jack = output.upper()
        if self.typed:
            self.ask(f"Connect the meter to {jack}, press Enter")
        else:
            assert self.meter is not None
            self.ask(f"Patch {jack} into {self.meter.upper()}, press Enter")
            self.rig.loopback(output, self.meter)

    def _zero_code(self, spec: ChannelSpec) -> float:
        return self.cal.to_code(spec.name, 0.0)

    def verify(self, inputs: list[str], outputs: list[str]) -> bool:
        self.say("")
        self.say("Verification with the new calibration:")
        ok = True
        for name in inputs:
            spec = self.cal.inputs[name]
            if spec.role == "pitch":
                self.ask(f"Patch {VERIFY_PITCH:+.3f} V into {name.upper()}, press Enter")
                self.rig.patch(name, VERIFY_PITCH)
                target, tol = VERIFY_PITCH, TOLERANCE_PITCH
            else:
                self.ask(f"Unpatch {name.upper()}, press Enter")
                self.rig.patch(name, None)
                target, tol = 0.0, TOLERANCE_CV
            ok &= self._residual(name, target, partial(self._read_volts, name), tol)
        for name in outputs:
            spec = self.cal.outputs[name]
            points = self.output_points(spec)
            if len(points) < 2:
                continue
            self._connect(name)
            for target in (points[1], points[-2]) if len(points) > 3 else (points[0], points[-1]):
                self.rig.write_code(name, self.cal.to_code(name, target))
                ok &= self._residual(name, target, partial(self.meter_volts, name),
                                     TOLERANCE_PITCH if not self.typed else TOLERANCE_CV)
            self.rig.write_code(name, self._zero_code(spec))
        return ok

    def _residual(self, name: str, target: float, measure: Callable[[], float], tol: float) -> bool:
        try:
            volts = measure()
        except CalibrationError as exc:
            self.say(f"  {name.upper():<10} {exc}")
            return False
        error = volts - target
        self.residuals.append((name, target, volts, error, tol))
        good = abs(error) <= tol
        self.say(f"  {name.upper():<10} target {target:+.3f} V  measured {volts:+.4f} V  "
                 f"error {error * 1000:+.1f} mV  {'ok' if good else 'OUT OF TOLERANCE'}")
        return good


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--board", help="board to calibrate (default: config key 'board')")
    parser.add_argument("--file", metavar="PATH",
                        help="calibration file (default: <state dir>/calibration/<board>.json)")
    parser.add_argument("--only", choices=("inputs", "outputs", "verify"),
                        help="one part of the procedure (the others keep their calibration)")
    parser.add_argument("--channel", action="append", default=[], metavar="NAME",
                        help="calibrate only this channel (repeatable)")
    parser.add_argument("--meter", metavar="INPUT",
                        help="input used as the meter for outputs (default: the pitch input)")
    parser.add_argument("--typed", action="store_true",
                        help="type the readings of an external meter instead")
    parser.add_argument("--table", action="store_true",
                        help="store a per-volt table for outputs instead of gain/offset")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="codes averaged per reading")
    parser.add_argument("--yes", action="store_true", help="save without asking")
    parser.add_argument("--show", action="store_true",
                        help="print the calibration in use and exit (touches no hardware)")
    parser.add_argument("--nominal", action="store_true",
                        help="write the board's nominal scaling to the file (a reset; the old "
                             "file is kept as .bak) and exit")


def run(args: argparse.Namespace) -> int:

    settings = load_settings(args.config, args.overrides)
    board = load_board(args.board or settings["board"])
    path = Path(args.file) if args.file else default_path(state_dir(settings), board.name)
    try:
        cal = Calibration.load(path, board)
    except CalibrationError as exc:
        print(f"grooverack calibrate: {exc}", file=sys.stderr)
        return 2
    if not cal.inputs and not cal.outputs:
        print(f"grooverack calibrate: board {board.name!r} ({board.path}) has no calibratable "
              f"channels", file=sys.stderr)
        return 2
    if args.show:
        print(describe(cal))
        return 0
    # the file is checked before any work: a guided procedure never ends in a file it cannot write
    check_output_file(path, "--file" if args.file else "calibration file")
    if args.nominal:
        cal = Calibration.nominal(board)
        cal.save(path)
        print(f"Saved the nominal scaling of board {board.name!r} to {path}")
        return 0
    for name in args.channel:
        if name not in cal.inputs and name not in cal.outputs:
            print(f"grooverack calibrate: --channel {name!r}: board {board.name!r} has no such "
                  f"channel; its channels: {', '.join([*cal.inputs, *cal.outputs])}",
                  file=sys.stderr)
            return 2
    inputs = [n for n in cal.inputs if not args.channel or n in args.channel]
    outputs = [n for n in cal.outputs if not args.channel or n in args.channel]
    try:
        rig = open_rig(board, settings)
    except (CalibrationError, ImportError, AttributeError, OSError) as exc:
        print(f"grooverack calibrate: cannot open board {board.name!r}: {exc}", file=sys.stderr)
        return 2
    try:
        session = Session(cal, rig, samples=max(1, args.samples), meter=args.meter,
                          typed=args.typed, table=args.table)
        print(f"Calibrating board {board.name!r}; file {path}"
              f" (starting from {cal.source}). Type q to quit without saving.")
        if args.only in (None, "inputs"):
            session.calibrate_inputs(inputs)
        if args.only in (None, "outputs"):
            session.calibrate_outputs(outputs)
        ok = session.verify(inputs, outputs)
        if args.only == "verify":
            return 0 if ok else 1
        print("All channels within tolerance." if ok else
              "Some channels are out of tolerance: check the patch and repeat them (--channel).")
        if not args.yes:
            answer = session.ask(f"Save to {path}? [Y/n]")
            if answer.lower() in ("n", "no"):
                print("Not saved.")
                return 1
        save_or_keep(cal, path)
        print(f"Saved {path}")
        return 0 if ok else 1
    except Aborted as exc:
        print(f"\nCalibration aborted ({exc}); nothing saved.", file=sys.stderr)
        return 1
    except CalibrationError as exc:
        print(f"grooverack calibrate: {exc}", file=sys.stderr)
        return 1
    finally:
        rig.close()


def describe(cal: Calibration) -> str:
    lines = [f"board {cal.board!r}, calibration from {cal.source}"
             + (f" ({cal.created})" if cal.created else "")]
    for name, c in cal.input_cal.items():
        s = cal.inputs[name]
        lines.append(f"  in  {name:<12} gain {c.gain:+.6g} ({c.gain / s.gain * 100:6.2f} %)  "
                     f"offset {c.offset:+.4f} V  [{c.method}]")
    for name, o in cal.output_cal.items():
        spec = cal.outputs[name]
        lines.append(f"  out {name:<12} gain {o.gain:+.6g} ({o.gain / spec.gain * 100:6.2f} %)  "
                     f"offset {o.offset:+.4f} V  [{o.method}"
                     + (f", {len(o.table)}-point table" if o.table else "") + "]")
    return "\n".join(lines)


def save_or_keep(cal: Calibration, path: Path) -> None:
    """Save the calibration; when `path` cannot be written after all (the disk filled during the
    procedure), keep it in the temporary folder and say where, so the work is not lost."""
    try:
        cal.save(path)
    except PathError as exc:
        spare = Path(tempfile.gettempdir()) / f"grooverack-calibration-{os.getpid()}.json"
        try:
            cal.save(spare)
        except PathError:
            raise PathError(f"{exc}; the calibration could not be kept anywhere") from exc
        raise PathError(f"{exc}; the calibration was kept in {spare}: copy it to {path} "
                        "(or pass it with --file)") from exc
