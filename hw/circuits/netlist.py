"""The netlist of record's data model: part types (pins, package, footprint, part number), placed
parts, named nets, and multi-unit ICs (a quad op-amp's four amplifiers) handed out one unit at a
time, so that a front end written once is placed once per channel.

A `Circuit` is built by plain Python (`frontends.py`, `boards.py`); everything else (the KiCad
netlist, the BOM, the SPICE decks, the checks) reads it. Nothing here knows a board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# pin kinds, as KiCad's electrical types name them
PASSIVE, INPUT, OUTPUT, BIDI, TRISTATE, OPEN_COLLECTOR = (
    "passive", "input", "output", "bidirectional", "tri_state", "open_collector")
POWER_IN, POWER_OUT, NO_CONNECT = "power_in", "power_out", "no_connect"
DRIVERS = (OUTPUT, POWER_OUT)   # at most one of these per net (tri-state and open collector may share)

GND = "GND"


@dataclass(frozen=True)
class Pin:
    number: str
    name: str
    kind: str = PASSIVE


@dataclass(frozen=True)
class PartType:
    """What a BOM line is: one orderable part."""

    key: str                    # library name, e.g. "TL074" or "R_0805"
    prefix: str                 # reference prefix: R, C, U, D, J, RV, SW
    value: str
    description: str
    manufacturer: str
    mpn: str
    package: str
    footprint: str              # KiCad library:footprint
    pins: tuple[Pin, ...]
    units: tuple[tuple[str, ...], ...] = ()   # multi-unit ICs: pin names of each unit
    supplies: tuple[str, ...] = ()            # pin names that take a supply (power_in)
    grounds: tuple[str, ...] = ()             # pin names that go to ground
    spice: str = ""             # the SPICE model a unit or part is simulated with ("" = none)
    datasheet: str = ""
    note: str = ""

    def pin(self, name_or_number: str) -> Pin:
        for p in self.pins:
            if name_or_number in (p.name, p.number):
                return p
        raise KeyError(f"{self.key}: no pin {name_or_number!r} "
                       f"(pins: {', '.join(p.name for p in self.pins)})")


@dataclass
class Part:
    """A placed part: its type, reference and which net each pin is on."""

    ref: str
    type: PartType
    nets: dict[str, str] = field(default_factory=dict)     # pin number -> net name
    groups: dict[str, str] = field(default_factory=dict)   # pin number -> front-end group
    fields: dict[str, str] = field(default_factory=dict)   # extra fields (board item, address)
    group: str = ""             # the group of a single-unit part (all its pins)
    used_units: list[int] = field(default_factory=list)

    def net(self, pin: str) -> str | None:
        return self.nets.get(self.type.pin(pin).number)

    def group_of(self, pin_number: str) -> str:
        return self.groups.get(pin_number, self.group)


@dataclass(frozen=True)
class Unit:
    """One unit of a multi-unit IC as handed to a front end: `pins[name]` is its pin number."""

    part: Part
    index: int                  # 0-based
    pins: dict[str, str]        # the unit's pin names (generic: "+", "-", "OUT") -> pin numbers

    @property
    def label(self) -> str:
        return f"{self.part.ref}{'ABCDEFGH'[self.index]}"


def _split_ref(ref: str) -> tuple[str, int]:
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    assert m, ref
    return m.group(1), int(m.group(2))


class Circuit:
    """Parts and nets of one board, built front end by front end."""

    def __init__(self, name: str, title: str) -> None:
        self.name = name
        self.title = title
        self.parts: dict[str, Part] = {}
        self.counters: dict[str, int] = {}
        self.reference_nets: set[str] = set()   # shared references (a bias): traced through by no one
        self.supply_nets: set[str] = {GND}

    # --- placing
    def place(self, ptype: PartType, group: str, pins: dict[str, str | None],
              **fields: str) -> Part:
        """Place one part; `pins` maps pin names (or numbers) to nets (None: not connected).
        Every pin must be named: a pin left out is an error, so nothing floats by accident."""
        n = self.counters.get(ptype.prefix, 0) + 1
        self.counters[ptype.prefix] = n
        part = Part(f"{ptype.prefix}{n}", ptype, group=group, fields=dict(fields))
        named = {ptype.pin(k).number: v for k, v in pins.items()}
        missing = [p.name for p in ptype.pins if p.number not in named]
        if missing and not ptype.units:
            raise ValueError(f"{part.ref} ({ptype.key}, {group}): pins not given: {missing}")
        for number, net in named.items():
            if net is not None:
                part.nets[number] = net
        self.parts[part.ref] = part
        return part

    def unit(self, ptype: PartType, group: str, supplies: dict[str, str],
             names: tuple[str, ...]) -> Unit:
        """The next free unit of a `ptype` whose supply pins are on `supplies` (a new package,
        with its supplies connected, when none is free). `names` label the unit's pins in the
        order `ptype.units` lists them."""
        for part in self.parts.values():
            if (part.type is ptype and len(part.used_units) < len(ptype.units)
                    and all(part.net(p) == n for p, n in supplies.items())):
                break
        else:
            part = self.place(ptype, "", {**supplies})
        index = next(i for i in range(len(ptype.units)) if i not in part.used_units)
        part.used_units.append(index)
        numbers = [ptype.pin(p).number for p in ptype.units[index]]
        for number in numbers:
            part.groups[number] = group
        return Unit(part, index, dict(zip(names, numbers, strict=True)))

    def connect(self, unit: Unit, **pins: str) -> None:
        """Put a unit's pins (by their generic names) on nets."""
        for name, net in pins.items():
            unit.part.nets[unit.pins[name]] = net

    def finish_units(self, spare: dict[str, dict[str, str]]) -> None:
        """Wire every unused unit of every multi-unit IC as `spare[type key]` says (generic
        pin names -> nets), so no input floats."""
        for part in list(self.parts.values()):
            t = part.type
            if not t.units:
                continue
            for i in range(len(t.units)):
                if i in part.used_units:
                    continue
                wiring = spare[t.key]
                numbers = [t.pin(p).number for p in t.units[i]]
                names = list(wiring)
                for name, number in zip(names, numbers, strict=True):
                    net = wiring[name].format(ref=part.ref, unit="ABCDEFGH"[i])
                    if net:
                        part.nets[number] = net
                    part.groups[number] = "spare"

    # --- reading
    def nets(self) -> dict[str, list[tuple[Part, Pin]]]:
        """net name -> the (part, pin) on it, in reference order."""
        out: dict[str, list[tuple[Part, Pin]]] = {}
        for part in sorted(self.parts.values(), key=lambda p: _split_ref(p.ref)):
            for pin in part.type.pins:
                net = part.nets.get(pin.number)
                if net is not None:
                    out.setdefault(net, []).append((part, pin))
        return dict(sorted(out.items()))

    def sorted_parts(self) -> list[Part]:
        return sorted(self.parts.values(), key=lambda p: _split_ref(p.ref))

    def group_parts(self, *groups: str) -> list[tuple[Part, list[Pin]]]:
        """Parts (or units) in any of `groups`, with their pins in the group."""
        out = []
        for part in self.sorted_parts():
            pins = [p for p in part.type.pins if part.group_of(p.number) in groups]
            if pins:
                out.append((part, pins))
        return out

    def tagged(self, key: str, value: str) -> list[Part]:
        return [p for p in self.sorted_parts() if p.fields.get(key) == value]
