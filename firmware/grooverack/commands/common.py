"""Options and settings every playing sub-command shares.
"""

from __future__ import annotations

import argparse


def add_patch_arguments(parser: argparse.ArgumentParser) -> None:
    """The patch options shared by `sim` and `run --board sim`."""
    parser.add_argument("--input", metavar="SOURCE", default="line",
                        help="line (built-in Metropolix-like line), euclid:HITS:STEPS[:ROTATE], "
                             "or a MIDI file (default: line)")
    parser.add_argument("--bpm", type=float, help="tempo (default: the file's, else config tempo)")
    parser.add_argument("--seed", type=int, help="generation seed (config generation.seed)")
    parser.add_argument("--controls", metavar="FILE",
                        help="CSV of panel changes over time: time_or_bar,key,value")
    parser.add_argument("--clock", action="store_true",
                        help="patch a clock (clock.ppqn) and a reset instead of the internal clock")


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every playing job takes: a config file and key=value overrides."""
    parser.add_argument("--config", metavar="FILE", help="grooverack.toml to read")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        dest="overrides", help="override a config key (repeatable)")
