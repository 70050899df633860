"""CV inputs of the panel controls (issue 19 item 1): FOLLOW, UNCERT, DENSITY and MORPH CV on the
emulated reference board (the second MCP3208 on CE1, read through the byte-exact emulator), the
pot + cv_per_volt x CV sum and clamp, `cv.<control>` in --controls CSVs and the direct board,
the ES-9's offset mode and the MIDI CC numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from grooverack.backends.midi import MidiInputHandler
from grooverack.backends.panel.simboard import SimPanelBoard
from grooverack.boards.board import load_board
from grooverack.boards.midi import midi_options
from grooverack.config import CV_JACKS, Settings
from grooverack.controls import ControlRange, ControlReader
from grooverack.errors import BoardError, SourceError
from grooverack.sim.direct import DirectBoard
from grooverack.sim.patch import OutputRecorder, jack_value
from grooverack.sim.sources import load_controls

CONTROL_OF = {"cv.follow": "follow", "cv.morph": "morph", "cv.uncertainty": "uncertainty",
              "cv.density": "density"}


class FakeEngine:
    """What the panel back end calls, kept: set_control values (no model, no player)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.controls: list[tuple[str, float]] = []

    def set_control(self, name, value):
        self.controls.append((name, value))
        self.settings.set(name, value)
        return value

    def advance(self, t_until):
        return []

    def start(self, t):
        pass

    def press(self, action):
        return None

    def onset(self, t, velocity=None, pitch_volts=None):
        pass

    def clock_pulse(self, t):
        pass

    def reset(self, t):
        pass


def sim_board(**values):
    settings = Settings({"follow": 0.5, "morph": 0.5, "uncertainty": 0.5, "density": 0.5,
                         **values})
    engine = FakeEngine(settings)
    board = SimPanelBoard("sim", settings, OutputRecorder(), engine)
    board.start(0.0)
    return board, engine


def test_reference_board_has_a_second_mcp3208_on_ce1_for_the_control_cvs():
    b = load_board("reference")
    adc2 = b.chips["adc2"]
    assert (adc2.part, adc2.bus, adc2.bus_number, adc2.device) == ("mcp3208", "spi", 0, 1)
    for control in ("follow", "morph", "uncertainty", "density"):
        c = b.controls[control]
        assert c.cv in b.inputs and c.cv_per_volt == pytest.approx(0.1)
    assert {b.inputs[n].chip for n in ("follow_cv", "uncertainty_cv", "density_cv")} == {"adc2"}
    # the same +-5 V inverting front end as MORPH CV: 0 V = mid code
    for name in ("follow_cv", "uncertainty_cv", "density_cv", "morph_cv"):
        item = b.inputs[name]
        assert item.gain * 2048 + item.offset == pytest.approx(0.0)


@pytest.mark.parametrize("jack", CV_JACKS)
def test_each_cv_jack_moves_its_control_through_the_mcp3208_bytes(jack):
    board, engine = sim_board()
    control = CONTROL_OF[jack]
    cv = board.board.controls[control].cv
    item = board.board.inputs[cv]
    frames: list[bytes] = []
    chip = board.world.spis[item.chip].chip
    real = chip.transfer

    def logged(data: bytes) -> bytes:
        frames.append(bytes(data))
        return real(data)

    chip.transfer = logged
    board.advance(0.2)
    engine.controls.clear()
    board.apply(0.2, jack, 2.0)  # +2 V: pot 0.5 + 0.1 x 2 = 0.7
    board.advance(1.0)
    moved = [v for name, v in engine.controls if name == control]
    assert moved and moved[-1] == pytest.approx(0.7, abs=0.005)
    others = {name for name, _ in engine.controls} - {control}
    assert not others  # no other control moved
    # the real MCP3208 command: start + single-ended + channel, 3 bytes per conversion
    ch = item.channel
    command = bytes([0x06 | (ch >> 2), (ch & 3) << 6])
    assert any(f[:2] == command and len(f) == 3 for f in frames)
    # the pin saw the front end's volts: 1.65 - 0.33 x 2 V (inverting, 33k/100k)
    assert board.world.chips[item.chip].pin_volts(ch) == pytest.approx(1.65 - 0.33 * 2.0, abs=0.01)


@pytest.mark.parametrize("pot, volts, expected", [(0.8, 5.0, 1.0), (0.2, -5.0, 0.0),
                                                  (0.5, -2.5, 0.25), (0.0, 5.0, 0.5)])
def test_cv_is_summed_with_the_pot_and_clamped(pot, volts, expected):
    board, engine = sim_board(density=pot)
    board.advance(0.2)
    board.apply(0.2, "cv.density", volts)
    board.advance(1.0)
    assert engine.settings["density"] == pytest.approx(expected, abs=0.005)


def test_the_sum_rule_in_the_one_door():
    """control = low + (high - low) * clamp(pot + cv_per_volt * volts, 0, 1); a negative
    cv_per_volt is an inverting attenuverter."""
    rng = ControlRange.for_key("tempo", 20.0, 300.0)
    for per_volt, pot, volts, position in [(0.1, 0.5, 2.0, 0.7), (-0.1, 0.5, 2.0, 0.3),
                                           (0.1, 0.9, 4.0, 1.0), (-0.2, 0.1, 3.0, 0.0)]:
        reader = ControlReader(rng, cv_per_volt=per_volt)
        reader.pot(pot)
        reader.cv(volts)
        assert reader.read() == pytest.approx(20.0 + 280.0 * position)


def test_an_unpatched_cv_leaves_the_pot_alone():
    board, engine = sim_board(follow=0.3)
    board.advance(1.0)
    assert not [v for name, v in engine.controls if name == "follow"]


def test_controls_csv_takes_cv_jacks_in_volts(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("time,key,value\n1s,cv.follow,-2.5\n2,cv.density,4\n", encoding="utf-8")
    changes = load_controls(path)
    assert [(c.key, c.value) for c in changes] == [("cv.follow", -2.5), ("cv.density", 4.0)]
    assert jack_value("cv.follow", -2.5) == -2.5  # volts, not a pot position
    for bad in ("13", "nan", "loud"):
        path.write_text(f"1s,cv.morph,{bad}\n", encoding="utf-8")
        with pytest.raises(SourceError, match=r"cv.morph = .*allowed: volts from -12 to 12"):
            load_controls(path)
    path.write_text("1s,cv.tempo,1\n", encoding="utf-8")
    with pytest.raises(SourceError, match="cv.follow"):
        load_controls(path)


def test_direct_board_sums_cv_like_the_reference_board():
    settings = Settings({"follow": 0.5})
    engine = FakeEngine(settings)
    board = DirectBoard(engine, settings, OutputRecorder())
    board.apply(0.0, "follow", 0.5)
    board.apply(0.1, "cv.follow", 3.0)
    assert engine.settings["follow"] == pytest.approx(0.8)
    board.apply(0.2, "follow", 0.1)  # the pot moves under a patched CV: still summed
    assert engine.settings["follow"] == pytest.approx(0.4)
    board.apply(0.3, "cv.follow", -5.0)
    assert engine.settings["follow"] == pytest.approx(0.0)


def test_sim_board_names_the_cv_jacks_and_a_bare_pi_board_maps_them_too():
    assert {k: v for k, v in load_board("sim").emulation["jacks"].items()
            if k.startswith("cv.")} == {"cv.follow": "follow_cv", "cv.morph": "morph_cv",
                                         "cv.uncertainty": "uncertainty_cv",
                                         "cv.density": "density_cv"}
    settings = Settings({"uncertainty": 0.5})
    engine = FakeEngine(settings)
    board = SimPanelBoard("reference", settings, OutputRecorder(), engine)
    board.start(0.0)
    board.advance(0.1)
    board.apply(0.1, "cv.uncertainty", -1.0)
    board.advance(1.0)
    assert engine.settings["uncertainty"] == pytest.approx(0.4, abs=0.005)


def test_budget_board_has_no_cv_channel_left():
    """Its ADS1115 carries pitch + three pots: no control CV (hw/README.md says so)."""
    b = load_board("budget")
    assert all(c.cv is None for c in b.controls.values())
    assert len([*b.inputs, *b.pots]) == 4


def test_a_control_cv_must_name_a_cv_input(tmp_path):
    text = load_board("reference").path.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('cv = "follow_cv"', 'cv = "follow_jack"'), encoding="utf-8")
    with pytest.raises(BoardError, match=r"controls.follow.cv' = 'follow_jack'; CV inputs:"):
        load_board(bad)


# --- MIDI CC

@pytest.mark.parametrize("control, cc", [("follow", 20), ("morph", 21), ("uncertainty", 22),
                                         ("density", 23)])
def test_midi_cc_moves_each_cv_control(control, cc):
    settings = Settings()
    engine = FakeEngine(settings)
    handler = MidiInputHandler(engine, midi_options(settings))
    handler.feed(0.0, bytes([0xB0, cc, 127]))
    assert engine.settings[control] == pytest.approx(1.0)
    handler.feed(0.1, bytes([0xB3, cc, 0]))  # any channel (midi.input_channel = 0)
    assert engine.settings[control] == pytest.approx(0.0)
    handler.feed(0.2, bytes([0xB0, cc, 64]))
    assert engine.settings[control] == pytest.approx(64 / 127)


def test_midi_cc_numbers_are_config_keys():
    settings = Settings({"midi.cc.density": 70, "midi.input_channel": 2})
    engine = FakeEngine(settings)
    handler = MidiInputHandler(engine, midi_options(settings))
    handler.feed(0.0, bytes([0xB0, 70, 127]))  # channel 1: not ours
    assert engine.settings["density"] == pytest.approx(0.5)
    handler.feed(0.0, bytes([0xB1, 70, 127]))
    assert engine.settings["density"] == pytest.approx(1.0)


# --- ES-9

def test_es9_offset_mode_adds_the_cv_to_the_configured_value():
    from grooverack.backends.es9 import ES9Backend
    from grooverack.boards.es9 import parse_board

    table = {"device": "none", "samplerate": 48000, "blocksize": 64,
             "inputs": {"gate": 1, "pitch": 2, "density": 3}, "outputs": {"trigger": [1]}}
    b = parse_board(SimpleNamespace(path="t.toml", name="t", data={"es9": table}))
    settings = Settings({"es9.cv_mode": "offset", "es9.cv_volts": 5.0, "density": 0.4})
    engine = FakeEngine(settings)
    backend = ES9Backend(engine, settings, b, autostart=False)
    block = np.zeros((64, 3), np.float32)
    backend.process_block(0, block)  # 0 V: as configured
    assert engine.settings["density"] == pytest.approx(0.4)
    block[:, 2] = 0.25  # 2.5 V: + a quarter of the range (+-5 V = the whole range)
    backend.process_block(64, block)
    assert engine.settings["density"] == pytest.approx(0.65, abs=1e-6)
    with pytest.raises(Exception, match=r"es9.cv_mode.*allowed: one of 'absolute', 'offset'"):
        Settings({"es9.cv_mode": "sum"})
