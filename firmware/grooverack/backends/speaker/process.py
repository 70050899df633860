"""`SpeakerProcess`: `Speaker` in a child process of its own, fed through a pipe (the
package's text: `grooverack.backends.speaker`)."""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from grooverack.backends.speaker.card import Speaker, log

# --- the speaker in a process of its own: no GIL shared with the real-time loop

RECORD = struct.Struct("<dIBbxxd")  # time, output, kind code, voice (-1: none), volts: 24 bytes
KINDS = ("velocity", "trigger", "accent", "clock", "reset")
BEGIN, STOP = 254, 255  # control records: t0 (in the time field), stop (as EOF does)


class SpeakerProcess:
    """`Speaker` run in a child process (`python -m grooverack.backends.speaker`): the real-time
    loop's `push` is one non-blocking write of a 24-byte record into a pipe (atomic, never
    waits; a full pipe drops the write and counts it), and the child's audio callback renders,
    holding no lock the loop could wait for. The same methods as `Speaker`."""

    def __init__(self, voices: Mapping[int, str | Sequence[str]], *, rate: int = 48000,
                 velocity_volts: float = 8.0, device: str = "", delay_ms: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.args = {"voices": {str(k): v if isinstance(v, str) else list(v)
                                for k, v in voices.items()}, "rate": int(rate),
                     "velocity_volts": float(velocity_volts), "device": device,
                     "delay_ms": float(delay_ms)}
        self.clock = clock
        self.proc: Any = None
        self.fd = -1
        self.t0: float | None = None
        self.delay: float | None = None
        self.described = ""
        self.reported = ""
        self.dropped = 0
        self.gone: str | None = None

    def start(self, timeout: float = 20.0) -> bool:
        import json
        import os
        import select
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grooverack.backends.speaker", json.dumps(self.args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)
        self.fd = self.proc.stdin.fileno()
        os.set_blocking(self.fd, False)
        poller = select.poll()
        poller.register(self.proc.stdout, select.POLLIN | select.POLLHUP)
        line = self.proc.stdout.readline().decode() if poller.poll(timeout * 1000) else ""
        if line.startswith("ready "):
            _, delay_ms, self.described = line.rstrip("\n").split(" ", 2)
            self.delay = float(delay_ms) / 1e3
            return True
        self.gone = line.strip() or "the sound process did not start"
        self._end()
        return False

    def begin(self, t0: float) -> None:
        self.t0 = t0
        if self.gone is None and self.proc is not None:
            self._send(RECORD.pack(t0, 0, BEGIN, -1, 0.0))

    def push(self, t: float, output: int, kind: str, volts: float,
             voice: int | None = None) -> None:
        """An output write at patch time `t` (called from the real-time loop): never blocks."""
        if self.gone is None and self.proc is not None:
            self._send(RECORD.pack(t, output, KINDS.index(kind) if kind in KINDS else 0xFD,
                                   voice if voice is not None and 0 <= voice < 128 else -1,
                                   volts))

    def _send(self, record: bytes) -> None:
        import os

        try:
            os.write(self.fd, record)
        except BlockingIOError:
            self.dropped += 1
        except OSError as exc:  # the sound process is gone (EPIPE)
            if self.gone is None:
                self.gone = f"the sound process went away ({exc.strerror})"
                log.warning("audio: %s; the module plays on without it", self.gone)

    def wait_delay(self, timeout: float = 2.0) -> float | None:
        return self.delay

    def drain(self, until: float, timeout: float = 2.0) -> None:
        """Wait (bounded) until the sound has played to patch time `until`."""
        if self.t0 is None or self.delay is None or self.gone is not None:
            return
        left = self.t0 + until + self.delay + 0.05 - self.clock()
        time.sleep(min(max(left, 0.0), timeout))

    def stop(self, timeout: float = 5.0) -> None:
        """The sound process plays what it was sent, then ends (its stdin closed: EOF) and
        reports; bounded."""
        if self.proc is None:
            return
        self._end(timeout)

    def _end(self, timeout: float = 5.0) -> None:
        import subprocess

        proc, self.proc = self.proc, None
        self.fd = -1  # closed below: its number may be another file's soon
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # stuck on a dead server's stream: left behind
            log.warning("audio: the sound process did not end within %.0f s; killed", timeout)
            proc.kill()
            proc.wait()
        out = proc.stdout.read()
        proc.stdout.close()
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("report "):
                self.reported = line[len("report "):]

    def describe(self) -> str:
        return self.described if self.gone is None else f"audio: {self.gone}"

    def report(self) -> str:
        text = self.reported or f"audio: {self.gone or 'no report from the sound process'}"
        if self.dropped:
            text += f"; {self.dropped} writes dropped by the pipe"
        return text


def _child(argv: list[str]) -> int:
    """The sound process: reads records from stdin, plays them through a `Speaker`."""
    import json
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    a = json.loads(argv[0])
    speaker = Speaker({int(k): v for k, v in a["voices"].items()}, rate=a["rate"],
                      velocity_volts=a["velocity_volts"], device=a["device"],
                      delay_ms=a["delay_ms"])
    out = sys.stdout
    if not speaker.start():
        out.write(f"{speaker.gone}\n")
        out.flush()
        return 0
    delay = speaker.wait_delay()
    if delay is None:
        out.write("no callback from the sound card\n")
        out.flush()
        speaker.stop()
        return 0
    out.write(f"ready {delay * 1e3:.3f} {speaker.describe()}\n")
    out.flush()
    import os

    buffered = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffered += chunk
        whole = len(buffered) - len(buffered) % RECORD.size
        stop = False
        for t, output, code, voice, volts in RECORD.iter_unpack(buffered[:whole]):
            if code == BEGIN:
                speaker.begin(t)
            elif code == STOP:
                stop = True
            elif code < len(KINDS):
                speaker.push(t, output, KINDS[code], volts, voice if voice >= 0 else None)
        buffered = buffered[whole:]
        if stop:
            break
    speaker.stop()
    out.write(f"report {speaker.report()}\n")
    out.flush()
    return 0
