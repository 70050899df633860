"""The one schema of configuration keys: default, unit, allowed values, and what each key does.

A configuration is a TOML file (`grooverack.toml`, tables flatten to dotted keys) plus
`--set key=value` overrides. Every key has a default; an unknown key or a value out of range is
refused with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grooverack.errors import ConfigError
from grooverack.storage import read_text_bounded
from grooverack.voices import VOICE_GROUPS, VOICE_NAMES


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    @property
    def kind(self) -> type:
        return type(self.default)

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.low is not None and self.high is not None:
            unit = f" {self.unit}" if self.unit else ""
            kind = "an integer" if self.kind is int else "a number"
            return f"{kind} from {self.low:g} to {self.high:g}{unit}"
        return f"a {self.kind.__name__}"

    def validate(self, value: Any, source: str = "") -> Any:
        where = f" (in {source})" if source else ""

        def fail() -> ConfigError:
            return ConfigError(
                f"config key {self.name!r}{where}: value {value!r} is not allowed; "
                f"allowed: {self.allowed()}"
            )

        kind = self.kind
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "1", "0"):
                return value.lower() in ("true", "on", "1")
            raise fail()
        if kind is int:
            if isinstance(value, bool):
                raise fail()
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise fail() from None
            if not isinstance(value, int):
                raise fail()
        elif kind is float:
            if isinstance(value, bool):
                raise fail()
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise fail() from None
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise fail()
            value = float(value)
        elif kind is str and not isinstance(value, str):
            raise fail()
        if self.choices is not None and value not in self.choices:
            raise fail()
        if self.low is not None and value < self.low:
            raise fail()
        if self.high is not None and value > self.high:
            raise fail()
        return value


OUTPUT_MODES = ("trigger", "gate")  # what a trigger, clock or reset output does per rise

# The panel's buttons: what `Engine.press` does, what a board's button may be wired to, what a
# `--controls` CSV may press. The one list.
BUTTONS: tuple[str, ...] = ("record", "clear", "randomize_a", "randomize_b", "save_preset",
                            "recall_preset", "next_preset", "previous_preset",
                            # the style the model plays (cycling the offered ones, wrapping)
                            "next_style", "previous_style",
                            # mute / unmute a voice group (voices.VOICE_GROUPS)
                            *(f"mute_{group}" for group in VOICE_GROUPS),
                            # held, not pressed: the panel's second layer of pots and buttons
                            # (a board's [shift] table); the engine ignores it
                            "shift")

# The buttons a MIDI CC or note presses (and an ES-9 gate input): all but the panel's shift
# (a layer of pots, which neither has). The mute_<group> CCs are levels, not presses.
PRESS_ACTIONS: tuple[str, ...] = tuple(b for b in BUTTONS if b != "shift")


def _keys() -> list[Key]:
    k: list[Key] = [
        # --- the panel: addressable the same way from config, --set, pots, CV and MIDI CC
        Key("follow", 0.9, "", 0.0, 1.0, doc="how much the drums follow the input groove (1) vs latents A/B (0)"),
        Key("morph", 0.0, "", 0.0, 1.0, doc="A/B morph of the stored latents (0 = A, 1 = B)"),
        Key("uncertainty", 0.3, "", 0.0, 1.0, doc="sampling temperature control (0 = steady, 1 = wild)"),
        Key("density", 0.5, "", 0.0, 1.0, doc="density of all voices (0 = silent, 0.5 = as trained, 1 = busy)"),
        Key("quantize", 0.0, "", 0.0, 1.0, doc="0 = the model's micro-timing, 1 = outputs on the grid"),
        Key("tempo", 120.0, "BPM", 20.0, 300.0, doc="internal clock tempo"),
        Key("swing", 50.0, "%", 50.0, 75.0, doc="swing of the off-beat 16ths (50 = straight)"),
        # the allowed styles depend on the model: the engine checks them (Engine.offered_styles:
        # the manifest's genres_offered, no style with too few train loops, e.g. gospel)
        Key("genre", "any", doc="genre conditioning when the model has it ('any' = none): one of "
            "the styles the model offers (its manifest's genres_offered)"),
        Key("groove_velocity", 1.0, "", 0.0, 1.0, doc="how much of the input's dynamics the groove keeps"),
        Key("groove_offset", 1.0, "", 0.0, 1.0, doc="how much of the input's micro-timing the groove keeps"),
        Key("record", "overdub", choices=("record", "overdub", "off"), doc="groove capture mode"),
        Key("memory", 2, "loops", 0, 64, doc="captured onsets expire after this many loops (0 = never)"),
        # --- clock
        Key("clock.source", "auto", choices=("auto", "internal", "external", "midi"),
            doc="auto = external clock while pulses arrive, internal otherwise"),
        Key("clock.ppqn", 4, "PPQN", choices=(1, 2, 4, 8, 24, 48), doc="external clock resolution"),
        Key("clock.smoothing", 8, "intervals", 1, 48, doc="clock intervals averaged for the tempo estimate"),
        Key("clock.slew", 0.5, "", 0.0, 1.0, doc="how fast the tempo estimate moves to the measured intervals (steps on clock edges always play at the edge)"),
        Key("clock.stop_timeout", 2.0, "s", 0.1, 10.0, doc="clock declared stopped after this long without pulses"),
        Key("clock.auto_stop", "wait", choices=("wait", "internal"),
            doc="auto, when the external clock stops: wait for it (the drums stop with it; turn "
                "tempo to play on at the internal tempo) or go on at the internal tempo"),
        # --- input: gate + pitch -> onset velocity
        Key("input.velocity_mode", "auto", choices=("auto", "window", "fixed", "cv"),
            doc="how an onset gets its velocity: pitch spread (auto), pitch window, fixed, or a velocity CV"),
        Key("input.pitch_settle_ms", 1.0, "ms", 0.0, 20.0, doc="pitch CV sampled this long after the gate rises"),
        Key("input.pitch_low", 0.0, "V", -10.0, 10.0, doc="window mode: pitch mapped to velocity_low"),
        Key("input.pitch_high", 2.0, "V", -10.0, 10.0, doc="window mode: pitch mapped to velocity_high"),
        Key("input.velocity_low", 0.35, "", 0.0, 1.0, doc="velocity of the lowest pitch"),
        Key("input.velocity_high", 1.0, "", 0.0, 1.0, doc="velocity of the highest pitch"),
        Key("input.fixed_velocity", 0.8, "", 0.0, 1.0, doc="fixed mode: every onset's velocity"),
        Key("input.auto_notes", 16, "notes", 2, 256, doc="auto mode: recent notes whose pitch range is spread"),
        Key("input.velocity_cv_volts", 5.0, "V", 0.1, 10.0, doc="cv mode: velocity CV that means full velocity"),
        # --- input: audio -> onsets (grooverack.onsets; docs/onsets.md)
        Key("input.source", "gate", choices=("gate", "audio"),
            doc="where onsets come from: gate = the gate + pitch CV jacks (MIDI notes on a MIDI "
                "board); audio = the onsets heard on input.audio_device (a drum machine, a guitar), "
                "and only those: gate edges and MIDI notes then play nothing"),
        Key("input.audio_device", "", doc="audio source: substring of a capture device's name "
            "(`grooverack ports` lists them; empty = the system default), or jack:PORT for a "
            "JACK output port (e.g. jack:system:capture_1)"),
        Key("input.audio_channel", 1, "channel", 1, 64, doc="the input channel heard (1 = first)"),
        Key("input.audio_rate", 48000, "Hz", 16000, 96000, doc="capture sample rate"),
        Key("input.audio_block", 256, "frames", 16, 4096, doc="capture block size"),
        Key("onsets.frame_ms", 30.0, "ms", 10.0, 100.0, doc="onset detector: analysis window"),
        Key("onsets.hop_ms", 5.0, "ms", 1.0, 20.0, doc="onset detector: one analysis frame every hop"),
        Key("onsets.threshold", 0.4, "dB", 0.1, 20.0,
            doc="onset detector: mean rise of the spectrum's bands over its moving median that "
                "makes an onset (+ spread x MAD; lower = more sensitive)"),
        Key("onsets.average_ms", 100.0, "ms", 10.0, 1000.0,
            doc="onset detector: length of the moving median and MAD (adaptive threshold)"),
        Key("onsets.combine_ms", 30.0, "ms", 5.0, 200.0,
            doc="onset detector: onsets closer than this are one (a flam, kick + hat together)"),
        Key("onsets.range_db", 80.0, "dB", 20.0, 100.0,
            doc="onset detector: what the spectrum keeps under the recent peak (quieter is noise)"),
        Key("onsets.velocity_ms", 10.0, "ms", 1.0, 50.0,
            doc="onset velocity: the peak level over this long after the onset"),
        Key("onsets.velocity_curve", 2.0, "", 0.5, 4.0,
            doc="onset velocity: level relative to the loudest recent onset = velocity ** curve "
                "(2 = amplitude as velocity squared, the GM habit; 1 = linear)"),
        Key("onsets.velocity_min", 0.1, "", 0.0, 1.0, doc="onset velocity of the softest onset"),
        Key("onsets.spread", 2.0, "", 0.0, 10.0,
            doc="onset detector: the threshold also rises by this times the median absolute "
                "deviation of the detection function over the moving median's window (room "
                "noise or a busy passage raises the bar; 0 = off)"),
        Key("onsets.rearm", 0.5, "", 0.1, 1.0,
            doc="onset detector: after an onset the next waits until the detection function "
                "fell under this fraction of that event's peak (one onset per event)"),
        Key("onsets.start_db", 2.0, "dB", 0.0, 20.0,
            doc="onset detector: a sound already there when the stream starts (room noise, a "
                "hum) is an onset only if its level changes this much over the next two frames, "
                "as a hit's does (0 = the stream's start is always an onset)"),
        Key("onsets.ring_margin", 0.0, "", 0.0, 10.0,
            doc="onset detector: the steady rise lowers each band's rise by this times that "
                "band's own jitter over the moving median's window (a ringing cymbal's or room "
                "noise's random rises are no event; 0 = off)"),
        Key("onsets.ring_gate", 0.05, "dB", 0.0, 5.0,
            doc="onset detector: far from the last onset, an onset also needs this much steady "
                "rise (mean over the bands, dB): one onset per ringing note"),
        Key("onsets.ring_after_ms", 400.0, "ms", 0.0, 5000.0,
            doc="onset detector: the steady-rise gate acts from this long after the last onset "
                "on (a groove's next hits are not held to it; 0 = always)"),
        # --- generation
        Key("generation.reencode", "bar", choices=("step", "bar", "loop"),
            doc="when the line's changes to the groove are re-encoded: at the next bar line "
                "(a drummer changes the pattern there; a line whose cycle does not divide the "
                "2-bar loop changes the groove at every onset), every step, or every loop; a "
                "groove knob takes effect at the next step either way"),
        Key("generation.seed", 0, "", 0, 2**31 - 1, doc="seed of sampling and random latents"),
        Key("generation.max_count", 32, "hits", 0, 32, doc="at most this many hits per voice per loop"),
        Key("generation.mode", "model", choices=("model", "rules"),
            doc="model = the VAE plays (rule patterns only while it is missing or fails to load: "
                "the fallback); rules = Euclidean rule patterns per voice, by the same density, "
                "mute and fill controls"),
        Key("generation.on_mute", "revoice", choices=("revoice", "silence"),
            doc="a voice group muted whole (mute_<group> buttons, or all its mute.<voice>): "
                "revoice = the model re-voices the groove onto the remaining instruments (voice "
                "redistribution; a model without it only silences); silence = its hits are "
                "simply not played"),
        Key("generation.kit_cap", 1.0, "x", 0.0, 4.0,
            doc="no voice plays more than this many times its style's real hits per loop at "
                "follow 1 (1 + kit_cap_ab times at follow 0; at density 0.5, scaled with "
                "density; 0 = no budget): a line cannot hand one drum a drummer's whole part"),
        Key("generation.kit_floor", 0.75, "x", 0.0, 1.0,
            doc="kick, snare, hats, crash and ride each play at least this many times their "
                "style's real hits per loop (rounded, at random with kit_random_round; at "
                "density 0.5, scaled with density; never over max_count or the kit_cap budget; "
                "the toms have kit_floor_fills), the cells the model scores highest added at the "
                "voice's own mean velocity: a line leaves the kit thin (no ride, few hats, a kick "
                "short at mid follow). 0 = no floor"),
        Key("generation.kit_cap_ab", 0.5, "x", 0.0, 1.0,
            doc="the kit_cap budget's extra room at follow 0 (A/B, the bank's real drummers' "
                "patterns): kit_cap x (1 + this x (1 - follow)) times the style's real hits"),
        Key("generation.kit_floor_fills", 0.0, "x", 0.0, 1.0,
            doc="the toms (fills) each play at least this many times their style's real hits "
                "per loop, on average over loops (as kit_floor; 0 = no floor for the toms)"),
        Key("generation.kit_random_round", False,
            doc="the kit_floor and kit_cap counts are rounded down or up at random each loop (a "
                "voice then averages floor x its real count over loops: 0.4 crashes a loop is a "
                "crash in 2 loops of 5); off = floors to the nearest count (under half a hit: "
                "none), budgets up"),
        Key("generation.colour_follow", 0.0, "x", 0.0, 1.0,
            doc="how far follow reaches the kit's colour (open hat, toms, crash, ride): those "
                "voices follow the input by follow x this, kick, snare and closed hat by follow. "
                "The input is one lane (a line, or any loop flattened): it says where the hits "
                "go, not which drums colour them, so at 0 (default) the colour is A/B's"),
        Key("generation.anchor", True,
            doc="a kick on each bar's one (the lowest voice that may play, when the kick is "
                "muted)"),
        # --- model
        Key("model.path", "", doc="model manifest (JSON); empty = the shipped models/grooverack.json"),
        Key("model.variant", "int8", choices=("int8", "fp32"), doc="which exported pair to run"),
        # --- outputs
        Key("outputs.count", 8, "outputs", 1, 16, doc="trigger + velocity output pairs"),
        Key("outputs.trigger_ms", 5.0, "ms", 1.0, 10.0, doc="trigger width"),
        Key("outputs.gate_mode", False, doc="gates held for the step instead of fixed-width triggers"),
        Key("outputs.velocity_volts", 8.0, "V", 0.0, 10.0, doc="velocity CV at full velocity"),
        Key("outputs.accent", False, doc="velocity CV jumps to full for hits above accent_threshold"),
        Key("outputs.accent_threshold", 0.8, "", 0.0, 1.0, doc="velocity that counts as an accent"),
        Key("outputs.clock_ppqn", 4, "PPQN", choices=(1, 2, 4, 8, 24, 48), doc="clock output resolution"),
        # --- desktop paths: MIDI (python-rtmidi) and ES-9 (sounddevice); a board file gives defaults
        Key("midi.api", "default", choices=("default", "alsa", "jack"), doc="MIDI system: default or alsa through python-rtmidi; jack = JACK clients of its own, every event at its JACK frame"),
        Key("rt.below_jack", False, doc="with --rt on JACK (MIDI, ES-9): grooverack's real-time threads just below JACK's client threads, as JACK's rule for helper threads has it, instead of SCHED_FIFO 80/75/70 above them (the default: closer to the clock on a 2-core box, benchmarks/README.md)"),
        Key("midi.input_port", "", doc="MIDI input: substring of a port name (empty = the board's, else a virtual port 'grooverack in')"),
        Key("midi.output_port", "", doc="MIDI output: substring of a port name (empty = the board's, else a virtual port 'grooverack out')"),
        Key("midi.input_channel", 0, "channel", 0, 16, doc="channel of input notes and CCs (0 = any)"),
        Key("midi.velocity_source", "velocity", choices=("velocity", "pitch"),
            doc="onset velocity from the note velocity, or from the note number (1 V/oct, C4 = 0 V) like the pitch CV"),
        Key("midi.profile", "poly2", choices=("poly2", "gm", "custom"),
            doc="output notes: poly2 (Notes mode: output n on note poly2_note+n-1), gm (GM drums), custom (midi.note.N)"),
        Key("midi.channel", 0, "channel", 0, 16, doc="output channel (0 = the profile's: 1 for poly2, 10 for gm)"),
        Key("midi.poly2_note", 36, "note", 0, 120, doc="poly2 profile: note of output 1 (a C: Notes mode ignores the octave)"),
        Key("midi.clock_out", False, doc="send MIDI clock (24 PPQN) and start/stop on the output port"),
        Key("es9.device", "", doc="ES-9: substring of the audio device name (empty = the board's)"),
        Key("es9.transport", "auto", choices=("auto", "jack", "portaudio"),
            doc="ES-9 audio: 'jack' = a JACK client of its own, every sample at its JACK frame; 'portaudio' = through PortAudio (ALSA, CoreAudio, or JACK); 'auto' = jack when a JACK server runs, else portaudio"),
        Key("es9.threshold", 1.0, "V", 0.1, 10.0, doc="gate/clock input: Schmitt trigger centre"),
        Key("es9.hysteresis", 0.5, "V", 0.0, 5.0, doc="gate/clock input: rises above threshold + h/2, falls below threshold - h/2"),
        Key("es9.cv_volts", 5.0, "V", 0.5, 10.0, doc="control CV inputs: this many volts = control at full"),
        Key("es9.cv_mode", "absolute", choices=("absolute", "offset"),
            doc="control CV inputs: absolute (0..cv_volts = the whole range) or offset (added to "
                "the configured value, +-cv_volts = the whole range, 0 V = no change)"),
        # --- where things live
        Key("board", "sim", doc="board definition: a name in hw/boards/ or a path to a TOML file"),
        Key("state.dir", "", doc="state, presets and calibration directory (empty = per-user default)"),
        Key("log.level", "info", choices=("debug", "info", "warning", "error")),
        # --- the drum voices of drums.wav and of `run --board sim --audio` (grooverack.drums)
        Key("audio.rate", 48000, "Hz", choices=(44100, 48000),
            doc="sample rate of drums.wav and of the live sound (--audio); the live stream "
                "takes the device's own rate when it refuses this one"),
        Key("audio.device", "", doc="--audio without a device: substring of the output device's "
                                     "name (empty = the system's default output)"),
        Key("audio.delay_ms", 0.0, "ms", 0.0, 500.0,
            doc="--audio: extra delay of the sound after the outputs, on top of the stream's "
                "own latency and one block (raise it where hits come late)"),
    ]
    default_map = {  # 9 voices onto 8 outputs: crash and ride share output 8 (the louder wins)
        "kick": 1, "snare": 2, "closed_hat": 3, "open_hat": 4,
        "low_tom": 5, "mid_tom": 6, "high_tom": 7, "crash": 8, "ride": 8,
    }
    for voice in VOICE_NAMES:
        k.append(Key(f"density.{voice}", 0.5, "", 0.0, 1.0, doc=f"density of {voice}"))
        k.append(Key(f"mute.{voice}", False, doc=f"mute {voice}"))
        k.append(Key(f"map.{voice}", default_map[voice], "output", 0, 16,
                     doc=f"output that plays {voice} (0 = none)"))
    for n in range(1, 17):
        k.append(Key(f"outputs.scale.{n}", 1.0, "", 0.0, 1.0, doc=f"velocity scale of output {n}"))
        k.append(Key(f"outputs.mode.{n}", "trigger", choices=OUTPUT_MODES,
                     doc=f"output {n}: a trigger of outputs.trigger_ms, or a gate held half a step"
                         " (outputs.gate_mode = true makes every output a gate)"))
        k.append(Key(f"midi.note.{n}", 35 + n, "note", 0, 127, doc=f"custom profile: note of output {n}"))
        k.append(Key(f"midi.note_channel.{n}", 0, "channel", 0, 16,
                     doc=f"custom profile: channel of output {n} (0 = midi.channel)"))
    k.append(Key("outputs.mode.clock", "trigger", choices=OUTPUT_MODES,
                 doc="clock out: triggers of outputs.trigger_ms, or a square wave (gate: half of "
                     "each pulse period)"))
    k.append(Key("outputs.mode.reset", "trigger", choices=OUTPUT_MODES,
                 doc="reset out: a trigger of outputs.trigger_ms, or a gate held half a step"))
    cc = {"follow": 20, "morph": 21, "uncertainty": 22, "density": 23, "quantize": 24, "swing": 25,
          "groove_velocity": 26, "groove_offset": 27, "tempo": 0}
    cc.update({f"density.{v}": 102 + i for i, v in enumerate(VOICE_NAMES)})
    for name, number in cc.items():
        k.append(Key(f"midi.cc.{name}", number, "CC", 0, 127, doc=f"MIDI CC that moves {name} (0 = none)"))
    # the fill gate over MIDI: a CC (value 64..127 = high, as a footswitch sends) and/or a note
    # (held = high; that note is then not an onset of the groove)
    k.append(Key("midi.cc.fill", 80, "CC", 0, 127,
                 doc="MIDI CC that is the fill gate: 64..127 high, 0..63 low (0 = none)"))
    k.append(Key("midi.fill_note", 0, "note", 0, 127,
                 doc="input note that is the fill gate while held, not an onset (0 = none)"))
    # the panel's buttons over MIDI. A press CC fires on a value 64..127 after one below 64 (a
    # momentary button's press; the first one counts). These default to none: a knob of another
    # mapping passing 64 would clear the groove or randomize a latent. Levels (the style, the
    # mute groups, the velocity scales) sit in free (undefined) CC ranges beside the controls'.
    for action in PRESS_ACTIONS:
        if not action.startswith("mute_"):
            k.append(Key(f"midi.cc.{action}", 0, "CC", 0, 127,
                         doc=f"MIDI CC that presses {action}: a value 64..127 after one below 64 "
                             "(0 = none)"))
    k.append(Key("midi.cc.style", 28, "CC", 0, 127,
                 doc="MIDI CC that chooses the style: 0..127 spread evenly over the styles the "
                     "model offers, 'any' first (0 = none)"))
    for i, group in enumerate(VOICE_GROUPS):
        voices = ", ".join(VOICE_GROUPS[group])
        k.append(Key(f"midi.cc.mute_{group}", 86 + i, "CC", 0, 127,
                     doc=f"MIDI CC that mutes the {group} group ({voices}): 64..127 muted, "
                         "0..63 playing, as a toggle button sends (0 = none)"))
    for n in range(1, 17):
        k.append(Key(f"midi.cc.scale.{n}", 110 + n if n <= 8 else 0, "CC", 0, 127,
                     doc=f"MIDI CC that moves outputs.scale.{n}, the velocity scale of output {n} "
                         "(0 = none)"))
    # ... and as notes: a note-on presses (a mute note toggles its group, as the panel's button
    # does); that note is then not an onset of the groove
    for action in PRESS_ACTIONS:
        k.append(Key(f"midi.button_note.{action}", 0, "note", 0, 127,
                     doc=f"input note whose note-on presses {action}, not an onset (0 = none)"))
    return k


SCHEMA: dict[str, Key] = {key.name: key for key in _keys()}

# The CV jacks of the virtual patch and a --controls CSV (volts): summed with the control's pot
# as the board file says (`controls.<name>.cv` + `cv_per_volt`).
CV_JACKS: tuple[str, ...] = ("cv.follow", "cv.morph", "cv.uncertainty", "cv.density")
CV_VOLTS = 12.0  # a CV jack takes -12..+12 V (the rails)

# Controls a panel, CV, or MIDI CC may move while playing (a subset of the schema).
CONTROLS: tuple[str, ...] = (
    "follow", "morph", "uncertainty", "density", "quantize", "tempo", "swing",
    "groove_velocity", "groove_offset",
    *(f"density.{v}" for v in VOICE_NAMES),
)


def register(*keys: Key) -> None:
    """Add keys owned by a back end (its module calls this at import)."""
    for key in keys:
        if key.name in SCHEMA and SCHEMA[key.name] != key:
            raise ValueError(f"config key {key.name!r} registered twice with different definitions")
        SCHEMA[key.name] = key


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in table.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            yield from _flatten(value, full + ".")
        else:
            yield full, value


def canonical_key(name: str) -> str:
    """A key as the schema names it: TOML cannot hold both `density = x` and `density.kick = y`,
    so a file writes `density.all`, which is `density`."""
    if name.endswith(".all") and name[:-4] in SCHEMA:
        return name[:-4]
    return name


def _lookup(name: str, source: str = "") -> Key:
    name = canonical_key(name)
    try:
        return SCHEMA[name]
    except KeyError:
        where = f" in {source}" if source else ""
        raise ConfigError(f"unknown config key {name!r}{where}; {_allowed_keys(name)}") from None


def _allowed_keys(name: str) -> str:
    """The closest keys to `name`, and the key families: what an unknown-key message offers."""
    near = [k for k in SCHEMA if k.split(".")[-1] == name.split(".")[-1]]
    near += [k for k in difflib.get_close_matches(name, list(SCHEMA), n=3, cutoff=0.6)
             if k not in near]
    hint = f"did you mean {', '.join(near[:3])}? " if near else ""
    plain = [k for k in SCHEMA if "." not in k]
    families = sorted({k.split(".")[0] + ".*" for k in SCHEMA if "." in k})
    return (f"{hint}allowed: {', '.join(plain)}, or a key of {', '.join(families)} "
            "(`grooverack config` lists every key)")


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with the value read as a TOML literal when it is one, else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    name, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name, value


class Settings(Mapping[str, Any]):
    """Validated configuration values, every schema key present."""

    def __init__(self, values: Mapping[str, Any] | None = None, source: str = "") -> None:
        self._values: dict[str, Any] = {name: key.default for name, key in SCHEMA.items()}
        # keys given on the command line (`--set`): they win over the saved performance state
        self.pinned: set[str] = set()
        # `run --fresh`: play from the defaults, neither restore nor overwrite the saved state
        self.fresh = False
        for name, value in (values or {}).items():
            self.set(name, value, source)

    def set(self, name: str, value: Any, source: str = "") -> Any:
        key = _lookup(name, source)
        self._values[key.name] = key.validate(value, source)
        if source == "--set":
            self.pinned.add(key.name)
        return self._values[key.name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._values and name in SCHEMA:  # registered after this was made
            self._values[name] = SCHEMA[name].default
        try:
            return self._values[name]
        except KeyError:
            raise ConfigError(f"unknown config key {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def copy(self) -> Settings:
        new = Settings()
        new._values = dict(self._values)
        new.pinned, new.fresh = set(self.pinned), self.fresh
        return new

    def to_toml(self) -> str:
        """Every key with its default, unit and range: a commented example configuration."""
        lines = ["# grooverack configuration: every key, its default, unit and allowed values", ""]
        for name, key in SCHEMA.items():
            lines.append(f"# {key.doc} ({key.allowed()})" if key.doc else f"# {key.allowed()}")
            toml_name = f"{name}.all" if any(k.startswith(name + ".") for k in SCHEMA) else name
            lines.append(f"{_toml_key(toml_name)} = {_toml_value(self[name])}")
        return "\n".join(lines) + "\n"


def _toml_key(name: str) -> str:
    return ".".join(part if part.replace("_", "").isalnum() and not part.isdigit() else f'"{part}"'
                    for part in name.split("."))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def load_settings(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Settings:
    """Read a TOML configuration file (optional) and apply `key=value` overrides."""
    settings = Settings()
    if path is not None:
        path = Path(path)
        text = read_text_bounded(path, "config file", ConfigError)  # BOM and CRLF accepted
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for name, value in _flatten(table):
            settings.set(name, value, str(path))
    for text in overrides:
        name, value = parse_override(text)
        settings.set(name, value, "--set")
    return settings


def describe() -> str:
    """A table of every key for `grooverack config --list`."""
    rows = [f"{name:<28} {SCHEMA[name].default!r:<12} {SCHEMA[name].allowed()}" for name in SCHEMA]
    return "\n".join(rows)


def make_settings(args: Any) -> Settings:
    """The settings of a command line: `--config FILE`, each `--set key=value`, `--seed`."""
    settings = load_settings(args.config, args.overrides)
    if getattr(args, "seed", None) is not None:
        settings.set("generation.seed", args.seed, "--seed")
    settings.fresh = bool(getattr(args, "fresh", False))
    return settings
