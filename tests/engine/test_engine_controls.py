"""The engine's typed controls (`Engine.controls`, a `controls.GenerationControls`): what its
generator reads, replaced whole when a control moves, checked once, in step with `settings`.
On the fake ONNX model (real ModelRunner, real onnxruntime)."""

from __future__ import annotations

import pytest
from grooverack.config import Settings
from grooverack.controls import GenerationControls
from grooverack.engine.engine import Engine
from grooverack.engine.generator import Request
from grooverack.errors import ConfigError

STEP_S = 0.125   # 120 BPM


def engine(runner, **values) -> tuple[Engine, list[Request]]:
    """An engine whose generator's requests are kept (then served as ever)."""
    eng = Engine(Settings({"clock.source": "internal", "tempo": 120.0, **values}), runner)
    seen: list[Request] = []
    serve = eng.generator.request

    def request(req: Request) -> None:
        seen.append(req)
        serve(req)

    eng.generator.request = request  # type: ignore[method-assign]
    return eng, seen


def test_the_generator_reads_the_engines_typed_controls(fake_runner):
    eng, seen = engine(fake_runner, follow=0.8, **{"density.kick": 0.7})
    assert eng.controls == GenerationControls.from_settings(eng.settings)
    assert eng.controls.follow == 0.8 and eng.controls.voice_density[0] == 0.7
    eng.start(0.0)
    eng.advance(STEP_S)
    before = eng.controls
    assert eng.set_control("follow", 0.3) == 0.3
    assert eng.controls is not before and before.follow == 0.8      # a new value, the old kept
    assert eng.controls == before.with_value("follow", 0.3)
    eng.advance(3 * STEP_S)                                          # the next step commit
    assert seen and seen[-1].controls is eng.controls                # handed over whole
    assert eng.pattern.info["follow"] == 0.3
    # a key generation does not read leaves the controls as they are
    eng.set_control("tempo", 100.0)
    assert eng.controls is seen[-1].controls


def test_a_bad_value_names_the_control_and_changes_nothing(fake_runner):
    eng, seen = engine(fake_runner)
    eng.start(0.0)
    eng.advance(STEP_S)
    controls, requests = eng.controls, len(seen)
    with pytest.raises(ConfigError, match=r"'density.snare': value 1.5 is not allowed; "
                                          r"allowed: a number from 0 to 1"):
        eng.set_control("density.snare", 1.5)
    with pytest.raises(ConfigError, match=r"'genre': value 'polka' is not allowed"):
        eng.set_control("genre", "polka")
    assert eng.controls is controls and eng.settings["density.snare"] == 0.5
    assert eng.settings["genre"] == "any"
    eng.advance(4 * STEP_S)
    assert len(seen) == requests   # nothing changed: no new pattern asked for


def test_controls_and_settings_stay_in_step(fake_runner):
    """Every way a control moves (set_control, the TOML spelling, buttons, presets) replaces the
    typed value and records the key in `settings` alike."""
    eng, _seen = engine(fake_runner)
    eng.start(0.0)

    def in_step() -> None:
        assert eng.controls == GenerationControls.from_settings(eng.settings)

    eng.set_control("morph", 0.6)
    in_step()
    eng.set_control("density.all", 0.3)
    assert eng.controls.density == 0.3
    in_step()
    assert eng.press("mute_hats") is True and eng.controls.mutes[2:4] == (True, True)
    in_step()
    saved = eng.save_preset(2)
    eng.set_control("morph", 0.1)
    eng.set_control("mute.open_hat", False)
    eng.set_control("generation.max_count", 4)
    in_step()
    eng.recall_preset(2, saved)
    assert eng.controls.morph == 0.6 and eng.controls.mutes[3] is True
    in_step()
