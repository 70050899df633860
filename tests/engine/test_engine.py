"""Engine end to end on the fake ONNX model (real ModelRunner, real onnxruntime): follow, density,
determinism, re-encode policy, presets, buttons, MIDI clock, the threaded worker."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.config import Settings
from grooverack.engine.engine import Engine, OutputEvent
from grooverack.errors import ConfigError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rig.streams import check_stream

STEP_S = 0.125   # 120 BPM


def engine(runner, threaded=False, **values) -> Engine:
    base = {"clock.source": "internal", "tempo": 120.0, "uncertainty": 0.3}
    return Engine(Settings({**base, **values}), runner, threaded=threaded)


def perform(eng: Engine, onset_steps, loops=4, dt=0.004, velocity=0.9) -> list[OutputEvent]:
    """Start, play onsets at the given loop steps every loop, collect every event."""
    eng.start(0.0)
    times = sorted(loop * 32 * STEP_S + s * STEP_S for loop in range(loops) for s in onset_steps)
    events: list[OutputEvent] = []
    t = 0.0
    end = loops * 32 * STEP_S
    while t < end:
        t = round(t + dt, 9)
        while times and times[0] <= t:
            eng.onset(times.pop(0), velocity=velocity)
        events += eng.advance(t + 0.002)
    return events


def rises(events, loop=None):
    out = [e for e in events if e.kind == "trigger" and e.value == 1.0]
    if loop is not None:
        out = [e for e in out if loop * 32 * STEP_S - STEP_S / 2 <= e.time
               < (loop + 1) * 32 * STEP_S - STEP_S / 2]
    return out


def signature(events):
    return [(round(e.time, 9), e.output, e.kind, round(e.value, 6)) for e in events]


QUARTERS = list(range(0, 32, 4))
OFFBEATS = list(range(2, 32, 4))


def test_follow_one_drums_lock_to_and_change_with_the_groove(fake_runner):
    a = perform(engine(fake_runner, follow=1.0), QUARTERS)
    b = perform(engine(fake_runner, follow=1.0), OFFBEATS)
    last_a = {(round(e.time / STEP_S) % 32, e.output) for e in rises(a, loop=3)}
    last_b = {(round(e.time / STEP_S) % 32, e.output) for e in rises(b, loop=3)}
    assert last_a != last_b
    for played, events in ((QUARTERS, a), (OFFBEATS, b)):
        hit_steps = {round(e.time / STEP_S) % 32 for e in rises(events, loop=3)}
        coincide = sum(step in hit_steps for step in played) / len(played)
        assert coincide >= 0.8, f"only {coincide:.0%} of the input onsets got a drum hit"


def test_follow_zero_drums_do_not_depend_on_the_input(fake_runner):
    runs = [perform(engine(fake_runner, follow=0.0, uncertainty=0.6), steps)
            for steps in (QUARTERS, OFFBEATS, [])]
    assert rises(runs[0])
    assert signature(runs[0]) == signature(runs[1]) == signature(runs[2])


def test_uncertainty_varies_loops_zero_repeats_them(fake_runner):
    def loops(eng):
        ev = perform(eng, [], loops=4)
        return [sorted((round(e.time / STEP_S) % 32, e.output) for e in rises(ev, loop=k))
                for k in range(4)]

    steady = loops(engine(fake_runner, follow=0.0, uncertainty=0.0))
    assert steady[0] == steady[1] == steady[2] == steady[3]
    wild = loops(engine(fake_runner, follow=0.0, uncertainty=1.0))
    assert len({tuple(x) for x in wild}) > 1


def test_same_inputs_same_render(fake_runner):
    a = perform(engine(fake_runner, follow=0.8), QUARTERS + [13, 27])
    b = perform(engine(fake_runner, follow=0.8), QUARTERS + [13, 27])
    assert signature(a) == signature(b)
    times = [e.time for e in a]
    assert times == sorted(times)


def test_density_zero_silences_everything_and_per_voice(fake_runner):
    silent = perform(engine(fake_runner, follow=1.0, density=0.0), QUARTERS, loops=2)
    assert not rises(silent)
    assert [e for e in silent if e.kind == "clock"]             # the clock still runs
    no_kick = perform(engine(fake_runner, follow=1.0, **{"density.kick": 0.0}), QUARTERS, loops=2)
    assert rises(no_kick) and not [e for e in rises(no_kick) if e.voice == 0]
    muted = perform(engine(fake_runner, follow=1.0, **{"mute.snare": True}), QUARTERS, loops=2)
    assert not [e for e in rises(muted) if e.voice == 1]


def test_density_control_takes_effect_at_the_next_step(fake_runner):
    eng = engine(fake_runner, follow=1.0, density=1.0)
    eng.start(0.0)
    assert rises(eng.advance(10 * STEP_S))
    eng.set_control("density", 0.0)
    assert eng.advance(10 * STEP_S + 0.01) is not None
    later = eng.advance(20 * STEP_S)
    assert not [e for e in rises(later) if e.time > 11 * STEP_S]


def test_reencode_every_loop_waits_for_the_loop(fake_runner):
    eng = engine(fake_runner, follow=1.0, **{"generation.reencode": "loop"})
    eng.start(0.0)
    eng.advance(4 * STEP_S)
    first = eng.pattern
    eng.onset(5 * STEP_S, velocity=1.0)
    eng.advance(30 * STEP_S)
    assert eng.pattern is first and eng.groove[5, 0] == 1.0
    # a first groove is read from the first boundary after its first onset (with reencode =
    # loop: step 32, committed at 31.5), bar-filled (steps 5..31 heard: here nothing to fill),
    # and nothing changes before the next loop boundary
    encodes = eng.generator.encodes
    eng.advance(31 * STEP_S)
    assert eng.pattern is first and eng.generator.encodes == encodes
    eng.advance(33 * STEP_S)
    assert eng.pattern.info["groove_version"] >= 1 and eng.generator.encodes == encodes + 1
    eng.onset(40 * STEP_S, velocity=1.0)
    eng.advance(62 * STEP_S)
    assert eng.generator.encodes == encodes + 1
    eng.advance(64 * STEP_S)
    assert eng.generator.encodes == encodes + 2 and eng.pattern.info["groove_version"] >= 2


def test_a_first_groove_is_followed_from_the_first_bar_line_then_whole(fake_runner):
    """A line starting into an empty groove is followed from the first bar line after its first
    onset, the heard bar copied over the unheard one (a half-heard loop would encode as a
    half-empty groove and silence the drums), renewed at each bar line until a whole loop was
    heard; then the groove itself, and later changes at the next bar line."""
    eng = engine(fake_runner, follow=1.0)
    eng.start(0.0)
    eng.advance(STEP_S)
    first = eng.pattern
    encodes = eng.generator.encodes
    for step in range(2, 33, 2):
        eng.advance((step - 0.1) * STEP_S)
        eng.onset(step * STEP_S, velocity=0.9)
        if step == 14:  # before the bar line: still A/B
            assert eng.pattern.info["groove_version"] == first.info["groove_version"]
        if step == 18:  # from step 16: the bar heard, read twice
            assert eng.pattern.info["groove_version"] > first.info["groove_version"]
            assert eng.generator.encodes == encodes + 1
    eng.advance(33 * STEP_S)
    # heard since step 2: not a whole loop yet; the bar line at 32 renews the bar-filled groove
    assert eng.generator.encodes == encodes + 2
    eng.advance(35 * STEP_S)
    followed = eng.pattern.info["groove_version"]
    assert followed > first.info["groove_version"]
    eng.onset(41 * STEP_S, velocity=0.5)   # a change of a followed groove: at the bar line
    eng.advance(47 * STEP_S)
    assert eng.pattern.info["groove_version"] == followed
    eng.advance(49 * STEP_S)
    assert eng.pattern.info["groove_version"] > followed


def test_onsets_need_a_running_transport(fake_runner):
    eng = engine(fake_runner)
    assert eng.onset(0.1, velocity=0.5) is False
    eng.start(1.0)
    assert eng.onset(1.3, pitch_volts=1.0) is True
    step = round((1.3 - 1.0) / STEP_S)
    assert eng.groove[step, 0] == 1.0


def test_presets_round_trip_and_buttons(fake_runner):
    eng = engine(fake_runner, follow=0.0, morph=0.3)
    saved = eng.save_preset(2)
    assert saved["panel"]["morph"] == 0.3 and len(saved["a"]) == eng.generator.latent_size
    z_a = eng.generator.z_a.copy()
    eng.press("randomize_a")
    eng.set_control("morph", 0.9)
    assert not np.array_equal(eng.generator.z_a, z_a)
    eng.recall_preset(2)
    assert np.array_equal(eng.generator.z_a, z_a) and eng.settings["morph"] == 0.3
    other = engine(fake_runner)
    other.recall_preset(7, saved)                            # from a plain dict (storage)
    assert np.array_equal(other.generator.z_a, z_a)
    assert eng.press("record") == "off" or eng.settings["record"] in ("record", "overdub", "off")
    with pytest.raises(ValueError, match="unknown button"):
        eng.press("launch")
    with pytest.raises(ValueError, match="empty"):
        eng.recall_preset(9)


def test_recall_button_on_an_empty_slot_is_logged_not_raised(fake_runner, caplog):
    """A button cannot be refused: the panel's, the ES-9's and MIDI's presses all reach
    Engine.press, and an empty preset slot must not stop the loop that pressed it."""
    eng = engine(fake_runner)
    eng.preset_slot = 5
    z_a = eng.generator.z_a.copy()
    with caplog.at_level("WARNING", logger="grooverack.engine"):
        assert eng.press("recall_preset") is None
    assert "preset 5 is empty" in caplog.text
    assert np.array_equal(eng.generator.z_a, z_a)


def test_randomize_changes_an_independent_pattern(fake_runner):
    eng = engine(fake_runner, follow=0.0, uncertainty=0.0, density=0.8)
    eng.start(0.0)
    eng.advance(STEP_S)
    before = eng.pattern
    eng.press("randomize_a")
    eng.advance(3 * STEP_S)
    assert not eng.pattern.same_as(before)


def test_set_control_validates(fake_runner):
    eng = engine(fake_runner)
    with pytest.raises(ConfigError, match="folow"):
        eng.set_control("folow", 0.5)
    with pytest.raises(ConfigError, match="'follow'.*1.5"):
        eng.set_control("follow", 1.5)
    with pytest.raises(ConfigError, match="restart"):
        eng.set_control("model.variant", "fp32")
    with pytest.raises(ConfigError, match="genre"):
        eng.set_control("genre", "rock")                     # the fake model has no genres
    assert eng.set_control("tempo", 90) == 90.0 and eng.clock.tempo == 90.0


def test_midi_clock_drives_the_engine(fake_runner):
    eng = Engine(Settings({"clock.source": "midi", "follow": 0.0, "density": 1.0,
                           "outputs.clock_ppqn": 4}), fake_runner)
    tick = 60.0 / 100.0 / 24
    eng.start(0.0)
    assert not rises(eng.advance(0.5))                       # nothing before the first clock
    events = []
    for k in range(24 * 8):
        t = 0.5 + k * tick
        eng.midi_clock(t)
        events += eng.advance(t + 0.002)
    clocks = [e.time for e in events if e.kind == "clock" and e.value == 1.0]
    assert clocks[0] == pytest.approx(0.5)
    assert np.allclose(np.diff(clocks[:30]), 6 * tick, atol=1e-6)
    assert eng.clock.bpm == pytest.approx(100.0, rel=1e-3)


def test_threaded_engine_swaps_in_generated_patterns(fake_runner):
    eng = engine(fake_runner, threaded=True, follow=1.0)
    try:
        eng.start(0.0)
        first = eng.pattern
        for s in QUARTERS:
            eng.onset(s * STEP_S, velocity=0.9)
        t = 0.0
        events = []
        while t < 64 * STEP_S:
            t += 0.01
            events += eng.advance(t)
            eng.generator.wait_idle(5.0)     # let the worker finish before the next step
        assert eng.alive and eng.generator.errors == 0
        assert eng.pattern is not first and eng.pattern.info["groove_version"] >= 1
        times = [e.time for e in events]
        assert times == sorted(times)
    finally:
        eng.close()
    assert not eng.alive


@pytest.mark.parametrize("reset_first", [True, False])
def test_reset_and_clock_together_play_step_zero_once_on_that_edge(fake_runner, reset_first):
    eng = Engine(Settings({"clock.source": "external", "clock.ppqn": 4, "follow": 0.0,
                           "density": 1.0, "quantize": 1.0, "outputs.clock_ppqn": 4}),
                 fake_runner)
    eng.start(0.0)
    events = []
    edge = 1.0 + 20 * STEP_S
    for k in range(24):                      # the 21st edge (step 20) comes with a reset
        t = 1.0 + k * STEP_S
        events += eng.advance(t)
        if k == 20 and reset_first:
            eng.reset(t)
        eng.clock_pulse(t)
        if k == 20 and not reset_first:
            eng.reset(t + 0.0003)
    events += eng.advance(1.0 + 23.5 * STEP_S)
    clock_out = [e for e in events if e.kind == "clock" and e.value == 1.0]
    assert np.allclose(np.diff([e.time for e in clock_out]), STEP_S, atol=0.0005)
    assert [e.step for e in clock_out][-6:] == [18, 19, 0, 1, 2, 3]
    resets = [e for e in events if e.kind == "reset" and e.value == 1.0]
    assert resets[-1].time == pytest.approx(edge, abs=0.0005)
    on_edge = [e for e in rises(events) if edge - 1e-9 <= e.time < edge + STEP_S / 2]
    assert on_edge and all(e.step == 0 for e in on_edge)


def test_reset_after_a_step_that_already_sounded_waits_for_the_next_edge(fake_runner):
    eng = Engine(Settings({"clock.source": "external", "clock.ppqn": 4, "follow": 0.0,
                           "density": 1.0, "quantize": 1.0}), fake_runner)
    eng.start(0.0)
    events = []
    for k in range(24):
        t = 1.0 + k * STEP_S
        eng.clock_pulse(t)
        events += eng.advance(t + 0.001)      # step k sounds at once
        if k == 20:
            eng.reset(t + 0.0015)             # too late for edge 20: edge 21 plays step 0
    events += eng.advance(1.0 + 23.5 * STEP_S)
    clock_out = [e for e in events if e.kind == "clock" and e.value == 1.0]
    assert [e.step for e in clock_out][-5:] == [19, 20, 0, 1, 2]
    assert np.allclose(np.diff([e.time for e in clock_out]), STEP_S, atol=0.0005)


ACTIONS = st.sampled_from(["advance", "advance", "advance", "pulse", "pulse", "midi", "onset",
                           "start", "stop", "continue", "reset", "spp", "control", "press"])


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(ACTIONS, st.floats(0.0005, 0.2), st.floats(0.0, 1.0)),
                min_size=1, max_size=120),
       st.sampled_from(["auto", "internal", "external", "midi"]))
def test_any_sequence_of_calls_gives_a_clean_stream(fake_runner, calls, source):
    eng = engine(fake_runner, **{"clock.source": source, "density": 0.9})
    controls = ["follow", "morph", "uncertainty", "density", "quantize", "tempo", "swing",
                "density.kick", "groove_velocity", "outputs.gate_mode", "clock.ppqn", "record"]
    events: list[OutputEvent] = []
    t = 0.0
    for action, gap, x in calls:
        t += gap
        if action == "advance":
            events += eng.advance(t + 0.003)
        elif action == "pulse":
            eng.clock_pulse(t)
        elif action == "midi":
            eng.midi_clock(t)
        elif action == "onset":
            eng.onset(t, pitch_volts=x * 3)
        elif action == "start":
            eng.start(t)
        elif action == "stop":
            eng.stop(t)
        elif action == "continue":
            eng.continue_(t)
        elif action == "reset":
            eng.reset(t)
        elif action == "spp":
            eng.song_position(t, int(x * 64))
        elif action == "press":
            eng.press(["record", "clear", "randomize_a", "randomize_b"][int(x * 3.99)])
        else:
            name = controls[int(x * (len(controls) - 0.01))]
            value = {"tempo": 20 + 280 * x, "swing": 50 + 25 * x, "outputs.gate_mode": x > 0.5,
                     "clock.ppqn": [1, 2, 4, 8, 24, 48][int(x * 5.99)],
                     "record": ["record", "overdub", "off"][int(x * 2.99)]}.get(name, x)
            eng.set_control(name, value)
    eng.stop(t + 0.01)
    events += eng.advance(t + 1.0)
    check_stream(events, ends_low=True)  # nothing high after the stop


@pytest.fixture(scope="module")
def shipped_runner():
    from grooverack.errors import ModelError
    from grooverack.model.runner import ModelRunner

    try:
        return ModelRunner()
    except ModelError as exc:
        pytest.skip(f"shipped model not usable: {exc}")


def test_shipped_model_follow_zero_genre_and_silence(shipped_runner):
    runs = [perform(engine(shipped_runner, follow=0.0, density=0.7), steps, loops=2)
            for steps in (QUARTERS, OFFBEATS)]
    assert rises(runs[0]) and signature(runs[0]) == signature(runs[1])
    if len(shipped_runner.genres) > 1:
        eng = engine(shipped_runner, follow=0.0, density=0.7)
        eng.set_control("genre", shipped_runner.genres[1])
        assert eng.settings["genre"] == shipped_runner.genres[1]
        perform(eng, [], loops=1)
        assert eng.pattern.info["genre"] == 1
    assert not rises(perform(engine(shipped_runner, density=0.0), QUARTERS, loops=1))


class TempoRecorder:
    """A tempo-conditioned runner: the fake ONNX model, with every decoder call's tempo kept."""

    tempo = True

    def __init__(self, runner) -> None:
        self._runner = runner
        self.bpms: list[float | None] = []

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def decode(self, z, genre=0, bpm=None):
        self.bpms.append(bpm)
        return self._runner.decode(z, genre)


def test_a_tempo_model_hears_the_clock_tempo_in_steps(fake_runner):
    rec = TempoRecorder(fake_runner)
    eng = engine(rec, follow=0.0, tempo=120.0)
    assert rec.bpms == [120.0] and eng.pattern.info["bpm"] == 120.0
    perform(eng, [], loops=1)
    assert rec.bpms == [120.0]                      # nothing changed: no new decode
    eng.set_control("tempo", 123.0)                 # 2.5 %: within the step, same pattern
    perform(eng, [], loops=1)
    assert rec.bpms == [120.0]
    eng.set_control("tempo", 126.0)                 # 5 %: decoded again for 126 BPM
    perform(eng, [], loops=1)
    assert rec.bpms == [120.0, 126.0] and eng.pattern.info["bpm"] == 126.0
    eng.set_control("tempo", 80.0)
    perform(eng, [], loops=1)
    assert rec.bpms[-1] == 80.0


def test_a_tempo_model_follows_an_external_clock_but_not_its_jitter(fake_runner):
    rec = TempoRecorder(fake_runner)
    eng = Engine(Settings({"clock.source": "midi", "follow": 0.0, "tempo": 120.0}), rec)
    rng = np.random.default_rng(7)
    eng.start(0.0)
    t = 0.0
    for bpm, beats in ((90.0, 16), (150.0, 16)):
        tick = 60.0 / bpm / 24
        for _ in range(24 * beats):
            t += tick + rng.uniform(-0.0005, 0.0005)  # a jittery MIDI clock
            eng.midi_clock(t)
            eng.advance(t + 0.002)
        # one decode per tempo reached (the estimate settles within a few beats), none per wobble
        assert rec.bpms[-1] == pytest.approx(bpm, rel=0.04)
    assert len(rec.bpms) <= 1 + 2 * 3


def test_a_model_without_tempo_is_not_given_one(fake_runner):
    assert not fake_runner.tempo
    rec = TempoRecorder(fake_runner)
    rec.tempo = False
    eng = engine(rec, follow=0.0)
    eng.set_control("tempo", 60.0)                  # no new pattern for a tempo it cannot hear
    perform(eng, [], loops=1)
    assert rec.bpms == [0.0] and eng.pattern.info["bpm"] == 0.0   # 0 = unknown, the runner's contract
