"""`grooverack panel`: draw a board's panel (jacks, knobs, buttons, LEDs) from its board file,
or with `--drill` the panel's drilling drawing (hole centres and diameters)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grooverack.boards.board import load_board
from grooverack.boards.drawing import drill_svg, panel_svg
from grooverack.errors import BoardError, PathError
from grooverack.storage import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default="reference",
                        help="a board in hw/boards/ or a path to a board file (default: reference)")
    parser.add_argument("--out", default="-",
                        help="SVG file to write (default: standard output); the committed drawings "
                             "are docs/panel-reference.svg and docs/panel-budget.svg")
    parser.add_argument("--drill", action="store_true",
                        help="the drilling drawing instead: every hole's centre and diameter "
                             "(docs/drill-reference.svg, docs/drill-budget.svg)")


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.is_panel:
        raise BoardError(f"board {board.name!r} is kind {board.kind!r}: only 'pi' and 'sim' "
                         "boards have a panel to draw")
    text = drill_svg(board) if args.drill else panel_svg(board)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    try:
        atomic_write_text(out, text)
    except PathError as exc:
        raise PathError(f"--out {exc}") from None
    print(f"wrote {out}")
    return 0
