"""The MIDI back end as `runtime.serve.Backend`: `grooverack run --board midi` (`run_backend`).

`MidiBackend` (`backend.py`) is the back end itself (its ports, threads and real-time path);
this is its face to the shared run skeleton (`runtime.serve.serve`): the lines it prints, the
health it shows the web page, the check that its engine loop still runs, and its stop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from grooverack.backends.midi.backend import MidiBackend
from grooverack.config import Settings
from grooverack.engine.seam import EngineSeam
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.serve import Lifecycle, serve


class ServedMidi:
    """The MIDI back end as `runtime.serve.Backend`: its loop runs in its own thread, the main
    thread waits (`Lifecycle.wait`) and checks that loop once a second."""

    def __init__(self, engine: EngineSeam, settings: Settings, board: Any, args: Any,
                 hook: LoopHook | None = None) -> None:
        self.backend = MidiBackend(engine, settings, board)
        self.backend.hook = hook
        self.backend.open_ports()
        self.board_name = getattr(board, "name", "midi")
        self.rt = bool(getattr(args, "rt", False))
        self.duration = getattr(args, "duration", None)

    def start(self, beat: Callable[[], None]) -> str:
        b = self.backend
        print(f"grooverack: MIDI in {b.in_port.port_name or b.options.input_port!r}, "
              f"out {b.out_port.port_name or b.options.output_port!r}, "
              f"profile {b.options.profile}; Ctrl-C to stop", file=sys.stderr)
        if b.hook is not None:  # (the state is restored by now)
            b.hook.attach(b.engine, self.faults)
        b.start(rt=self.rt, heartbeat=beat)
        return f"board {self.board_name} up (MIDI, profile {b.options.profile})"

    def run(self, life: Lifecycle) -> None:
        life.wait(self.duration, every=self._alive)

    def faults(self) -> dict[str, int]:
        """What the page shows of MIDI's health (read from the companion's thread)."""
        b = self.backend
        return {"midi_dropped": b.sender.dropped, "jack_returns": b.server_returns}

    def _alive(self) -> None:
        thread = self.backend._thread
        if thread is None or not thread.is_alive():
            raise RuntimeError("the MIDI engine loop stopped")

    def outputs_to_zero(self) -> None:
        self.backend.stop()  # note-offs, all notes off, MIDI Stop (clock out); ports closed

    def close(self) -> None:
        pass


def run_backend(board: Any, settings: Settings, args: Any = None,
                hook: LoopHook | None = None) -> int:
    """`grooverack run --board midi` (or any board of kind "midi") in `runtime.serve.serve`:
    state restored before it plays, READY + the watchdog (the engine loop beats), and on a stop
    signal, an error or the end of `--duration`: note-offs, all notes off and MIDI Stop (clock
    out) sent, then the state saved; exit 0. `hook` (`grooverack web`'s link) is called on the
    engine loop's thread between its passes."""
    return serve(settings, lambda engine: ServedMidi(engine, settings, board, args, hook))
