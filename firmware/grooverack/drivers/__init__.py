"""Chips and buses only, nothing musical. Every converter speaks one of two interfaces, so the
panel code never asks which part it drives:

- an ADC: `read(channel) -> code`, `read_many(channels) -> [code, ...]` (one burst);
- a DAC: `configure()` (at start; a no-op where the part needs none), `write(channel, code)`,
  `write_many([(channel, code), ...])` (one transaction where the part has one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class ADC(Protocol):
    def read(self, channel: int) -> int: ...

    def read_many(self, channels: Iterable[int]) -> list[int]: ...


class DAC(Protocol):
    def configure(self) -> None: ...

    def write(self, channel: int, code: int) -> None: ...

    def write_many(self, writes: list[tuple[int, int]]) -> None: ...
