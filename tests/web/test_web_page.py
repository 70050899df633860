"""The module's page in a real browser (Debian's chromium through Playwright) against a real
`grooverack web` (the sim board on the wall clock): FOLLOW turned with the keyboard reaches the
module, the drums start in the browser, a preset saved and recalled, a broken preset refused
naming the field, a drum loop made latent B, no console errors."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("playwright")
if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed", allow_module_level=True)

from tests.rig.webserver import chromium, web_server  # noqa: E402


def api_state(url: str) -> dict:
    with urllib.request.urlopen(url + "api/state", timeout=2) as r:
        return json.loads(r.read())


def preset_names(state_dir: Path) -> list[str]:
    """The presets on disk, without atomic writes still in flight (hidden temporaries)."""
    presets = state_dir / "presets"
    return sorted(p.name for p in presets.glob("*") if not p.name.startswith(".")) \
        if presets.exists() else []


def until(predicate, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = tmp_path_factory.mktemp("web-page-state")
    with web_server(state) as url, chromium() as browser:
        yield url, browser, state


@pytest.fixture
def page(served):
    url, browser, _ = served
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.grooverackFirstPattern !== undefined", timeout=5000)
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
    assert errors == [], errors


def test_follow_turned_with_the_keyboard_reaches_the_module(page, served):
    url = served[0]
    follow = page.get_by_role("slider", name="FOLLOW")
    follow.focus()
    page.keyboard.press("Home")
    assert until(lambda: api_state(url)["controls"]["follow"] == 0.0)
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    assert until(lambda: api_state(url)["controls"]["follow"] == pytest.approx(0.05))
    # every panel control has its labelled slider; the buttons are reachable by name
    for name in ("A/B MORPH", "UNCERT", "DENSITY", "TEMPO", "SWING", "QUANTIZE", "GRV VEL",
                 "GRV OFS", "DENSITY KICK"):
        assert page.get_by_role("slider", name=name).count() >= 1, name
    for name in ("RND A", "RND B", "CLEAR", "Mute kick", "Mute cymbals", "Fill (hold)"):
        assert page.get_by_role("button", name=name).count() == 1, name
    # the drums in the browser (Web Audio) start on a press and play without an error
    sound = page.get_by_role("button", name="Play sound in this browser")
    sound.click()
    page.wait_for_function("Drums.running", timeout=3000)
    page.wait_for_timeout(600)


@pytest.mark.slow
def test_the_browser_plays_what_the_jacks_play(page, served):
    """Web Audio on the sim board: one voice per output and step, the louder where voices share
    a jack (crash and ride on jack 8, as the player writes it), every voice as itself."""
    url = served[0]
    board = json.loads(urllib.request.urlopen(url + "api/board", timeout=2).read())
    outputs = board["voice_outputs"]
    assert outputs == [1, 2, 3, 4, 5, 6, 7, 8, 8]  # the default map, 8 outputs
    dense = {"density": 1.0, "uncertainty": 1.0}
    before = {k: api_state(url)["controls"][k] for k in dense}
    post = urllib.request.Request(url + "api/controls", data=json.dumps(dense).encode(),
                                  headers={"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(post, timeout=5).read()
    try:
        page.get_by_role("button", name="Play sound in this browser").click()
        page.wait_for_function("Drums.running", timeout=3000)
        page.evaluate("""() => {
            window.played = [];
            const play = Drums.play;
            Drums.play = (v, t, vel) => {
              const step = ((nextStep % 32) + 32) % 32;
              window.played.push({v, step, at: nextStep,
                                  hits: state.pattern.hits.map((r) => r[step]),
                                  vel: state.pattern.velocities.map((r) => r[step])});
              play(v, t, vel);
            };
        }""")
        page.wait_for_timeout(3000)
        played = page.evaluate("window.played")
    finally:
        back = urllib.request.Request(url + "api/controls", data=json.dumps(before).encode(),
                                      headers={"content-type": "application/json"},
                                      method="POST")
        urllib.request.urlopen(back, timeout=5).read()
    assert len(played) > 20
    steps: dict[int, list[dict]] = {}
    for call in played:
        steps.setdefault(call["at"], []).append(call)
    for calls in steps.values():
        voices = [c["v"] for c in calls]
        assert len({outputs[v] for v in voices}) == len(voices), calls  # one per output
        hits, vel = calls[0]["hits"], calls[0]["vel"]
        for v in voices:
            rivals = [w for w in range(9) if hits[w] and outputs[w] == outputs[v]]
            assert vel[v] == max(vel[w] for w in rivals), calls  # the louder, as the player
    assert {c["v"] for c in played} >= {0, 1, 2}  # kick, snare, closed hat at least


def test_a_preset_saved_and_recalled(page, served):
    url = served[0]
    follow = page.get_by_role("slider", name="FOLLOW")
    follow.focus()
    page.keyboard.press("End")
    assert until(lambda: api_state(url)["controls"]["follow"] == 1.0)
    page.get_by_label("Preset slot", exact=True).fill("7")
    page.get_by_label("Preset name", exact=True).fill("verse")
    page.get_by_role("button", name="Save preset").click()
    page.get_by_role("listitem").filter(has_text="7 verse").wait_for(timeout=3000)
    follow.focus()
    page.keyboard.press("Home")
    assert until(lambda: api_state(url)["controls"]["follow"] == 0.0)
    page.get_by_role("button", name="Recall preset").click()
    assert until(lambda: api_state(url)["controls"]["follow"] == 1.0)
    assert until(lambda: follow.input_value() == "1")


def test_a_broken_preset_is_refused_naming_the_field(page, served):
    state_dir: Path = served[2]
    # names only: a preset saved by the test before may still be mid-write (.NAME.tmp)
    before = preset_names(state_dir)
    broken = {"format": "grooverack-preset-export", "version": 1, "name": "bad",
              "latent_a": [0.0] * 5, "latent_b": [0.0] * 128, "panel": {}}
    page.get_by_label("Import preset").set_input_files(
        {"name": "bad.json", "mimeType": "application/json",
         "buffer": json.dumps(broken).encode()})
    alert = page.get_by_role("alert")
    alert.filter(has_text="refused").wait_for(timeout=3000)
    assert "latent_a" in alert.inner_text() and "128" in alert.inner_text()
    # the browser logs the refusal's 422 itself; nothing else may be in the console
    expected = [e for e in page.console_errors if "status of 422" in e]
    assert len(expected) == 1
    page.console_errors.remove(expected[0])
    assert preset_names(state_dir) == before


def test_your_own_loop_becomes_latent_b(page, served, tmp_path):
    from tests.web.test_web_api import drum_midi

    url = served[0]
    page.get_by_role("radio", name="latent B", exact=True).check()
    loop = drum_midi(tmp_path / "beat.mid")
    page.get_by_label("Loop MIDI file").set_input_files(str(loop))
    status = page.get_by_role("status").filter(has_text="beat.mid")
    status.wait_for(timeout=5000)
    assert "latent B" in status.inner_text()
    slot = api_state(url)["preset"]["slot"]
    assert any(p["slot"] == slot for p in api_state(url)["preset"]["saved"])
