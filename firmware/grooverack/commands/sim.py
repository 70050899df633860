"""`grooverack sim`: render the module on a virtual patch in virtual time (the default job).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from grooverack.commands.common import (
    add_common,
    add_patch_arguments,
    check_output_dir,
    check_positive,
)
from grooverack.errors import ModelError, SourceError
from grooverack.sim.session import DEFAULT_BARS, MAX_BARS, simulate, summary, write_files

DEFAULT_OUT = "grooverack-render"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    add_patch_arguments(parser)
    parser.add_argument("--bars", type=float,
                        help=f"length in bars (default {DEFAULT_BARS}; a MIDI file: its length; "
                             f"at most {MAX_BARS:,})")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                        help=f"output folder (default ./{DEFAULT_OUT}/)")
    parser.add_argument("--board", default="sim",
                        help="sim (the reference board over emulated chips: drivers, panel code "
                             "and calibration as on a Pi), another kind = \"sim\" board, or "
                             "direct (the engine straight from the patch) (default: sim)")
    parser.add_argument("--no-wav", dest="wav", action="store_false",
                        help="skip drums.wav (the drum voices of grooverack.drums played by the "
                             "outputs; sample rate: config audio.rate)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:

    check_positive(args.bars, "--bars", MAX_BARS, "bars")
    check_output_dir(args.out)
    if not getattr(args, "verbose", False):  # the board's start-up notes are for `-v`
        logging.getLogger("grooverack.backends.panel").setLevel(logging.WARNING)
    try:
        patch, recorder, settings, seconds = simulate(args)
    except (SourceError, ModelError) as exc:
        print(f"grooverack sim: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    paths = write_files(out_dir, patch, recorder, settings, settings["generation.seed"],
                        wav=args.wav)
    if not args.quiet:
        print(summary(patch, recorder, settings, out_dir, seconds, paths.values()))
    return 0
