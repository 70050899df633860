"""Codes <-> volts per channel: the one door between chip codes and Eurorack volts.

A board (`hw/boards/*.toml`, `grooverack.boards.board`) states each channel's *nominal* front-end
scaling (volts = gain * code + offset), its code range and, for outputs, the safe voltage range.
A calibration file replaces the nominal gain/offset by measured ones (inputs: two points +1 V and
+3 V for pitch, the offset with nothing patched for the rest; outputs: gain/offset or a per-volt
table). Without a file the nominal scaling is used.

The file is a versioned record (`grooverack.storage`): written atomically, the previous good copy
kept as `NAME.bak`, a corrupt file reported by name and replaced by the good copy or the nominal
scaling. Every value is checked against the board: a calibration that moves a channel further from
nominal than real parts can (a wrong patch, a swapped cable) is refused, saying which and why.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grooverack import storage
from grooverack.boards.es9 import ES9Board, parse_board
from grooverack.errors import CalibrationError

log = logging.getLogger(__name__)

TAG = "grooverack-calibration"
VERSION = 1

# Plausibility limits: how far real parts move a channel from its nominal scaling. 1 % resistors,
# a 2 % reference and op-amp offsets stay well inside these; a wrong patch or a missing cable not.
MAX_GAIN_RATIO = 1.15      # measured gain within nominal / 1.15 .. nominal * 1.15, same sign
MAX_OFFSET_VOLTS = 0.75    # volts at any code within this of the nominal scaling
PITCH_POINTS = (1.0, 3.0)  # the two-point input calibration (Marbles, Ornament & Crime)


# --------------------------------------------------------------------------------------------
# What the board says: nominal scaling of each channel


@dataclass(frozen=True)
class ChannelSpec:
    """A board channel's nominal scaling: volts = gain * code + offset."""

    name: str
    direction: str          # "input" or "output"
    gain: float
    offset: float
    code_min: float
    code_max: float
    integer: bool = True    # codes are integers (ADC/DAC); False for audio samples (ES-9)
    safe_min: float = -12.0
    safe_max: float = 12.0
    role: str = "cv"        # "pitch" inputs are calibrated at two points; others at 0 V

    def nominal_volts(self, code: float) -> float:
        return self.gain * code + self.offset

    def nominal_code(self, volts: float) -> float:
        return (volts - self.offset) / self.gain

    @property
    def volts_range(self) -> tuple[float, float]:
        """Volts the channel can reach (nominal), inside the safe range for outputs."""
        a, b = sorted((self.nominal_volts(self.code_min), self.nominal_volts(self.code_max)))
        if self.direction == "output":
            a, b = max(a, self.safe_min), min(b, self.safe_max)
        return a, b


def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _number(where: str, item: Any, name: str, default: Any = None) -> float:
    value = _field(item, name, default)
    if value is None:
        raise CalibrationError(f"{where}: key {name!r} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(f"{where}: key {name!r} = {value!r} is not a finite number")
    return float(value)


def _spec(board_name: str, direction: str, name: str, item: Any) -> ChannelSpec:
    where = f"board {board_name!r} {direction} {name!r}"
    gain = _number(where, item, "gain")
    if gain == 0.0:
        raise CalibrationError(f"{where}: gain 0 cannot map codes to volts")
    offset = _number(where, item, "offset", 0.0)
    bits = _field(item, "bits")
    if _field(item, "code_min") is not None or _field(item, "code_max") is not None:
        code_min = _number(where, item, "code_min")
        code_max = _number(where, item, "code_max")
    elif bits is not None:
        code_min, code_max = 0.0, float(2 ** int(bits) - 1)
    else:
        raise CalibrationError(f"{where}: needs 'bits' or 'code_min'/'code_max'")
    if not code_min < code_max:
        raise CalibrationError(f"{where}: code_min {code_min:g} must be below code_max {code_max:g}")
    integer = _field(item, "integer", None)
    if integer is None:
        integer = bits is not None or (code_min.is_integer() and code_max.is_integer()
                                        and code_max - code_min >= 255)
    safe_min = _number(where, item, "safe_min", -12.0)
    safe_max = _number(where, item, "safe_max", 12.0)
    if not safe_min < safe_max:
        raise CalibrationError(f"{where}: safe_min {safe_min:g} must be below safe_max {safe_max:g}")
    role = _field(item, "role", None) or ("pitch" if "pitch" in name.lower() else "cv")
    return ChannelSpec(name, direction, gain, offset, code_min, code_max, bool(integer),
                       safe_min, safe_max, str(role))


def _channel_table(board: Any, direction: str) -> Mapping[str, Any]:
    key = direction + "s"
    table = getattr(board, key, None)
    if table is None:
        data = getattr(board, "data", None)
        if data is None and isinstance(board, Mapping):
            data = board
        table = (data or {}).get(key, {})
    if isinstance(table, Mapping):
        return table
    # a sequence of channel objects with a .name
    return {_field(item, "name"): item for item in table}


def board_channels(board: Any) -> tuple[dict[str, ChannelSpec], dict[str, ChannelSpec]]:
    """The board's calibratable input and output channels with their nominal scaling.

    A board gives `inputs` / `outputs` (attributes, or tables in `board.data`): channel name ->
    `gain`, `offset`, `bits` (or `code_min`/`code_max`), optional `safe_min`/`safe_max` (volts),
    `role` ("pitch" for the two-point inputs), `integer`. An ES-9 board (kind "es9") gives its
    DC-coupled channels from its `[es9]` table (`es9_channels`).
    """
    name = str(getattr(board, "name", None) or _field(board, "name", "?"))
    if _field(board, "kind") == "es9":
        return es9_channels(board)
    specs = []
    for direction in ("input", "output"):
        table = _channel_table(board, direction)
        specs.append({str(ch): _spec(name, direction, str(ch), item) for ch, item in table.items()
                      if _field(item, "gain") is not None})
    return specs[0], specs[1]


# --------------------------------------------------------------------------------------------
# What was measured


@dataclass(frozen=True)
class InputCal:
    gain: float
    offset: float
    method: str = "nominal"   # "nominal", "two-point", "offset"

    def to_volts(self, code: float) -> float:
        return self.gain * code + self.offset

    def to_code(self, volts: float) -> float:
        return (volts - self.offset) / self.gain


@dataclass(frozen=True)
class OutputCal:
    gain: float
    offset: float
    method: str = "nominal"   # "nominal", "fit", "table"
    table: tuple[tuple[float, float], ...] = ()   # (volts, code), volts strictly increasing

    def code_for(self, volts: float) -> float:
        """Unclamped code for a voltage: the table (linear between points and beyond the ends)
        when there is one, else gain/offset."""
        t = self.table
        if len(t) >= 2:
            vs = [p[0] for p in t]
            i = min(max(bisect.bisect_right(vs, volts), 1), len(t) - 1)
            (v0, c0), (v1, c1) = t[i - 1], t[i]
            return c0 + (volts - v0) * (c1 - c0) / (v1 - v0)
        return (volts - self.offset) / self.gain

    def volts_for(self, code: float) -> float:
        t = self.table
        if len(t) >= 2:
            pts = sorted(t, key=lambda p: p[1])
            cs = [p[1] for p in pts]
            i = min(max(bisect.bisect_right(cs, code), 1), len(pts) - 1)
            (v0, c0), (v1, c1) = pts[i - 1], pts[i]
            return v0 + (code - c0) * (v1 - v0) / (c1 - c0)
        return self.gain * code + self.offset


def _check_scaling(spec: ChannelSpec, gain: float, volts_at: Any, what: str) -> None:
    """Refuse a measured scaling far from nominal: name the channel, what was found and why."""
    if not math.isfinite(gain) or gain == 0.0:
        raise CalibrationError(f"{spec.name}: {what} gives gain {gain!r}, not a usable number")
    ratio = gain / spec.gain
    if ratio <= 0:
        raise CalibrationError(
            f"{spec.name}: {what} gives gain {gain:.6g} V/code, nominal {spec.gain:.6g}: the sign "
            f"is reversed (inputs swapped, or the wrong voltage patched first?)")
    if not 1 / MAX_GAIN_RATIO <= ratio <= MAX_GAIN_RATIO:
        raise CalibrationError(
            f"{spec.name}: {what} gives gain {gain:.6g} V/code, {ratio * 100:.1f} % of nominal "
            f"{spec.gain:.6g}; real parts stay within {(MAX_GAIN_RATIO - 1) * 100:.0f} % "
            f"(wrong voltage patched, a cable missing, or the wrong jack?)")
    # the offset is judged at the code of nominal 0 V (or the nearest end of the code range):
    # the gain's own error grows away from there and is judged above
    code = min(max(spec.nominal_code(0.0), spec.code_min), spec.code_max)
    error = volts_at(code) - spec.nominal_volts(code)
    if not math.isfinite(error) or abs(error) > MAX_OFFSET_VOLTS:
        raise CalibrationError(
            f"{spec.name}: {what} puts code {code:g} at {volts_at(code):+.3f} V, nominal "
            f"{spec.nominal_volts(code):+.3f} V: {error:+.3f} V off, more than the "
            f"{MAX_OFFSET_VOLTS:g} V real parts allow (a voltage patched where nothing "
            f"should be, or the wrong jack?)")


def two_point(spec: ChannelSpec, code_low: float, code_high: float,
              volts: tuple[float, float] = PITCH_POINTS) -> InputCal:
    """Input gain/offset from the codes read with `volts[0]` and `volts[1]` patched."""
    v1, v3 = volts
    delta = code_high - code_low
    nominal_delta = (v3 - v1) / spec.gain
    if delta == 0 or not math.isfinite(delta):
        raise CalibrationError(
            f"{spec.name}: the code did not move between {v1:+.3f} V and {v3:+.3f} V (read "
            f"{code_low:g} both times; expected a change of about {nominal_delta:+.0f}): "
            f"is the cable in {spec.name.upper()}?")
    gain = (v3 - v1) / delta
    ratio = delta / nominal_delta
    if ratio <= 0 or not 1 / MAX_GAIN_RATIO <= ratio <= MAX_GAIN_RATIO:
        raise CalibrationError(
            f"{spec.name}: {v1:+.3f} V -> {v3:+.3f} V moved the code by {delta:+.1f}, expected "
            f"about {nominal_delta:+.1f} (nominal gain {spec.gain:.6g} V/code): that is "
            f"{ratio * 100:.0f} % of nominal, real parts stay within "
            f"{(MAX_GAIN_RATIO - 1) * 100:.0f} %. Check the voltages and the jack, then repeat.")
    offset = v1 - gain * code_low
    _check_scaling(spec, gain, lambda c: gain * c + offset, "the two-point measurement")
    return InputCal(gain, offset, "two-point")


def zero_offset(spec: ChannelSpec, code_at_zero: float) -> InputCal:
    """Input offset from the code read with nothing patched (0 V); gain stays nominal."""
    offset = -spec.gain * code_at_zero
    _check_scaling(spec, spec.gain, lambda c: spec.gain * c + offset, "the unpatched reading")
    return InputCal(spec.gain, offset, "offset")


def fit_output(spec: ChannelSpec, points: Iterable[tuple[float, float]],
               table: bool = False) -> OutputCal:
    """Output calibration from `(code, measured volts)` pairs: a least-squares gain/offset, and
    with `table` the points themselves as a per-volt table (needs >= 3 points)."""
    pts = [(float(c), float(v)) for c, v in points]
    if len(pts) < 2:
        raise CalibrationError(f"{spec.name}: at least 2 measured points are needed, got {len(pts)}")
    n = len(pts)
    mc = sum(c for c, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    scc = sum((c - mc) ** 2 for c, _ in pts)
    if scc == 0:
        raise CalibrationError(f"{spec.name}: every measurement was taken at the same code")
    gain = sum((c - mc) * (v - mv) for c, v in pts) / scc
    offset = mv - gain * mc
    _check_scaling(spec, gain, lambda c: gain * c + offset, "the output measurement")
    if not table:
        return OutputCal(gain, offset, "fit")
    if n < 3:
        raise CalibrationError(f"{spec.name}: a per-volt table needs at least 3 points, got {n}")
    rows = tuple(sorted((v, c) for c, v in pts))
    for (v0, c0), (v1, c1) in zip(rows, rows[1:], strict=False):
        if v1 - v0 < 1e-3 or (c1 - c0) * spec.gain <= 0:
            raise CalibrationError(
                f"{spec.name}: measured {v0:+.3f} V at code {c0:g} and {v1:+.3f} V at code "
                f"{c1:g}: the output is not monotonic there (noisy meter or wrong cable?)")
        # each point also has to be near the fitted line: a single bad reading is caught here
        line = gain * c1 + offset
        if abs(v1 - line) > 0.1 * max(1.0, abs(v1 - rows[0][0])):
            raise CalibrationError(
                f"{spec.name}: the reading {v1:+.3f} V at code {c1:g} is {v1 - line:+.3f} V off "
                f"the line through the other points: repeat that reading")
    return OutputCal(gain, offset, "table", rows)


# --------------------------------------------------------------------------------------------
# The calibration of a board


@dataclass
class Calibration:
    board: str
    inputs: dict[str, ChannelSpec]
    outputs: dict[str, ChannelSpec]
    input_cal: dict[str, InputCal] = field(default_factory=dict)
    output_cal: dict[str, OutputCal] = field(default_factory=dict)
    source: str = "nominal"   # the file the values came from, or "nominal"
    created: str = ""

    @classmethod
    def nominal(cls, board: Any) -> Calibration:
        """The board's front-end scaling, for a board with no calibration file."""
        inputs, outputs = board_channels(board)
        name = str(getattr(board, "name", None) or _field(board, "name", "?"))
        return cls(name, inputs, outputs,
                   {n: InputCal(s.gain, s.offset) for n, s in inputs.items()},
                   {n: OutputCal(s.gain, s.offset) for n, s in outputs.items()})

    @classmethod
    def load(cls, path: str | Path, board: Any) -> Calibration:
        """The file at `path`; missing -> nominal; corrupt -> logged naming the file, then the
        previous good copy (`NAME.bak`) or nominal."""
        cal = cls.nominal(board)
        path = Path(path)
        payload, used, errors = storage.read_record(path, TAG, VERSION, cal.validate_payload)
        for error in errors:
            log.error("%s", error)
        if payload is None:
            if errors:
                log.warning("%s: unusable, using the nominal scaling of board %r", path, cal.board)
            return cal
        if used != path:
            log.warning("%s: using the previous good copy %s", path, used)
        cal._apply(payload)
        cal.source = str(used)
        return cal

    @classmethod
    def load_strict(cls, path: str | Path, board: Any) -> Calibration:
        """The file at `path` itself, or CalibrationError naming it (for tools and tests)."""
        cal = cls.nominal(board)
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CalibrationError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            payload = storage.parse_record(path, data, TAG, VERSION, cal.validate_payload)
        except storage.RecordError as exc:
            raise CalibrationError(str(exc)) from None
        cal._apply(payload)
        cal.source = str(path)
        return cal

    # --- conversions (the run-time path)

    def to_volts(self, channel: str, code: float) -> float:
        """Volts at an input channel for a code read from its converter."""
        try:
            return self.input_cal[channel].to_volts(code)
        except KeyError:
            raise CalibrationError(self._unknown("input", channel)) from None

    def to_code(self, channel: str, volts: float) -> int | float:
        """The output code for `volts`, clamped to the channel's safe range and code range."""
        try:
            spec, cal = self.outputs[channel], self.output_cal[channel]
        except KeyError:
            raise CalibrationError(self._unknown("output", channel)) from None
        if not math.isfinite(volts):
            volts = 0.0
        volts = min(max(volts, spec.safe_min), spec.safe_max)
        code = cal.code_for(volts)
        if spec.integer:
            code = int(round(code))
            return int(min(max(code, spec.code_min), spec.code_max))
        return min(max(code, spec.code_min), spec.code_max)

    def output_volts(self, channel: str, code: float) -> float:
        """Volts the output really gives for a code (what a meter would read)."""
        return self.output_cal[channel].volts_for(code)

    def _unknown(self, direction: str, channel: str) -> str:
        names = self.inputs if direction == "input" else self.outputs
        return (f"board {self.board!r} has no {direction} channel {channel!r}; "
                f"its {direction}s: {', '.join(names) or 'none'}")

    # --- updates (the calibration procedure)

    def set_input(self, channel: str, cal: InputCal) -> None:
        spec = self.inputs[channel]
        _check_scaling(spec, cal.gain, cal.to_volts, "the new calibration")
        self.input_cal[channel] = cal

    def set_output(self, channel: str, cal: OutputCal) -> None:
        spec = self.outputs[channel]
        _check_scaling(spec, cal.gain, cal.volts_for, "the new calibration")
        self.output_cal[channel] = cal

    # --- the file

    def to_payload(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": {n: {"gain": c.gain, "offset": c.offset, "method": c.method}
                       for n, c in self.input_cal.items()},
            "outputs": {n: {"gain": c.gain, "offset": c.offset, "method": c.method,
                            **({"table": [list(p) for p in c.table]} if c.table else {})}
                        for n, c in self.output_cal.items()},
        }

    def save(self, path: str | Path) -> None:
        """Write atomically; the previous good file becomes NAME.bak. Validated first, so a good
        file is never replaced by an invalid one."""
        payload = self.to_payload()
        try:
            storage.save_record(path, TAG, VERSION, payload, self.validate_payload)
        except storage.RecordError as exc:
            raise CalibrationError(str(exc)) from None
        self.source = str(path)
        self.created = payload["created"]

    def validate_payload(self, payload: dict[str, Any]) -> None:
        """Raise CalibrationError naming the key and value of anything that does not fit the board."""
        self._parse(payload)

    def _apply(self, payload: dict[str, Any]) -> None:
        inputs, outputs, created = self._parse(payload)
        self.input_cal.update(inputs)
        self.output_cal.update(outputs)
        self.created = created

    def _parse(self, payload: Mapping[str, Any]
               ) -> tuple[dict[str, InputCal], dict[str, OutputCal], str]:
        if not isinstance(payload, Mapping):
            raise CalibrationError(f"payload must be a table, found {type(payload).__name__}")
        unknown = set(payload) - {"board", "created", "inputs", "outputs"}
        if unknown:
            raise CalibrationError(f"unknown key {sorted(unknown)[0]!r}; allowed: board, created, "
                                   f"inputs, outputs")
        if payload.get("board") != self.board:
            raise CalibrationError(f"key 'board' = {payload.get('board')!r}: this calibration is "
                                   f"not for board {self.board!r}")
        created = payload.get("created", "")
        if not isinstance(created, str):
            raise CalibrationError(f"key 'created' = {created!r} must be a string")
        inputs: dict[str, InputCal] = {}
        outputs: dict[str, OutputCal] = {}
        for direction, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            table = payload.get(direction, {})
            if not isinstance(table, Mapping):
                raise CalibrationError(f"key {direction!r} must be a table, found {table!r}")
            for name, item in table.items():
                where = f"{direction}.{name}"
                if name not in specs:
                    raise CalibrationError(
                        f"key {where!r}: board {self.board!r} has no such channel; its "
                        f"{direction}: {', '.join(specs) or 'none'}")
                if not isinstance(item, Mapping):
                    raise CalibrationError(f"key {where!r} must be a table, found {item!r}")
                allowed = {"gain", "offset", "method"} | ({"table"} if direction == "outputs" else set())
                extra = set(item) - allowed
                if extra:
                    raise CalibrationError(f"key {where}.{sorted(extra)[0]!r} is unknown; allowed: "
                                           f"{', '.join(sorted(allowed))}")
                gain = _number(f"key {where!r}", item, "gain")
                offset = _number(f"key {where!r}", item, "offset")
                method = item.get("method", "nominal")
                if not isinstance(method, str):
                    raise CalibrationError(f"key {where}.method = {method!r} must be a string")
                spec = specs[name]
                if direction == "inputs":
                    cal: InputCal | OutputCal = InputCal(gain, offset, method)
                else:
                    cal = OutputCal(gain, offset, method, _parse_table(where, spec, item.get("table", [])))
                try:
                    volts_at = cal.to_volts if isinstance(cal, InputCal) else cal.volts_for
                    _check_scaling(spec, gain, volts_at, f"key {where!r}")
                except CalibrationError as exc:
                    raise CalibrationError(f"key {where!r}: {exc}") from None
                if isinstance(cal, InputCal):
                    inputs[name] = cal
                else:
                    outputs[name] = cal
        return inputs, outputs, created


def _parse_table(where: str, spec: ChannelSpec, rows: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(rows, list):
        raise CalibrationError(f"key {where}.table must be a list of [volts, code], found {rows!r}")
    out = []
    for i, row in enumerate(rows):
        if (not isinstance(row, list | tuple) or len(row) != 2
                or any(isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)
                       for x in row)):
            raise CalibrationError(f"key {where}.table[{i}] = {row!r}: expected [volts, code]")
        volts, code = float(row[0]), float(row[1])
        if not spec.code_min <= code <= spec.code_max:
            raise CalibrationError(f"key {where}.table[{i}]: code {code:g} outside "
                                   f"{spec.code_min:g}..{spec.code_max:g}")
        out.append((volts, code))
    if len(out) == 1:
        raise CalibrationError(f"key {where}.table: one point is not a table (need 2 or more)")
    for i in range(1, len(out)):
        (v0, c0), (v1, c1) = out[i - 1], out[i]
        if v1 <= v0 or (c1 - c0) * spec.gain <= 0:
            raise CalibrationError(f"key {where}.table[{i}] = [{v1:g}, {c1:g}]: volts must rise "
                                   f"and codes follow the gain's sign")
    return tuple(out)


def default_path(state_dir: str | Path, board_name: str) -> Path:
    """Where a board's calibration lives: `<state dir>/calibration/<board>.json`."""
    return Path(state_dir) / "calibration" / f"{board_name}.json"


# --------------------------------------------------------------------------------------------
# The ES-9: channels are audio samples (-1.0..1.0), volts = volts_per_unit * sample nominally

ES9_ANALOG_SKIP = ("gate", "clock", "reset")  # Schmitt-triggered: no scaling to calibrate


def es9_channels(board: Any) -> tuple[dict[str, ChannelSpec], dict[str, ChannelSpec]]:
    """Input jacks (pitch, velocity CV, control CVs) and outputs (`trigger_N`, `velocity_N`,
    `accent_N`, `clock`, `reset`) of an ES-9 board, named as the calibration file names them."""

    return _es9_specs(parse_board(board))


def _es9_specs(es9: ES9Board) -> tuple[dict[str, ChannelSpec], dict[str, ChannelSpec]]:
    vpu = es9.volts_per_unit
    inputs = {jack: ChannelSpec(jack, "input", vpu, 0.0, -1.0, 1.0, False, -12.0, 12.0,
                                "pitch" if jack == "pitch" else "cv")
              for jack in es9.inputs if jack not in ES9_ANALOG_SKIP}
    outputs = {name: ChannelSpec(name, "output", vpu, 0.0, -1.0, 1.0, False, es9.safe_min,
                                 es9.safe_max, "cv")
               for name in es9_output_channels(es9)}
    return inputs, outputs


def es9_output_channels(es9: ES9Board) -> dict[str, int]:
    """Calibration name -> 1-based host channel of an ES9Board's outputs (`trigger_N`,
    `velocity_N`, `accent_N`, `clock`, `reset`)."""
    out: dict[str, int] = {}
    for kind, channels in (("trigger", es9.trigger), ("velocity", es9.velocity),
                           ("accent", es9.accent)):
        for n, channel in enumerate(channels, start=1):
            if channel:
                out[f"{kind}_{n}"] = channel
    for kind, channel in (("clock", es9.clock_out), ("reset", es9.reset_out)):
        if channel:
            out[kind] = channel
    return out


def es9_calibration(es9: ES9Board, measured: Calibration | None = None) -> Calibration:
    """An ES9Board's channels as a Calibration, the one door from volts to samples the back end
    writes through (`to_code`: the safe range, then +-1.0): each channel's board scaling (its
    `[es9.calibration]`), replaced by `measured` (a calibration file) where that has one, a
    per-volt table included."""
    inputs, outputs = _es9_specs(es9)
    vpu = es9.volts_per_unit
    cal = Calibration(measured.board if measured is not None else "es9", inputs, outputs)
    for name in inputs:
        m = measured.input_cal.get(name) if measured is not None else None
        if m is not None and m.method != "nominal":
            cal.input_cal[name] = m
        else:
            gain, offset = es9.in_cal.get(es9.inputs[name], (1.0, 0.0))
            cal.input_cal[name] = InputCal(gain * vpu, offset)
    for name, channel in es9_output_channels(es9).items():
        o = measured.output_cal.get(name) if measured is not None else None
        if o is not None and o.method != "nominal":
            cal.output_cal[name] = o
        else:
            gain, offset = es9.out_cal.get(channel, (1.0, 0.0))
            cal.output_cal[name] = OutputCal(gain * vpu, offset)
    cal.source = measured.source if measured is not None else "nominal"
    return cal
