"""Board definitions: `hw/boards/NAME.toml` -> `Board`. The board file is the only place that
knows the board: chips and buses, which pin or channel carries which jack, pot or button, the
nominal front-end scaling of every analogue channel, and the safe output range.

`load_board(name_or_path)` reads any board and parses kinds "pi" and "sim" (a "sim" board is a
`base` Pi board over emulated chips, plus an `[emulation]` table). Other kinds (es9, midi) keep
their raw table in `.data` for the back end that owns them. Unknown keys are refused, naming the
file, the key and what is allowed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grooverack.config import BUTTONS, CONTROLS
from grooverack.controls import ControlRange
from grooverack.errors import BoardError, ConfigError
from grooverack.resources import board_dirs
from grooverack.storage import read_text_bounded

PARTS = ("mcp3208", "ads1115", "mcp4728", "mcp4922")
ADC_PARTS = ("mcp3208", "ads1115")
DAC_PARTS = ("mcp4728", "mcp4922")
CHANNELS = {"mcp3208": 8, "ads1115": 4, "mcp4728": 4, "mcp4922": 2}
# an "accent" jack goes high with trigger output `output` on an accented hit (PanelOutputs)
OUTPUT_KINDS = ("trigger", "velocity", "accent", "clock", "reset", "led")
# "fill": a gate whose both edges count (while high the drums play a fill)
INPUT_ROLES = ("gate", "clock", "reset", "fill", "button")
# an ADC input: a CV, the 1 V/oct pitch, or the fill gate read at the scan rate through a
# software Schmitt trigger (`rise_volts` / `fall_volts` at the jack)
ANALOG_ROLES = ("cv", "pitch", "fill")
FILL_RISE_VOLTS, FILL_FALL_VOLTS = 1.5, 1.0  # an ADC fill input's thresholds unless the board says


@dataclass(frozen=True)
class Chip:
    name: str
    part: str
    bus: str                    # "spi" or "i2c"
    bus_number: int
    device: int                 # SPI chip select, or I2C 7-bit address
    max_speed_hz: int = 0
    vref: float = 0.0           # external reference (MCP3208, MCP4922)
    vdd: float = 3.3
    fsr: float = 4.096          # ADS1115 PGA full scale
    data_rate: int = 860        # ADS1115 samples/s
    gain: int = 1               # MCP4922 output gain (1x / 2x)
    ldac_pin: int | None = None  # MCP4922 LDAC on a GPIO (None = tied low)

    @property
    def where(self) -> str:
        if self.bus == "spi":
            return f"/dev/spidev{self.bus_number}.{self.device}"
        return f"/dev/i2c-{self.bus_number} 0x{self.device:02x}"


@dataclass(frozen=True)
class AnalogInput:
    """A CV input; volts at the jack = gain * code + offset (what `Calibration.nominal` reads)."""
    name: str
    chip: str
    channel: int
    gain: float
    offset: float
    code_min: int
    code_max: int
    role: str = "cv"
    integer: bool = True
    rise_volts: float = 0.0     # role "fill": the gate goes high at or above this (jack volts)...
    fall_volts: float = 0.0     # ...and low again at or below this

    @property
    def volts_range(self) -> tuple[float, float]:
        """The jack volts its code range covers (low, high)."""
        ends = (self.gain * self.code_min + self.offset, self.gain * self.code_max + self.offset)
        return min(ends), max(ends)


@dataclass(frozen=True)
class Pot:
    name: str
    chip: str
    channel: int
    code_max: int               # code at full travel: position = code / code_max


@dataclass(frozen=True)
class Control:
    """A panel control (config name) = low + (high - low) * clamp(pot + cv_per_volt * cv, 0, 1)."""
    name: str
    pot: str
    cv: str | None = None
    cv_per_volt: float = 0.0
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class DigitalInput:
    name: str
    pin: int
    role: str                   # gate, clock, reset, fill, button
    pull: str = "off"
    active_low: bool = False
    action: str | None = None   # buttons: the engine's press() name
    debounce_ms: float = 0.0


@dataclass(frozen=True)
class AnalogOutput:
    """A DAC output; volts at the jack = gain * code + offset, kept within safe_min..safe_max."""
    name: str
    kind: str
    output: int                 # 1-based panel output number (0 = not an engine output)
    chip: str
    channel: int
    gain: float
    offset: float
    code_min: int
    code_max: int
    safe_min: float
    safe_max: float
    integer: bool = True


@dataclass(frozen=True)
class DigitalOutput:
    name: str
    kind: str
    output: int
    pin: int
    volts: float                # volts at the jack when the pin is high


@dataclass
class Board:
    name: str
    kind: str
    path: Path
    data: dict[str, Any]
    description: str = ""
    base: str | None = None
    chips: dict[str, Chip] = field(default_factory=dict)
    inputs: dict[str, AnalogInput] = field(default_factory=dict)
    pots: dict[str, Pot] = field(default_factory=dict)
    controls: dict[str, Control] = field(default_factory=dict)
    gpio_inputs: dict[str, DigitalInput] = field(default_factory=dict)
    outputs: dict[str, AnalogOutput] = field(default_factory=dict)
    gpio_outputs: dict[str, DigitalOutput] = field(default_factory=dict)
    scan_hz: float = 250.0
    pot_smoothing_hz: float = 8.0
    pot_hysteresis: float = 0.004
    trigger_volts: float = 5.0
    emulation: dict[str, Any] = field(default_factory=dict)
    # the shift layer (`[shift]`): while the "shift" button is held, pot name -> what it moves
    # (a control or a SHIFT_TARGETS name) and button name -> the action it does instead (an
    # engine button or a SHIFT_ACTIONS name)
    shift_pots: dict[str, str] = field(default_factory=dict)
    shift_buttons: dict[str, str] = field(default_factory=dict)

    @property
    def is_panel(self) -> bool:
        return self.kind in ("pi", "sim")

    def output_jacks(self, kind: str) -> dict[int, AnalogOutput | DigitalOutput]:
        """Engine output number -> the jack of that kind (DAC channel or GPIO pin)."""
        jacks: dict[int, AnalogOutput | DigitalOutput] = {}
        every: list[AnalogOutput | DigitalOutput] = [*self.outputs.values(),
                                                     *self.gpio_outputs.values()]
        for jack in every:
            if jack.kind == kind:
                jacks[jack.output] = jack
        return jacks


# --------------------------------------------------------------------------------------------


def board_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return Path(text)
    dirs = board_dirs()
    for folder in dirs:  # a user's own folder ($GROOVERACK_BOARDS) first, then the shipped one
        if (folder / f"{text}.toml").is_file():
            return folder / f"{text}.toml"
    return dirs[-1] / f"{text}.toml"


def available_boards() -> list[str]:
    return sorted({p.stem for folder in board_dirs() for p in folder.glob("*.toml")})


def _read(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        known = ", ".join(available_boards()) or "none"
        raise BoardError(f"board file {path} does not exist; boards in {', '.join(map(str, board_dirs()))}: {known}")
    text = read_text_bounded(path, "board file", BoardError)  # BOM and CRLF accepted
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"board file {path} is not valid TOML: {exc}") from None


def load_board(name_or_path: str | Path) -> Board:
    """Read `hw/boards/NAME.toml` (or a path); parse it when its kind is "pi" or "sim"."""
    path = board_path(name_or_path)
    data = _read(path)
    kind = data.get("kind")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise BoardError(f"{path}: key 'name' = {name!r} must be a non-empty string")
    if kind not in ("pi", "sim", "es9", "midi"):
        raise BoardError(f"{path}: key 'kind' = {kind!r}; allowed: 'pi', 'sim', 'es9', 'midi'")
    if kind in ("es9", "midi"):
        return Board(name=name, kind=kind, path=path, data=data,
                     description=str(data.get("description", "")))
    if kind == "sim":
        return _parse_sim(path, data)
    return _parse_pi(path, data, data)


def _parse_sim(path: Path, data: dict[str, Any]) -> Board:
    _keys(path, "", data, {"name", "kind", "base", "description", "emulation"}, {"name", "kind", "base"})
    base_name = data["base"]
    base_path = board_path(base_name) if isinstance(base_name, str) else None
    if base_path is None or base_path.resolve() == path.resolve():
        raise BoardError(f"{path}: key 'base' = {base_name!r} must name another board")
    base_data = _read(base_path)
    if base_data.get("kind") != "pi":
        raise BoardError(f"{path}: key 'base' = {base_name!r} is a {base_data.get('kind')!r} "
                         "board; a sim board emulates a 'pi' board")
    merged = dict(base_data)
    merged.update({k: v for k, v in data.items() if k != "emulation"})
    board = _parse_pi(base_path, base_data, merged)
    board.path, board.kind, board.name = path, "sim", data["name"]
    board.base = base_name
    board.description = str(data.get("description", board.description))
    board.emulation = _parse_emulation(path, data.get("emulation", {}), board, base_path)
    return board


def _parse_emulation(path: Path, table: Any, board: Board, base: Path) -> dict[str, Any]:
    """The sim file's [emulation] table, checked against its base board (a mismatch may be
    either file's fault: the message names both)."""
    where = "emulation"
    if not isinstance(table, dict):
        raise BoardError(f"{path}: key {where!r} must be a table")
    _keys(path, where, table, {"jacks", "front_end"}, set())
    jacks = table_of(path, "emulation.jacks", table.get("jacks", {}))
    known = {*board.inputs, *board.gpio_inputs}
    for jack, target in jacks.items():
        if not isinstance(target, str) or target not in known:
            raise BoardError(f"{path}: key 'emulation.jacks.{jack}' = {target!r}; the inputs "
                             f"of its base board {base}: {', '.join(sorted(known))}")
    front = {}
    for name, item in table_of(path, "emulation.front_end", table.get("front_end", {})).items():
        w = f"emulation.front_end.{name}"
        if name not in board.inputs and name not in board.outputs:
            raise BoardError(f"{path}: key {w!r}: no CV input or DAC output {name!r} on its "
                             f"base board {base}; channels: "
                             f"{', '.join([*board.inputs, *board.outputs])}")
        _keys(path, w, item, {"gain_error", "offset_volts"}, set())
        front[name] = (_num(path, w, item, "gain_error", 1.0, 0.5, 1.5),
                       _num(path, w, item, "offset_volts", 0.0, -1.0, 1.0))
    return {"jacks": jacks, "front_end": front}


# --------------------------------------------------------------------------------------------
# the "pi" kind


def table_of(path: Path, where: str, value: Any) -> dict[str, Any]:
    """`value` as the table key `where` must be, or BoardError naming the file and the key."""
    if not isinstance(value, dict):
        raise BoardError(f"{path}: key {where!r} must be a table, found {value!r}")
    return value


def _keys(path: Path, where: str, table: Any, allowed: set[str], required: set[str]) -> None:
    label = f"[{where}]" if where else "the top level"
    if not isinstance(table, dict):
        raise BoardError(f"{path}: {label} must be a table, found {table!r}")
    for key in table:
        if key not in allowed:
            raise BoardError(f"{path}: unknown key {key!r} in {label}; allowed: "
                             f"{', '.join(sorted(allowed))}")
    for key in sorted(required):
        if key not in table:
            raise BoardError(f"{path}: key {key!r} is missing in {label}")


def _num(path: Path, where: str, table: dict[str, Any], key: str, default: Any = None,
         low: float | None = None, high: float | None = None) -> float:
    value = table.get(key, default)
    if value is None:
        raise BoardError(f"{path}: key '{where}.{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BoardError(f"{path}: key '{where}.{key}' = {value!r} must be a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise BoardError(f"{path}: key '{where}.{key}' = {value!r}; allowed: {low:g} to {high:g}")
    return float(value)


def _int(path: Path, where: str, table: dict[str, Any], key: str, default: Any = None,
         low: int | None = None, high: int | None = None) -> int:
    value = table.get(key, default)
    if value is None:
        raise BoardError(f"{path}: key '{where}.{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BoardError(f"{path}: key '{where}.{key}' = {value!r} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise BoardError(f"{path}: key '{where}.{key}' = {value!r}; allowed: {low} to {high}")
    return value


def _choice(path: Path, where: str, table: dict[str, Any], key: str, choices: tuple[str, ...],
            default: Any = None) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise BoardError(f"{path}: key '{where}.{key}' = {value!r}; allowed: "
                         f"{', '.join(repr(c) for c in choices)}")
    return value


# Shift-layer pot targets besides the controls: the voice group the `group_select` pot points at
# (voices.VOICE_GROUPS over its travel) and that group's density and velocity scale.
SHIFT_TARGETS = ("group_select", "group_density", "group_velocity")
# Shift-layer button actions besides the engine's: mute / unmute the group the `group_select`
# pot points at (a panel with fewer buttons than voice groups reaches all five through it)
SHIFT_ACTIONS = ("mute_group",)

TOP_KEYS = {"shift", "name", "kind", "description", "scan_hz", "pot_smoothing_hz", "pot_hysteresis",
            "trigger_volts", "chips", "inputs", "pots", "controls", "gpio_inputs", "outputs",
            "gpio_outputs", "base"}
GPIO_PINS = range(2, 28)


def _parse_pi(path: Path, data: dict[str, Any], merged: dict[str, Any]) -> Board:
    _keys(path, "", data, TOP_KEYS - {"base"}, {"name", "kind", "chips"})
    b = Board(name=merged["name"], kind=merged["kind"], path=path, data=merged,
              description=str(data.get("description", "")))
    b.scan_hz = _num(path, "", data, "scan_hz", 250.0, 100.0, 2000.0)
    b.pot_smoothing_hz = _num(path, "", data, "pot_smoothing_hz", 8.0, 0.5, 100.0)
    b.pot_hysteresis = _num(path, "", data, "pot_hysteresis", 0.004, 0.0, 0.1)
    b.trigger_volts = _num(path, "", data, "trigger_volts", 5.0, 1.0, 10.0)

    if not isinstance(data["chips"], dict):
        raise BoardError(f"{path}: key 'chips' must be a table of chips, found {data['chips']!r}")
    at_address: dict[tuple[int, int], str] = {}
    for name, item in data["chips"].items():
        made = b.chips[name] = _chip(path, f"chips.{name}", name, item)
        if made.bus != "i2c":
            continue
        other = at_address.setdefault((made.bus_number, made.device), name)
        if other != name:  # the bus would answer for both: every read and write garbled
            raise BoardError(f"{path}: chips {other!r} ({b.chips[other].part}) and {name!r} "
                             f"({made.part}) are both at I2C address 0x{made.device:02x} on bus "
                             f"i2c-{made.bus_number} (key 'chips.{name}.address'); allowed: one chip "
                             "per address (an MCP4728's address is programmed into the chip, an "
                             "ADS1115's set by its ADDR pin)")
    used_channels: dict[tuple[str, int], str] = {}

    def channel_of(where: str, item: dict[str, Any], parts: tuple[str, ...]) -> tuple[str, int]:
        chip = item.get("chip")
        if not isinstance(chip, str) or chip not in b.chips:
            raise BoardError(f"{path}: key '{where}.chip' = {chip!r}; chips: {', '.join(b.chips)}")
        part = b.chips[chip].part
        if part not in parts:
            raise BoardError(f"{path}: key '{where}.chip' = {chip!r} is a {part}; needs one of "
                             f"{', '.join(parts)}")
        ch = _int(path, where, item, "channel", None, 0, CHANNELS[part] - 1)
        if (chip, ch) in used_channels:
            raise BoardError(f"{path}: [{where}] uses {chip} channel {ch}, already used by "
                             f"[{used_channels[chip, ch]}]")
        used_channels[chip, ch] = where
        return chip, ch

    def code_range(where: str, item: dict[str, Any], chip: str) -> tuple[int, int]:
        part = b.chips[chip].part
        full = (0, 32767) if part == "ads1115" else (0, 4095)
        if "bits" in item:
            bits = _int(path, where, item, "bits", None, 1, 16)
            return 0, 2 ** bits - 1
        return (_int(path, where, item, "code_min", full[0], -32768, 32767),
                _int(path, where, item, "code_max", full[1], -32768, 32767))

    for name, item in table_of(path, "inputs", data.get("inputs", {})).items():
        w = f"inputs.{name}"
        _keys(path, w, item, {"chip", "channel", "bits", "code_min", "code_max", "gain", "offset",
                              "role", "rise_volts", "fall_volts"}, {"chip", "channel", "gain",
                                                                    "offset"})
        chip, ch = channel_of(w, item, ADC_PARTS)
        lo, hi = code_range(w, item, chip)
        gain = _num(path, w, item, "gain")
        if gain == 0:
            raise BoardError(f"{path}: key '{w}.gain' = 0 cannot map codes to volts")
        role = _choice(path, w, item, "role", ANALOG_ROLES, "pitch" if "pitch" in name else "cv")
        b.inputs[name] = _fill_thresholds(path, w, item, AnalogInput(
            name, chip, ch, gain, _num(path, w, item, "offset"), lo, hi, role))
    for name, item in table_of(path, "pots", data.get("pots", {})).items():
        w = f"pots.{name}"
        _keys(path, w, item, {"chip", "channel", "code_max"}, {"chip", "channel"})
        chip, ch = channel_of(w, item, ADC_PARTS)
        default_max = 4095 if b.chips[chip].part == "mcp3208" else 32767
        b.pots[name] = Pot(name, chip, ch, _int(path, w, item, "code_max", default_max, 1, 32767))
    for name, item in table_of(path, "controls", data.get("controls", {})).items():
        w = f"controls.{name}"
        if name not in CONTROLS:
            raise BoardError(f"{path}: [{w}]: {name!r} is not a panel control; controls: "
                             f"{', '.join(CONTROLS)}")
        _keys(path, w, item, {"pot", "cv", "cv_per_volt", "low", "high"}, {"pot"})
        if not isinstance(item["pot"], str) or item["pot"] not in b.pots:
            raise BoardError(f"{path}: key '{w}.pot' = {item['pot']!r}; pots: {', '.join(b.pots)}")
        cv = item.get("cv")
        cv_inputs = [n for n, i in b.inputs.items() if i.role != "fill"]
        if cv is not None and (not isinstance(cv, str) or cv not in cv_inputs):
            raise BoardError(f"{path}: key '{w}.cv' = {cv!r}; CV inputs: {', '.join(cv_inputs)}")
        # the range: the config schema's, which a board may narrow but not widen
        full = ControlRange.for_key(name)
        low, high = _num(path, w, item, "low", full.low), _num(path, w, item, "high", full.high)
        try:
            ControlRange.for_key(name, low, high)
        except ConfigError as exc:
            raise BoardError(f"{path}: [{w}]: {exc}") from None
        b.controls[name] = Control(name, item["pot"], cv, _num(path, w, item, "cv_per_volt", 0.0),
                                   low, high)

    pins: dict[int, str] = {}

    def pin_of(where: str, item: dict[str, Any]) -> int:
        pin = _int(path, where, item, "pin", None, GPIO_PINS.start, GPIO_PINS.stop - 1)
        if pin in pins:
            raise BoardError(f"{path}: [{where}] uses GPIO {pin}, already used by [{pins[pin]}]")
        pins[pin] = where
        return pin

    for made in b.chips.values():
        if made.ldac_pin is not None:
            pins[made.ldac_pin] = f"chips.{made.name}.ldac_pin"
    for name, item in table_of(path, "gpio_inputs", data.get("gpio_inputs", {})).items():
        w = f"gpio_inputs.{name}"
        _keys(path, w, item, {"pin", "role", "pull", "active_low", "action", "debounce_ms"},
              {"pin", "role"})
        role = _choice(path, w, item, "role", INPUT_ROLES)
        action = None
        if role == "button":
            action = _choice(path, w, item, "action", BUTTONS)
        elif "action" in item:
            raise BoardError(f"{path}: key '{w}.action' only applies to role 'button'")
        active_low = item.get("active_low", False)
        if not isinstance(active_low, bool):
            raise BoardError(f"{path}: key '{w}.active_low' = {active_low!r} must be true or false")
        b.gpio_inputs[name] = DigitalInput(
            name, pin_of(w, item), role, _choice(path, w, item, "pull", ("off", "up", "down"), "off"),
            active_low, action, _num(path, w, item, "debounce_ms", 20.0 if role == "button" else 0.0,
                                     0.0, 200.0))
    roles = [i.role for i in b.gpio_inputs.values() if i.role != "button"]
    for role in set(roles):
        if roles.count(role) > 1:
            raise BoardError(f"{path}: more than one [gpio_inputs] with role {role!r}")
    fills = [f"gpio_inputs.{n}" for n, i in b.gpio_inputs.items() if i.role == "fill"]
    fills += [f"inputs.{n}" for n, i in b.inputs.items() if i.role == "fill"]
    if len(fills) > 1:
        raise BoardError(f"{path}: more than one fill input: [{'], ['.join(fills)}]; allowed: one "
                         "(a GPIO pin or an ADC channel)")

    outputs_seen: dict[tuple[str, int], str] = {}

    def output_of(where: str, item: dict[str, Any]) -> tuple[str, int]:
        kind = _choice(path, where, item, "kind", OUTPUT_KINDS)
        number = _int(path, where, item, "output", None, 0, 16)
        if kind in ("trigger", "velocity", "accent") and number == 0:
            raise BoardError(f"{path}: key '{where}.output' = 0: {kind} outputs are numbered 1..16")
        if kind in ("trigger", "velocity", "accent"):
            if (kind, number) in outputs_seen:
                raise BoardError(f"{path}: [{where}] is {kind} output {number}, already "
                                 f"[{outputs_seen[kind, number]}]")
            outputs_seen[kind, number] = where
        return kind, number

    for name, item in table_of(path, "outputs", data.get("outputs", {})).items():
        w = f"outputs.{name}"
        _keys(path, w, item, {"kind", "output", "chip", "channel", "bits", "code_min", "code_max",
                              "gain", "offset", "safe_min", "safe_max"},
              {"kind", "output", "chip", "channel", "gain", "offset", "safe_min", "safe_max"})
        kind, number = output_of(w, item)
        chip, ch = channel_of(w, item, DAC_PARTS)
        lo, hi = code_range(w, item, chip)
        safe_min, safe_max = (_num(path, w, item, "safe_min", None, -12.0, 12.0),
                              _num(path, w, item, "safe_max", None, -12.0, 12.0))
        if safe_min >= safe_max:
            raise BoardError(f"{path}: [{w}] safe_min {safe_min:g} must be below safe_max {safe_max:g}")
        b.outputs[name] = AnalogOutput(name, kind, number, chip, ch, _num(path, w, item, "gain"),
                                       _num(path, w, item, "offset"), lo, hi, safe_min, safe_max)
    for name, item in table_of(path, "gpio_outputs", data.get("gpio_outputs", {})).items():
        w = f"gpio_outputs.{name}"
        _keys(path, w, item, {"kind", "output", "pin", "volts"}, {"kind", "output", "pin"})
        kind, number = output_of(w, item)
        b.gpio_outputs[name] = DigitalOutput(name, kind, number, pin_of(w, item),
                                             _num(path, w, item, "volts", 5.0, 1.0, 12.0))
    for kind in ("trigger", "velocity"):
        numbers = sorted(n for k, n in outputs_seen if k == kind)
        if numbers != list(range(1, len(numbers) + 1)):
            raise BoardError(f"{path}: {kind} outputs must be numbered 1..N without gaps, found "
                             f"{numbers}")
    triggers = {n for k, n in outputs_seen if k == "trigger"}
    for (kind, number), where in outputs_seen.items():
        if kind == "accent" and number not in triggers:
            raise BoardError(f"{path}: key '{where}.output' = {number}: an accent follows a "
                             f"trigger output; trigger outputs: {sorted(triggers)}")
    _parse_shift(path, data.get("shift", {}), b)
    return b


def _fill_thresholds(path: Path, where: str, item: dict[str, Any], inp: AnalogInput
                     ) -> AnalogInput:
    """An ADC fill input with its Schmitt thresholds (checked: below one another, inside the
    volts the channel can read); on any other input `rise_volts` / `fall_volts` are refused."""
    if inp.role != "fill":
        for key in ("rise_volts", "fall_volts"):
            if key in item:
                raise BoardError(f"{path}: key '{where}.{key}' only applies to role 'fill' "
                                 f"(this input's role is {inp.role!r})")
        return inp
    low, high = inp.volts_range
    rise = _num(path, where, item, "rise_volts", FILL_RISE_VOLTS, low, high)
    fall = _num(path, where, item, "fall_volts", FILL_FALL_VOLTS, low, high)
    if fall >= rise:
        raise BoardError(f"{path}: key '{where}.fall_volts' = {fall:g} must be below "
                         f"'{where}.rise_volts' = {rise:g} (the Schmitt trigger's hysteresis)")
    return replace(inp, rise_volts=rise, fall_volts=fall)


def _parse_shift(path: Path, table: Any, b: Board) -> None:
    """`[shift.pots]` pot = target and `[shift.buttons]` button = action: the layer that works
    while a button with action "shift" is held."""
    _keys(path, "shift", table, {"pots", "buttons"}, set())
    pots, buttons = table.get("pots", {}), table.get("buttons", {})
    _keys(path, "shift.pots", pots, set(b.pots), set())
    _keys(path, "shift.buttons", buttons,
          {n for n, i in b.gpio_inputs.items() if i.role == "button" and i.action != "shift"},
          set())
    if (pots or buttons) and not any(i.action == "shift" for i in b.gpio_inputs.values()):
        raise BoardError(f"{path}: [shift] needs a [gpio_inputs] button with action 'shift'")
    targets = (*CONTROLS, *SHIFT_TARGETS)
    for pot in pots:
        b.shift_pots[pot] = _choice(path, "shift.pots", pots, pot, targets)
    for name in buttons:
        b.shift_buttons[name] = _choice(path, "shift.buttons", buttons, name,
                                        (*(a for a in BUTTONS if a != "shift"), *SHIFT_ACTIONS))
        if b.shift_buttons[name] == "mute_group" and "group_select" not in b.shift_pots.values():
            raise BoardError(f"{path}: key 'shift.buttons.{name}' = 'mute_group' mutes the group "
                             "a [shift.pots] pot with 'group_select' points at; this board has "
                             "none")


def _chip(path: Path, where: str, name: str, item: Any) -> Chip:
    if not isinstance(item, dict):
        raise BoardError(f"{path}: [{where}] must be a table")
    part = _choice(path, where, item, "part", PARTS)
    if part in ("mcp3208", "mcp4922"):
        allowed = {"part", "spi_bus", "spi_device", "max_speed_hz", "vref", "vdd"}
        if part == "mcp4922":
            allowed |= {"gain", "ldac_pin"}
        _keys(path, where, item, allowed, {"part", "spi_bus", "spi_device", "vref"})
        limit = 20_000_000 if part == "mcp4922" else 2_000_000
        vdd = _num(path, where, item, "vdd", 3.3, 2.7, 5.5)
        if part == "mcp3208" and vdd < 4.5:
            limit = 1_000_000
        ldac = item.get("ldac_pin")
        if ldac is not None:
            ldac = _int(path, where, item, "ldac_pin", None, 2, 27)
        return Chip(name, part, "spi", _int(path, where, item, "spi_bus", None, 0, 6),
                    _int(path, where, item, "spi_device", None, 0, 2),
                    _int(path, where, item, "max_speed_hz", min(limit, 1_000_000), 10_000, limit),
                    _num(path, where, item, "vref", None, 0.25, vdd), vdd,
                    gain=_int(path, where, item, "gain", 1, 1, 2), ldac_pin=ldac)
    allowed = {"part", "i2c_bus", "address", "vdd"}
    if part == "ads1115":
        allowed |= {"fsr", "data_rate"}
        lo, hi = 0x48, 0x4B
    else:
        lo, hi = 0x60, 0x67
    _keys(path, where, item, allowed, {"part", "i2c_bus", "address"})
    chip = Chip(name, part, "i2c", _int(path, where, item, "i2c_bus", None, 0, 22),
                _int(path, where, item, "address", None, lo, hi),
                vdd=_num(path, where, item, "vdd", 3.3 if part == "ads1115" else 5.0, 2.0, 5.5))
    if part == "ads1115":
        fsr = _num(path, where, item, "fsr", 4.096)
        if fsr not in (6.144, 4.096, 2.048, 1.024, 0.512, 0.256):
            raise BoardError(f"{path}: key '{where}.fsr' = {fsr!r}; allowed: 6.144, 4.096, "
                             "2.048, 1.024, 0.512, 0.256")
        rate = _int(path, where, item, "data_rate", 860)
        if rate not in (8, 16, 32, 64, 128, 250, 475, 860):
            raise BoardError(f"{path}: key '{where}.data_rate' = {rate!r}; allowed: 8, 16, 32, "
                             "64, 128, 250, 475, 860")
        chip = Chip(**{**chip.__dict__, "fsr": fsr, "data_rate": rate})
    return chip
