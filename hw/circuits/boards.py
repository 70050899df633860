"""The reference and budget boards as circuits: which front end serves which board item on
which chip channel or GPIO. `tests/test_hw_netlist.py` checks every line here against
`hw/boards/NAME.toml` (pins, channels, chips, buses, addresses), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from circuits import frontends as fe
from circuits.frontends import N12, P3V3, P5V, P12, V
from circuits.library import (
    ADS1115,
    EURO_POWER,
    MCP3208,
    MCP4728,
    MCP4922,
    PCA9306,
    PI_GND,
    PI_GPIO_BY_PIN,
    PI_HEADER,
    PI_PIN_BY_GPIO,
    SCHOTTKY_1A,
    SCHOTTKY_3A,
    SOLDER_JUMPER,
    TSR3_2450,
    capacitor,
    resistor,
)
from circuits.netlist import GND, Circuit

# Pi header functions (BCM GPIO -> net) shared by both boards
SPI = {10: "SPI_MOSI", 9: "SPI_MISO", 11: "SPI_SCLK", 8: "SPI_CE0", 7: "SPI_CE1"}
I2C = {2: "I2C_SDA", 3: "I2C_SCL"}
I2C5 = ("I2C5_SDA", "I2C5_SCL")   # the 5 V side of the PCA9306
VREF_ADC, VREF_DAC = "VREF_ADC", "VREF_DAC"


def _power(c: Circuit) -> None:
    """Bus header -> reverse-protection Schottkys -> +12 V (regulator) and filtered +-12 VA."""
    c.place(EURO_POWER, "power", {
        **{f"-12V_{i}": "-12V_BUS" for i in (1, 2)},
        **{f"GND_{i}": GND for i in range(3, 9)},
        **{f"+12V_{i}": "+12V_BUS" for i in (9, 10)}})
    c.place(SCHOTTKY_3A, "power", {"A": "+12V_BUS", "K": "+12V"})
    c.place(SCHOTTKY_1A, "power", {"A": "-12V", "K": "-12V_BUS"})
    c.place(capacitor("47u"), "power", {"+": "+12V", "-": GND})
    c.place(resistor("10"), "power", {"1": "+12V", "2": P12})
    c.place(capacitor("10u"), "power", {"1": P12, "2": GND})
    c.place(resistor("10"), "power", {"1": "-12V", "2": N12})
    c.place(capacitor("10u"), "power", {"1": GND, "2": N12})
    c.place(TSR3_2450, "power", {"VIN": "+12V", "GND": GND, "VOUT": P5V, "ON_OFF": None,
                                 "TRIM": None})
    c.place(capacitor("47u"), "power", {"+": P5V, "-": GND})
    c.supply_nets |= {"+12V", "-12V", P12, N12, P5V, P3V3, "+12V_BUS", "-12V_BUS"}


def _pi(c: Circuit, gpio_nets: dict[int, str]) -> None:
    """The Pi's header: power, SPI0, I2C1 and the GPIOs the board uses (others unconnected)."""
    nets: dict[str, str | None] = {}
    for pin in range(1, 41):
        if pin in (1, 17):
            nets[str(pin)] = P3V3
        elif pin in (2, 4):
            nets[str(pin)] = P5V
        elif pin in PI_GND:
            nets[str(pin)] = GND
        else:
            nets[str(pin)] = gpio_nets.get(PI_GPIO_BY_PIN[pin])
    c.place(PI_HEADER, "pi", nets)


def _vref(c: Circuit, net: str) -> None:
    c.place(resistor("10"), "vref", {"1": P3V3, "2": net})
    c.place(capacitor("1u"), "vref", {"1": net, "2": GND})


def _mcp3208(c: Circuit, chip: str, ce: int, channels: dict[int, str]) -> None:
    c.place(MCP3208, "adc", {**{f"CH{i}": channels.get(i, GND) for i in range(8)},
                             "DGND": GND, "AGND": GND, "VDD": P3V3, "VREF": VREF_ADC,
                             "CS": SPI[{0: 8, 1: 7}[ce]], "DIN": "SPI_MOSI",
                             "DOUT": "SPI_MISO", "CLK": "SPI_SCLK"}, chip=chip)


def _mcp4728(c: Circuit, chip: str, address: int, outs: list[str]) -> None:
    ldac = f"{chip.upper()}_LDAC"   # to GND through a solder jumper: cut it to re-address
    c.place(SOLDER_JUMPER, "dac", {"1": ldac, "2": GND})
    c.place(MCP4728, "dac", {"VDD": P5V, "VSS": GND, "SCL": I2C5[1], "SDA": I2C5[0],
                             "LDAC": ldac, "RDY": None,
                             **{f"VOUT{'ABCD'[i]}": outs[i] for i in range(4)}},
            chip=chip, address=f"0x{address:02x}",
            variant={0x60: "MCP4728-E/UN", 0x61: "MCP4728A1-E/UN",
                     0x62: "MCP4728A2-E/UN"}[address])


def _level_shifter(c: Circuit) -> None:
    """PCA9306: the MCP4728s run on 5 V (VIH = 0.7 VDD = 3.5 V): the Pi's 3.3 V I2C cannot
    drive them directly."""
    c.place(PCA9306, "i2c", {"GND": GND, "VREF1": P3V3, "SCL1": I2C[3], "SDA1": I2C[2],
                             "SDA2": I2C5[0], "SCL2": I2C5[1], "VREF2": "I2C_VREF2",
                             "EN": "I2C_VREF2"})
    c.place(resistor("200k"), "i2c", {"1": P5V, "2": "I2C_VREF2"})
    c.place(resistor("4.7k"), "i2c", {"1": P5V, "2": I2C5[0]})
    c.place(resistor("4.7k"), "i2c", {"1": P5V, "2": I2C5[1]})


def _decouple(c: Circuit) -> None:
    """100 nF from every IC supply pin to ground."""
    for part in c.sorted_parts():
        t = part.type
        if t.prefix != "U" or t.key == "TSR3-2450":
            continue
        for name in t.supplies:
            c.place(capacitor("100n"), "decoupling", {"1": part.net(name) or "", "2": GND})
        if t.key == "TL074":
            c.place(capacitor("100n"), "decoupling", {"1": GND, "2": part.net("V-") or ""})


def _gpio(nets: dict[int, str], pin: int, name: str) -> str:
    net = f"GPIO{pin}_{name}"
    assert pin not in nets, (pin, name)
    nets[pin] = net
    return net


# ---------------------------------------------------------------------------------------------
# What the boards carry: (board item, panel label, chip, channel or GPIO)

REFERENCE_CV = [("inputs.pitch", "PITCH", "adc", 0), ("inputs.morph_cv", "MORPH_CV", "adc", 6),
                ("inputs.follow_cv", "FOLLOW_CV", "adc2", 0),
                ("inputs.uncertainty_cv", "UNCERT_CV", "adc2", 1),
                ("inputs.density_cv", "DENSITY_CV", "adc2", 2),
                ("inputs.fill", "FILL", "adc2", 3)]
REFERENCE_VEL_IN = [("inputs.velocity_cv", "VEL_CV", "adc", 7)]
REFERENCE_POTS = [("pots.follow", "FOLLOW", "adc", 1), ("pots.morph", "MORPH", "adc", 2),
                  ("pots.uncertainty", "UNCERT", "adc", 3), ("pots.density", "DENSITY", "adc", 4),
                  ("pots.tempo", "TEMPO", "adc", 5)]
REFERENCE_GATES = [("gpio_inputs.gate", "GATE", 17), ("gpio_inputs.clock", "CLOCK", 27),
                   ("gpio_inputs.reset", "RESET", 22)]
REFERENCE_BUTTONS = [("gpio_inputs.record", "REC", 5), ("gpio_inputs.clear", "CLEAR", 6),
                     ("gpio_inputs.randomize_a", "RND_A", 13),
                     ("gpio_inputs.randomize_b", "RND_B", 19),
                     ("gpio_inputs.shift", "SHIFT", 14), ("gpio_inputs.style", "STYLE", 15)]
REFERENCE_DAC_OUT = (
    [(f"outputs.velocity_{i + 1}", f"VEL{i + 1}", "dac1" if i < 4 else "dac2", i % 4)
     for i in range(8)]
    + [(f"outputs.accent_{i + 1}", f"ACC{i + 1}", "dac3", i) for i in range(3)]
    + [("outputs.reset_out", "RESET_OUT", "dac3", 3)])
REFERENCE_BUF_OUT = ([(f"gpio_outputs.trigger_{i + 1}", f"TRIG{i + 1}", pin)
                      for i, pin in enumerate((4, 12, 16, 20, 21, 23, 24, 25))]
                     + [("gpio_outputs.clock_out", "CLOCK_OUT", 18)])
REFERENCE_LED = [("gpio_outputs.record_led", "REC_LED", 26)]
REFERENCE_CHIPS = {"adc": ("mcp3208", 0), "adc2": ("mcp3208", 1), "dac1": ("mcp4728", 0x60),
                   "dac2": ("mcp4728", 0x61), "dac3": ("mcp4728", 0x62)}

BUDGET_CV = [("inputs.pitch", "PITCH", "adc", 0)]
BUDGET_POTS = [("pots.follow", "FOLLOW", "adc", 1), ("pots.morph", "MORPH", "adc", 2),
               ("pots.density", "DENSITY", "adc", 3)]
BUDGET_GATES = [("gpio_inputs.gate", "GATE", 17), ("gpio_inputs.clock", "CLOCK", 27),
                ("gpio_inputs.reset", "RESET", 22), ("gpio_inputs.fill", "FILL", 13)]
BUDGET_BUTTONS = [("gpio_inputs.record", "REC", 5), ("gpio_inputs.clear", "CLEAR", 6),
                  ("gpio_inputs.shift", "SHIFT", 14), ("gpio_inputs.style", "STYLE", 15)]
BUDGET_VEL_OUT = [(f"outputs.velocity_{i + 1}", f"VEL{i + 1}", "vel", i) for i in range(4)]
BUDGET_TRIG_OUT = [(f"outputs.trigger_{i + 1}", f"TRIG{i + 1}", "trig12" if i < 2 else "trig34",
                    i % 2) for i in range(4)]
BUDGET_BUF_OUT = ([("gpio_outputs.clock_out", "CLOCK_OUT", 24),
                   ("gpio_outputs.reset_out", "RESET_OUT", 23)]
                  + [(f"gpio_outputs.accent_{i + 1}", f"ACC{i + 1}", pin)
                     for i, pin in enumerate((4, 12, 16, 20))])
BUDGET_LED = [("gpio_outputs.record_led", "REC_LED", 25)]
BUDGET_CHIPS = {"adc": ("ads1115", 0x48), "vel": ("mcp4728", 0x60), "trig12": ("mcp4922", 0),
                "trig34": ("mcp4922", 1)}


def _gpio_items(c: Circuit, nets: dict[int, str],
                rows: list[tuple[str, str, int]], place: Callable[..., None]) -> None:
    for item, label, pin in rows:
        place(c, item, label, _gpio(nets, pin, label))


def reference() -> Circuit:
    c = Circuit("reference", "grooverack reference board (hw/boards/reference.toml)")
    nets: dict[int, str] = {**SPI, **I2C}
    _power(c)
    fe.bias(c)
    adc: dict[str, dict[int, str]] = {"adc": {}, "adc2": {}}
    for rows, place in ((REFERENCE_CV, fe.cv_input), (REFERENCE_VEL_IN, fe.velocity_input),
                        (REFERENCE_POTS, fe.pot)):
        for item, label, chip, ch in rows:
            net = adc[chip][ch] = f"{chip.upper()}_CH{ch}"
            place(c, item, label, net)
    _vref(c, VREF_ADC)
    _mcp3208(c, "adc", 0, adc["adc"])
    _mcp3208(c, "adc2", 1, adc["adc2"])
    _gpio_items(c, nets, REFERENCE_GATES, fe.gate_input)
    _gpio_items(c, nets, REFERENCE_BUTTONS, fe.button)
    dac: dict[str, list[str]] = {"dac1": [], "dac2": [], "dac3": []}
    for item, label, chip, ch in REFERENCE_DAC_OUT:
        net = f"{chip.upper()}_{'ABCD'[ch]}"
        dac[chip].append(net)
        fe.dac_output(c, item, label, net, V.out_rf)
    _level_shifter(c)
    for chip, (_, address) in REFERENCE_CHIPS.items():
        if chip.startswith("dac"):
            _mcp4728(c, chip, address, dac[chip])
    _gpio_items(c, nets, REFERENCE_BUF_OUT, fe.buffered_output)
    _gpio_items(c, nets, REFERENCE_LED, fe.led)
    _pi(c, nets)
    c.finish_units(fe.SPARES)
    _decouple(c)
    return c


def budget() -> Circuit:
    c = Circuit("budget", "grooverack budget board (hw/boards/budget.toml)")
    nets: dict[int, str] = {**SPI, **I2C}
    _power(c)
    fe.bias(c)
    ain: dict[int, str] = {}
    for rows, place in ((BUDGET_CV, fe.cv_input), (BUDGET_POTS, fe.pot)):
        for item, label, _chip, ch in rows:
            net = ain[ch] = f"ADC_AIN{ch}"
            place(c, item, label, net)
    c.place(ADS1115, "adc", {"ADDR": GND, "ALERT": None, "GND": GND, "VDD": P3V3,
                             "SDA": I2C[2], "SCL": I2C[3],
                             **{f"AIN{i}": ain[i] for i in range(4)}}, chip="adc")
    _gpio_items(c, nets, BUDGET_GATES, fe.gate_input)
    _gpio_items(c, nets, BUDGET_BUTTONS, fe.button)
    vel = []
    for item, label, _chip, ch in BUDGET_VEL_OUT:
        net = f"DAC_VEL_{'ABCD'[ch]}"
        vel.append(net)
        fe.dac_output(c, item, label, net, V.out_rf)
    trig: dict[str, list[str]] = {"trig12": [], "trig34": []}
    for item, label, chip, ch in BUDGET_TRIG_OUT:
        net = f"{chip.upper()}_{'AB'[ch]}"
        trig[chip].append(net)
        fe.dac_output(c, item, label, net, V.out_rf_x3)
    _level_shifter(c)
    _mcp4728(c, "vel", 0x60, vel)
    _vref(c, VREF_DAC)
    for chip, ce in (("trig12", 0), ("trig34", 1)):
        c.place(MCP4922, "dac", {"VDD": P3V3, "VSS": GND, "CS": SPI[{0: 8, 1: 7}[ce]],
                                 "SCK": "SPI_SCLK", "SDI": "SPI_MOSI", "LDAC": GND,
                                 "SHDN": P3V3, "VREFA": VREF_DAC, "VREFB": VREF_DAC,
                                 "VOUTA": trig[chip][0], "VOUTB": trig[chip][1],
                                 "NC2": None, "NC6": None, "NC7": None}, chip=chip)
    nets.pop(9)   # no MISO: the MCP4922s only listen
    _gpio_items(c, nets, BUDGET_BUF_OUT, fe.buffered_output)
    _gpio_items(c, nets, BUDGET_LED, fe.led)
    _pi(c, nets)
    c.finish_units(fe.SPARES)
    _decouple(c)
    return c


BOARDS: dict[str, Callable[[], Circuit]] = {"reference": reference, "budget": budget}
PI_PIN = PI_PIN_BY_GPIO
