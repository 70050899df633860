"""ES-9 back end block by block, without an audio system: the callback and the engine thread's
work driven directly with sample blocks (the JACK test does the same through PortAudio)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from grooverack.backends.es9 import ES9Backend
from grooverack.boards.es9 import parse_board
from grooverack.config import load_settings
from grooverack.engine.player import OutputEvent
from grooverack.runtime.serve import make_engine

SR = 48000
N = 64


def board(**es9):
    table = {"device": "none", "samplerate": SR, "blocksize": N, "safe_min": 0.0, "safe_max": 8.0,
             "inputs": {"gate": 1, "pitch": 2, "velocity_cv": 3, "follow": 4},
             "outputs": {"trigger": [1], "velocity": [2], "clock": 3},
             "calibration": {"inputs": {"2": {"gain": 1.01, "offset": -0.02}},
                             "outputs": {"2": {"gain": 0.98, "offset": 0.05}}}}
    table.update(es9)
    return parse_board(SimpleNamespace(path="t.toml", name="t", data={"es9": table}))


def times(dac_minus_adc: float, adc: float = 0.0):
    return SimpleNamespace(inputBufferAdcTime=adc, outputBufferDacTime=adc + dac_minus_adc,
                           currentTime=adc)


def run_blocks(backend, signal: np.ndarray) -> np.ndarray:
    """Feed [frames, channels] volts through callback + engine-thread work; returns the output."""
    out = []
    scale = np.array([1 / 10.0] * signal.shape[1], dtype=np.float32)
    for a in range(0, len(signal), N):
        block = (signal[a:a + N] * scale).astype(np.float32)
        outdata = np.zeros((N, backend.board.output_channels), dtype=np.float32)
        backend.stream.callback(block, outdata, N, times(N / SR, a / SR), None)
        out.append(outdata.copy())
        while backend.stream.blocks:
            f0, blk, _ = backend.stream.blocks.popleft()
            backend.process_block(f0, blk)
    return np.concatenate(out)


@pytest.fixture
def engine():
    eng = make_engine(load_settings(overrides=["input.velocity_mode=cv"]), threaded=False)
    yield eng
    eng.close()


def test_velocity_cv_mode_calibration_and_control_cv(engine):
    settings = load_settings(overrides=["input.velocity_mode=cv", "es9.cv_volts=5.0"])
    backend = ES9Backend(engine, settings, board(), autostart=False)
    engine.start(0.0)
    sig = np.zeros((N * 20, 4))
    sig[:, 3] = 2.5  # follow CV: half of es9.cv_volts
    sig[300:500, 0] = 5.0  # a gate
    sig[:, 2] = 3.0  # velocity CV
    sig[:, 1] = 1.0
    run_blocks(backend, sig)
    assert [(j, k, f) for j, k, f in backend.edges] == [("gate", "rise", 300), ("gate", "fall", 500)]
    t, pitch, vcv = backend.onsets[0]
    assert t == 300 / SR and pitch is None and vcv == pytest.approx(3.0, abs=1e-6)
    assert engine.settings["follow"] == pytest.approx(0.5, abs=1e-6)
    # input calibration applies: volts = 1.01 * sample * 10 - 0.02 on channel 2
    assert backend.inputs.volts(np.full((1, 4), 0.1, np.float32), "pitch")[0] == pytest.approx(0.99)


def test_outputs_rendered_to_the_sample_after_the_reaction_time(engine):
    settings = load_settings(overrides=["outputs.velocity_volts=10.0"])
    backend = ES9Backend(engine, settings, board(velocity_lead_samples=2), autostart=False)
    out = run_blocks(backend, np.zeros((N, 4)))  # the first block fixes the latency: 64 frames
    assert backend.latency_frames == N
    assert backend.reaction_frames == 2 * N  # answered two blocks after the input frame
    assert backend.delay_s == 3 * N / SR
    t = 0.01  # 480 samples: written at output frame 480 + 128
    backend.schedule([OutputEvent(t, 1, "velocity", 0.9, 0, 0), OutputEvent(t, 1, "trigger", 1.0, 0, 0),
                      OutputEvent(t + 0.005, 1, "trigger", 0.0, 0, 0),
                      OutputEvent(t, 0, "clock", 1.0, 0, -1)])
    out = np.concatenate([out, run_blocks(backend, np.zeros((N * 16, 4)))])
    rise = 480 + 2 * N
    trig, vel, clock = out[:, 0], out[:, 1], out[:, 2]
    assert trig[rise - 1] == 0 and np.all(trig[rise:rise + 240] == np.float32(0.5))
    assert trig[rise + 240] == 0
    # velocity CV 2 samples before its trigger, clamped to safe_max (9 V -> 8 V), calibrated
    want = np.float32((8.0 - 0.05) / (0.98 * 10))
    idle = np.float32((0.0 - 0.05) / (0.98 * 10))  # 0 V through the channel's calibration
    assert vel[0] == idle and vel[rise - 3] == idle
    assert np.all(vel[rise - 2:] == want)
    assert clock[rise] == np.float32(0.5) and clock[rise - 1] == 0
    assert backend.late_events == 0


def test_late_changes_land_at_the_block_start(engine):
    backend = ES9Backend(engine, load_settings(), board(), autostart=False)
    run_blocks(backend, np.zeros((N * 4, 4)))  # frames 0..255 done
    backend.schedule([OutputEvent(100 / SR, 1, "trigger", 1.0, 0, 0)])  # frame 100 + 128: past
    out = run_blocks(backend, np.zeros((N, 4)))
    assert out[0, 0] == np.float32(0.5) and backend.late_events == 1


def test_a_pulse_that_comes_late_plays_late_at_its_width():
    """A trigger's rise past (the engine thread held up): the pulse plays from the block's first
    sample at its own width, its fall carried into the next block where the pulse is longer
    than what is left of this one; before, a fall that was past too overwrote the rise (the hit
    lost) and one on time cut the pulse short."""
    from grooverack.backends.es9.outputs import LevelQueue

    q = LevelQueue(np.zeros(3, np.float32))
    frames = 64
    q.extend([(900, 0, 1.0), (910, 1, 1.0), (920, 2, 1.0), (948, 0, 0.0),  # 0: 48 wide, all past
              (1010, 1, 0.0),                                              # 1: 100 wide
              (1100, 2, 0.0)])                                             # 2: 180 wide
    out = np.zeros((frames, 3), np.float32)
    q.render(out, 1000, frames)
    assert np.all(out[:48, 0] == 1.0) and np.all(out[48:, 0] == 0.0)
    assert np.all(out[:, 1:] == 1.0) and q.late_events == 3  # the rises; the falls kept width
    q.render(out, 1000 + frames, frames)
    assert np.all(out[:, 0] == 0.0) and np.all(out[:, 2] == 1.0)
    assert np.all(out[:100 - frames, 1] == 1.0) and np.all(out[100 - frames:, 1] == 0.0)
    q.render(out, 1000 + 2 * frames, frames)
    assert np.all(out[:180 - 2 * frames, 2] == 1.0) and np.all(out[180 - 2 * frames:, 2] == 0.0)
    q.render(out, 1000 + 3 * frames, frames)
    assert np.all(out == 0.0) and q.carried == [] and q.moved == {}
    # on time again: every change at its own sample
    q.extend([(1300, 0, 1.0), (1310, 0, 0.0)])
    q.render(out, 1280, frames)
    assert np.all(out[20:30, 0] == 1.0) and out[19, 0] == 0.0 and np.all(out[30:, 0] == 0.0)


@pytest.mark.parametrize("jack, low, high", [("tempo", 20.0, 300.0), ("swing", 50.0, 75.0)])
def test_control_cv_lands_in_the_schema_range(engine, jack, low, high):
    """A tempo or swing CV is scaled into its schema range, not passed on as 0..1 (which the
    engine refuses with ConfigError, killing the engine thread while audio keeps playing)."""
    settings = load_settings(overrides=["es9.cv_volts=5.0"])
    b = board(inputs={"gate": 1, "pitch": 2, "velocity_cv": 3, jack: 4})
    backend = ES9Backend(engine, settings, b, autostart=False)
    engine.start(0.0)
    sig = np.zeros((N * 8, 4))
    sig[:, 3] = 1.25  # a quarter of es9.cv_volts
    run_blocks(backend, sig)  # the engine thread's work: must not raise
    assert engine.settings[jack] == pytest.approx(low + 0.25 * (high - low), abs=1e-6)
    sig[:, 3] = 7.0  # above es9.cv_volts: the top of the range, no further
    run_blocks(backend, sig)
    assert engine.settings[jack] == pytest.approx(high)


def test_output_samples_go_through_the_calibration(engine):
    """Volts -> samples through `calibration.Calibration` (as on the Pi): with no file the board's
    [es9.calibration] exactly as before, with a file its per-volt table, the safe range kept."""
    from grooverack.calibration import OutputCal, es9_calibration

    b = board()
    plain = ES9Backend(engine, load_settings(), b, autostart=False)
    for ch in (1, 2, 3):
        for volts in (-3.0, 0.0, 2.5, 7.9, 9.0):
            assert plain.to_sample(ch, volts) == b.to_sample(ch, volts)
    assert plain.to_sample(2, 9.0) == plain.to_sample(2, 8.0)  # safe_max 8 V
    measured = es9_calibration(b)
    measured.output_cal["velocity_1"] = OutputCal(9.9, 0.0, "table",
                                                  ((0.0, 0.0), (4.0, 0.4), (8.0, 0.78)))
    backend = ES9Backend(engine, load_settings(), b, autostart=False, calibration=measured)
    assert backend.to_sample(2, 6.0) == pytest.approx(0.59)  # between the table's points
    assert backend.to_sample(2, 12.0) == pytest.approx(0.78)  # clamped to safe_max first
    assert backend.to_sample(1, 5.0) == b.to_sample(1, 5.0)  # trigger_1: the board's scaling
    assert backend.zero_levels[1] == np.float32(0.0)
    backend.stream.latency_frames = 0
    velocity = 6.0 / load_settings()["outputs.velocity_volts"]  # gives 6 V
    backend.schedule([OutputEvent(0.0, 1, "velocity", velocity, 0, 0)])
    assert backend.levels.queue[-1][2] == pytest.approx(0.59)


@pytest.mark.parametrize("ppqn", [4, 24])
def test_external_clock_starts_from_its_first_pulse(ppqn):
    """clock.source=external on the ES-9: a Eurorack clock has no Start message, so the drums
    start from the first pulse (this back end used to wait for a Start that never came)."""
    settings = load_settings(overrides=["clock.source=external", f"clock.ppqn={ppqn}",
                                        "density=1.0", "follow=0.0"])
    eng = make_engine(settings, threaded=False)
    backend = ES9Backend(eng, settings, board(inputs={"gate": 1, "clock": 2}))
    bpm = 120.0
    period = int(SR * 60 / bpm / ppqn)
    sig = np.zeros((period * ppqn * 4 + N, 2))  # one bar of pulses
    for k in range(ppqn * 4):
        sig[k * period + 100:k * period + 100 + 240, 1] = 5.0
    events = []
    for a in range(0, len(sig), N):  # as the engine thread does: a block in, then advance
        run_blocks(backend, sig[a:a + N])
        events += eng.advance((a + N) / SR)
    rises = [f for jack, kind, f in backend.edges if jack == "clock" and kind == "rise"]
    assert len(rises) == ppqn * 4 and rises[0] == 100
    triggers = [e for e in events if e.kind == "trigger" and e.value > 0]
    assert triggers, "nothing played on an external clock"
    assert min(e.time for e in triggers) == pytest.approx(100 / SR, abs=1e-9)  # step 0 on pulse 1
    eng.close()
