"""`grooverack web --board NAME` on the boards that are not the sim: the ES-9 and MIDI back ends
on a real JACK server (`jackd -d dummy`), each run by the same back-end registry as
`grooverack run`, its page's API in a process of its own.

A control moved through the HTTP API reaches the engine (GET /api/state says so), and what the
engine then plays is heard on the back end's own outputs: the kick muted from the page stops
rising on the ES-9's first trigger channel (recorded by a JACK client in a child process), and
MIDI note 36 stops coming out of "grooverack out".
"""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest

from tests.rig.jackserver import (  # noqa: F401  (fixtures)
    AudioRig,
    MidiRig,
    jack_audio_server,
    jack_server,
)
from tests.rig.webserver import web_server

SR = 48000
VPU = 10.0
# the model plays a full pattern (the internal clock, every voice dense), so the kick is there
SETTINGS = ["--set", "density=1.0", "--set", "uncertainty=0.0", "--set", "tempo=120",
            "--set", "clock.source=internal"]
MUTE_AT_S = 2.5     # after the recording starts
SETTLE_S = 0.25     # what was already queued when the new pattern came (lookahead, periods)


def call(url: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def follow_and_mute(url: str) -> float:
    """FOLLOW and a mute through the API, each seen in GET /api/state; returns when the state
    first showed the pattern without its kick (time.monotonic()): the engine's worker has made
    it, from there on the outputs play it."""
    assert call(url, "api/controls", {"follow": 0.25})["applied"]["follow"] == 0.25
    assert call(url, "api/state")["controls"]["follow"] == 0.25
    state = call(url, "api/state")
    assert not state["playing"]["mutes"]["kick"]
    assert any(state["pattern"]["hits"][0]), "the model plays no kick to mute"
    call(url, "api/press", {"button": "mute_kick"})
    assert call(url, "api/state")["playing"]["mutes"]["kick"]
    deadline = time.monotonic() + 10.0
    while any(call(url, "api/state")["pattern"]["hits"][0]):
        assert time.monotonic() < deadline, "the pattern kept its kick"
        time.sleep(0.01)
    return time.monotonic()


def es9_board(tmp_path):
    path = tmp_path / "es9-web.toml"
    path.write_text("\n".join([
        'name = "es9 web"', 'kind = "es9"', 'description = "ES-9 as two JACK test clients"',
        "[es9]", 'input_device = "es9test-in"', 'output_device = "es9test-out"',
        f"samplerate = {SR}", "blocksize = 1024", "trigger_volts = 4.0",
        "[es9.inputs]", "gate = 1", "pitch = 2",
        "[es9.outputs]", "trigger = [1, 2, 3, 4]", "velocity = [5, 6, 7, 8]", ""]))
    return path


@pytest.mark.jack
def test_web_plays_the_es9_board_on_jack(jack_audio_server, tmp_path):  # noqa: F811
    seconds = 6.0
    n = int(seconds * SR)
    gate = np.zeros((2, n))  # a sequencer's 8ths on the gate input: a groove to follow
    for start in range(0, n - 480, SR // 4):
        gate[0, start:start + 240] = 5.0
    rig = AudioRig(jack_audio_server, gate / VPU, tmp_path, source="es9test-in",
                   sink="es9test-out", inputs=8, tail=SR // 2)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    try:
        with web_server(state_dir, "--board", str(es9_board(tmp_path)), *SETTINGS,
                        timeout=90.0) as url:
            assert call(url, "api/board")["kind"] == "es9"
            rig.go()
            went = time.monotonic()
            time.sleep(MUTE_AT_S)
            muted = follow_and_mute(url) - went
            cap, _xruns = rig.result()
            state = call(url, "api/state")
    finally:
        rig.close()
    log = (state_dir / "web.log").read_text()
    assert "the page at" in log and "clock edge to step" in log, log
    high = cap > 0.2  # a trigger (4 V) on the sample scale
    rises = [np.flatnonzero(high[ch, 1:] & ~high[ch, :-1]) / SR for ch in range(4)]
    kick = rises[0]
    assert (kick < MUTE_AT_S - 0.1).sum() >= 2, f"kick rises {kick}"
    assert (kick > muted + SETTLE_S).sum() == 0, f"kick after the mute at {muted:.2f}: {kick}"
    others = np.concatenate(rises[1:])
    assert (others > muted + SETTLE_S).sum() >= 2, "the other voices stopped too"
    # the page's state follows the engine (the groove from the gate input, the clock running)
    assert state["playing"]["clock"]["running"]
    assert state["controls"]["follow"] == 0.25


@pytest.mark.jack
def test_web_plays_the_midi_board_on_jack(jack_server, tmp_path):  # noqa: F811
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    seconds = 6.0
    with web_server(state_dir, "--board", "midi", "--set", "midi.api=jack", *SETTINGS,
                    timeout=90.0) as url:
        assert call(url, "api/board")["kind"] == "midi"
        rig = MidiRig(jack_server, [], int(seconds * SR), tmp_path, from_="grooverack out")
        try:
            went = rig.go()
            time.sleep(MUTE_AT_S)
            muted = follow_and_mute(url) - went
            received = rig.result()["received"]
        finally:
            rig.close()
    notes = [(fr / SR, bytes.fromhex(h)) for fr, _, h, _ in received]
    on = [(t, d[1]) for t, d in notes if len(d) == 3 and d[0] == 0x99 and d[2] > 0]
    kicks = np.array([t for t, note in on if note == 36])
    assert (kicks < MUTE_AT_S - 0.1).sum() >= 2, f"kick notes {kicks}"
    assert (kicks > muted + SETTLE_S).sum() == 0, f"kick after the mute at {muted:.2f}: {kicks}"
    assert sum(1 for t, note in on if note != 36 and t > muted + SETTLE_S) >= 2


@pytest.mark.jack
def test_web_on_the_sim_board_plays_through_the_sound_card(jack_audio_server, tmp_path):  # noqa: F811
    """`grooverack web --audio DEVICE`: the page and the drum voices through a sound card (a
    JACK client recording what reaches it), as `run --audio`; muting everything from the page
    silences it."""
    from tests.rig.audiorec import AudioRecorder
    from tests.rig.onsets import energy_onsets

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    rec = AudioRecorder(jack_audio_server, 5.0, tmp_path)
    try:
        with web_server(state_dir, "--audio", "hearrec", *SETTINGS, timeout=90.0) as url:
            rec.go()
            went = time.monotonic()
            time.sleep(2.5)
            for group in ("kick", "snare", "hats", "toms", "cymbals"):
                call(url, "api/press", {"button": f"mute_{group}"})
            deadline = time.monotonic() + 10.0
            while any(any(row) for row in call(url, "api/state")["pattern"]["hits"]):
                assert time.monotonic() < deadline, "the pattern kept its hits"
                time.sleep(0.01)
            silent = time.monotonic() - went
            cap = rec.result()
    finally:
        rec.close()
    log = (state_dir / "web.log").read_text()
    assert "after the outputs" in log, log  # the sound card's line, as `run --audio` prints
    heard = energy_onsets(cap.audio.sum(axis=0).astype(np.float64), cap.rate)
    assert (heard < 2.4).sum() >= 5, heard
    assert (heard > silent + 0.5).sum() == 0, (silent, heard)
