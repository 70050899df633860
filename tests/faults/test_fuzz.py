"""Hypothesis fuzzing of what reads the outside world: the config loader, the calibration loader
(and its conversions), the state loader and the MIDI byte parser. Whatever comes in, the result is
a value or the loader's own error naming the file/key, never another exception."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from grooverack import storage
from grooverack.backends.midi.parse import MidiParser, decode
from grooverack.calibration import TAG, VERSION, Calibration
from grooverack.config import SCHEMA, Settings, load_settings
from grooverack.errors import CalibrationError, ConfigError, StateError
from grooverack.state import PerformanceState, StateStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
BOARD = tomllib.loads((REPO / "hw" / "boards" / "reference.toml").read_text())
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)
key_names = st.one_of(st.sampled_from(sorted(SCHEMA)), st.text(min_size=1, max_size=20))


# --- configuration -------------------------------------------------------------------------


def toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    return json.dumps(str(value))


@FUZZ
@given(st.dictionaries(key_names, st.one_of(st.booleans(), st.integers(-10**6, 10**6),
                                            st.floats(), st.text(max_size=10)), max_size=8))
def test_config_file_values_are_accepted_or_refused_by_name(tmp_path, table):
    lines = [f"{json.dumps(k)} = {toml_literal(v)}" for k, v in table.items()]
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        s = load_settings(path)
    except ConfigError as exc:
        text = str(exc)
        assert "fuzz.toml" in text or "config key" in text
        return
    for k in table:  # every key that was accepted is a schema key with an allowed value
        name = k[:-4] if k.endswith(".all") else k
        SCHEMA[name].validate(s[name])


@FUZZ
@given(st.binary(max_size=300))
def test_config_file_bytes_never_crash_the_loader(tmp_path, data):
    path = tmp_path / "bytes.toml"
    path.write_bytes(data)
    try:
        load_settings(path)
    except ConfigError as exc:
        assert "bytes.toml" in str(exc) or "config key" in str(exc)


@FUZZ
@given(st.lists(st.tuples(key_names, st.text(max_size=12)), max_size=6))
def test_config_overrides_accepted_or_refused(pairs):
    try:
        s = load_settings(overrides=[f"{k}={v}" for k, v in pairs])
    except ConfigError:
        return
    assert isinstance(s, Settings)


# --- calibration ---------------------------------------------------------------------------


def calibration_payloads():
    channel = st.fixed_dictionaries(
        {"gain": st.one_of(st.floats(-0.01, 0.01), scalars),
         "offset": st.one_of(st.floats(-6, 6), scalars)},
        optional={"method": scalars, "table": json_values})
    return st.fixed_dictionaries(
        {"board": st.one_of(st.just("reference"), scalars)},
        optional={"inputs": st.one_of(st.dictionaries(st.sampled_from(["pitch", "morph_cv", "x"]),
                                                      channel, max_size=3), json_values),
                  "outputs": st.one_of(st.dictionaries(st.sampled_from(
                      ["velocity_1", "velocity_8", "trigger_1"]), channel, max_size=3), json_values),
                  "created": scalars, "junk": scalars})


@FUZZ
@given(st.one_of(calibration_payloads(), json_values),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8))
def test_calibration_loader_structures(tmp_path, payload, probes):
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"tag": TAG, "version": VERSION, "payload": payload}))
    try:
        Calibration.load_strict(path, BOARD)
    except CalibrationError as exc:
        assert "reference.json" in str(exc)
    cal = Calibration.load(path, BOARD)   # the run-time path never raises
    for name, spec in cal.outputs.items():
        for v in probes:
            code = cal.to_code(name, v)
            assert isinstance(code, int) and spec.code_min <= code <= spec.code_max
            if math.isfinite(v) and cal.source == "nominal":
                volts = spec.nominal_volts(code)
                assert spec.safe_min - 0.01 <= volts <= spec.safe_max + 0.01
    for name in cal.inputs:
        assert math.isfinite(cal.to_volts(name, 1234))


@FUZZ
@given(st.binary(max_size=400))
def test_calibration_loader_bytes(tmp_path, data):
    path = tmp_path / "reference.json"
    path.write_bytes(data)
    with pytest.raises(CalibrationError, match="reference.json"):
        Calibration.load_strict(path, BOARD)
    assert Calibration.load(path, BOARD).source == "nominal"


@FUZZ
@given(st.floats(0.9, 1.1), st.floats(-0.5, 0.5), st.floats(0.9, 1.1), st.floats(-0.3, 0.3))
def test_calibration_saved_is_calibration_loaded(tmp_path, g_in, o_in, g_out, o_out):
    from grooverack.calibration import InputCal, OutputCal

    cal = Calibration.nominal(BOARD)
    pitch, vel = cal.inputs["pitch"], cal.outputs["velocity_1"]
    cal.set_input("pitch", InputCal(pitch.gain * g_in, pitch.offset * g_in + o_in, "two-point"))
    cal.set_output("velocity_1", OutputCal(vel.gain * g_out, o_out, "fit"))
    path = tmp_path / "cal.json"
    cal.save(path)
    back = Calibration.load_strict(path, BOARD)
    assert back.input_cal == cal.input_cal and back.output_cal == cal.output_cal


# --- state ---------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(json_values, st.fixed_dictionaries(
    {}, optional={"latent_a": json_values, "latent_b": json_values, "panel": json_values,
                  "groove": json_values, "preset": scalars})))
def test_state_loader_never_raises(tmp_path, payload):
    store = StateStore(tmp_path)
    store.performance_path.write_text(json.dumps({"tag": "grooverack-performance", "version": 1,
                                                  "payload": payload}))
    state = store.load_performance()
    assert isinstance(state, PerformanceState)
    try:
        PerformanceState.from_payload(payload) if isinstance(payload, dict) else None
    except StateError:
        assert state == PerformanceState()
    try:
        storage.parse_record(store.performance_path, store.performance_path.read_bytes(),
                             "grooverack-performance", 1)
    except storage.RecordError as exc:
        assert "performance.json" in str(exc)


# --- MIDI input ----------------------------------------------------------------------------

DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


def well_formed(msg: bytes) -> bool:
    status = msg[0]
    if status < 0x80:
        return False
    if status >= 0xF8:
        return len(msg) == 1
    if status == 0xF0:
        return msg[-1] == 0xF7 and all(b < 0x80 for b in msg[1:-1])
    if status >= 0xF1:
        return all(b < 0x80 for b in msg[1:]) and len(msg) == 1 + {0xF1: 1, 0xF2: 2, 0xF3: 1}.get(
            status, 0)
    return len(msg) == 1 + DATA_BYTES[status & 0xF0] and all(b < 0x80 for b in msg[1:])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 50), max_size=20))
def test_midi_garbage_gives_only_well_formed_messages(data, cuts):
    parser = MidiParser()
    out = parser.feed(data)
    for msg in out:
        assert well_formed(msg), msg.hex()
        event = decode(msg)
        if event is not None and hasattr(event, "velocity"):
            assert 1 <= event.velocity <= 127
    # the same stream in arbitrary chunks gives the same messages
    chunked, pos, parser2 = [], 0, MidiParser()
    for cut in cuts:
        chunked += parser2.feed(data[pos:pos + cut])
        pos += cut
    chunked += parser2.feed(data[pos:])
    assert chunked == out
    assert parser.dropped == parser2.dropped


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 15), st.integers(0, 127), st.integers(1, 127))
def test_midi_parser_recovers_after_garbage(garbage, channel, note, velocity):
    parser = MidiParser()
    parser.feed(garbage)
    # whatever state the garbage left, a complete note-on plus its note-off get through
    # (an unfinished SysEx is closed by the status byte, as the MIDI spec says)
    msgs = parser.feed(bytes([0x90 | channel, note, velocity, 0x80 | channel, note, 0]))
    assert msgs[-2:] == [bytes([0x90 | channel, note, velocity]), bytes([0x80 | channel, note, 0])]
