"""The `[midi]` table of a board file over the `midi.*` config keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grooverack.config import CONTROLS, PRESS_ACTIONS, SCHEMA, Settings
from grooverack.errors import ConfigError
from grooverack.voices import VOICE_GROUPS

# Board `[midi]` keys: the same names as the config keys `midi.<key>`.
BOARD_KEYS = ("api", "input_port", "output_port", "input_channel", "velocity_source", "profile",
              "channel", "poly2_note", "clock_out", "fill_note")


# --- options: config keys over the board's [midi] table

@dataclass(frozen=True)
class MidiOptions:
    api: str = "default"
    input_port: str = ""
    output_port: str = ""
    input_channel: int = 0  # 0 = any, else 1..16
    velocity_source: str = "velocity"
    profile: str = "poly2"
    channel: int = 0
    poly2_note: int = 36
    clock_out: bool = False
    notes: tuple[tuple[int, int], ...] = ()  # custom profile: (channel 1..16 or 0, note) per output
    cc: Mapping[int, str] = field(default_factory=dict)  # CC number -> control name
    fill_note: int = 0  # input note that holds the fill gate (0 = none)
    fill_cc: int = 0    # CC that is the fill gate, >= 64 high (0 = none)
    press_cc: Mapping[int, str] = field(default_factory=dict)  # CC -> button pressed at 64 up
    mute_cc: Mapping[int, str] = field(default_factory=dict)   # CC -> voice group, >= 64 muted
    style_cc: int = 0   # CC whose 0..127 spreads over the offered styles (0 = none)
    press_notes: Mapping[int, str] = field(default_factory=dict)  # note -> button its note-on presses


def midi_options(settings: Settings, board: Any = None) -> MidiOptions:
    """The effective MIDI options: a config key set away from its default wins over the board's
    `[midi]` table, which wins over the default. Unknown board keys are refused."""
    table = board.data.get("midi", {}) if board is not None else {}
    where = str(getattr(board, "path", None) or getattr(board, "name", "board"))
    if not isinstance(table, dict):
        raise ConfigError(f"board {where}: key 'midi' must be a table, found {table!r}")
    for key in table:
        if key not in BOARD_KEYS:
            raise ConfigError(f"board {where}: unknown key 'midi.{key}'; allowed: "
                              + ", ".join(BOARD_KEYS))
    values = {}
    for key in BOARD_KEYS:
        name = f"midi.{key}"
        value = settings[name]
        if value == SCHEMA[name].default and key in table:
            value = SCHEMA[name].validate(table[key], f"{where} [midi]")
        values[key] = value
    notes = tuple((settings[f"midi.note_channel.{n}"], settings[f"midi.note.{n}"])
                  for n in range(1, 17))
    # every CC one meaning: the controls (and the velocity scales), the fill gate, the presses,
    # the mute groups, the style
    users: dict[int, str] = {}  # CC -> the config key that claims it

    def claim(key: str) -> int:
        number = settings[key]
        if number and number in users:
            raise ConfigError(f"config keys {users[number]} and {key} both use CC {number}; "
                              "allowed: one control per CC")
        if number:
            users[number] = key
        return number

    cc: dict[int, str] = {}
    for control in (*CONTROLS, *(f"scale.{n}" for n in range(1, 17))):
        if number := claim(f"midi.cc.{control}"):
            cc[number] = f"outputs.{control}" if control.startswith("scale.") else control
    fill_cc = claim("midi.cc.fill")
    press_cc = {number: action for action in PRESS_ACTIONS if not action.startswith("mute_")
                if (number := claim(f"midi.cc.{action}"))}
    mute_cc = {number: group for group in VOICE_GROUPS
               if (number := claim(f"midi.cc.mute_{group}"))}
    style_cc = claim("midi.cc.style")
    # every note one meaning too: the fill gate's, a press's (any other note is an onset)
    notes_used = {values["fill_note"]: "midi.fill_note"} if values["fill_note"] else {}
    press_notes: dict[int, str] = {}
    for action in PRESS_ACTIONS:
        key = f"midi.button_note.{action}"
        note = settings[key]
        if not note:
            continue
        if note in notes_used:
            raise ConfigError(f"config keys {notes_used[note]} and {key} both use note {note}; "
                              "allowed: one action per note")
        notes_used[note] = key
        press_notes[note] = action
    return MidiOptions(notes=notes, cc=cc, fill_cc=fill_cc, press_cc=press_cc,
                       mute_cc=mute_cc, style_cc=style_cc, press_notes=press_notes,
                       **values)
