"""The `[midi]` table of a board file over the `midi.*` config keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grooverack.config import CONTROLS, SCHEMA, Settings
from grooverack.errors import ConfigError

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


def midi_options(settings: Settings, board: Any = None) -> MidiOptions:
    """The effective MIDI options: a config key set away from its default wins over the board's
    `[midi]` table, which wins over the default. Unknown board keys are refused."""
    table = dict(board.data.get("midi", {})) if board is not None else {}
    where = str(getattr(board, "path", None) or getattr(board, "name", "board"))
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
    cc: dict[int, str] = {}
    for control in CONTROLS:
        number = settings[f"midi.cc.{control}"]
        if number:
            if number in cc:
                raise ConfigError(f"config keys midi.cc.{cc[number]} and midi.cc.{control} both "
                                  f"use CC {number}; allowed: one control per CC")
            cc[number] = control
    fill_cc = settings["midi.cc.fill"]
    if fill_cc and fill_cc in cc:
        raise ConfigError(f"config keys midi.cc.{cc[fill_cc]} and midi.cc.fill both use CC "
                          f"{fill_cc}; allowed: one control per CC")
    return MidiOptions(notes=notes, cc=cc, fill_cc=fill_cc, **values)
