"""What the module remembers across power cuts: presets and the last performance state.

- A preset (by number, 1..PRESET_COUNT) holds latents A and B and the panel state (the config
  controls). `presets/NN.json`.
- The performance state is what was playing when the power went: panel, latents A/B, the captured
  groove, the preset last recalled. `performance.json`, saved on SIGTERM and now and then.

Both are versioned records (`grooverack.storage`): written atomically, the previous good copy kept
as `NAME.bak`, a corrupt file reported by name and the good copy or the defaults used. Every value
is checked before it is written, so a good file is never replaced by an invalid one.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grooverack import storage
from grooverack.config import CONTROLS, SCHEMA
from grooverack.engine.seam import EngineSeam
from grooverack.errors import ConfigError, RecordError, StateError
from grooverack.voices import STEPS, VOICE_GROUPS, VOICE_NAMES

log = logging.getLogger(__name__)

PRESET_TAG = "grooverack-preset"
PERFORMANCE_TAG = "grooverack-performance"
VERSION = 1
PRESET_COUNT = 64
MAX_LATENT = 4096
ENV_STATE_DIR = "GROOVERACK_STATE_DIR"


def state_dir(settings: Mapping[str, Any] | None = None) -> Path:
    """Config `state.dir`, else `$GROOVERACK_STATE_DIR`, else `$XDG_STATE_HOME/grooverack`
    (`~/.local/state/grooverack`). The Pi install sets `/var/lib/grooverack` in its config."""
    configured = str(settings["state.dir"]) if settings is not None else ""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get(ENV_STATE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "grooverack"


def _latent(where: str, value: Any) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise StateError(f"{where}: expected a list of numbers, found {type(value).__name__}")
    if len(value) > MAX_LATENT:
        raise StateError(f"{where}: {len(value)} values, at most {MAX_LATENT}")
    out = []
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise StateError(f"{where}[{i}] = {x!r}: not a finite number")
        out.append(float(x))
    return out


def _panel(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise StateError(f"{where}: expected a table of controls, found {type(value).__name__}")
    out = {}
    for name, v in value.items():
        if name not in SCHEMA:
            raise StateError(f"{where}.{name}: not a config key")
        try:
            out[name] = SCHEMA[name].validate(v, where)
        except ConfigError as exc:
            raise StateError(str(exc)) from None
    return out


def _groove(where: str, value: Any) -> list[list[float]] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or len(value) != STEPS:
        raise StateError(f"{where}: expected {STEPS} rows of [hit, velocity, offset]")
    rows = []
    for i, row in enumerate(value):
        if not isinstance(row, Sequence) or len(row) != 3:
            raise StateError(f"{where}[{i}] = {row!r}: expected [hit, velocity, offset]")
        hit, vel, off = _latent(f"{where}[{i}]", row)
        if not (0.0 <= hit <= 1.0 and 0.0 <= vel <= 1.0 and -0.5 <= off <= 0.5):
            raise StateError(f"{where}[{i}] = {row!r}: hit and velocity 0..1, offset -0.5..0.5")
        rows.append([hit, vel, off])
    return rows


@dataclass
class Preset:
    """Latents A/B and the panel state (config control name -> value)."""

    latent_a: list[float] = field(default_factory=list)
    latent_b: list[float] = field(default_factory=list)
    panel: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {"latent_a": list(map(float, self.latent_a)),
                "latent_b": list(map(float, self.latent_b)), "panel": dict(self.panel)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Preset:
        extra = set(payload) - {"latent_a", "latent_b", "panel"}
        if extra:
            raise StateError(f"unknown key {sorted(extra)[0]!r}; allowed: latent_a, latent_b, panel")
        a = _latent("latent_a", payload.get("latent_a", []))
        b = _latent("latent_b", payload.get("latent_b", []))
        if a and b and len(a) != len(b):
            raise StateError(f"latent_a has {len(a)} values, latent_b {len(b)}: they must match")
        return cls(a, b, _panel("panel", payload.get("panel", {})))


@dataclass
class PerformanceState(Preset):
    """The preset fields plus the captured groove and the preset last recalled (0 = none)."""

    groove: list[list[float]] | None = None
    preset: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {**super().to_payload(), "groove": self.groove, "preset": self.preset}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PerformanceState:
        rest = {k: v for k, v in payload.items() if k not in ("groove", "preset")}
        base = Preset.from_payload(rest)
        preset = payload.get("preset", 0)
        if isinstance(preset, bool) or not isinstance(preset, int) or not 0 <= preset <= PRESET_COUNT:
            raise StateError(f"preset = {preset!r}: expected 0..{PRESET_COUNT}")
        return cls(base.latent_a, base.latent_b, base.panel,
                   _groove("groove", payload.get("groove")), preset)


def panel_from_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The controls a preset stores, read from settings (or any mapping of config keys)."""
    return {name: settings[name] for name in CONTROLS if name in settings}


def _validate_preset(payload: dict[str, Any]) -> None:
    Preset.from_payload(payload)


def _validate_performance(payload: dict[str, Any]) -> None:
    PerformanceState.from_payload(payload)


class StateStore:
    """Presets and the performance state in one writable directory."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def preset_path(self, number: int) -> Path:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= PRESET_COUNT:
            raise StateError(f"preset number {number!r}: expected 1..{PRESET_COUNT}")
        return self.dir / "presets" / f"{number:02d}.json"

    @property
    def performance_path(self) -> Path:
        return self.dir / "performance.json"

    def save_preset(self, number: int, preset: Preset) -> Path:
        path = self.preset_path(number)
        storage.save_record(path, PRESET_TAG, VERSION, Preset.to_payload(preset), _validate_preset)
        return path

    def load_preset(self, number: int) -> Preset | None:
        """The preset, its previous good copy when the file is corrupt, or None when neither."""
        path = self.preset_path(number)
        payload = storage.load_record(path, PRESET_TAG, VERSION, default=dict,
                                      validate=_validate_preset)
        return Preset.from_payload(payload) if payload else None

    def presets(self) -> list[int]:
        """Numbers of the presets saved (whose file or good copy exists)."""
        found = set()
        for p in (self.dir / "presets").glob("[0-9][0-9].json*"):
            stem = p.name.split(".")[0]
            if stem.isdigit() and 1 <= int(stem) <= PRESET_COUNT:
                found.add(int(stem))
        return sorted(found)

    def save_performance(self, state: PerformanceState) -> Path:
        storage.save_record(self.performance_path, PERFORMANCE_TAG, VERSION, state.to_payload(),
                            _validate_performance)
        return self.performance_path

    def load_performance(self) -> PerformanceState:
        """The last performance state; a missing or corrupt file (logged by name, previous good
        copy tried first) gives the defaults."""
        payload = storage.load_record(self.performance_path, PERFORMANCE_TAG, VERSION,
                                      default=dict, validate=_validate_performance)
        return PerformanceState.from_payload(payload)


# --------------------------------------------------------------------------------------------
# The engine's side (`Engine.save_preset(n) -> dict`, `Engine.recall_preset(n, data)`)

ENGINE_PRESET_FORMAT = 1


def preset_from_engine(data: Mapping[str, Any]) -> Preset:
    """A Preset from the dict `Engine.save_preset(n)` returns."""
    return Preset.from_payload({"latent_a": data.get("a", []), "latent_b": data.get("b", []),
                                "panel": data.get("panel", {})})


def preset_to_engine(number: int, preset: Preset) -> dict[str, Any]:
    """The dict `Engine.recall_preset(n, data)` takes."""
    return {"format": ENGINE_PRESET_FORMAT, "slot": int(number),
            "latent_size": len(preset.latent_a), "a": list(preset.latent_a),
            "b": list(preset.latent_b), "panel": dict(preset.panel)}


def performance_from_engine(engine: EngineSeam) -> PerformanceState:
    """What the engine is playing now: latents, panel, captured groove, preset slot."""
    data = engine.save_preset(engine.preset_slot)
    preset = preset_from_engine(data)
    groove = [[float(min(max(x, lo), hi)) for x, lo, hi in zip(row, (0, 0, -0.5), (1, 1, 0.5),
                                                                 strict=True)]
              for row in engine.groove.tolist()]
    slot = int(engine.preset_slot)
    return PerformanceState(preset.latent_a, preset.latent_b, preset.panel, groove,
                            slot if 0 <= slot <= PRESET_COUNT else 0)


def restore_performance(engine: EngineSeam, state: PerformanceState,
                        pinned: Collection[str] = (),
                        overridden: dict[str, Any] | None = None) -> bool:
    """Give the engine the saved latents and panel (the groove is re-captured from what plays).
    False when there is nothing to restore or the latents do not fit the model.

    Keys in `pinned` (given with `--set` on this command line) keep their value: what a person
    typed just now wins over what was saved; each saved value not used goes into `overridden`."""
    if not state.latent_a or not state.latent_b:
        return False
    if len(state.latent_a) != engine.generator.latent_size:
        return False
    # directly, not through recall_preset: that would also overwrite the preset slot's contents
    engine.generator.set_latent("a", state.latent_a)
    engine.generator.set_latent("b", state.latent_b)
    for key, value in state.panel.items():
        if key in pinned:
            if overridden is not None and value != engine.settings[key]:
                overridden[key] = value
            continue
        try:
            engine.set_control(key, value)
        except ValueError as exc:  # a key that cannot change while running: keep the config's
            log.info("performance state: %s not restored (%s)", key, exc)
    if state.preset and hasattr(engine, "preset_slot"):
        engine.preset_slot = state.preset
    return True


def describe_state(engine: EngineSeam) -> str:
    """Preset slot, style and mutes as the engine has them: the start-up line's words."""
    muted = [v for v in VOICE_NAMES if engine.settings[f"mute.{v}"]]
    groups = [g for g, voices in VOICE_GROUPS.items() if voices and all(v in muted for v in voices)]
    loose = [v for v in muted if not any(v in VOICE_GROUPS[g] for g in groups)]
    mutes = ", ".join([*groups, *loose]) or "none"
    return (f"preset slot {int(engine.preset_slot)}, style {engine.settings['genre']!r}, "
            f"muted: {mutes}")


# One state directory, one instance: two modules writing one performance.json would each
# silently undo the other. The lock is an flock on `<state dir>/lock` (released by the kernel
# when the process ends, however it ends); the file names the holder's pid.
LOCK_NAME = "lock"
_held: dict[str, int] = {}  # state dir -> the lock's fd, for every keeper of this process


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (OSError, UnicodeDecodeError):
        cmd = ""
    return f"process {pid}" + (f" ({cmd})" if cmd else "")


def claim_state_dir(directory: Path) -> None:
    """Check that `directory` can be written and hold its lock, before any work; StateError
    names the folder and the fix (or the other process that holds it)."""
    import fcntl
    import tempfile

    key = str(directory.resolve())
    if key in _held:
        return
    fix = (f"fix: make it writable, or give this module another one (config key state.dir, or "
           f"${ENV_STATE_DIR})")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(f"state directory {directory}: cannot write in it "
                         f"({exc.strerror or type(exc).__name__}); the performance state and "
                         f"presets would be lost at the end\n  {fix}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StateError(f"state directory {directory} is in use by "
                         f"{_holder(directory / LOCK_NAME)}: one module per state directory; "
                         f"stop that one, or give this one its own state directory (config key "
                         f"state.dir, or ${ENV_STATE_DIR})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = fd
    for folder in (directory, directory / "presets"):  # what a killed writer left, now ours
        storage.remove_stale_temps(folder)


class StateKeeper:
    """Keeps the engine's presets and performance state on disk for a running module.

    `restore()` at start: every preset file into the engine's slots, then the last performance
    state. `sync()` from the loop now and then (cheap: an identity check per slot) writes each
    preset the engine saved since. `save_all()` at shutdown: presets, then the performance state.
    A file that cannot be written is logged by name; the module keeps playing."""

    def __init__(self, settings: Mapping[str, Any], engine: EngineSeam) -> None:
        self.store = StateStore(state_dir(settings))
        self.engine = engine
        self._saved: dict[int, Any] = {}

    @property
    def fresh(self) -> bool:
        return bool(getattr(self.engine.settings, "fresh", False))

    def restore(self) -> bool:
        """The state directory claimed (writable, this process's alone), the presets into the
        engine's slots, then the last performance state (not with `--fresh`); one line says what
        was restored and which `--set` values won over saved ones."""
        claim_state_dir(self.store.dir)
        presets = self.engine.presets
        for number in self.store.presets():
            preset = self.store.load_preset(number)
            if preset is not None and preset.latent_a:
                data = preset_to_engine(number, preset)
                presets[number] = data
                self._saved[number] = data
        path = self.store.performance_path
        if self.fresh:
            log.info("state: --fresh: playing the defaults (%s); the saved state in %s is kept, "
                     "neither restored nor overwritten", describe_state(self.engine), path)
            return False
        overridden: dict[str, Any] = {}
        try:
            restored = restore_performance(self.engine, self.store.load_performance(),
                                           getattr(self.engine.settings, "pinned", ()),
                                           overridden)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not restored (%s)", path, exc)
            restored = False
        wins = "; ".join(f"--set {k}={self.engine.settings[k]!r} wins over the saved {v!r}"
                         for k, v in overridden.items())
        if restored:
            log.info("state: restored from %s: %s%s (--fresh plays the defaults)", path,
                     describe_state(self.engine), f"; {wins}" if wins else "")
        else:
            log.info("state: nothing to restore from %s: %s", path, describe_state(self.engine))
        return restored

    def sync(self) -> int:
        written = 0
        for number, data in list(self.engine.presets.items()):
            if self._saved.get(number) is data:
                continue
            self._saved[number] = data
            try:
                self.store.save_preset(int(number), preset_from_engine(data))
                written += 1
            except (OSError, ValueError) as exc:
                log.error("preset %s not saved: %s", number, exc)
        return written

    def start_background(self, period: float = 1.0) -> None:
        """`sync()` every `period` seconds in a thread of its own: an fsync on an SD card can
        take tens of milliseconds, which the real-time loop must never wait for."""
        import threading

        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(period):
                try:
                    self.sync()
                except Exception:  # never let a disk problem end the thread silently
                    log.exception("preset sync failed")

        self._thread = threading.Thread(target=loop, name="grooverack-state", daemon=True)
        self._thread.start()

    def save_all(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._thread.join(5.0)
        self.sync()
        if self.fresh:
            return
        state = performance_from_engine(self.engine)
        try:
            self.store.save_performance(state)
        except (OSError, RecordError) as exc:  # a full disk at the stop: keep it somewhere
            import tempfile

            spare = StateStore(Path(tempfile.gettempdir()) / f"grooverack-state-{os.getpid()}")
            try:
                spare.save_performance(state)
                kept = f"this performance was kept in {spare.performance_path}"
            except (OSError, RecordError):
                kept = "this performance could not be kept anywhere"
            log.error("state: %s; %s", exc, kept)
