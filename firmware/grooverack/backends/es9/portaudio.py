"""PortAudio through sounddevice: devices found by name, the library started again, streams
stopped within a bound.

sounddevice's public API covers streams and device lists. Two things it has no public call for
live here and nowhere else: reading the device list again (`sounddevice._terminate()` +
`_initialize()`, which its documentation names for exactly that) and giving sounddevice a fresh
copy of the PortAudio library when the old one holds a client of a JACK server that died
(`_fresh_library`, the only place that touches sounddevice's private `_lib`/`_ffi`/
`_initialized`). A stream opened by one copy is stopped and closed through that copy
(`close_stream`).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from grooverack.errors import ConfigError

log = logging.getLogger(__name__)

_abandoned: list[Any] = []  # streams whose stop never returned: never collected (no GC close)


def bounded(fn: Callable[[], Any], timeout: float, what: str) -> bool:
    """Run `fn` in a helper thread; True when it returned within `timeout`. PortAudio's JACK
    stream stop waits for a process callback that never comes once jackd has died."""
    done = threading.Event()

    def call() -> None:
        try:
            fn()
        except Exception as exc:  # the device or server went away
            log.debug("ES-9: %s: %s", what, exc)
        finally:
            done.set()

    threading.Thread(target=call, name="grooverack-es9-stop", daemon=True).start()
    if done.wait(timeout):
        return True
    log.warning("ES-9: %s did not return within %.1f s (audio server gone?); left behind",
                what, timeout)
    return False


def find_device(name: str, kind: str, rescan: bool = True) -> int:
    """Index of the first PortAudio device whose name contains `name` and has `kind` channels;
    the device list is read again once when it is not there (hot-plugged, or a JACK client that
    appeared after PortAudio started) unless `rescan` is false."""
    import sounddevice as sd

    want = name.lower()
    for attempt in range(2 if rescan else 1):
        for i, dev in enumerate(sd.query_devices()):
            if want in dev["name"].lower() and dev[f"max_{kind}_channels"] > 0:
                return i
        if attempt == 0 and rescan:
            refresh_devices()
    names = ", ".join(repr(d["name"]) for d in sd.query_devices()) or "none"
    raise ConfigError(f"es9: no audio {kind} device matching {name!r}; devices: {names} "
                      "(see `grooverack ports`)")


class _PortAudio:
    """This process's PortAudio: whether the loaded copy is stale, and its library file."""

    stale = False  # its state can't be terminated: the next refresh loads a new copy of it
    library: str | None = None  # the PortAudio library file sounddevice loaded first
    exit_hooked = False


def mark_portaudio_stale() -> None:
    """PortAudio holds a stream or a JACK client of a server that died: its terminate would abort
    that stream, whose stop waits 10 minutes for a process callback that never comes (pa_jack's
    `RealStop`), and libjack's deactivate of the dead client fails an assertion (abort). The next
    `refresh_devices()` gives sounddevice a new copy of the library instead; at exit it is not
    terminated."""
    _PortAudio.stale = True


def portaudio_stale() -> bool:
    return _PortAudio.stale


def _library_file() -> str | None:
    """The file of the PortAudio library this process loaded first (Linux: /proc/self/maps)."""
    if _PortAudio.library is None:
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    path = line.split(maxsplit=5)[-1].strip()
                    if os.path.basename(path).startswith("libportaudio") and os.path.isfile(path):
                        _PortAudio.library = path
                        break
        except OSError:
            return None
    return _PortAudio.library


def _fresh_library(sd: Any) -> bool:
    """sounddevice on a copy of the PortAudio library of its own (a copy, not a link: the dynamic
    loader would hand back the loaded one), its own state, not initialized; the old copy stays
    loaded and is never called again. False where there is no file to copy.

    sounddevice has no public call for this: PortAudio cannot be terminated while it holds a
    dead JACK server's client (see `mark_portaudio_stale`), so the module's private library
    handle is swapped here, and only here."""
    path = _library_file()
    if path is None:
        return False
    folder = tempfile.mkdtemp(prefix="grooverack-portaudio-")
    try:
        copy = os.path.join(folder, os.path.basename(path))
        shutil.copyfile(path, copy)
        sd._lib = sd._ffi.dlopen(copy)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sd._initialized = 0
    return True


def current_library() -> Any:
    """The PortAudio copy sounddevice calls now (a stream is closed through the one that opened
    it, `close_stream`)."""
    import sounddevice as sd

    return sd._lib


def _at_exit() -> None:
    # runs before sounddevice's own exit handler (registered later): a stale PortAudio is left
    # alone, its terminate would wait on or abort at the dead server's stream
    if _PortAudio.stale:
        import sounddevice as sd

        sd._initialized = 0


def hook_exit() -> None:
    if not _PortAudio.exit_hooked:
        import sounddevice  # noqa: F401  (its exit handler first, so that this one runs before)

        _library_file()  # while only the first copy is loaded
        atexit.register(_at_exit)
        _PortAudio.exit_hooked = True


def refresh_devices() -> None:
    """Make PortAudio read its device list again (and connect to a JACK server started since);
    a stale one (`mark_portaudio_stale`) is replaced by a new copy rather than terminated."""
    import sounddevice as sd

    hook_exit()
    if _PortAudio.stale:
        _PortAudio.stale = False  # before: a server that dies while it starts marks the new copy
        if _fresh_library(sd):
            sd._initialize()
            return
        log.warning("ES-9: no PortAudio library file to load again; terminating the old one")
    terminate()
    sd._initialize()


def terminate() -> None:
    """PortAudio terminated (sounddevice's documented way to read the devices again is
    `_terminate()` then `_initialize()`)."""
    import sounddevice as sd

    if sd._initialized:
        sd._terminate()


def close_stream(stream: Any, lib: Any, timeout: float, what: str) -> bool:
    """Stop and close `stream` through the PortAudio copy `lib` that opened it, bounded (see
    `bounded`); a stop that returns only after it was given up does not close (its server is
    gone: the close would touch a dead JACK client)."""
    given_up = threading.Event()

    def close() -> None:
        lib.Pa_StopStream(stream._ptr)
        if not given_up.is_set():
            lib.Pa_CloseStream(stream._ptr)

    if bounded(close, timeout, what):
        return True
    given_up.set()
    abandon(stream)
    return False


def abandon(stream: Any) -> None:
    """A stream of a server that went away: kept for good (never stopped, closed or collected),
    PortAudio marked stale."""
    keep(stream)
    mark_portaudio_stale()


def keep(stream: Any) -> None:
    """A stream never stopped, closed or collected (its stop would wait on a dead server)."""
    _abandoned.append(stream)
