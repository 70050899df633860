"""MIDI input: complete messages -> engine calls, on the engine loop's thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from grooverack.backends.midi.parse import (
    ControlChange,
    MidiParser,
    NoteOff,
    NoteOn,
    Realtime,
    SongPosition,
    decode,
)
from grooverack.boards.midi import MidiOptions
from grooverack.controls import CC_MAX, ControlRange, cc_position
from grooverack.engine.seam import EngineSeam
from grooverack.voices import VOICE_GROUPS


class MidiInputHandler:
    """Turns complete MIDI messages into engine calls (on the engine loop's thread)."""

    def __init__(self, engine: EngineSeam, options: MidiOptions) -> None:
        self.engine = engine
        self.options = options
        self.parser = MidiParser()
        self.counts: dict[str, int] = {}
        self.ranges: dict[str, ControlRange] = {}  # CC'd controls' ranges (`grooverack.controls`)
        self._high: dict[int, bool] = {}  # press CC -> its last value was 64..127
        self.presses: deque[tuple[float, str, Any]] = deque(maxlen=10_000)  # (t, action, result)
        # called with t before a Start / Stop / Continue / Song Position is handed on: the back
        # end drops what the old phase queued past it (`MidiOutput.transport`)
        self.on_transport: Callable[[float], Any] | None = None
        # input.source = audio: the onsets are the ones heard in audio only; a note-on is
        # counted ("note_ignored") and plays nothing (fill, press notes, CCs, clock still act)
        self.notes_are_onsets = True

    def feed(self, t: float, data: bytes) -> None:
        for msg in self.parser.iter_feed(data):
            self.handle(t, msg)

    def handle(self, t: float, msg: bytes) -> None:
        event = decode(msg)
        eng, opts = self.engine, self.options
        if isinstance(event, Realtime):
            self._count(event.kind)
            if event.kind in ("active_sensing", "reset"):  # (their time still counted)
                return
            if event.kind != "clock" and self.on_transport is not None:
                self.on_transport(t)
            if event.kind == "clock":
                eng.midi_clock(t)
            elif event.kind == "start":
                eng.start(t, midi=True)
            elif event.kind == "stop":
                eng.stop(t)
            elif event.kind == "continue":
                eng.continue_(t, midi=True)
            return
        if isinstance(event, SongPosition):
            self._count("song_position")
            if self.on_transport is not None:
                self.on_transport(t)
            eng.song_position(t, event.sixteenths)
            return
        if not isinstance(event, NoteOn | NoteOff | ControlChange):
            return
        if opts.input_channel and event.channel != opts.input_channel - 1:
            return
        if isinstance(event, NoteOn | NoteOff) and opts.fill_note \
                and event.note == opts.fill_note:
            self._count("fill")
            eng.fill(t, isinstance(event, NoteOn))  # held = the fill gate high
            return
        if isinstance(event, ControlChange) and opts.fill_cc and event.control == opts.fill_cc:
            self._count("fill")
            eng.fill(t, event.value >= 64)
            return
        if isinstance(event, NoteOn | NoteOff) and event.note in opts.press_notes:
            if isinstance(event, NoteOn):  # (its note-off: nothing, as a button's release)
                self._press(t, opts.press_notes[event.note])
            return
        if isinstance(event, ControlChange) and self._button_cc(t, event):
            return
        if isinstance(event, NoteOn) and not self.notes_are_onsets:
            self._count("note_ignored")
        elif isinstance(event, NoteOn):
            self._count("note")
            if opts.velocity_source == "pitch":  # note number as 1 V/oct pitch, C4 (60) = 0 V
                eng.onset(t, pitch_volts=(event.note - 60) / 12.0)
            else:
                eng.onset(t, velocity=event.velocity / 127.0)
        elif isinstance(event, ControlChange):
            control = opts.cc.get(event.control)
            if control is not None:
                self._count("cc")
                rng = self.ranges.get(control)
                if rng is None:
                    rng = self.ranges[control] = ControlRange.for_key(control)
                eng.set_control(control, rng.value(cc_position(event.value)))

    def _button_cc(self, t: float, event: ControlChange) -> bool:
        """A press CC, a mute group's CC or the style CC: acted on, True; else False."""
        opts, eng, number, high = self.options, self.engine, event.control, event.value >= 64
        if number in opts.press_cc:
            was, self._high[number] = self._high.get(number, False), high
            if high and not was:  # 64..127 after a value below 64 (or the first one)
                self._press(t, opts.press_cc[number])
            return True
        if number in opts.mute_cc:
            self._count("mute")
            keys = [f"mute.{v}" for v in VOICE_GROUPS[opts.mute_cc[number]]]
            if any(eng.settings[k] != high for k in keys):  # a repeated value asks for nothing
                for key in keys:
                    eng.set_control(key, high)
            return True
        if opts.style_cc and number == opts.style_cc:  # (0 = none: CC 0 is bank select)
            self._count("style")
            styles = eng.offered_styles
            style = styles[min(len(styles) - 1, event.value * len(styles) // (CC_MAX + 1))]
            if eng.settings["genre"] != style:
                eng.set_control("genre", style)
            return True
        return False

    def _press(self, t: float, action: str) -> None:
        """A panel button pressed from MIDI: `Engine.press`, as the panel's buttons do (a press
        that cannot act, an empty preset slot, is logged by the engine and returns None)."""
        self._count("press")
        self.presses.append((t, action, self.engine.press(action)))

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
