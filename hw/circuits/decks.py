"""The SPICE decks of a board: each front end once (the channel named here stands for every
channel built by the same function), plus a Monte Carlo deck per scaled stage.

Monte Carlo: every resistor of the stage uniform within 1 %, op-amp offsets uniform within the
datasheet maximum, and the references: the Pi's 3.3 V rail (the MCP3208's VREF and the bias
divider's source; the Pi publishes no tolerance, we assume +-3 %), the ADS1115's full scale
(+-0.15 %), the MCP4728's internal 2.048 V (2.007..2.089 V) and gain error (+-1.25 %) and offset
(+-20 mV), the MCP4922's gain error (+-1 %, assumed) and offset (+-5 mV, assumed).
"""

from __future__ import annotations

from dataclasses import dataclass

from circuits.netlist import Circuit
from circuits.spice import Stage, deck, node, randomize, stage

MC_RUNS = 1000


@dataclass(frozen=True)
class DeckSpec:
    name: str
    kind: str            # cv_in, vel_in, gate_in, pot, dac_out, buf_out
    group: str           # the channel the deck is cut from
    adc: str = ""        # mcp3208 / ads1115 (inputs)
    dac: str = ""        # mcp4728 / mcp4922 (outputs)
    item: str = ""       # the board item whose scaling the deck checks


SPECS = {
    "reference": [
        DeckSpec("cv_in", "cv_in", "cv_in.pitch", adc="mcp3208", item="inputs.pitch"),
        DeckSpec("vel_in", "vel_in", "vel_in.velocity_cv", adc="mcp3208",
                 item="inputs.velocity_cv"),
        DeckSpec("gate_in", "gate_in", "gate_in.gate", item="gpio_inputs.gate"),
        DeckSpec("pot", "pot", "pot.follow", adc="mcp3208", item="pots.follow"),
        DeckSpec("vel_out", "dac_out", "dac_out.velocity_1", dac="mcp4728",
                 item="outputs.velocity_1"),
        DeckSpec("trig_out", "buf_out", "buf_out.trigger_1", item="gpio_outputs.trigger_1"),
    ],
    "budget": [
        DeckSpec("cv_in", "cv_in", "cv_in.pitch", adc="ads1115", item="inputs.pitch"),
        DeckSpec("gate_in", "gate_in", "gate_in.gate", item="gpio_inputs.gate"),
        DeckSpec("pot", "pot", "pot.follow", adc="ads1115", item="pots.follow"),
        DeckSpec("vel_out", "dac_out", "dac_out.velocity_1", dac="mcp4728",
                 item="outputs.velocity_1"),
        DeckSpec("trig_out", "dac_out", "dac_out.trigger_1", dac="mcp4922",
                 item="outputs.trigger_1"),
        DeckSpec("acc_out", "buf_out", "buf_out.accent_1", item="gpio_outputs.accent_1"),
    ],
}
MC_KINDS = ("cv_in", "vel_in", "dac_out")


def _nets(c: Circuit, group: str) -> dict[str, str]:
    """Named nodes of a channel: jack tip, the chip pin, and the stage's inner nets."""
    out: dict[str, str] = {}
    for part, pins in c.group_parts(group):
        t = part.type
        if t.key == "PJ398SM":
            out["jack"] = node(part.net("T") or "")
        elif t.key == "POT10K":
            out["wiper"] = node(part.net("W") or "")
        elif t.key == "C_100n":
            out["adc"] = node(part.net("1") or "")
        elif t.units:
            names = {p.name for p in pins}
            unit = next(u for u in t.units if set(u) == names)
            nets = [node(part.net(p) or "") for p in unit]
            out |= dict(zip(("gpio", "buf") if len(unit) == 2 else ("plus", "minus", "out"),
                            nets, strict=True))
        elif t.key == "BAT54S":
            out["clamp"] = node(part.net("AK") or "")
    return out


def _adc_lines(adc: str) -> list[str]:
    """The ADC's reference as the decks see it (what a code is)."""
    if adc == "ads1115":
        return ["  let fsr = 4.096", "  echo \"RESULT ref $&fsr\""]
    return ["  let fsr = v(p3v3)", "  echo \"RESULT ref $&fsr\""]


def _cv_in(spec: DeckSpec, s: Stage, n: dict[str, str], mc: bool) -> tuple[list[str], list[str]]:
    body = ["* the stage", *s.lines, "* the world", f"Vjack {n['jack']} 0 DC 0"]
    probes = f"v({n['adc']}) v({n['minus']}) v({n['plus']}) v({n['out']}) v(p3v3)"
    if not mc:
        sweep = "-5 5" if spec.kind == "cv_in" else "0 10"
        ctl = [f"dc Vjack {sweep} 0.05", f"wrdata {spec.name}_dc.dat {probes}", "destroy all",
               "foreach vj -12 -5 5 12", "  alter Vjack = $vj", "  op",
               f"  let adc = v({n['adc']})", f"  let inn = v({n['minus']})",
               f"  let inp = v({n['plus']})", f"  let node = v({n['clamp']})",
               *(f"  let {d.lower()} = @{d.lower()}[id]" for d in s.diodes),
               "  echo \"RESULT jack $vj $&adc $&inn $&inp $&node "
               + " ".join(f"$&{d.lower()}" for d in s.diodes) + "\"",
               "  destroy all", "end"]
        return body, ctl
    vref = (["  let vr = 3.3*(1 + 0.03*sunif(0))", "  alter vp3v3 = $&vr"]
            if spec.adc == "mcp3208" else [])
    fsr = ("  let fsr = v(p3v3)" if spec.adc == "mcp3208"
           else "  let fsr = 4.096*(1 + 0.0015*sunif(0))")
    points = "0 1 3" if spec.kind == "cv_in" else "0 1 9"
    ctl = ["setseed 1", "let k = 0", f"let runs = {MC_RUNS}", "while k < runs",
           *randomize(s), *vref, fsr.replace("v(p3v3)", "vr") if spec.adc == "mcp3208" else fsr,
           f"  foreach vj {points}", "    alter Vjack = $vj", "    op",
           f"    let adc = v({n['adc']})", "    echo \"MC $&const.k $vj $&adc $&fsr\"",
           "  end", "  destroy all", "  let k = k + 1", "end"]
    return body, ctl


def _gate_in(spec: DeckSpec, s: Stage, n: dict[str, str]) -> tuple[list[str], list[str]]:
    body = ["* the stage", *s.lines, "* the world: a slow triangle 0 -> 3 -> 0 V, the Pi's pull-up",
            "Vramp ramp 0 PWL(0 0 1m 3 2m 0 2.5m 0)", f"Vjack {n['jack']} ramp DC 0",
            f"Rpi {n['out']} p3v3 50k"]
    ctl = ["tran 0.5u 2.5m",
           f"meas tran rise FIND v({n['jack']}) WHEN v({n['out']})=1.65 FALL=1 TD=0.1m",
           f"meas tran fall FIND v({n['jack']}) WHEN v({n['out']})=1.65 RISE=1 TD=1.2m",
           f"let refmax = vecmax(v({n['plus']}))", f"let refmin = vecmin(v({n['plus']}))",
           f"let outlow = vecmin(v({n['out']}))",
           "echo \"RESULT thresholds $&rise $&fall $&refmin $&refmax $&outlow\"",
           "destroy all", "foreach vj -12 0 5 10 12", "  alter Vjack = $vj", "  op",
           f"  let inn = v({n['minus']})", f"  let inp = v({n['plus']})",
           f"  let out = v({n['out']})",
           *(f"  let {d.lower()} = @{d.lower()}[id]" for d in s.diodes),
           "  echo \"RESULT jack $vj $&inn $&inp $&out "
           + " ".join(f"$&{d.lower()}" for d in s.diodes) + "\"",
           "  destroy all", "end"]
    return body, ctl


def _pot(spec: DeckSpec, s: Stage, n: dict[str, str]) -> tuple[list[str], list[str]]:
    ref, r = next(iter(s.pots.items()))
    body = ["* the stage", *s.lines]
    ctl = ["foreach pos 0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1",
           f"  let rcw = max({r:g}*(1 - $pos), 0.01)", f"  let rccw = max({r:g}*$pos, 0.01)",
           f"  alter R{ref}cw = $&rcw", f"  alter R{ref}ccw = $&rccw", "  op",
           f"  let adc = v({n['adc']})", *_adc_lines(spec.adc)[:1],
           "  echo \"RESULT pos $pos $&adc $&fsr\"", "  destroy all", "end"]
    return body, ctl


def _dac_out(spec: DeckSpec, s: Stage, n: dict[str, str], mc: bool) -> tuple[list[str], list[str]]:
    body = ["* the stage", *s.lines, "* the world: the DAC pin, a load on the jack",
            f"Vdac {n['plus']} 0 DC 0", f"Rload {n['jack']} 0 10Meg"]
    fs = 4.095 if spec.dac == "mcp4728" else 3.3 * 4095 / 4096
    if not mc:
        ctl = [f"dc Vdac 0 {fs:.4f} 0.005",
               f"wrdata {spec.name}_dc.dat v({n['jack']}) v({n['out']})", "destroy all",
               "foreach rl 100k 10k", "  alter Rload = $rl", f"  alter Vdac = {fs:.4f}", "  op",
               f"  let jack = v({n['jack']})", f"  let out = v({n['out']})",
               "  echo \"RESULT load $rl $&jack $&out\"", "  destroy all", "end",
               "alter Rload = 10k", f"dc Vdac 0 {fs * 1.4:.3f} 0.01",
               f"let outmax = vecmax(v({n['out']}))", "echo \"RESULT swing $&outmax\"",
               "destroy all", "alter Rload = 1m", f"alter Vdac = {fs:.4f}", "op",
               f"let isc = v({n['out']})/1000", f"let out = v({n['out']})",
               "echo \"RESULT short $&isc $&out\""]
        return body, ctl
    if spec.dac == "mcp4728":   # internal 2.048 V (2.007..2.089), gain error +-1.25 %, +-20 mV
        draw = ["  let lsb = 2*2.048*(1 + 0.0200*sunif(0))*(1 + 0.0125*sunif(0))/4096",
                "  let off = 0.020*sunif(0)"]
    else:                       # VREF = the Pi's 3.3 V (+-3 %), gain +-1 %, offset +-5 mV
        draw = ["  let lsb = 3.3*(1 + 0.03*sunif(0))*(1 + 0.01*sunif(0))/4096",
                "  let off = 0.005*sunif(0)"]
    ctl = ["setseed 2", "let k = 0", f"let runs = {MC_RUNS}", "while k < runs",
           *randomize(s), *draw,
           "  foreach code 410 3277", "    let vd = off + lsb*$code", "    alter Vdac = $&vd",
           "    op", f"    let jack = v({n['jack']})", "    echo \"MC $&const.k $code $&jack\"",
           "  end", "  destroy all", "  let k = k + 1", "end"]
    return body, ctl


def _buf_out(spec: DeckSpec, s: Stage, n: dict[str, str]) -> tuple[list[str], list[str]]:
    body = ["* the stage", *s.lines, "* the world: the GPIO, a load on the jack",
            f"Vgpio {n['gpio']} 0 DC 0", f"Rload {n['jack']} 0 10k"]
    ctl = ["foreach rl 10k 100k 1m", "  alter Rload = $rl", "  foreach g 0 3.3",
           "    alter Vgpio = $g", "    op", f"    let jack = v({n['jack']})",
           f"    let buf = v({n['buf']})", "    echo \"RESULT level $rl $g $&jack $&buf\"",
           "    destroy all", "  end", "end"]
    return body, ctl


def board_decks(c: Circuit) -> dict[str, str]:
    """deck file name -> text."""
    out: dict[str, str] = {}
    for spec in SPECS[c.name]:
        groups = (spec.group, "bias") if spec.kind == "cv_in" else (spec.group,)
        s = stage(c, *groups)
        n = _nets(c, spec.group)
        title = f"grooverack {c.name}: {spec.name} ({spec.group}, {spec.item})"
        if spec.kind in ("cv_in", "vel_in"):
            body, ctl = _cv_in(spec, s, n, mc=False)
        elif spec.kind == "gate_in":
            body, ctl = _gate_in(spec, s, n)
        elif spec.kind == "pot":
            body, ctl = _pot(spec, s, n)
        elif spec.kind == "dac_out":
            body, ctl = _dac_out(spec, s, n, mc=False)
        else:
            body, ctl = _buf_out(spec, s, n)
        out[f"{spec.name}.cir"] = deck(title, body, ctl)
        if spec.kind in MC_KINDS:
            mc = _cv_in if spec.kind != "dac_out" else _dac_out
            body, ctl = mc(spec, s, n, mc=True)
            out[f"{spec.name}_mc.cir"] = deck(f"{title}: Monte Carlo", body, ctl)
    return out
