"""The front ends, each written once and placed once per channel: the part values live here and
nowhere else (the netlist, the BOM and the SPICE decks all read them from the placed parts).

Every function takes the circuit, the board item it serves (`inputs.pitch`, `gpio_inputs.gate`,
...) and the nets it meets (an ADC or DAC pin, a GPIO); it places the jack, pot or switch with
the board item in its fields (the checks trace each item from the chip pin or header pin back to
its jack). Groups name the parts of one channel: the SPICE decks are cut from the board by group.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuits.library import (
    BAT54S,
    BUTTON,
    HCT541,
    JACK,
    LED_RED,
    LM393,
    MCP6004,
    POT,
    TL074,
    capacitor,
    resistor,
)
from circuits.netlist import GND, Circuit

P3V3, P5V, P12, N12 = "+3V3", "+5V", "+12VA", "-12VA"
VBIAS = "VBIAS"


@dataclass(frozen=True)
class Values:
    """The part values of the front ends (one place)."""

    # +-5 V CV input, inverting: V_adc = Vb(1 + Rf/Rin) - (Rf/Rin) V_jack, Vb from the bias divider
    cv_rin: str = "100k"
    cv_rf: str = "33k"
    bias_top: str = "24.9k"   # 3.3 V * 15/(24.9+15) = 1.2406 V, so that V_adc(0 V) = 1.65 V
    bias_bottom: str = "15k"
    adc_series: str = "1k"
    # 0..10 V velocity CV input: divider + follower
    vel_top: str = "68k"
    vel_bottom: str = "33k"
    # gate / clock / reset: Schmitt comparator
    cmp_series: str = "47k"
    cmp_shunt: str = "1M"
    cmp_ref_top: str = "33k"
    cmp_ref_bottom: str = "15k"
    cmp_hyst: str = "15k"
    cmp_pullup: str = "10k"
    # DAC outputs: non-inverting x(1 + Rf/Rg)
    out_rg: str = "10k"
    out_rf: tuple[str, ...] = ("12k", "2.4k")     # x2.44 behind the MCP4728
    out_rf_x3: tuple[str, ...] = ("20k",)         # x3 behind the budget board's MCP4922
    out_series: str = "1k"
    buffer_series: str = "1k"


V = Values()
OPAMP_3V3 = {"V+": P3V3, "V-": GND}
OPAMP_12 = {"V+": P12, "V-": N12}
CMP_3V3 = {"VCC": P3V3, "GND": GND}
BUF_5V = {"VCC": P5V, "GND": GND, "OE1": GND, "OE2": GND}


def jack(c: Circuit, group: str, item: str, label: str, tip: str, normalled: bool) -> None:
    """A Thonkiconn; an input's switch grounds its tip when nothing is patched."""
    c.place(JACK, group, {"S": GND, "TN": GND if normalled else None, "T": tip},
            item=item, label=label)


def bias(c: Circuit) -> None:
    """The shared +input bias of the inverting CV stages (a reference: high-impedance loads)."""
    c.place(resistor(V.bias_top), "bias", {"1": P3V3, "2": VBIAS})
    c.place(resistor(V.bias_bottom), "bias", {"1": VBIAS, "2": GND})
    c.place(capacitor("1u"), "bias", {"1": VBIAS, "2": GND})
    c.reference_nets.add(VBIAS)


def clamp(c: Circuit, group: str, net: str) -> None:
    """BAT54S: `net` held between GND - 0.3 V and 3.3 V + 0.3 V."""
    c.place(BAT54S, group, {"A": GND, "K": P3V3, "AK": net})


def cv_input(c: Circuit, item: str, label: str, adc: str) -> None:
    """+-5 V at the jack -> 3.3..0 V at `adc` (inverting, Rf/Rin = 0.33, 1.65 V at 0 V).
    The clamp sits on the summing node: a miswired +-12 V drives the op-amp into its rail and
    pulls that node away from its 1.24 V, and the BAT54S holds it inside the MCP6004's
    common-mode range (100k limits the current)."""
    g, n = f"cv_in.{item.split('.')[-1]}", label
    jack(c, g, item, label, f"{n}_JACK", normalled=True)
    c.place(resistor(V.cv_rin), g, {"1": f"{n}_JACK", "2": f"{n}_SUM"})
    clamp(c, g, f"{n}_SUM")   # at the virtual ground: never conducts inside +-5 V
    c.place(resistor(V.cv_rf), g, {"1": f"{n}_SUM", "2": f"{n}_OUT"})
    u = c.unit(MCP6004, g, OPAMP_3V3, ("+", "-", "OUT"))
    c.connect(u, **{"+": VBIAS, "-": f"{n}_SUM", "OUT": f"{n}_OUT"})
    c.place(resistor(V.adc_series), g, {"1": f"{n}_OUT", "2": adc})
    c.place(capacitor("100n"), g, {"1": adc, "2": GND})


def velocity_input(c: Circuit, item: str, label: str, adc: str) -> None:
    """0..+10 V at the jack -> 0..3.27 V at `adc` (68k/33k divider, clamp, follower)."""
    g, n = f"vel_in.{item.split('.')[-1]}", label
    jack(c, g, item, label, f"{n}_JACK", normalled=True)
    c.place(resistor(V.vel_top), g, {"1": f"{n}_JACK", "2": f"{n}_DIV"})
    c.place(resistor(V.vel_bottom), g, {"1": f"{n}_DIV", "2": GND})
    clamp(c, g, f"{n}_DIV")
    u = c.unit(MCP6004, g, OPAMP_3V3, ("+", "-", "OUT"))
    c.connect(u, **{"+": f"{n}_DIV", "-": f"{n}_OUT", "OUT": f"{n}_OUT"})
    c.place(resistor(V.adc_series), g, {"1": f"{n}_OUT", "2": adc})
    c.place(capacitor("100n"), g, {"1": adc, "2": GND})


def pot(c: Circuit, item: str, label: str, adc: str) -> None:
    """10k linear from GND (CCW) to 3.3 V (CW), wiper -> 1k -> `adc` with 100 nF."""
    g = f"pot.{item.split('.')[-1]}"
    c.place(POT, g, {"CCW": GND, "W": f"{label}_WIPER", "CW": P3V3}, item=item, label=label)
    c.place(resistor(V.adc_series), g, {"1": f"{label}_WIPER", "2": adc})
    c.place(capacitor("100n"), g, {"1": adc, "2": GND})


def gate_input(c: Circuit, item: str, label: str, gpio: str) -> None:
    """Schmitt comparator: jack high -> `gpio` pulled low (open collector, 10k pull-up)."""
    g, n = f"gate_in.{item.split('.')[-1]}", label
    jack(c, g, item, label, f"{n}_JACK", normalled=True)
    c.place(resistor(V.cmp_series), g, {"1": f"{n}_JACK", "2": f"{n}_IN"})
    c.place(resistor(V.cmp_shunt), g, {"1": f"{n}_IN", "2": GND})
    clamp(c, g, f"{n}_IN")
    c.place(resistor(V.cmp_ref_top), g, {"1": P3V3, "2": f"{n}_REF"})
    c.place(resistor(V.cmp_ref_bottom), g, {"1": f"{n}_REF", "2": GND})
    c.place(resistor(V.cmp_hyst), g, {"1": f"{n}_REF", "2": gpio})
    c.place(resistor(V.cmp_pullup), g, {"1": P3V3, "2": gpio})
    u = c.unit(LM393, g, CMP_3V3, ("+", "-", "OUT"))
    c.connect(u, **{"+": f"{n}_REF", "-": f"{n}_IN", "OUT": gpio})


def button(c: Circuit, item: str, label: str, gpio: str) -> None:
    """Momentary switch to ground (the Pi's pull-up), 100 nF across it."""
    g = f"button.{item.split('.')[-1]}"
    c.place(BUTTON, g, {"1": gpio, "2": GND}, item=item, label=label)
    c.place(capacitor("100n"), g, {"1": gpio, "2": GND})


def buffered_output(c: Circuit, item: str, label: str, gpio: str) -> None:
    """GPIO -> 74HCT541 (5 V) -> 1k -> jack: 0/5 V, short-circuit safe."""
    g, n = f"buf_out.{item.split('.')[-1]}", label
    u = c.unit(HCT541, g, BUF_5V, ("A", "Y"))
    c.connect(u, A=gpio, Y=f"{n}_BUF")
    c.place(resistor(V.buffer_series), g, {"1": f"{n}_BUF", "2": f"{n}_JACK"})
    jack(c, g, item, label, f"{n}_JACK", normalled=False)


def led(c: Circuit, item: str, label: str, gpio: str) -> None:
    """GPIO -> 74HCT541 -> 1k -> LED to ground (3 mA)."""
    g, n = f"led.{item.split('.')[-1]}", label
    u = c.unit(HCT541, g, BUF_5V, ("A", "Y"))
    c.connect(u, A=gpio, Y=f"{n}_BUF")
    c.place(resistor(V.buffer_series), g, {"1": f"{n}_BUF", "2": f"{n}_LED"})
    c.place(LED_RED, g, {"A": f"{n}_LED", "K": GND}, item=item, label=label)


def dac_output(c: Circuit, item: str, label: str, dac: str, rf: tuple[str, ...]) -> None:
    """DAC pin -> TL074 non-inverting x(1 + sum(rf)/Rg) on +-12 V -> 1k -> jack."""
    g, n = f"dac_out.{item.split('.')[-1]}", label
    u = c.unit(TL074, g, OPAMP_12, ("+", "-", "OUT"))
    c.connect(u, **{"+": dac, "-": f"{n}_FB", "OUT": f"{n}_OUT"})
    c.place(resistor(V.out_rg), g, {"1": f"{n}_FB", "2": GND})
    chain = [f"{n}_OUT", *(f"{n}_RF{i}" for i in range(1, len(rf))), f"{n}_FB"]
    for value, a, b in zip(rf, chain, chain[1:], strict=False):
        c.place(resistor(value), g, {"1": a, "2": b})
    c.place(resistor(V.out_series), g, {"1": f"{n}_OUT", "2": f"{n}_JACK"})
    jack(c, g, item, label, f"{n}_JACK", normalled=False)


SPARES = {
    "MCP6004": {"+": VBIAS, "-": "{ref}{unit}_SPARE", "OUT": "{ref}{unit}_SPARE"},
    "TL074": {"+": GND, "-": "{ref}{unit}_SPARE", "OUT": "{ref}{unit}_SPARE"},
    "LM393": {"+": GND, "-": VBIAS, "OUT": ""},
    "74HCT541": {"A": GND, "Y": ""},
}
