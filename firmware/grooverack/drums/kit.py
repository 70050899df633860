"""A kit: the voices patched to the module's outputs, their jacks read as a module reads them,
and a stereo mix that never clips.

`Kit(rate, voices)` takes output number -> the voice name, or the voice names, patched there
(`output_voice_sets` makes them from the voice map). An output that plays several voices (crash
and ride on jack 8 by default) is a multi-voice module: each trigger strikes the voice the
module played there (the write's `voice`, as the MIDI back end sends that voice's note and the
page plays it), the first of them in model order when a write does not say (`output_voices`,
as `drums.mid` names the lane). `cv(frame, output, kind, volts, voice)` is a write to an output,
as `outputs.csv` has it: a `velocity` write holds that output's level, a `trigger` rising
through TRIGGER_VOLTS strikes its voice with the level held then (volts / `velocity_volts`);
other kinds (clock, reset, accent) are not patched to a voice. `render(frames)`
returns the next block of the mix. Events are applied at their own frame; one for a frame
already rendered plays at the block's first frame (counted in `late`).

The mix: fixed gains and pans per voice (below), summed, through a soft limiter (unity below
LIMIT_KNEE, then bent smoothly towards CEILING): its output never reaches full scale, so a
16-bit file or a sound card never clips, and the levels of renders can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from grooverack.drums.voices import CHOKE_S, VOICES, Voice
from grooverack.voices import VOICE_NAMES

TRIGGER_VOLTS = 1.0  # a trigger input reads high above this (the module sends 5 V)
LIMIT_KNEE = 0.89  # -1 dBFS: the limiter leaves everything below alone
CEILING = 0.98  # and never goes above this
RATES = (44100, 48000)

MASTER = 1.4  # +3 dB over the gains below: a default render peaks near -3 dBFS, a dense one
# (density 1, uncertainty 1) near the limiter's knee
# voice -> (gain, pan -1 left .. +1 right, as the audience sees the kit)
MIX: dict[str, tuple[float, float]] = {
    "kick": (0.42, 0.0),
    "snare": (0.34, 0.05),
    "closed_hat": (0.34, 0.35),
    "open_hat": (0.24, 0.35),
    "low_tom": (0.30, -0.4),
    "mid_tom": (0.28, -0.1),
    "high_tom": (0.26, 0.2),
    "crash": (0.17, 0.45),
    "ride": (0.16, -0.45),
}


def output_voices(voice_map: Mapping[str, int], outputs: int) -> dict[int, str]:
    """Output number -> the voice that names it: the first voice (model order) mapped there."""
    return {out: names[0] for out, names in output_voice_sets(voice_map, outputs).items()}


def output_voice_sets(voice_map: Mapping[str, int], outputs: int) -> dict[int, tuple[str, ...]]:
    """Output number -> every voice mapped there, in model order (crash and ride share jack 8
    with 8 outputs)."""
    patched: dict[int, tuple[str, ...]] = {}
    for name in VOICE_NAMES:
        out = int(voice_map.get(name, 0))
        if 0 < out <= outputs:
            patched[out] = (*patched.get(out, ()), name)
    return patched


def soft_limit(x: np.ndarray) -> np.ndarray:
    """Unity up to LIMIT_KNEE, then a tanh bend (slope 1 at the knee) towards CEILING."""
    over = np.abs(x) > LIMIT_KNEE
    if over.any():
        room = CEILING - LIMIT_KNEE
        x = x.copy()
        x[over] = np.sign(x[over]) * (LIMIT_KNEE + room * np.tanh((np.abs(x[over]) - LIMIT_KNEE)
                                                                 / room))
    return x


class Jack:
    """One output's trigger + velocity CV as a drum module's inputs read them."""

    def __init__(self, voices: Sequence[Voice], velocity_volts: float) -> None:
        self.voice = voices[0]  # struck when a write does not say which
        self.voices = {VOICE_NAMES.index(v.name): v for v in voices}  # model index -> voice
        self.velocity_volts = velocity_volts
        self.level = velocity_volts  # a trigger before any velocity write plays at full level
        self.high = False

    def cv(self, frame: int, kind: str, volts: float, voice: int | None = None) -> Voice | None:
        """A write to this output (`voice`: the model voice behind it, when known); the voice
        it struck, if any."""
        if kind == "velocity":
            self.level = volts
        elif kind == "trigger":
            rising = volts > TRIGGER_VOLTS and not self.high
            self.high = volts > TRIGGER_VOLTS
            if rising:
                velocity = self.level / self.velocity_volts if self.velocity_volts > 0 else 1.0
                struck = self.voices.get(voice, self.voice) if voice is not None else self.voice
                struck.strike(frame, velocity)
                return struck
        return None


class Kit:
    def __init__(self, rate: int, voices: Mapping[int, str | Sequence[str]], *,
                 velocity_volts: float = 8.0) -> None:
        if int(rate) not in RATES:
            raise ValueError(f"sample rate {rate}: allowed {', '.join(map(str, RATES))}")
        self.rate = int(rate)
        self.jacks: dict[int, Jack] = {}
        self.voices: list[Voice] = []  # every voice of every jack, mixed with `gains`
        gains = []
        for output, names in sorted(voices.items()):
            made = [VOICES[name](self.rate) for name in ((names,) if isinstance(names, str)
                                                         else names)]
            self.jacks[output] = Jack(made, velocity_volts)
            for voice in made:
                gain, pan = MIX[voice.name]
                gain *= MASTER
                angle = (pan + 1.0) * math.pi / 4
                gains.append((gain * math.cos(angle) * math.sqrt(2),
                              gain * math.sin(angle) * math.sqrt(2)))
                self.voices.append(voice)
        self.gains = np.array(gains).reshape(len(self.voices), 2)
        by_name = {voice.name: voice for voice in self.voices}
        self.chokes = by_name.get("open_hat") if "closed_hat" in by_name else None
        self.frame = 0  # the next frame `render` makes
        self.late = 0  # events that came for a frame already rendered
        self.limited = 0  # samples the limiter bent
        self.hits = 0
        self.struck: dict[str, int] = {voice.name: 0 for voice in self.voices}  # hits per voice

    def cv(self, frame: int, output: int, kind: str, volts: float,
           voice: int | None = None) -> None:
        """A write to `output` at `frame`; `voice` (model index) picks which of a multi-voice
        jack's voices a trigger strikes (None or -1: its first)."""
        jack = self.jacks.get(output)
        if jack is None:
            return
        if frame < self.frame:
            self.late += 1
            frame = self.frame
        struck = jack.cv(frame, kind, volts, voice)
        if struck is not None:
            self.hits += 1
            self.struck[struck.name] += 1
            if struck.name == "closed_hat" and self.chokes is not None:
                self.chokes.choke(frame, CHOKE_S)

    @property
    def sounding(self) -> bool:
        return any(voice.sounding for voice in self.voices)

    def render(self, frames: int) -> np.ndarray:
        """The next `frames` of the mix, float32 [frames, 2], never beyond CEILING."""
        mix = np.zeros((frames, 2))
        mono = np.zeros(frames)
        for voice, gain in zip(self.voices, self.gains, strict=True):
            if voice.sounding:
                mono[:] = 0.0
                voice.render(self.frame, mono)
                mix += mono[:, None] * gain
        self.frame += frames
        self.limited += int(np.count_nonzero(np.abs(mix) > LIMIT_KNEE))
        return soft_limit(mix).astype(np.float32)


def render_events(kit: Kit, events: Iterable[tuple[float, int, str, float]
                                             | tuple[float, int, str, float, int | None]],
                  duration: float, *, tail: float = 4.0, block: int = 1024, fade: float = 0.05
                  ) -> np.ndarray:
    """The whole performance: `events` (time s, output, kind, volts[, voice]) in time order,
    rendered to `duration` and on while a voice still sounds (at most `tail` s more, the last
    `fade` s faded out). float32 [frames, 2]."""
    rate = kit.rate
    pending = sorted(((int(round(e[0] * rate)), i, e[1], e[2], e[3],
                       e[4] if len(e) > 4 else None)  # type: ignore[misc]
                      for i, e in enumerate(events)), key=lambda e: e[:2])
    end = int(math.ceil(duration * rate))
    limit = end + int(tail * rate)
    blocks: list[np.ndarray] = []
    k = 0
    while kit.frame < end or (kit.sounding and kit.frame < limit):
        stop = kit.frame + block
        while k < len(pending) and pending[k][0] < stop:
            frame, _, out, kind, volts, voice = pending[k]
            kit.cv(frame, out, kind, volts, voice)
            k += 1
        blocks.append(kit.render(block))
    audio = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    audio = audio[:max(end, min(kit.frame, limit))]
    if len(audio) > end:  # a tail cut at `limit`, or ended: no click at the very end
        n = min(int(fade * rate), len(audio))
        audio[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
    return audio


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float in -1..1 -> int16 (the limiter keeps it inside; clipped anyway for safety)."""
    return np.clip(np.round(audio * 32767.0), -32767, 32767).astype("<i2")
