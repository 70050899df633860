"""`grooverack config`: every key with its default and allowed values, or a file's values."""

from __future__ import annotations

import argparse
import io
import os
import sys

from grooverack import config
from grooverack.commands.common import add_common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--example", action="store_true",
                        help="print a complete commented grooverack.toml")


def run(args: argparse.Namespace) -> int:
    settings = config.load_settings(args.config, args.overrides)
    try:
        if args.example:
            print(settings.to_toml(), end="")
        elif args.config or args.overrides:
            for name in settings:
                print(f"{name} = {settings[name]!r}")
        else:
            print(config.describe())
        sys.stdout.flush()
    except BrokenPipeError:  # `grooverack config | head`: the reader has what it wanted
        _silence_stdout()
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
