"""The page's process boundary: a `Relay` thread beside the engine's loop and a `RemoteLink` on the
other end of a real pipe carry commands, their results and refusals, and snapshots (presets only
when they changed)."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from grooverack.config import load_settings
from grooverack.runtime.serve import make_engine
from grooverack.web.app import make_app
from grooverack.web.link import Busy, EngineLink
from grooverack.web.relay import Relay, RemoteLink
from starlette.testclient import TestClient

from tests.web.test_web_api import ORIGIN, Loop, wait_for


@pytest.fixture
def remote(tmp_path):
    settings = load_settings(overrides=[f"state.dir={tmp_path}"])
    engine = make_engine(settings, threaded=True)
    link = EngineLink()
    loop = Loop(engine, link)
    ours, theirs = multiprocessing.Pipe()
    relay = Relay(link, ours)
    relay.start()
    remote = RemoteLink(theirs)
    assert wait_for(lambda: remote.ready)
    yield engine, link, remote, settings
    relay.stop()
    ours.close()
    assert remote.closed.wait(2.0)
    loop.close()


def test_commands_and_results_cross(remote):
    engine, _, link, _ = remote
    assert link.submit("control", "follow", 0.25).result(2.0) == 0.25
    assert engine.settings["follow"] == 0.25
    with pytest.raises(ValueError, match="preset 9 is empty"):
        link.submit("recall", 9).result(2.0)
    first = link.latest.serial
    assert wait_for(lambda: link.latest.serial > first)
    assert wait_for(lambda: link.latest.controls["follow"] == 0.25)
    # the arrays travel as bytes: the same pattern and groove on the other side
    assert wait_for(lambda: link.latest.pattern.serial == engine.pattern.serial)
    assert link.latest.pattern.same_as(engine.pattern)
    assert (link.latest.groove == engine.groove).all()


def test_the_state_after_an_answer_shows_the_command(remote):
    """Each answer crosses after the snapshot that shows its command (the link publishes before
    it answers, the relay sends that snapshot first): whoever reads the state once a request
    is answered sees it, however fast the commands come."""
    engine, _, link, _ = remote
    for i in range(20):
        value = round(0.1 + 0.04 * i, 2)
        assert link.submit("control", "follow", value).result(2.0) == value
        assert link.latest.controls["follow"] == value
        assert link.submit("press", "mute_kick").result(2.0) is (i % 2 == 0)
        assert link.latest.mutes["kick"] is (i % 2 == 0)


def test_presets_travel_only_when_they_change(remote):
    engine, _, link, _ = remote
    link.submit("save", 4).result(2.0)
    assert wait_for(lambda: 4 in link.latest.presets)
    assert link.latest.presets[4]["a"] == engine.presets[4]["a"]
    time.sleep(0.1)
    assert 4 in link.latest.presets  # later snapshots (without presets) keep them


def test_a_full_inbox_is_refused_across(remote):
    _, engine_link, link, _ = remote
    engine_link.inbox.maxsize = 1  # the loop drains 8 a pass: flood it faster than that
    futures = [link.submit("control", "morph", 0.5) for _ in range(200)]
    outcomes = []
    for f in futures:
        try:
            f.result(2.0)
            outcomes.append("ok")
        except Busy:
            outcomes.append("busy")
    assert "busy" in outcomes and "ok" in outcomes


def test_the_api_over_the_remote_link(remote):
    engine, _, link, settings = remote
    with TestClient(make_app(link, settings, None), headers=ORIGIN) as client:
        assert client.post("/api/controls", json={"density": 0.7}).status_code == 200
        assert engine.settings["density"] == 0.7
        assert client.post("/api/presets/5/recall").status_code == 404
        state = client.get("/api/state").json()
        assert state["playing"]["faults"] == {}
