"""The one JSON shape of the module's state: what `GET /api/state` returns and the websocket pushes.

```
{"controls": {"follow": 0.9, ..., "density.kick": 0.5, ...},
 "pattern": {"hits": 9 x 32 (0/1, voices in voices.VOICE_NAMES order), "velocities": 9 x 32
             (0..1), "offsets": 9 x 32 (-0.5..0.5 of a step), "serial": n},
 "step": the loop step now playing (0..31), "position": 16th steps since start,
 "groove": {"hits": 32, "velocities": 32, "offsets": 32},
 "playing": {"generation": "model" | "rules" | "fallback", "why": "...", "style": "any",
             "mutes": {"kick": false, ...}, "record": "overdub", "fill": false,
             "clock": {"source": "auto", "driver": "internal", "running": true, "bpm": 120.0},
             "faults": {...}},
 "preset": {"slot": 1, "saved": [{"slot": 1, "name": "..."}, ...]},
 "styles": ["any", ...], "voices": [...], "serial": n, "time": seconds (monotonic)}
```
Made on the web side from a `link.Snapshot`; the pattern's JSON is cached per pattern (it
changes a few times a loop; the position every snapshot).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from grooverack.engine.pattern import Pattern
from grooverack.voices import STEPS, VOICE_NAMES
from grooverack.web.link import Snapshot

WHY = {
    "model": "the model decodes the groove and latents A/B",
    "rules": "rule patterns (generation.mode = rules): Euclidean per voice",
    "fallback": "rule patterns: the model did not load",
}


def _rounded(array: np.ndarray, digits: int = 3) -> list[list[float]]:
    return [[round(float(x), digits) for x in row] for row in array]


class StateJson:
    """Builds the state JSON text; keeps the last pattern's JSON so most pushes only format
    scalars."""

    def __init__(self) -> None:
        self._pattern: Pattern | None = None
        self._pattern_json = ""

    def pattern_json(self, pattern: Pattern) -> str:
        if pattern is not self._pattern:
            self._pattern_json = json.dumps({
                "hits": pattern.hits.T.astype(int).tolist(),
                "velocities": _rounded(pattern.velocities.T),
                "offsets": _rounded(pattern.offsets.T),
                "serial": int(pattern.serial)}, separators=(",", ":"))
            self._pattern = pattern
        return self._pattern_json

    def state(self, snap: Snapshot, *, names: Mapping[int, str],
              faults: Mapping[str, int]) -> dict[str, Any]:
        """The state as a dict (the pattern as a dict too): for tests and the API's callers."""
        return dict(json.loads(self.text(snap, names=names, faults=faults)))

    def text(self, snap: Snapshot, *, names: Mapping[int, str], faults: Mapping[str, int]) -> str:
        groove = snap.groove
        why = WHY.get(snap.generation, snap.generation)
        if snap.generation == "fallback" and snap.model_problem:
            why = f"{why} ({snap.model_problem})"
        rest = {
            "controls": dict(snap.controls),
            "step": int(math.floor(snap.position)) % STEPS if snap.position >= 0 else 0,
            "position": round(snap.position, 4),
            "groove": {"hits": [int(h > 0.5) for h in groove[:, 0]],
                       "velocities": [round(float(v), 3) for v in groove[:, 1]],
                       "offsets": [round(float(o), 3) for o in groove[:, 2]]},
            "playing": {"generation": snap.generation, "why": why, "style": snap.genre,
                        "mutes": dict(snap.mutes), "record": snap.record, "fill": snap.filling,
                        "clock": {"source": snap.clock_source, "driver": snap.clock_driver,
                                  "running": snap.running, "bpm": round(snap.bpm, 2)},
                        "faults": dict(faults)},
            "preset": {"slot": snap.preset_slot,
                       "saved": [{"slot": n, "name": names.get(n, "")}
                                 for n in sorted(snap.presets)]},
            "styles": list(snap.styles), "voices": list(VOICE_NAMES),
            "serial": snap.serial, "time": round(snap.wall, 4),
        }
        text = json.dumps(rest, separators=(",", ":"))
        return '{"pattern":' + self.pattern_json(snap.pattern) + "," + text[1:]
