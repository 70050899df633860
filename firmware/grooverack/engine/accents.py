"""Accent outputs from the engine's events (pure: no hardware).

Accent jack n goes high with trigger n's rise when the velocity CV written for that hit reaches
`outputs.accent_threshold`, and low with the trigger's fall (Grids' accent outputs: a trigger of
its own, so a drum without a velocity input can still accent). Each hit is judged by its own
velocity, even when several hits come in one batch. The Pi boards' writer
(`backends.panel.outputs`), `--board direct` (`sim.direct`) and the ES-9 (`backends.es9.outputs`) use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import Any, NamedTuple


class AccentEvent(NamedTuple):
    """An accent jack's rise or fall, made from the trigger event it follows."""
    time: float
    output: int
    kind: str
    value: float
    step: int
    voice: int


class AccentFollower:
    """Engine events -> the same events plus the accent rises and falls their triggers bring,
    for the accent jacks numbered `outputs` (the trigger output each follows)."""

    def __init__(self, outputs: Iterable[int], threshold: float) -> None:
        self.outputs = set(outputs)
        self.threshold = threshold
        self.last_velocity: dict[int, float] = {}  # output -> its velocity CV's value (0..1)
        self.accented: set[int] = set()            # accent jacks high now

    def __call__(self, events: Iterable[Any]) -> list[Any]:
        """Events in time order (one instant's in any order) -> each instant's events followed
        by its accent events."""
        out: list[Any] = []
        for _, group in groupby(events, key=lambda e: e.time):
            instant = list(group)
            out += instant
            for e in instant:  # the velocity CV written for a hit comes with it
                if e.kind == "velocity":
                    self.last_velocity[e.output] = float(e.value)
            for e in instant:
                if e.kind != "trigger" or e.output not in self.outputs:
                    continue
                step, voice = getattr(e, "step", 0), getattr(e, "voice", -1)
                if e.value > 0:
                    if self.last_velocity.get(e.output, 0.0) >= self.threshold - 1e-9:
                        self.accented.add(e.output)
                        out.append(AccentEvent(e.time, e.output, "accent", 1.0, step, voice))
                elif e.output in self.accented:
                    self.accented.discard(e.output)
                    out.append(AccentEvent(e.time, e.output, "accent", 0.0, step, voice))
        return out
