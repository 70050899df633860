"""The typed seams of the engine: what a back end may call (`EngineSeam`) and what the engine
uses of its model runner (`RunnerSeam`).

`Engine` implements the first; tests may drive a back end with any object that has these members
(a Protocol: structural, nothing to inherit). Back ends hold `engine: EngineSeam`, never probe it
with `getattr`.
"""

from __future__ import annotations

from typing import Any, Protocol

from grooverack.controls import GenerationControls
from grooverack.engine.player import OutputEvent


class EngineSeam(Protocol):
    settings: Any
    # what generation reads, typed (frozen: read it whole, move it with set_control)
    controls: GenerationControls

    # transport and clock (MIDI Start/Stop/Continue semantics; external and MIDI clock edges)
    def start(self, t: float, *, midi: bool = False) -> None: ...
    def stop(self, t: float) -> None: ...
    def continue_(self, t: float, *, midi: bool = False) -> None: ...
    def reset(self, t: float) -> None: ...
    def clock_pulse(self, t: float) -> None: ...
    def midi_clock(self, t: float) -> None: ...
    def song_position(self, t: float, sixteenths: int) -> None: ...

    # the player's input and the panel
    def onset(self, t: float, velocity: float | None = None,
              pitch_volts: float | None = None) -> bool: ...
    def set_control(self, name: str, value: Any) -> Any: ...
    def press(self, button: str) -> Any: ...
    def fill(self, t: float, high: bool) -> None: ...   # the fill gate's level from t

    # the styles a style control may choose ("any" first; the model's genres_offered)
    @property
    def offered_styles(self) -> tuple[str, ...]: ...

    # what plays: "model", "rules" or "fallback" (no model loads: `model_problem` says why);
    # the panel shows the fallback on its record LED
    @property
    def generation(self) -> str: ...

    # output: every event with time < t_until not yet returned, sorted
    def advance(self, t_until: float) -> list[OutputEvent]: ...
    # what the next external clock pulse releases at its time (the step table; [] if nothing)
    def on_next_pulse(self) -> list[OutputEvent]: ...
    # what the first MIDI clock after a Start taken now releases (None: not known ahead)
    def on_start_pulse(self) -> list[OutputEvent] | None: ...
    @property
    def patterns_offered(self) -> int: ...
    # how long a trigger rising now on an output stays high (its fall written with the rise)
    def trigger_seconds(self, output: int) -> float: ...

    # presets and the performance (state keeper)
    presets: dict[int, Any]
    preset_slot: int
    generator: Any  # set_latent(side, z), latent_size

    @property
    def groove(self) -> Any: ...
    def save_preset(self, n: int) -> dict[str, Any]: ...
    def recall_preset(self, n: int, data: dict[str, Any] | None = None) -> dict[str, Any]: ...

    # liveness (watchdog)

    @property
    def alive(self) -> bool: ...
    @property
    def heartbeat(self) -> float: ...
    def close(self) -> None: ...


class RunnerSeam(Protocol):
    """What the engine and its generator use of a model runner: `model.runner.ModelRunner`, or
    `model.watch.NoModel` while no model loads (then `problem` says why, and nothing is
    inferred). Test fakes implement the same members; nothing probes a runner with `getattr`."""

    problem: str                       # '' when the model plays
    variant: str                       # "int8" / "fp32"
    latent_size: int
    voices: tuple[str, ...]
    genres: tuple[str, ...]            # () = no genre conditioning
    genres_offered: tuple[str, ...]    # the styles a player may choose
    manifest: dict[str, Any]
    tempo: bool                        # the decoder hears the tempo
    removal_groups: tuple[str, ...]    # the decoder's "removed" flags (re-voicing)
    bar_swap: bool                     # a followed groove is decoded in both bar views
    thresholds: Any                    # [9] hit thresholds chosen on validation
    latent_bank: Any                   # model.bank.LatentBank or None

    def thresholds_for(self, removed: Any = None) -> Any: ...
    def encode(self, groove: Any) -> tuple[Any, Any]: ...
    def encode_views(self, groove: Any) -> Any: ...
    def decode(self, z: Any, genre: int = 0, bpm: float | None = None,
               removed: Any = None) -> tuple[Any, Any, Any]: ...
    def decode_views(self, z_pair: Any, genre: int = 0, bpm: float | None = None,
                     removed: Any = None, weight: float = 0.5) -> tuple[Any, Any, Any]: ...
