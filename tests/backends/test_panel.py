"""PanelBackend over the emulated reference and budget boards, with a scripted engine: GPIO
edges, pitch settle, pot smoothing/hysteresis, buttons, output order and levels, bus faults."""

from __future__ import annotations

import logging
import random

import pytest
from grooverack.backends.panel.simboard import SimPanelBoard
from grooverack.boards.board import load_board
from grooverack.config import Settings
from grooverack.engine.player import OutputEvent
from grooverack.sim.patch import OutputRecorder

LSB_10V = 10 / 4096


class ScriptedEngine:
    """The Engine contract's calls, recorded; `advance` hands out scripted events once each."""

    def __init__(self, events=()):
        self.calls: list[tuple] = []
        self.events = sorted(events, key=lambda e: (e.time, e.order))
        self.returned: list[OutputEvent] = []
        self.settings = Settings()  # the engine seam: the panel reads the record mode from it

    def start(self, t):
        self.calls.append(("start", t))

    def clock_pulse(self, t):
        self.calls.append(("clock", t))

    def reset(self, t):
        self.calls.append(("reset", t))

    def onset(self, t, velocity=None, pitch_volts=None):
        self.calls.append(("onset", t, velocity, pitch_volts))

    def set_control(self, name, value):
        self.calls.append(("control", name, value))

    def press(self, button):
        self.calls.append(("press", button))

    def advance(self, t_until):
        out = [e for e in self.events if e.time < t_until]
        self.events = [e for e in self.events if e.time >= t_until]
        self.returned += out
        return out

    def of(self, kind):
        return [c for c in self.calls if c[0] == kind]


def hit(t, output, velocity, width=0.005):
    return [OutputEvent(t, output, "velocity", velocity, 0, output - 1),
            OutputEvent(t, output, "trigger", 1.0, 0, output - 1),
            OutputEvent(t + width, output, "trigger", 0.0, 0, output - 1)]


def make(board="sim", events=(), **overrides):
    settings = Settings(overrides)
    engine = ScriptedEngine(events)
    recorder = OutputRecorder()
    sim = SimPanelBoard(load_board(board), settings, recorder, engine)
    sim.start(0.0)
    return sim, engine, recorder


def test_gate_edge_time_and_pitch_sampled_after_settle():
    sim, engine, _ = make(**{"input.pitch_settle_ms": 1.0})
    sim.advance(1.0)
    sim.apply(1.0, "pitch", 1.0)
    sim.apply(1.0, "gate", 5.0)
    sim.advance(1.0005)
    sim.apply(1.0005, "pitch", 2.0)      # still settling: this is the note's pitch
    sim.advance(1.002)
    sim.apply(1.002, "pitch", -3.0)      # after the sample: the next note's
    sim.apply(1.003, "gate", 0.0)
    onsets = engine.of("onset")
    assert len(onsets) == 1
    assert onsets[0][1] == 1.0                          # the edge's time, not the sample's
    assert onsets[0][3] == pytest.approx(2.0, abs=LSB_10V)


def test_schmitt_inputs_clock_reset_and_velocity_cv_mode():
    sim, engine, _ = make(**{"input.velocity_mode": "cv"})
    sim.apply(0.1, "clock", 1.0)    # below the 1.5 V threshold: nothing
    sim.apply(0.2, "clock", 5.0)
    sim.apply(0.3, "clock", 1.0)    # above 0.5 V: still high, no new edge
    sim.apply(0.4, "clock", 0.0)
    sim.apply(0.5, "clock", 5.0)
    sim.apply(0.6, "reset", 8.0)
    sim.apply(0.7, "velocity_cv", 4.0)
    sim.apply(0.7, "gate", 5.0)
    sim.advance(0.8)
    assert [c[1] for c in engine.of("clock")] == [0.2, 0.5]
    assert [c[1] for c in engine.of("reset")] == [0.6]
    assert engine.of("onset")[0][3] == pytest.approx(4.0, abs=LSB_10V)


def test_resting_noisy_pot_never_moves_a_control():
    sim, engine, _ = make()
    adc = sim.world.chips["adc"]
    rng = random.Random(1)
    lsb = 3.3 / 4096
    adc.source = lambda ch: adc.volts[ch] + rng.choice((-2, -1, 0, 1, 2)) * lsb
    sim.advance(5.0)                          # 1250 scans of noisy pots and CVs
    assert sim.panel.scanner.scans >= 1250
    assert engine.of("control") == []


def test_moving_pot_is_smoothed_and_reaches_the_ends():
    sim, engine, _ = make(follow=0.5)
    sim.apply(1.0, "follow", 1.0)
    sim.advance(1.0 + 1 / 250 + 1e-9)         # one scan after the step: part of the way
    first = [c[2] for c in engine.of("control") if c[1] == "follow"]
    assert first and 0.5 < first[0] < 0.95
    sim.advance(2.0)
    values = [c[2] for c in engine.of("control") if c[1] == "follow"]
    assert values[-1] == 1.0 and values == sorted(values)
    sim.apply(2.0, "tempo", 0.0)
    sim.advance(3.0)
    assert [c[2] for c in engine.of("control") if c[1] == "tempo"][-1] == 20.0


def test_morph_is_pot_plus_cv():
    sim, engine, _ = make(morph=0.5)
    sim.apply(0.5, "morph_cv", 2.0)           # +2 V * 0.1 / V = +0.2
    sim.advance(1.5)
    morph = [c[2] for c in engine.of("control") if c[1] == "morph"]
    assert morph[-1] == pytest.approx(0.7, abs=0.005)


def test_buttons_are_debounced():
    sim, engine, _ = make()
    gpio, pin = sim.world.gpio, sim.board.gpio_inputs["clear"].pin
    t = 1.0
    for level in (0, 1, 0, 1, 0):             # a bouncing press, 0.5 ms apart
        sim.advance(t)
        gpio.drive(pin, level, t)
        t += 0.0005
    sim.advance(1.2)
    gpio.drive(pin, None, 1.2)                # release
    sim.advance(1.5)
    gpio.drive(pin, 0, 1.5)                   # a 5 ms glitch: shorter than 20 ms debounce
    sim.advance(1.505)
    gpio.drive(pin, None, 1.505)
    sim.apply(2.0, "press.randomize_b", 1.0)  # the patch's way of pressing
    sim.advance(3.0)
    assert engine.of("press") == [("press", "clear"), ("press", "randomize_b")]


def test_velocity_before_trigger_and_levels():
    events = hit(0.5, 1, 0.5) + hit(0.5, 8, 1.0) + hit(0.75, 3, 0.25)
    sim, engine, rec = make(events=events)
    sim.finish(1.0)
    rows = [(r.time, r.output, r.kind, r.volts) for r in rec.rows]
    # at 0.5: both velocities (one MCP4728 transaction per chip) before both rises
    at = [r for r in rows if r[0] == 0.5]
    assert [r[2] for r in at] == ["velocity", "velocity", "trigger", "trigger"]
    vel = {r[1]: r[3] for r in rows if r[2] == "velocity"}
    assert vel[1] == pytest.approx(4.0, abs=0.003) and vel[8] == pytest.approx(8.0, abs=0.003)
    assert vel[3] == pytest.approx(2.0, abs=0.003)
    trig = [r for r in rows if r[2] == "trigger" and r[1] == 3]
    assert trig == [(0.75, 3, "trigger", 5.0), (0.755, 3, "trigger", 0.0)]
    assert [r.voice for r in rec.rows if r.output == 8] == [7, 7, 7]


def test_budget_board_pulses_dac_triggers(tmp_path):
    base = load_board("budget").path
    sim_file = tmp_path / "budget-sim.toml"
    sim_file.write_text(f"name = 'budget-sim'\nkind = 'sim'\nbase = '{base}'\n")
    events = hit(0.3, 2, 0.75) + hit(0.3, 4, 0.5) + hit(0.6, 6, 1.0)  # output 6 is not wired
    sim, engine, rec = make(str(sim_file), events=events)
    sim.apply(0.1, "pitch", 1.5)
    sim.apply(0.1, "gate", 5.0)
    sim.finish(1.0)
    rows = [(r.time, r.output, r.kind, round(r.volts, 2)) for r in rec.rows]
    assert rows == [(0.3, 2, "velocity", 6.0), (0.3, 4, "velocity", 4.0),
                    (0.3, 2, "trigger", 5.0), (0.3, 4, "trigger", 5.0),
                    (0.305, 2, "trigger", 0.0), (0.305, 4, "trigger", 0.0)]
    assert sim.world.chips["trig34"].history[-1][2] == 0
    onset = engine.of("onset")[0]                 # pitch through the ADS1115
    assert onset[1] == 0.1 and onset[3] == pytest.approx(1.5, abs=0.001)
    assert sim.panel.writer.dropped == {("velocity", 6): 1, ("trigger", 6): 2}


def test_nack_burst_keeps_playing_and_logs_once(caplog):
    events = [e for k in range(20) for e in hit(0.1 + 0.05 * k, 1 + k % 8, 0.5 + 0.02 * k)]
    sim, engine, rec = make(events=events)
    bus = sim.world.buses[1]
    sim.advance(0.3)
    with caplog.at_level(logging.WARNING, logger="grooverack.backends.panel"):
        bus.nack_burst(12)                    # every attempt for a while fails
        sim.advance(0.6)
        sim.finish(1.2)
    rises = [r for r in rec.rows if r.kind == "trigger" and r.volts > 0]
    assert len(rises) == 20                   # GPIO triggers never stopped
    faults = sim.faults()
    assert faults["dac1"]["faults"] + faults["dac2"]["faults"] == 12
    assert faults["dac1"]["recoveries"] + faults["dac2"]["recoveries"] >= 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert 1 <= len(errors) <= 2              # once per burst per chip, not per attempt
    last = engine.returned[-3]                # the last hit's velocity reached its DAC
    assert sim.world.output_volts(f"velocity_{last.output}") == pytest.approx(
        last.value * 8.0, abs=0.003)


def test_stuck_adc_bus_keeps_playing_then_recovers():
    events = [e for k in range(30) for e in hit(0.1 * k + 0.05, 1, 0.9)]
    sim, engine, rec = make(events=events, follow=0.2)
    sim.advance(0.5)
    sim.world.spis["adc"].fail_next(10 ** 6)          # the ADC's SPI fails on every transfer
    sim.apply(0.6, "follow", 0.9)
    sim.advance(1.5)
    assert [c for c in engine.of("control") if c[1] == "follow"] == []
    counter = sim.faults()["adc"]
    assert counter["failed"] >= 1 and counter["skipped"] > counter["failed"]
    sim.world.spis["adc"].fail_next(0)
    sim.finish(3.0)
    assert [c for c in engine.of("control") if c[1] == "follow"][-1][2] == pytest.approx(0.9, abs=0.005)
    assert len([r for r in rec.rows if r.kind == "trigger" and r.volts > 0]) == 30
    assert sim.faults()["adc"]["recoveries"] == 1


def test_close_sets_every_output_to_zero():
    sim, _, _ = make(events=hit(0.1, 1, 1.0, width=10.0) + hit(0.1, 5, 0.7, width=10.0))
    sim.advance(0.2)
    assert sim.world.output_volts("velocity_1") > 7.9 and sim.world.output_volts("trigger_5") == 5.0
    sim.close()
    assert all(sim.world.output_volts(name) == 0.0
               for name in [*sim.board.outputs, *sim.board.gpio_outputs])


def test_record_led_follows_the_record_mode():
    sim, engine, _ = make(record="overdub")
    led = sim.board.gpio_outputs["record_led"].pin
    assert sim.world.gpio.level(led) == 1
    engine.settings = Settings({"record": "off"})   # what the engine's record button cycles
    sim.apply(0.5, "press.record", 1.0)
    sim.advance(1.0)
    assert engine.of("press") == [("press", "record")] and sim.world.gpio.level(led) == 0


def test_calibration_rig_over_the_emulated_board():
    from grooverack.backends.panel.rig import open_calibration_rig

    board = load_board("sim")
    rig = open_calibration_rig(board, Settings())
    rig.patch("pitch", 1.0)
    assert set(rig.read_code("pitch", 4)) == {2048 - 410}          # (1 V - 5 V) / -10/4096, floor
    rig.patch("pitch", None)
    assert rig.read_code("pitch", 1) == [2048.0]
    rig.loopback("velocity_3", "pitch")
    rig.write_code("velocity_3", 1230)                              # 3.0012 V at the jack
    code = rig.read_code("pitch", 1)[0]
    assert 5 - 10 * code / 4096 == pytest.approx(0.00244 * 1230, abs=10 / 4096)
    rig.close()
    assert rig.world.output_volts("velocity_3") == 0.0


def test_off_nominal_front_ends_and_calibration_fixes_them(tmp_path):
    from grooverack.backends.panel.rig import open_calibration_rig
    from grooverack.calibration import Calibration, fit_output, two_point

    board = load_board("sim-offnominal")
    rig = open_calibration_rig(board, Settings())
    cal = Calibration.nominal(board)
    rig.patch("pitch", 3.0)
    seen = cal.to_volts("pitch", rig.read_code("pitch", 1)[0])
    assert seen == pytest.approx(3.0 * 1.03 - 0.08, abs=0.003)      # uncalibrated: 3.01 V off
    rig.patch("pitch", 1.0)
    low = rig.read_code("pitch", 1)[0]
    rig.patch("pitch", 3.0)
    cal.set_input("pitch", two_point(cal.inputs["pitch"], low, rig.read_code("pitch", 1)[0]))
    rig.patch("pitch", 2.0)
    assert cal.to_volts("pitch", rig.read_code("pitch", 1)[0]) == pytest.approx(2.0, abs=0.003)
    rig.write_code("velocity_2", 2000)                               # nominal 4.88 V
    assert rig.world.output_volts("velocity_2") == pytest.approx(4.88 * 1.03 - 0.05, abs=1e-6)
    points = []
    for code in (500, 2000, 3500):
        rig.write_code("velocity_2", code)
        points.append((code, rig.world.output_volts("velocity_2")))
    cal.set_output("velocity_2", fit_output(cal.outputs["velocity_2"], points))
    rig.write_code("velocity_2", cal.to_code("velocity_2", 8.0))
    assert rig.world.output_volts("velocity_2") == pytest.approx(8.0, abs=0.003)
    rig.close()


def test_chip_guard_retries_backs_off_counts_and_logs_once(caplog):
    import errno

    from grooverack.backends.panel.hardware import ChipGuard
    from grooverack.emulators import VirtualClock
    from grooverack.errors import BusDown

    clock = VirtualClock()
    guard = ChipGuard("dac1", "/dev/i2c-1 0x60", clock, sleep=lambda s: None)
    failures = [0]

    def op():
        if failures[0] > 0:
            failures[0] -= 1
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return "done"

    failures[0] = 1                                   # one NACK: the retry gets through
    assert guard.call(op) == "done"
    c = guard.counter
    assert (c.ok, c.faults, c.failed, c.bursts) == (1, 1, 0, 0)
    failures[0] = 10 ** 6                             # the chip stops answering
    with caplog.at_level(logging.WARNING, logger="grooverack.backends.panel"):
        waits = []
        for _ in range(5):
            with pytest.raises(BusDown):
                guard.call(op)                        # 3 attempts, then back off
            with pytest.raises(BusDown):
                guard.call(op)                        # backing off: not even tried
            waits.append(round(c.retry_at - clock.now, 6))
            clock.advance_to(c.retry_at)
        failures[0] = 0
        assert guard.call(op) == "done"
    assert waits == [0.002, 0.004, 0.008, 0.016, 0.032]
    assert (c.faults, c.failed, c.skipped, c.bursts, c.recoveries) == (16, 5, 5, 1, 1)
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]
    assert "15 failed attempts in this burst" in caplog.records[1].getMessage()

    def stuck():
        raise TimeoutError(errno.ETIMEDOUT, "bus stuck")

    with pytest.raises(BusDown):
        guard.call(stuck)
    assert c.faults == 17                             # a timeout is not retried at once


def test_a_dac_missing_at_start_does_not_stop_the_module():
    settings = Settings()
    engine = ScriptedEngine(hit(0.2, 1, 0.5) + hit(0.2, 5, 0.5) + hit(1.0, 5, 0.75))
    recorder = OutputRecorder()
    sim = SimPanelBoard(load_board("sim"), settings, recorder, engine)
    dac2 = sim.world.buses[1].devices.pop(0x61)      # not answering at power-up
    sim.start(0.0)
    sim.advance(0.5)
    sim.world.buses[1].attach(dac2)                   # answers again (a loose cable seated)
    sim.finish(1.5)
    rows = [(r.time, r.output, r.kind, round(r.volts, 2)) for r in recorder.rows]
    assert (0.2, 1, "velocity", 4.0) in rows and (0.2, 5, "trigger", 5.0) in rows
    assert (0.2, 5, "velocity", 4.0) not in rows                    # dac2 was silent then
    assert (1.0, 5, "velocity", 6.0) in rows                         # and plays once it answers
    assert sim.world.chips["dac2"].output[0].vref == 1              # internal reference again
    assert sim.faults()["dac2"]["recoveries"] == 1


def test_a_step_on_a_clock_edge_is_written_as_the_edge_comes_in():
    """The step the engine has on an edge goes out from that edge at once (as the Pi loop
    writes it), not on the board's next advance; recorded at the edge's time."""
    sim, engine, recorder = make(events=hit(0.5, 1, 1.0))
    sim.advance(0.5)
    sim.apply(0.5, "clock", 5.0)
    assert engine.of("clock") == [("clock", 0.5)]
    rises = [r for r in recorder.rows if r.kind == "trigger" and r.volts > 0]
    assert [(r.time, r.output) for r in rises] == [(0.5, 1)]
