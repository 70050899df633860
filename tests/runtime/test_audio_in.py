"""`input.source = audio` on a real JACK server: a JACK client plays a rendered drum loop into
the audio input, the onset detector hears it on its own thread, and the drums follow it.

The loop is rendered with FluidSynth at test time (tests/test_onsets.py's drum groove); the
back end is the MIDI board's (`backends.midi.MidiBackend`, which runs the listener like every
board), its audio input the JACK port of the player (`input.audio_device = jack:PORT`).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from grooverack.backends.midi import MidiBackend
from grooverack.config import load_settings
from grooverack.runtime.listen import AudioListener
from grooverack.runtime.serve import make_engine
from grooverack.sim import fluid

from tests.onset_detector.test_onsets import drum_groove
from tests.rig.jackserver import AudioRig, jack_audio_server, wait_for  # noqa: F401

pytestmark = pytest.mark.skipif(fluid.available() is not None, reason=str(fluid.available()))
BPM = 100.0


def _take(server, tmp_path, audio, settings):
    """One take: the loop played into the MIDI board's audio input; what was heard and made."""
    engine = make_engine(settings, threaded=True)
    backend = MidiBackend(engine, settings)
    backend.open_ports()
    rig = AudioRig(server, audio[None, :], tmp_path, source="drumloop", sink="drumsink",
                   inputs=1, tail=server.rate // 2)
    try:
        backend.start()
        listener = backend.listener
        assert listener is not None
        rig.go()
        _, rig_xruns = rig.result()
        time.sleep(0.3)
        return {"heard": sorted(t for t, _ in listener.recent), "groove": np.array(engine.groove),
                "position": engine.clock.position, "played": list(backend.played),
                # a missed JACK cycle (of the player or of our input) drops or repeats a block
                "xruns": rig_xruns + listener.xruns, "handoff": list(listener.handoff_s)}
    finally:
        backend.stop()
        engine.close()
        rig.close()


def test_jack_loop_into_the_audio_input_becomes_the_groove(
        jack_audio_server, tmp_path, fake_manifest):  # noqa: F811
    server = jack_audio_server
    midi = drum_groove(tmp_path / "loop.mid", bpm=BPM, bars=2)
    audio = fluid.at_level(fluid.render(midi, server.rate)[:, 0], -6.0)
    truth = [t for t, _ in fluid.note_ons(midi)]
    settings = load_settings(overrides=[
        "midi.api=jack", "clock.source=internal", f"tempo={BPM}", "record=overdub", "memory=0",
        "follow=1.0", "input.source=audio", "input.audio_device=jack:drumloop:cv_01",
        f"model.path={fake_manifest}"])
    for _ in range(3):  # a take without a missed JACK cycle
        take = _take(server, tmp_path, audio, settings)
        if take["xruns"] == 0:
            break
    heard, groove, position, played, xruns = (take[k] for k in (
        "heard", "groove", "position", "played", "xruns"))
    assert heard, "no onsets heard"
    # stamped with their own sample's time: the same timeline as the truth, one constant apart
    coarse = heard[0] - truth[0]  # the loop opens on a loud kick
    near = [min((h - coarse - t for t in truth), key=abs) for h in heard]
    delta = coarse + float(np.median([d for d in near if abs(d) < 0.025]))
    score = fluid.score([h - delta for h in heard], truth)
    # every hit heard; a few soft extras allowed: on a loaded host PortAudio / JACK can drop or
    # repeat a block without flagging it, and the click is (rightly) an onset
    assert score["recall"] >= 0.95 - 0.05 * xruns, (score, xruns)
    assert score["f1"] >= 0.85 - 0.05 * xruns, (score, xruns)
    assert score["p90_spread_ms"] <= 5.0 + 5.0 * xruns, (score, xruns)
    # the groove is the loop's: the steps the MIDI truth lands on at the same time base
    expected = {int(np.floor(position(t + delta) + 0.5)) % 32 for t in truth}
    got = set(np.flatnonzero(groove[:, 0] > 0))
    assert len(got & expected) >= (0.9 - 0.05 * xruns) * len(expected), (
        sorted(got), sorted(expected), xruns)
    assert len(got - expected) <= 0.25 * len(expected) + xruns, (sorted(got), sorted(expected))
    # and the drums play: triggers after the first onset was heard
    assert any(e.kind == "trigger" and e.value > 0 and e.time > heard[0] for e in played)
    # handed to the engine within a loop pass of being reported (1 ms polls; reported here)
    print(f"handoff report->engine: median {1000 * np.median(take['handoff']):.2f} ms, "
          f"max {1000 * np.max(take['handoff']):.2f} ms; xruns {xruns}")


def test_a_vanished_jack_port_keeps_playing_and_is_taken_back(jack_audio_server, tmp_path):  # noqa: F811
    server = jack_audio_server
    settings = load_settings(overrides=["input.audio_device=jack:gone:cv_01"])
    with pytest.raises(Exception, match="no JACK audio output port matches"):
        AudioListener(settings).start()
    clicks = np.zeros(server.rate * 3, dtype=np.float32)
    rng = np.random.default_rng(0)
    for k in range(6):
        i = int((0.3 + 0.4 * k) * server.rate)
        clicks[i:i + 2000] = rng.normal(0, 0.3, 2000) * np.exp(-np.arange(2000) / 400)
    rig = AudioRig(server, clicks[None, :], tmp_path, source="gone", sink="gonesink", inputs=1,
                   tail=server.rate // 4)
    listener = AudioListener(settings)
    listener.start()
    try:
        rig.go()
        rig.result()
        rig.close()  # the port vanishes
        wait_for(lambda: listener.lost == 1, 5.0, "the loss to be seen")
        first = listener.heard
        assert first >= 5
        rig = AudioRig(server, clicks[None, :], tmp_path, source="gone", sink="gonesink",
                       inputs=1, tail=server.rate // 4)
        wait_for(lambda: listener._stream is not None, 8.0, "the port to be taken back")
        rig.go()
        rig.result()
        wait_for(lambda: listener.heard >= first + 5, 5.0, "onsets after the return")
    finally:
        listener.stop()
        rig.close()


def test_ports_lists_jack_sources_and_doctor_opens_the_chosen_one(jack_audio_server):  # noqa: F811
    from grooverack.commands import doctor, ports

    client = jack_audio_server.client("drum machine")
    client.outports.register("out_1")
    client.activate()
    try:
        text = ports.report(["jack"])
        good = load_settings(overrides=["input.source=audio",
                                        "input.audio_device=jack:drum machine:out_1"])
        ok = doctor.audio_input_check(good)
        bad = doctor.audio_input_check(load_settings(overrides=[
            "input.source=audio", "input.audio_device=jack:no such port"]))
    finally:
        import sounddevice as sd

        try:
            sd._terminate()  # PortAudio's JACK host API lets go before the server goes away
        except sd.PortAudioError:  # not initialised (another test terminated it)
            pass
        client.deactivate()
        client.close()
    assert "jack:drum machine:out_1" in text.split("JACK audio sources")[1]
    assert ok is not None and ok.status == doctor.OK and "48000 Hz" in ok.detail, ok
    assert bad is not None and bad.status == doctor.FAIL and "no such port" in bad.detail
    assert doctor.audio_input_check(load_settings()) is None  # input.source = gate
