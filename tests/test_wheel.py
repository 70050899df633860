"""A plain (not editable) install works outside the checkout: the wheel carries the model, the
board files and the calibration defaults (`grooverack.resources`), and renders what the checkout
renders. Built with pip, installed in a fresh venv in a temporary folder, run from that folder."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

# building and installing a wheel takes seconds: out of the inner loop, in CI
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"),
         str(REPO)])
    wheel = next((tmp / "dist").glob("grooverack-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    # the runtime's dependencies (numpy, onnxruntime, mido, smbus2) from this interpreter's
    # environment, without its editable grooverack (a .pth of plain folders runs no .pth inside)
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
                    ).stdout.strip())
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "zz-test-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "GROOVERACK_MODELS", "GROOVERACK_BOARDS")}
    return wheel, venv, tmp, env


def test_wheel_carries_the_runtime_files(installed):
    wheel, *_ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("grooverack.json", "grooverack-encoder.int8.onnx", "grooverack-decoder.int8.onnx",
                 "grooverack-encoder.fp32.onnx", "grooverack-decoder.fp32.onnx",
                 "latent-bank.npz"):
        assert f"grooverack/data/models/{name}" in names
    boards = {Path(n).name for n in names if n.startswith("grooverack/data/boards/")}
    assert boards == {p.name for p in (REPO / "hw" / "boards").glob("*.toml")}
    defaults = {Path(n).name for n in names if n.startswith("grooverack/data/calibration/")}
    assert defaults == {p.name for p in (REPO / "calibration" / "defaults").glob("*.json")}
    assert any(n.endswith("licenses/LICENSE") for n in names)
    # the page of `grooverack web`: every file it loads, no CDN
    static = {Path(n).name for n in names if n.startswith("grooverack/web/static/")}
    shipped = REPO / "firmware" / "grooverack" / "web" / "static"
    assert static == {p.name for p in shipped.iterdir()} >= {"index.html", "app.js", "drums.js",
                                                               "style.css"}


def test_installed_sim_renders_outside_the_checkout(installed, tmp_path):
    _, venv, tmp, env = installed
    where = run([str(venv / "bin" / "python"), "-c",
                 "import grooverack, grooverack.resources as r; print(grooverack.__file__); "
                 "print(r.shipped_models_dir())"], cwd=tmp, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # not the checkout's files
    args = ["sim", "--seed", "3", "--bars", "4", "-q"]
    run([str(venv / "bin" / "grooverack"), *args, "--out", str(tmp_path / "wheel")], cwd=tmp,
        env=env)
    run([sys.executable, "-m", "grooverack", *args, "--out", str(tmp_path / "checkout")],
        cwd=tmp_path)
    got = (tmp_path / "wheel" / "outputs.csv").read_bytes()
    assert len(got.splitlines()) > 100
    assert got == (tmp_path / "checkout" / "outputs.csv").read_bytes()


def test_a_users_board_folder_comes_first(installed, tmp_path):
    _, venv, tmp, env = installed
    own = tmp_path / "boards"
    own.mkdir()
    text = (REPO / "hw" / "boards" / "sim.toml").read_text().replace('name = "sim"', 'name = "mine"')
    (own / "mine.toml").write_text(text)
    env = {**env, "GROOVERACK_BOARDS": str(own)}
    run([str(venv / "bin" / "grooverack"), "sim", "--board", "mine", "--bars", "1", "-q",
         "--out", str(tmp_path / "r")], cwd=tmp, env=env)
    assert (tmp_path / "r" / "outputs.csv").stat().st_size > 0
    bad = subprocess.run([str(venv / "bin" / "grooverack"), "sim", "--board", "nosuch", "-q",
                          "--out", str(tmp_path / "x")], cwd=tmp, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "nosuch" in bad.stderr and str(own) in bad.stderr
