"""The service lifecycle of the MIDI and ES-9 back ends (`run_backend`, as `grooverack run
--board ...` calls it) over a real `jackd -d dummy`, under a fake systemd (a notify socket):
READY=1 once up, WATCHDOG=1 while the back end's own loop beats, SIGTERM -> every output off
(MIDI: note-offs, all notes off, MIDI Stop; ES-9: each channel's 0 V sample rendered before the
stream stops), the performance state saved in `state.dir`, exit status 0."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from grooverack.config import load_settings
from grooverack.state import StateStore

from tests.rig.jackserver import (  # noqa: F401  (fixtures)
    AudioRig,
    MidiRig,
    jack_audio_server,
    jack_server,
)

SR = 48000


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    """A notify socket as systemd's, with a 0.5 s watchdog; yields a function that waits for a
    message starting with a prefix."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "500000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    got: list[bytes] = []

    def wait(prefix: bytes) -> None:
        while not any(line.startswith(prefix) for m in got for line in m.split(b"\n")):
            got.append(sock.recv(4096))

    yield wait
    sock.close()


def in_thread(fn):
    """Run `fn` beside the main thread (which runs the back end); its error is re-raised by
    `.result()`."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test
            box["error"] = exc
            os.kill(os.getpid(), signal.SIGTERM)  # never leave the back end running

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def result():
        thread.join(60)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    thread.result = result
    return thread


@pytest.mark.jack
def test_sigterm_of_midi_run_sends_everything_off_saves_state_exits_0(
        jack_server, systemd, tmp_path):  # noqa: F811
    from grooverack.backends import midi

    state = tmp_path / "state"
    settings = load_settings(overrides=[
        "midi.api=jack", "midi.profile=poly2", "midi.clock_out=true", "outputs.clock_ppqn=4",
        "tempo=120", "density=1.0", f"state.dir={state}"])
    frames = 4 * SR
    rigs = []

    def terminate():
        systemd(b"READY=1")
        rig = MidiRig(jack_server, [], frames, tmp_path, from_="grooverack out")
        rigs.append(rig)
        t_go = rig.go()
        systemd(b"WATCHDOG=1")  # the engine loop beats and the generator is alive
        time.sleep(max(0.0, t_go + 1.5 - time.monotonic()))
        t_kill = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        return t_kill

    killer = in_thread(terminate)
    try:
        status = midi.run_backend(SimpleNamespace(name="midi", kind="midi", path="midi.toml",
                                                  data={}), settings,
                                  SimpleNamespace(duration=60.0))
        t_kill = killer.result()
        result = rigs[0].result()
    finally:
        for rig in rigs:
            rig.close()
    assert status == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers given back
    received = [(t, bytes.fromhex(h)) for _, t, h, _ in result["received"]]
    before = [d for t, d in received if t < t_kill]
    after = [(t, d) for t, d in received if t >= t_kill]
    note_ons = [d for d in before if d[0] & 0xF0 == 0x90]
    assert note_ons and b"\xf8" in before, "it played, with clock out"  # (Start: before the rig)
    datas = [d for _, d in after]
    # after the signal: all notes off on the channel the notes went out on, then MIDI Stop
    assert bytes((0xB0, 123, 0)) in datas and b"\xfc" in datas, datas[-10:]
    last_off = max(i for i, d in enumerate(datas) if d == bytes((0xB0, 123, 0)))
    stop = datas.index(b"\xfc")
    assert last_off < stop
    assert not [d for d in datas[last_off:] if d[0] & 0xF0 == 0x90], "a note after all off"
    assert b"\xf8" not in datas[stop:], "clock after MIDI Stop"
    t_stop = after[stop][0]
    assert t_stop - t_kill < 1.0  # at once, not at the end of a queue
    if result["xruns"] == 0:  # every note-on has its note-off (an xrun may drop one); a note
        # that was on when the rig connected has an off only
        left = Counter(d[1] for _, d in received if d[0] & 0xF0 == 0x90 and d[2] > 0)
        left.subtract(d[1] for _, d in received if d[0] & 0xF0 == 0x80)
        assert max(left.values()) <= 0, left
    saved = StateStore(state).load_performance()
    assert saved.latent_a and saved.panel


ES9_BOARD = {
    "kind": "es9", "name": "es9 test",
    "es9": {
        "input_device": "es9test-in", "output_device": "es9test-out",
        "samplerate": SR, "blocksize": 1024, "safe_min": -1.0, "safe_max": 4.5,
        "trigger_volts": 4.0, "inputs": {"gate": 1, "pitch": 2},
        "outputs": {"trigger": [1, 2, 3, 4], "velocity": [5, 6, 7, 8]},
        # an offset on every output: its 0 V sample is not 0.0 (what JACK reads once the
        # stream's ports are gone), so the capture shows that 0 V itself was rendered
        "calibration": {"outputs": {str(ch): {"offset": -0.05} for ch in range(1, 9)}},
    },
}


@pytest.mark.jack
def test_sigterm_of_es9_run_renders_0_v_saves_state_exits_0(
        jack_audio_server, systemd, tmp_path):  # noqa: F811
    import sounddevice as sd
    from grooverack.backends import es9
    from grooverack.boards.es9 import parse_board

    state = tmp_path / "state"
    settings = load_settings(overrides=[
        "tempo=120", "density=1.0", "uncertainty=0.0", "outputs.trigger_ms=5.0",
        "outputs.velocity_volts=10.0", f"state.dir={state}"])
    board = SimpleNamespace(name="es9 test", kind="es9", path="es9-test.toml", data=ES9_BOARD)
    zero = np.array([parse_board(board, settings).to_sample(ch, 0.0) for ch in range(1, 9)],
                    dtype=np.float32)
    assert np.all(zero == np.float32(0.005))
    rig = AudioRig(jack_audio_server, np.zeros((2, 4 * SR)), tmp_path, source="es9test-in",
                   sink="es9test-out", inputs=8, tail=SR)
    es9.refresh_devices()  # PortAudio reads the JACK clients that exist now

    def terminate():
        systemd(b"READY=1")
        rig.go()
        t_go = time.monotonic()
        systemd(b"WATCHDOG=1")  # the engine thread beats and the generator is alive
        time.sleep(max(0.0, t_go + 2.0 - time.monotonic()))
        t_kill = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        return t_kill - t_go

    killer = in_thread(terminate)
    try:
        status = es9.run_backend(board, settings, SimpleNamespace(duration=60.0))
        kill_s = killer.result()
        cap, _xruns = rig.result()
    finally:
        sd._terminate()  # before the server goes away
        rig.close()
    assert status == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    kill_frame = int(kill_s * SR)
    played = cap[:4, :kill_frame]
    assert (played > 0.2).any(), "triggers played before the signal"
    dropped = 0
    for ch in range(8):
        connected = np.flatnonzero(cap[ch] != 0.0)  # 0.0 exactly: the stream's port is gone
        assert connected.size, f"channel {ch + 1} never connected"
        last = connected[-1]
        assert last > kill_frame, f"channel {ch + 1} gone before the signal"
        assert last < cap.shape[1] - SR // 10, "the stream outlived the capture"
        # the stream's last samples: its 0 V sample for at least a block
        tail = cap[ch, last - 1024 + 1:last + 1]
        assert np.all(tail == zero[ch]), (ch + 1, np.unique(tail))
        held = np.flatnonzero(cap[ch, :last + 1] != zero[ch])
        if ch >= 4 and held.size and held[-1] >= kill_frame - SR // 20:
            dropped += 1  # a velocity CV held until the signal, then set to 0 V
    assert dropped >= 1, "no held velocity CV was set to 0 V at the signal"
    saved = StateStore(state).load_performance()
    assert saved.latent_a and saved.panel
