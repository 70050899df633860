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
    InputCal,
    OutputCal,
    board_channels,
    fit_output,
    two_point,
    zero_offset,
)
from grooverack.errors import CalibrationError
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]


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
    assert set(cal.inputs) == {"pitch", "morph_cv", "velocity_cv", "follow_cv", "uncertainty_cv",
                               "density_cv", "fill"}
    assert cal.inputs["pitch"].role == "pitch" and cal.inputs["morph_cv"].role == "cv"
    assert cal.inputs["fill"].role == "fill"  # a gate on the CV stage: its offset is calibrated
    assert len(cal.outputs) == 12  # 8 velocity CVs, 3 accents, reset out (DAC channels)
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


# --- the procedure, end to end on the sim board (emulated chips, off-nominal front end) -------

SIM_OFF = """
name = "sim-off"
kind = "sim"
base = "reference"
description = "the sim board with front-end errors that calibration must find"
[emulation.front_end.pitch]
gain_error = 1.04
offset_volts = -0.12
[emulation.front_end.morph_cv]
gain_error = 0.97
offset_volts = 0.06
"""


def grooverack(*args, stdin: str = ""):
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "grooverack"
    return subprocess.run([str(exe), *args], input=stdin, capture_output=True, text=True,
                          timeout=300)


def residuals(stdout: str) -> dict[str, list[float]]:
    """Channel -> residual errors in mV, from the verification lines."""
    import re

    out: dict[str, list[float]] = {}
    for m in re.finditer(r"^\s+(\S+)\s+target .* error ([+-][\d.]+) mV", stdout, re.M):
        out.setdefault(m.group(1).lower(), []).append(float(m.group(2)))
    return out


def test_calibrate_sim_board_through_stdin_fixes_the_front_end(tmp_path):
    # hw/boards/sim-offnominal.toml: pitch 1.03 / -0.08 V, morph_cv 0.98 / +0.04 V, velocity
    # outputs 0.97..1.03 / -0.05..+0.05 V off their nominal stages
    board = "sim-offnominal"
    path = tmp_path / "cal.json"
    enters = "\n" * 200

    before = grooverack("calibrate", "--board", board, "--file", str(path), "--only",
                        "verify", stdin=enters)
    assert before.returncode == 1, before.stderr      # nominal: out of tolerance
    nominal = residuals(before.stdout)
    assert nominal["pitch"][0] == pytest.approx(-20.0, abs=3)  # 2 V * 1.03 - 0.08 V = 1.98 V
    assert abs(nominal["morph_cv"][0]) > 20
    off = [n for n, errors in nominal.items() if n.startswith("velocity_") and n != "velocity_cv"
           and max(map(abs, errors)) > 20]
    assert len(off) >= 4, nominal                     # the output stages are off too
    assert "OUT OF TOLERANCE" in before.stdout and not path.exists()

    run = grooverack("calibrate", "--board", board, "--file", str(path), stdin=enters)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "Patch +1.000 V into PITCH, press Enter" in run.stdout
    assert "Patch +3.000 V into PITCH, press Enter" in run.stdout
    assert "Unpatch MORPH_CV (nothing in the jack), press Enter" in run.stdout
    assert "Patch VELOCITY_1 into PITCH, press Enter" in run.stdout
    assert f"Saved {path}" in run.stdout
    after = residuals(run.stdout)
    assert set(after) >= {"pitch", "morph_cv", "velocity_cv", *(f"velocity_{i}" for i in range(1, 9))}
    assert abs(after["pitch"][0]) <= 5.0 and abs(after["morph_cv"][0]) <= 20.0
    assert all(abs(e) <= 5.0 for n in after if n.startswith("velocity_") and n != "velocity_cv"
               for e in after[n])

    from grooverack.boards.board import load_board

    cal = Calibration.load_strict(path, load_board(board))
    assert cal.input_cal["pitch"].method == "two-point"
    assert cal.input_cal["pitch"].gain == pytest.approx(cal.inputs["pitch"].gain / 1.03, rel=2e-3)
    assert cal.input_cal["morph_cv"].method == "offset"
    assert cal.output_cal["velocity_1"].gain == pytest.approx(cal.outputs["velocity_1"].gain * 0.97,
                                                              rel=3e-3)

    again = grooverack("calibrate", "--board", board, "--file", str(path), "--only",
                       "verify", stdin=enters)
    assert again.returncode == 0, again.stdout
    assert all(abs(e) <= 5.0 for n, errors in residuals(again.stdout).items()
               if n != "morph_cv" and n != "velocity_cv" for e in errors)
    shown = grooverack("calibrate", "--board", board, "--file", str(path), "--show")
    assert "two-point" in shown.stdout and str(path) in shown.stdout


def test_calibrate_quit_and_end_of_input_save_nothing(tmp_path):
    board = tmp_path / "sim-off.toml"
    board.write_text(SIM_OFF)
    path = tmp_path / "cal.json"
    quit_ = grooverack("calibrate", "--board", str(board), "--file", str(path), stdin="\nq\n")
    assert quit_.returncode == 1 and "nothing saved" in quit_.stderr and not path.exists()
    eof = grooverack("calibrate", "--board", str(board), "--file", str(path), stdin="\n\n")
    assert eof.returncode == 1 and "nothing saved" in eof.stderr and not path.exists()
    bad = grooverack("calibrate", "--board", str(board), "--file", str(path), "--channel", "nope")
    assert bad.returncode == 2 and "'nope'" in bad.stderr and "pitch" in bad.stderr


class Person:
    """Answers the procedure's prompts: Enter, except where told to patch the wrong voltage or
    to type a meter reading (taken from the emulated jack, as a multimeter would)."""

    def __init__(self, out, rig, wrong_first: dict[str, float] | None = None) -> None:
        self.out, self.rig = out, rig
        self.wrong = dict(wrong_first or {})
        self.prompts: list[str] = []

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        prompt = self.out.getvalue().rstrip("\n").rsplit("\n", 1)[-1]
        self.prompts.append(prompt)
        if "Meter reading at" in prompt:
            name = prompt.split("Meter reading at ")[1].split()[0].lower()
            return f"{self.rig.world.output_volts(name):.4f}\n"
        return "\n"


def test_procedure_rejects_a_wrong_voltage_and_says_why(tmp_path):
    import io

    from grooverack.backends.panel.rig import open_calibration_rig
    from grooverack.boards.board import load_board
    from grooverack.commands.calibrate import Session
    from grooverack.config import Settings

    board_path = tmp_path / "sim-off.toml"
    board_path.write_text(SIM_OFF)
    board = load_board(board_path)
    rig = open_calibration_rig(board, Settings())
    patched = []
    real_patch = rig.patch

    def person_patches(channel, volts):  # the first +3 V is really +2 V: a wrong source
        if volts == 3.0 and not patched:
            patched.append(volts)
            volts = 2.0
        real_patch(channel, volts)

    rig.patch = person_patches
    out = io.StringIO()
    cal = Calibration.nominal(board)
    session = Session(cal, rig, inp=Person(out, rig), out=out)
    try:
        session.calibrate_inputs(["pitch"])
    finally:
        rig.close()
    text = out.getvalue()
    assert "REJECTED: pitch: +1.000 V -> +3.000 V moved the code by" in text
    assert "expected about" in text and "Check the voltages and the jack" in text
    assert text.count("Patch +3.000 V into PITCH") == 2       # repeated, then accepted
    assert cal.input_cal["pitch"].method == "two-point"
    assert cal.input_cal["pitch"].gain == pytest.approx(cal.inputs["pitch"].gain / 1.04, rel=2e-3)


def test_outputs_with_typed_meter_readings_and_a_table(tmp_path):
    import io

    from grooverack.backends.panel.rig import open_calibration_rig
    from grooverack.boards.board import load_board
    from grooverack.commands.calibrate import Session
    from grooverack.config import Settings

    board_path = tmp_path / "sim-off.toml"
    board_path.write_text(SIM_OFF)
    board = load_board(board_path)
    rig = open_calibration_rig(board, Settings())
    out = io.StringIO()
    cal = Calibration.nominal(board)
    session = Session(cal, rig, inp=Person(out, rig), out=out, typed=True, table=True)
    try:
        session.calibrate_outputs(["velocity_3"])
        ok = session.verify([], ["velocity_3"])
    finally:
        rig.close()
    text = out.getvalue()
    assert "Connect the meter to VELOCITY_3, press Enter" in text
    assert text.count("Meter reading at VELOCITY_3") >= 9 + 2   # 1..9 V, then verification
    oc = cal.output_cal["velocity_3"]
    assert oc.method == "table" and len(oc.table) == 9
    assert ok and all(abs(r[3]) <= 0.02 for r in session.residuals)


def test_es9_channels_and_the_es9_back_end_uses_the_file(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    from grooverack.backends.es9.inputs import ES9Inputs
    from grooverack.boards.board import load_board
    from grooverack.boards.es9 import parse_board
    from grooverack.calibration import es9_calibration
    from grooverack.config import Settings

    board = load_board("es9")
    cal = Calibration.nominal(board)
    assert cal.inputs["pitch"].role == "pitch" and not cal.inputs["pitch"].integer
    assert "gate" not in cal.inputs                     # Schmitt inputs have nothing to scale
    assert cal.to_code("velocity_1", 5.0) == pytest.approx(0.5)
    assert cal.to_code("velocity_1", 15.0) == pytest.approx(1.0)   # safe max 10 V = sample 1.0
    spec = cal.inputs["pitch"]
    true_gain, true_offset = spec.gain * 1.01, 0.02   # this unit reads 1 % high, +20 mV
    codes = [(v - true_offset) / true_gain for v in (1.0, 3.0)]
    cal.set_input("pitch", two_point(spec, *codes))
    out = cal.outputs["velocity_2"]
    cal.set_output("velocity_2", fit_output(out, [(s, 0.99 * 10 * s - 0.01) for s in (0.1, 0.3, 0.5)]))
    path = tmp_path / "es9.json"
    cal.save(path)

    es9 = parse_board(board)
    through = es9_calibration(es9, Calibration.load_strict(path, board))  # the back end's
    sample = through.to_code("velocity_2", 4.0)
    assert 0.99 * 10 * sample - 0.01 == pytest.approx(4.0)   # the jack gives 4 V
    inputs = ES9Inputs(SimpleNamespace(), Settings(), es9, autostart=False, calibration=through)
    block = np.zeros((1, es9.input_channels), dtype=np.float32)
    block[0, es9.inputs["pitch"] - 1] = (2.0 - true_offset) / true_gain
    assert inputs.volts(block, "pitch")[0] == pytest.approx(2.0, abs=1e-6)  # read through it
    assert through.output_cal["velocity_1"].method == "nominal"   # nominal: the board's


# --- the same procedure on an ES-9 (audio interface), through a real JACK server -------------

ES9_CABLES = r"""
import sys
import jack
server = sys.argv[1]
g_in, o_in = 1.012, -0.015              # this interface's input stage on the pitch channel
g_out = {1: 0.985, 2: 1.02}             # and the output stages of host channels 1 and 2
o_out = {1: 0.03, 2: -0.02}
c = jack.Client("es9cal", servername=server, no_start_server=True)
outs = [c.outports.register(f"capture_{i}") for i in (1, 2)]   # device inputs: gate, pitch
ins = [c.inports.register(f"playback_{i}") for i in (1, 2)]    # device outputs 1, 2
state = {"src": 0.0, "loop": None, "outv": {1: 0.0, 2: 0.0}}

@c.set_process_callback
def process(frames):
    for ch, port in zip((1, 2), ins):
        state["outv"][ch] = float(port.get_array().mean()) * 10 * g_out[ch] + o_out[ch]
    volts = state["outv"][state["loop"]] if state["loop"] else state["src"]
    outs[0].get_array()[:] = 0.0
    outs[1].get_array()[:] = (volts * g_in + o_in) / 10.0

c.activate()
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "src":
        state["loop"], state["src"] = None, (0.0 if arg == "none" else float(arg))
    else:
        state["loop"] = None if arg == "none" else int(arg)
    print("ok", flush=True)
c.deactivate()
c.close()
"""


class CablePerson(Person):
    """Does what the prompts say on a JACK 'ES-9' whose pitch input can take a reference voltage
    or a cable from an output (a child process with the interface's analogue errors)."""

    def __init__(self, out, cables):
        super().__init__(out, rig=None)
        self.cables = cables

    def send(self, command: str) -> None:
        self.cables.stdin.write(command + "\n")
        self.cables.stdin.flush()
        assert self.cables.stdout.readline().strip() == "ok"

    def readline(self) -> str:
        import re

        prompt = self.out.getvalue().rstrip("\n").rsplit("\n", 1)[-1]
        self.prompts.append(prompt)
        if m := re.match(r"Patch ([+-][\d.]+) V into PITCH", prompt):
            self.send(f"src {m.group(1)}")
        elif m := re.match(r"Patch VELOCITY_(\d) into PITCH", prompt):
            self.send(f"loop {m.group(1)}")
        elif prompt.startswith("Unpatch"):
            self.send("src none")
        return "\n"


@pytest.mark.jack
def test_calibrate_an_es9_through_jack_with_a_loopback_cable(tmp_path, monkeypatch):
    import io
    import subprocess
    import sys
    from types import SimpleNamespace

    from grooverack.backends.es9 import refresh_devices
    from grooverack.backends.es9.rig import AudioRig
    from grooverack.commands.calibrate import Session
    from grooverack.config import Settings

    from tests.rig.jackserver import serve

    server_gen = serve(tmp_path, monkeypatch, period=1024)
    server = next(server_gen)
    cables = subprocess.Popen([sys.executable, "-c", ES9_CABLES, server.name], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert cables.stdout.readline().strip() == "ready"
        refresh_devices()  # PortAudio reads the JACK clients that exist now
        board = SimpleNamespace(name="es9cal", kind="es9", path="es9cal.toml", data={
            "kind": "es9", "name": "es9cal", "es9": {
                "device": "es9cal", "samplerate": 48000, "blocksize": 1024,
                "inputs": {"gate": 1, "pitch": 2}, "outputs": {"velocity": [1, 2]}}})
        cal = Calibration.nominal(board)
        out = io.StringIO()
        rig = AudioRig(board, Settings())
        try:
            session = Session(cal, rig, inp=CablePerson(out, cables), out=out, samples=8)
            session.calibrate_inputs(["pitch"])
            session.calibrate_outputs(["velocity_1", "velocity_2"])
            ok = session.verify(["pitch"], ["velocity_1", "velocity_2"])
        finally:
            rig.close()
            import sounddevice as sd

            sd._terminate()  # before the server goes away
        text = out.getvalue()
        assert "Patch +1.000 V into PITCH" in text and "Patch VELOCITY_2 into PITCH" in text
        assert ok, text
        assert cal.input_cal["pitch"].gain == pytest.approx(10.0 / 1.012, rel=1e-3)
        assert cal.output_cal["velocity_1"].gain == pytest.approx(10.0 * 0.985, rel=2e-3)
        assert cal.output_cal["velocity_2"].offset == pytest.approx(-0.02, abs=0.005)
        assert all(abs(r[3]) <= 0.005 for r in session.residuals), session.residuals
    finally:
        cables.stdin.close()
        cables.wait(timeout=30)
        next(server_gen, None)
