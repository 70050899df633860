"""A real JACK server for tests: `jackd -d dummy` under a name of its own, stopped afterwards.

Tests that need it use the `jack_server` fixture (import it into the test module). They skip only
when `jackd` is not installed at all (Debian package jackd2; `.ci/run` installs it). Everything
else (a server that does not start, a client that cannot connect) is a failure.

While the fixture runs, `JACK_DEFAULT_SERVER` names the test server, so python-rtmidi's JACK API
and PortAudio's JACK host API (both read it when they connect) find it and nothing else.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

_counter = itertools.count()


@dataclass
class JackServer:
    name: str
    rate: int
    period: int
    process: subprocess.Popen

    def client(self, name: str):
        """A JACK-Client (python `jack`) client on this server."""
        import jack

        return jack.Client(name, servername=self.name, no_start_server=True)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if hasattr(self, "_log_path") else ""


def start_server(rate: int = 48000, period: int = 64, log_dir=None) -> JackServer:
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (Debian package jackd2, installed by .ci/run)")
    import jack  # JACK-Client (dev extra); needs libjack, which jackd2 brings

    name = f"grtest{os.getpid()}x{next(_counter)}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    log = (log_dir / f"{name}.log") if log_dir is not None else None
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    server = JackServer(name, rate, period, proc)
    if log is not None:
        server._log_path = log
    jack.set_error_function(lambda _msg: None)  # "cannot connect" while it starts is expected
    deadline = time.monotonic() + 15.0
    while True:  # up when a client can connect
        if proc.poll() is not None:
            raise RuntimeError(f"jackd -n {name} exited with {proc.returncode}: {server.log()}")
        try:
            probe = jack.Client("probe", servername=name, no_start_server=True)
        except jack.JackError:
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError(f"jackd -n {name} did not accept clients: {server.log()}") from None
            time.sleep(0.1)
            continue
        probe.close()
        jack.set_error_function()
        return server


def stop_server(server: JackServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def jack_server(tmp_path, monkeypatch) -> Iterator[JackServer]:
    server = start_server(log_dir=tmp_path)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    try:
        yield server
    finally:
        stop_server(server)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until predicate() is true (a test of real components waits for them, then checks)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
