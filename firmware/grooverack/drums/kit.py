"""A kit: the voices patched to the module's outputs, their jacks read as a module reads them,
and a stereo mix that never clips.

`Kit(rate, voices)` takes output number -> voice name (`output_voices` makes it from the voice
map: an output that plays several voices, crash and ride on one jack by default, gets the first
of them in model order, as `drums.mid` names it). `cv(frame, output, kind, volts)` is a write
to an output, exactly as `outputs.csv` has it: a `velocity` write holds that output's level, a
`trigger` rising through TRIGGER_VOLTS strikes its voice with the level held then (volts /
`velocity_volts`); other kinds (clock, reset, accent) are not patched to a voice. `render(frames)`
returns the next block of the mix. Events are applied at their own frame; one for a frame
already rendered plays at the block's first frame (counted in `late`).

The mix: fixed gains and pans per voice (below), summed, through a soft limiter (unity below
LIMIT_KNEE, then bent smoothly towards CEILING): its output never reaches full scale, so a
16-bit file or a sound card never clips, and the levels of renders can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

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
    """Output number -> the voice patched to it: the first voice (model order) mapped there."""
    patched: dict[int, str] = {}
    for name in VOICE_NAMES:
        out = int(voice_map.get(name, 0))
        if 0 < out <= outputs and out not in patched:
            patched[out] = name
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

    def __init__(self, voice: Voice, velocity_volts: float) -> None:
        self.voice = voice
        self.velocity_volts = velocity_volts
        self.level = velocity_volts  # a trigger before any velocity write plays at full level
        self.high = False

    def cv(self, frame: int, kind: str, volts: float) -> bool:
        """A write to this output; True when it struck the voice."""
        if kind == "velocity":
            self.level = volts
        elif kind == "trigger":
            rising = volts > TRIGGER_VOLTS and not self.high
            self.high = volts > TRIGGER_VOLTS
            if rising:
                velocity = self.level / self.velocity_volts if self.velocity_volts > 0 else 1.0
                self.voice.strike(frame, velocity)
                return True
        return False


class Kit:
    def __init__(self, rate: int, voices: Mapping[int, str], *, velocity_volts: float = 8.0
                 ) -> None:
        if int(rate) not in RATES:
            raise ValueError(f"sample rate {rate}: allowed {', '.join(map(str, RATES))}")
        self.rate = int(rate)
        self.jacks: dict[int, Jack] = {}
        gains = np.zeros((len(voices), 2))
        for i, (output, name) in enumerate(sorted(voices.items())):
            self.jacks[output] = Jack(VOICES[name](self.rate), velocity_volts)
            gain, pan = MIX[name]
            gain *= MASTER
            angle = (pan + 1.0) * math.pi / 4
            gains[i] = gain * math.cos(angle) * math.sqrt(2), gain * math.sin(angle) * math.sqrt(2)
        self.gains = gains
        by_name = {jack.voice.name: jack.voice for jack in self.jacks.values()}
        self.chokes = by_name.get("open_hat") if "closed_hat" in by_name else None
        self.frame = 0  # the next frame `render` makes
        self.late = 0  # events that came for a frame already rendered
        self.limited = 0  # samples the limiter bent
        self.hits = 0

    def cv(self, frame: int, output: int, kind: str, volts: float) -> None:
        jack = self.jacks.get(output)
        if jack is None:
            return
        if frame < self.frame:
            self.late += 1
            frame = self.frame
        if jack.cv(frame, kind, volts):
            self.hits += 1
            if jack.voice.name == "closed_hat" and self.chokes is not None:
                self.chokes.choke(frame, CHOKE_S)

    @property
    def sounding(self) -> bool:
        return any(jack.voice.sounding for jack in self.jacks.values())

    def render(self, frames: int) -> np.ndarray:
        """The next `frames` of the mix, float32 [frames, 2], never beyond CEILING."""
        mix = np.zeros((frames, 2))
        mono = np.zeros(frames)
        for jack, gain in zip(self.jacks.values(), self.gains, strict=True):
            if jack.voice.sounding:
                mono[:] = 0.0
                jack.voice.render(self.frame, mono)
                mix += mono[:, None] * gain
        self.frame += frames
        self.limited += int(np.count_nonzero(np.abs(mix) > LIMIT_KNEE))
        return soft_limit(mix).astype(np.float32)


def render_events(kit: Kit, events: Iterable[tuple[float, int, str, float]], duration: float,
                  *, tail: float = 4.0, block: int = 1024, fade: float = 0.05) -> np.ndarray:
    """The whole performance: `events` (time s, output, kind, volts) in time order, rendered
    to `duration` and on while a voice still sounds (at most `tail` s more, the last `fade` s
    faded out). float32 [frames, 2]."""
    rate = kit.rate
    pending = sorted(((int(round(t * rate)), i, out, kind, v)
                      for i, (t, out, kind, v) in enumerate(events)), key=lambda e: e[:2])
    end = int(math.ceil(duration * rate))
    limit = end + int(tail * rate)
    blocks: list[np.ndarray] = []
    k = 0
    while kit.frame < end or (kit.sounding and kit.frame < limit):
        stop = kit.frame + block
        while k < len(pending) and pending[k][0] < stop:
            frame, _, out, kind, volts = pending[k]
            kit.cv(frame, out, kind, volts)
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
