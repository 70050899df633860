"""`grooverack config`: every key with its default and allowed values, or a file's values."""

from __future__ import annotations

import argparse

from grooverack import config
from grooverack.commands.common import add_common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--example", action="store_true",
                        help="print a complete commented grooverack.toml")


def run(args: argparse.Namespace) -> int:
    settings = config.load_settings(args.config, args.overrides)
    if args.example:
        print(settings.to_toml(), end="")
    elif args.config or args.overrides:
        for name in settings:
            print(f"{name} = {settings[name]!r}")
    else:
        print(config.describe())
    return 0
