"""Whether a running audio stream (sounddevice / PortAudio) is still alive: the one check the
ES-9's stream keeper (`es9.keeper`) and the speaker's card (`speaker.card`) both make."""

from __future__ import annotations

import time
from typing import Any

STALLED_S = 2.0  # s without a callback from a started stream: it went away (a hung device)


def why_gone(stream: Any, last_callback: float, started: float,
             stalled_s: float = STALLED_S) -> str | None:
    """Why `stream` (started at monotonic time `started`, its last callback at `last_callback`)
    is gone: stopped, its device raising, or no callback for `stalled_s`; None while alive."""
    try:
        if not stream.active:
            return "the stream stopped"
    except Exception as exc:  # the device went away
        return str(exc)
    silent = time.monotonic() - max(last_callback, started)
    return f"no callback for {silent:.1f} s" if silent > stalled_s else None
