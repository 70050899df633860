"""The drum vocabulary shared by training, the model runner, the engine and every back end.

The 9-voice "Roland reduced" mapping of the Groove MIDI Dataset paper, in model order.
"""

from __future__ import annotations

STEPS = 32  # 2 bars of 4/4 on the 16th grid
STEPS_PER_BAR = 16
STEPS_PER_BEAT = 4
NUM_VOICES = 9

VOICE_NAMES: tuple[str, ...] = (
    "kick",
    "snare",
    "closed_hat",
    "open_hat",
    "low_tom",
    "mid_tom",
    "high_tom",
    "crash",
    "ride",
)

# MIDI note numbers folded into each voice (GMD reduced mapping).
VOICE_SOURCE_NOTES: tuple[tuple[int, ...], ...] = (
    (36,),
    (38, 37, 40),
    (42, 22, 44),
    (46, 26),
    (43, 58),
    (47, 45),
    (50, 48),
    (49, 52, 55, 57),
    (51, 53, 59),
)

# The note each voice plays back as (GM drums, channel 10).
VOICE_GM_NOTES: tuple[int, ...] = (36, 38, 42, 46, 43, 47, 50, 49, 51)

NOTE_TO_VOICE: dict[int, int] = {
    note: voice for voice, notes in enumerate(VOICE_SOURCE_NOTES) for note in notes
}


# The voice groups a panel mutes together (the GrooveTransformer plugin's mute groups), in panel
# order: group name -> the voices in it.
VOICE_GROUPS: dict[str, tuple[str, ...]] = {
    "kick": ("kick",),
    "snare": ("snare",),
    "hats": ("closed_hat", "open_hat"),
    "toms": ("low_tom", "mid_tom", "high_tom"),
    "cymbals": ("crash", "ride"),
}
