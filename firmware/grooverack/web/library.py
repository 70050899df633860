"""The page's preset library and the state directory as one file: names, export/import, backup
and restore, and a drum loop (MIDI) made into a latent.

Everything a person sends is checked whole before anything is written (`Refused` names the field
and what is allowed); files are written atomically (`grooverack.storage`) and only ever inside
the state directory: an upload's own name is never used as a path.
"""

from __future__ import annotations

import io
import json
import math
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from grooverack import storage
from grooverack.config import CONTROLS, SCHEMA
from grooverack.errors import ConfigError, GrooverackError, SourceError, StateError
from grooverack.state import (
    PERFORMANCE_TAG,
    PRESET_COUNT,
    PRESET_TAG,
    VERSION,
    PerformanceState,
    Preset,
    StateStore,
    preset_from_engine,
    preset_to_engine,
)
from grooverack.voices import NOTE_TO_VOICE, STEPS, STEPS_PER_BAR

NAMES_TAG = "grooverack-preset-names"
NAME_MAX = 40
EXPORT_FORMAT = "grooverack-preset-export"
BACKUP_MAX_BYTES = 8 * 1024 * 1024       # a state directory is a few hundred kB
BACKUP_MAX_FILES = 512
MIDI_MAX_BYTES = 1024 * 1024
MIN_LOOP_HITS = 4
_MEMBER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class Refused(GrooverackError):
    """A request the module will not take: `field` names what is wrong (the API's 4xx)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------------------------
# Names

def _validate_names(payload: dict[str, Any]) -> None:
    names = payload.get("names")
    if not isinstance(names, dict):
        raise StateError("names: expected a table of slot -> name")
    for slot, name in names.items():
        check_slot("slot", int(slot))
        check_name(name)


def check_slot(field: str, slot: Any) -> int:
    if isinstance(slot, bool) or not isinstance(slot, int) or not 1 <= slot <= PRESET_COUNT:
        raise Refused(field, f"{field} = {slot!r}: allowed an integer from 1 to {PRESET_COUNT}")
    return slot


def check_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > NAME_MAX or not name.isprintable():
        raise Refused("name", f"name = {name!r}: allowed printable text of at most "
                              f"{NAME_MAX} characters")
    return name.strip()


class PresetNames:
    """The names a person gave preset slots (`<state dir>/presets/names.json`)."""

    def __init__(self, store: StateStore) -> None:
        self.path = store.dir / "presets" / "names.json"
        payload = storage.load_record(self.path, NAMES_TAG, VERSION, default=lambda: {"names": {}},
                                      validate=_validate_names)
        self.names: dict[int, str] = {int(k): str(v) for k, v in payload["names"].items()}

    def set(self, slot: int, name: str) -> None:
        names = dict(self.names)
        if name:
            names[slot] = name
        else:
            names.pop(slot, None)
        self._write(names)

    def drop(self, slot: int) -> None:
        if slot in self.names:
            self._write({k: v for k, v in self.names.items() if k != slot})

    def _write(self, names: dict[int, str]) -> None:
        storage.save_record(self.path, NAMES_TAG, VERSION,
                            {"names": {str(k): v for k, v in sorted(names.items())}},
                            _validate_names)
        self.names = names


# --------------------------------------------------------------------------------------------
# Export and import of one preset

def export_preset(slot: int, data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A preset as the file a person downloads (the engine's preset dict -> JSON)."""
    preset = preset_from_engine(data)
    return {"format": EXPORT_FORMAT, "version": VERSION, "name": name, "slot": slot,
            **preset.to_payload()}


def import_preset(data: Any, latent_size: int) -> tuple[Preset, str]:
    """A downloaded preset checked whole: (Preset, name) or Refused naming the field."""
    if not isinstance(data, dict):
        raise Refused("file", "the file is not a JSON object; allowed: a preset exported by "
                              "grooverack")
    if data.get("format") != EXPORT_FORMAT:
        raise Refused("format", f"format = {data.get('format')!r}; allowed: {EXPORT_FORMAT!r}")
    if data.get("version") != VERSION:
        raise Refused("version", f"version = {data.get('version')!r}; allowed: {VERSION}")
    name = check_name(data.get("name", ""))
    payload = {k: data[k] for k in ("latent_a", "latent_b", "panel") if k in data}
    extra = set(data) - {"format", "version", "name", "slot", *payload}
    if extra:
        field = sorted(extra)[0]
        raise Refused(field, f"unknown field {field!r}; allowed: format, version, name, slot, "
                             "latent_a, latent_b, panel")
    for field in ("latent_a", "latent_b"):
        value = data.get(field)
        if not isinstance(value, list) or len(value) != latent_size:
            found = len(value) if isinstance(value, list) else type(value).__name__
            raise Refused(field, f"{field}: {found} values; allowed: a list of {latent_size} "
                                 "numbers (this model's latent size)")
    panel = data.get("panel", {})
    if not isinstance(panel, dict):
        raise Refused("panel", f"panel: a {type(panel).__name__}; allowed: a table of control "
                               "-> value")
    for key, value in panel.items():
        if key not in CONTROLS and key not in SCHEMA:
            raise Refused(f"panel.{key}", f"panel.{key}: not a control; allowed: "
                                          + ", ".join(CONTROLS))
        try:
            SCHEMA[key].validate(value, "the preset's panel")
        except ConfigError as exc:
            raise Refused(f"panel.{key}", str(exc)) from None
    try:
        preset = Preset.from_payload(payload)
    except StateError as exc:
        text = str(exc)
        field = re.match(r"[A-Za-z_.]+", text)
        raise Refused(field.group(0) if field else "file", text) from None
    return preset, name


def engine_preset(slot: int, preset: Preset) -> dict[str, Any]:
    return preset_to_engine(slot, preset)


# --------------------------------------------------------------------------------------------
# Backup and restore of the whole state directory

def _kept(rel: PurePosixPath) -> bool:
    """A state file a backup carries (and a restore takes): .json (or its .bak) at most one
    folder deep; not the pairing token, temporaries or uploads."""
    name = rel.as_posix()
    return (len(rel.parts) <= 2 and all(_MEMBER.fullmatch(p) for p in rel.parts)
            and rel.parts[0] != "uploads"
            and (name.endswith(".json") or name.endswith(".json.bak")))


def backup(directory: Path) -> bytes:
    """Every state file of the directory (presets, names, performance, calibration, fault
    reports) in one zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            rel = PurePosixPath(path.relative_to(directory).as_posix())
            if path.is_file() and not path.is_symlink() and _kept(rel):
                zf.writestr(rel.as_posix(), path.read_bytes())
    return buffer.getvalue()


def _validate_preset(payload: dict[str, Any]) -> None:
    Preset.from_payload(payload)


def _validate_performance(payload: dict[str, Any]) -> None:
    PerformanceState.from_payload(payload)


def _member_path(directory: Path, name: str) -> Path:
    pure = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or not _kept(pure):
        raise Refused("file", f"backup member {name!r}: allowed a .json file at most one folder "
                              "deep, named with letters, digits, '.', '_' and '-'")
    target = (directory / pure).resolve()
    if not target.is_relative_to(directory.resolve()):
        raise Refused("file", f"backup member {name!r} leaves the state directory")
    return target


def check_backup(directory: Path, data: bytes) -> dict[Path, bytes]:
    """A backup zip checked whole: target path -> bytes, every one inside `directory`, every
    preset and performance record valid. Refused names the member and the problem."""
    if len(data) > BACKUP_MAX_BYTES:
        raise Refused("file", f"backup of {len(data)} bytes; allowed at most {BACKUP_MAX_BYTES}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Refused("file", "not a zip file; allowed: a backup made by this page") from None
    members = [m for m in zf.infolist() if not m.is_dir()]
    if not members or len(members) > BACKUP_MAX_FILES:
        raise Refused("file", f"{len(members)} files in the backup; allowed 1 to "
                              f"{BACKUP_MAX_FILES}")
    if sum(m.file_size for m in members) > BACKUP_MAX_BYTES:
        raise Refused("file", f"the backup unpacks to more than {BACKUP_MAX_BYTES} bytes")
    out: dict[Path, bytes] = {}
    for member in members:
        target = _member_path(directory, member.filename)
        body = zf.read(member)
        rel = PurePosixPath(member.filename)
        base = rel.name.removesuffix(".bak")
        validate: Callable[[dict[str, Any]], None] | None = None
        if rel.parts[0] == "presets" and base[:2].isdigit():
            tag, validate = PRESET_TAG, _validate_preset
        elif rel.as_posix().removesuffix(".bak") == "performance.json":
            tag, validate = PERFORMANCE_TAG, _validate_performance
        elif base == "names.json":
            tag, validate = NAMES_TAG, _validate_names
        else:
            tag = ""
        if tag:
            try:
                storage.parse_record(Path(member.filename), body, tag, VERSION, validate)
            except GrooverackError as exc:
                raise Refused("file", str(exc)) from None
        else:
            try:
                json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise Refused("file", f"{member.filename}: not JSON ({exc})") from None
        out[target] = body
    if not any(p.parent.name == "presets" or p.name == "performance.json" for p in out):
        raise Refused("file", "no presets/NN.json or performance.json in the zip; allowed: a "
                              "backup made by this page")
    return out


def restore(files: Mapping[Path, bytes]) -> None:
    for path, body in files.items():
        storage.atomic_write_bytes(path, body)


def engine_presets(store: StateStore) -> dict[int, dict[str, Any]]:
    """The preset files as the engine keeps them (after a restore)."""
    out = {}
    for slot in store.presets():
        preset = store.load_preset(slot)
        if preset is not None and preset.latent_a:
            out[slot] = preset_to_engine(slot, preset)
    return out


# --------------------------------------------------------------------------------------------
# Your own loop as latent A or B

@dataclass(frozen=True)
class Loop:
    groove: np.ndarray     # float32 [32, 3]: hit, velocity, offset
    hits: int
    bars: int
    name: str


def midi_loop(data: bytes, directory: Path, name: str = "upload.mid") -> Loop:
    """A drum loop of 1 or 2 bars from MIDI bytes, as the groove the encoder reads, or Refused
    with the reason. The bytes are read from a temporary file inside `directory`."""
    if len(data) > MIDI_MAX_BYTES:
        raise Refused("file", f"{len(data)} bytes; allowed a MIDI file of at most "
                              f"{MIDI_MAX_BYTES} bytes")
    uploads = directory / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    from grooverack.sim.sources import midi_source

    with tempfile.NamedTemporaryFile(dir=uploads, suffix=".mid") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            source = midi_source(tmp.name)
        except SourceError as exc:
            raise Refused("file", str(exc).replace(tmp.name, name)
                          .replace(Path(tmp.name).name, name)) from None
    return loop_from_notes(source, name)


def midi_loop_file(path: Path) -> Loop:
    from grooverack.sim.sources import midi_source

    try:
        source = midi_source(path)
    except SourceError as exc:
        raise Refused("file", str(exc)) from None
    return loop_from_notes(source, path.name)


def loop_from_notes(source: Any, name: str) -> Loop:
    if not source.drum:
        raise Refused("file", f"{name}: not a drum loop: no track on MIDI channel 10 and no "
                              "track of GM drum notes played together")
    notes = [n for n in source.notes if n.note in NOTE_TO_VOICE]
    if len(notes) < MIN_LOOP_HITS:
        raise Refused("file", f"{name}: {len(notes)} GM drum hits; a loop needs at least "
                              f"{MIN_LOOP_HITS}")
    bars = source.bars
    if bars > 2:
        raise Refused("file", f"{name}: {bars} bars of 4/4; allowed a loop of 1 or 2 bars")
    groove = np.zeros((STEPS, 3), dtype=np.float32)
    for note in notes:
        step = int(round(note.step))
        offset = float(note.step - step)
        steps = [step % STEPS] if bars == 2 else [step % STEPS_PER_BAR,
                                                   step % STEPS_PER_BAR + STEPS_PER_BAR]
        for s in steps:
            if note.velocity >= groove[s, 1]:  # the loudest hit of a step gives its timing
                groove[s] = (1.0, note.velocity, min(max(offset, -0.5), 0.5))
    if not math.isfinite(float(groove.sum())):
        raise Refused("file", f"{name}: timing could not be read")
    return Loop(groove, len(notes), bars, name)


def encode_loop(loop: Loop, runner: Any) -> list[float]:
    """The shipped encoder's mean for the loop's groove: the latent that plays like it."""
    mu, _ = runner.encode(loop.groove)
    return [float(x) for x in np.asarray(mu, dtype=np.float32)]
