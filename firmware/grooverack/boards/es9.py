"""The `[es9]` table of a board file: channels, levels, per-channel calibration.

`[es9.inputs]` maps jacks (gate, pitch, clock, ..., control CVs) and panel buttons (any press
action: `next_style = 10`, `mute_kick = 11`, a gate whose rising edge is a press) to host input
channels; `[es9.outputs]` maps triggers, velocity CVs, accents, clock and reset to host output
channels. No channel serves two jacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from grooverack.config import CONTROLS, PRESS_ACTIONS, Settings
from grooverack.errors import ConfigError

# audio: an audio input whose onsets are the groove (input.audio_channel ignored: this channel)
INPUT_JACKS = ("gate", "pitch", "clock", "reset", "velocity_cv", "fill", "audio", *CONTROLS)


_ES9_KEYS = {"device", "input_device", "output_device", "samplerate", "blocksize",
             "volts_per_unit", "trigger_volts", "safe_min", "safe_max", "latency_trim_samples",
             "velocity_lead_samples", "inputs", "outputs", "calibration"}
_OUTPUT_KEYS = {"trigger", "velocity", "accent", "clock", "reset"}


def _dotted(table: dict, prefix: str = "") -> list[tuple[str, object]]:
    """A table's keys with TOML's dotted keys joined again: `density.kick = 5` written unquoted
    is the table {density: {kick: 5}} to TOML, and is the jack "density.kick" here."""
    items: list[tuple[str, object]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            items += _dotted(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


@dataclass
class ES9Board:
    """The `[es9]` table of a board file, checked. Channels are 1-based host channel numbers."""

    path: str
    input_device: str = "ES-9"
    output_device: str = "ES-9"
    samplerate: int = 48000
    blocksize: int = 64
    volts_per_unit: float = 10.0
    trigger_volts: float = 5.0
    safe_min: float = -10.0
    safe_max: float = 10.0
    latency_trim_samples: int = 0
    velocity_lead_samples: int = 2
    inputs: dict[str, int] = field(default_factory=dict)
    buttons: dict[str, int] = field(default_factory=dict)  # press action -> its gate's channel
    trigger: list[int] = field(default_factory=list)  # per engine output 1..N (index N-1)
    velocity: list[int] = field(default_factory=list)
    accent: list[int] = field(default_factory=list)  # accent n: high with trigger n's accents
    clock_out: int = 0
    reset_out: int = 0
    in_cal: dict[int, tuple[float, float]] = field(default_factory=dict)  # channel -> gain, offset
    out_cal: dict[int, tuple[float, float]] = field(default_factory=dict)
    midi: dict[str, Any] | None = None  # a [midi] table: the player's events go out as MIDI too

    @property
    def input_channels(self) -> int:
        return max([*self.inputs.values(), *self.buttons.values()], default=1)

    @property
    def output_channels(self) -> int:
        used = [*self.trigger, *self.velocity, *self.accent, self.clock_out, self.reset_out]
        return max([c for c in used if c] or [1])

    def in_scale(self, channel: int) -> tuple[float, float]:
        gain, offset = self.in_cal.get(channel, (1.0, 0.0))
        return gain * self.volts_per_unit, offset

    def to_sample(self, channel: int, volts: float) -> float:
        """Output volts -> sample value, clamped to the safe range and to +-1.0 first."""
        volts = min(self.safe_max, max(self.safe_min, volts))
        gain, offset = self.out_cal.get(channel, (1.0, 0.0))
        return float(min(1.0, max(-1.0, (volts - offset) / (gain * self.volts_per_unit))))


def parse_board(board: Any, settings: Settings | None = None) -> ES9Board:
    """Read and check a board's `[es9]` table; unknown keys are refused naming file and key."""
    path = str(getattr(board, "path", None) or getattr(board, "name", "board"))
    table = board.data.get("es9")
    if not isinstance(table, dict):
        raise ConfigError(f"board {path}: kind 'es9' needs an [es9] table")

    def fail(key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"board {path}: key 'es9.{key}' = {value!r}; allowed: {allowed}")

    for key in table:
        if key not in _ES9_KEYS:
            raise fail(key, table[key], "keys " + ", ".join(sorted(_ES9_KEYS)))

    def number(key: str, default: float, low: float, high: float, integer: bool = False) -> float:
        value = table.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not low <= value <= high or (integer and value != int(value)):
            kind = "an integer" if integer else "a number"
            raise fail(key, value, f"{kind} from {low:g} to {high:g}")
        return float(value)

    def whole(key: str, default: int, low: int, high: int) -> int:
        return int(number(key, default, low, high, integer=True))

    def channel(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
            raise fail(key, value, "a host channel number 1..64 (0 = none)")
        return value

    b = ES9Board(path=path)
    device = table.get("device", "ES-9")
    devices: dict[str, str] = {}
    for key in ("device", "input_device", "output_device"):
        value = table.get(key, device)
        if not isinstance(value, str) or not value:
            raise fail(key, value, "a non-empty substring of an audio device name")
        devices[key] = value
    b.input_device, b.output_device = devices["input_device"], devices["output_device"]
    if settings is not None and settings["es9.device"]:
        b.input_device = b.output_device = settings["es9.device"]
    b.samplerate = whole("samplerate", 48000, 8000, 192000)
    b.blocksize = whole("blocksize", 64, 0, 4096)
    b.volts_per_unit = number("volts_per_unit", 10.0, 0.1, 100.0)
    b.trigger_volts = number("trigger_volts", 5.0, 0.0, 12.0)
    b.safe_min = number("safe_min", -10.0, -12.0, 12.0)
    b.safe_max = number("safe_max", 10.0, -12.0, 12.0)
    if b.safe_min >= b.safe_max:
        raise fail("safe_min", b.safe_min, f"below safe_max ({b.safe_max:g})")
    b.latency_trim_samples = whole("latency_trim_samples", 0, -48000, 48000)
    b.velocity_lead_samples = whole("velocity_lead_samples", 2, 0, 480)

    def once(used: dict[int, str], key: str, ch: int, what: str = "") -> None:
        """A channel serves one jack: a second claim is refused naming both."""
        if ch in used:
            raise fail(key, ch, f"a channel no other jack uses ({used[ch]} has channel {ch})")
        used[ch] = f"es9.{key}{what}"

    inputs = table.get("inputs", {})
    if not isinstance(inputs, dict):
        raise fail("inputs", inputs, "a table of jack = channel")
    used_in: dict[int, str] = {}
    for jack, ch in _dotted(inputs):
        if jack not in INPUT_JACKS and jack not in PRESS_ACTIONS:
            why = " ('shift' is the panel's pot layer: the ES-9 has no pots)" \
                if jack == "shift" else ""
            raise fail(f"inputs.{jack}", ch, "jacks " + ", ".join(INPUT_JACKS)
                       + "; or buttons (a gate, pressed on its rise) "
                       + ", ".join(PRESS_ACTIONS) + why)
        if host := channel(f"inputs.{jack}", ch):
            once(used_in, f"inputs.{jack}", host)
            (b.inputs if jack in INPUT_JACKS else b.buttons)[jack] = host

    if "audio" in b.inputs and "gate" in b.inputs:
        raise fail("inputs.audio", b.inputs["audio"], "one groove source: inputs.audio (the "
                   f"onsets heard on a channel) or inputs.gate (channel {b.inputs['gate']}), "
                   "not both")

    outputs = table.get("outputs", {})
    if not isinstance(outputs, dict):
        raise fail("outputs", outputs, "a table with trigger, velocity, accent, clock, reset")
    for key, value in outputs.items():
        if key not in _OUTPUT_KEYS:
            raise fail(f"outputs.{key}", value, "keys " + ", ".join(sorted(_OUTPUT_KEYS)))
    used_out: dict[int, str] = {}
    for key in ("trigger", "velocity", "accent"):
        chans = outputs.get(key, [])
        if not isinstance(chans, list) or len(chans) > 16:
            raise fail(f"outputs.{key}", chans, "a list of host channels, one per output (0 = none)")
        setattr(b, key, [channel(f"outputs.{key}", c) for c in chans])
        for n, ch in enumerate(getattr(b, key), start=1):
            if ch:
                once(used_out, f"outputs.{key}", ch, f" (output {n})")
    b.clock_out = channel("outputs.clock", outputs.get("clock", 0))
    b.reset_out = channel("outputs.reset", outputs.get("reset", 0))
    for key, ch in (("outputs.clock", b.clock_out), ("outputs.reset", b.reset_out)):
        if ch:
            once(used_out, key, ch)

    cal = table.get("calibration", {})
    if not isinstance(cal, dict):
        raise fail("calibration", cal, "tables inputs and outputs of channel = {gain, offset}")
    for side, target in (("inputs", b.in_cal), ("outputs", b.out_cal)):
        for ch, entry in cal.get(side, {}).items():
            key = f"calibration.{side}.{ch}"
            if not (isinstance(entry, dict) and set(entry) <= {"gain", "offset"}
                    and str(ch).isdigit()):
                raise fail(key, entry, "{ gain = number, offset = volts } under a channel number")
            gain, offset = entry.get("gain", 1.0), entry.get("offset", 0.0)
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (gain, offset)) \
                    or not 0.5 <= gain <= 2.0 or abs(offset) > 2.0:
                raise fail(key, entry, "gain 0.5..2.0 and offset -2..2 V")
            target[int(ch)] = (float(gain), float(offset))
    for key in set(cal) - {"inputs", "outputs"}:
        raise fail(f"calibration.{key}", cal[key], "calibration.inputs, calibration.outputs")
    midi = board.data.get("midi")
    b.midi = dict(midi) if isinstance(midi, dict) else None
    return b
