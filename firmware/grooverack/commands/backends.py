"""The one registry of back ends, by board kind: what `run`, `web`, `calibrate` and `doctor` (and
any command that plays a board) call for a board. Modules are named, not imported: a command loads
only the back end of the board it was given, so a missing extra stops only that board.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grooverack.errors import BoardError


@dataclass(frozen=True)
class BackendEntry:
    """One kind of board: `run` ("module:function", `(board, settings, args, hook=None) -> int`,
    the real-time run in `runtime.serve.serve`; `hook`, a `runtime.hooks.LoopHook` such as
    `grooverack web`'s link to its page, is called between the loop's passes), `rig` (`(board, settings) -> Rig` for `calibrate`,
    or None: nothing to calibrate), `doctor` (`(board, settings, args) -> list[Check]`, or None)."""

    kind: str
    run: str
    rig: str | None = None
    doctor: str | None = None
    what: str = ""

    def load(self, role: str) -> Callable[..., Any]:
        """The function `role` ("run", "rig", "doctor") names, imported now."""
        target = getattr(self, role)
        if target is None:
            raise BoardError(f"board kind {self.kind!r} has no {role}; kinds that have one: "
                             f"{', '.join(kinds_with(role))}")
        module, _, function = target.partition(":")
        return getattr(importlib.import_module(module), function)


BACKENDS: dict[str, BackendEntry] = {
    "pi": BackendEntry("pi", "grooverack.backends.panel.loop:run_backend",
                       rig="grooverack.backends.panel.rig:open_calibration_rig",
                       doctor="grooverack.commands.doctor:panel_doctor",
                       what="a Raspberry Pi panel (real buses)"),
    "sim": BackendEntry("sim", "grooverack.sim.wallclock:run_board",
                        rig="grooverack.backends.panel.rig:open_calibration_rig",
                        doctor="grooverack.commands.doctor:panel_doctor",
                        what="the virtual patch on the wall clock (emulated chips)"),
    "es9": BackendEntry("es9", "grooverack.backends.es9:run_backend",
                        rig="grooverack.backends.es9.rig:open_calibration_rig",
                        doctor="grooverack.commands.doctor:es9_doctor",
                        what="an Expert Sleepers ES-9 (audio interface: JACK, ALSA, CoreAudio)"),
    "midi": BackendEntry("midi", "grooverack.backends.midi:run_backend",
                         doctor="grooverack.commands.doctor:midi_doctor",
                         what="MIDI in and out (ALSA, JACK, CoreMIDI)"),
}


def kinds_with(role: str) -> list[str]:
    return [kind for kind, entry in BACKENDS.items() if getattr(entry, role) is not None]


def backend_for(board: Any) -> BackendEntry:
    """The registry's entry for `board.kind`; a kind no back end runs is refused naming the
    board file and the kinds there are."""
    entry = BACKENDS.get(board.kind)
    if entry is None:
        raise BoardError(f"board {board.name!r} ({board.path}): kind {board.kind!r} has no back "
                         f"end; kinds: {', '.join(BACKENDS)}")
    return entry
