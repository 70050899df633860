"""The fill gate (`Engine.fill`): while it is high the drums play a fill, the same decode sampled
busier (`engine.rules.fill_controls`); after it falls the fill goes on to the first bar line at
or after the fall and ends exactly there. A trigger shorter than a step starts a fill too.

Pure state over step commits: the engine tells it the gate's level and, at each step commit, it
says whether a new pattern is needed and asks for the one after the fill ahead of its bar line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from grooverack.engine.player import Player
from grooverack.voices import STEPS_PER_BAR


class FillGate:
    """The fill gate's level and the fill it plays (`Player.fill`: the fill's number, 0 = none)."""

    def __init__(self) -> None:
        self.gate = False               # the fill input's level
        self.fills = 0                  # fills begun (each one's number marks its patterns)
        self.ends: int | None = None    # the bar line (step) the fill ends on, once the gate fell
        self.fell = 0.0                 # where (position) the gate fell
        self.rose = False               # a rise not yet seen by a step commit

    def set(self, high: bool, position: float) -> None:
        """The gate's level from `position` (-inf: the clock is not running)."""
        if high == self.gate:
            return
        self.gate = high
        if high:
            self.rose = True  # even a trigger shorter than a step starts a fill
        else:
            self.fell = position

    def rebased(self, player: Player) -> None:
        """A start or reset ends a fill whose gate is low."""
        if not self.gate:
            player.fill, self.ends = 0, None

    def commit(self, step: int, player: Player, request: Callable[[int | None], None]) -> bool:
        """At the commit of `step`: start, hold or end the fill. True: a new pattern is needed.
        `request(fill)` asks the generator for a pattern now (fill None: as the player plays)."""
        ahead = True
        if self.gate or self.rose:
            self.rose = False
            self.ends = None  # (a gate that rose again before the bar line: on it goes)
            if not player.fill:
                self.fills += 1
                player.fill = self.fills
                if self.gate:
                    return True
                # a trigger: the fill now, its end placed below (one request: the worker
                # keeps only the newest, and the pattern after it is made at the bar line)
                request(None)
                ahead = False
                self.fell = max(self.fell, step + 0.5)  # at least this step
            elif self.gate:
                return False
        if not player.fill:
            return False
        if self.ends is None:
            # the first bar line at or after where the gate fell; the pattern after the fill is
            # asked for now, so that the worker has it ready when the bar line comes
            fell = self.fell if math.isfinite(self.fell) else float(step)
            self.ends = math.ceil(fell / STEPS_PER_BAR - 1e-9) * STEPS_PER_BAR
            if step < self.ends:
                if ahead:
                    request(0)
                return False
        if step >= self.ends:
            player.fill = 0
            self.ends = None
            return True
        return False
