"""Issue 19 item 4: the module plays rule patterns when the model is missing, damaged or fails to
load (one warning naming the file and the reason; `doctor` says so; the record LED blinks), takes
the model over once its files are back, and plays rules when `generation.mode = rules` is chosen.

The real shipped model and onnxruntime throughout: a copy of `models/` in a temporary folder,
named by GROOVERACK_MODELS, is damaged or emptied and mended while the engine plays.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time

import numpy as np
import pytest
from grooverack.backends.panel.simboard import SimPanelBoard
from grooverack.boards.board import load_board
from grooverack.cli import main
from grooverack.config import Settings
from grooverack.errors import ConfigError, ModelError
from grooverack.model.runner import ModelRunner, default_manifest_path
from grooverack.runtime.serve import make_engine
from grooverack.sim.patch import OutputRecorder

STEP_S = 60.0 / 120.0 / 4
LOOP_S = 32 * STEP_S
DECODER = "grooverack-decoder.int8.onnx"
ENCODER = "grooverack-encoder.int8.onnx"


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A copy of the shipped models/ folder, the one the module opens (GROOVERACK_MODELS)."""
    folder = tmp_path / "models"
    shutil.copytree(default_manifest_path().parent, folder)
    monkeypatch.setenv("GROOVERACK_MODELS", str(folder))
    return folder


def rises(events):
    return [e for e in events if e.kind == "trigger" and e.value > 0]


def play(engine, until_s, t0=0.0, step=STEP_S):
    events, t = [], t0
    while t < until_s - 1e-9:
        t = min(t + step, until_s)
        events += engine.advance(t)
    return events


def test_missing_decoder_plays_rules_with_one_warning(models, caplog):
    (models / DECODER).unlink()
    with caplog.at_level(logging.WARNING):
        engine = make_engine(Settings({"tempo": 120.0}), threaded=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(models / DECODER) in warnings[0] and "not found" in warnings[0]
    assert "rule patterns" in warnings[0]
    assert engine.generation == "fallback" and DECODER in engine.model_problem
    engine.start(0.0)
    hits = rises(play(engine, 2 * LOOP_S))
    assert len(hits) > 40  # kick, snare and hats at least, every bar
    assert engine.pattern.info["mode"] == "rules"
    assert {e.voice for e in hits} >= {0, 1, 2}


def test_damaged_encoder_names_the_file_and_the_hash(models):
    data = bytearray((models / ENCODER).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (models / ENCODER).write_bytes(bytes(data))
    engine = make_engine(Settings(), threaded=False)
    assert engine.generation == "fallback"
    assert str(models / ENCODER) in engine.model_problem and "sha256" in engine.model_problem


def test_a_model_that_fails_to_load_plays_rules(models):
    (models / DECODER).write_bytes(b"not an onnx graph")
    manifest = (models / "grooverack.json")
    import json
    data = json.loads(manifest.read_text())
    data["sha256"][DECODER] = __import__("hashlib").sha256(b"not an onnx graph").hexdigest()
    manifest.write_text(json.dumps(data))
    engine = make_engine(Settings(), threaded=False)
    assert engine.generation == "fallback"
    assert "not a loadable ONNX model" in engine.model_problem


def test_sim_renders_rules_without_the_model(models, tmp_path, caplog, capsys):
    (models / "grooverack.json").unlink()
    out = tmp_path / "render"
    with caplog.at_level(logging.WARNING):
        assert main(["sim", "--bars", "4", "--seed", "0", "--out", str(out)]) == 0
    summary = capsys.readouterr().out  # the summary says who played
    assert "played by: rule patterns, no model:" in summary and "grooverack.json" in summary
    with open(out / "outputs.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "trigger" and float(r["volts"]) > 1]
    assert len(rows) > 60
    assert "model manifest not found" in caplog.text


def test_commands_that_need_the_model_still_refuse(models):
    (models / DECODER).unlink()
    with pytest.raises(ModelError, match=DECODER):  # what `grooverack eval` / export open
        ModelRunner(models / "grooverack.json")


def test_doctor_says_the_fallback_plays(models, capsys):
    (models / DECODER).unlink()
    assert main(["doctor", "--board", "sim", "--scans", "0"]) == 0  # it still plays
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "model:" in x)
    assert line.strip().startswith("warn") and DECODER in line and "rule patterns" in line
    assert "verdict: ready to play" in out


def test_doctor_model_lines(models, capsys):
    assert main(["doctor", "--board", "sim", "--scans", "0"]) == 0
    assert "ok    model:" in capsys.readouterr().out
    assert main(["doctor", "--board", "sim", "--scans", "0",
                 "--set", "generation.mode=rules"]) == 0
    assert "generation.mode = rules: rule patterns play" in capsys.readouterr().out


def test_switches_to_the_model_once_it_is_back(models, tmp_path):
    aside = tmp_path / "aside.onnx"
    shutil.move(models / DECODER, aside)
    settings = Settings({"tempo": 120.0})
    engine = make_engine(settings, threaded=False)
    engine.generator.watch.period = 0.0  # look at every loop boundary (default: every 2 s)
    engine.start(0.0)
    play(engine, LOOP_S + STEP_S)
    assert engine.generation == "fallback" and engine.pattern.info["mode"] == "rules"
    shutil.move(aside, models / DECODER)
    play(engine, 2 * LOOP_S + STEP_S, t0=LOOP_S + STEP_S)
    assert engine.generation == "model" and engine.model_problem == ""
    assert engine.pattern.info["mode"] == "model"
    # the same latents A/B as a module that started with the model: the same loop plays
    with_model = make_engine(settings, threaded=False)
    assert np.array_equal(engine.generator.z_a, with_model.generator.z_a)
    with_model.start(0.0)
    play(with_model, 2 * LOOP_S + STEP_S)
    assert engine.pattern.same_as(with_model.pattern)


def test_threaded_worker_finds_the_model_off_the_real_time_path(models, tmp_path):
    aside = tmp_path / "aside.onnx"
    shutil.move(models / DECODER, aside)
    engine = make_engine(Settings({"tempo": 120.0}), threaded=True)
    try:
        engine.generator.watch.period = 0.05
        engine.start(0.0)
        t = 0.0
        for _ in range(8):
            t += STEP_S
            engine.advance(t)
        assert engine.generation == "fallback"
        shutil.move(aside, models / DECODER)
        deadline = time.monotonic() + 20.0
        while engine.pattern.info.get("mode") != "model" and time.monotonic() < deadline:
            t += STEP_S
            engine.advance(t)
            time.sleep(0.02)
        assert engine.generation == "model" and engine.pattern.info["mode"] == "model"
        assert engine.alive
    finally:
        engine.close()


def test_rules_mode_is_selectable_and_follows_the_density_controls(models):
    engine = make_engine(Settings({"generation.mode": "rules", "tempo": 120.0}),
                         threaded=False)
    assert engine.generation == "rules" and engine.model_problem == ""
    assert engine.pattern.info["mode"] == "rules"
    usual = engine.pattern.hit_count().copy()
    engine.set_control("density.kick", 1.0)
    engine.set_control("density.snare", 0.0)
    engine.start(0.0)
    play(engine, 2 * STEP_S)
    counts = engine.pattern.hit_count()
    assert counts[0] > usual[0] and counts[1] == 0
    engine.set_control("density", 0.0)
    play(engine, 4 * STEP_S, t0=2 * STEP_S)
    assert engine.pattern.hit_count().sum() == 0
    engine.set_control("density", 0.5)
    engine.set_control("generation.mode", "model")  # back to the model while playing
    play(engine, 6 * STEP_S, t0=4 * STEP_S)
    assert engine.generation == "model" and engine.pattern.info["mode"] == "model"


def test_rules_mode_is_validated():
    with pytest.raises(ConfigError, match=r"generation\.mode.*'euclid'.*'model', 'rules'"):
        Settings({"generation.mode": "euclid"})


def led_levels(board_name, settings, seconds):
    recorder = OutputRecorder()
    engine = make_engine(settings, threaded=False)
    sim = SimPanelBoard(load_board(board_name), settings, recorder, engine)
    pin = next(o.pin for o in sim.board.gpio_outputs.values() if o.kind == "led")
    sim.start(0.0)
    levels, t = [], 0.0
    while t < seconds:
        t += 0.01
        sim.advance(t)
        levels.append(sim.world.gpio.level(pin))
    return engine, levels


def test_record_led_blinks_in_the_fallback(models):
    _, steady = led_levels("sim", Settings({"tempo": 120.0}), 1.0)
    assert set(steady) == {1}  # record mode overdub: lit, steadily
    (models / DECODER).unlink()
    engine, blinking = led_levels("sim", Settings({"tempo": 120.0}), 1.0)
    assert engine.generation == "fallback"
    off = sum(1 for x in blinking if x == 0)
    flips = sum(1 for a, b in zip(blinking, blinking[1:], strict=False) if a != b)
    assert 3 <= flips <= 5 and 10 <= off <= 30  # off for 0.1 s twice a second, mostly lit


def test_chosen_rules_need_no_model(models, caplog):
    (models / DECODER).unlink()
    with caplog.at_level(logging.INFO):
        engine = make_engine(Settings({"generation.mode": "rules"}), threaded=False)
    assert engine.generation == "rules" and DECODER in engine.model_problem
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    _, levels = led_levels("sim", Settings({"generation.mode": "rules"}), 0.6)
    assert set(levels) == {1}  # chosen, not a fault: no blink
