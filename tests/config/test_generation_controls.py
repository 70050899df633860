"""GenerationControls (`grooverack.controls`): what generation reads, one frozen value checked
against the config schema when it is made; a control that moves makes a new one."""

from __future__ import annotations

import dataclasses

import pytest
from grooverack.config import SCHEMA, Settings
from grooverack.controls import GENERATION_KEYS, GenerationControls
from grooverack.errors import ConfigError
from grooverack.voices import VOICE_GROUPS, VOICE_NAMES


def test_defaults_are_the_schemas():
    c = GenerationControls()
    assert c == GenerationControls.from_settings(Settings())
    for key in GENERATION_KEYS:
        assert c.value(key) == SCHEMA[key].default, key
    assert c.voice_density == (0.5,) * len(VOICE_NAMES) and c.mutes == (False,) * len(VOICE_NAMES)


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("follow", 1.5, "a number from 0 to 1"),
    ("morph", -0.25, "a number from 0 to 1"),
    ("uncertainty", float("nan"), "a number from 0 to 1"),
    ("density.kick", 2.0, "a number from 0 to 1"),
    ("generation.max_count", 33, "an integer from 0 to 32"),
    ("generation.mode", "dice", "one of 'model', 'rules'"),
    ("generation.kit_cap", 9.0, "a number from 0 to 4"),
    ("generation.kit_floor", 1.5, "a number from 0 to 1"),
    ("generation.kit_floor_fills", -0.1, "a number from 0 to 1"),
    ("generation.kit_cap_ab", 2.0, "a number from 0 to 1"),
    ("generation.kit_random_round", "often", "true or false"),
    ("mute.ride", "maybe", "true or false"),
])
def test_a_value_out_of_range_names_the_control_the_value_and_the_range(key, value, allowed):
    c = GenerationControls()
    with pytest.raises(ConfigError) as caught:
        c.with_value(key, value)
    message = str(caught.value)
    assert repr(key) in message and repr(value) in message and allowed in message, message


def test_made_directly_it_is_checked_too():
    with pytest.raises(ConfigError, match=r"'follow': value 1.01 is not allowed; allowed: a "
                                          r"number from 0 to 1"):
        GenerationControls(follow=1.01)
    with pytest.raises(ConfigError, match=r"'voice_density': .* 9 values, one per voice"):
        GenerationControls(voice_density=(0.5,) * 8)
    with pytest.raises(ConfigError, match=r"'density.snare': value -1(\.0)? is not allowed"):
        GenerationControls(voice_density=(0.5, -1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5))


def test_values_are_the_schemas_types():
    """An integer knob value, or the strings a CSV or --set gives, come out as the schema's type."""
    c = GenerationControls().with_value("follow", 1).with_value("generation.anchor", "off")
    assert c.follow == 1.0 and isinstance(c.follow, float) and c.anchor is False
    assert GenerationControls().with_value("generation.seed", 7.0).seed == 7


def test_a_key_generation_does_not_read_is_refused():
    with pytest.raises(ConfigError, match=r"control 'tempo' is not read by generation"):
        GenerationControls().with_value("tempo", 120.0)
    with pytest.raises(ConfigError, match=r"control 'density.cowbell'"):
        GenerationControls().value("density.cowbell")


def test_with_value_replaces_one_control_and_keeps_the_others():
    base = GenerationControls(follow=0.7, morph=0.2, uncertainty=0.1, genre="rock", seed=4)
    moved = base.with_value("follow", 0.3)
    assert moved.follow == 0.3 and base.follow == 0.7          # the old value is untouched
    assert {k: moved.value(k) for k in GENERATION_KEYS if k != "follow"} == \
        {k: base.value(k) for k in GENERATION_KEYS if k != "follow"}
    kick = moved.with_value("density.kick", 0.9).with_value("mute.ride", True)
    assert kick.voice_density == (0.9,) + (0.5,) * 8
    assert kick.mutes == (False,) * 8 + (True,)
    assert kick.with_value("density.all", 0.25).density == 0.25  # TOML's spelling of `density`
    with pytest.raises(dataclasses.FrozenInstanceError):
        kick.follow = 0.5  # type: ignore[misc]


def test_as_settings_reads_back():
    c = GenerationControls(follow=0.4, voice_density=(0.1,) * 9, mutes=(True,) * 9, mode="rules")
    assert GenerationControls.from_settings(c.as_settings()) == c
    assert set(c.as_settings()) == set(GENERATION_KEYS)


def test_effective_density_and_removed_groups():
    c = GenerationControls(density=0.8, voice_density=(0.5, 1.0, 0.0, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5))
    assert c.effective_density() == (0.8, 1.0, 0.0, 0.4, 0.8, 0.8, 0.8, 0.8, 0.8)
    hats = GenerationControls(mutes=tuple(v in VOICE_GROUPS["hats"] for v in VOICE_NAMES))
    assert hats.removed_groups() == tuple(g == "hats" for g in VOICE_GROUPS)
    assert not any(dataclasses.replace(hats, on_mute="silence").removed_groups())
    half = hats.with_value("mute.open_hat", False)   # a group muted in part is not removed
    assert not any(half.removed_groups())


def test_every_generation_key_is_a_typed_control():
    """A new `generation.*` key (or a per-voice one) that generation reads must be a field here:
    the generator has no other way to it. `generation.reencode` is the engine's (when to encode),
    not the generator's."""
    engine_only = {"generation.reencode"}
    wanted = {k for k in SCHEMA if k.startswith(("generation.", "density.", "mute."))}
    assert wanted - engine_only <= set(GENERATION_KEYS)
    assert {"follow", "morph", "uncertainty", "density", "genre"} <= set(GENERATION_KEYS)
