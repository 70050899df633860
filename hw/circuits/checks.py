"""Checks of a circuit on its own (an electrical rules check) and against its board file.

`erc(circuit)`: every net has at least two pins; every IC's supply and ground pins are on a
powered net and on GND; no two outputs drive one net. `against_board(circuit, board)`: every
jack, pot, button and LED the board file declares is on the circuit and reaches the chip
channel or Pi header pin the board file names, every chip sits on the bus, select line and
address the board file names. Each returns a list of problems (empty = good).
"""

from __future__ import annotations

from typing import Any

from circuits.library import PI_PIN_BY_GPIO
from circuits.netlist import DRIVERS, GND, POWER_OUT, Circuit, Part

# pass-through pairs of parts that are not multi-unit ICs (a signal crosses them)
THROUGH = {"PCA9306": (("SDA1", "SDA2"), ("SCL1", "SCL2"))}
ENDPOINTS = ("J", "RV", "SW")        # jacks, pots, switches end a trace (and LEDs, by key)
SPI_PINS = {"mcp3208": ("CS", "DIN", "DOUT", "CLK"), "mcp4922": ("CS", "SDI", None, "SCK")}
SPI_NETS = (None, 10, 9, 11)         # CS from spi_device; MOSI, MISO, SCLK GPIOs
CE_GPIO = {0: 8, 1: 7}
ADS1115_ADDRESS = {GND: 0x48, "+3V3": 0x49, "I2C_SDA": 0x4A, "I2C_SCL": 0x4B}


def erc(c: Circuit) -> list[str]:
    problems: list[str] = []
    nets = c.nets()
    powered = {n for n, pins in nets.items() if any(p.kind == POWER_OUT for _, p in pins)}
    grown = True
    while grown:   # a supply reaches on through the power section's diodes and rail filters
        grown = False
        for part in c.sorted_parts():
            two = [n for n in part.nets.values()]
            if part.group in ("power", "vref") and len(part.type.pins) == 2 and len(two) == 2:
                new = set(two) - powered - {GND}
                if powered & set(two) and new:
                    powered |= new
                    grown = True
    for net, pins in nets.items():
        if len(pins) < 2:
            problems.append(f"net {net}: only one pin ({pins[0][0].ref}.{pins[0][1].name})")
        drivers = {(part.ref, part.groups.get(pin.number, "")) for part, pin in pins
                   if pin.kind in DRIVERS}
        if len(drivers) > 1 and net != GND:
            problems.append(f"net {net}: driven by {len(drivers)} outputs "
                            f"({', '.join(sorted(r for r, _ in drivers))})")
    for part in c.sorted_parts():
        t = part.type
        for name in t.supplies:
            supply = part.net(name)
            if supply is None or supply not in powered:
                problems.append(f"{part.ref} ({t.key}) supply pin {name}: on {supply}, no supply")
        for name in t.grounds:
            if part.net(name) != GND:
                problems.append(f"{part.ref} ({t.key}) ground pin {name}: on {part.net(name)}")
        if t.prefix == "U":
            for pin in t.pins:
                if pin.kind not in ("no_connect", "open_collector", "output", "tri_state",
                                    "passive") and pin.number not in part.nets:
                    problems.append(f"{part.ref} ({t.key}) input pin {pin.name} floats")
    if "+5V" not in powered:
        problems.append("+5V: no regulator output on it")
    return problems


def _neighbours(c: Circuit, part: Part, number: str) -> list[str]:
    """Nets a signal entering `part` at pin `number` reaches (through a resistor, an amplifier
    or buffer unit, a level translator)."""
    t = part.type
    name = next(p.name for p in t.pins if p.number == number)
    if t.prefix == "R" and len(t.pins) == 2:
        other = "2" if number == "1" else "1"
        return [n for n in (part.nets.get(other),) if n]
    for pair in THROUGH.get(t.key, ()):
        if name in pair:
            return [n for n in (part.net(p) for p in pair) if n]
    for unit in t.units:
        if name in unit:
            return [n for n in (part.net(p) for p in unit) if n]
    return []


def trace(c: Circuit, start: str) -> set[str]:
    """The board items (jacks, pots, buttons, LEDs) a net reaches through the signal path,
    never crossing a supply or a shared reference net."""
    nets = c.nets()
    seen, todo, found = {start}, [start], set()
    stop = c.supply_nets | c.reference_nets
    while todo:
        net = todo.pop()
        for part, pin in nets.get(net, []):
            if "item" in part.fields:
                found.add(part.fields["item"])
                continue
            for nxt in _neighbours(c, part, pin.number):
                if nxt not in seen and nxt not in stop:
                    seen.add(nxt)
                    todo.append(nxt)
    return found


def _header_net(c: Circuit, gpio: int) -> str | None:
    header = next(p for p in c.sorted_parts() if p.type.key == "PI40")
    return header.nets.get(str(PI_PIN_BY_GPIO[gpio]))


def against_board(c: Circuit, board: Any) -> list[str]:
    problems: list[str] = []
    chips = {p.fields["chip"]: p for p in c.sorted_parts() if "chip" in p.fields}
    items = {p.fields["item"]: p for p in c.sorted_parts() if "item" in p.fields}

    # chips: part, bus, select line / address
    for name, chip in board.chips.items():
        part = chips.get(name)
        if part is None:
            problems.append(f"chips.{name} ({chip.part}): no such chip on the circuit")
            continue
        if part.type.key.lower() != chip.part:
            problems.append(f"chips.{name}: board says {chip.part}, circuit has {part.type.key}")
            continue
        if chip.bus == "spi":
            for pin, gpio in zip(SPI_PINS[chip.part], (CE_GPIO.get(chip.device), 10, 9, 11),
                                 strict=True):
                if pin is None or gpio is None:
                    continue
                if part.net(pin) is None or part.net(pin) != _header_net(c, gpio):
                    problems.append(f"chips.{name} {pin}: on {part.net(pin)}, the board file's "
                                    f"SPI{chip.bus_number}.{chip.device} is GPIO {gpio} "
                                    f"({_header_net(c, gpio)})")
        else:
            for pin, gpio in (("SDA", 2), ("SCL", 3)):
                net = part.net(pin)
                header = _header_net(c, gpio)
                reached = {net} | _through(c, net or "")
                if header not in reached:
                    problems.append(f"chips.{name} {pin}: on {net}, not on the Pi's I2C1 "
                                    f"(GPIO {gpio})")
            if chip.part == "ads1115":
                address = ADS1115_ADDRESS.get(part.net("ADDR") or "")
            else:
                address = int(part.fields.get("address", "0x60"), 16)
            if address != chip.device:
                problems.append(f"chips.{name}: I2C address 0x{chip.device:02x} in the board "
                                f"file, the circuit sets {address}")
    # analogue inputs and pots: the chip channel's net reaches the item's jack / pot
    for kind, table in (("inputs", board.inputs), ("pots", board.pots)):
        for name, item in table.items():
            problems += _reaches(c, chips, items, f"{kind}.{name}", item.chip,
                                 f"{'AIN' if board.chips[item.chip].part == 'ads1115' else 'CH'}"
                                 f"{item.channel}")
    for name, out in board.outputs.items():
        pin = f"VOUT{'ABCD'[out.channel]}"
        problems += _reaches(c, chips, items, f"outputs.{name}", out.chip, pin)
    for kind, table in (("gpio_inputs", board.gpio_inputs), ("gpio_outputs", board.gpio_outputs)):
        for name, item in table.items():
            key = f"{kind}.{name}"
            net = _header_net(c, item.pin)
            if key not in items:
                problems.append(f"{key}: no jack, switch or LED for it on the circuit")
            elif net is None:
                problems.append(f"{key}: GPIO {item.pin} (pin {PI_PIN_BY_GPIO[item.pin]}) is "
                                "not connected on the circuit")
            elif trace(c, net) != {key}:
                problems.append(f"{key}: GPIO {item.pin} (net {net}) reaches "
                                f"{sorted(trace(c, net)) or 'nothing'}")
    # the other way round: every header GPIO the circuit wires is one the board file names
    named = {i.pin for i in board.gpio_inputs.values()} | {o.pin for o in board.gpio_outputs.values()}
    for chip in board.chips.values():
        if chip.bus == "spi":
            named |= {10, 11, CE_GPIO[chip.device]} | ({9} if chip.part == "mcp3208" else set())
        else:
            named |= {2, 3}
    header = next(p for p in c.sorted_parts() if p.type.key == "PI40")
    for gpio, pin in sorted(PI_PIN_BY_GPIO.items()):
        if header.nets.get(str(pin)) and gpio not in named:
            problems.append(f"GPIO {gpio} (pin {pin}, net {header.nets[str(pin)]}): wired on the "
                            "circuit, named nowhere in the board file")
    declared = ({f"inputs.{n}" for n in board.inputs} | {f"pots.{n}" for n in board.pots}
                | {f"outputs.{n}" for n in board.outputs}
                | {f"gpio_inputs.{n}" for n in board.gpio_inputs}
                | {f"gpio_outputs.{n}" for n in board.gpio_outputs})
    for extra in sorted(set(items) - declared):
        problems.append(f"{extra}: on the circuit, not in the board file")
    return problems


def _through(c: Circuit, net: str) -> set[str]:
    out = set()
    for part, pin in c.nets().get(net, []):
        for pair in THROUGH.get(part.type.key, ()):
            if pin.name in pair:
                out |= {n for n in (part.net(p) for p in pair) if n}
    return out


def _reaches(c: Circuit, chips: dict[str, Part], items: dict[str, Part], key: str,
             chip: str, pin: str) -> list[str]:
    if key not in items:
        return [f"{key}: no jack or pot for it on the circuit"]
    part = chips.get(chip)
    if part is None:
        return [f"{key}: chip {chip} is not on the circuit"]
    net = part.net(pin)
    if net is None:
        return [f"{key}: {part.ref} ({chip}) {pin} is not connected"]
    got = trace(c, net)
    if got != {key}:
        return [f"{key}: {part.ref} ({chip}) {pin} reaches {sorted(got) or 'nothing'}"]
    return []
