"""`grooverack config`: every key with its default and allowed values, or a file's values."""

from __future__ import annotations

import argparse
import io
import os
import sys

from grooverack import config, storage
from grooverack.commands.common import add_common, check_output_file
from grooverack.errors import PathError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--example", action="store_true",
                        help="print a complete commented grooverack.toml")
    parser.add_argument("--out", metavar="FILE",
                        help="write what would be printed to FILE instead (atomically)")


def run(args: argparse.Namespace) -> int:
    settings = config.load_settings(args.config, args.overrides)
    if args.out:
        check_output_file(args.out, "--out")
        storage.atomic_write_text(args.out, _text(args, settings))
        return 0
    try:
        print(_text(args, settings), end="")
        sys.stdout.flush()
    except BrokenPipeError:  # `grooverack config | head`: the reader has what it wanted
        _silence_stdout()
    except OSError as exc:  # `> /dev/full`, a full disk under the redirected file
        _silence_stdout()
        raise PathError(f"standard output: not written ({exc.strerror or exc}); write to a "
                        "place with room, or use --out FILE") from None
    return 0


def _text(args: argparse.Namespace, settings: config.Settings) -> str:
    if args.example:
        return settings.to_toml()
    if args.config or args.overrides:
        return "".join(f"{name} = {settings[name]!r}\n" for name in settings)
    return config.describe() + "\n"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
