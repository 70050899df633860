"""Options and settings every playing sub-command shares.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from grooverack.errors import ConfigError, PathError


def _existing_parent(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _check_parent(path: Path, option: str) -> None:
    parent = _existing_parent(path)
    if not parent.is_dir():
        raise PathError(f"{option} {path}: {parent} is a file, not a folder; allowed: a path "
                        "inside a writable folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"{option} {path}: folder {parent} is not writable; allowed: a path "
                        "inside a writable folder")


def _probe(folder: Path, path: Path, option: str) -> None:
    """Make `folder` and write a scratch file in it (permissions alone lie to root)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PathError(f"{option} {path}: cannot write in {folder} "
                        f"({exc.strerror or type(exc).__name__}); allowed: a path inside a "
                        "writable folder") from None


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """`path` as a folder the render files can be written into (made later), or a PathError."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise PathError(f"{option} {path}: exists and is not a folder; allowed: a folder "
                            "(made if missing)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise PathError(f"{option} {path}: folder is not writable; allowed: a writable folder")
    else:
        _check_parent(path, option)
    _probe(path, path, option)
    return path


def check_output_file(path: str | Path, option: str) -> Path:
    """`path` as a file that can be (over)written, or a PathError."""
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{option} {path}: is a folder; allowed: a file path")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PathError(f"{option} {path}: file is not writable; allowed: a writable file")
    else:
        _check_parent(path, option)
    _probe(path.parent, path, option)
    return path


def check_positive(value: float | None, option: str, maximum: float, unit: str) -> None:
    """A finite `value` above 0 and at most `maximum`, or a ConfigError saying so."""
    if value is not None and not (math.isfinite(value) and 0 < value <= maximum):
        raise ConfigError(f"{option}: {value:g} is not allowed; allowed: a number of {unit} "
                          f"above 0 and at most {maximum:,g}")


def add_patch_arguments(parser: argparse.ArgumentParser) -> None:
    """The patch options shared by `sim` and `run --board sim`."""
    parser.add_argument("--input", metavar="SOURCE", default="line",
                        help="line (built-in Metropolix-like line), euclid:HITS:STEPS[:ROTATE], "
                             "a MIDI file, or an audio file (WAV, FLAC, OGG: the onsets heard "
                             "in it, input.audio_channel) (default: line)")
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
