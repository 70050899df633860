"""Shared test fixtures: paths to the repository, the shipped model and the dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GMD_ZIP = REPO.parent / "shared" / "datasets" / "gmd" / "groove-v1.0.0-midionly.zip"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def gmd_zip() -> Path:
    if not GMD_ZIP.exists():
        pytest.skip(f"Groove MIDI Dataset zip not found at {GMD_ZIP}")
    return GMD_ZIP


@pytest.fixture(scope="session")
def gmd_cache_dir(gmd_zip, tmp_path_factory) -> Path:
    """One loop cache per test session, shared by the data and evaluation tests."""
    return tmp_path_factory.mktemp("gmd-cache")


@pytest.fixture(scope="session")
def fake_manifest(tmp_path_factory) -> Path:
    """A small random-weight model pair with the contract's names and manifest (tests/rig/fakemodel.py)."""
    from tests.rig.fakemodel import build_fake_model

    return build_fake_model(tmp_path_factory.mktemp("fakemodel"))


@pytest.fixture(scope="session")
def fake_runner(fake_manifest):
    """The real ModelRunner over the fake model."""
    from grooverack.model.runner import ModelRunner

    return ModelRunner(fake_manifest)


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory, monkeypatch):
    """No test reads or writes state, presets or calibration in the real home directory: the
    default state dir (`grooverack.state.state_dir`) is a fresh folder per test (subprocesses
    inherit it); a test that sets config key state.dir still wins."""
    monkeypatch.setenv("GROOVERACK_STATE_DIR", str(tmp_path_factory.mktemp("state")))


_FORCED: list[str] = []


@pytest.fixture(autouse=True)
def _no_forced_exit():
    """A loop that does not stop within the grace after SIGTERM is stopped by the signal's timer
    with os._exit(0) (`runtime.service.Service._force_stop`): in a test process that would end
    the whole run silently with status 0. Here (for the whole session: the timer may fire after
    its test) it is recorded and fails the test running then."""
    from grooverack.runtime.service import Service

    Service._exit = staticmethod(
        lambda code: _FORCED.append(f"forced exit({code}): the loop did not stop in time"))
    yield
    if _FORCED:
        message = "; ".join(_FORCED)
        _FORCED.clear()
        pytest.fail(message)


JACK_FIXTURES = {"jack_server", "jack_audio_server", "jack_killable", "jack_audio_killable"}


def pytest_collection_modifyitems(items):
    """A test that starts a JACK server (a fixture of `tests.rig.jackserver`) is a `jack` test
    whether or not it says so: `-m "not jack"` (the fast inner loop, README) leaves it out."""
    for item in items:
        if JACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jack)
