"""`grooverack` command line: one sub-command per job; each job's body lives in its own module.

A job module defines `add_arguments(parser)` and `run(args) -> int`, and imports heavy
dependencies (torch, sounddevice, rtmidi) inside `run`, so `grooverack --help` stays fast and the
runtime never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from grooverack import __version__
from grooverack.errors import GrooverackError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("grooverack.commands.sim", "render the simulated CV layer in virtual time (the default job)"),
    "run": ("grooverack.commands.run", "run the module in real time on a board (sim, a Pi board, es9, midi)"),
    "ports": ("grooverack.commands.ports", "list MIDI ports and audio devices"),
    "doctor": ("grooverack.commands.doctor", "check buses, permissions and chips of a board"),
    "calibrate": ("grooverack.commands.calibrate", "guided calibration of inputs and outputs"),
    "config": ("grooverack.commands.config", "show every configuration key, or a config file's values"),
    "web": ("grooverack.commands.web", "run the module with its page and HTTP API in a browser"),
    "preset": ("grooverack.commands.preset", "presets offline: make a drum MIDI loop latent A or B"),
    "panel": ("grooverack.commands.panel", "draw a board's panel (jacks, knobs, buttons, LEDs) as SVG"),
    "train": ("grooverack.training.train", "train the GrooveTransformer VAE on the Groove MIDI Dataset"),
    "export": ("grooverack.training.export", "export a checkpoint to ONNX (fp32 + int8)"),
    "eval": ("grooverack.training.evaluate", "evaluate models and baselines on a GMD split"),
}


# Modules that come with an extra of the package: a job that needs one says which to install.
EXTRAS: dict[str, str] = {
    "rtmidi": "desktop", "sounddevice": "desktop", "jack": "dev",
    "torch": "train", "onnx": "train", "tqdm": "train",
    "starlette": "web", "uvicorn": "web",
    "spidev": "pi", "RPi": "pi", "lgpio": "pi",
}


def chosen_command(argv: list[str]) -> str | None:
    """The sub-command `argv` names (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every sub-command; with `only`, just that one's module is imported (the others keep their
    one-line help), so `grooverack --help` and each job start without importing the rest."""
    parser = argparse.ArgumentParser(prog="grooverack", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"grooverack {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a job whose extra is not installed says which
            if (exc.name or "").split(".")[0] not in EXTRAS:
                raise
            p.set_defaults(_unavailable=f"{name}: not available ({exc})")
            continue
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["sim"]  # the module's main job: render the built-in line
    command = chosen_command(argv)
    parser = build_parser(command if command in COMMANDS else "")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "_unavailable", None):
        print(args._unavailable, file=sys.stderr)
        return 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except GrooverackError as exc:  # the file, the key, the value and the fix; no traceback
        print(f"grooverack: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(f"grooverack {args.command}: needs the Python module {top!r}, which comes with the "
              f"'{EXTRAS[top]}' extra: pip install 'grooverack[{EXTRAS[top]}]' (in a checkout: "
              f"pip install -e '.[{EXTRAS[top]}]')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
