"""Board files: every shipped board loads, agrees with the calibration, and bad files are
refused with the file, key and value named."""

from pathlib import Path

import pytest
from grooverack.boards.board import available_boards, load_board
from grooverack.calibration import Calibration
from grooverack.errors import BoardError

BOARDS = Path(__file__).resolve().parents[2] / "hw" / "boards"


def test_shipped_pi_boards_load():
    assert {"reference", "budget", "sim"} <= set(available_boards())
    ref = load_board("reference")
    assert ref.kind == "pi"
    # ADC + ADC for the control CVs (CE1), velocity DACs, the accent/reset DAC
    assert [c.part for c in ref.chips.values()] == ["mcp3208", "mcp3208", "mcp4728", "mcp4728",
                                                    "mcp4728"]
    assert sorted(ref.output_jacks("trigger")) == list(range(1, 9))
    assert sorted(ref.output_jacks("velocity")) == list(range(1, 9))
    assert all(type(j).__name__ == "DigitalOutput" for j in ref.output_jacks("trigger").values())
    assert {i.role for i in ref.gpio_inputs.values()} == {"gate", "clock", "reset", "button"}
    assert {"follow", "morph", "uncertainty", "density", "tempo"} <= set(ref.controls)
    assert ref.controls["morph"].cv == "morph_cv"
    budget = load_board("budget")
    assert {c.part for c in budget.chips.values()} == {"ads1115", "mcp4728", "mcp4922"}
    triggers = budget.output_jacks("trigger")
    assert sorted(triggers) == [1, 2, 3, 4]
    assert all(type(j).__name__ == "AnalogOutput" for j in triggers.values())  # DAC channels


def test_sim_board_is_the_reference_board():
    sim, ref = load_board("sim"), load_board("reference")
    assert (sim.kind, sim.base, sim.name) == ("sim", "reference", "sim")
    assert sim.chips == ref.chips and sim.outputs == ref.outputs and sim.inputs == ref.inputs
    assert sim.emulation["jacks"]["gate"] == "gate"


def test_nominal_scaling_matches_the_front_ends():
    ref = Calibration.nominal(load_board("reference"))
    assert ref.to_volts("pitch", 2048) == pytest.approx(0.0)       # 1.65 V at the ADC = 0 V
    assert ref.to_volts("pitch", 0) == pytest.approx(5.0)          # inverting stage
    assert ref.to_volts("pitch", 4095) == pytest.approx(-5.0, abs=0.003)
    assert ref.to_code("velocity_1", 8.0) == 3279                   # 8 V / 2.44 mV
    assert ref.to_code("velocity_1", 12.0) == ref.to_code("velocity_1", 10.0)  # safe range
    budget = Calibration.nominal(load_board("budget"))
    assert budget.to_volts("pitch", 13200) == pytest.approx(0.0)
    assert budget.to_code("trigger_1", 5.0) == round(5.0 / (3.3 * 3 / 4096))


def write(tmp_path, text, name="b.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = """
name = "t"
kind = "pi"
[chips.adc]
part = "mcp3208"
spi_bus = 0
spi_device = 0
vref = 3.3
[inputs.pitch]
chip = "adc"
channel = 0
bits = 12
gain = -0.0024
offset = 5.0
"""


def test_minimal_board(tmp_path):
    board = load_board(write(tmp_path, MINIMAL))
    assert board.inputs["pitch"].role == "pitch" and board.scan_hz >= 100


@pytest.mark.parametrize("extra, message", [
    ("colour = 'red'", "unknown key 'colour' in the top level"),
    ("[inputs.cv]\nchip = 'adc'\nchannel = 0\ngain = 1.0\noffset = 0.0",
     "adc channel 0, already used by [inputs.pitch]"),
    ("[inputs.cv]\nchip = 'adc'\nchannel = 9\ngain = 1.0\noffset = 0.0",
     "'inputs.cv.channel' = 9; allowed: 0 to 7"),
    ("[inputs.cv]\nchip = 'dac'\nchannel = 1\ngain = 1.0\noffset = 0.0", "'inputs.cv.chip' = 'dac'"),
    ("[controls.loudness]\npot = 'x'", "'loudness' is not a panel control"),
    ("[gpio_inputs.gate]\npin = 99\nrole = 'gate'", "'gpio_inputs.gate.pin' = 99"),
    ("[gpio_inputs.gate]\npin = 17\nrole = 'strobe'", "'gpio_inputs.gate.role' = 'strobe'"),
    ("scan_hz = 50", "'.scan_hz' = 50; allowed: 100 to 2000"),
])
def test_bad_boards_name_file_key_and_value(tmp_path, extra, message):
    top, _, rest = MINIMAL.partition("[chips.adc]")
    text = (top + extra + "\n[chips.adc]" + rest) if extra.startswith(("colour", "scan")) else MINIMAL + extra
    path = write(tmp_path, text)
    with pytest.raises(BoardError) as info:
        load_board(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(BoardError, match="does not exist; boards in .*reference"):
        load_board("nonexistent")
    with pytest.raises(BoardError, match="not valid TOML"):
        load_board(write(tmp_path, "name = "))
    with pytest.raises(BoardError, match="'kind' = 'toaster'"):
        load_board(write(tmp_path, "name = 'x'\nkind = 'toaster'"))


def test_output_numbers_without_gaps(tmp_path):
    text = MINIMAL + "[gpio_outputs.t1]\nkind = 'trigger'\noutput = 1\npin = 4\n" \
                     "[gpio_outputs.t3]\nkind = 'trigger'\noutput = 3\npin = 5\n"
    with pytest.raises(BoardError, match=r"numbered 1..N without gaps, found \[1, 3\]"):
        load_board(write(tmp_path, text))


def test_sim_board_over_another_base(tmp_path):
    base = write(tmp_path, MINIMAL, "base.toml")
    sim = write(tmp_path, f"name = 's'\nkind = 'sim'\nbase = '{base}'\n"
                          "[emulation.jacks]\npitch = 'pitch'\n", "s.toml")
    board = load_board(sim)
    assert board.kind == "sim" and board.inputs["pitch"].channel == 0
    bad = write(tmp_path, f"name = 's'\nkind = 'sim'\nbase = '{base}'\n"
                          "[emulation.jacks]\ngate = 'gate'\n", "bad.toml")
    with pytest.raises(BoardError, match="'emulation.jacks.gate' = 'gate'"):
        load_board(bad)


# a pot to steer a control with: its range comes from the config schema unless the board narrows it
TEMPO_POT = MINIMAL + """[pots.tempo]
chip = "adc"
channel = 1
"""


def test_board_control_range_defaults_to_the_schema_and_cannot_widen(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(TEMPO_POT + "[controls.tempo]\npot = 'tempo'\n")
    tempo = load_board(path).controls["tempo"]
    assert (tempo.low, tempo.high) == (20.0, 300.0)  # not 0..1: tempo is in BPM
    path.write_text(TEMPO_POT + "[controls.tempo]\npot = 'tempo'\nlow = 60.0\nhigh = 180.0\n")
    assert load_board(path).controls["tempo"].high == 180.0
    path.write_text(TEMPO_POT + "[controls.tempo]\npot = 'tempo'\nlow = 10.0\n")
    with pytest.raises(BoardError) as info:
        load_board(path)
    assert str(path) in str(info.value) and "low = 10" in str(info.value)
