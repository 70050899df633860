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
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from grooverack.errors import GrooverackError, PathError, RecordError

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


def remove_stale_temps(folder: str | Path) -> int:
    """Every temporary file in `folder` left by a writer that died before its rename (a clean
    start after a SIGKILL or power cut); returns how many went."""
    gone = 0
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name[1:-len(".tmp")].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            try:
                tmp.unlink()
                gone += 1
            except FileNotFoundError:
                pass
        except PermissionError:
            pass  # alive, another user's
    return gone


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


def _kept(path: Path, existed: bool) -> str:
    return (f"the earlier {path.name} is kept unchanged" if existed
            else f"no {path.name} was written")


def _special(path: Path) -> bool:
    """A device, pipe or socket (`/dev/full`, `/dev/stdout`, a FIFO): written in place, since a
    rename over it would replace the device node with a plain file."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that it holds either its old or its new bytes, never a mix:
    a temporary file in the same folder, fsync'ed, renamed over `path`, the folder fsync'ed.

    A failure (disk full, read-only file system, no permission) raises `PathError` naming the
    file, the reason and what was kept; the temporary file is removed."""
    path = Path(path)
    existed, special = path.exists(), _special(path)
    try:
        if special:
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory")
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
            return
        _write_renamed(path, data)
    except OSError as exc:
        if isinstance(exc, GrooverackError):
            raise
        kept = "" if special else f"; {_kept(path, existed)}"
        raise PathError(f"{path}: not written ({exc.strerror or type(exc).__name__}){kept}"
                        ) from exc


def _write_renamed(path: Path, data: bytes) -> None:
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


def atomic_write_files(files: dict[Path, bytes]) -> list[Path]:
    """Write several files, each atomically, all or as many as fit: a failure stops at that
    file and raises `PathError` naming it, what was written before it and that every file not
    written keeps its earlier version. Returns the paths written."""
    done: list[Path] = []
    for path, data in files.items():
        try:
            atomic_write_bytes(path, data)
        except PathError as exc:
            rest = [p.name for p in files if p not in done and p != path]
            written = f"; written: {', '.join(p.name for p in done)}" if done else ""
            untouched = f"; not written, earlier versions kept: {', '.join(rest)}" if rest else ""
            raise PathError(f"{exc}{written}{untouched}") from exc
        done.append(path)
    return done


# Inputs a person hands the program are read with a bound: /dev/zero or a 2 GB file given as a
# config, manifest or controls CSV is refused with a message, not read until memory runs out.
MAX_TEXT_BYTES = 4 * 1024 * 1024


READ_CHUNK = 64 * 1024  # below malloc's mmap threshold: taken from the heap, nothing mapped


def read_upto(file: BinaryIO, limit: int) -> bytes:
    """What `file` holds, at most `limit` + 1 bytes (more than `limit`: too big, or a device that
    never ends), in as much memory as that takes: a regular file in one read of its size, others
    in chunks. A single `read(limit + 1)` would allocate the whole bound first; under mlockall
    (`--rt`, the Pi service) that memory is mapped in at once: 4 MiB held every thread, the
    real-time loop's too, for ~6 ms (256 MiB: 180 ms), measured on x86."""
    size = os.fstat(file.fileno()).st_size
    want = size + 1 if 0 < size <= limit else READ_CHUNK
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        block = file.read(min(want, limit + 1 - total))
        if not block:
            break
        chunks.append(block)
        total += len(block)
        want = READ_CHUNK
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_bounded(path: str | Path, what: str, error: type[GrooverackError],
                 limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of `path`, at most `limit` of them; a folder, a missing or unreadable file, a
    symlink loop or a bigger input (a device that never ends) raises `error` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = read_upto(f, limit)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder; allowed: a file") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror or type(exc).__name__})"
                    ) from None
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit:,} bytes (or never ends); allowed: a "
                    f"file of at most {limit:,} bytes")
    return data


def read_text_bounded(path: str | Path, what: str, error: type[GrooverackError],
                      limit: int = MAX_TEXT_BYTES) -> str:
    """`read_bounded` as UTF-8 text: a byte-order mark (Excel's "CSV UTF-8", Notepad) is
    dropped and CRLF line ends become LF; other bytes raise `error` naming the offset."""
    data = read_bounded(path, what, error, limit)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                    f"{exc.start})") from None
    return text.replace("\r\n", "\n")


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
        current: bytes | None = read_bounded(path, tag, RecordError)
    except RecordError:
        current = None  # missing, unreadable or a folder: nothing to keep as the good copy
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
        if not os.path.lexists(candidate):
            continue
        try:
            data = read_bounded(candidate, tag, RecordError)
        except RecordError as exc:
            errors.append(str(exc))
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
