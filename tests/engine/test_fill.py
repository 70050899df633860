"""Issue 19 item 2: the fill gate. While it is high the drums play the model's own busier pattern
(the same decode sampled at raised density and uncertainty, toms and crash allowed; in rules mode
a denser rule pattern); once it falls the fill goes on to the next bar line and ends exactly there.
Never on the real-time path: threaded, the pattern after the fill is made while the fill plays.

The real shipped model and onnxruntime; the gate through the engine, the virtual patch (`fill`
jack, --controls rows), the budget board's FILL jack over the emulated GPIO, the reference board's
FILL on MCP3208 #2 (an ADC channel, Schmitt-read at the scan rate), and MIDI (a note and a CC
through the MIDI input handler).
"""

from __future__ import annotations

import csv
import shutil

import pytest
from grooverack.backends.midi import MidiInputHandler
from grooverack.backends.panel.simboard import SimPanelBoard
from grooverack.boards.board import load_board
from grooverack.boards.midi import midi_options
from grooverack.cli import main
from grooverack.config import Settings
from grooverack.controls import SchmittGate
from grooverack.errors import BoardError, ConfigError
from grooverack.model.runner import default_manifest_path
from grooverack.runtime.serve import make_engine
from grooverack.sim.patch import OutputRecorder
from grooverack.sim.sources import load_controls
from grooverack.voices import VOICE_NAMES

BPM = 120.0
STEP_S = 60.0 / BPM / 4
TOMS_AND_CRASH = {VOICE_NAMES.index(v) for v in ("low_tom", "mid_tom", "high_tom", "crash")}
# follow 0: the drums come from A/B only, so the two engines compared hear the same thing
BASE = {"tempo": BPM, "quantize": 1.0, "follow": 0.0, "uncertainty": 0.3}


def rises(events):
    return [e for e in events if e.kind == "trigger" and e.value > 0]


def step_of(e):
    return round(e.time / STEP_S)  # quantize 1: every hit on its step


class Run:
    """An engine on the internal clock, advanced a step at a time; the fill gate at positions."""

    def __init__(self, *, threaded=False, **values):
        self.engine = make_engine(Settings({**BASE, **values}), threaded=threaded)
        self.engine.start(0.0)
        self.events = []
        self.t = 0.0

    def to_step(self, position):
        while self.t < position * STEP_S - 1e-9:
            self.t = min(self.t + STEP_S / 2, position * STEP_S)
            self.events += self.engine.advance(self.t)
            if self.engine.threaded:
                self.engine.generator.wait_idle()

    def gate(self, position, high):
        self.to_step(position)
        self.engine.fill(position * STEP_S, high)

    def hits(self, first, last):
        """(step, voice) of every hit on steps first..last-1."""
        return sorted((step_of(e), e.voice) for e in rises(self.events)
                      if first <= step_of(e) < last)


@pytest.mark.parametrize("threaded", [False, True])
def test_fill_is_denser_while_high_and_ends_on_the_bar_line(threaded):
    plain, fill = Run(threaded=threaded), Run(threaded=threaded)
    try:
        fill.gate(32.3, True)      # loop 2, just after its first step
        fill.gate(54.2, False)     # falls in bar 4: the fill ends on step 64
        for run in (plain, fill):
            run.to_step(96)
        before, during, after = (0, 33), (33, 64), (64, 96)
        assert fill.hits(*before) == plain.hits(*before)
        assert len(fill.hits(*during)) > 1.3 * len(plain.hits(*during))
        assert fill.hits(*after) == plain.hits(*after), "not ended on the bar line"
        # the fill is still on in the bar after the fall, up to the bar line
        assert fill.hits(55, 64) != plain.hits(55, 64)
        assert not fill.engine.filling
    finally:
        plain.engine.close()
        fill.engine.close()


def test_fill_allows_toms_and_crash():
    plain, fill = Run(**{"density.low_tom": 0.3, "density.crash": 0.3}), Run()
    fill.gate(0.2, True)
    fill.to_step(64)
    plain.to_step(64)
    assert fill.engine.filling and fill.engine.pattern.info["fill"] == 1
    assert not {v for _s, v in plain.hits(0, 64)} & {4, 7}
    # the model's own pattern, sampled busier: hits of every voice, toms or crash among them
    assert {v for _s, v in fill.hits(1, 64)} & TOMS_AND_CRASH


def test_gate_rising_again_before_the_bar_line_keeps_the_fill():
    run = Run()
    run.gate(2.0, True)
    run.gate(6.0, False)
    run.gate(10.0, True)      # before the bar line at 16
    run.to_step(20)
    assert run.engine.filling
    run.gate(20.0, False)
    run.to_step(31)
    assert run.engine.filling
    run.to_step(33)
    assert not run.engine.filling


def test_a_short_trigger_still_plays_a_fill_to_the_bar_line():
    run = Run()
    run.to_step(3)
    run.engine.fill(3.1 * STEP_S, True)
    run.engine.fill(3.15 * STEP_S, False)  # shorter than a step
    run.to_step(5)
    assert run.engine.filling
    run.to_step(17)
    assert not run.engine.filling


def test_rules_fill_is_denser(tmp_path, monkeypatch):
    for env in (None, "missing"):
        if env:  # the fallback (no model) and the chosen rules mode fill alike
            folder = tmp_path / "models"
            shutil.copytree(default_manifest_path().parent, folder)
            (folder / "grooverack-decoder.int8.onnx").unlink()
            monkeypatch.setenv("GROOVERACK_MODELS", str(folder))
        values = {} if env else {"generation.mode": "rules"}
        plain, fill = Run(**values), Run(**values)
        assert fill.engine.generation == ("fallback" if env else "rules")
        fill.gate(0.2, True)
        fill.gate(10.0, False)
        for run in (plain, fill):
            run.to_step(32)
        assert len(fill.hits(1, 16)) > 1.3 * len(plain.hits(1, 16))
        assert {v for _s, v in fill.hits(1, 16)} & TOMS_AND_CRASH
        assert fill.hits(16, 32) == plain.hits(16, 32)


def render(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["sim", "--bars", "8", "--seed", "0", "--out", str(out), "-q",
                 "--set", "quantize=1", *extra]) == 0
    with open(out / "outputs.csv", newline="") as f:
        return [r for r in csv.DictReader(f)
                if r["kind"] == "trigger" and float(r["volts"]) > 1]


@pytest.mark.parametrize("board", ["sim", "reference", "direct", "budget"])
def test_fill_rows_in_a_controls_csv(tmp_path, board):
    moves = tmp_path / "fill.csv"
    moves.write_text("time,key,value\n5,fill,1\n6.5,fill,0\n")
    plain = render(tmp_path, "plain", "--board", board)
    filled = render(tmp_path, "filled", "--board", board, "--controls", str(moves))
    bar_s = 16 * STEP_S

    def bars(rows, first, last):  # rows in bars first..last (counted from 1), exclusive
        return [r for r in rows if (first - 1) * bar_s - 1e-6 <= float(r["time_s"])
                < (last - 1) * bar_s - 1e-6]

    assert bars(filled, 1, 5) == bars(plain, 1, 5)
    assert len(bars(filled, 5, 7)) > 1.2 * len(bars(plain, 5, 7))
    assert bars(filled, 7, 9) == bars(plain, 7, 9)  # ended on the bar line of bar 7


def test_controls_csv_refuses_a_bad_fill_value(tmp_path):
    moves = tmp_path / "fill.csv"
    moves.write_text("3,fill,maybe\n")
    with pytest.raises(Exception, match=r"fill = 'maybe' is not allowed; allowed: 1"):
        load_controls(moves)


def test_budget_board_fill_jack_over_emulated_gpio():
    settings = Settings(BASE)
    engine = make_engine(settings, threaded=False)
    sim = SimPanelBoard(load_board("budget"), settings, OutputRecorder(), engine)
    sim.start(0.0)
    sim.advance(2 * STEP_S)
    sim.apply(2 * STEP_S, "fill", 5.0)
    sim.advance(4 * STEP_S)
    assert engine.filling
    sim.apply(4 * STEP_S, "fill", 0.0)
    sim.advance(15 * STEP_S)
    assert engine.filling
    sim.advance(17 * STEP_S)
    assert not engine.filling


def mcp3208_frames(sim, chip):
    """The SPI frames the panel sends to emulated `chip` from now on (a list that fills)."""
    emulator = sim.world.spis[chip].chip
    frames: list[bytes] = []
    real = emulator.transfer

    def logged(data: bytes) -> bytes:
        frames.append(bytes(data))
        return real(data)

    emulator.transfer = logged
    return frames


@pytest.mark.parametrize("name", ["reference", "sim"])
def test_reference_board_fill_jack_over_the_emulated_mcp3208(name):
    """FILL on MCP3208 #2 channel 3: the jack's volts through the +-5 V stage onto the pin, read
    by the scan in real MCP3208 frames, Schmitt-triggered in software: the same fill as the
    budget board's GPIO FILL, to the bar line after the fall."""
    settings = Settings(BASE)
    engine = make_engine(settings, threaded=False)
    sim = SimPanelBoard(load_board(name), settings, OutputRecorder(), engine)
    item = sim.board.inputs["fill"]
    assert (item.chip, item.channel, item.role) == ("adc2", 3, "fill")
    frames = mcp3208_frames(sim, item.chip)
    sim.start(0.0)
    sim.advance(2 * STEP_S)
    sim.apply(2 * STEP_S, "fill", 5.0)
    # inverting stage: +5 V at the jack is 0 V at the pin
    assert sim.world.chips["adc2"].pin_volts(3) == pytest.approx(0.0, abs=0.002)
    sim.advance(4 * STEP_S)
    assert engine.filling and sim.panel.fill_edges == 1
    command = bytes([0x06 | (3 >> 2), (3 & 3) << 6])  # start, single-ended, channel 3
    assert any(f[:2] == command and len(f) == 3 for f in frames)
    sim.apply(4 * STEP_S, "fill", 0.0)
    sim.advance(15 * STEP_S)
    assert engine.filling
    sim.advance(17 * STEP_S)
    assert not engine.filling and sim.panel.fill_edges == 2


def test_reference_board_fill_is_denser_with_toms_and_ends_on_the_bar_line():
    """A whole bar of FILL on the emulated reference board (MCP3208 #2) against the same render
    without it: the same before, more hits with toms or crash during, the same after the bar
    line that follows the fall."""
    played = []
    for fill in (False, True):
        settings = Settings(BASE)
        engine = make_engine(settings, threaded=False)
        recorder = OutputRecorder()
        sim = SimPanelBoard(load_board("reference"), settings, recorder, engine)
        sim.start(0.0)
        if fill:
            sim.advance(16.2 * STEP_S)
            sim.apply(16.2 * STEP_S, "fill", 5.0)
            sim.advance(30.5 * STEP_S)
            sim.apply(30.5 * STEP_S, "fill", 0.0)
        sim.advance(48 * STEP_S)
        sim.close()
        played.append(sorted((round(h.time / STEP_S), h.voice) for h in recorder.hits(8.0)))
    plain, filled = played

    def steps(hits, first, last):
        return [h for h in hits if first <= h[0] < last]

    assert steps(filled, 0, 17) == steps(plain, 0, 17)
    assert len(steps(filled, 17, 32)) > 1.2 * len(steps(plain, 17, 32))
    assert {v for _s, v in steps(filled, 17, 32)} & TOMS_AND_CRASH
    assert steps(filled, 32, 48) == steps(plain, 32, 48)


def test_the_adc_fill_gate_has_hysteresis():
    """Rise at 1.5 V, fall at 1.0 V (the board file's `rise_volts` / `fall_volts`): between them
    the level holds, so a slow or noisy gate switches once each way."""
    item = load_board("reference").inputs["fill"]
    assert (item.rise_volts, item.fall_volts) == (1.5, 1.0)
    gate = SchmittGate(item.rise_volts, item.fall_volts)
    seen = [gate.update(v) for v in (0.0, 1.4, 1.5, 1.2, 1.01, 1.3, 1.0, 1.4, -5.0, 1.6)]
    assert seen == [None, None, True, None, None, None, False, None, None, True]


def test_reference_fill_over_the_scan_with_noise_switches_once():
    settings = Settings(BASE)
    engine = make_engine(settings, threaded=False)
    levels = []
    real = engine.fill
    engine.fill = lambda t, high: (levels.append(high), real(t, high))
    sim = SimPanelBoard(load_board("sim"), settings, OutputRecorder(), engine)
    sim.start(0.0)
    t = 0.1
    for volts in (1.3, 1.45, 1.55, 1.2, 1.1, 1.4, 1.05, 0.95, 1.2, 1.45):  # 1.5 up, 1.0 down
        sim.advance(t)
        sim.apply(t, "fill", volts)
        t += 0.02  # five scans each
    sim.advance(t)
    assert levels == [True, False] and sim.panel.fill_edges == 2


@pytest.mark.parametrize("table, message", [
    ("rise_volts = 1.0\nfall_volts = 1.5",
     r"'inputs.fill.fall_volts' = 1.5 must be below 'inputs.fill.rise_volts' = 1"),
    ("rise_volts = 7.0", r"'inputs.fill.rise_volts' = 7.0; allowed: -4.99756 to 5"),
    ("rise_volts = 'high'", r"'inputs.fill.rise_volts' = 'high' must be a number"),
    ("role = 'gate'", r"'inputs.fill.role' = 'gate'; allowed: 'cv', 'pitch', 'fill'"),
])
def test_bad_adc_fill_inputs_name_file_key_and_value(tmp_path, table, message):
    text = load_board("reference").path.read_text(encoding="utf-8")
    fill = 'role = "fill"\nrise_volts = 1.5\nfall_volts = 1.0\n'
    assert fill in text
    bad = tmp_path / "bad.toml"
    if table.startswith("role"):
        bad.write_text(text.replace(fill, table + "\n"), encoding="utf-8")
    else:
        bad.write_text(text.replace(fill, 'role = "fill"\n' + table + "\n"), encoding="utf-8")
    with pytest.raises(BoardError, match=message) as err:
        load_board(bad)
    assert str(bad) in str(err.value)


def test_fill_thresholds_only_on_a_fill_input_and_one_fill_per_board(tmp_path):
    text = load_board("reference").path.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('[inputs.morph_cv]\nchip = "adc"\nchannel = 6\n',
                                '[inputs.morph_cv]\nchip = "adc"\nchannel = 6\nrise_volts = 2.0\n'),
                   encoding="utf-8")
    with pytest.raises(BoardError, match=r"'inputs.morph_cv.rise_volts' only applies to role "
                                         r"'fill' \(this input's role is 'cv'\)"):
        load_board(bad)
    # a second fill input (a GPIO pin besides the ADC channel) is refused, naming both
    bad.write_text(text.replace("[gpio_inputs.record]", '[gpio_inputs.fill2]\npin = 11\n'
                                'role = "fill"\n\n[gpio_inputs.record]'), encoding="utf-8")
    with pytest.raises(BoardError, match=r"more than one fill input: \[gpio_inputs.fill2\], "
                                         r"\[inputs.fill\]; allowed: one \(a GPIO pin or an ADC"):
        load_board(bad)
    bad.write_text(text.replace("[inputs.velocity_cv]", '[inputs.fill2]\nchip = "adc2"\n'
                                'channel = 4\ngain = -0.00244140625\noffset = 5.0\n'
                                'role = "fill"\n\n[inputs.velocity_cv]'), encoding="utf-8")
    with pytest.raises(BoardError, match=r"more than one fill input: \[inputs.fill\], "
                                         r"\[inputs.fill2\]; allowed: one"):
        load_board(bad)
    # the fill gate is not a CV a control can sum
    bad.write_text(text.replace('cv = "density_cv"', 'cv = "fill"'), encoding="utf-8")
    with pytest.raises(BoardError, match=r"controls.density.cv' = 'fill'; CV inputs: "):
        load_board(bad)


class FillEngine:
    """The MIDI handler's engine calls, kept."""

    def __init__(self):
        self.fills, self.onsets = [], []

    def fill(self, t, high):
        self.fills.append((t, high))

    def onset(self, t, velocity=None, pitch_volts=None):
        self.onsets.append(t)


def test_midi_fill_note_and_cc():
    engine = FillEngine()
    handler = MidiInputHandler(engine, midi_options(Settings({"midi.fill_note": 37})))
    handler.handle(1.0, bytes([0x90, 37, 100]))   # fill note held
    handler.handle(1.1, bytes([0x90, 36, 100]))   # another note: an onset
    handler.handle(2.0, bytes([0x80, 37, 0]))     # released
    handler.handle(3.0, bytes([0xB0, 80, 127]))   # CC 80 (midi.cc.fill) up
    handler.handle(4.0, bytes([0xB0, 80, 0]))
    handler.handle(5.0, bytes([0x90, 37, 0]))     # note-on velocity 0 = note off
    assert engine.fills == [(1.0, True), (2.0, False), (3.0, True), (4.0, False), (5.0, False)]
    assert engine.onsets == [1.1]
    assert handler.counts["fill"] == 5


def test_midi_fill_through_the_real_engine():
    settings = Settings({**BASE, "midi.cc.fill": 85})
    engine = make_engine(settings, threaded=False)
    handler = MidiInputHandler(engine, midi_options(settings))
    engine.start(0.0)
    engine.advance(2 * STEP_S)
    handler.handle(2 * STEP_S, bytes([0xB0, 85, 127]))
    engine.advance(4 * STEP_S)
    assert engine.filling
    handler.handle(4 * STEP_S, bytes([0xB0, 85, 10]))
    engine.advance(17 * STEP_S)
    assert not engine.filling


def test_midi_fill_cc_conflict_is_refused():
    with pytest.raises(ConfigError, match=r"midi\.cc\.follow and midi\.cc\.fill both use CC 20"):
        midi_options(Settings({"midi.cc.fill": 20}))


def test_es9_fill_input():
    """The ES-9's `fill` input channel: a gate through the same Schmitt trigger as gate."""
    from types import SimpleNamespace

    import numpy as np
    from grooverack.backends.es9 import ES9Backend
    from grooverack.boards.es9 import parse_board

    sr, n = 48000, 64
    table = {"device": "none", "samplerate": sr, "blocksize": n,
             "inputs": {"gate": 1, "fill": 2}, "outputs": {"trigger": [1], "velocity": [2]}}
    board = parse_board(SimpleNamespace(path="t.toml", name="t", data={"es9": table}))
    settings = Settings(BASE)
    engine = make_engine(settings, threaded=False)
    backend = ES9Backend(engine, settings, board, autostart=False)
    engine.start(0.0)
    signal = np.zeros((int(2.5 * sr) // n * n, 2))
    signal[int(0.3 * sr):int(1.0 * sr), 1] = 5.0   # fill high 0.3 s .. 1.0 s (step 8)
    seen = []
    for a in range(0, len(signal), n):
        block = (signal[a:a + n] / 10.0).astype(np.float32)
        out = np.zeros((n, board.output_channels), dtype=np.float32)
        backend.stream.callback(block, out, n, SimpleNamespace(
            inputBufferAdcTime=a / sr, outputBufferDacTime=(a + n) / sr, currentTime=a / sr),
            None)
        while backend.stream.blocks:
            f0, blk, _ = backend.stream.blocks.popleft()
            backend.process_block(f0, blk)
        engine.advance((a + n) / sr)
        seen.append(((a + n) / sr, engine.filling))
    assert [e[:2] for e in backend.edges] == [("fill", "rise"), ("fill", "fall")]
    assert any(f for t, f in seen if 0.5 < t < 1.9)      # on from the rise to the bar line (2 s)
    assert not any(f for t, f in seen if t > 2.1)
