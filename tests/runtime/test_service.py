"""The service layer: systemd unit, sd_notify datagrams, watchdog gating, signals, real time."""

from __future__ import annotations

import configparser
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from grooverack.runtime import service
from grooverack.runtime.service import Notifier, Service

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "grooverack.service"


def verify_unit(text: str, tmp_path: Path) -> tuple[int, str]:
    """`systemd-analyze verify` on a copy of the unit whose ExecStart names this venv's program,
    so it works on a machine (or container) where nothing is installed and systemd is not running.
    Returns (exit status, the lines about the unit)."""
    exe = Path(sys.executable).parent / "grooverack"
    unit = tmp_path / "grooverack.service"
    unit.write_text(text.replace("/opt/grooverack/venv/bin/grooverack", str(exe)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    about = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "grooverack.service" in line]
    return proc.returncode, "\n".join(about)


@pytest.fixture
def analyze():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd; .ci/run does)")


def test_unit_verifies_cleanly(analyze, tmp_path):
    rc, about = verify_unit(UNIT.read_text(), tmp_path)
    assert rc == 0 and about == "", about


def test_unit_verify_catches_a_broken_unit(analyze, tmp_path):
    # the check above must be able to fail: systemd only warns (exit 0) about a bad value
    rc, about = verify_unit(UNIT.read_text().replace("Type=notify", "Type=notifyy"), tmp_path)
    assert "notifyy" in about


def test_unit_has_the_required_settings():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(UNIT.read_text())
    svc = cp["Service"]
    assert svc["Type"] == "notify"
    assert float(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "always"
    assert int(svc["LimitRTPRIO"]) >= service.RT_PRIORITY
    assert svc["LimitMEMLOCK"] == "infinity"
    assert "grooverack run" in svc["ExecStart"]
    assert cp["Install"]["WantedBy"] == "multi-user.target"


def bound_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    return sock


def test_notify_over_a_real_datagram_socket(tmp_path):
    path = str(tmp_path / "notify")
    sock = bound_socket(path)
    try:
        n = Notifier(path)
        assert n.send(READY=1, STATUS="board sim up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=board sim up"
        assert n.send(STATUS="two\nlines")  # a newline would start a new field: flattened
        assert sock.recv(4096) == b"STATUS=two lines"
        n.close()
    finally:
        sock.close()


def test_notify_abstract_namespace_and_environment(monkeypatch):
    name = f"grooverack-test-{os.getpid()}"
    sock = bound_socket("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().send(WATCHDOG=1)
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier().enabled and Notifier().send(READY=1) is False


def test_notify_to_a_vanished_socket_is_logged_once(tmp_path, caplog):
    n = Notifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        assert not n.send(WATCHDOG=1)
        assert not n.send(WATCHDOG=1)
    assert caplog.text.count("sd_notify") == 1


def test_notify_to_a_listener_that_stopped_reading_never_blocks(tmp_path, caplog):
    """A notify socket whose reader stopped (its datagram queue full, a hung systemd, a test
    that read what it wanted) drops what cannot leave: a send never holds up the loop or the
    shutdown (it once hung a stop for good behind a full queue)."""
    path = str(tmp_path / "notify")
    sock = bound_socket(path)  # bound, never read
    try:
        n = Notifier(path)
        sent = [n.send(WATCHDOG=1) for _ in range(40)]  # past the kernel queue (10 datagrams)
        assert sent[0] and not all(sent)  # it filled up, and did not wait
        assert "sd_notify" in caplog.text
    finally:
        sock.close()


def test_watchdog_interval_from_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "5000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert service.watchdog_interval() == 2.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert service.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    monkeypatch.delenv("WATCHDOG_PID")
    assert service.watchdog_interval() is None


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_watchdog_pings_only_while_loop_and_generator_are_alive(tmp_path):
    path = str(tmp_path / "notify")
    sock = bound_socket(path)
    sock.setblocking(False)
    clock = FakeClock()
    generator_alive = [True]
    svc = Service(notifier=Notifier(path), interval=1.0, clock=clock)
    svc.watch("loop", stale_after=0.5)
    svc.watch_probe("generator", lambda: generator_alive[0])

    def received() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096))
            except BlockingIOError:
                return out

    try:
        assert svc.tick() and received() == [b"WATCHDOG=1"]
        clock.t += 0.3
        svc.beat("loop")
        assert not svc.tick()             # not due yet (interval 1 s)
        clock.t += 1.0                     # loop silent for 1.0 s > 0.5 s
        assert not svc.tick()
        assert received() == [b"STATUS=loop stalled"]
        svc.beat("loop")
        assert svc.tick() and received() == [b"WATCHDOG=1"]
        generator_alive[0] = False         # inference stuck: no more pings
        clock.t += 2.0
        svc.beat("loop")
        assert not svc.tick()
        assert received() == [b"STATUS=generator stalled"]
        assert svc.stale() == ["generator"]

        def broken() -> bool:
            raise RuntimeError("worker died")

        svc.watch_probe("generator", broken)  # a probe that raises counts as not alive
        assert not svc.tick() and svc.stale() == ["generator"]
    finally:
        sock.close()


def test_no_watchdog_outside_systemd():
    svc = Service(notifier=Notifier(""), interval=None)
    svc.watch("loop")
    assert not svc.tick()


def test_realtime_request_says_when_not_permitted(monkeypatch, caplog):
    def refuse(pid, policy, param):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.WARNING):
        assert Service(notifier=Notifier("")).realtime() is False
    assert "SCHED_FIFO" in caplog.text and "not permitted" in caplog.text


def test_realtime_request_for_real():
    # run in a thread-free subprocess so this test's process keeps its scheduling
    code = textwrap.dedent("""
        import logging, os, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        from grooverack.runtime.service import Service, Notifier
        ok = Service(notifier=Notifier("")).realtime(10)
        policy = os.sched_getscheduler(0)
        print("RESULT", ok, policy == os.SCHED_FIFO)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    result = out.split("RESULT")[1].split()
    assert result[0] == result[1]  # says it got SCHED_FIFO exactly when it did
    assert ("SCHED_FIFO priority 10" in out) == (result[0] == "True")
    assert ("not permitted" in out) == (result[0] == "False")


SIGNAL_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from grooverack.runtime.service import Service, Notifier
    out = Path(sys.argv[1])
    svc = Service(notifier=Notifier(sys.argv[2]), interval=0.05)
    svc.install_signal_handlers()
    svc.on_shutdown(lambda: out.with_suffix(".outputs").write_text("0V"))
    svc.on_shutdown(lambda: 1 / 0)  # a failing step must not stop the next
    svc.on_shutdown(lambda: out.with_suffix(".state").write_text("saved"))
    svc.watch("loop", 1.0)
    svc.ready("sim up")
    while not svc.stopping:
        svc.beat("loop")
        time.sleep(0.005)
    sys.exit(svc.shutdown())
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_loop_runs_shutdown_and_exits_0(tmp_path, sig):
    path = str(tmp_path / "notify")
    sock = bound_socket(path)
    out = tmp_path / "child"
    proc = subprocess.Popen([sys.executable, "-c", SIGNAL_CHILD, str(out), path],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert sock.recv(4096) == b"READY=1\nSTATUS=sim up"
        assert sock.recv(4096) == b"WATCHDOG=1"  # the loop beats: pings flow
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill() if proc.poll() is None else None
        sock.close()
    assert out.with_suffix(".outputs").read_text() == "0V"
    assert out.with_suffix(".state").read_text() == "saved"
    assert "ZeroDivisionError" in proc.stderr.read()


def test_sigterm_of_grooverack_run_sim_zeroes_outputs_saves_state_exits_0(tmp_path):
    """The real run loop (`grooverack run --board sim`) under a fake systemd: READY=1 after
    start-up, WATCHDOG=1 while it plays, SIGTERM -> every output's last value 0 V, the
    performance state saved, exit status 0."""
    import csv

    path = str(tmp_path / "notify")
    sock = bound_socket(path)
    sock.settimeout(60)
    out = tmp_path / "render"
    state = tmp_path / "state"
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="500000")
    env.pop("WATCHDOG_PID", None)
    exe = Path(sys.executable).parent / "grooverack"
    proc = subprocess.Popen([str(exe), "run", "--board", "sim", "--out", str(out),
                             "--set", f"state.dir={state}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got = []
        while not any(m.startswith(b"READY=1") for m in got):
            got.append(sock.recv(4096))
        while b"WATCHDOG=1" not in got:   # playing: the loop and the generator are alive
            got.append(sock.recv(4096))
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, stderr[-3000:]
    rows = list(csv.DictReader((out / "outputs.csv").open()))
    assert rows, "it played"
    last: dict[tuple[str, str], float] = {}
    for row in rows:
        last[row["output"], row["kind"]] = float(row["volts"])
    assert {k: v for k, v in last.items() if v != 0.0} == {}, "outputs left above 0 V"
    from grooverack.state import StateStore

    saved = StateStore(state).load_performance()
    assert saved.latent_a and saved.panel


# --- deploy/install.sh and the example config ---------------------------------------------

INSTALL = REPO / "deploy" / "install.sh"


def test_install_script_parses_and_is_shellcheck_clean():
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck; .ci/run does)")
    proc = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("model, gpio", [
    ("Raspberry Pi 4 Model B Rev 1.5", "RPi.GPIO"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "RPi.GPIO"),
    ("Raspberry Pi Zero 2 W Rev 1.0", "RPi.GPIO"),
    ("Raspberry Pi 5 Model B Rev 1.0", "rpi-lgpio"),
])
def test_install_dry_run_picks_the_gpio_library_by_model(tmp_path, model, gpio):
    model_file = tmp_path / "model"
    model_file.write_bytes(model.encode() + b"\0")
    env = dict(os.environ, GROOVERACK_DEVICE_MODEL=str(model_file))
    proc = subprocess.run(["bash", str(INSTALL), "--dry-run", "--no-start"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"GPIO library for '{model}': {gpio}" in out
    assert f"pip install -q {gpio}" in out
    assert ("liblgpio-dev" in out) == (gpio == "rpi-lgpio")
    assert "systemctl enable grooverack.service" in out
    assert "/etc/grooverack/grooverack.toml" in out and "/var/lib/grooverack" in out
    assert "systemctl restart" not in out  # --no-start


def test_install_dry_run_from_a_wheel_offline(tmp_path):
    # deploy/aarch64/install_check.sh installs this way in an arm64 chroot with no network
    wheel = tmp_path / "grooverack-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    links = tmp_path / "wheels"
    links.mkdir()
    proc = subprocess.run(["bash", str(INSTALL), "--dry-run", "--no-start", "--wheel", str(wheel),
                           "--find-links", str(links)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    offline = f"pip install -q --no-index --find-links {links}"
    assert f"{offline} --force-reinstall --no-deps {wheel}" in proc.stdout
    assert f"{offline} {wheel} spidev smbus2 gpiod>=2.1" in proc.stdout
    assert "-e /opt/grooverack" not in proc.stdout
    bad = subprocess.run(["bash", str(INSTALL), "--dry-run", "--wheel", str(links)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "not a .whl file" in bad.stderr


def test_install_uninstall_dry_run_keeps_data_unless_purge():
    proc = subprocess.run(["bash", str(INSTALL), "--uninstall", "--dry-run"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "kept /etc/grooverack and /var/lib/grooverack" in proc.stdout
    purge = subprocess.run(["bash", str(INSTALL), "--uninstall", "--purge", "--dry-run"],
                           capture_output=True, text=True, timeout=60)
    assert "rm -rf /etc/grooverack /var/lib/grooverack" in purge.stdout
    bad = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option '--frobnicate'" in bad.stderr


def test_example_config_is_valid():
    from grooverack.config import load_settings

    settings = load_settings(REPO / "deploy" / "grooverack.toml")
    assert settings["state.dir"] == "/var/lib/grooverack"
    from grooverack.boards.board import board_path

    assert board_path(settings["board"]).exists(), settings["board"]


STUCK_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from grooverack.runtime.service import Service, Notifier
    out = Path(sys.argv[1])
    svc = Service(notifier=Notifier(""), interval=None)
    svc.stop_grace = 0.5
    svc.install_signal_handlers()
    svc.on_shutdown(lambda: out.write_text("0V"))
    print("ready", flush=True)
    while True:          # a loop that never looks at svc.stopping (stuck in a driver call)
        time.sleep(0.01)
""")


def test_a_loop_that_does_not_stop_is_stopped_for_it(tmp_path):
    out = tmp_path / "outputs"
    proc = subprocess.Popen([sys.executable, "-c", STUCK_CHILD, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.read_text() == "0V"
    assert "did not stop" in proc.stderr.read()


def test_ready_freezes_what_start_up_made_out_of_the_garbage_collector(tmp_path, fake_runner):
    """Every back end's Lifecycle.ready: the model sessions, board and engine made at start-up
    are moved out of the collector's reach, so no full collection walks them while playing."""
    import gc

    from grooverack.config import Settings
    from grooverack.engine.engine import Engine
    from grooverack.runtime.serve import Lifecycle

    gc.unfreeze()
    engine = Engine(Settings({"state.dir": str(tmp_path)}), fake_runner)
    life = Lifecycle(engine.settings, engine, signals=False)
    try:
        life.ready("test", outputs_to_zero=lambda: None)
        assert gc.get_freeze_count() > 0
    finally:
        life.shutdown()
        gc.unfreeze()
