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
from tests.rig.onsets import check_heard_loop

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
    # stamped with their own sample's time: the same timeline as the truth, one constant apart
    check_heard_loop(heard, truth, groove, position, xruns)
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


@pytest.mark.parametrize("source", ["gate", "audio"])
def test_on_the_midi_board_one_source_of_onsets(source, fake_manifest):
    """input.source = audio: the audio's onsets are the only ones; a MIDI note-on is counted
    and plays nothing (the fill note and the MIDI clock still act). gate: notes are onsets."""
    from grooverack.backends.midi.parse import NoteOn  # noqa: F401  (the bytes below are one)

    settings = load_settings(overrides=[
        "clock.source=internal", f"tempo={BPM}", "record=overdub", "memory=0",
        f"input.source={source}", "input.audio_device=jack:not needed:out",
        f"model.path={fake_manifest}"])
    engine = make_engine(settings, threaded=False)
    try:
        backend = MidiBackend(engine, settings)  # (its listener is not started: no device)
        engine.start(0.0)
        for k in range(4):
            backend.input.handle(0.1 + 0.3 * k, bytes([0x90, 36, 100]))
        heard = len(engine.capture.onsets)
        counts = dict(backend.input.counts)
    finally:
        engine.close()
    if source == "audio":
        assert backend.listener is not None
        assert heard == 0 and counts == {"note_ignored": 4}, (heard, counts)
    else:
        assert backend.listener is None
        assert heard == 4 and counts == {"note": 4}, (heard, counts)


def test_run_board_sim_hears_a_jack_capture_device(jack_audio_server, tmp_path,  # noqa: F811
                                                   fake_manifest):
    """`grooverack run --board sim` (the wall clock) with input.source = audio: a JACK client
    plays a rendered loop into input.audio_device; the detector (its own thread) hears it and
    the groove takes it; the patch's own gate changes play nothing."""
    import os
    import subprocess
    import sys

    server = jack_audio_server
    midi = drum_groove(tmp_path / "loop.mid", bpm=BPM, bars=2)
    audio = fluid.at_level(fluid.render(midi, server.rate)[:, 0], -6.0)
    truth = fluid.note_ons(midi)
    rig = AudioRig(server, audio[None, :], tmp_path, source="simloop", sink="simsink",
                   inputs=1, tail=server.rate // 2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grooverack", "run", "--board", "sim", "--duration", "9",
         "--fresh", "--no-wav", "--out", str(tmp_path / "out"), "--bpm", f"{BPM:g}",
         "--set", "input.source=audio", "--set", "input.audio_device=jack:simloop:cv_01",
         "--set", "record=overdub", "--set", "memory=0", "--set", "follow=1.0",
         "--set", f"model.path={fake_manifest}", "--set", f"state.dir={tmp_path / 'state'}"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # played once the run is ready (its patch time 0 fixed)
            lines.append(line)
            if "ready in" in line:
                break
        rig.go()
        rest, _ = proc.communicate(timeout=120)[1], None
        _, rig_xruns = rig.result()
    finally:
        if proc.poll() is None:
            proc.kill()
        rig.close()
    stderr = "".join(lines) + (rest or "")
    assert proc.returncode == 0, stderr[-3000:]
    import re

    found = re.search(r"audio in \(jack:simloop:cv_01\): (\d+) onsets heard, (\d+) hit steps"
                      r".*, (\d+) missed JACK cycle", stderr)
    assert found, stderr[-3000:]
    assert int(found[1]) >= 0.9 * len(truth), stderr[-3000:]
    # input.mid holds the onsets heard, on the run's time: the loop's, one constant apart
    heard = [t for t, _ in fluid.note_ons(tmp_path / "out" / "input.mid", merge_s=0.0)]
    times = [t for t, _ in truth]
    # the run's time base vs the loop's: the shift that matches most onsets (a click heard
    # before the loop's first kick does not decide it), then the median offset
    coarse = max((h - t for h in heard[:6] for t in times[:3]),
                 key=lambda d: len(fluid.matched_offsets([h - d for h in heard], times)))
    near = [min((h - coarse - t for t in times), key=abs) for h in heard]
    delta = coarse + float(np.median([d for d in near if abs(d) < 0.025]))
    score = fluid.score([h - delta for h in heard], times)
    xruns = int(found[3]) + rig_xruns
    # a loaded host's JACK / PortAudio may drop or repeat a block (a click: an onset)
    assert score["recall"] >= 0.9 - 0.05 * xruns, (score, xruns, heard)
    assert score["f1"] >= 0.8 - 0.05 * xruns, (score, xruns, heard)
    assert score["p90_spread_ms"] <= 10.0, score
