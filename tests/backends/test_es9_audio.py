"""The ES-9's audio input (`[es9.inputs] audio = N`): a JACK client plays a rendered drum loop
into input channel N of the ES-9 back end on `jackd -d dummy`; the onset detector hears it on
its own thread and the drums follow it, each onset at its own frame / rate."""

from __future__ import annotations

import time

import numpy as np
import pytest
from grooverack.boards.es9 import parse_board
from grooverack.config import Settings, load_settings
from grooverack.errors import ConfigError
from grooverack.sim import fluid

from tests.backends.test_es9_jack import BOARD, SR, VPU, board, capture
from tests.onset_detector.test_onsets import drum_groove
from tests.rig.jackserver import jack_audio_server  # noqa: F401  (fixture)
from tests.rig.onsets import check_heard_loop

BPM = 100.0
# a rig's go -> its first sample on the ES-9's timeline, about (measured on jackd -d dummy; off
# by up to 0.06 s the loop's hits are still mid-step at 100 BPM)
GO_LATENCY_S = 0.15


def audio_board() -> dict:
    es9 = dict(BOARD["es9"], inputs={"audio": 1})
    return dict(BOARD, es9=es9)


def test_audio_and_gate_together_are_refused():
    both = dict(BOARD, es9=dict(BOARD["es9"], inputs={"audio": 3, "gate": 1}))
    with pytest.raises(ConfigError, match="inputs.audio.*one groove source"):
        parse_board(board(both), load_settings())


@pytest.mark.jack
@pytest.mark.skipif(fluid.available() is not None, reason=str(fluid.available()))
def test_es9_audio_input_becomes_the_groove(jack_audio_server, tmp_path,  # noqa: F811
                                            fake_manifest):
    midi = drum_groove(tmp_path / "loop.mid", bpm=BPM, bars=2)
    audio = fluid.at_level(fluid.render(midi, SR)[:, 0], -6.0)
    truth = [t for t, _ in fluid.note_ons(midi)]
    settings = load_settings(overrides=[
        "clock.source=internal", f"tempo={BPM}", "record=overdub", "memory=0", "follow=1.0",
        f"model.path={fake_manifest}"])
    for _ in range(3):  # a take without a missed JACK cycle (a dropped block loses hits)
        _, xruns, backend, (groove, position) = capture(
            jack_audio_server, audio[None, :] * VPU, settings, tmp_path, b=board(audio_board()),
            snapshot=lambda eng: (np.array(eng.groove), eng.clock.position))
        xruns += backend.xruns
        if xruns == 0:
            break
    heard = sorted(t for t, _, _ in backend.onsets)
    check_heard_loop(heard, truth, groove, position, xruns)
    # and the drums play on the outputs
    assert any(ev.kind == "trigger" and ev.value > 0 for ev in backend.played)


def own_capture(tmp_path, fake_manifest) -> tuple[np.ndarray, list[float], Settings, object]:
    """A rendered two-bar drum loop (mono samples, its note-ons' times), the settings of an ES-9
    that hears it on a capture device of its own (a JACK client `drumloop`), and that board
    (its own gate jack on input 1)."""
    midi = drum_groove(tmp_path / "loop.mid", bpm=BPM, bars=2)
    audio = fluid.at_level(fluid.render(midi, SR)[:, 0], -6.0).astype(np.float32)
    truth = [t for t, _ in fluid.note_ons(midi)]
    settings = load_settings(overrides=[
        "clock.source=internal", f"tempo={BPM}", "record=overdub", "memory=0", "follow=1.0",
        "input.source=audio", "input.audio_device=jack:drumloop:cv_01",
        f"model.path={fake_manifest}"])
    return audio, truth, settings, board(dict(BOARD, es9=dict(BOARD["es9"], inputs={"gate": 1})))


@pytest.mark.jack
@pytest.mark.skipif(fluid.available() is not None, reason=str(fluid.available()))
def test_es9_board_hears_a_capture_device_of_its_own(jack_audio_server, tmp_path,  # noqa: F811
                                                      fake_manifest):
    """`input.source = audio` with `input.audio_device` on the ES-9 board: a capture device
    that is not the ES-9 (a JACK client playing a rendered loop) is heard on the detector's
    thread, its onsets land on the ES-9's timeline, and the ES-9's own gate jack (pulsing on
    every 8th, off the loop's kicks) plays nothing: one source of onsets."""
    import sounddevice as sd
    from grooverack.backends.es9 import ES9Backend, refresh_devices
    from grooverack.runtime.serve import make_engine

    from tests.rig.jackserver import AudioRig

    server = jack_audio_server
    audio, truth, settings, b = own_capture(tmp_path, fake_manifest)
    gate = np.zeros(len(audio))
    for start in range(int(0.1 * SR), len(audio) - SR // 10, int(SR * 30 / BPM)):
        gate[start:start + 480] = 5.0
    for _ in range(3):  # a take without a missed JACK cycle
        (tmp_path / "loop").mkdir(exist_ok=True)
        loop = AudioRig(server, audio[None, :], tmp_path / "loop", source="drumloop",
                        sink="drumsink", inputs=1, tail=SR // 2)
        es9 = AudioRig(server, gate[None, :] / VPU, tmp_path, source="es9test-in",
                       sink="es9test-out", inputs=8, tail=SR // 2)
        engine = make_engine(settings, threaded=True)
        refresh_devices()
        backend = ES9Backend(engine, settings, b)
        try:
            backend.start()
            assert backend.inputs.listener is not None and backend.inputs.from_device
            assert 0.0 <= backend.wait_latency() < 0.1
            es9.go()
            loop.go()
            _, xruns_loop = loop.result()
            _, xruns_es9 = es9.result()
            groove, position = np.array(engine.groove), engine.clock.position
        finally:
            backend.stop()
            engine.close()
            sd._terminate()
            es9.close()
            loop.close()
        xruns = xruns_loop + xruns_es9 + backend.xruns + backend.inputs.listener.xruns
        if xruns == 0:
            break
    inputs = backend.inputs
    assert inputs.gates_ignored >= 8, inputs.gates_ignored  # the gate jack was read ...
    heard = sorted(t for t, _, _ in inputs.onsets)  # ... and only the loop's onsets played
    # its own clock, mapped onto the ES-9's frames: one constant apart, a little jitter (8 ms)
    check_heard_loop(heard, truth, groove, position, xruns, spread_ms=8.0)


@pytest.mark.jack
@pytest.mark.skipif(fluid.available() is not None, reason=str(fluid.available()))
def test_a_capture_device_of_its_own_feeds_the_groove_while_the_es9_stream_is_down(
        jack_audio_server, tmp_path, fake_manifest):  # noqa: F811
    """The ES-9's stream goes away (the keeper's own `_lose`, the keeper stopped: no reopen
    during the take) while a capture device of its own plays a loop: the engine thread goes on by the clock
    and the capture's onsets still reach the engine, at their own times, and become the groove.
    On the old code they waited in the listener until the stream came back."""
    import sounddevice as sd
    from grooverack.backends.es9 import ES9Backend, refresh_devices
    from grooverack.runtime.serve import make_engine

    from tests.rig.jackserver import AudioRig

    server = jack_audio_server
    audio, truth, settings, b = own_capture(tmp_path, fake_manifest)
    for _ in range(3):  # a take without a missed JACK cycle
        (tmp_path / "loop").mkdir(exist_ok=True)
        loop = AudioRig(server, audio[None, :], tmp_path / "loop", source="drumloop",
                        sink="drumsink", inputs=1, tail=SR // 2)
        es9 = AudioRig(server, np.zeros((1, SR)), tmp_path, source="es9test-in",
                       sink="es9test-out", inputs=8, tail=SR // 2)
        engine = make_engine(settings, threaded=True)
        refresh_devices()
        backend = ES9Backend(engine, settings, b)
        try:
            backend.start()
            assert 0.0 <= backend.wait_latency() < 0.1
            # the keeper's own loss path, the keeper stopped first: no reopen during the take
            assert not backend.stream.stop_keeper()
            backend.stream._lose("a test: the ES-9 stream went away")
            assert backend.stream.down
            before = len(backend.inputs.onsets)
            # start the loop so that its hits sit mid-step on the engine's clock: a hit on a
            # step's edge goes either way with a ms of jitter, in the groove and in the check
            now = time.monotonic() - backend.stream.mono_offset  # engine time (by the clock)
            edge = engine.clock.position(now + GO_LATENCY_S + truth[0])
            time.sleep((-edge % 1.0) * 15.0 / BPM)
            loop.go()
            _, xruns_loop = loop.result()
            assert backend.stream.down and backend.stream.reopens == 0  # down all along
            groove, position = np.array(engine.groove), engine.clock.position
        finally:
            backend.stop()
            engine.close()
            sd._terminate()
            es9.close()
            loop.close()
        xruns = xruns_loop + backend.inputs.listener.xruns
        if xruns == 0:
            break
    heard = sorted(t for t, _, _ in list(backend.inputs.onsets)[before:])
    check_heard_loop(heard, truth, groove, position, xruns, spread_ms=8.0)
