"""The one door between the running module and the web side: a bounded inbox and a snapshot.

The engine's loop thread calls `EngineLink.between(now)` between two `advance` calls
(`runtime.hooks.LoopHook`): it applies the commands waiting in the inbox (at most
`DRAIN_PER_PASS`, so a flood of requests never stretches a pass) and, every `PUBLISH_S`, swaps in
a `Snapshot`: references to what plays (the immutable `Pattern`, a copy of the 32x3 groove) and a
few scalars. It never waits: `put_nowait` on the web side (a full inbox is refused with 503), a
reference swap on the engine side. JSON is made on the web side from the snapshot
(`grooverack.web.snapshot`), never on the loop's thread.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from grooverack.config import CONTROLS
from grooverack.engine.pattern import Pattern
from grooverack.engine.seam import EngineSeam
from grooverack.runtime.hooks import FaultReader
from grooverack.state import PerformanceState, restore_performance
from grooverack.voices import VOICE_GROUPS, VOICE_NAMES

log = logging.getLogger(__name__)

INBOX_SIZE = 64          # commands waiting for the engine's thread; more are refused (503)
DRAIN_PER_PASS = 8       # commands applied per loop pass
PUBLISH_S = 0.025        # a snapshot at most this often (and after every command)


class ClockView(Protocol):
    """What the page shows of the clock (engine.clock.Clock)."""

    source: str
    driver: str
    running: bool

    @property
    def bpm(self) -> float: ...


class PlayingEngine(EngineSeam, Protocol):
    """The engine as the web link reads it: the back ends' seam plus what the page shows."""

    clock: Any  # ClockView

    @property
    def pattern(self) -> Pattern: ...
    @property
    def position(self) -> float: ...
    @property
    def filling(self) -> bool: ...
    @property
    def model_problem(self) -> str: ...


@dataclass(frozen=True)
class Snapshot:
    """What the module plays at one instant of the loop; every field is immutable or a copy."""

    serial: int                      # counts snapshots
    wall: float                      # time.monotonic() when taken
    position: float                  # musical position (16th steps since start)
    running: bool
    bpm: float
    clock_source: str                # the setting: auto/internal/external/midi
    clock_driver: str                # what drives the position now: internal/external
    pattern: Pattern
    groove: np.ndarray               # float32 [32, 3], read-only
    controls: Mapping[str, Any]
    genre: str
    record: str
    mutes: Mapping[str, bool]        # voice group -> all its voices muted
    generation: str                  # model / rules / fallback
    model_problem: str
    filling: bool
    preset_slot: int
    presets: Mapping[int, Mapping[str, Any]]   # slot -> the engine's preset dict (not mutated)
    styles: tuple[str, ...]
    latent_size: int


@dataclass(frozen=True)
class _Published:
    """What the loop thread swaps in between passes: Snapshot's own fields, nothing computed."""

    serial: int
    wall: float
    position: float
    running: bool
    bpm: float
    clock_source: str
    clock_driver: str
    pattern: Pattern
    groove: np.ndarray               # read-only, replaced (never changed) by the capture
    generation: str
    model_problem: str
    filling: bool
    preset_slot: int


@dataclass
class Command:
    """One thing the web side asks the engine's thread to do; `done` carries the result."""

    kind: str
    args: tuple[Any, ...] = ()
    made: float = field(default_factory=time.monotonic)
    done: Future[Any] = field(default_factory=Future)


class LinkSeam(Protocol):
    """What the web app needs of a link: an `EngineLink` in the module's process, or a
    `relay.RemoteLink` in the page's."""

    @property
    def latest(self) -> Snapshot | None: ...

    @property
    def ready(self) -> bool: ...
    def fault_counts(self) -> Mapping[str, int]: ...
    def submit(self, kind: str, *args: Any) -> Future[Any]: ...
    def forget(self, future: Future[Any]) -> None: ...


class Busy(Exception):
    """The inbox is full: the engine's thread has not caught up (the page says so, 503)."""


class EngineLink:
    """The web side's handle on a running engine (a `runtime.hooks.LoopHook`)."""

    def __init__(self, inbox_size: int = INBOX_SIZE) -> None:
        self.inbox: queue.Queue[Command] = queue.Queue(maxsize=inbox_size)
        self.engine: PlayingEngine | None = None
        self.faults: FaultReader | None = None
        self._published: _Published | None = None
        self._snapshot: Snapshot | None = None
        self._serial = 0
        self._published_at = -1.0
        # when each command was applied, on the engine's clock (time.monotonic): for the
        # control-latency benchmark, the last few only
        self.applied: list[tuple[str, float, float]] = []
        self._nudge = threading.Event()  # set by submit: the loop's idle wait ends
        self._wake: Callable[[], None] | None = None  # the loop's own wake-up, when it has one

    # --- the engine's side (loop thread) ---------------------------------------------------------
    def attach(self, engine: EngineSeam, faults: FaultReader | None = None,
               wake: Callable[[], None] | None = None) -> None:
        self.engine = engine  # type: ignore[assignment]  # an Engine: PlayingEngine's members
        self.faults = faults
        self._wake = wake
        self.publish()

    def between(self, now: float) -> None:
        """Apply waiting commands, publish a snapshot now and then (at once after a command).
        Never blocks. A command's answer is given only after the snapshot that shows it is
        published, so whoever reads the state after the answer sees the command's effect."""
        done: list[tuple[Command, Any, BaseException | None]] = []
        for _ in range(DRAIN_PER_PASS):
            try:
                command = self.inbox.get_nowait()
            except queue.Empty:
                break
            done.append(self._apply(command, now))
        if done or time.monotonic() - self._published_at >= PUBLISH_S:
            self.publish()
        for command, result, exc in done:
            if exc is not None:
                command.done.set_exception(exc)
            else:
                command.done.set_result(result)

    def sleep(self, seconds: float) -> bool:
        """The loop's idle wait: up to `seconds`, less when a command came in (True)."""
        woken = self._nudge.wait(seconds)
        self._nudge.clear()
        return woken

    def _apply(self, command: Command, now: float
               ) -> tuple[Command, Any, BaseException | None]:
        engine = self.engine
        assert engine is not None
        try:
            result = APPLY[command.kind](engine, now, *command.args)
        except Exception as exc:  # said to the web side, never raised into the loop
            return command, None, exc
        applied = time.monotonic()
        self.applied = [*self.applied[-255:], (command.kind, command.made, applied)]
        return command, result, None

    def publish(self) -> None:
        """Swap in what plays now: references and scalars only (about 10 us); the controls,
        mutes and presets are read into a `Snapshot` by whoever asks for `latest`."""
        engine = self.engine
        if engine is None:
            return
        clock = engine.clock
        self._serial += 1
        self._published = _Published(
            serial=self._serial, wall=time.monotonic(), position=float(engine.position),
            running=bool(clock.running), bpm=float(clock.bpm), clock_source=str(clock.source),
            clock_driver=str(clock.driver), pattern=engine.pattern, groove=engine.groove,
            generation=engine.generation, model_problem=engine.model_problem,
            filling=bool(engine.filling), preset_slot=int(engine.preset_slot))
        self._published_at = self._published.wall

    # --- the web side (any other thread) ---------------------------------------------------------
    @property
    def latest(self) -> Snapshot | None:
        """The newest snapshot, made on the caller's thread from what the loop published (each
        value read once: the settings' values and the preset dicts are replaced, never changed
        in place, by the loop)."""
        published, engine = self._published, self.engine
        if published is None or engine is None:
            return None
        cached = self._snapshot
        if cached is not None and cached.serial == published.serial:
            return cached
        settings, typed = engine.settings, engine.controls  # typed: one frozen value, read once
        snap = Snapshot(
            **{f.name: getattr(published, f.name) for f in dataclasses.fields(_Published)},
            controls={name: settings[name] for name in CONTROLS},
            genre=typed.genre, record=str(settings["record"]),
            mutes={g: all(typed.value(f"mute.{v}") for v in voices)
                   for g, voices in VOICE_GROUPS.items()},
            presets=dict(engine.presets), styles=tuple(engine.offered_styles),
            latent_size=int(engine.generator.latent_size))
        self._snapshot = snap
        return snap

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def fault_counts(self) -> Mapping[str, int]:
        return self.faults() if self.faults is not None else {}

    def forget(self, future: Future[Any]) -> None:
        """A request that stopped waiting: its command still runs (nothing to undo)."""

    def submit(self, kind: str, *args: Any) -> Future[Any]:
        """Queue a command for the engine's thread; Busy when the inbox is full."""
        if kind not in APPLY:
            raise ValueError(f"unknown command {kind!r}")
        command = Command(kind, args)
        try:
            self.inbox.put_nowait(command)
        except queue.Full:
            raise Busy(f"the module has {self.inbox.maxsize} requests waiting; try again") from None
        self._nudge.set()
        wake = self._wake
        if wake is not None:
            wake()
        return command.done


# --------------------------------------------------------------------------------------------
# What each command does on the engine's thread (values already checked by the web side);
# `now` is the loop's time on the engine's timeline

def _control(engine: PlayingEngine, now: float, name: str, value: Any) -> Any:
    return engine.set_control(name, value)


def _press(engine: PlayingEngine, now: float, button: str) -> Any:
    result = engine.press(button)
    return result if isinstance(result, str | bool | int | float) or result is None else True


def _fill(engine: PlayingEngine, now: float, high: bool) -> bool:
    engine.fill(now, high)
    return high


def _save(engine: PlayingEngine, now: float, slot: int) -> dict[str, Any]:
    return engine.save_preset(slot)


def _recall(engine: PlayingEngine, now: float, slot: int) -> int:
    engine.recall_preset(slot)
    return slot


def _store(engine: PlayingEngine, now: float, slot: int, data: dict[str, Any]) -> int:
    """An imported preset into a slot, without playing it."""
    engine.presets[slot] = data
    return slot


def _delete(engine: PlayingEngine, now: float, slot: int) -> int:
    engine.presets.pop(slot, None)
    return slot


def _latent(engine: PlayingEngine, now: float, side: str, z: list[float], keep: bool) -> int:
    """A latent (an encoded loop) as A or B; kept in the current preset slot when `keep`."""
    engine.generator.set_latent(side, z)
    engine.set_control("morph", engine.controls.morph)  # asks for a new pattern
    if keep:
        engine.save_preset(engine.preset_slot)
    return int(engine.preset_slot)


def _replace_presets(engine: PlayingEngine, now: float, presets: dict[int, dict[str, Any]]) -> int:
    """After a restore of the state directory: the slots as the files now say."""
    engine.presets.clear()
    engine.presets.update(presets)
    return len(presets)


def _performance(engine: PlayingEngine, now: float, state: PerformanceState) -> bool:
    """After a restore: play what the restored performance state says (latents, panel, slot),
    so the module's own save at shutdown keeps it."""
    return restore_performance(engine, state)


APPLY: dict[str, Callable[..., Any]] = {
    "control": _control, "press": _press, "fill": _fill, "save": _save, "recall": _recall,
    "store": _store, "delete": _delete, "latent": _latent, "presets": _replace_presets,
    "performance": _performance,
}

__all__ = ["APPLY", "Busy", "Command", "EngineLink", "LinkSeam", "PlayingEngine", "Snapshot",
           "VOICE_NAMES"]
