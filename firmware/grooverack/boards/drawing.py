"""A panel drawing from a board file: knobs, buttons, LEDs, input and output jacks, as SVG text.

`panel_svg(board)` lays out what the board file declares (nothing hand-drawn: a jack added to
the board appears in the drawing), on a 3U panel of the board's width (16 HP unless the parts
need more height, then the drawing grows). `grooverack panel` writes it (docs/panel-reference.svg
and docs/panel-budget.svg are generated so; tests/backends/test_panel_outputs.py checks the committed
files are what this draws).
Deterministic: the same board gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar
from xml.sax.saxutils import escape

from grooverack.boards.board import AnalogOutput, Board, DigitalOutput

T = TypeVar("T")

HP_MM = 5.08
PANEL_HP = 16
PANEL_H_MM = 128.5
MARGIN = 4.0
KNOB_R, BUTTON_W, LED_R, JACK_R = 4.5, 4.0, 1.3, 3.0
FONT = 2.1

# what the panel prints next to a part (a name not listed is printed upper case, "_" as " ")
LABELS = {
    "follow": "FOLLOW", "morph": "A/B MORPH", "uncertainty": "UNCERT", "density": "DENSITY",
    "tempo": "TEMPO", "record": "REC", "clear": "CLEAR", "randomize_a": "RND A",
    "randomize_b": "RND B", "velocity_cv": "VEL CV", "morph_cv": "MORPH CV", "pitch": "PITCH",
    "groove_velocity": "GRV VEL", "groove_offset": "GRV OFS", "group_select": "GROUP",
    "group_density": "GRP DENS", "group_velocity": "GRP VEL", "mute_group": "MUTE GRP",
}
OUTPUT_LABELS = {"trigger": "TRIG {n}", "velocity": "VEL {n}", "accent": "ACC {n}",
                 "clock": "CLOCK", "reset": "RESET"}


def label(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    if name.endswith("_cv"):
        return f"{label(name[:-3])} CV"
    return name.upper().replace("_", " ")


def _chunks(items: list[T], n: int) -> Iterator[list[T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class _Svg:
    def __init__(self, width: float) -> None:
        self.width = width
        self.parts: list[str] = []
        self.holes: list[tuple[str, str, float, float]] = []   # (kind, label, x, y) in mm

    def text(self, x: float, y: float, s: str, size: float = FONT, colour: str = "#222") -> None:
        self.parts.append(f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size:g}" fill="{colour}" '
                          f'text-anchor="middle">{escape(s)}</text>')

    def circle(self, x: float, y: float, r: float, fill: str, stroke: str = "#222") -> None:
        self.parts.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{r:g}" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="0.3"/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, rx: float = 0.5) -> None:
        self.parts.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:g}" height="{h:g}" '
                          f'rx="{rx:g}" fill="{fill}" stroke="#222" stroke-width="0.3"/>')

    def columns(self, count: int) -> list[float]:
        pitch = (self.width - 2 * MARGIN) / count
        return [MARGIN + pitch * (i + 0.5) for i in range(count)]


def _jack_rows(svg: _Svg, y: float, rows: list[list[tuple[str, bool]]], cols: int) -> float:
    """Rows of (label, is_output) jacks from `y`; returns the y below them."""
    xs = svg.columns(cols)
    for row in rows:
        for x, (text, output) in zip(xs, row, strict=False):
            svg.text(x, y + FONT, text)
            if output:  # outputs: a dark ring, as panels mark them
                svg.rect(x - JACK_R - 0.8, y + FONT + 0.8, 2 * JACK_R + 1.6, 2 * JACK_R + 1.6,
                         "#333", rx=1.0)
            svg.holes.append(("jack", text, x, y + FONT + 0.8 + JACK_R + 0.8))
            svg.circle(x, y + FONT + 0.8 + JACK_R + 0.8, JACK_R, "#ddd")
            svg.circle(x, y + FONT + 0.8 + JACK_R + 0.8, 1.2, "#111")
        y += FONT + 2 * JACK_R + 3.0
    return y


def panel_svg(board: Board) -> str:
    """The board's panel as an SVG document (millimetres)."""
    svg, height = _layout(board)
    width = svg.width
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.2f}mm" height="{height:.2f}mm"'
            f' viewBox="0 0 {width:.2f} {height:.2f}" font-family="sans-serif">\n'
            f'<rect x="0" y="0" width="{width:.2f}" height="{height:.2f}" fill="#f4f4f0" '
            f'stroke="#888" stroke-width="0.4"/>\n')
    holes = "".join(f'<circle cx="{x:.2f}" cy="{yy:.2f}" r="1.6" fill="#fff" stroke="#888" '
                    'stroke-width="0.3"/>\n'
                    for x in (7.5, width - 7.5) for yy in (3.0, height - 3.0))
    return head + holes + "\n".join(svg.parts) + "\n</svg>\n"


def _layout(board: Board) -> tuple[_Svg, float]:
    """The panel's parts laid out (drawn into an `_Svg`, holes recorded) and its height."""
    width = PANEL_HP * HP_MM
    svg = _Svg(width)
    y = 8.5
    svg.text(width / 2, y, "GROOVERACK", size=3.6)
    svg.text(width / 2, y + 3.0, board.name, size=2.0, colour="#666")
    y += 5.5

    # knobs: each pot with the control it moves and, small, its shift-layer target
    pot_control = {c.pot: c for c in board.controls.values()}
    pots = sorted(board.pots.values(), key=lambda p: (p.chip, p.channel))
    cols = 3
    for row in _chunks(pots, cols):
        for x, pot in zip(svg.columns(cols), row, strict=False):
            control = pot_control.get(pot.name)
            svg.holes.append(("pot", label(control.name if control else pot.name), x, y + KNOB_R))
            svg.circle(x, y + KNOB_R, KNOB_R, "#eee")
            svg.parts.append(f'<line x1="{x:.2f}" y1="{y + KNOB_R:.2f}" x2="{x:.2f}" '
                             f'y2="{y + 1.0:.2f}" stroke="#222" stroke-width="0.6"/>')
            svg.text(x, y + 2 * KNOB_R + 2.6, label(control.name if control else pot.name))
            notes = []
            if control is not None and control.cv:
                notes.append(f"+CV x{control.cv_per_volt:g}/V")
            if pot.name in board.shift_pots:
                notes.append(f"SHIFT: {label(board.shift_pots[pot.name])}")
            for i, note in enumerate(notes):
                svg.text(x, y + 2 * KNOB_R + 4.7 + 1.9 * i, note, size=1.5, colour="#666")
        y += 2 * KNOB_R + 8.5

    # buttons and LEDs
    buttons = [i for i in board.gpio_inputs.values() if i.role == "button"]
    leds = [o for o in board.gpio_outputs.values() if o.kind == "led"]
    parts = [("button", b.name) for b in buttons] + [("led", o.name) for o in leds]
    cols = max(1, min(7, len(parts)))
    for part_row in _chunks(parts, cols):
        for x, (kind, name) in zip(svg.columns(cols), part_row, strict=False):
            if kind == "button":
                svg.holes.append(("button", label(name), x, y + BUTTON_W / 2))
                svg.rect(x - BUTTON_W / 2, y, BUTTON_W, BUTTON_W, "#bbb")
                svg.text(x, y + BUTTON_W + 2.6, label(name))
                shifted = board.shift_buttons.get(name)
                if shifted:
                    svg.text(x, y + BUTTON_W + 4.6, label(shifted), size=1.5, colour="#666")
            else:
                svg.holes.append(("led", label(name.removesuffix("_led")) + " LED", x,
                                  y + BUTTON_W / 2))
                svg.circle(x, y + BUTTON_W / 2, LED_R, "#e33")
                svg.text(x, y + BUTTON_W + 2.6, label(name.removesuffix("_led")) + " LED")
        y += BUTTON_W + 6.0

    # input jacks: gate, clock, reset (and any other edge input), then the CVs
    edge = [(label(i.name), False) for i in board.gpio_inputs.values() if i.role != "button"]
    cvs = sorted(board.inputs.values(), key=lambda i: (i.role != "pitch", i.chip, i.channel))
    inputs = edge + [(label(i.name), False) for i in cvs]
    svg.text(width / 2, y + FONT, "INPUTS", size=2.2, colour="#666")
    y += 3.2
    cols = 6
    y = _jack_rows(svg, y, list(_chunks(inputs, cols)), cols)

    # output jacks: one row per kind for triggers and velocities (VEL n below TRIG n), then
    # accents, clock and reset
    outs: list[AnalogOutput | DigitalOutput] = [*board.outputs.values(),
                                                *board.gpio_outputs.values()]
    by_kind = {k: sorted((o for o in outs if o.kind == k), key=lambda o: o.output)
               for k in OUTPUT_LABELS}
    rows: list[list[tuple[str, bool]]] = []
    cols = max(6, len(by_kind["trigger"]), len(by_kind["velocity"]))
    for kind in ("trigger", "velocity"):
        rows += _chunks([(OUTPUT_LABELS[kind].format(n=o.output), True) for o in by_kind[kind]],
                        cols)
    rest = [(OUTPUT_LABELS[k].format(n=o.output), True) for k in ("accent", "clock", "reset")
            for o in by_kind[k]]
    rows += _chunks(rest, cols)
    svg.text(width / 2, y + FONT, "OUTPUTS", size=2.2, colour="#666")
    y += 3.2
    y = _jack_rows(svg, y, rows, cols)

    height = max(PANEL_H_MM, y + 4.5)
    svg.text(width / 2, height - 3.0, f"generated from hw/boards/{board.path.name} by "
             "`grooverack panel`", size=1.4, colour="#999")
    return svg, height


# Drill sizes (mm): Thonkiconn PJ398SM bushing 6 mm; Alpha 9 mm pot bushing 7 mm; C&K D6R
# 6.5 mm (its cap is 5.5 mm: check the datasheet drawing); 3 mm LED 3.2 mm; rail screws M3.
HOLE_MM = {"jack": 6.0, "pot": 7.0, "button": 6.5, "led": 3.2, "rail": 3.2}
# what must not touch behind the panel (body widths, mm): jacks 9, pots 9.5, D6R 9.8, LED 3
BODY_MM = {"jack": 9.0, "pot": 9.5, "button": 9.8, "led": 3.0}
PANEL_GAP_MM = 0.3   # a panel is its HP width less this (Doepfer: 16 HP = 80.9..81.0 mm)


def drill_holes(board: Board) -> tuple[float, float, list[tuple[str, str, float, float, float]]]:
    """Panel width and height and every hole: (kind, label, x, y, diameter), x from the left
    edge and y from the top edge in mm, as the panel drawing places the parts. The rail holes
    follow Doepfer's A-100 drawing: 7.5 mm from the left edge, the second (HP - 3) x 5.08 mm to
    its right, 3 mm from the top and bottom edges."""
    svg, height = _layout(board)
    width = PANEL_HP * HP_MM - PANEL_GAP_MM
    holes = [(kind, text, x, y, HOLE_MM[kind]) for kind, text, x, y in svg.holes]
    for x in (7.5, 7.5 + (PANEL_HP - 3) * HP_MM):
        for y in (3.0, height - 3.0):
            holes.append(("rail", "M3", x, y, HOLE_MM["rail"]))
    return width, height, holes


def drill_svg(board: Board) -> str:
    """The panel's drilling drawing (SVG, mm, 1:1): outline, every hole with its diameter
    and a table of centres; `grooverack panel --drill` writes it."""
    width, height, holes = drill_holes(board)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 70:.2f}mm" '
           f'height="{height:.2f}mm" viewBox="0 0 {width + 70:.2f} {height:.2f}" '
           'font-family="sans-serif">',
           f'<rect x="0" y="0" width="{width:.2f}" height="{height:.2f}" fill="none" '
           'stroke="#000" stroke-width="0.25"/>']
    for kind, _text, x, y, d in holes:
        out.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{d / 2:g}" fill="none" stroke="#000" '
                   'stroke-width="0.2"/>')
        out.append(f'<path d="M{x - 1:.2f} {y:.2f}h2M{x:.2f} {y - 1:.2f}v2" stroke="#c00" '
                   'stroke-width="0.1"/>')
        if kind != "rail":
            out.append(f'<text x="{x:.2f}" y="{y + d / 2 + 1.8:.2f}" font-size="1.3" '
                       f'text-anchor="middle">{escape(_text)}</text>')
    tx = width + 4
    rows = [f"{board.name}: {PANEL_HP} HP ({width:.2f} mm) x {height:.1f} mm, 2 mm aluminium",
            "x, y from the top left corner (mm), hole diameter (mm)"]
    rows += [f"{kind:6} {x:6.2f} {y:6.2f}  d{d:g}  {text}" for kind, text, x, y, d in holes]
    for i, row in enumerate(rows):
        out.append(f'<text x="{tx:.2f}" y="{4 + 2.3 * i:.2f}" font-size="1.6" '
                   f'font-family="monospace" xml:space="preserve">{escape(row)}</text>')
    out.append(f'<text x="{tx:.2f}" y="{4 + 2.3 * (len(rows) + 1):.2f}" font-size="1.4" '
               f'fill="#666">generated from hw/boards/{board.path.name} by '
               '`grooverack panel --drill`</text>')
    return "\n".join(out) + "\n</svg>\n"


__all__ = ["panel_svg", "drill_svg", "drill_holes", "label"]
