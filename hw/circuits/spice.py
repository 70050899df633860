"""SPICE decks cut from the netlist of record, one per front end, with our behavioural models.

A deck holds the parts of one channel's group exactly as the board places them (values from
`frontends.py`, nothing retyped), ideal rails, the world around the channel (a jack source, a
load, the Pi's pull-up, a DAC pin) and a `.control` block that sweeps it and prints
`RESULT ...` lines or writes `wrdata` tables. `simulate.py` runs them with `ngspice -b` and
judges the numbers against the board file.

The models are ours, written from the datasheets' figures (no vendor model is shipped: TI's and
Microchip's model licences do not allow redistributing them in an MIT project):

- OPAMP: a one-pole transconductance stage (open-loop gain AOL, gain-bandwidth GBW; linear, so
  that every DC operating point converges: the slew rate is not modelled, the decks are DC
  sweeps), output clamped `HR` volts inside the rails with no load and
  falling further by `ROUT` times the load current (the datasheets' swing-versus-load figures),
  quiescent current IQ from rail to rail. The input common-mode range is not modelled: the decks
  report the input pins' voltages and `simulate.py` checks them against the datasheet range.
  MCP6004: AOL 100 dB, GBW 1 MHz, swing 25 mV from the rails into 10 kOhm to
  VDD/2 (HR 1 mV, ROUT 150 Ohm), IQ 100 uA, Vos +-4.5 mV max; CMR VSS-0.3..VDD+0.3 V.
  TL074: AOL 106 dB, GBW 3 MHz, swing +-13.5 V typ on +-15 V into 10 kOhm and +-12 V
  into 2 kOhm (HR 1.07 V, ROUT 320 Ohm), IQ 1.4 mA per amplifier, Vos +-10 mV max (TL074C);
  CMR V- + 3 V .. V+.
- LM393: open collector, sinking up to 16 mA when IN- > IN+ (1 mV transition, 1 us response),
  25 nA input bias out of each input, 0.2 mA per comparator; CMR 0..VCC-1.5 V at 25 C (either
  input in range keeps the output right).
- HCT541: TTL threshold 1.4 V, output VCC through 50 Ohm (VOH 4.4 V at 6 mA typ on 4.5 V).
- BAT54: VF 0.24 V at 0.1 mA, 0.32 V at 1 mA, 0.8 V at 100 mA (IS 1e-7, N 1.35, RS 3.2 Ohm);
  200 mA continuous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from circuits.netlist import GND, Circuit, Part, Pin

MODELS = """\
* --- grooverack behavioural models (hw/circuits/spice.py says where each figure comes from) ---
.subckt OPAMP inp inn vp vn out params: aol=1e5 gbw=1e6 hr=1m rout=150 iq=100u
.param cc=1n gm={6.2832*gbw*cc} rr={aol/(6.2832*gbw*cc)}
Ggm 0 x inp inn {gm}
Rx x 0 {rr}
Cx x 0 {cc}
* output clamp: HR inside each rail (stiff, so the stage's full current moves it < 0.1 mV)
Bclamp x 0 I = 10*(max(V(x)-V(vp)+hr, 0) + min(V(x)-V(vn)-hr, 0))
Eo o1 0 x 0 1
Ro o1 out {rout}
Iq vp vn {iq}
.ends OPAMP
.subckt MCP6004 inp inn vp vn out
X1 inp inn vp vn out OPAMP aol=1e5 gbw=1e6 hr=1m rout=150 iq=100u
.ends MCP6004
.subckt TL074 inp inn vp vn out
X1 inp inn vp vn out OPAMP aol=2e5 gbw=3e6 hr=1.07 rout=320 iq=1.4m
.ends TL074
.subckt LM393 inp inn vcc gnd out
Ibp vcc inp 25n
Ibn vcc inn 25n
Ed d 0 inn inp 1
Rd d d2 1k
Cd d2 0 1n
Bout out gnd I = 16m*0.5*(1+tanh(V(d2)/2m))*tanh(max(V(out,gnd),0)/0.1)
Cout out gnd 20p
Iq vcc gnd 200u
.ends LM393
.subckt HCT541 a y vcc gnd
By yi gnd V = V(vcc,gnd)*0.5*(1+tanh((V(a,gnd)-1.4)/0.05))
Ro yi y 50
.ends HCT541
.model DBAT54 D(IS=1e-7 N=1.35 RS=3.2 BV=30 IBV=2u CJO=10p)
"""

RAILS = {"+3V3": 3.3, "+5V": 5.0, "+12VA": 12.0, "-12VA": -12.0}


def node(net: str) -> str:
    """A SPICE node name for a net."""
    if net == GND:
        return "0"
    return re.sub(r"[^a-z0-9_]", "_", net.lower().replace("+", "p").replace("-", "m"))


def spice_value(value: str) -> str:
    """A part value in SPICE units (SPICE reads M as milli)."""
    return value[:-1] + "Meg" if value.endswith("M") else value


def ohms(value: str) -> float:
    mult = {"k": 1e3, "M": 1e6}
    return float(value[:-1]) * mult[value[-1]] if value[-1] in mult else float(value)


@dataclass
class Stage:
    """One channel's parts as SPICE lines, and what the decks alter or probe in them."""

    lines: list[str] = field(default_factory=list)
    resistors: dict[str, float] = field(default_factory=dict)   # element -> nominal ohms
    offsets: dict[str, float] = field(default_factory=dict)     # op-amp Vos source -> max volts
    diodes: list[str] = field(default_factory=list)
    pots: dict[str, float] = field(default_factory=dict)        # pot ref -> ohms


VOS_MAX = {"MCP6004": 4.5e-3, "TL074": 10e-3}


def stage(c: Circuit, *groups: str) -> Stage:
    s = Stage()
    for part, pins in c.group_parts(*groups):
        _emit(s, part, pins)
    return s


def _emit(s: Stage, part: Part, pins: list[Pin]) -> None:
    t = part.type

    def n(name: str) -> str:
        net = part.net(name)
        assert net is not None, (part.ref, name)
        return node(net)

    if t.spice == "R":
        s.lines.append(f"R{part.ref} {n('1')} {n('2')} {spice_value(t.value)}")
        s.resistors[f"R{part.ref}"] = ohms(t.value)
    elif t.spice == "C":
        s.lines.append(f"C{part.ref} {n('1')} {n('2')} {spice_value(t.value)}")
    elif t.spice == "BAT54S":
        s.lines.append(f"D{part.ref}a {n('A')} {n('AK')} DBAT54")
        s.lines.append(f"D{part.ref}b {n('AK')} {n('K')} DBAT54")
        s.diodes += [f"D{part.ref}a", f"D{part.ref}b"]
    elif t.spice == "POT":
        r = 10e3
        s.lines.append(f"R{part.ref}cw {n('CW')} {n('W')} {r / 2:g}")
        s.lines.append(f"R{part.ref}ccw {n('W')} {n('CCW')} {r / 2:g}")
        s.pots[part.ref] = r
    elif t.units:
        names = {p.name for p in pins}
        unit = next(i for i, u in enumerate(t.units) if set(u) == names)
        label = f"{part.ref}{'ABCDEFGH'[unit]}"
        un = t.units[unit]
        if t.spice in ("MCP6004", "TL074"):
            plus, minus, out = (n(p) for p in un)
            vp, vn = n("V+"), n("V-")
            s.lines.append(f"V{label}os {plus} {label.lower()}_p DC 0")
            s.lines.append(f"X{label} {label.lower()}_p {minus} {vp} {vn} {out} {t.spice}")
            s.offsets[f"V{label}os"] = VOS_MAX[t.spice]
        elif t.spice == "LM393":
            plus, minus, out = (n(p) for p in un)
            s.lines.append(f"X{label} {plus} {minus} {n('VCC')} {n('GND')} {out} LM393")
        elif t.spice == "HCT541":
            a, y = (n(p) for p in un)
            s.lines.append(f"X{label} {a} {y} {n('VCC')} {n('GND')} HCT541")


def deck(title: str, body: list[str], control: list[str]) -> str:
    rails = [f"V{node(net)} {node(net)} 0 DC {v:g}" for net, v in RAILS.items()]
    return "\n".join([f"* {title}", "* generated by hw/generate.py from the netlist of record: "
                      "do not edit", ".options savecurrents", MODELS.rstrip(), "* rails",
                      *rails, *body, ".control", *control, ".endc", ".end"]) + "\n"


def randomize(s: Stage, resistor_tol: float = 0.01) -> list[str]:
    """Control lines that draw every resistor (uniform within its tolerance) and every op-amp
    offset (uniform within the datasheet's maximum), echoing nothing."""
    out = []
    for name, ohm in s.resistors.items():
        out += [f"  let r = {ohm:g}*(1 + {resistor_tol:g}*sunif(0))", f"  alter {name} = $&r"]
    for name, vmax in s.offsets.items():
        out += [f"  let v = {vmax:g}*sunif(0)", f"  alter {name} = $&v"]
    return out
