"""Run a board's SPICE decks with `ngspice -b` and judge the numbers: against the board file
(gain, offset, thresholds, levels), the parts' datasheet limits, and `grooverack calibrate`'s
accepted range (the Monte Carlo runs go through the calibration's own functions).

`evaluate(circuit, board)` returns `Check` rows (the table in hw/README.md) and the Monte Carlo
spread. ngspice is a program we call; nothing of it is linked.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.decks import MC_RUNS, SPECS, DeckSpec, board_decks
from circuits.netlist import Circuit

# datasheet limits the checks use
MCP6004_CMR = (-0.3, 3.3 + 0.3)          # VSS - 0.3 .. VDD + 0.3
ADC_ABS_MAX = {"mcp3208": (-0.6, 3.3 + 0.6), "ads1115": (-0.3, 3.3 + 0.3)}
BAT54_IF_MAX = 0.200                     # A, continuous
LM393_CMR_HIGH = 3.3 - 1.5               # VCC - 1.5 V at 25 C (VCC - 2.0 V over temperature)
LM393_IN_MIN = -0.3                      # absolute maximum, volts
SCHMITT = (1.77, 0.64)                   # what the emulator uses (emulators/world.py)
TL074_IOS = 0.040                        # short-circuit current, typ
R0805_WATTS = 0.125
HCT_OUT_MAX = 0.035                      # 74HCT541 output current, absolute maximum


class NgspiceMissing(RuntimeError):
    pass


def ngspice() -> str | None:
    return shutil.which("ngspice") or (os.path.exists("/usr/bin/ngspice") and "/usr/bin/ngspice") or None


def run(text: str, name: str, runs: int | None = None) -> tuple[str, dict[str, list[list[float]]]]:
    """Run one deck; returns its output and the `wrdata` tables it wrote."""
    exe = ngspice()
    if exe is None:
        raise NgspiceMissing("ngspice is not installed (Debian: apt-get install ngspice)")
    if runs is not None:
        text = text.replace(f"let runs = {MC_RUNS}", f"let runs = {runs}")
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / name
        deck.write_text(text, encoding="utf-8")
        proc = subprocess.run([exe, "-b", deck.name], cwd=tmp, capture_output=True, text=True,
                              timeout=300, check=False)
        tables = {p.name: [[float(x) for x in line.split()] for line in
                           p.read_text().splitlines() if line.strip()]
                  for p in Path(tmp).glob("*.dat")}
    out = proc.stdout + proc.stderr
    if "RESULT" not in out and "MC " not in out:
        raise RuntimeError(f"{name}: ngspice gave no results:\n{out[-2000:]}")
    return out, tables


def results(out: str, tag: str = "RESULT") -> list[list[str]]:
    return [line.split()[1:] for line in out.splitlines() if line.startswith(tag + " ")]


@dataclass(frozen=True)
class Check:
    deck: str
    what: str
    value: str
    limit: str
    ok: bool


@dataclass(frozen=True)
class Spread:
    deck: str
    channel: str
    runs: int
    gain_pct: tuple[float, float, float]        # min, max, standard deviation (% of nominal)
    offset_v: tuple[float, float, float]        # volts at the nominal-0 V code
    accepted: int                               # runs grooverack calibrate accepts


def _lsb(board: Any, chip: str) -> float:
    c = board.chips[chip]
    if c.part == "mcp3208":
        return c.vref / 4096
    if c.part == "ads1115":
        return c.fsr / 32768
    if c.part == "mcp4728":
        return 4.096 / 4096
    return c.vref * c.gain / 4096


def _columns(table: list[list[float]]) -> list[list[float]]:
    """wrdata writes (x, y) pairs per vector: the sweep, then each vector's values."""
    cols = list(zip(*table, strict=True))
    return [list(cols[0])] + [list(cols[i]) for i in range(1, len(cols), 2)]


def _input(spec: DeckSpec, board: Any, out: str, tables: dict[str, Any]) -> list[Check]:
    item = board.inputs[spec.item.split(".", 1)[1]]
    chip = board.chips[item.chip]
    sweep, adc, minus, plus, _opout, rail = _columns(tables[f"{spec.name}_dc.dat"])
    lsb = _lsb(board, item.chip) if chip.part == "ads1115" else None
    full = 10.0
    errs = []
    for vj, va, r in zip(sweep, adc, rail, strict=True):
        code = va / (lsb if lsb is not None else r / 4096)
        errs.append(abs(item.gain * code + item.offset - vj))
    worst = max(errs)
    at = sweep[errs.index(worst)]
    lo, hi = sweep[0], sweep[-1]
    checks = [Check(spec.name, f"{spec.item}: jack -> code vs board gain/offset, "
                    f"{lo:+.0f}..{hi:+.0f} V",
                    f"{100 * worst / full:.3f} % FS (at {at:+.2f} V)", "<= 0.5 % FS",
                    worst / full <= 0.005)]
    cm = [v for col in (minus, plus) for v in col]
    rows = results(out)
    for row in rows:
        cm += [float(row[3]), float(row[4])]
    checks.append(Check(spec.name, "MCP6004 inputs inside the common-mode range (-12..+12 V "
                        "at the jack)", f"{min(cm):+.3f}..{max(cm):+.3f} V",
                        f"{MCP6004_CMR[0]:+.1f}..{MCP6004_CMR[1]:+.1f} V",
                        MCP6004_CMR[0] <= min(cm) and max(cm) <= MCP6004_CMR[1]))
    pins = [float(r[2]) for r in rows]
    amax = ADC_ABS_MAX[chip.part]
    checks.append(Check(spec.name, f"{chip.part.upper()} pin at -12 / +12 V on the jack",
                        f"{pins[0]:+.3f} / {pins[-1]:+.3f} V",
                        f"{amax[0]:+.1f}..{amax[1]:+.1f} V (abs. max)",
                        all(amax[0] <= p <= amax[1] for p in pins)))
    clamp = max(abs(float(x)) for r in rows for x in r[6:])
    checks.append(Check(spec.name, "BAT54S clamp current at +-12 V on the jack",
                        f"{clamp * 1e3:.3f} mA", f"<= {BAT54_IF_MAX * 1e3:.0f} mA",
                        clamp <= BAT54_IF_MAX))
    return checks


def _gate(spec: DeckSpec, out: str) -> list[Check]:
    rows = results(out)
    th = next(r for r in rows if r[0] == "thresholds")
    rise, fall = float(th[1]), float(th[2])
    jack = [r for r in rows if r[0] == "jack"]
    checks = [Check(spec.name, "rising threshold at the jack (Pi pull-up on)", f"{rise:.3f} V",
                    f"{SCHMITT[0]} V +- 5 %", abs(rise / SCHMITT[0] - 1) <= 0.05),
              Check(spec.name, "falling threshold at the jack", f"{fall:.3f} V",
                    f"{SCHMITT[1]} V +- 5 %", abs(fall / SCHMITT[1] - 1) <= 0.05)]
    plus = [float(r[3]) for r in jack]
    minus = [float(r[2]) for r in jack]
    ok_cm = all(0 <= p <= LM393_CMR_HIGH or 0 <= m <= LM393_CMR_HIGH
                for p, m in zip(plus, minus, strict=True))
    checks.append(Check(spec.name, "LM393 (+) input (3.3 V supply), either input in range at "
                        "every jack level", f"{min(plus):.3f}..{max(plus):.3f} V",
                        f"0..{LM393_CMR_HIGH:.1f} V (VCC - 1.5)", ok_cm
                        and max(plus) <= LM393_CMR_HIGH))
    checks.append(Check(spec.name, "LM393 (-) input at -12 V on the jack (abs. max -0.3 V)",
                        f"{min(minus):+.3f} V", f">= {LM393_IN_MIN} V", min(minus) >= LM393_IN_MIN))
    clamp = max(abs(float(x)) for r in jack for x in r[5:])
    checks.append(Check(spec.name, "BAT54S clamp current at +-12 V", f"{clamp * 1e3:.3f} mA",
                        f"<= {BAT54_IF_MAX * 1e3:.0f} mA", clamp <= BAT54_IF_MAX))
    return checks


def _pot(spec: DeckSpec, board: Any, out: str) -> list[Check]:
    pot = board.pots[spec.item.split(".", 1)[1]]
    lsb = _lsb(board, pot.chip)
    worst = 0.0
    for r in results(out):
        pos, va, ref = float(r[1]), float(r[2]), float(r[3])
        code = va / (ref / 4096 if board.chips[pot.chip].part == "mcp3208" else lsb)
        worst = max(worst, abs(code / pot.code_max - pos))
    return [Check(spec.name, f"{spec.item}: wiper -> code / {pot.code_max} vs position",
                  f"{100 * worst:.3f} % of travel", "<= 0.5 %", worst <= 0.005)]


def _dac(spec: DeckSpec, board: Any, out: str, tables: dict[str, Any]) -> list[Check]:
    o = board.outputs[spec.item.split(".", 1)[1]]
    lsb = _lsb(board, o.chip)
    sweep, jack, opout = _columns(tables[f"{spec.name}_dc.dat"])
    full = o.safe_max - o.safe_min
    errs = [abs(o.gain * (vd / lsb) + o.offset - vj) for vd, vj in zip(sweep, jack, strict=True)]
    worst = max(errs)
    rows = results(out)
    loads = {r[1]: (float(r[2]), float(r[3])) for r in rows if r[0] == "load"}
    swing = float(next(r for r in rows if r[0] == "swing")[1])
    isc = float(next(r for r in rows if r[0] == "short")[1])
    top = o.gain * (sweep[-1] / lsb) + o.offset
    jack10k, out10k = loads["10k"]
    return [
        Check(spec.name, f"{spec.item}: code -> volts at the jack (10 MOhm meter) vs board",
              f"{100 * worst / full:.3f} % FS", "<= 0.5 % FS", worst / full <= 0.005),
        Check(spec.name, f"full code ({top:.2f} V) into 1k + 10 kOhm: TL074 output, jack",
              f"{out10k:.3f} V, {jack10k:.3f} V", f">= {0.995 * top:.2f} V at the op-amp",
              out10k >= 0.995 * top),
        Check(spec.name, "TL074 swing into 1k + 10 kOhm on +-12 V (DAC driven past full scale)",
              f"{swing:.2f} V", ">= 10.0 V", swing >= 10.0),
        Check(spec.name, "into 100 kOhm (a Eurorack input) at full code",
              f"{loads['100k'][0]:.3f} V ({100 * (loads['100k'][0] / top - 1):+.2f} %)",
              "report (calibration takes it out)", True),
        Check(spec.name, "jack shorted at full code: current through the 1 kOhm, its power",
              f"{isc * 1e3:.1f} mA, {isc ** 2 * 1e3 * 1e3:.0f} mW",
              f"<= {TL074_IOS * 1e3:.0f} mA, <= {R0805_WATTS * 1e3:.0f} mW",
              isc <= TL074_IOS and isc ** 2 * 1e3 <= R0805_WATTS),
    ]


def _buf(spec: DeckSpec, board: Any, out: str) -> list[Check]:
    item = board.gpio_outputs[spec.item.split(".", 1)[1]]
    lv = {(r[1], r[2]): (float(r[3]), float(r[4])) for r in results(out) if r[0] == "level"}
    hi10, lo10 = lv[("10k", "3.3")][0], lv[("10k", "0")][0]
    hi100 = lv[("100k", "3.3")][0]
    isc = lv[("1m", "3.3")][1] / 1e3
    return [
        Check(spec.name, f"{spec.item}: GPIO 0 / 3.3 V -> jack into 10 kOhm",
              f"{lo10:.3f} / {hi10:.3f} V", f"0 / >= {0.9 * item.volts:.1f} V (board: "
              f"{item.volts:g} V)", lo10 <= 0.1 and hi10 >= 0.9 * item.volts),
        Check(spec.name, "high into 100 kOhm", f"{hi100:.3f} V", f"{item.volts:g} V +- 2 %",
              abs(hi100 / item.volts - 1) <= 0.02),
        Check(spec.name, "jack shorted: 74HCT541 output current", f"{isc * 1e3:.1f} mA",
              f"<= {HCT_OUT_MAX * 1e3:.0f} mA (abs. max)", isc <= HCT_OUT_MAX),
    ]


def _mc(spec: DeckSpec, board: Any, out: str) -> Spread:
    from grooverack.calibration import board_channels, fit_output, two_point, zero_offset
    from grooverack.errors import CalibrationError

    ins, outs = board_channels(board)
    name = spec.item.split(".", 1)[1]
    runs: dict[int, dict[float, float]] = {}
    for r in results(out, "MC"):
        k, x = int(r[0]), float(r[1])
        if spec.kind == "dac_out":
            runs.setdefault(k, {})[x] = float(r[2])           # code -> jack volts
        else:
            item = board.inputs[name]
            chip = board.chips[item.chip]
            lsb = float(r[3]) / (4096 if chip.part == "mcp3208" else 32768)
            runs.setdefault(k, {})[x] = round(float(r[2]) / lsb)   # jack volts -> code
    gains, offsets, accepted = [], [], 0
    for points in runs.values():
        try:
            if spec.kind == "dac_out":
                s = outs[name]
                cal = fit_output(s, sorted(points.items()))
                gain, off = cal.gain, cal.offset
            else:
                s = ins[name]
                hi = max(points)
                gain = (hi - 1.0) / (points[hi] - points[1.0])
                off = 1.0 - gain * points[1.0]
                if s.role == "pitch":
                    two_point(s, points[1.0], points[3.0])
                else:
                    zero_offset(s, points[0.0])
            accepted += 1
        except CalibrationError:
            if spec.kind == "dac_out":
                continue
        zero = min(max(s.nominal_code(0.0), s.code_min), s.code_max)
        gains.append(100 * (gain / s.gain - 1))
        offsets.append(gain * zero + off - s.nominal_volts(zero))
    return Spread(spec.name, spec.item, len(runs),
                  (min(gains), max(gains), statistics.pstdev(gains)),
                  (min(offsets), max(offsets), statistics.pstdev(offsets)), accepted)


def _signature(c: Circuit, group: str) -> tuple[str, ...]:
    """What a channel is built of (part types and values): equal for channels placed by the
    same front-end function with the same values."""
    return tuple(sorted(f"{p.type.key}:{p.type.value}" for p, _ in c.group_parts(group)
                        if p.type.key != "PJ398SM"))


def _siblings(c: Circuit, board: Any, spec: DeckSpec) -> list[Check]:
    """The other board items built like the simulated one must carry its scaling: a board file
    that gives one of them another gain, offset or level disagrees with its circuit."""
    kind, name = spec.item.split(".", 1)
    groups = {p.fields["item"]: p.group for p in c.sorted_parts() if "item" in p.fields}
    same = [i for i, g in groups.items() if i != spec.item and i.startswith(kind + ".")
            and _signature(c, g) == _signature(c, groups[spec.item])]
    if not same:
        return []
    table = getattr(board, kind)
    ref = table[name]
    keys = {"inputs": ("gain", "offset"), "outputs": ("gain", "offset"),
            "gpio_outputs": ("volts",), "gpio_inputs": ("active_low", "pull"),
            "pots": ("code_max",)}[kind]
    differ = [i for i in same
              if any(getattr(table[i.split(".", 1)[1]], k) != getattr(ref, k) for k in keys)]
    return [Check(spec.name, f"the same stage in the board file: {', '.join(sorted(same))}",
                  "differ: " + ", ".join(differ) if differ else "same " + "/".join(keys),
                  f"as {spec.item}", not differ)]


def _fill(spec: DeckSpec, board: Any, tables: dict[str, Any]) -> list[Check]:
    """An ADC fill gate behind the CV stage: its thresholds as the firmware reads them."""
    fills = [i for i in board.inputs.values() if i.role == "fill"]
    if spec.kind != "cv_in" or not fills:
        return []
    item = fills[0]
    sweep, adc, _m, _p, _o, rail = _columns(tables[f"{spec.name}_dc.dat"])
    read = []
    for volts in (item.rise_volts, item.fall_volts):
        k = min(range(len(sweep)), key=lambda i: abs(sweep[i] - volts))
        read.append(item.gain * adc[k] / (rail[k] / 4096) + item.offset)
    err = max(abs(r - v) for r, v in zip(read, (item.rise_volts, item.fall_volts), strict=True))
    return [Check(spec.name, f"inputs.{item.name}: {item.rise_volts:g} / {item.fall_volts:g} V "
                  "thresholds at the jack as read", f"{read[0]:.3f} / {read[1]:.3f} V",
                  "within 0.05 V", err <= 0.05)]


def evaluate(c: Circuit, board: Any, runs: int | None = None) -> tuple[list[Check], list[Spread]]:
    decks = board_decks(c)
    checks: list[Check] = []
    spreads: list[Spread] = []
    for spec in SPECS[c.name]:
        out, tables = run(decks[f"{spec.name}.cir"], f"{spec.name}.cir")
        checks += _siblings(c, board, spec)
        checks += _fill(spec, board, tables) if spec.kind == "cv_in" else []
        if spec.kind in ("cv_in", "vel_in"):
            checks += _input(spec, board, out, tables)
        elif spec.kind == "gate_in":
            checks += _gate(spec, out)
        elif spec.kind == "pot":
            checks += _pot(spec, board, out)
        elif spec.kind == "dac_out":
            checks += _dac(spec, board, out, tables)
        else:
            checks += _buf(spec, board, out)
        mc = decks.get(f"{spec.name}_mc.cir")
        if mc is not None:
            mout, _ = run(mc, f"{spec.name}_mc.cir", runs)
            spreads.append(_mc(spec, board, mout))
    return checks, spreads


def table(board_name: str, checks: list[Check], spreads: list[Spread]) -> str:
    """The Markdown table of one board's results (hw/README.md)."""
    lines = [f"**{board_name}**", "", "| deck | check | simulated | limit | |", "|---|---|---|---|---|"]
    for ch in checks:
        lines.append(f"| `{ch.deck}` | {ch.what} | {ch.value} | {ch.limit} | "
                     f"{'ok' if ch.ok else '**FAIL**'} |")
    lines += ["", f"Monte Carlo ({spreads[0].runs if spreads else 0} runs each: 1 % resistors, "
              "op-amp offsets, references; see `hw/circuits/decks.py`):", "",
              "| deck | channel | gain error (min / max / sd) | offset at 0 V (min / max / sd) | "
              "accepted by `grooverack calibrate` |", "|---|---|---|---|---|"]
    for s in spreads:
        g, o = s.gain_pct, s.offset_v
        lines.append(f"| `{s.deck}` | `{s.channel}` | {g[0]:+.2f} / {g[1]:+.2f} / {g[2]:.2f} % | "
                     f"{1e3 * o[0]:+.0f} / {1e3 * o[1]:+.0f} / {1e3 * o[2]:.0f} mV | "
                     f"{s.accepted} of {s.runs} |")
    return "\n".join(lines) + "\n"


def all_ok(checks: list[Check], spreads: list[Spread]) -> bool:
    return all(c.ok for c in checks) and all(s.accepted == s.runs for s in spreads)

