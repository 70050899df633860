"""The panel's buttons and accent jacks on the ES-9 (issue 19, item 5), block by block without an
audio system: button gates through the gate's Schmitt trigger become `Engine.press` at their
frame; accent outputs rise and fall with their triggers on the same samples; clock and reset out
follow `outputs.mode.*`; the board file is checked (channels, one jack per channel, actions).
The same through a real JACK server: tests/backends/test_es9_jack.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from grooverack.backends.es9 import ES9Backend
from grooverack.boards.es9 import parse_board
from grooverack.config import PRESS_ACTIONS, load_settings
from grooverack.engine.player import OutputEvent
from grooverack.errors import ConfigError
from grooverack.runtime.serve import make_engine

SR = 48000
N = 64
VPU = 10.0


def board(inputs=None, outputs=None, path="t.toml", **es9):
    table = {"device": "none", "samplerate": SR, "blocksize": N, "trigger_volts": 5.0,
             "inputs": {"gate": 1, "pitch": 2} if inputs is None else inputs,
             "outputs": ({"trigger": [1, 2], "velocity": [3, 4], "accent": [5, 6]}
                         if outputs is None else outputs)}
    table.update(es9)
    return parse_board(SimpleNamespace(path=path, name="t", data={"es9": table}))


def times(adc: float):
    return SimpleNamespace(inputBufferAdcTime=adc, outputBufferDacTime=adc + N / SR,
                           currentTime=adc)


def run(backend, signal: np.ndarray, engine=None) -> np.ndarray:
    """[frames, channels] volts through the callback and the engine thread's work (with
    `engine`: its events scheduled as the engine loop does); returns the output samples."""
    out = []
    start = backend.stream.frame
    for a in range(0, len(signal), N):
        block = (signal[a:a + N] / VPU).astype(np.float32)
        outdata = np.zeros((N, backend.board.output_channels), dtype=np.float32)
        backend.stream.callback(block, outdata, N, times((start + a) / SR), None)
        out.append(outdata.copy())
        while backend.stream.blocks:
            f0, blk, _ = backend.stream.blocks.popleft()
            backend.process_block(f0, blk)
        if engine is not None:
            now = backend.inputs.processed / SR
            backend.schedule(engine.advance(now + backend.reaction_frames / 2 / SR))
    return np.concatenate(out)


def runs(x: np.ndarray, level: float = 0.2):
    """(start, length) of each run of samples above level."""
    high = np.concatenate(([False], x > level, [False]))
    d = np.diff(high.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


@pytest.fixture
def engine():
    eng = make_engine(load_settings(overrides=["clock.source=internal", "density=1.0",
                                               "uncertainty=0.0"]), threaded=False)
    yield eng
    eng.close()


# --- the board file

@pytest.mark.parametrize("inputs, outputs, match", [
    ({"gate": 1, "mute_kick": 1}, None,
     r"t\.toml: key 'es9\.inputs\.mute_kick' = 1; allowed: a channel no other jack uses "
     r"\(es9\.inputs\.gate has channel 1\)"),
    ({"gate": 1, "mute_kik": 3}, None,
     r"key 'es9\.inputs\.mute_kik' = 3; allowed: jacks gate, pitch.*or buttons .*mute_kick"),
    ({"gate": 1, "shift": 3}, None, r"es9\.inputs\.shift.*the ES-9 has no pots"),
    ({"next_style": 65}, None, r"es9\.inputs\.next_style' = 65; allowed: a host channel number"),
    ({"next_style": True}, None, r"es9\.inputs\.next_style' = True"),
    (None, {"trigger": [1, 2], "accent": [2]},
     r"key 'es9\.outputs\.accent' = 2; allowed: a channel no other jack uses "
     r"\(es9\.outputs\.trigger \(output 2\) has channel 2\)"),
    (None, {"trigger": [1], "velocity": [2], "reset": 2}, r"es9\.outputs\.reset' = 2"),
    (None, {"trigger": [1], "clock": 3, "reset": 3}, r"es9\.outputs\.reset' = 3.*outputs\.clock"),
    (None, {"accent": [0, 70]}, r"es9\.outputs\.accent' = 70; allowed: a host channel"),
    (None, {"accent": 9}, r"es9\.outputs\.accent' = 9; allowed: a list of host channels"),
    (None, {"accents": [9]}, r"es9\.outputs\.accents.*accent, clock, reset, trigger, velocity"),
])
def test_board_file_is_checked(inputs, outputs, match):
    with pytest.raises(ConfigError, match=match):
        board(inputs, outputs)


def test_every_press_action_maps_to_a_gate_input():
    inputs = {action: ch for ch, action in enumerate(PRESS_ACTIONS, start=3)}
    b = board({"gate": 1, "pitch": 2, **inputs, "mute_snare": 0})  # 0 = not patched
    assert b.buttons == {a: ch for a, ch in inputs.items() if a != "mute_snare"}
    assert "next_style" not in b.inputs  # buttons are not CV jacks (nothing to calibrate)
    assert b.input_channels == max(inputs.values())
    assert board(outputs={"trigger": [1], "accent": [0, 7]}).output_channels == 7


# --- button gates -> Engine.press

def test_a_button_gate_presses_on_its_rise_through_the_schmitt_trigger(engine):
    settings = load_settings(overrides=["es9.threshold=1.0", "es9.hysteresis=0.5"])
    b = board({"gate": 1, "next_style": 2, "mute_kick": 3})
    backend = ES9Backend(engine, settings, b, autostart=False)
    engine.start(0.0)
    offered = engine.offered_styles
    sig = np.zeros((N * 40, 3))
    sig[300:800, 1] = 5.0                                        # a press ...
    sig[900:1100, 1] = np.where(np.arange(200) % 5 < 2, 1.2, 0.8)  # chatter in the band: none
    sig[1200:1700, 1] = np.linspace(0.0, 5.0, 500)               # a slow rise: above 1.25 V
    sig[1000:1100, 2] = 5.0                                      # mute_kick, then again
    sig[2000:2050, 2] = 5.0
    run(backend, sig)
    ramp_edge = 1200 + int(np.flatnonzero(np.linspace(0.0, 5.0, 500) > 1.25)[0])
    assert list(backend.presses) == [("next_style", 300, offered[1]), ("mute_kick", 1000, True),
                                     ("next_style", ramp_edge, offered[2]),
                                     ("mute_kick", 2000, False)]
    assert engine.settings["genre"] == offered[2] and not engine.settings["mute.kick"]
    assert ("next_style", "fall", 800) in backend.edges


def test_a_press_that_cannot_act_is_logged_and_the_engine_thread_goes_on(engine, caplog):
    b = board({"gate": 1, "recall_preset": 2, "save_preset": 3})
    backend = ES9Backend(engine, load_settings(), b, autostart=False)
    engine.start(0.0)
    sig = np.zeros((N * 20, 3))
    sig[100:200, 1] = 5.0  # recall an empty slot
    sig[400:500, 2] = 5.0  # save it
    sig[700:800, 1] = 5.0  # recall it
    run(backend, sig)
    assert [(a, f) for a, f, _ in backend.presses] == [("recall_preset", 100),
                                                       ("save_preset", 400),
                                                       ("recall_preset", 700)]
    assert backend.presses[0][2] is None and "recall_preset: preset 1 is empty" in caplog.text
    assert backend.presses[2][2]["slot"] == 1


def test_a_mute_gate_silences_its_groups_trigger_channel(engine):
    settings = load_settings(overrides=["clock.source=internal", "generation.on_mute=silence"])
    b = board({"gate": 1, "mute_kick": 2}, {"trigger": [1, 2], "velocity": []})
    backend = ES9Backend(engine, settings, b)
    press = SR  # one second in: 8 steps at 120 BPM, then mute the kick
    sig = np.zeros((3 * SR, 2))
    sig[press:press + 480, 1] = 5.0
    out = run(backend, sig, engine)
    kicks = [a for a, _ in runs(out[:, 0])]
    snares = [a for a, _ in runs(out[:, 1])]
    assert backend.presses[0][:2] == ("mute_kick", press)
    assert [a for a in kicks if a < press], "no kick before the mute"
    # (a step already committed may still sound: from the one after the next on, silence)
    assert not [a for a in kicks if a > press + backend.reaction_frames + 2 * SR // 8]
    assert [a for a in snares if a > press + SR // 2], "the other voices play on"


# --- accent outputs

def test_accent_rises_and_falls_with_accented_triggers_only(engine):
    settings = load_settings(overrides=["outputs.accent_threshold=0.7",
                                        "outputs.velocity_volts=8.0"])
    backend = ES9Backend(engine, settings, board(), autostart=False)
    run(backend, np.zeros((N, 2)))  # the first block: latency and reaction time
    react = backend.reaction_frames
    hits = [(0.01, 1, 0.9), (0.02, 1, 0.5), (0.03, 1, 0.7), (0.04, 2, 0.69), (0.05, 2, 1.0)]
    events = []
    for t, out, vel in hits:
        events += [OutputEvent(t, out, "velocity", vel, 0, out - 1),
                   OutputEvent(t, out, "trigger", 1.0, 0, out - 1),
                   OutputEvent(t + 0.005, out, "trigger", 0.0, 0, out - 1)]
    backend.schedule(sorted(events, key=lambda e: (e.time, e.order)))
    out = np.concatenate([np.zeros((N, 6), np.float32), run(backend, np.zeros((N * 60, 2)))])

    def frame(t):
        return round(t * SR) + react

    width = round(0.005 * SR)
    assert runs(out[:, 0]) == [(frame(t), width) for t, o, _ in hits if o == 1]
    assert runs(out[:, 4]) == [(frame(0.01), width), (frame(0.03), width)]  # 0.9, 0.7: accents
    assert runs(out[:, 5]) == [(frame(0.05), width)]                        # 0.69 is not
    assert set(np.unique(out[:, 4:6])) == {np.float32(0.0), np.float32(0.5)}  # trigger_volts
    kinds = {ev.kind for *_, ev in backend.scheduled}
    assert "accent" in kinds and backend.late_events == 0


def test_accents_follow_the_players_velocity_cv_after_scale_and_accent(engine):
    """The accent decides on the velocity CV written for the hit: after outputs.accent (a hit
    at the threshold jumps to full and accents) and outputs.scale.N (a scaled-down output
    accents less: the panel's accent jacks do the same)."""
    settings = load_settings(overrides=["clock.source=internal", "outputs.accent=true",
                                        "outputs.accent_threshold=0.6", "outputs.scale.3=0.5"])
    for key in ("outputs.accent", "outputs.accent_threshold", "outputs.scale.3"):
        engine.set_control(key, settings[key])
    # engine outputs 2 (snare) and 3 (closed hat) on channels 1 and 2
    b = board({"gate": 1}, {"trigger": [0, 1, 2], "velocity": [0, 3, 4], "accent": [0, 5, 6]})
    backend = ES9Backend(engine, settings, b)
    out = run(backend, np.zeros((2 * SR, 1)), engine)
    velocity_cv = out[:, 2] * VPU / settings["outputs.velocity_volts"]
    rises = [a for a, _ in runs(out[:, 0])]
    accented = {a for a, _ in runs(out[:, 4])}
    assert accented and len(accented) < len(rises), "the snare's hits should be mixed"
    assert accented == {a for a in rises if velocity_cv[a] >= 0.6 - 1e-6}
    assert np.allclose(velocity_cv[sorted(accented)], 1.0)  # outputs.accent: full
    assert set(runs(out[:, 4])) <= set(runs(out[:, 0]))  # same rise, same fall
    assert runs(out[:, 1]) and not runs(out[:, 5])  # scale 0.5: never 0.6


# --- clock and reset out: outputs.mode

@pytest.mark.parametrize("mode", ["trigger", "gate"])
def test_clock_and_reset_out_follow_outputs_mode(engine, mode):
    settings = load_settings(overrides=["clock.source=internal", "tempo=120",
                                        "outputs.clock_ppqn=4", "outputs.trigger_ms=5",
                                        f"outputs.mode.clock={mode}", f"outputs.mode.reset={mode}"])
    for key in ("outputs.clock_ppqn", "outputs.mode.clock", "outputs.mode.reset"):
        engine.set_control(key, settings[key])
    b = board({"gate": 1}, {"trigger": [1], "clock": 2, "reset": 3})
    backend = ES9Backend(engine, settings, b)
    out = run(backend, np.zeros((SR, 1)), engine)
    clock, reset = runs(out[:, 1]), runs(out[:, 2])
    step = SR // 8  # a 16th at 120 BPM: 6000 frames, one clock pulse at 4 PPQN
    assert len(clock) >= 7 and np.all(np.diff([a for a, _ in clock]) == step)
    assert {n for _, n in clock} == {step // 2 if mode == "gate" else 240}  # a square wave
    assert len(reset) == 1 and reset[0][0] == clock[0][0]  # with the first step, once
    assert reset[0][1] == (step // 2 if mode == "gate" else 240)


def test_accent_channels_are_calibration_outputs():
    """An accent jack is written through the calibration like the triggers (`accent_N`), so
    `grooverack calibrate` offers it and a measured gain/offset reaches its samples."""
    from grooverack.calibration import (
        Calibration,
        OutputCal,
        es9_calibration,
        es9_channels,
        es9_output_channels,
    )

    b = board()
    names = es9_output_channels(b)
    assert names["accent_1"] == 5 and names["accent_2"] == 6
    _, outputs = es9_channels(SimpleNamespace(path="t.toml", name="t", data={"es9": {
        "device": "none", "inputs": {"gate": 1}, "outputs": {"trigger": [1], "accent": [2]}}}))
    assert "accent_1" in outputs
    measured = Calibration("t", {}, {})
    measured.output_cal["accent_1"] = OutputCal(9.0, 0.1, "fit")
    cal = es9_calibration(b, measured)
    assert cal.to_code("accent_1", 4.6) == pytest.approx(0.5)  # (4.6 - 0.1) / 9


def test_a_per_voice_control_jack_may_be_written_as_a_plain_dotted_toml_key():
    """`density.kick = 5` unquoted is a nested table to TOML: it is the jack density.kick."""
    import tomllib

    data = tomllib.loads('[es9]\ndevice = "none"\n[es9.inputs]\ngate = 1\ndensity.kick = 5\n'
                         '"density.snare" = 6\n[es9.outputs]\ntrigger = [9]\n')
    b = parse_board(SimpleNamespace(path="t.toml", name="t", data=data))
    assert b.inputs == {"gate": 1, "density.kick": 5, "density.snare": 6}
    data["es9"]["inputs"]["density"]["bass"] = 7
    with pytest.raises(ConfigError, match=r"es9\.inputs\.density\.bass"):
        parse_board(SimpleNamespace(path="t.toml", name="t", data=data))
