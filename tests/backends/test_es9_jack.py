"""ES-9 back end through a real JACK server and PortAudio's JACK host API.

Two JACK test clients stand in for the ES-9: `es9test-in` sends gate and pitch CV as audio into
the back end (its output ports are the "device"'s input channels), `es9test-out` captures what
the back end writes (its input ports are the output channels). Both run in the same JACK cycles,
so a sample's JACK frame number is one clock for the test, the back end and the engine.
Checked: edges found to the sample (Schmitt thresholds, hysteresis, chatter), pitch read a settle
time after the edge, trigger widths in samples and voltages, velocity CV held and clamped to the
safe range, and every output change on the JACK frame the player scheduled once the reported
latency is taken off; button gates pressed (a style change, a mute that silences its trigger
channel), accent channels with their accented triggers only, clock and reset out by
outputs.mode.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from grooverack.backends.es9 import ES9Backend, refresh_devices
from grooverack.boards.es9 import parse_board
from grooverack.config import load_settings
from grooverack.controls import SchmittGate
from grooverack.errors import ConfigError
from grooverack.runtime.serve import make_engine

from tests.rig.jackserver import AudioRig, MidiRig, jack_audio_server  # noqa: F401  (fixture)

SR = 48000
DURATION = 3 * SR  # frames of test signal
VPU = 10.0  # volts per sample unit

BOARD = {
    "kind": "es9", "name": "es9 test",
    "es9": {
        "input_device": "es9test-in", "output_device": "es9test-out",
        "samplerate": SR, "blocksize": 1024, "safe_min": -1.0, "safe_max": 4.5, "trigger_volts": 4.0,
        "inputs": {"gate": 1, "pitch": 2, "clock": 3},
        "outputs": {"trigger": [1, 2, 3, 4], "velocity": [5, 6, 7, 8]},
    },
}


def board(data=BOARD, path="test-es9.toml"):
    return SimpleNamespace(name="es9 test", kind="es9", path=path, data=data)


def build_signal():
    """Gate (ch 1) and pitch (ch 2) in volts, and the frames where rising edges must be found."""
    gate = np.zeros(DURATION)
    pitch = np.zeros(DURATION)
    edges, pitches = [], []
    # the sequencer moves its pitch 20 samples after the gate (a slewed CV): the back end must
    # read it a settle time (1 ms = 48 samples) after the edge, not at the edge
    for i, (start, volts) in enumerate([(6000, 0.5), (18000, 1.5), (30000, -1.0), (42000, 2.0),
                                        (54000, 0.25), (66000, 3.0), (78000, 1.0)]):
        pitch[start + 20:] = volts
        pitches.append(volts)
        if i == 1:  # a slow ramp: the edge is where it reaches threshold + hysteresis / 2 (one
            ramp = np.linspace(0.0, 5.0, 201)  # sample lands on 1.25 exactly: it rises there,
            gate[start:start + 201] = ramp     # as every SchmittGate does)
            gate[start + 201:start + 480] = 5.0
            edges.append(start + int(np.flatnonzero(ramp >= 1.25)[0]))
        elif i == 2:  # chatter inside the hysteresis band first: one edge, when it leaves the band
            gate[start - 300:start] = np.where(np.arange(300) % 7 < 3, 1.2, 0.8)
            gate[start:start + 480] = 5.0
            edges.append(start)
        else:
            gate[start:start + 480] = 5.0
            edges.append(start)
        if i == 3:  # falls only into the band first: stays high, then falls below it
            gate[start + 480:start + 900] = 1.0
    return gate, pitch, edges, pitches


CLOCK_BPM = 100.0
CLOCK_EVERY = round(SR * 15 / CLOCK_BPM)  # 4 PPQN: a pulse every 16th (7200 frames)


def build_clock():
    """An external clock at 4 PPQN, 5 ms pulses at 5 V; frames of its rising edges."""
    clock = np.zeros(DURATION)
    starts = list(range(1000, DURATION - 300, CLOCK_EVERY))
    for a in starts:
        clock[a:a + 240] = 5.0
    return clock, starts


def runs(x: np.ndarray, level: float):
    """(start, length) of each run of samples above level."""
    high = np.concatenate(([False], x > level, [False]))
    d = np.diff(high.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


def test_schmitt_hysteresis_unit():
    s = SchmittGate.centred(1.0, 0.5)  # rises at 1.25 or above, falls at 0.75 or below
    rise, fall = s.edges(np.array([0.0, 1.2, 0.8, 1.3, 1.0, 0.8, 0.7, 2.0]))
    assert rise.tolist() == [3, 7] and fall.tolist() == [6]
    rise, fall = s.edges(np.array([1.0, 0.74]))  # state carries over between blocks
    assert rise.tolist() == [] and fall.tolist() == [1]
    rise, fall = s.edges(np.array([1.25, 1.0, 0.75]))  # at a threshold: as the panel's gate
    assert rise.tolist() == [0] and fall.tolist() == [2]
    gate = SchmittGate(1.25, 0.75)  # the scalar reading of the same trigger agrees
    assert [gate.update(v) for v in (1.25, 1.0, 0.75, 0.76)] == [True, None, False, None]


def test_board_refuses_unknown_keys():
    bad = {"kind": "es9", "name": "x", "es9": {**BOARD["es9"], "outputs": {"trigers": [1]}}}
    with pytest.raises(ConfigError, match=r"bad\.toml.*es9\.outputs\.trigers"):
        parse_board(board(bad, "bad.toml"))
    bad = {"kind": "es9", "name": "x", "es9": {**BOARD["es9"], "inputs": {"gait": 1}}}
    with pytest.raises(ConfigError, match=r"es9\.inputs\.gait"):
        parse_board(board(bad, "bad.toml"))
    bad = {"kind": "es9", "name": "x", "es9": {**BOARD["es9"], "sample_rate": 44100}}
    with pytest.raises(ConfigError, match=r"es9\.sample_rate"):
        parse_board(board(bad, "bad.toml"))


def test_shipped_es9_boards_parse(repo_root):
    from grooverack.boards.board import load_board

    es9 = parse_board(load_board("es9"))
    assert es9.inputs["gate"] == 1 and es9.inputs["pitch"] == 2
    assert es9.trigger == [9, 10, 11, 12]  # the ES-9's DC-coupled outputs 1-4
    both = parse_board(load_board("es9-poly2"))
    assert both.trigger == [] and both.midi["profile"] == "poly2"


def capture(server, signal, settings, tmp_path, b=None, inputs=8, snapshot=None):
    """One take: the back end runs while the rig plays the signal and records the outputs
    (`inputs` channels of board `b`); `snapshot(engine)` is kept instead of the groove."""
    import sounddevice as sd

    rig = AudioRig(server, signal / VPU, tmp_path, source="es9test-in",
                   sink="es9test-out", inputs=inputs, tail=SR)
    engine = make_engine(settings, threaded=True)
    refresh_devices()  # PortAudio reads the JACK clients that exist now
    backend = ES9Backend(engine, settings, b or board())
    try:
        backend.start()
        assert 0.0 <= backend.wait_latency() < 0.1
        rig.go()
        cap, xruns = rig.result()
        groove_hits = (snapshot(engine) if snapshot is not None
                       else (int(engine.groove[:, 0].sum()), engine.clock.bpm))
    finally:
        backend.stop()
        engine.close()
        sd._terminate()  # before the server goes away
        rig.close()
    return cap, xruns, backend, groove_hits


@pytest.mark.jack
@pytest.mark.parametrize("transport", ["jack", "portaudio"])
def test_es9_edges_pitch_and_outputs_to_the_sample(jack_audio_server, tmp_path,  # noqa: F811
                                                   transport):
    gate, pitch, sent_edges, sent_pitches = build_signal()
    clock, clock_edges = build_clock()
    settings = load_settings(overrides=[
        "density=1.0", "uncertainty=0.0", "tempo=120", "clock.source=auto", "clock.ppqn=4", "outputs.trigger_ms=5.0",
        "outputs.velocity_volts=10.0", "input.pitch_settle_ms=1.0", "input.velocity_mode=auto",
        "es9.threshold=1.0", "es9.hysteresis=0.5", f"es9.transport={transport}"])
    # an xrun (a JACK cycle missed on this shared 2-core machine) loses samples on every client:
    # sample-exact checks need a take without one
    for _ in range(3):
        cap, xruns, backend, (groove_hits, bpm) = capture(
            jack_audio_server, np.stack([gate, pitch, clock]), settings, tmp_path)
        if xruns == 0 and backend.xruns == 0:
            break
    else:
        pytest.fail(f"JACK xruns in 3 takes (last: rig {xruns}, back end {backend.xruns})")

    # edges: one per pulse, at the sent frames shifted by one constant (the clients' frame offset)
    rises = [f for jack, kind, f in backend.edges if jack == "gate" and kind == "rise"]
    falls = [f for jack, kind, f in backend.edges if jack == "gate" and kind == "fall"]
    assert len(rises) == len(sent_edges) == len(falls)
    offset = rises[0] - sent_edges[0]
    assert [r - offset for r in rises] == sent_edges
    # the pulse that falls into the band first (4th) falls only when it leaves the band
    assert falls[3] - offset == 42000 + 900
    # the clock input: every pulse found on its sample, and the engine follows it
    clocks = [f - offset for jack, kind, f in backend.edges if jack == "clock" and kind == "rise"]
    assert clocks == clock_edges
    assert abs(bpm - CLOCK_BPM) < 0.5
    # pitch read a settle time after the edge: the new value, not the one at the edge
    got = [p for _, p, _ in backend.onsets]
    assert np.allclose(got, sent_pitches, atol=1e-5)

    lat = backend.latency_frames
    assert backend.transport == transport
    # PortAudio's JACK buffering: one block; a JACK client of its own: none (a sample read at
    # JACK frame f and one written at f + R are R frames apart)
    assert lat == (backend.board.blocksize if transport == "portaudio" else 0)
    react = backend.reaction_frames
    assert react == 2 * backend.board.blocksize  # R: an input frame is answered 2 blocks on
    # (the JACK period is the block here)
    # every output change lands on the JACK frame the player scheduled: t * SR in the engine's
    # timeline (input frames), answered R frames later, heard L (the stream's latency) after
    # that, less the offset of that timeline to the test's frames: a step on an edge sent at
    # frame e is recorded at e + R + L
    lead = backend.board.velocity_lead_samples  # velocity CV written just before its trigger
    total = landed = 0
    for _, ch, volts, ev in backend.scheduled:
        j = (round(ev.time * SR) + react + lat - offset
             - (lead if ev.kind == "velocity" else 0))
        if not 1 <= j < DURATION:
            continue
        want = np.float32(min(4.5, volts) / VPU)  # clamped to the board's safe range
        total += 1
        landed += bool(cap[ch - 1, j] == want
                       and (ev.kind == "velocity" or cap[ch - 1, j - 1] != want))
    assert total > 50
    # a late change lands later, never elsewhere
    assert landed >= total - backend.late_events, (landed, total, backend.late_events)
    # late ones only while the engine locks to the external clock (its first pulses)
    assert all(frame - react - offset < 2 * SR for frame, _ in backend.levels.late), list(backend.levels.late)
    # triggers: 5 ms = 240 samples at 4 V; velocity CV held between, never above safe_max (4.5 V)
    widths = [n for ch in range(4) for a, n in runs(cap[ch], 0.2) if a < DURATION]
    assert len(widths) > 20 and widths.count(240) >= len(widths) - backend.late_events
    assert set(np.unique(cap[:4])) == {np.float32(0.0), np.float32(0.4)}
    velocity_cv = cap[4:8]
    assert velocity_cv.max() <= np.float32(0.45) and velocity_cv.min() >= 0.0
    assert any(ev.value * 10.0 > 4.5 for *_, ev in backend.scheduled if ev.kind == "velocity")
    # the engine heard the onsets: captured into its groove while playing
    assert len(backend.onsets) == len(sent_edges)
    assert groove_hits > 0


@pytest.mark.jack
def mirror_board():
    """Gate and pitch in on 1 and 2, triggers out on 1 and 2, MIDI out over JACK (poly2, ch 2)."""
    return board({**BOARD, "es9": {**BOARD["es9"], "inputs": {"gate": 1, "pitch": 2},
                                   "outputs": {"trigger": [1, 2], "velocity": []}},
                  "midi": {"api": "jack", "profile": "poly2", "channel": 2}})


def test_es9_in_midi_out_on_the_same_timing(jack_audio_server, tmp_path):  # noqa: F811
    """ES-9 in, MIDI out (the es9-poly2 path): every note is the player's event, sent at the
    time the CV outputs play it."""
    import sounddevice as sd
    from grooverack.backends.es9 import MidiMirror
    from grooverack.backends.midi import OutputMap
    from grooverack.boards.midi import midi_options

    b = mirror_board()
    settings = load_settings(overrides=["density=1.0", "uncertainty=0.0", "tempo=120"])
    gate, pitch, _, _ = build_signal()
    audio = AudioRig(jack_audio_server, np.stack([gate, pitch]) / VPU, tmp_path,
                     source="es9test-in", sink="es9test-out", inputs=2, tail=SR)
    mirror = MidiMirror(b, settings)
    mirror.start()  # virtual port "grooverack out"
    midi = MidiRig(jack_audio_server, [], 2 * SR, tmp_path, from_="grooverack out")
    engine = make_engine(settings, threaded=True)
    refresh_devices()
    backend = ES9Backend(engine, settings, b, midi_output=mirror.output)
    try:
        backend.start()
        midi.go()
        audio.go()
        received = midi.result()["received"]
        audio.result()
    finally:
        backend.stop()
        mirror.stop()
        engine.close()
        sd._terminate()
        audio.close()
        midi.close()
    got = [bytes.fromhex(h) for _, _, h, _ in received]
    assert len(got) > 20
    # the notes are exactly the player's events through the poly2 map (channel 2)
    omap = OutputMap(midi_options(settings, b))
    velocity, want = {}, []
    for ev in backend.played:
        if ev.kind == "velocity":
            velocity[ev.output] = max(1, min(127, round(ev.value * 127)))
        elif ev.kind == "trigger":
            channel, note = omap.note(ev.output, ev.voice)
            assert channel == 1
            want.append(bytes((0x91, note, velocity[ev.output])) if ev.value > 0.5
                        else bytes((0x81, note, 0)))
    # (the recording starts anywhere in the stream: where the whole of it matches)
    assert any(want[i:i + len(got)] == got for i in range(len(want))), (got[:8], want[:8])
    # each note was due when its trigger plays at the CV outputs: one constant offset between
    # the audio timeline and time.monotonic() (estimated by the back end within a block)
    rises = [ev for ev in backend.played if ev.kind == "trigger" and ev.value > 0.5]
    dues = [due for due, _, d in mirror.sender.sent if d[0] == 0x91]
    offsets = np.array([due - ev.time for due, ev in zip(dues, rises, strict=False)])
    settled = offsets[len(offsets) // 4:]
    assert settled.max() - settled.min() < backend.board.blocksize / SR


@pytest.mark.jack
def test_es9_button_gates_accents_clock_and_reset_out(jack_audio_server, tmp_path):  # noqa: F811
    """A pulse on a button's input channel presses it (next_style: the style changes; mute_kick:
    the kick's trigger channel goes silent); accent channels rise with their triggers' accented
    hits only, on the same samples; clock and reset out in outputs.mode gate / trigger."""
    style_at, mute_at, reset_at = SR, 2 * SR, 3 * SR  # sent frames of the presses, a reset
    length = 4 * SR
    pulses = np.zeros((3, length))
    pulses[0, style_at:style_at + 480] = 5.0   # next_style on input 3
    pulses[1, mute_at:mute_at + 480] = 5.0     # mute_kick on input 4
    pulses[2, reset_at:reset_at + 480] = 5.0   # reset on input 5: step 0 (see below)
    signal = np.concatenate([np.zeros((2, length)), pulses])
    data = {**BOARD, "es9": {
        **BOARD["es9"],
        "inputs": {"gate": 1, "pitch": 2, "next_style": 3, "mute_kick": 4, "reset": 5},
        "outputs": {"trigger": [1, 2, 3, 4], "velocity": [5, 6, 7, 8], "accent": [9, 10],
                    "clock": 11, "reset": 12}}}
    settings = load_settings(overrides=[
        "density=1.0", "uncertainty=0.0", "tempo=120", "clock.source=internal",
        "outputs.trigger_ms=5.0", "outputs.velocity_volts=4.0", "outputs.accent_threshold=0.6",
        "outputs.mode.clock=gate", "outputs.mode.reset=trigger"])

    def snapshot(engine):
        return {"genre": engine.settings["genre"], "mute": engine.settings["mute.kick"],
                "offered": engine.offered_styles, "genres": engine.runner.genres,
                "decoded": engine.pattern.info.get("genre")}

    # a take without xruns and without late changes (the engine starved of CPU hands a change
    # to the JACK callback after its frame: the clock gates below are checked to the sample)
    late = 0
    for _ in range(3):
        cap, xruns, backend, snap = capture(jack_audio_server, signal, settings, tmp_path,
                                            board(data), inputs=12, snapshot=snapshot)
        if xruns == 0 and backend.xruns == 0:
            if backend.late_events == 0:
                break
            late += 1
    else:
        if late:
            pytest.skip(f"{late} of 3 takes had changes handed over late (last: "
                        f"{backend.late_events}): the machine is too loaded to check the sample")
        pytest.fail(f"JACK xruns in 3 takes (last: rig {xruns}, back end {backend.xruns})")

    # the presses: one per pulse, one rig frame apart as sent; the engine took them
    (style, f_style, new), (mute, f_mute, muted) = backend.presses
    assert (style, mute, muted) == ("next_style", "mute_kick", True)
    assert f_mute - f_style == mute_at - style_at
    assert new == snap["offered"][1] == snap["genre"] and snap["mute"]
    assert snap["decoded"] == snap["genres"].index(new)  # the model decodes in the new style
    # capture frame of a back-end input frame f: f + R + L less the rig's offset
    shift = backend.reaction_frames + backend.latency_frames - (f_mute - mute_at)
    kicks = [a for a, _ in runs(cap[0], 0.2)]
    assert [a for a in kicks if a < mute_at], "no kick before the mute"
    # silent from the steps after the press on (at most a step in flight, 6000 frames, and the
    # generator's answer)
    assert not [a for a in kicks if a > mute_at + shift + SR // 2], kicks
    assert [a for a, _ in runs(cap[1], 0.2) if a > mute_at + shift + SR // 2], "snare stopped"
    # accents: with exactly the triggers whose velocity CV reached the threshold, same samples
    threshold = np.float32(0.6 * 4.0 / VPU)
    for out in (0, 1):
        trig, accent = runs(cap[out], 0.2), runs(cap[8 + out], 0.2)
        want = [(a, n) for a, n in trig if cap[4 + out, a] >= threshold]
        assert accent == want, (out, accent, want)
        assert set(np.unique(cap[8 + out])) <= {np.float32(0.0), np.float32(0.4)}
    assert runs(cap[9], 0.2) and len(runs(cap[9], 0.2)) < len(runs(cap[1], 0.2))  # snare: mixed
    # clock out as a gate: half of each 16th (6000 frames at 120 BPM). The reset came in the
    # first half of a 16th (internal clock): step 0 plays at once, so the grid moves there and
    # the gate in flight is cut short; reset out is a 5 ms trigger with that step 0 (and with
    # the start, when the capture began before it)
    clock = runs(cap[10], 0.2)
    reset = runs(cap[11], 0.2)
    zero = reset[-1][0]
    assert reset[-1][1] == 240 and len(reset) <= 2, reset
    # with the reset's 16th (it landed on a grid line here) or the next: within one step
    assert 0 <= zero - (reset_at + shift) <= 6000 + 64, (zero, reset_at + shift)
    moved = reset_at + shift   # where the grid may move to (step 0 at once)
    before = [(a, n) for a, n in clock[1:] if a < moved]
    after = [(a, n) for a, n in clock if a >= moved]
    assert len(clock) > 20
    # whole gates on a 6000-frame grid before the reset, and from the first whole one after it
    # (the gate in flight at step 0 may be cut or joined to step 0's)
    assert {n for _, n in before[:-1]} == {3000} and {n for _, n in after[1:-1]} == {3000}
    assert np.all(np.diff([a for a, _ in before]) == 6000)
    assert np.all(np.diff([a for a, _ in after[1:]]) == 6000)


def test_es9_rt_threads_below_jacks_own(jack_audio_server, tmp_path):  # noqa: F811
    """`run --board es9 --rt` with `rt.below_jack`: the engine thread and the MIDI mirror's
    sender get SCHED_FIFO just below JACK's client threads (the audio callback's among them)."""
    import os

    import sounddevice as sd
    from grooverack.backends.es9 import MidiMirror

    b = mirror_board()
    settings = load_settings(overrides=["tempo=120", "rt.below_jack=true"])
    gate, pitch, _, _ = build_signal()
    audio = AudioRig(jack_audio_server, np.stack([gate, pitch]) / VPU, tmp_path,
                     source="es9test-in", sink="es9test-out", inputs=2, tail=SR)
    mirror = MidiMirror(b, settings)
    mirror.start()
    engine = make_engine(settings, threaded=True)
    refresh_devices()
    backend = ES9Backend(engine, settings, b, midi_output=mirror.output)
    try:
        backend.start()
        backend.wait_latency()
        backend.realtime(mirror)
        ceiling = backend.stream.watch.client_priority()
        assert ceiling is not None
        got = {name: (os.sched_getscheduler(t.native_id),
                      os.sched_getparam(t.native_id).sched_priority)
               for name, t in (("writer", mirror.sender.thread), ("loop", backend._thread))}
        if ceiling == 0:
            assert all(policy != os.SCHED_FIFO for policy, _ in got.values())
        elif got["loop"][0] != os.SCHED_FIFO:
            pytest.skip("SCHED_FIFO not permitted here")
        else:
            assert got["writer"] == (os.SCHED_FIFO, max(ceiling - 1, 1))
            assert got["loop"] == (os.SCHED_FIFO, max(ceiling - 2, 1))
    finally:
        backend.stop()
        mirror.stop()
        engine.close()
        sd._terminate()
        audio.close()
