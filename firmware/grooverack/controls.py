"""Raw inputs -> control values: the one door (Mutable Instruments' cv_reader / cv_scaler).

Every back end turns what it reads into a 0..1 *position* (a pot's code over its full scale, a CV's
volts times `cv_per_volt`, a MIDI CC over 127, an ES-9 sample block's mean volts, a virtual patch's
pot) and lets this module do the rest:

    ControlRange.for_key(name, low, high)   the control's range, from the config schema once
                                            (a board may narrow it, never widen it)
        .value(position) -> value           0..1 -> schema units (clamped; ints rounded, choices
                                            picked)
        .position(value) -> 0..1            the inverse (where a pot starts)
    ControlReader(range, ...)               pot position + cv_per_volt * CV volts, summed,
        .pot(position) / .cv(volts)         clamped to 0..1, one-pole smoothing of each input,
        .read() -> value or None            a hysteresis band that snaps to the ends; `read`
                                            returns the new value when the control moved

    SchmittGate(rise, fall)                 a gate, clock, reset, fill or button read as volts:
        .update(volts) -> level or None     high at or above `rise`, low at or below `fall`
        .edges(block) -> (rising, falling)  the same over a block of samples (the ES-9)

    GenerationControls                      what generation reads (follow, morph, uncertainty,
        .from_settings(settings)            densities, mutes, style, generation.*), one frozen
        .with_value(key, value)             value checked against the schema when made: a
        .value(key)                         control that moves makes a new one
                                            (`dataclasses.replace`); the engine hands it whole
                                            to its generator with each request

Smoothing, hysteresis and Schmitt triggers live here and nowhere else. Pure: no I/O, no clock, no
globals written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from grooverack.config import SCHEMA, Key, canonical_key
from grooverack.errors import ConfigError
from grooverack.voices import NUM_VOICES, VOICE_GROUPS, VOICE_NAMES

CC_MAX = 127  # a MIDI CC value over this is a 0..1 position


class SchmittGate:
    """A gate read as volts, the one Schmitt trigger of every input that is a level (the panel's
    ADC fill input, the ES-9's sample blocks, the virtual patch, the emulated comparators): high
    at or above `rise`, low again at or below `fall`."""

    def __init__(self, rise: float, fall: float) -> None:
        self.rise, self.fall = rise, fall
        self.high = False

    @classmethod
    def centred(cls, threshold: float, hysteresis: float) -> SchmittGate:
        """A threshold with a hysteresis band around it (the ES-9's `es9.threshold` /
        `es9.hysteresis`)."""
        return cls(threshold + hysteresis / 2, threshold - hysteresis / 2)

    def update(self, volts: float) -> bool | None:
        """The new level when `volts` changed it, else None."""
        high = volts > self.fall if self.high else volts >= self.rise
        if high == self.high:
            return None
        self.high = high
        return high

    def edges(self, volts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rising, falling) sample indices of a block, in order; the level carries over."""
        above, below = volts >= self.rise, volts <= self.fall
        idx = np.flatnonzero(above | below)
        if idx.size == 0:
            return idx, idx
        states = above[idx]
        prev = np.concatenate(([self.high], states[:-1]))
        change = states != prev
        self.high = bool(states[-1])
        return idx[change & states], idx[change & ~states]


def smoothing_alpha(cutoff_hz: float, period_s: float) -> float:
    """The one-pole coefficient for a low-pass at `cutoff_hz` updated every `period_s`."""
    return 1.0 - math.exp(-2 * math.pi * cutoff_hz * period_s)


def cc_position(value: int) -> float:
    """A MIDI CC value 0..127 -> a 0..1 position."""
    return value / float(CC_MAX)


def _clamp01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


@dataclass(frozen=True)
class ControlRange:
    """The values a control moves over: `low` at position 0, `high` at position 1 (linear)."""

    name: str
    low: float
    high: float
    kind: type = float
    choices: tuple[Any, ...] | None = None

    @classmethod
    def for_key(cls, name: str, low: float | None = None, high: float | None = None,
                source: str = "") -> ControlRange:
        """The range of config key `name` from the schema; `low`/`high` (a board's) may narrow
        it, never widen it: ConfigError names the key, the value and the allowed range."""
        where = f" (in {source})" if source else ""
        key = SCHEMA.get(name)
        if key is None:
            raise ConfigError(f"control {name!r}{where} is not a config key")
        if key.choices is not None:
            if low is not None or high is not None:
                raise ConfigError(f"config key {name!r}{where}: a low/high range is not allowed; "
                                  f"its values are {key.allowed()}")
            return cls(name, 0.0, float(len(key.choices) - 1), key.kind, tuple(key.choices))
        if key.kind is bool:
            return cls(name, 0.0, 1.0, bool)
        k_low = 0.0 if key.low is None else float(key.low)
        k_high = 1.0 if key.high is None else float(key.high)
        lo = k_low if low is None else float(low)
        hi = k_high if high is None else float(high)
        for what, v in (("low", lo), ("high", hi)):
            outside = ((key.low is not None and v < key.low)
                       or (key.high is not None and v > key.high))
            if not math.isfinite(v) or outside:
                raise ConfigError(f"config key {name!r}{where}: {what} = {v:g} is not allowed; "
                                  f"allowed: within {key.allowed()}")
        if lo == hi:
            raise ConfigError(f"config key {name!r}{where}: low and high are both {lo:g}; "
                              f"allowed: two different values within {key.allowed()}")
        return cls(name, lo, hi, key.kind)

    def value(self, position: float) -> Any:
        """A position (clamped to 0..1) -> the value in schema units."""
        p = _clamp01(float(position))
        if self.choices is not None:
            return self.choices[int(round(p * (len(self.choices) - 1)))]
        if self.kind is bool:
            return p >= 0.5
        v = self.low + (self.high - self.low) * p
        if self.kind is int:
            return int(round(v))
        return v

    def position(self, value: Any) -> float:
        """A value in schema units -> its 0..1 position (clamped)."""
        if self.choices is not None:
            n = len(self.choices) - 1
            return self.choices.index(value) / n if n else 0.0
        if self.kind is bool:
            return 1.0 if value else 0.0
        return _clamp01((float(value) - self.low) / (self.high - self.low))


class ControlReader:
    """One control from its inputs: `pot(position)` and `cv(volts)` as they are read (each
    smoothed by a one-pole low-pass with `alpha`, 1.0 = none), then `read()` once per scan.

    position = clamp(pot + cv_per_volt * cv, 0, 1); within `hysteresis` of an end it snaps to
    that end. `read` returns the control's new value when the position moved by more than the
    hysteresis from the last one reported, or reached an end it was not at (not on the first
    read: a pot resting near an end does not override the configuration at start); else None.
    A reader with `has_pot` waits for a pot reading; without, for a CV reading (a bare CV jack).
    """

    def __init__(self, control: ControlRange, *, cv_per_volt: float = 0.0, alpha: float = 1.0,
                 hysteresis: float = 0.0, start: Any = None, has_pot: bool = True) -> None:
        self.range = control
        self.cv_per_volt = cv_per_volt
        self.alpha = alpha
        self.hysteresis = hysteresis
        self.has_pot = has_pot
        self.reported: float | None = None if start is None else control.position(start)
        self._pot: float | None = None
        self._cv: float | None = None
        self.first = True

    def _smooth(self, y: float | None, x: float) -> float:
        return x if y is None else y + self.alpha * (x - y)

    def pot(self, position: float) -> None:
        self._pot = self._smooth(self._pot, _clamp01(position))

    def cv(self, volts: float) -> None:
        self._cv = self._smooth(self._cv, volts)

    def position(self) -> float | None:
        """The summed, clamped, end-snapped position now (None before the first reading)."""
        if (self._pot if self.has_pot else self._cv) is None:
            return None
        p = (self._pot or 0.0) + self.cv_per_volt * (self._cv or 0.0)
        p = _clamp01(p)
        h = self.hysteresis
        if p <= h:
            p = 0.0
        elif p >= 1.0 - h:
            p = 1.0
        return p

    def read(self) -> Any:
        """The new value when the control moved, else None (call once per scan)."""
        first, self.first = self.first, False
        p = self.position()
        if p is None:
            return None
        r = self.reported
        if r is None or abs(p - r) > self.hysteresis or (p in (0.0, 1.0) and p != r and not first):
            self.reported = p
            return self.range.value(p)
        return None


# --- what generation reads ------------------------------------------------------------------------

# config key -> GenerationControls field (the scalar controls)
_SCALARS: dict[str, str] = {
    "follow": "follow", "morph": "morph", "uncertainty": "uncertainty", "density": "density",
    "genre": "genre", "generation.seed": "seed", "generation.max_count": "max_count",
    "generation.mode": "mode", "generation.on_mute": "on_mute",
    "generation.kit_cap": "kit_cap", "generation.anchor": "anchor",
    "generation.colour_follow": "colour_follow", "generation.kit_floor": "kit_floor",
    "generation.kit_floor_fills": "kit_floor_fills", "generation.kit_cap_ab": "kit_cap_ab",
    "generation.kit_random_round": "kit_random_round",
}
# key families, one key per voice: prefix -> field (a tuple in voices.VOICE_NAMES order)
_PER_VOICE: dict[str, str] = {"density.": "voice_density", "mute.": "mutes"}
# config key -> (field, index in a per-voice tuple or None)
_PLACES: dict[str, tuple[str, int | None]] = {
    **{key: (name, None) for key, name in _SCALARS.items()},
    **{f"{prefix}{voice}": (name, i) for prefix, name in _PER_VOICE.items()
       for i, voice in enumerate(VOICE_NAMES)},
}
# Every config key generation reads: a change of one asks the generator for a new pattern.
GENERATION_KEYS: tuple[str, ...] = tuple(_PLACES)


def _default(key: str) -> Any:
    return SCHEMA[key].default


class _Check:
    """One config key's range as the quick test of `GenerationControls.__post_init__` reads it:
    a value already of the key's type and in its range passes at the cost of two comparisons (a
    pot that moves makes a new GenerationControls, on the loop that reads the pot); any other
    goes through the schema's `Key.validate` (coerced to the key's type, or a ConfigError naming
    the key, the value and what is allowed)."""

    __slots__ = ("key", "kind", "low", "high", "choices", "ranged")

    def __init__(self, key: Key) -> None:
        self.key, self.kind, self.choices = key, key.kind, key.choices
        self.low = -math.inf if key.low is None else float(key.low)
        self.high = math.inf if key.high is None else float(key.high)
        self.ranged = key.kind is int or key.kind is float

    def same_range(self, other: _Check) -> bool:
        return (self.kind, self.low, self.high, self.choices) == (
            other.kind, other.low, other.high, other.choices)


# (field, its check) of the scalar controls
_SCALAR_CHECKS: tuple[tuple[str, _Check], ...] = tuple(
    (name, _Check(SCHEMA[key])) for key, name in _SCALARS.items())
# per-voice field -> its keys' checks, voice by voice (one range for the whole family)
_VOICE_CHECKS: dict[str, tuple[_Check, ...]] = {
    name: tuple(_Check(SCHEMA[prefix + voice]) for voice in VOICE_NAMES)
    for prefix, name in _PER_VOICE.items()}
assert all(c.same_range(checks[0]) for checks in _VOICE_CHECKS.values() for c in checks)


@dataclass(frozen=True)
class GenerationControls:
    """What generation reads, as one frozen value checked when it is made.

    Each field is a config key's value (`GENERATION_KEYS`; the per-voice ones as tuples in
    `voices.VOICE_NAMES` order), checked against the schema in `__post_init__`: a value out of
    range is a ConfigError naming the key, the value and what is allowed, and the generator,
    the sampler and the rules never clamp or check it again. A control that moves makes a new
    value (`with_value`, `dataclasses.replace`); a request to the generator holds the one it was
    made with, so the worker never reads what the real-time thread changes.
    """

    follow: float = _default("follow")
    morph: float = _default("morph")
    uncertainty: float = _default("uncertainty")
    density: float = _default("density")
    voice_density: tuple[float, ...] = tuple(_default(f"density.{v}") for v in VOICE_NAMES)
    mutes: tuple[bool, ...] = tuple(_default(f"mute.{v}") for v in VOICE_NAMES)
    genre: str = _default("genre")      # the style's name; the engine checks it with the model
    seed: int = _default("generation.seed")
    max_count: int = _default("generation.max_count")
    mode: str = _default("generation.mode")
    on_mute: str = _default("generation.on_mute")
    kit_cap: float = _default("generation.kit_cap")
    anchor: bool = _default("generation.anchor")
    colour_follow: float = _default("generation.colour_follow")
    kit_floor: float = _default("generation.kit_floor")
    kit_floor_fills: float = _default("generation.kit_floor_fills")
    kit_cap_ab: float = _default("generation.kit_cap_ab")
    kit_random_round: bool = _default("generation.kit_random_round")

    def __post_init__(self) -> None:
        # the one range check of what generation reads (the schema's, as every entry has it);
        # a field is set again only when the schema's check changed its type (1 -> 1.0)
        for name, c in _SCALAR_CHECKS:
            v = getattr(self, name)
            cls: type = v.__class__  # exactly the key's type: a bool is no int here
            if (cls is not c.kind or (c.choices is not None and v not in c.choices)
                    or (c.ranged and not c.low <= v <= c.high)):   # NaN is in no range
                object.__setattr__(self, name, c.key.validate(v))
        for prefix, name in _PER_VOICE.items():
            values = getattr(self, name)
            c = _VOICE_CHECKS[name][0]
            if (values.__class__ is tuple and len(values) == NUM_VOICES
                    and all(v.__class__ is c.kind for v in values)
                    and (not c.ranged or all(c.low <= v <= c.high for v in values))):
                continue
            if not isinstance(values, tuple | list) or len(values) != NUM_VOICES:
                raise ConfigError(
                    f"control {name!r}: value {values!r} is not allowed; allowed: {NUM_VOICES} "
                    f"values, one per voice ({', '.join(VOICE_NAMES)}), each as "
                    f"{prefix}<voice> allows: {SCHEMA[prefix + VOICE_NAMES[0]].allowed()}")
            object.__setattr__(self, name, tuple(
                check.key.validate(x) for check, x in zip(_VOICE_CHECKS[name], values,
                                                          strict=True)))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GenerationControls:
        """The controls of a configuration (`config.Settings`, or any key -> value mapping)."""
        fields: dict[str, Any] = {name: settings[key] for key, name in _SCALARS.items()}
        for prefix, name in _PER_VOICE.items():
            fields[name] = tuple(settings[prefix + voice] for voice in VOICE_NAMES)
        return cls(**fields)

    def with_value(self, key: str, value: Any) -> GenerationControls:
        """A new value with config key `key` (e.g. "follow", "density.kick", "mute.ride",
        "generation.seed") at `value`, every other control kept; checked as the schema says."""
        name, index = _place(key)
        if index is not None:  # one voice of a per-voice tuple
            values = list(getattr(self, name))
            values[index] = value
            value = tuple(values)
        changed: dict[str, Any] = {name: value}
        return dataclasses.replace(self, **changed)

    def value(self, key: str) -> Any:
        """The value of config key `key`."""
        name, index = _place(key)
        field = getattr(self, name)
        return field if index is None else field[index]

    def as_settings(self) -> dict[str, Any]:
        """Every generation key -> its value (what `from_settings` reads back)."""
        return {key: self.value(key) for key in GENERATION_KEYS}

    def effective_density(self) -> tuple[float, ...]:
        """Per voice: min(1, 2 * density * density.<voice>) (0.5 and 0.5 -> 0.5; 0 -> silent)."""
        twice = 2.0 * self.density
        return tuple(min(1.0, twice * d) for d in self.voice_density)

    def removed_groups(self) -> tuple[bool, ...]:
        """Per voice group (voices.VOICE_GROUPS order): muted whole with on_mute = revoice, so a
        model with voice redistribution re-voices the groove onto the remaining instruments."""
        revoice = self.on_mute == "revoice"
        return tuple(revoice and all(self.mutes[VOICE_NAMES.index(v)] for v in voices)
                     for voices in VOICE_GROUPS.values())


def _place(key: str) -> tuple[str, int | None]:
    """Where config key `key` sits in GenerationControls: (field, index or None)."""
    place = _PLACES.get(canonical_key(key))
    if place is None:
        raise ConfigError(f"control {key!r} is not read by generation; allowed: "
                          f"{', '.join(_SCALARS)}, density.<voice>, mute.<voice>")
    return place


__all__ = ["CC_MAX", "GENERATION_KEYS", "ControlRange", "ControlReader", "GenerationControls",
           "cc_position", "smoothing_alpha"]
