"""`runtime.serve.serve`, the one skeleton of every real-time back end: real signals to a real
`grooverack run --board sim` (SIGHUP, SIGTERM, a second SIGTERM 0.15 s into the stop, SIGINT)
end with every output at 0 V, the performance state saved and exit status 0; an error in a
loop ends through the same shutdown, outputs to 0 V before the state is saved."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grooverack.config import Settings
from grooverack.runtime.serve import Lifecycle, make_engine, serve
from grooverack.state import StateStore


def wait_ready(sock: socket.socket, proc: subprocess.Popen[str]) -> None:
    """READY=1, then a WATCHDOG=1 (the loop and the generator are alive: it plays)."""
    got: list[bytes] = []
    while b"WATCHDOG=1" not in got:
        try:
            got.append(sock.recv(4096))
        except TimeoutError:
            pytest.fail(f"no READY/WATCHDOG: {got}; exit {proc.poll()}")


@pytest.mark.parametrize("signals", [
    [signal.SIGHUP], [signal.SIGTERM], [signal.SIGTERM, signal.SIGTERM], [signal.SIGINT]],
    ids=["SIGHUP", "SIGTERM", "SIGTERM-twice", "SIGINT"])
def test_a_stop_signal_zeroes_the_outputs_saves_the_state_and_exits_0(tmp_path, signals):
    notify = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify)
    sock.settimeout(60)
    out, state = tmp_path / "render", tmp_path / "state"
    env = dict(os.environ, NOTIFY_SOCKET=notify, WATCHDOG_USEC="500000")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grooverack", "run", "--board", "sim", "--out", str(out),
         "--set", f"state.dir={state}", "--set", "density=1.0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(sock, proc)
        time.sleep(0.5)  # a few steps played
        for k, sig in enumerate(signals):
            if k:
                time.sleep(0.15)  # the second one lands while the first one's stop runs
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    rows = list(csv.DictReader((out / "outputs.csv").open()))
    assert any(float(r["volts"]) > 0 for r in rows), "it played"
    last: dict[tuple[str, str], float] = {}
    for row in rows:
        last[row["output"], row["kind"]] = float(row["volts"])
    assert len(last) >= 2 * 8 and not {k: v for k, v in last.items() if v != 0.0}
    saved = StateStore(state).load_performance()
    assert saved.latent_a and saved.panel
    # (the second SIGTERM lands in the stop, or after the process ended: either way no
    # traceback, exit 0, nothing lost; when it lands, the log says "already stopping")


class Failing:
    """A back end whose loop fails after it played a little; it records the shutdown's order."""

    def __init__(self, steps: list[str], state: Path) -> None:
        self.steps, self.state = steps, state

    def start(self, beat):
        self.steps.append("start")
        return "failing up"

    def run(self, life: Lifecycle) -> None:
        self.steps.append("run")
        life.beat()
        raise RuntimeError("a driver bug in the loop")

    def outputs_to_zero(self) -> None:
        saved = (self.state / "performance.json").exists()
        self.steps.append(f"outputs to 0 V (state saved before: {saved})")

    def close(self) -> None:
        self.steps.append("close")


def test_an_error_in_the_loop_ends_through_the_shutdown(tmp_path, caplog):
    state = tmp_path / "state"
    settings = Settings({"state.dir": str(state)})
    steps: list[str] = []
    engine = make_engine(settings, threaded=True)
    with pytest.raises(RuntimeError, match="driver bug"):
        serve(settings, lambda e: Failing(steps, state), engine=engine, signals=False)
    assert steps == ["start", "run", "outputs to 0 V (state saved before: False)", "close"]
    assert StateStore(state).load_performance().latent_a  # saved after the outputs
    assert not engine.alive  # the worker stopped
    assert "stopped by an error" in caplog.text


def test_a_failure_while_starting_still_zeroes_and_stops_the_engine(tmp_path):
    class NoStart(Failing):
        def start(self, beat):
            raise OSError("the device went away")

    settings = Settings({"state.dir": str(tmp_path / "state")})
    steps: list[str] = []
    engine = make_engine(settings, threaded=True)
    with pytest.raises(OSError):
        serve(settings, lambda e: NoStart(steps, tmp_path / "state"), engine=engine,
              signals=False)
    assert steps == ["outputs to 0 V (state saved before: False)", "close"]
    assert not engine.alive


def test_serve_runs_a_back_end_from_a_thread_of_its_own(tmp_path):
    """A back end served from another thread (a web server's, say): no signal handlers there
    (Python allows them only on the main thread), the same skeleton otherwise."""
    import threading

    class Quick(Failing):
        def run(self, life: Lifecycle) -> None:
            self.steps.append("run")
            life.wait(0.2)

    settings = Settings({"state.dir": str(tmp_path / "state")})
    steps: list[str] = []
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(
        serve(settings, lambda e: Quick(steps, tmp_path / "state"))))
    thread.start()
    thread.join(60)
    assert result == [0]
    assert steps == ["start", "run", "outputs to 0 V (state saved before: False)", "close"]
    assert StateStore(tmp_path / "state").load_performance().latent_a
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
