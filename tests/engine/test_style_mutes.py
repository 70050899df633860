"""Style and voice groups from the panel (issue 19, item 5), on the real shipped model: the style
button cycles the offered styles (never "gospel"), a mute button silences exactly its voice
group, the shift layer reaches per-voice density and velocity scale, and mutes and style persist
in the performance state."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.backends.panel.simboard import SimPanelBoard
from grooverack.boards.board import load_board
from grooverack.config import BUTTONS, Settings
from grooverack.engine.engine import Engine
from grooverack.errors import BoardError, ConfigError
from grooverack.model.runner import ModelRunner
from grooverack.sim.patch import OutputRecorder
from grooverack.sim.sources import load_controls
from grooverack.state import StateStore, performance_from_engine, restore_performance
from grooverack.voices import VOICE_GROUPS, VOICE_NAMES

STEP_S = 0.125  # 120 BPM


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return ModelRunner()  # the shipped model


def engine(runner, **values) -> Engine:
    base = {"clock.source": "internal", "tempo": 120.0, "uncertainty": 0.0, "density": 0.7}
    return Engine(Settings({**base, **values}), runner)


def play(eng: Engine, steps: int, start: int = 0, onsets=(0, 3, 6, 8, 12, 16, 19, 22, 24, 28)):
    """Run the engine over `steps` steps from step `start`, the input playing `onsets`."""
    t = start * STEP_S
    for s in range(start, start + steps):
        if s % 32 in onsets:
            eng.onset(s * STEP_S + 0.001, velocity=0.9)
        t = (s + 1) * STEP_S
        eng.advance(t)


def test_style_button_cycles_the_offered_styles_skipping_gospel_and_wraps(runner):
    eng = engine(runner)
    offered = eng.offered_styles
    assert offered[0] == "any" and "gospel" in runner.genres and "gospel" not in offered
    assert len(offered) > 2
    seen = [eng.press("next_style") for _ in range(len(offered))]
    assert seen == [*offered[1:], "any"]           # every offered style once, then wraps
    assert eng.settings["genre"] == "any"
    assert eng.press("previous_style") == offered[-1]  # and backwards
    assert eng.press("next_style") == "any"


def test_the_style_button_changes_the_genre_the_model_decodes_with(runner):
    eng = engine(runner)
    eng.start(0.0)
    play(eng, 4)
    style = eng.press("next_style")
    play(eng, 2, start=4)
    assert eng.pattern.info["genre"] == runner.genres.index(style)


def test_gospel_is_refused_naming_key_value_and_what_is_allowed(runner):
    eng = engine(runner)
    with pytest.raises(ConfigError) as err:
        eng.set_control("genre", "gospel")
    text = str(err.value)
    assert "'genre'" in text and "'gospel'" in text and "rock" in text
    assert "gospel" not in text.split("allowed:")[1]
    with pytest.raises(ConfigError):
        engine(runner, genre="gospel")


def test_muting_a_group_silences_exactly_its_voices_and_unmuting_restores(runner):
    # generation.on_mute = silence: the model is not told (revoice: tests/training/test_revoice.py)
    eng = engine(runner, density=0.9, follow=0.0, **{"generation.on_mute": "silence"})
    eng.start(0.0)
    play(eng, 2)
    before = eng.pattern
    assert before.hit_count().sum() > 0
    step = 2
    for group, voices in VOICE_GROUPS.items():
        index = [VOICE_NAMES.index(v) for v in voices]
        others = [i for i in range(len(VOICE_NAMES)) if i not in index]
        assert eng.press(f"mute_{group}") is True
        play(eng, 1, start=step)
        muted = eng.pattern
        assert not muted.hits[:, index].any(), group
        assert np.array_equal(muted.hits[:, others], before.hits[:, others]), group
        assert np.array_equal(muted.velocities[:, others], before.velocities[:, others])
        assert all(eng.settings[f"mute.{v}"] for v in voices)
        assert eng.press(f"mute_{group}") is False
        play(eng, 1, start=step + 1)
        step += 2
        assert eng.pattern.same_as(before), group
    # a group partly muted by config mutes whole on the first press
    eng.set_control("mute.crash", True)
    assert eng.press("mute_cymbals") is True and eng.settings["mute.ride"]


def test_mutes_and_style_persist_in_the_performance_state(runner, tmp_path):
    eng = engine(runner)
    eng.press("mute_toms")
    eng.press("mute_kick")
    style = eng.press("next_style")
    eng.set_control("density.snare", 0.8)       # the shift layer's per-voice settings too
    eng.set_control("outputs.scale.2", 0.6)
    store = StateStore(tmp_path)
    store.save_performance(performance_from_engine(eng))
    fresh = engine(runner)
    assert restore_performance(fresh, store.load_performance())
    assert fresh.settings["genre"] == style
    assert fresh.settings["density.snare"] == 0.8 and fresh.settings["outputs.scale.2"] == 0.6
    for v in VOICE_NAMES:
        assert fresh.settings[f"mute.{v}"] == (v in ("kick", "low_tom", "mid_tom", "high_tom"))


# --- the panel: buttons, board files, the shift layer ------------------------------------------


def panel(runner, board="sim", **values):
    settings = Settings({"clock.source": "internal", "tempo": 120.0, "uncertainty": 0.0,
                         **values})
    eng = Engine(settings, runner)
    sim = SimPanelBoard(load_board(board), settings, OutputRecorder(), eng)
    sim.start(0.0)
    return sim, eng


def at(sim, t, jack=None, value=None):
    sim.advance(t)
    if jack is not None:
        sim.apply(t, jack, value)


def test_every_new_button_is_a_press_name_and_on_the_reference_board():
    for name in ("next_style", "previous_style", "shift", *(f"mute_{g}" for g in VOICE_GROUPS)):
        assert name in BUTTONS
    board = load_board("reference")
    actions = {i.action for i in board.gpio_inputs.values() if i.role == "button"}
    actions |= set(board.shift_buttons.values())
    assert {"shift", "next_style", *(f"mute_{g}" for g in VOICE_GROUPS)} <= actions
    assert set(board.shift_pots.values()) >= {"group_select", "group_density", "group_velocity",
                                              "groove_velocity", "groove_offset"}


def test_board_shift_table_is_checked(tmp_path):
    text = load_board("reference").path.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('tempo = "group_select"', 'tempo = "group_selekt"'))
    with pytest.raises(BoardError, match="group_selekt.*allowed"):
        load_board(bad)
    bad.write_text(text.replace('record = "mute_kick"', 'knob = "mute_kick"'))
    with pytest.raises(BoardError, match="unknown key 'knob' in \\[shift.buttons\\]"):
        load_board(bad)


def test_panel_style_and_mute_buttons(runner):
    sim, eng = panel(runner)
    at(sim, 0.5, "press.next_style", 1.0)
    at(sim, 0.7)
    assert eng.settings["genre"] == eng.offered_styles[1]
    at(sim, 1.0, "press.mute_kick", 1.0)   # SHIFT + REC on the reference panel
    at(sim, 1.5)
    assert eng.settings["mute.kick"] and eng.settings["record"] == "overdub"
    at(sim, 2.0, "press.record", 1.0)       # REC alone still cycles the record mode
    at(sim, 2.5)
    assert eng.settings["record"] == "off" and eng.settings["mute.kick"]


def test_shift_layer_sets_a_groups_density_and_picks_up_on_release(runner):
    sim, eng = panel(runner, density=0.5)
    at(sim, 0.5)
    kicks_before = int(eng.pattern.hit_count()[0])
    at(sim, 1.0, "hold.shift", 1.0)
    at(sim, 1.1, "tempo", 0.0)        # SHIFT + TEMPO: the group (kick, at the left end)
    at(sim, 1.2, "density", 1.0)      # SHIFT + DENSITY: that group's density
    at(sim, 2.0, "hold.shift", 0.0)
    at(sim, 4.5)
    assert eng.settings["density.kick"] == pytest.approx(1.0)
    assert all(eng.settings[f"density.{v}"] == 0.5 for v in VOICE_NAMES if v != "kick")
    assert eng.settings["density"] == 0.5 and eng.settings["tempo"] == 120.0
    assert int(eng.pattern.hit_count()[0]) > kicks_before
    # released: DENSITY and TEMPO wait until their pots come back to where their controls are
    at(sim, 5.0, "density", 0.8)
    at(sim, 5.5)
    assert eng.settings["density"] == 0.5
    at(sim, 6.0, "density", 0.4)      # crosses 0.5: picked up, then follows
    at(sim, 6.5)
    assert eng.settings["density"] == pytest.approx(0.4, abs=0.01)
    assert eng.settings["density.kick"] == pytest.approx(1.0)


def test_shift_layer_group_velocity_and_groove_controls(runner):
    sim, eng = panel(runner)
    at(sim, 0.5, "hold.shift", 1.0)
    at(sim, 0.6, "tempo", 0.5)        # the middle of TEMPO's travel: hats
    at(sim, 0.7, "uncertainty", 0.3)  # SHIFT + UNCERTAINTY: the hats' velocity scale (1.0) ...
    at(sim, 1.2)
    assert eng.settings["outputs.scale.3"] == 1.0   # ... waits: the pot has not reached 1.0
    at(sim, 1.3, "uncertainty", 1.0)  # reached: picked up, then follows
    at(sim, 1.6, "uncertainty", 0.25)
    at(sim, 2.2, "follow", 0.4)       # SHIFT + FOLLOW: groove velocity (1.0): waits too
    at(sim, 2.8)
    assert eng.settings["groove_velocity"] == 1.0
    at(sim, 2.9, "follow", 1.0)
    at(sim, 3.2, "follow", 0.6)
    at(sim, 3.8, "hold.shift", 0.0)
    at(sim, 4.0)
    assert eng.settings["groove_velocity"] == pytest.approx(0.6, abs=0.01)
    hats = {eng.settings[f"map.{v}"] for v in VOICE_GROUPS["hats"]}
    for n in range(1, 9):
        want = 0.25 if n in hats else 1.0
        assert eng.settings[f"outputs.scale.{n}"] == pytest.approx(want, abs=0.01), n
    assert eng.settings["uncertainty"] == 0.0 and eng.settings["follow"] == 0.9


def test_controls_csv_holds_and_releases_buttons(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("1,hold,shift\n1.5,density,0.9\n2,release,shift\n3,press,mute_hats\n")
    changes = load_controls(path)
    assert [(c.key, c.value) for c in changes] == [
        ("hold.shift", 1.0), ("density", 0.9), ("hold.shift", 0.0), ("press.mute_hats", 1.0)]
    path.write_text("1,hold,shfit\n")
    with pytest.raises(Exception, match="shfit.*allowed"):
        load_controls(path)


# --- the budget board: SHIFT and STYLE on free pins, three buttons for five groups -----------


def muted_groups(eng):
    return {g for g, voices in VOICE_GROUPS.items() if all(eng.settings[f"mute.{v}"]
                                                           for v in voices)}


def test_budget_board_has_shift_and_style_on_free_pins_and_reaches_every_group():
    board = load_board("budget")
    buttons = {i.action: i.pin for i in board.gpio_inputs.values() if i.role == "button"}
    assert buttons == {"record": 5, "clear": 6, "shift": 14, "next_style": 15}
    pins = [i.pin for i in board.gpio_inputs.values()] + [o.pin for o in
                                                          board.gpio_outputs.values()]
    assert len(pins) == len(set(pins))  # (load_board refuses a pin used twice, too)
    assert board.shift_pots == {"follow": "group_select", "density": "group_density",
                                "morph": "group_velocity"}
    assert board.shift_buttons == {"record": "mute_kick", "clear": "mute_snare",
                                   "style": "mute_group"}


def test_budget_panel_style_and_mute_buttons(runner):
    sim, eng = panel(runner, "budget")
    at(sim, 0.5, "press.next_style", 1.0)
    at(sim, 0.7)
    assert eng.settings["genre"] == eng.offered_styles[1]
    at(sim, 1.0, "press.mute_snare", 1.0)   # SHIFT + CLEAR: the groove is not cleared
    at(sim, 1.5)
    assert muted_groups(eng) == {"snare"} and eng.settings["genre"] == eng.offered_styles[1]
    at(sim, 2.0, "press.record", 1.0)        # REC alone still cycles the record mode
    at(sim, 2.5)
    assert eng.settings["record"] == "off" and muted_groups(eng) == {"snare"}


@pytest.mark.parametrize("group", list(VOICE_GROUPS))
def test_budget_mutes_each_group_through_a_press_row_and_follow_stays(runner, group):
    """`press,mute_<group>` on the budget board: kick and snare have a shifted button; the
    others are SHIFT + FOLLOW turned to the group + STYLE, FOLLOW turned back (its control picks
    up where it was: nothing else moves)."""
    sim, eng = panel(runner, "budget", follow=0.3, density=0.6, morph=0.2)
    at(sim, 0.5, f"press.mute_{group}", 1.0)
    at(sim, 1.5)
    assert muted_groups(eng) == {group}
    assert (eng.settings["follow"], eng.settings["density"], eng.settings["morph"]) == (0.3, 0.6,
                                                                                       0.2)
    assert eng.settings["genre"] == "any"  # STYLE was shifted: no style step
    assert all(eng.settings[f"density.{v}"] == 0.5 for v in VOICE_NAMES)
    at(sim, 2.0, f"press.mute_{group}", 1.0)  # and again: unmuted
    at(sim, 3.0)
    assert muted_groups(eng) == set()
    at(sim, 3.5, "follow", 0.7)               # FOLLOW still works as follow
    at(sim, 4.0)
    assert eng.settings["follow"] == pytest.approx(0.7, abs=0.01)


def test_budget_shift_style_mutes_the_group_follow_points_at(runner):
    """What a player does: hold SHIFT, turn FOLLOW to a group, press STYLE."""
    sim, eng = panel(runner, "budget", follow=0.5)
    at(sim, 0.5, "hold.shift", 1.0)
    at(sim, 0.6, "follow", 0.7)               # 0.6..0.8 of its travel: toms
    at(sim, 1.0, "press.next_style", 1.0)     # STYLE, shifted: mute the toms
    at(sim, 1.4, "follow", 0.95)              # cymbals
    at(sim, 1.8, "press.next_style", 1.0)
    at(sim, 2.2, "hold.shift", 0.0)
    at(sim, 2.5)
    assert muted_groups(eng) == {"toms", "cymbals"}
    assert eng.settings["genre"] == "any" and eng.settings["follow"] == 0.5  # waits for pickup


def test_budget_shift_layer_sets_a_groups_density_and_velocity_and_picks_up(runner):
    sim, eng = panel(runner, "budget", density=0.5, morph=0.5)
    at(sim, 0.5, "hold.shift", 1.0)
    at(sim, 0.6, "follow", 0.3)       # SHIFT + FOLLOW: the group (snare: 0.2..0.4)
    at(sim, 0.7, "density", 1.0)      # SHIFT + DENSITY: that group's density (from 0.5: picked up)
    at(sim, 1.2, "morph", 1.0)        # SHIFT + MORPH: its velocity scale, at 1.0: picked up ...
    at(sim, 1.5, "morph", 0.4)        # ... then follows
    at(sim, 2.0, "hold.shift", 0.0)
    at(sim, 2.5)
    assert eng.settings["density.snare"] == pytest.approx(1.0)
    assert all(eng.settings[f"density.{v}"] == 0.5 for v in VOICE_NAMES if v != "snare")
    snare_out = eng.settings["map.snare"]
    for n in range(1, 9):
        want = 0.4 if n == snare_out else 1.0
        assert eng.settings[f"outputs.scale.{n}"] == pytest.approx(want, abs=0.01), n
    assert (eng.settings["density"], eng.settings["morph"], eng.settings["follow"]) == (0.5, 0.5,
                                                                                       0.9)
    # released: DENSITY waits until its pot comes back to where density is, then follows
    at(sim, 3.0, "density", 0.8)
    at(sim, 3.5)
    assert eng.settings["density"] == 0.5
    at(sim, 4.0, "density", 0.45)
    at(sim, 4.5)
    assert eng.settings["density"] == pytest.approx(0.45, abs=0.01)


def test_budget_names_the_buttons_it_has(runner):
    sim, _ = panel(runner, "budget")
    with pytest.raises(ValueError, match=r"no 'randomize_a' button; buttons: record, clear, "
                                         r"shift, next_style, mute_kick, mute_snare, mute_group, "
                                         r"mute_hats, mute_toms, mute_cymbals"):
        at(sim, 0.5, "press.randomize_a", 1.0)


def test_mute_group_needs_a_group_select_pot(tmp_path):
    text = load_board("budget").path.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('follow = "group_select"\n', ""))
    with pytest.raises(BoardError, match=r"'shift.buttons.style' = 'mute_group' mutes the group "
                                         r"a \[shift.pots\] pot with 'group_select' points at"):
        load_board(bad)
    bad.write_text(text.replace('style = "mute_group"', 'style = "mute_groop"'))
    with pytest.raises(BoardError, match=r"shift.buttons.style' = 'mute_groop'; allowed: .*"
                                         r"'mute_group'"):
        load_board(bad)
