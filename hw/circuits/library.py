"""The parts the boards are built from: pins, packages, KiCad footprints and one orderable part
number each (any equivalent with the same package and figures will do; the BOM says so).

Pinouts are the manufacturers' (SOIC for the ICs). Footprints are KiCad's standard libraries
except where KiCad has none (the Thonkiconn jack, the D6R switch, the TSR 3 regulator): those name
a `grooverack:` footprint to draw from the datasheet's drawing.
"""

from __future__ import annotations

from circuits.netlist import (
    BIDI,
    INPUT,
    NO_CONNECT,
    OPEN_COLLECTOR,
    OUTPUT,
    PASSIVE,
    POWER_IN,
    POWER_OUT,
    TRISTATE,
    PartType,
    Pin,
)

GROUND = "ground"   # a pin kind of ours: must sit on GND (KiCad: power_in)


def _pins(*spec: tuple[str, str, str]) -> tuple[Pin, ...]:
    return tuple(Pin(n, name, kind) for n, name, kind in spec)


# two-pin parts: either way round (resistors, jumpers, switches), and diodes (pin 1 the cathode)
_TWO_PINS = _pins(("1", "1", PASSIVE), ("2", "2", PASSIVE))
_DIODE_PINS = _pins(("1", "K", PASSIVE), ("2", "A", PASSIVE))


# --- passives (1 % thick film 0805, X7R 0805) ---------------------------------------------------

# Yageo RC0805FR-07 series: the value part of the order code
_R_CODES = {"10": "10RL", "1k": "1KL", "2.4k": "2K4L", "10k": "10KL", "12k": "12KL", "15k": "15KL",
            "20k": "20KL", "24.9k": "24K9L", "33k": "33KL", "47k": "47KL", "68k": "68KL",
            "100k": "100KL", "200k": "200KL", "1M": "1ML", "4.7k": "4K7L", "0": "0RL"}

_RESISTORS: dict[str, PartType] = {}


def resistor(value: str) -> PartType:
    if value not in _RESISTORS:
        size = "1206" if value == "10" else "0805"   # the rail filters carry the op-amps' current
        _RESISTORS[value] = PartType(
            key=f"R_{size}_{value}", prefix="R", value=value,
            description=f"resistor {value}Ω 1 % {size}" + (" 0.25 W" if size == "1206" else " 0.125 W"),
            manufacturer="Yageo", mpn=f"RC{size}FR-07{_R_CODES[value]}", package=size,
            footprint=f"Resistor_SMD:R_{size}_{'3216' if size == '1206' else '2012'}Metric",
            pins=_TWO_PINS, spice="R")
    return _RESISTORS[value]


_CAPS = {
    "100n": ("capacitor 100 nF 50 V X7R 0805", "Samsung", "CL21B104KBCNNNC", "0805",
             "Capacitor_SMD:C_0805_2012Metric"),
    "1u": ("capacitor 1 µF 25 V X7R 0805", "Samsung", "CL21B105KAFNNNE", "0805",
           "Capacitor_SMD:C_0805_2012Metric"),
    "10u": ("capacitor 10 µF 25 V X5R 1206", "Samsung", "CL31A106KAHNNNE", "1206",
            "Capacitor_SMD:C_1206_3216Metric"),
    "47u": ("electrolytic 47 µF 25 V, 6.3 mm SMD can", "Panasonic", "EEE-FK1E470P", "SMD 6.3x5.8",
            "Capacitor_SMD:CP_Elec_6.3x5.8"),
}
_CAP_TYPES: dict[str, PartType] = {}


def capacitor(value: str) -> PartType:
    if value not in _CAP_TYPES:
        desc, man, mpn, pkg, fp = _CAPS[value]
        polar = value == "47u"
        _CAP_TYPES[value] = PartType(
            key=f"C_{value}", prefix="C", value=value, description=desc, manufacturer=man, mpn=mpn,
            package=pkg, footprint=fp,
            pins=_pins(("1", "+", PASSIVE), ("2", "-", PASSIVE)) if polar else _TWO_PINS,
            spice="C")
    return _CAP_TYPES[value]


# --- semiconductors ---------------------------------------------------------------------------

_QUAD_OPAMP_PINS = (
    ("1", "OUT1", OUTPUT), ("2", "IN1-", INPUT), ("3", "IN1+", INPUT), ("4", "V+", POWER_IN),
    ("5", "IN2+", INPUT), ("6", "IN2-", INPUT), ("7", "OUT2", OUTPUT), ("8", "OUT3", OUTPUT),
    ("9", "IN3-", INPUT), ("10", "IN3+", INPUT), ("11", "V-", POWER_IN), ("12", "IN4+", INPUT),
    ("13", "IN4-", INPUT), ("14", "OUT4", OUTPUT))
_QUAD_UNITS = tuple((f"IN{i}+", f"IN{i}-", f"OUT{i}") for i in range(1, 5))

TL074 = PartType(
    key="TL074", prefix="U", value="TL074", description="quad JFET op-amp, ±12 V (output stages)",
    manufacturer="Texas Instruments", mpn="TL074CDR", package="SOIC-14",
    footprint="Package_SO:SOIC-14_3.9x8.7mm_P1.27mm", pins=_pins(*_QUAD_OPAMP_PINS),
    units=_QUAD_UNITS, supplies=("V+", "V-"), spice="TL074",
    datasheet="https://www.ti.com/lit/ds/symlink/tl074.pdf")

MCP6004 = PartType(
    key="MCP6004", prefix="U", value="MCP6004",
    description="quad rail-to-rail CMOS op-amp, 3.3 V (input stages)",
    manufacturer="Microchip", mpn="MCP6004-I/SL", package="SOIC-14",
    footprint="Package_SO:SOIC-14_3.9x8.7mm_P1.27mm", pins=_pins(*_QUAD_OPAMP_PINS),
    units=_QUAD_UNITS, supplies=("V+",), grounds=("V-",), spice="MCP6004",
    datasheet="https://ww1.microchip.com/downloads/en/DeviceDoc/MCP6001-1R-1U-2-4-1-MHz-Low-Power-Op-Amp-DS20001733L.pdf")

LM393 = PartType(
    key="LM393", prefix="U", value="LM393", description="dual open-collector comparator, 3.3 V",
    manufacturer="Texas Instruments", mpn="LM393DR", package="SOIC-8",
    footprint="Package_SO:SOIC-8_3.9x4.9mm_P1.27mm",
    pins=_pins(("1", "OUT1", OPEN_COLLECTOR), ("2", "IN1-", INPUT), ("3", "IN1+", INPUT),
               ("4", "GND", POWER_IN), ("5", "IN2+", INPUT), ("6", "IN2-", INPUT),
               ("7", "OUT2", OPEN_COLLECTOR), ("8", "VCC", POWER_IN)),
    units=(("IN1+", "IN1-", "OUT1"), ("IN2+", "IN2-", "OUT2")),
    supplies=("VCC",), grounds=("GND",), spice="LM393",
    datasheet="https://www.ti.com/lit/ds/symlink/lm393.pdf")

HCT541 = PartType(
    key="74HCT541", prefix="U", value="74HCT541",
    description="octal buffer, TTL inputs, 5 V (3.3 V GPIO -> 0/5 V)",
    manufacturer="Nexperia", mpn="74HCT541D,653", package="SOIC-20W",
    footprint="Package_SO:SOIC-20W_7.5x12.8mm_P1.27mm",
    pins=_pins(("1", "OE1", INPUT), *((str(i + 2), f"A{i + 1}", INPUT) for i in range(8)),
               ("10", "GND", POWER_IN), *((str(18 - i), f"Y{i + 1}", OUTPUT) for i in range(8)),
               ("19", "OE2", INPUT), ("20", "VCC", POWER_IN)),
    units=tuple((f"A{i}", f"Y{i}") for i in range(1, 9)),
    supplies=("VCC",), grounds=("GND",), spice="HCT541",
    datasheet="https://assets.nexperia.com/documents/data-sheet/74HC_HCT541.pdf")

MCP3208 = PartType(
    key="MCP3208", prefix="U", value="MCP3208", description="8-channel 12-bit ADC, SPI, 3.3 V",
    manufacturer="Microchip", mpn="MCP3208-CI/SL", package="SOIC-16",
    footprint="Package_SO:SOIC-16_3.9x9.9mm_P1.27mm",
    pins=_pins(*((str(i + 1), f"CH{i}", INPUT) for i in range(8)), ("9", "DGND", POWER_IN),
               ("10", "CS", INPUT), ("11", "DIN", INPUT), ("12", "DOUT", TRISTATE),
               ("13", "CLK", INPUT), ("14", "AGND", POWER_IN), ("15", "VREF", INPUT),
               ("16", "VDD", POWER_IN)),
    supplies=("VDD",), grounds=("DGND", "AGND"),
    datasheet="https://ww1.microchip.com/downloads/en/DeviceDoc/21298e.pdf")

MCP4728 = PartType(
    key="MCP4728", prefix="U", value="MCP4728",
    description="quad 12-bit DAC, I²C, internal 2.048 V reference, 5 V",
    manufacturer="Microchip", mpn="MCP4728-E/UN", package="MSOP-10",
    footprint="Package_SO:MSOP-10_3x3mm_P0.5mm",
    pins=_pins(("1", "VDD", POWER_IN), ("2", "SCL", INPUT), ("3", "SDA", BIDI),
               ("4", "LDAC", INPUT), ("5", "RDY", OPEN_COLLECTOR), ("6", "VOUTA", OUTPUT),
               ("7", "VOUTB", OUTPUT), ("8", "VOUTC", OUTPUT), ("9", "VOUTD", OUTPUT),
               ("10", "VSS", POWER_IN)),
    supplies=("VDD",), grounds=("VSS",),
    datasheet="https://ww1.microchip.com/downloads/en/DeviceDoc/22187E.pdf",
    note="factory address 0x60; MCP4728A1 = 0x61, MCP4728A2 = 0x62 (or reprogram)")

ADS1115 = PartType(
    key="ADS1115", prefix="U", value="ADS1115", description="4-channel 16-bit ADC, I²C, 3.3 V",
    manufacturer="Texas Instruments", mpn="ADS1115IDGSR", package="VSSOP-10",
    footprint="Package_SO:TSSOP-10_3x3mm_P0.5mm",
    pins=_pins(("1", "ADDR", INPUT), ("2", "ALERT", OPEN_COLLECTOR), ("3", "GND", POWER_IN),
               ("4", "AIN0", INPUT), ("5", "AIN1", INPUT), ("6", "AIN2", INPUT),
               ("7", "AIN3", INPUT), ("8", "VDD", POWER_IN), ("9", "SDA", BIDI),
               ("10", "SCL", INPUT)),
    supplies=("VDD",), grounds=("GND",),
    datasheet="https://www.ti.com/lit/ds/symlink/ads1115.pdf")

MCP4922 = PartType(
    key="MCP4922", prefix="U", value="MCP4922", description="dual 12-bit DAC, SPI, 3.3 V",
    manufacturer="Microchip", mpn="MCP4922-E/SL", package="SOIC-14",
    footprint="Package_SO:SOIC-14_3.9x8.7mm_P1.27mm",
    pins=_pins(("1", "VDD", POWER_IN), ("2", "NC2", NO_CONNECT), ("3", "CS", INPUT),
               ("4", "SCK", INPUT), ("5", "SDI", INPUT), ("6", "NC6", NO_CONNECT),
               ("7", "NC7", NO_CONNECT), ("8", "LDAC", INPUT), ("9", "SHDN", INPUT),
               ("10", "VOUTB", OUTPUT), ("11", "VREFB", INPUT), ("12", "VSS", POWER_IN),
               ("13", "VREFA", INPUT), ("14", "VOUTA", OUTPUT)),
    supplies=("VDD",), grounds=("VSS",),
    datasheet="https://ww1.microchip.com/downloads/en/DeviceDoc/21897B.pdf")

PCA9306 = PartType(
    key="PCA9306", prefix="U", value="PCA9306",
    description="I²C level translator, 3.3 V Pi bus <-> 5 V DAC bus",
    manufacturer="Texas Instruments", mpn="PCA9306DCUR", package="VSSOP-8",
    footprint="Package_SO:VSSOP-8_2.3x2mm_P0.5mm",
    pins=_pins(("1", "GND", POWER_IN), ("2", "VREF1", POWER_IN), ("3", "SCL1", BIDI),
               ("4", "SDA1", BIDI), ("5", "SDA2", BIDI), ("6", "SCL2", BIDI),
               ("7", "VREF2", INPUT), ("8", "EN", INPUT)),
    supplies=("VREF1",), grounds=("GND",),
    datasheet="https://www.ti.com/lit/ds/symlink/pca9306.pdf")

BAT54S = PartType(
    key="BAT54S", prefix="D", value="BAT54S",
    description="dual Schottky in series: input clamp to GND and 3.3 V (200 mA)",
    manufacturer="Nexperia", mpn="BAT54S,215", package="SOT-23",
    footprint="Package_TO_SOT_SMD:SOT-23",
    pins=_pins(("1", "A", PASSIVE), ("2", "K", PASSIVE), ("3", "AK", PASSIVE)), spice="BAT54S",
    datasheet="https://assets.nexperia.com/documents/data-sheet/BAT54_SER.pdf")

SCHOTTKY_3A = PartType(
    key="B340A", prefix="D", value="B340A", description="Schottky 3 A 40 V: +12 V reverse protection",
    manufacturer="Diodes Inc.", mpn="B340A-13-F", package="SMA",
    footprint="Diode_SMD:D_SMA", pins=_DIODE_PINS)

SCHOTTKY_1A = PartType(
    key="B140", prefix="D", value="B140", description="Schottky 1 A 40 V: -12 V reverse protection",
    manufacturer="Diodes Inc.", mpn="B140-13-F", package="SMA",
    footprint="Diode_SMD:D_SMA", pins=_DIODE_PINS)

LED_RED = PartType(
    key="LED3", prefix="D", value="red", description="LED 3 mm red, through the panel",
    manufacturer="Kingbright", mpn="WP710A10ID", package="THT 3 mm",
    footprint="LED_THT:LED_D3.0mm", pins=_DIODE_PINS)

# --- regulators and connectors ---------------------------------------------------------------

TSR3_2450 = PartType(
    key="TSR3-2450", prefix="U", value="TSR 3-2450",
    description="5 V 3 A step-down module, 10-30 V in (the Pi and the 5 V parts)",
    manufacturer="Traco Power", mpn="TSR 3-2450", package="open frame 15.5x9.4 mm",
    footprint="grooverack:Traco_TSR3",
    pins=_pins(("1", "VIN", POWER_IN), ("2", "GND", POWER_IN), ("3", "VOUT", POWER_OUT),
               ("4", "ON_OFF", PASSIVE), ("5", "TRIM", PASSIVE)),
    supplies=("VIN",), grounds=("GND",),
    datasheet="https://www.tracopower.com/sites/default/files/products/datasheets/tsr3_datasheet.pdf",
    note="ON/OFF open = on, TRIM open = 5.0 V: check the pin order against the datasheet drawing")

EURO_POWER = PartType(
    key="EURO10", prefix="J", value="Eurorack 10-pin",
    description="Eurorack power header 2x5 shrouded (red stripe = -12 V, pins 1-2)",
    manufacturer="Würth Elektronik", mpn="61201021621", package="2x5 2.54 mm shrouded",
    footprint="Connector_IDC:IDC-Header_2x05_P2.54mm_Vertical",
    pins=_pins(("1", "-12V_1", POWER_OUT), ("2", "-12V_2", POWER_OUT),
               *((str(i), f"GND_{i}", POWER_OUT) for i in range(3, 9)),
               ("9", "+12V_9", POWER_OUT), ("10", "+12V_10", POWER_OUT)))

# The Raspberry Pi's 40-pin header, as the board's female socket sees it (BCM GPIO names).
PI_GPIO_BY_PIN = {3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24,
                  19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12,
                  33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21}
PI_PIN_BY_GPIO = {g: p for p, g in PI_GPIO_BY_PIN.items()}
PI_POWER = {1: "3V3", 17: "3V3", 2: "5V", 4: "5V"}
PI_GND = (6, 9, 14, 20, 25, 30, 34, 39)


def _pi_pins() -> tuple[Pin, ...]:
    out = []
    for n in range(1, 41):
        if n in PI_POWER:
            name = PI_POWER[n]
            kind = POWER_OUT if name == "3V3" else POWER_IN
            out.append(Pin(str(n), f"{name}_{n}", kind))
        elif n in PI_GND:
            out.append(Pin(str(n), f"GND_{n}", PASSIVE))
        else:
            out.append(Pin(str(n), f"GPIO{PI_GPIO_BY_PIN[n]}", BIDI))
    return tuple(out)


PI_HEADER = PartType(
    key="PI40", prefix="J", value="Raspberry Pi 40-pin",
    description="2x20 female socket 2.54 mm: the Pi's GPIO header (11 mm stacking height)",
    manufacturer="Samtec", mpn="SSW-120-01-T-D", package="2x20 2.54 mm",
    footprint="Connector_PinSocket_2.54mm:PinSocket_2x20_P2.54mm_Vertical", pins=_pi_pins(),
    supplies=("5V_2", "5V_4"))

JACK = PartType(
    key="PJ398SM", prefix="J", value="Thonkiconn",
    description="3.5 mm mono jack, switched (tip normal), panel nut",
    manufacturer="Thonk", mpn="PJ398SM", package="Thonkiconn",
    footprint="grooverack:Thonkiconn_PJ398SM",
    pins=_pins(("1", "S", PASSIVE), ("2", "TN", PASSIVE), ("3", "T", PASSIVE)))

POT = PartType(
    key="POT10K", prefix="RV", value="B10k",
    description="9 mm potentiometer 10 kΩ linear, vertical, D shaft",
    manufacturer="Alpha", mpn="RV09AF-40-20K-B10K", package="Alpha 9 mm",
    footprint="Potentiometer_THT:Potentiometer_Alpha_RD901F-40-00D_Single_Vertical",
    pins=_pins(("1", "CCW", PASSIVE), ("2", "W", PASSIVE), ("3", "CW", PASSIVE)), spice="POT")

SOLDER_JUMPER = PartType(
    key="JP", prefix="JP", value="bridged",
    description="solder jumper, bridged: cut to free the pin (MCP4728 LDAC for re-addressing)",
    manufacturer="", mpn="(on the PCB: no part)", package="PCB",
    footprint="Jumper:SolderJumper-2_P1.3mm_Bridged_RoundedPad1.0x1.5mm",
    pins=_TWO_PINS)

BUTTON = PartType(
    key="D6R", prefix="SW", value="D6R", description="momentary push button, panel, black cap",
    manufacturer="C&K", mpn="D6R90 F1 LFS", package="D6R",
    footprint="grooverack:SW_CK_D6R", pins=_TWO_PINS)
