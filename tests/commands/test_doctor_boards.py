"""`grooverack doctor --board es9` / `--board midi` (issue 30): say what each board needs (a JACK
server, the ES-9's audio device, MIDI ports) and whether it is there, and pass where the board
works: a real JACK server (`jackd -d dummy`), a JACK client standing in for the ES-9."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.rig.jackserver import jack_audio_server  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO / "firmware"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "grooverack", "doctor", *args],
                          capture_output=True, text=True, timeout=120, env=full)


def test_doctor_without_a_jack_server_says_what_is_missing() -> None:
    env = {"JACK_DEFAULT_SERVER": f"grooverack-none-{os.getpid()}", "JACK_NO_START_SERVER": "1"}
    for board in ("es9", "midi"):
        proc = doctor("--board", board, "--set", "midi.api=jack", env=env)
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr
        assert "FAIL  JACK server" in proc.stdout and "no JACK server" in proc.stdout
        assert "start one" in proc.stdout


def test_doctor_passes_where_the_es9_and_midi_boards_work(jack_audio_server) -> None:  # noqa: F811
    client = jack_audio_server.client("es9doc")
    for n in range(1, 5):
        client.outports.register(f"out_{n}")
    for n in range(1, 17):
        client.inports.register(f"in_{n}")
    client.activate()
    try:
        es9 = doctor("--board", "es9", "--set", "es9.device=es9doc")
        assert es9.returncode == 0, es9.stdout + es9.stderr
        # the period (1024) is longer than the ES-9 board's 64-frame block: a warning
        assert "warn  JACK server: running at 48000 Hz, 1024-frame periods" in es9.stdout
        assert "longer than the board's 64-frame block" in es9.stdout
        assert "ok    audio input: 'es9doc'" in es9.stdout
        assert "ok    audio output: 'es9doc'" in es9.stdout
        assert "verdict: ready to play" in es9.stdout
        missing = doctor("--board", "es9", "--set", "es9.device=nothing-like-it")
        assert missing.returncode == 1 and "no device matching 'nothing-like-it'" in missing.stdout
        midi = doctor("--board", "midi", "--set", "midi.api=jack")
        assert midi.returncode == 0, midi.stdout + midi.stderr
        assert "ok    MIDI input" in midi.stdout and "ok    MIDI output" in midi.stdout
        wrong = doctor("--board", "midi", "--set", "midi.api=jack",
                       "--set", "midi.input_port=no-such-keyboard")
        assert wrong.returncode == 1
        assert "midi.input_port = 'no-such-keyboard' matches none" in wrong.stdout
    finally:
        client.deactivate()
        client.close()
