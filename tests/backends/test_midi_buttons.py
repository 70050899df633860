"""The panel's buttons over MIDI (issue 19, item 5), without a MIDI system: press CCs and notes
become `Engine.press`, the style CC picks an offered style by position, mute-group CCs are
levels (a toggle button's two values), velocity-scale CCs move `outputs.scale.N`; the notes out
change accordingly. The config keys are checked (ranges, one meaning per CC and per note).
The same through a real JACK server: tests/backends/test_midi_jack.py."""

from __future__ import annotations

import pytest
from grooverack.backends.midi import MidiInputHandler, MidiOutput, MidiSender
from grooverack.boards.midi import midi_options
from grooverack.config import PRESS_ACTIONS, SCHEMA, Settings, load_settings
from grooverack.errors import ConfigError
from grooverack.runtime.serve import make_engine
from grooverack.voices import VOICE_GROUPS

TICK = 0.01  # s between the engine's passes


def cc(number: int, value: int, channel: int = 0) -> bytes:
    return bytes((0xB0 | channel, number, value))


class Rig:
    """Engine (synchronous, the shipped model) + MIDI input handler + MIDI output (poly2: output
    n -> note 35 + n, channel 1), its messages kept queued for inspection."""

    def __init__(self, *overrides: str) -> None:
        self.settings = load_settings(overrides=["clock.source=internal", "tempo=120",
                                                 "density=1.0", "uncertainty=0.0",
                                                 "midi.profile=poly2", *overrides])
        self.engine = make_engine(self.settings, threaded=False)
        self.options = midi_options(self.settings)
        self.handler = MidiInputHandler(self.engine, self.options)
        self.sender = MidiSender()  # not started: every message stays queued
        self.output = MidiOutput(self.options, self.sender)
        self.t = 0.0
        self.engine.start(0.0)

    def play(self, until: float, messages=()) -> None:
        """Run to `until`, feeding (time, bytes) messages at their times."""
        todo = sorted(messages)
        while self.t < until:
            self.t += TICK
            while todo and todo[0][0] <= self.t:
                t, data = todo.pop(0)
                self.handler.feed(t, data)
            for event in self.engine.advance(self.t):
                self.output.play(event)

    def note_ons(self, note: int, start: float = 0.0, end: float = 1e9) -> list[int]:
        """Velocities of the note-ons of `note` due in [start, end)."""
        return [d[2] for t, d in self.sender.queued()
                if d[0] == 0x90 and d[1] == note and start <= t < end]

    def close(self) -> None:
        self.engine.close()


@pytest.fixture
def rig():
    made = []

    def make(*overrides: str) -> Rig:
        made.append(Rig(*overrides))
        return made[-1]

    yield make
    for r in made:
        r.close()


# --- config keys

def test_every_button_has_a_cc_and_a_note_key_with_a_doc():
    for action in PRESS_ACTIONS:
        key = SCHEMA[f"midi.cc.{action}"]
        assert (key.low, key.high, key.unit) == (0, 127, "CC") and key.doc
        assert SCHEMA[f"midi.button_note.{action}"].doc
        assert key.default == 0 or action.startswith("mute_")  # presses: none by default
    assert "midi.cc.shift" not in SCHEMA and "midi.button_note.shift" not in SCHEMA
    assert SCHEMA["midi.cc.style"].default == 28
    assert [SCHEMA[f"midi.cc.mute_{g}"].default for g in VOICE_GROUPS] == [86, 87, 88, 89, 90]
    assert [SCHEMA[f"midi.cc.scale.{n}"].default for n in (1, 8, 9, 16)] == [111, 118, 0, 0]
    midi_options(Settings())  # the defaults share no CC


@pytest.mark.parametrize("overrides, match", [
    ({"midi.cc.style": 20}, r"config keys midi\.cc\.follow and midi\.cc\.style both use CC 20"),
    ({"midi.cc.next_style": 86},
     r"midi\.cc\.next_style and midi\.cc\.mute_kick both use CC 86; allowed: one control per CC"),
    ({"midi.cc.scale.9": 111}, r"midi\.cc\.scale\.1 and midi\.cc\.scale\.9 both use CC 111"),
    ({"midi.cc.clear": 80}, r"midi\.cc\.fill and midi\.cc\.clear both use CC 80"),
    ({"midi.fill_note": 40, "midi.button_note.mute_toms": 40},
     r"midi\.fill_note and midi\.button_note\.mute_toms both use note 40; allowed: one action"),
    ({"midi.button_note.record": 50, "midi.button_note.clear": 50},
     r"midi\.button_note\.record and midi\.button_note\.clear both use note 50"),
])
def test_one_meaning_per_cc_and_per_note(overrides, match):
    with pytest.raises(ConfigError, match=match):
        midi_options(Settings(overrides))


@pytest.mark.parametrize("key, value", [("midi.cc.scale.3", 128), ("midi.cc.mute_hats", -1),
                                        ("midi.cc.style", 1.5), ("midi.button_note.clear", 200)])
def test_out_of_range_names_key_value_and_range(key, value):
    with pytest.raises(ConfigError) as err:
        Settings({key: value})
    text = str(err.value)
    assert repr(key) in text and repr(value) in text and "from 0 to 127" in text


# --- presses

def test_a_press_cc_fires_on_64_and_up_after_a_value_below_64(rig):
    r = rig("midi.cc.next_style=40", "midi.cc.randomize_a=41")
    offered = r.engine.offered_styles
    z = r.engine.generator.z_a.copy()
    r.handler.feed(0.0, cc(40, 127))   # the first one counts
    r.handler.feed(0.1, cc(40, 100))   # still held: nothing
    r.handler.feed(0.2, cc(40, 0))     # released
    r.handler.feed(0.3, cc(40, 64))    # pressed again
    r.handler.feed(0.4, cc(40, 63))
    assert [(t, a, res) for t, a, res in r.handler.presses] == [
        (0.0, "next_style", offered[1]), (0.3, "next_style", offered[2])]
    assert r.engine.settings["genre"] == offered[2]
    r.handler.feed(0.5, cc(41, 127))
    assert (r.engine.generator.z_a != z).any()  # randomize_a pressed
    assert r.handler.counts["press"] == 3


def test_a_press_note_presses_and_is_not_an_onset(rig):
    r = rig("midi.button_note.mute_snare=50", "midi.button_note.previous_style=51")
    r.handler.feed(0.0, bytes((0x90, 50, 100)))
    r.handler.feed(0.1, bytes((0x80, 50, 0)))   # the release: nothing
    assert all(r.engine.settings[f"mute.{v}"] for v in VOICE_GROUPS["snare"])
    r.handler.feed(0.2, bytes((0x90, 50, 90)))  # a toggle, as the panel's button
    assert not r.engine.settings["mute.snare"]
    r.handler.feed(0.3, bytes((0x90, 51, 90)))
    assert r.engine.settings["genre"] == r.engine.offered_styles[-1]
    r.handler.feed(0.4, bytes((0x90, 52, 90)))  # any other note: an onset
    assert r.handler.counts == {"press": 3, "note": 1}


def test_a_press_that_cannot_act_is_logged_not_raised(rig, caplog):
    r = rig("midi.cc.recall_preset=42", "midi.cc.save_preset=43")
    r.handler.feed(0.0, cc(42, 127))           # slot 1 is empty
    r.handler.feed(0.1, cc(42, 0))
    r.handler.feed(0.2, cc(43, 127))           # saved
    r.handler.feed(0.3, cc(42, 127))           # recalled
    results = [res for _, _, res in r.handler.presses]
    assert results[0] is None and "recall_preset: preset 1 is empty" in caplog.text
    assert results[1]["slot"] == 1 and results[2]["slot"] == 1


# --- levels: style, mute groups, velocity scale

def test_the_style_cc_spreads_0_to_127_over_the_offered_styles(rig):
    r = rig()
    offered = r.engine.offered_styles
    chosen = []
    for value in range(128):
        r.handler.feed(value * 0.01, cc(28, value))
        chosen.append(r.engine.settings["genre"])
    assert chosen[0] == "any" and chosen[127] == offered[-1] and "gospel" not in chosen
    order = [s for i, s in enumerate(chosen) if i == 0 or chosen[i - 1] != s]
    assert order == list(offered)  # each offered style once, in order
    sizes = [chosen.count(s) for s in offered]
    assert max(sizes) - min(sizes) <= 1  # evenly spread
    r.play(1.0)
    assert r.engine.pattern.info["genre"] == r.engine.runner.genres.index(offered[-1])


def test_the_style_cc_asks_for_nothing_while_its_style_stays(rig):
    r = rig()
    calls = []
    set_control = r.engine.set_control
    r.engine.set_control = lambda name, value: calls.append(name) or set_control(name, value)
    for value in (0, 1, 2, 3):  # all 'any'
        r.handler.feed(0.0, cc(28, value))
    assert calls == [] and r.handler.counts["style"] == 4


def test_no_style_cc_leaves_cc_0_alone(rig):
    r = rig("midi.cc.style=0")
    r.handler.feed(0.0, cc(0, 127))  # bank select: not the style
    assert r.engine.settings["genre"] == "any" and not r.handler.counts


def test_a_mute_cc_is_a_level_and_its_groups_notes_stop(rig):
    r = rig("generation.on_mute=silence")
    r.play(2.0)
    assert r.note_ons(36), "no kick before the mute"
    # CC 86 (kick) up at 2 s: muted; a repeat changes nothing; CC 88 (hats) up then down
    r.play(5.0, [(2.0, cc(86, 127)), (2.5, cc(86, 100)), (3.0, cc(88, 127)),
                 (4.0, cc(88, 0))])
    assert r.engine.settings["mute.kick"] and not r.engine.settings["mute.closed_hat"]
    assert not r.note_ons(36, 2.3)                   # from the next steps on: no kick
    assert not r.note_ons(38, 3.3, 4.0)              # hats (closed 38, open 39) muted meanwhile
    assert not r.note_ons(39, 3.3, 4.0)
    assert r.note_ons(38, 4.3) and r.note_ons(37, 2.3)  # hats back, the snare played on
    r.play(6.0, [(5.0, cc(86, 0))])
    assert r.note_ons(36, 5.3)
    assert r.handler.counts["mute"] == 5


def test_a_scale_cc_scales_its_outputs_velocities(rig):
    r = rig("midi.cc.scale.2=70")
    r.play(2.0)
    before = r.note_ons(37)  # the snare, output 2
    assert max(before) > 40
    r.play(4.0, [(2.0, cc(70, 32))])
    assert r.engine.settings["outputs.scale.2"] == pytest.approx(32 / 127)
    after = r.note_ons(37, 2.3)
    assert after and max(after) <= 32
    assert max(r.note_ons(36, 2.3)) > 32  # output 1 untouched
    r.handler.feed(4.0, cc(111, 0))  # scale.1 at its default CC 111
    assert r.engine.settings["outputs.scale.1"] == 0.0


def test_cc_and_notes_from_another_channel_are_ignored(rig):
    r = rig("midi.input_channel=2", "midi.cc.clear=44", "midi.button_note.mute_kick=45")
    r.handler.feed(0.0, cc(86, 127))               # channel 1
    r.handler.feed(0.0, bytes((0x90, 45, 100)))
    r.handler.feed(0.0, cc(44, 127))
    assert not r.engine.settings["mute.kick"] and not r.handler.presses
    r.handler.feed(0.1, cc(86, 127, channel=1))    # channel 2
    assert r.engine.settings["mute.kick"]
