"""Files that survive a power cut: atomic writes of versioned records.

A record is written to a temporary file in the same directory, flushed and fsync'ed, renamed over
the old file, and the directory is fsync'ed, so the file on disk is always either the old or the
new version, never a mix. A record carries a schema tag and version; a corrupt or foreign file is
reported by name and the previous good copy (`NAME.bak`) or the defaults are used.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grooverack.errors import RecordError

log = logging.getLogger(__name__)


def _remove_stale_temps(path: Path) -> None:
    """Temp files of writers that died (SIGKILL, power cut) before their rename; the pid in the
    name tells a dead writer from one still writing."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        except PermissionError:
            pass  # alive, another user's


def _keep_access(fd: int, path: Path) -> None:
    """The new file gets the old one's mode and owner (a new one: 0644, owned like its folder
    when root writes it), so `sudo grooverack calibrate` never leaves a file the service user
    cannot read (mkstemp alone makes 0600 files owned by the writer)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    os.fchmod(fd, (st.st_mode & 0o777) if st is not None else 0o644)
    if os.geteuid() == 0:
        owner = st if st is not None else os.stat(path.parent)
        try:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        except OSError:
            pass  # a file system without owners (FAT boot partition): nothing to keep


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _keep_access(f.fileno(), path)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_record(path: str | Path, tag: str, version: int, payload: dict[str, Any],
                validate: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Write `{"tag", "version", "payload"}` atomically; the previous good file becomes NAME.bak.

    `validate` runs before anything is written, so a good file is never replaced by an invalid one.
    """
    path = Path(path)
    if validate is not None:
        validate(payload)
    try:  # NaN/inf would write a file that strict JSON readers refuse
        data = json.dumps({"tag": tag, "version": version, "payload": payload}, indent=1,
                          sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{path}: {tag} not saved: {exc}") from None
    bak = path.with_name(path.name + ".bak")
    _remove_stale_temps(bak)
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    if current is not None and current != data:
        try:
            parse_record(path, current, tag, version, validate)
        except RecordError:
            pass  # never let a corrupt file overwrite a good backup
        else:
            atomic_write_bytes(bak, current)
    atomic_write_bytes(path, data)


def parse_record(path: Path, data: bytes, tag: str, version: int,
                 validate: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The payload of a record's bytes, or RecordError naming `path` and what is wrong."""
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not a valid {tag} file ({exc})") from None
    if not isinstance(record, dict) or record.get("tag") != tag:
        raise RecordError(f"{path}: not a {tag} file (tag {record.get('tag') if isinstance(record, dict) else None!r})")
    if type(record.get("version")) is not int or record.get("version") != version:
        raise RecordError(f"{path}: {tag} version {record.get('version')!r}, this program reads version {version}")
    payload = record.get("payload")
    if not isinstance(payload, dict):
        raise RecordError(f"{path}: {tag} file has no payload")
    if validate is not None:
        try:
            validate(payload)
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"{path}: invalid {tag}: {exc}") from None
    return payload


def load_record(path: str | Path, tag: str, version: int,
                default: Callable[[], dict[str, Any]] | None = None,
                validate: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Read a record; on a missing or corrupt file fall back to NAME.bak, then to `default()`.

    With no default, a missing or corrupt file raises RecordError naming the file.
    """
    path = Path(path)
    payload, used, errors = read_record(path, tag, version, validate)
    for error in errors:
        log.error("%s", error)
    if payload is not None:
        if used != path:
            log.warning("%s: using the previous good copy %s", path, used)
        return payload
    if default is not None:
        if errors:
            log.warning("%s: using defaults", path)
        return default()
    raise RecordError("; ".join(errors) or f"{path}: file does not exist")


def read_record(path: str | Path, tag: str, version: int,
                validate: Callable[[dict[str, Any]], None] | None = None
                ) -> tuple[dict[str, Any] | None, Path | None, list[str]]:
    """`(payload, file used, errors)`: the file, else its previous good copy `NAME.bak`, else
    `(None, None, errors)`; each error names its file. Nothing is logged: the caller decides."""
    path = Path(path)
    errors: list[str] = []
    for candidate in (path, path.with_name(path.name + ".bak")):
        try:
            data = candidate.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{candidate}: cannot read ({exc.strerror})")
            continue
        try:
            return parse_record(candidate, data, tag, version, validate), candidate, errors
        except RecordError as exc:
            errors.append(str(exc))
    return None, None, errors


def write_marked_section(path: str | Path, name: str, text: str, title: str = "") -> Path:
    """Replace (or append) the `<!-- NAME:start -->..<!-- NAME:end -->` part of a text file,
    atomically: how each benchmark keeps its own section of benchmarks/README.md."""
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else (f"# {title}\n" if title else "")
    block = f"{start}\n{text.strip()}\n{end}"
    if start in old and end in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(path, new)
    return path
