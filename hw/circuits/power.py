"""Current per Eurorack rail, typical and peak, from the parts on the circuit and the Pi's
published figures. The module draws nothing from the bus's +5 V: its own step-down makes 5 V
for the Pi and the 5 V parts from +12 V.

Figures: the parts' datasheets (quiescent current per package, typical and maximum), and the
Pi's from the Raspberry Pi documentation's power-supply table: typical = its "typical
bare-board active current", peak = its "recommended PSU current capacity" less the "maximum
total USB peripheral current" (the module has no USB load of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from circuits.netlist import Circuit

PI = {  # model: (typical A, peak A) at 5 V
    "Raspberry Pi 4 Model B": (0.600, 3.0 - 1.2),
    "Raspberry Pi 3 Model B+": (0.500, 2.5 - 1.2),
}
PI_USED = "Raspberry Pi 4 Model B"
# per part: (rail, typical A, peak A); the 3.3 V parts run from the Pi's 3.3 V, which the Pi
# makes from its 5 V (counted on 5 V one to one: a pessimistic stand-in for its converter)
PARTS = {
    "TL074": [("+12V", 4 * 1.4e-3, 4 * 2.5e-3), ("-12V", 4 * 1.4e-3, 4 * 2.5e-3)],
    "MCP6004": [("+5V", 4 * 100e-6, 4 * 170e-6)],
    "LM393": [("+5V", 0.4e-3, 1.0e-3)],
    "MCP3208": [("+5V", 0.3e-3, 0.4e-3)],
    "ADS1115": [("+5V", 0.15e-3, 0.3e-3)],
    "MCP4728": [("+5V", 0.8e-3, 1.4e-3)],
    "MCP4922": [("+5V", 0.35e-3, 0.7e-3)],
    "74HCT541": [("+5V", 0.1e-3, 8 * 0.45e-3)],   # peak: every input at 3.3 V (delta ICC)
    "PCA9306": [("+5V", 0.03e-3, 2.1e-3)],        # 200k + the 4.7k pull-ups while low
    "POT10K": [("+5V", 0.33e-3, 0.33e-3)],
    "LED3": [("+5V", 0.0, 3.1e-3)],
}
# output loads: a DAC output stage sources from +12 V, a buffered output from 5 V
DAC_OUT = (5.0 / 100e3, 10.0 / 11e3)       # typical: 5 V into 100k; peak: 10 V into 1k + 10k
BUF_OUT = (0.0, 5.0 / 11e3)
TSR_EFFICIENCY = (0.85, 0.91)               # light load / the datasheet's 91 % at 5 V out
TSR_RATED = 3.0
SCHOTTKY_DROP = 0.45                        # B340A at about 1 A
BUS = 12.0


@dataclass(frozen=True)
class Budget:
    rows: list[tuple[str, str, float, float]]   # (what, rail, typical mA, peak mA)
    plus12: tuple[float, float]
    minus12: tuple[float, float]
    five: tuple[float, float]                   # the module's 5 V load (A)

    @property
    def headline(self) -> str:
        return (f"+12 V: {self.plus12[0] * 1e3:.0f} mA (peak {self.plus12[1] * 1e3:.0f} mA), "
                f"-12 V: {self.minus12[0] * 1e3:.0f} mA (peak {self.minus12[1] * 1e3:.0f} mA), "
                "+5 V: 0 mA")


def budget(c: Circuit) -> Budget:
    count: dict[str, int] = {}
    for part in c.sorted_parts():
        count[part.type.key] = count.get(part.type.key, 0) + 1
    dac_outs = sum(1 for p in c.sorted_parts()
                   if p.fields.get("item", "").startswith("outputs."))
    buf_outs = sum(1 for p in c.sorted_parts()
                   if p.type.key == "PJ398SM" and p.fields.get("item", "").startswith("gpio_outputs."))
    rows: list[tuple[str, str, float, float]] = []
    typ, peak = PI[PI_USED]
    rows.append((f"{PI_USED} (no USB devices)", "+5V", typ, peak))
    for key, loads in PARTS.items():
        n = count.get(key, 0)
        for rail, t, p in loads:
            if n:
                rows.append((f"{n} x {key}", rail, n * t, n * p))
    rows.append((f"{dac_outs} DAC outputs (typ 5 V into 100k, peak 10 V into 1k + 10k)", "+12V",
                 dac_outs * DAC_OUT[0], dac_outs * DAC_OUT[1]))
    rows.append((f"{buf_outs} buffered outputs (peak: all high into 1k + 10k)", "+5V",
                 buf_outs * BUF_OUT[0], buf_outs * BUF_OUT[1]))
    five = (sum(r[2] for r in rows if r[1] == "+5V"), sum(r[3] for r in rows if r[1] == "+5V"))
    vin = BUS - SCHOTTKY_DROP
    tsr = (5.0 * five[0] / (TSR_EFFICIENCY[0] * vin), 5.0 * five[1] / (TSR_EFFICIENCY[1] * vin))
    rows.append((f"TSR 3-2450 input (5 V load / efficiency / {vin:.2f} V)", "+12V", *tsr))
    plus = (sum(r[2] for r in rows if r[1] == "+12V"), sum(r[3] for r in rows if r[1] == "+12V"))
    minus = (sum(r[2] for r in rows if r[1] == "-12V"), sum(r[3] for r in rows if r[1] == "-12V"))
    return Budget([(w, rail, t * 1e3, p * 1e3) for w, rail, t, p in rows], plus, minus, five)


def table(c: Circuit) -> str:
    b = budget(c)
    lines = [f"**{c.name}**: {b.headline}", "", "| load | rail | typical mA | peak mA |",
             "|---|---|---|---|"]
    for what, rail, t, p in b.rows:
        lines.append(f"| {what} | {rail} | {t:.1f} | {p:.1f} |")
    lines.append(f"| **5 V regulator load** (TSR 3-2450, {TSR_RATED:g} A) | +5V | "
                 f"{b.five[0] * 1e3:.0f} | {b.five[1] * 1e3:.0f} "
                 f"({100 * b.five[1] / TSR_RATED:.0f} % of its rating) |")
    lines.append(f"| **total** | +12V | {b.plus12[0] * 1e3:.0f} | {b.plus12[1] * 1e3:.0f} |")
    lines.append(f"| **total** | -12V | {b.minus12[0] * 1e3:.0f} | {b.minus12[1] * 1e3:.0f} |")
    return "\n".join(lines) + "\n"
