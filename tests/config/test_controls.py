"""The one door from raw inputs to control values (`grooverack.controls`): ranges from the schema,
narrowed by a board but never widened; pot + CV summing, smoothing and hysteresis."""

import math
import random

import pytest
from grooverack.backends.midi import MidiInputHandler
from grooverack.boards.midi import midi_options
from grooverack.config import CONTROLS, SCHEMA, load_settings
from grooverack.controls import ControlRange, ControlReader, cc_position, smoothing_alpha
from grooverack.errors import ConfigError


def test_every_panel_control_takes_its_range_from_the_schema():
    for name in CONTROLS:
        rng = ControlRange.for_key(name)
        assert (rng.low, rng.high) == (SCHEMA[name].low, SCHEMA[name].high)
        assert rng.value(0.0) == rng.low and rng.value(1.0) == rng.high
        assert rng.position(SCHEMA[name].default) == pytest.approx(
            (SCHEMA[name].default - rng.low) / (rng.high - rng.low))


def test_value_and_position_are_inverse_and_clamped():
    tempo = ControlRange.for_key("tempo")
    assert tempo.value(0.5) == 160.0 and tempo.position(160.0) == 0.5
    assert tempo.value(-1.0) == 20.0 and tempo.value(2.0) == 300.0
    assert tempo.position(400.0) == 1.0 and tempo.position(0.0) == 0.0


def test_a_board_may_narrow_a_range_but_not_widen_it():
    narrow = ControlRange.for_key("tempo", 60.0, 180.0)
    assert narrow.value(0.5) == 120.0
    with pytest.raises(ConfigError) as info:
        ControlRange.for_key("tempo", 0.0, 1.0, source="board x.toml")
    msg = str(info.value)
    assert "'tempo'" in msg and "x.toml" in msg and "low = 0" in msg and "20 to 300" in msg
    with pytest.raises(ConfigError, match="high = 80"):
        ControlRange.for_key("swing", 50.0, 80.0)
    with pytest.raises(ConfigError, match="both 0.5"):
        ControlRange.for_key("follow", 0.5, 0.5)
    with pytest.raises(ConfigError, match="not a config key"):
        ControlRange.for_key("loudness")


def test_integer_and_choice_keys():
    memory = ControlRange.for_key("memory")  # an integer, 0..64 loops
    assert memory.value(0.5) == 32 and isinstance(memory.value(0.51), int)
    assert memory.value(0.01) == 1 and memory.position(16) == 0.25
    record = ControlRange.for_key("record")  # record, overdub, off
    assert [record.value(p) for p in (0.0, 0.4, 0.6, 1.0)] == ["record", "overdub", "overdub", "off"]
    assert record.position("off") == 1.0
    with pytest.raises(ConfigError, match="not allowed"):
        ControlRange.for_key("record", 0.0, 1.0)


def test_cc_positions():
    assert cc_position(0) == 0.0 and cc_position(127) == 1.0
    tempo = ControlRange.for_key("tempo")
    assert tempo.value(cc_position(127)) == 300.0


def legacy_scan(pots, cvs, alpha, h, cv_per_volt, start):
    """The ControlScanner's algorithm before the door, for one control: its reported values."""
    smooth_p = smooth_c = None
    r, first, out = start, True, []
    for pot, cv in zip(pots, cvs, strict=True):
        x = min(max(pot, 0.0), 1.0)
        smooth_p = x if smooth_p is None else smooth_p + alpha * (x - smooth_p)
        smooth_c = cv if smooth_c is None else smooth_c + alpha * (cv - smooth_c)
        p = min(max(smooth_p + cv_per_volt * smooth_c, 0.0), 1.0)
        if p <= h:
            p = 0.0
        elif p >= 1.0 - h:
            p = 1.0
        if r is None or abs(p - r) > h or (p in (0.0, 1.0) and p != r and not first):
            r = p
            out.append(20.0 + (300.0 - 20.0) * p)
        else:
            out.append(None)
        first = False
    return out


def test_reader_is_exactly_the_scanner_it_replaced():
    rnd = random.Random(1)
    alpha, h = smoothing_alpha(8.0, 1 / 500), 0.004
    pots = [min(max(0.5 + 0.6 * math.sin(i / 40) + rnd.gauss(0, 0.01), -0.1), 1.1)
            for i in range(3000)]
    cvs = [rnd.gauss(0, 0.5) for _ in pots]
    reader = ControlReader(ControlRange.for_key("tempo"), cv_per_volt=0.1, alpha=alpha,
                           hysteresis=h, start=120.0)
    got = []
    for pot, cv in zip(pots, cvs, strict=True):
        reader.pot(pot)
        reader.cv(cv)
        got.append(reader.read())
    assert got == legacy_scan(pots, cvs, alpha, h, 0.1, (120.0 - 20.0) / 280.0)
    assert any(v == 300.0 for v in got) and any(v == 20.0 for v in got)  # snapped to the ends


def test_reader_hysteresis_and_first_read():
    follow = ControlRange.for_key("follow")
    reader = ControlReader(follow, hysteresis=0.01, start=0.995)
    reader.pot(1.0)
    assert reader.read() is None  # first read near the configured value: config stands
    reader.pot(0.5)
    assert reader.read() == 0.5
    reader.pot(0.505)
    assert reader.read() is None  # inside the band
    reader.pot(0.995)
    assert reader.read() == 1.0  # snapped to the end


def test_reader_waits_for_its_input():
    reader = ControlReader(ControlRange.for_key("follow"))
    reader.cv(3.0)
    assert reader.read() is None  # a pot control: no pot reading yet
    cv_only = ControlReader(ControlRange.for_key("swing"), cv_per_volt=0.2, has_pot=False)
    assert cv_only.read() is None
    cv_only.cv(2.5)
    assert cv_only.read() == 62.5


def test_midi_cc_moves_a_control_over_its_schema_range():
    settings = load_settings(overrides=["midi.cc.tempo=30"])
    calls = []

    class Engine:
        def set_control(self, name, value):
            calls.append((name, value))

    handler = MidiInputHandler(Engine(), midi_options(settings))
    handler.handle(0.0, bytes((0xB0, 30, 127)))
    handler.handle(0.0, bytes((0xB0, 30, 0)))
    handler.handle(0.0, bytes((0xB0, 20, 127)))  # follow
    assert calls == [("tempo", 300.0), ("tempo", 20.0), ("follow", 1.0)]

