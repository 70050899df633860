"""Every error grooverack raises for a person to read, under one base.

`cli.main` catches `GrooverackError` once: the message is printed (it names the file, the key,
the value and what is allowed) and the command exits 2, without a traceback. Each class also
keeps the built-in base it had (ValueError, RuntimeError, OSError), so callers that catch those
still work.
"""

from __future__ import annotations


class GrooverackError(Exception):
    """Something a person can fix; the message says what and where."""


class ConfigError(GrooverackError, ValueError):
    """A configuration key or value that cannot be used; the message is for a person."""


class BoardError(ConfigError):
    """A board file that cannot be used; the message names the file, the key and the value."""


class ModelError(GrooverackError, RuntimeError):
    """A model file is missing, damaged or not what the firmware expects; the message names it
    and says how to fix it."""

    FIX = ("fix: restore the shipped model: in an installed package, pip install "
           "--force-reinstall grooverack (it ships in grooverack/data/models); in a checkout, git "
           "checkout models/; on the Pi, run deploy/install.sh again. Or point config key "
           "model.path (or $GROOVERACK_MODELS) at a good manifest; `grooverack export` writes one "
           "from a trained checkpoint")

    def __str__(self) -> str:
        return f"{super().__str__()}\n  {self.FIX}"


class RecordError(GrooverackError, ValueError):
    """A stored record that cannot be used; the message names the file."""


class CalibrationError(GrooverackError, ValueError):
    """A calibration value or file that cannot be used; the message names channel/file and why."""


class StateError(GrooverackError, ValueError):
    """A preset or state value that cannot be used; the message names the key and value."""


class SourceError(GrooverackError, ValueError):
    """A source spec or file that cannot be turned into a patch; the message is for a person."""


class PathError(GrooverackError, OSError):
    """An output path that cannot be written (`--out`, `--timing`); found before any work."""


class DataError(GrooverackError, ValueError):
    """A dataset file or cache that cannot be used; the message names the file."""


class BusDown(GrooverackError):
    """A chip did not answer (after retries) or is backing off; the operation was skipped.

    The real-time loop catches it and keeps playing; it reaches a person only through `doctor`
    and the bus-fault report."""


class ProtocolError(GrooverackError, RuntimeError):
    """The driver sent something the real part would not accept (a driver bug, not a bus fault).

    The message names the chip, the bytes and what the datasheet allows.
    """
