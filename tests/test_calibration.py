"""Calibration: nominal scaling from the board, two-point and offset fits, outputs, the file."""

from __future__ import annotations

import json
import logging
import math
import tomllib
from pathlib import Path

import pytest
from grooverack.calibration import (
    Calibration,
    CalibrationError,
    InputCal,
    OutputCal,
    board_channels,
    fit_output,
    two_point,
    zero_offset,
)
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def board() -> dict:
    """The reference board's table, as `hw/boards/reference.toml` gives it."""
    return tomllib.loads((REPO / "hw" / "boards" / "reference.toml").read_text())


class FrontEnd:
    """A channel's true transfer: the nominal volts scaled by `gain_error`, plus `offset` volts
    (an op-amp stage's gain and offset errors)."""

    def __init__(self, nominal_gain, nominal_offset, gain_error, offset):
        self.gain = nominal_gain * gain_error
        self.offset = nominal_offset * gain_error + offset

    def code_for(self, volts):  # what an ADC reads (unrounded)
        return (volts - self.offset) / self.gain

    def volts_for(self, code):  # what a DAC output stage gives
        return self.gain * code + self.offset


def test_nominal_from_the_board(board):
    cal = Calibration.nominal(board)
    assert cal.board == "reference"
    assert set(cal.inputs) == {"pitch", "morph_cv", "velocity_cv"}
    assert cal.inputs["pitch"].role == "pitch" and cal.inputs["morph_cv"].role == "cv"
    assert len(cal.outputs) == 8
    assert cal.to_volts("pitch", 0) == 5.0
    assert cal.to_volts("pitch", 2048) == pytest.approx(0.0)
    assert cal.to_code("velocity_1", 5.0) == round(5.0 / 0.00244)
    assert isinstance(cal.to_code("velocity_1", 5.0), int)


def test_output_codes_clamped_to_safe_and_dac_range(board):
    cal = Calibration.nominal(board)
    assert cal.to_code("velocity_1", -3.0) == 0          # safe_min 0 V
    assert cal.to_code("velocity_1", 10.5) == 4095          # the DAC's top (9.99 V)
    limited = dict(board, outputs={"v": dict(board["outputs"]["velocity_1"], safe_max=8.0)})
    assert Calibration.nominal(limited).to_code("v", 9.0) == round(8.0 / 0.00244)  # safe_max
    assert cal.to_code("velocity_1", float("nan")) == 0
    assert cal.to_code("velocity_1", float("inf")) == 0
    with pytest.raises(CalibrationError, match="no output channel 'velocity_9'.*velocity_1"):
        cal.to_code("velocity_9", 1.0)
    with pytest.raises(CalibrationError, match="no input channel 'gate'"):
        cal.to_volts("gate", 1)


@settings(max_examples=200, deadline=None)
@given(gain_error=st.floats(0.9, 1.1), offset=st.floats(-0.4, 0.4), probe=st.floats(-4.5, 4.5))
def test_two_point_recovers_an_off_nominal_front_end(board, gain_error, offset, probe):
    spec = board_channels(board)[0]["pitch"]
    fe = FrontEnd(spec.gain, spec.offset, gain_error, offset)
    cal = two_point(spec, fe.code_for(1.0), fe.code_for(3.0))
    assert cal.method == "two-point"
    assert cal.to_volts(fe.code_for(probe)) == pytest.approx(probe, abs=1e-9)


def test_two_point_rejects_implausible_deltas_and_says_why(board):
    spec = board_channels(board)[0]["pitch"]
    c1 = spec.nominal_code(1.0)
    with pytest.raises(CalibrationError, match=r"pitch: the code did not move.*cable"):
        two_point(spec, c1, c1)
    with pytest.raises(CalibrationError, match=r"moved the code by .*expected about -819"):
        two_point(spec, c1, spec.nominal_code(2.0))   # +2 V patched instead of +3 V: 50 %
    with pytest.raises(CalibrationError, match=r"-100 % of nominal"):
        two_point(spec, spec.nominal_code(3.0), c1)   # the two voltages swapped
    # 5 % off is real hardware: accepted
    assert two_point(spec, c1, c1 + (spec.nominal_code(3.0) - c1) * 1.05).gain


def test_zero_offset_and_its_limit(board):
    spec = board_channels(board)[0]["morph_cv"]
    cal = zero_offset(spec, spec.nominal_code(0.0) + 20)   # 20 codes = 49 mV off
    assert cal.to_volts(spec.nominal_code(0.0) + 20) == pytest.approx(0.0)
    with pytest.raises(CalibrationError, match=r"morph_cv: the unpatched reading .* off"):
        zero_offset(spec, spec.nominal_code(2.0))  # something is patched


def test_fit_output_gain_offset_and_table(board):
    spec = board_channels(board)[1]["velocity_3"]
    fe = FrontEnd(spec.gain, spec.offset, 0.97, 0.05)
    points = [(c, fe.volts_for(c)) for c in (400, 800, 1200, 1600, 2000)]
    cal = fit_output(spec, points)
    assert cal.gain == pytest.approx(fe.gain) and cal.offset == pytest.approx(fe.offset)
    assert fe.volts_for(cal.code_for(3.3)) == pytest.approx(3.3)
    table = fit_output(spec, points, table=True)
    assert table.method == "table" and len(table.table) == 5
    assert fe.volts_for(table.code_for(2.0)) == pytest.approx(2.0)
    bent = points[:2] + [(1200, points[1][1] - 0.2)] + points[3:]  # one bad reading
    with pytest.raises(CalibrationError, match="velocity_3"):
        fit_output(spec, bent, table=True)
    with pytest.raises(CalibrationError, match="at least 2"):
        fit_output(spec, points[:1])
    with pytest.raises(CalibrationError, match="reversed"):
        fit_output(spec, [(c, -v) for c, v in points])


def test_table_interpolates_and_extrapolates():
    cal = OutputCal(0.0025, 0.0, "table", ((0.0, 0.0), (1.0, 410.0), (2.0, 815.0)))
    assert cal.code_for(0.5) == pytest.approx(205.0)
    assert cal.code_for(1.5) == pytest.approx(612.5)
    assert cal.code_for(3.0) == pytest.approx(1220.0)   # the last segment continued
    assert cal.volts_for(612.5) == pytest.approx(1.5)


def calibrated(board) -> Calibration:
    cal = Calibration.nominal(board)
    spec = cal.inputs["pitch"]
    fe = FrontEnd(spec.gain, spec.offset, 1.04, -0.12)
    cal.set_input("pitch", two_point(spec, fe.code_for(1.0), fe.code_for(3.0)))
    out = cal.outputs["velocity_2"]
    ofe = FrontEnd(out.gain, out.offset, 0.98, 0.02)
    cal.set_output("velocity_2", fit_output(out, [(c, ofe.volts_for(c)) for c in (400, 1200, 2000)],
                                            table=True))
    return cal


def test_save_load_round_trip(board, tmp_path):
    cal = calibrated(board)
    path = tmp_path / "calibration" / "reference.json"
    cal.save(path)
    back = Calibration.load(path, board)
    assert back.source == str(path)
    assert back.input_cal["pitch"] == cal.input_cal["pitch"]
    assert back.output_cal["velocity_2"] == cal.output_cal["velocity_2"]
    assert back.to_code("velocity_2", 4.0) == cal.to_code("velocity_2", 4.0)
    record = json.loads(path.read_text())
    assert record["tag"] == "grooverack-calibration" and record["version"] == 1
    assert record["payload"]["board"] == "reference"


def test_missing_file_is_nominal(board, tmp_path):
    cal = Calibration.load(tmp_path / "none.json", board)
    assert cal.source == "nominal" and cal.input_cal["pitch"].method == "nominal"


def test_corrupt_file_named_previous_good_copy_used(board, tmp_path, caplog):
    path = tmp_path / "reference.json"
    first = calibrated(board)
    first.save(path)
    second = calibrated(board)
    second.set_input("morph_cv", InputCal(first.inputs["morph_cv"].gain, 5.05, "offset"))
    second.save(path)
    path.write_text(path.read_text()[:100])  # a torn write
    with caplog.at_level(logging.WARNING):
        cal = Calibration.load(path, board)
    assert cal.source == str(path) + ".bak"
    assert cal.input_cal["morph_cv"].method == "nominal"  # the first file's value
    assert cal.input_cal["pitch"] == first.input_cal["pitch"]
    assert "reference.json" in caplog.text and "previous good copy" in caplog.text
    with pytest.raises(CalibrationError, match=r"reference\.json: not a valid"):
        Calibration.load_strict(path, board)


def test_file_for_another_board_or_channel_is_refused(board, tmp_path, caplog):
    path = tmp_path / "x.json"
    payload = calibrated(board).to_payload()
    for change, message in [
        (lambda p: p.update(board="budget"), "not for board 'reference'"),
        (lambda p: p["inputs"].update(pitch2={"gain": 1, "offset": 0}), "'inputs.pitch2'.*no such"),
        (lambda p: p["inputs"]["pitch"].update(gain=-0.003), r"'inputs.pitch'.*real parts"),
        (lambda p: p["inputs"]["pitch"].update(gain=float("nan")), "not a finite number"),
        (lambda p: p["outputs"]["velocity_1"].update(offset=2.0), r"'outputs.velocity_1'.*off"),
        (lambda p: p["outputs"]["velocity_2"].update(table=[[0, 5], [1, 3]]), r"table\[1\]"),
        (lambda p: p.update(extra=1), "unknown key 'extra'"),
    ]:
        bad = json.loads(json.dumps(payload))
        change(bad)
        path.write_text(json.dumps({"tag": "grooverack-calibration", "version": 1,
                                    "payload": bad}))
        with pytest.raises(CalibrationError, match=message):
            Calibration.load_strict(path, board)
        caplog.clear()
        cal = Calibration.load(path, board)   # at run time: logged, nominal used
        assert cal.source == "nominal" and "x.json" in caplog.text


def test_a_good_file_is_never_replaced_by_an_invalid_calibration(board, tmp_path):
    path = tmp_path / "reference.json"
    cal = calibrated(board)
    cal.save(path)
    before = path.read_bytes()
    cal.input_cal["pitch"] = InputCal(-0.01, 5.0, "two-point")  # bypassing set_input's check
    with pytest.raises(CalibrationError, match="pitch"):
        cal.save(path)
    assert path.read_bytes() == before
    with pytest.raises(CalibrationError, match="real parts"):
        cal.set_input("pitch", InputCal(-0.01, 5.0))


def test_float_channels_for_audio_interfaces():
    board = {"name": "es9", "inputs": {"in1": {"gain": 10.0, "offset": 0.0, "code_min": -1.0,
                                               "code_max": 1.0, "integer": False}},
             "outputs": {"out1": {"gain": 10.0, "offset": 0.0, "code_min": -1.0, "code_max": 1.0,
                                  "integer": False, "safe_min": -10, "safe_max": 10}}}
    cal = Calibration.nominal(board)
    assert cal.to_code("out1", 2.5) == pytest.approx(0.25)
    assert not isinstance(cal.to_code("out1", 2.5), int)
    assert cal.to_volts("in1", -0.5) == -5.0
    assert math.isclose(cal.to_code("out1", 12.0), 1.0)


def test_board_errors_name_board_channel_and_key():
    with pytest.raises(CalibrationError, match="board 'b' input 'x': key 'gain' = 'a'"):
        board_channels({"name": "b", "inputs": {"x": {"gain": "a", "bits": 12}}})
    with pytest.raises(CalibrationError, match="needs 'bits'"):
        board_channels({"name": "b", "inputs": {"x": {"gain": 1.0}}})
    with pytest.raises(CalibrationError, match="gain 0"):
        board_channels({"name": "b", "outputs": {"x": {"gain": 0, "bits": 12}}})
