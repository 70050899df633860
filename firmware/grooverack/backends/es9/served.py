"""`grooverack run --board es9`: the ES-9 back end (and its MIDI mirror) in `runtime.serve`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from grooverack.backends.es9.backend import ES9Backend
from grooverack.backends.es9.mirror import MidiMirror
from grooverack.boards.es9 import parse_board
from grooverack.calibration import Calibration, default_path
from grooverack.config import Settings
from grooverack.engine.seam import EngineSeam
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.serve import Lifecycle, serve
from grooverack.state import state_dir

log = logging.getLogger(__name__)


class ServedES9:
    """The ES-9 back end (and its MIDI mirror) as `runtime.serve.Backend`: the stream and the
    engine thread play, the main thread waits (`Lifecycle.wait`) and looks after them."""

    def __init__(self, engine: EngineSeam, settings: Settings, board: Any, args: Any,
                 hook: LoopHook | None = None) -> None:
        es9 = self.es9 = parse_board(board, settings)
        # a calibration file written by `grooverack calibrate --board es9` overrides the board's
        # [es9.calibration]
        measured = Calibration.load(default_path(state_dir(settings), board.name), board)
        self.board_name = board.name
        self.args = args
        self.mirror: MidiMirror | None = None
        self.backend: ES9Backend | None = None
        self.done: ES9Backend | None = None  # the back end once stopped (its figures)
        try:
            # started with the stream: on JACK its port is one of the ES-9 client's
            self.mirror = MidiMirror(board, settings) if es9.midi is not None else None
            self.backend = ES9Backend(engine, settings, es9, calibration=measured,
                                      mirror=self.mirror)
            self.backend.hook = hook
        except BaseException:
            self.outputs_to_zero()
            raise

    def start(self, beat: Callable[[], None]) -> str:
        backend = self.backend
        assert backend is not None
        if backend.hook is not None:  # (the state is restored by now)
            backend.hook.attach(backend.engine, backend.faults, wake=backend.stream.wake.set)
        backend.start(heartbeat=beat)
        if getattr(self.args, "rt", False):
            backend.realtime(self.mirror)
        backend.wait_latency()
        print(f"grooverack: {backend.describe()}; Ctrl-C to stop", file=sys.stderr)
        return f"board {self.board_name} up ({backend.describe()})"

    def run(self, life: Lifecycle) -> None:
        life.wait(getattr(self.args, "duration", None), every=self._every)

    def _every(self) -> None:  # the main thread, about once a second
        if self.backend is None or not self.backend.running:
            raise RuntimeError("the ES-9 engine thread stopped")
        if self.mirror is not None:
            try:
                self.mirror.check()
            except Exception as exc:  # listing can fail while a device unplugs
                log.debug("MIDI port check: %s", exc)

    def outputs_to_zero(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.stop()  # every channel's 0 V sample rendered, then the stream stopped
            self.done = backend
        mirror, self.mirror = self.mirror, None
        if mirror is not None:
            mirror.stop()  # note-offs, all notes off, MIDI Stop

    def close(self) -> None:
        backend = self.done
        if backend is None:
            return
        s = backend.stream
        lost = f", stream lost {s.losses}x, reopened {s.reopens}x" if s.losses else ""
        presses = f", {len(backend.presses)} button presses" if self.es9.buttons else ""
        print(f"grooverack: {len(backend.onsets)} onsets in{presses}, {len(backend.scheduled)} "
              f"output changes, {backend.late_events} late, {s.xruns} xruns{lost}",
              file=sys.stderr)


def run_backend(board: Any, settings: Settings, args: Any = None,
                hook: LoopHook | None = None) -> int:
    """`grooverack run --board es9` (any board of kind "es9"; a [midi] table adds MIDI out) in
    `runtime.serve.serve`: state restored before it plays, READY + the watchdog (the engine
    thread beats), and on a stop signal, an error or the end of `--duration`: every output
    channel at its 0 V sample (rendered before the stream stops), the MIDI mirror's notes off
    and MIDI Stop, then the state saved; exit status 0. `hook` (`grooverack web`'s link) is
    called on the engine thread between its passes."""
    return serve(settings, lambda engine: ServedES9(engine, settings, board, args, hook))
