"""What every emulator shares: virtual time and the protocol-error exception."""

from __future__ import annotations


class VirtualClock:
    """Seconds on the virtual timeline; `sleep` advances it (the emulated world never waits)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance_to(self, t: float) -> None:
        if t > self.now:
            self.now = float(t)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += float(seconds)


def hexbytes(data: bytes | list[int]) -> str:
    return " ".join(f"{b:02x}" for b in bytes(data))
