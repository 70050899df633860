"""The web page's systemd unit (deploy/grooverack-web.service) and its pairing token."""

from __future__ import annotations

import configparser
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from grooverack.commands.web import kept_token, loopback

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "grooverack-web.service"


def test_unit_verifies_cleanly(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd; .ci/run does)")
    exe = Path(sys.executable).parent / "grooverack"
    unit = tmp_path / "grooverack-web.service"
    unit.write_text(UNIT.read_text().replace("/opt/grooverack/venv/bin/grooverack", str(exe)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    about = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "grooverack-web.service" in line]
    assert proc.returncode == 0 and about == [], about


def test_unit_runs_the_module_instead_of_the_service():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(UNIT.read_text())
    svc = cp["Service"]
    assert "grooverack web" in svc["ExecStart"] and "--token-file" in svc["ExecStart"]
    assert "--host 0.0.0.0" in svc["ExecStart"]
    assert cp["Unit"]["Conflicts"] == "grooverack.service"  # one module on the buses
    assert svc["Type"] == "notify" and float(svc["WatchdogSec"]) > 0
    assert svc["LimitMEMLOCK"] == "infinity"


def test_the_token_is_kept_private_and_across_restarts(tmp_path):
    path = tmp_path / "web-token"
    first = kept_token(str(path))
    assert len(first) >= 12
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kept_token(str(path)) == first
    assert kept_token(None) != kept_token(None)


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                         ("0.0.0.0", False), ("192.168.1.20", False)])
def test_only_loopback_goes_without_a_token(host, local):
    assert loopback(host) is local


def test_a_port_in_use_is_refused_before_the_module_starts(capsys):
    import socket

    from grooverack.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["web", "--port", str(port), "--duration", "1"]) == 2
    assert f"--port {port}: cannot listen there" in capsys.readouterr().err
