"""Where the files the runtime ships with are: the model, the board files, calibration defaults.

They travel inside the package (`grooverack/data/`: in a checkout, links to the repository's
`models/`, `hw/boards/` and `calibration/defaults/`; in a wheel, copies), found through
`importlib.resources`, so `pip install .` works outside the checkout. A user's own files win:
`$GROOVERACK_MODELS` (a folder or a manifest) for the model, `$GROOVERACK_BOARDS` (a folder) for
board files, looked in before the shipped ones.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

ENV_MODELS = "GROOVERACK_MODELS"
ENV_BOARDS = "GROOVERACK_BOARDS"


def data_dir() -> Path:
    """The package's shipped data (a real folder: the package is never zipped)."""
    return Path(str(files("grooverack") / "data"))


def shipped_models_dir() -> Path:
    return data_dir() / "models"


def shipped_boards_dir() -> Path:
    return data_dir() / "boards"


def board_dirs() -> list[Path]:
    """Folders searched for `NAME.toml`, in order: `$GROOVERACK_BOARDS`, then the shipped ones."""
    dirs = []
    env = os.environ.get(ENV_BOARDS, "").strip()
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(shipped_boards_dir())
    return dirs
