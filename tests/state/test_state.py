"""Presets and the performance state: round trips, validation, corrupt files, the state dir."""

from __future__ import annotations

import json
import logging

import pytest
from grooverack.config import Settings
from grooverack.errors import StateError
from grooverack.state import (
    PRESET_COUNT,
    PerformanceState,
    Preset,
    StateStore,
    panel_from_settings,
    state_dir,
)


def make_preset(seed: float = 0.1) -> Preset:
    return Preset([seed * i for i in range(128)], [-seed * i for i in range(128)],
                  {"follow": 0.25, "morph": 0.75, "density.kick": 0.9, "tempo": 96.0})


def test_preset_round_trip_by_number(tmp_path):
    store = StateStore(tmp_path)
    assert store.load_preset(7) is None and store.presets() == []
    store.save_preset(7, make_preset())
    store.save_preset(12, make_preset(0.2))
    assert store.load_preset(7) == make_preset()
    assert store.load_preset(12) == make_preset(0.2)
    assert store.presets() == [7, 12]
    assert (tmp_path / "presets" / "07.json").exists()


@pytest.mark.parametrize("number", [0, PRESET_COUNT + 1, -1, True, "3"])
def test_preset_numbers_checked(tmp_path, number):
    with pytest.raises(StateError, match="preset number"):
        StateStore(tmp_path).save_preset(number, make_preset())


@pytest.mark.parametrize("preset, message", [
    (Preset([1.0, float("nan")], [], {}), r"latent_a\[1\] = nan"),
    (Preset([1.0], [1.0, 2.0], {}), "latent_a has 1 values, latent_b 2"),
    (Preset([], [], {"follow": 2.0}), "'follow'.*2.0.*from 0 to 1"),
    (Preset([], [], {"no_such": 1}), "panel.no_such: not a config key"),
])
def test_invalid_preset_is_refused_and_the_good_file_kept(tmp_path, preset, message):
    store = StateStore(tmp_path)
    path = store.save_preset(3, make_preset())
    before = path.read_bytes()
    with pytest.raises(StateError, match=message):
        store.save_preset(3, preset)
    assert path.read_bytes() == before


def test_corrupt_preset_reported_by_name_previous_copy_used(tmp_path, caplog):
    store = StateStore(tmp_path)
    store.save_preset(5, make_preset(0.1))
    path = store.save_preset(5, make_preset(0.3))
    path.write_bytes(b"\x00" * 50)  # what a power cut on a non-journaled write can leave
    with caplog.at_level(logging.WARNING):
        assert store.load_preset(5) == make_preset(0.1)
    assert "05.json" in caplog.text
    path.with_name("05.json.bak").write_text("{}")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert store.load_preset(5) is None  # neither usable: nothing recalled, both named
    assert "05.json:" in caplog.text and "05.json.bak" in caplog.text


def test_hand_edited_preset_with_a_bad_value_is_refused(tmp_path, caplog):
    store = StateStore(tmp_path)
    path = store.save_preset(9, make_preset())
    record = json.loads(path.read_text())
    record["payload"]["panel"]["density.kick"] = 5
    path.write_text(json.dumps(record))
    with caplog.at_level(logging.ERROR):
        assert store.load_preset(9) is None
    assert "density.kick" in caplog.text and "09.json" in caplog.text


def test_performance_state_round_trip_and_defaults(tmp_path, caplog):
    store = StateStore(tmp_path)
    assert store.load_performance() == PerformanceState()
    groove = [[float(i % 2), 0.5, 0.1] for i in range(32)]
    state = PerformanceState([0.5] * 16, [0.25] * 16, {"uncertainty": 0.4}, groove, 3)
    store.save_performance(state)
    assert store.load_performance() == state
    store.performance_path.write_text('{"tag": "grooverack-performance", "version": 99}')
    with caplog.at_level(logging.ERROR):
        back = store.load_performance()   # the previous good copy does not exist: the first
    assert "performance.json" in caplog.text and "version 99" in caplog.text
    assert back == PerformanceState()


def test_performance_state_checks_groove_and_preset(tmp_path):
    store = StateStore(tmp_path)
    with pytest.raises(StateError, match=r"groove\[0\]"):
        store.save_performance(PerformanceState(groove=[[2.0, 0.5, 0.0]] * 32))
    with pytest.raises(StateError, match="expected 32 rows"):
        store.save_performance(PerformanceState(groove=[[1.0, 0.5, 0.0]] * 31))
    with pytest.raises(StateError, match="preset = 65"):
        store.save_performance(PerformanceState(preset=65))


def test_panel_from_settings_holds_the_controls():
    settings = Settings({"follow": 0.3, "density.snare": 0.8})
    panel = panel_from_settings(settings)
    assert panel["follow"] == 0.3 and panel["density.snare"] == 0.8
    assert "board" not in panel
    assert Preset([], [], panel).from_payload(Preset([], [], panel).to_payload()).panel == panel


def test_state_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("GROOVERACK_STATE_DIR", str(tmp_path / "env"))
    assert state_dir(Settings({"state.dir": str(tmp_path / "cfg")})) == tmp_path / "cfg"
    assert state_dir(Settings()) == tmp_path / "env"
    monkeypatch.delenv("GROOVERACK_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir(None) == tmp_path / "xdg" / "grooverack"


def test_engine_presets_and_performance_through_files(tmp_path):
    from grooverack.engine.engine import Engine
    from grooverack.model.runner import ModelRunner
    from grooverack.state import (
        performance_from_engine,
        preset_from_engine,
        preset_to_engine,
        restore_performance,
    )

    runner = ModelRunner()
    store = StateStore(tmp_path)
    with Engine(Settings({"follow": 0.2, "morph": 0.6}), runner) as eng:
        eng.press("randomize_a")
        data = eng.save_preset(4)
        store.save_preset(4, preset_from_engine(data))
        saved = performance_from_engine(eng)
        store.save_performance(saved)
    with Engine(Settings(), runner) as fresh:   # after a power cut
        before = list(map(float, fresh.generator.z_a))
        fresh.recall_preset(4, preset_to_engine(4, store.load_preset(4)))
        assert [float(x) for x in fresh.generator.z_a] == pytest.approx(data["a"])
        assert [float(x) for x in fresh.generator.z_a] != pytest.approx(before)
        assert fresh.settings["morph"] == 0.6
    with Engine(Settings(), runner) as fresh:
        assert restore_performance(fresh, store.load_performance())
        assert [float(x) for x in fresh.generator.z_b] == pytest.approx(saved.latent_b)
        assert fresh.settings["follow"] == 0.2
        assert not restore_performance(fresh, PerformanceState())


def test_state_keeper_persists_presets_and_restores_after_a_power_cut(tmp_path):
    from grooverack.engine.engine import Engine
    from grooverack.model.runner import ModelRunner
    from grooverack.state import StateKeeper

    runner = ModelRunner()
    settings = Settings({"state.dir": str(tmp_path), "morph": 0.3})
    with Engine(settings, runner) as eng:
        keeper = StateKeeper(settings, eng)
        assert keeper.restore() is False            # nothing saved yet
        eng.press("randomize_b")
        saved = eng.save_preset(3)
        assert keeper.sync() == 1 and keeper.sync() == 0   # only what changed is written
        eng.set_control("morph", 0.8)
        keeper.save_all()
        playing_b = [float(x) for x in eng.generator.z_b]
    assert (tmp_path / "presets" / "03.json").exists() and (tmp_path / "performance.json").exists()
    with Engine(Settings({"state.dir": str(tmp_path)}), runner) as fresh:   # power back on
        keeper = StateKeeper(fresh.settings, fresh)
        assert keeper.restore() is True
        assert [float(x) for x in fresh.generator.z_b] == pytest.approx(playing_b)
        assert fresh.settings["morph"] == 0.8
        assert 3 in fresh.presets and keeper.sync() == 0    # restored slots are not rewritten
        fresh.set_control("morph", 0.0)
        fresh.recall_preset(3)
        assert [float(x) for x in fresh.generator.z_a] == pytest.approx(saved["a"])
        assert fresh.settings["morph"] == 0.3


def test_state_keeper_background_sync_writes_presets_off_the_loop(tmp_path):
    import time

    from grooverack.engine.engine import Engine
    from grooverack.model.runner import ModelRunner
    from grooverack.state import StateKeeper

    settings = Settings({"state.dir": str(tmp_path)})
    with Engine(settings, ModelRunner()) as eng:
        keeper = StateKeeper(settings, eng)
        keeper.start_background(period=0.01)
        eng.save_preset(5)
        deadline = time.monotonic() + 30
        while not (tmp_path / "presets" / "05.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "presets" / "05.json").exists()
        keeper.save_all()          # stops the thread, then writes everything
        assert not keeper._thread.is_alive()
    assert StateStore(tmp_path).load_preset(5) is not None
