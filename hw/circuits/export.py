"""A circuit written out: the KiCad netlist (s-expression, "(export (version D) ...)", what
Pcbnew's File > Import > Netlist reads) and the BOM (CSV, one line per orderable part)."""

from __future__ import annotations

import csv
import io
import uuid

from circuits.netlist import Circuit, Part

NAMESPACE = uuid.UUID("6f1d3c1e-8f3e-4c55-9a55-67726f6f7665")

# what a builder orders besides the circuit board's parts (per board)
EXTRAS = {
    "reference": [
        ("Raspberry Pi 4 Model B (or 3B+ / Zero 2 W; a Pi 5 needs 5 A: see hw/README.md)", 1),
        ("knob for 9 mm D-shaft pots (e.g. Davies 1900H clone, 11 mm)", 5),
        ("Eurorack power cable 10-pin to 16-pin, 25 cm", 1),
        ("M2.5 x 11 mm standoffs + screws (Pi to board)", 4),
        ("front panel 3U 16 HP, 2 mm aluminium (docs/drill-reference.svg)", 1),
        ("M3 x 6 mm rail screws + nylon washers", 4),
    ],
    "budget": [
        ("Raspberry Pi 4 Model B (or 3B+ / Zero 2 W)", 1),
        ("knob for 9 mm D-shaft pots", 3),
        ("Eurorack power cable 10-pin to 16-pin, 25 cm", 1),
        ("M2.5 x 11 mm standoffs + screws (Pi to board)", 4),
        ("front panel 3U 16 HP, 2 mm aluminium (docs/drill-budget.svg)", 1),
        ("M3 x 6 mm rail screws + nylon washers", 4),
    ],
}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mpn(part: Part) -> str:
    return part.fields.get("variant", part.type.mpn)


def kicad_netlist(c: Circuit, source: str) -> str:
    lines = ['(export (version "D")',
             f'  (design (source {_q(source)}) (date "") (tool "grooverack hw/generate.py")',
             f'    (sheet (number "1") (name "/") (tstamps "/") (title_block (title {_q(c.title)}))))',
             "  (components"]
    for part in c.sorted_parts():
        t = part.type
        stamp = uuid.uuid5(NAMESPACE, f"{c.name}/{part.ref}")
        fields = [("Manufacturer", t.manufacturer), ("MPN", _mpn(part)), ("Package", t.package)]
        fields += [(k.capitalize(), v) for k, v in sorted(part.fields.items()) if k != "variant"]
        lines += [f"    (comp (ref {_q(part.ref)})",
                  f"      (value {_q(t.value)})",
                  f"      (footprint {_q(t.footprint)})"]
        if t.datasheet:
            lines.append(f"      (datasheet {_q(t.datasheet)})")
        lines.append("      (fields " + " ".join(f"(field (name {_q(k)}) {_q(v)})"
                                                 for k, v in fields) + ")")
        lines += [f"      (libsource (lib \"grooverack\") (part {_q(t.key)}) "
                  f"(description {_q(t.description)}))",
                  '      (sheetpath (names "/") (tstamps "/"))',
                  f"      (tstamps {_q(str(stamp))}))"]
    lines.append("  )")
    lines.append("  (nets")
    for code, (net, pins) in enumerate(c.nets().items(), start=1):
        lines.append(f"    (net (code {_q(str(code))}) (name {_q(net)})")
        for part, pin in pins:
            lines.append(f"      (node (ref {_q(part.ref)}) (pin {_q(pin.number)}) "
                         f"(pinfunction {_q(pin.name)}) (pintype {_q(pin.kind)}))")
        lines[-1] += ")"
    lines.append("  )")
    lines.append(")")
    return "\n".join(lines) + "\n"


BOM_FIELDS = ["quantity", "refs", "value", "description", "manufacturer", "mpn", "package",
              "footprint", "note"]


def bom_rows(c: Circuit) -> list[dict[str, str]]:
    groups: dict[tuple[str, str], list[Part]] = {}
    for part in c.sorted_parts():
        groups.setdefault((part.type.key, _mpn(part)), []).append(part)
    rows = []
    for (_, mpn), parts in groups.items():
        t = parts[0].type
        rows.append({"quantity": str(len(parts)), "refs": " ".join(p.ref for p in parts),
                     "value": t.value, "description": t.description,
                     "manufacturer": t.manufacturer, "mpn": mpn, "package": t.package,
                     "footprint": t.footprint, "note": t.note})
    order = ["U", "D", "R", "C", "RV", "SW", "J", "JP"]
    rows.sort(key=lambda r: (order.index(r["refs"].split()[0].rstrip("0123456789")),
                             r["description"]))
    for text, qty in EXTRAS.get(c.name, []):
        if qty:
            rows.append({"quantity": str(qty), "refs": "", "value": "", "description": text,
                         "manufacturer": "", "mpn": "", "package": "", "footprint": "",
                         "note": "not on the circuit board"})
    return rows


def bom_csv(c: Circuit) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, BOM_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(bom_rows(c))
    return out.getvalue()
