"""The web page's HTTP API (Starlette's TestClient) over a real engine on the shipped model,
driven by a loop thread as the wall-clock sim drives it: controls, presses, the state shape, the
websocket, presets (save/recall/rename/delete/export/import), backup/restore, a MIDI loop as
latent A/B, the origin and token checks."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
from grooverack.config import load_settings
from grooverack.runtime.serve import make_engine
from grooverack.web.app import make_app
from grooverack.web.link import EngineLink
from starlette.testclient import TestClient

ORIGIN = {"origin": "http://testserver"}


class Loop:
    """The engine's loop thread: advance 20 ms ahead, then the link's `between`, every 5 ms."""

    def __init__(self, engine, link: EngineLink) -> None:
        self.engine, self.link = engine, link
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.engine.start(0.0)
        link.attach(engine)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic() - self.t0
            self.engine.advance(now + 0.02)
            self.link.between(now)
            time.sleep(0.005)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2.0)
        self.engine.close()


@pytest.fixture(scope="module")
def module_state(tmp_path_factory):
    return tmp_path_factory.mktemp("web-state")


@pytest.fixture
def client(tmp_path):
    settings = load_settings(overrides=[f"state.dir={tmp_path}"])
    engine = make_engine(settings, threaded=True)
    link = EngineLink()
    loop = Loop(engine, link)
    app = make_app(link, settings, None)
    with TestClient(app, headers=ORIGIN) as c:
        c.engine = engine  # type: ignore[attr-defined]
        c.link = link  # type: ignore[attr-defined]
        c.state_dir = tmp_path  # type: ignore[attr-defined]
        yield c
    loop.close()


def wait_for(predicate, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def drum_midi(path: Path, bars: int = 2, channel: int = 9, notes: tuple[int, ...] = (36, 38, 42)
              ) -> Path:
    """A real MIDI file: kick on the beats, snare on 2 and 4, hats on 8ths, `bars` bars."""
    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    events = []
    for step in range(16 * bars):  # a 0 in `notes` leaves that part out
        tick = step * 24
        if step % 4 == 0 and notes[0]:
            events.append((tick, notes[0], 110))
        if step % 8 == 4 and len(notes) > 1:
            events.append((tick, notes[1], 100))
        if step % 2 == 0 and len(notes) > 2:
            events.append((tick, notes[2], 60 + 30 * (step % 4 == 0)))
    timed = sorted([(t, 1, n, v) for t, n, v in events if n]
                   + [(t + 12, 0, n, 0) for t, n, _ in events if n])
    now = 0
    for tick, on, note, vel in timed:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=note, velocity=vel, channel=channel,
                                  time=tick - now))
        now = tick
    mid.save(path)
    return path


def test_state_has_the_documented_shape(client):
    state = client.get("/api/state").json()
    assert set(state) >= {"controls", "pattern", "step", "groove", "playing", "preset"}
    hits = np.array(state["pattern"]["hits"])
    assert hits.shape == (9, 32) and set(np.unique(hits)) <= {0, 1}
    assert np.array(state["pattern"]["velocities"]).shape == (9, 32)
    assert np.array(state["pattern"]["offsets"]).shape == (9, 32)
    assert 0 <= state["step"] < 32
    assert len(state["groove"]["hits"]) == 32
    assert state["controls"]["follow"] == pytest.approx(0.9)
    assert state["playing"]["generation"] == "model"
    assert state["playing"]["clock"]["running"] is True
    # the playhead moves: the engine's loop publishes
    first = state["position"]
    assert wait_for(lambda: client.get("/api/state").json()["position"] > first + 0.5)


def test_a_control_reaches_the_engine(client):
    r = client.post("/api/controls", json={"follow": 0.3, "density.kick": 0.8})
    assert r.status_code == 200, r.text
    assert client.engine.settings["follow"] == pytest.approx(0.3)
    assert client.engine.settings["density.kick"] == pytest.approx(0.8)
    assert wait_for(lambda: client.get("/api/state").json()["controls"]["follow"] == 0.3)


@pytest.mark.parametrize("body, field, allowed", [
    ({"follow": 1.5}, "follow", "a number from 0 to 1"),
    ({"tempo": 5}, "tempo", "a number from 20 to 300 BPM"),
    ({"follow": "lots"}, "follow", "a number from 0 to 1"),
    ({"volume": 1}, "volume", "follow"),
    ({"record": "loop"}, "record", "'record', 'overdub', 'off'"),
    ({"genre": "polka"}, "genre", "any"),
])
def test_a_bad_control_is_refused_naming_field_and_range(client, body, field, allowed):
    before = dict(client.engine.settings)
    r = client.post("/api/controls", json=body)
    assert r.status_code == 422
    assert r.json()["field"] == field
    assert allowed in r.json()["allowed"]
    assert dict(client.engine.settings) == before


def test_press_buttons(client):
    z = np.array(client.engine.generator.z_a)
    assert client.post("/api/press", json={"button": "randomize_a"}).status_code == 200
    assert not np.array_equal(z, client.engine.generator.z_a)
    r = client.post("/api/press", json={"button": "mute_kick"})
    assert r.json()["result"] is True
    assert wait_for(lambda: client.get("/api/state").json()["playing"]["mutes"]["kick"])
    r = client.post("/api/press", json={"button": "launch"})
    assert r.status_code == 422 and r.json()["field"] == "button"
    assert "randomize_b" in r.json()["allowed"]


def test_fill_gate(client):
    assert client.post("/api/fill", json={"high": True}).json() == {"fill": True}
    assert client.post("/api/fill", json={"high": "yes"}).status_code == 422
    client.post("/api/fill", json={"high": False})


def test_websocket_pushes_the_same_shape(client):
    with client.websocket_connect("/api/ws") as ws:
        first = json.loads(ws.receive_text())
        second = json.loads(ws.receive_text())
    assert set(first) == set(client.get("/api/state").json())
    assert second["serial"] > first["serial"]


def test_controls_over_the_websocket_are_acked_once_applied(client):
    """The page's path for its sliders: the ack comes once the engine's thread applied the
    value, and the state published with it already shows it; a bad value is refused naming the
    field and the range, the engine untouched."""
    with client.websocket_connect("/api/ws") as ws:
        ws.send_text(json.dumps({"id": 7, "controls": {"follow": 0.35, "density.snare": 0.6}}))
        while "ack" not in (answer := json.loads(ws.receive_text())):
            pass
        assert answer == {"ack": 7, "applied": {"follow": 0.35, "density.snare": 0.6}}
        assert client.engine.settings["follow"] == pytest.approx(0.35)
        assert client.get("/api/state").json()["controls"]["follow"] == 0.35
        before = dict(client.engine.settings)
        ws.send_text(json.dumps({"id": 8, "controls": {"uncertainty": 3}}))
        while "ack" not in (answer := json.loads(ws.receive_text())):
            pass
        assert answer["ack"] == 8 and answer["field"] == "uncertainty"
        assert "0 to 1" in answer["allowed"]
        ws.send_text("not json")
        while "ack" not in (answer := json.loads(ws.receive_text())):
            pass
        assert answer["ack"] is None and answer["field"] == "message"
    assert dict(client.engine.settings) == before


def test_writes_from_another_origin_are_refused(client):
    r = client.post("/api/controls", json={"follow": 0.1}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["field"] == "origin"
    assert client.engine.settings["follow"] == pytest.approx(0.9)


def test_presets_save_recall_rename_delete(client):
    client.post("/api/controls", json={"follow": 0.2})
    assert client.post("/api/presets/3/save", json={"name": "verse"}).status_code == 200
    saved = client.get("/api/presets").json()["saved"]
    assert saved == [{"slot": 3, "name": "verse"}]
    client.post("/api/controls", json={"follow": 0.7})
    assert client.post("/api/presets/3/recall").status_code == 200
    assert client.engine.settings["follow"] == pytest.approx(0.2)
    assert client.post("/api/presets/3/rename", json={"name": "chorus"}).status_code == 200
    assert client.get("/api/presets").json()["saved"][0]["name"] == "chorus"
    assert client.post("/api/presets/9/recall").status_code == 404
    assert client.post("/api/presets/65/recall").json()["field"] == "slot"
    assert client.delete("/api/presets/3").status_code == 200
    assert client.get("/api/presets").json()["saved"] == []
    assert not (client.state_dir / "presets" / "03.json").exists()


def test_export_import_round_trip_and_a_broken_file_refused(client):
    client.post("/api/presets/2/save", json={"name": "mine"})
    exported = client.get("/api/presets/2/export").json()
    assert exported["name"] == "mine" and len(exported["latent_a"]) == 128
    r = client.post("/api/presets/import?slot=5", json=exported)
    assert r.status_code == 200, r.text
    assert wait_for(lambda: (client.state_dir / "presets" / "05.json").exists())
    before = (client.state_dir / "presets" / "05.json").read_bytes()
    for broken, field in [({**exported, "latent_a": [1.0] * 3}, "latent_a"),
                          ({**exported, "panel": {"follow": 7}}, "panel.follow"),
                          ({**exported, "format": "other"}, "format"),
                          ({**exported, "colour": "red"}, "colour")]:
        r = client.post("/api/presets/import?slot=5", json=broken)
        assert r.status_code == 422, broken
        assert r.json()["field"] == field, r.json()
    assert (client.state_dir / "presets" / "05.json").read_bytes() == before


def test_backup_and_restore(client):
    from grooverack.state import StateStore, performance_from_engine

    client.post("/api/controls", json={"morph": 0.6})
    client.post("/api/presets/4/save", json={"name": "keep"})
    StateStore(client.state_dir).save_performance(performance_from_engine(client.engine))
    assert wait_for(lambda: (client.state_dir / "presets" / "04.json").exists())
    (client.state_dir / "web-token").write_text("secret\n")  # never in a backup
    zipped = client.get("/api/backup").content
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert "presets/04.json" in names and "presets/names.json" in names
    assert "web-token" not in names
    client.delete("/api/presets/4")
    client.post("/api/controls", json={"morph": 0.1})
    r = client.post("/api/restore", content=zipped)
    assert r.status_code == 200, r.text
    assert r.json()["presets"] == [4]
    assert client.get("/api/presets").json()["saved"] == [{"slot": 4, "name": "keep"}]
    assert client.engine.settings["morph"] == pytest.approx(0.6)  # the performance restored


@pytest.mark.parametrize("member", ["../escape.json", "/etc/passwd.json", "a/b/c.json",
                                    "presets/run.sh"])
def test_a_restore_never_leaves_the_state_directory(client, member):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("performance.json", "{}")
        zf.writestr(member, "{}")
    r = client.post("/api/restore", content=buffer.getvalue())
    assert r.status_code == 422 and r.json()["field"] == "file"
    assert not (client.state_dir.parent / "escape.json").exists()
    assert not (client.state_dir / "performance.json").exists()  # nothing written


def test_a_drum_loop_becomes_latent_a(client, tmp_path):
    data = drum_midi(tmp_path / "beat.mid").read_bytes()
    z_b = np.array(client.engine.generator.z_b)
    r = client.post("/api/loop?slot=A", content=data, headers={"x-filename": "beat.mid"})
    assert r.status_code == 200, r.text
    assert r.json()["bars"] == 2 and r.json()["hits"] > 10
    from grooverack.model.runner import ModelRunner
    from grooverack.web.library import midi_loop_file

    mu, _ = ModelRunner().encode(midi_loop_file(tmp_path / "beat.mid").groove)
    assert np.allclose(client.engine.generator.z_a, mu, atol=1e-5)
    assert np.array_equal(client.engine.generator.z_b, z_b)
    slot = r.json()["preset"]
    assert client.engine.presets[slot]["a"] == pytest.approx(list(mu), abs=1e-5)


@pytest.mark.parametrize("make, reason", [
    (lambda p: drum_midi(p, bars=4), "4 bars"),
    (lambda p: drum_midi(p, channel=0, notes=(60, 0, 0)), "not a drum loop"),
    (lambda p: (p.write_bytes(b"MThd not really"), p)[1], "not a readable MIDI file"),
])
def test_not_a_drum_loop_is_refused_with_the_reason(client, tmp_path, make, reason):
    data = make(tmp_path / "x.mid").read_bytes()
    r = client.post("/api/loop?slot=B", content=data, headers={"x-filename": "x.mid"})
    assert r.status_code == 422
    assert reason in r.json()["error"]
    assert list((client.state_dir / "uploads").glob("*")) == []


def test_pairing_token(tmp_path):
    settings = load_settings(overrides=[f"state.dir={tmp_path}"])
    link = EngineLink()
    app = make_app(link, settings, None, token="s3cret")
    with TestClient(app, headers=ORIGIN) as c:
        assert c.get("/api/state").status_code == 401
        assert c.get("/api/state", headers={"x-grooverack-token": "s3cret"}).status_code == 200
        page = c.get("/?token=s3cret")
        assert page.status_code == 200
        assert c.get("/api/state").status_code == 200  # the cookie the page set
