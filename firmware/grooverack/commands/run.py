"""`grooverack run`: the module in real time on a board.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from grooverack.boards.board import load_board
from grooverack.commands.backends import backend_for
from grooverack.commands.common import (
    add_common,
    add_patch_arguments,
    check_output_dir,
    check_output_file,
    check_positive,
)
from grooverack.config import make_settings
from grooverack.errors import ModelError, SourceError
from grooverack.runtime.serve import process_signals

MAX_DURATION_S = 86_400.0  # a day: the sim board keeps every output write in memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--board", metavar="NAME",
                        help="sim (the virtual patch on the wall clock), a board in hw/boards/ or "
                             "a TOML path (default: config key board)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop after this long (default: until Ctrl-C; at most "
                             f"{MAX_DURATION_S:,.0f} s)")
    add_patch_arguments(parser)
    parser.add_argument("--direct", action="store_true",
                        help="board sim: drive the engine straight from the patch, without the "
                             "emulated chips and panel code")
    parser.add_argument("--rt", action="store_true",
                        help="board sim: SCHED_FIFO for the loop thread and locked memory, when "
                             "permitted (as the Pi service runs)")
    parser.add_argument("--timing", metavar="FILE",
                        help="board sim: write scheduled vs actual time of every event (CSV)")
    parser.add_argument("--out", metavar="DIR", help="board sim: also write the render files")
    parser.add_argument("--fresh", action="store_true",
                        help="play from the defaults: the saved performance state (mutes, style, "
                             "preset slot, panel) is neither restored nor overwritten")
    parser.add_argument("--no-wav", dest="wav", action="store_false",
                        help="board sim with --out: skip drums.wav")
    parser.add_argument("--audio", nargs="?", const="", default=None, metavar="DEVICE",
                        help="board sim: play the drum voices through the sound card "
                             "(sounddevice; DEVICE: part of an output device's name, default "
                             "config audio.device, else the system's default output)")


def run(args: argparse.Namespace) -> int:

    launched = time.perf_counter()
    check_positive(args.duration, "--duration", MAX_DURATION_S, "seconds")
    if args.timing:
        check_output_file(args.timing, "--timing")
    if args.out:
        check_output_dir(args.out)
    settings = make_settings(args)
    name = args.board or settings["board"]
    with process_signals():  # a stop signal during start-up ends it cleanly, exit 0
        board: Any = load_board(name)
        entry = backend_for(board)  # the one registry: sim, Pi, ES-9, MIDI (as `web` runs them)
        try:
            run_board = entry.load("run")
        except ImportError as exc:
            print(f"grooverack run: board {board.name} ({board.kind}): back end {entry.run} not "
                  f"available ({exc})", file=sys.stderr)
            return 2
        args.board = name  # the board given, or the configured one (a sim board by its file)
        args.launched = launched  # (the sim board's "ready in" line)
        try:
            return int(run_board(board, settings, args) or 0)
        except (SourceError, ModelError) as exc:
            print(f"grooverack run: {exc}", file=sys.stderr)
            return 2
