"""Your own loop as A or B from the command line (`grooverack preset --from-midi`), and how a
drum MIDI file becomes the groove the encoder reads."""

from __future__ import annotations

import numpy as np
import pytest
from grooverack.cli import main
from grooverack.model.runner import ModelRunner
from grooverack.state import StateStore
from grooverack.web.library import Refused, midi_loop_file

from tests.web.test_web_api import drum_midi


def test_a_two_bar_loop_reads_as_its_groove(tmp_path):
    loop = midi_loop_file(drum_midi(tmp_path / "beat.mid"))
    assert loop.bars == 2
    # kick on every beat, snare on 2 and 4, hats on the 8ths: every 8th is a hit
    assert loop.groove[:, 0].tolist() == [1.0 if s % 2 == 0 else 0.0 for s in range(32)]
    assert loop.groove[0, 1] == pytest.approx(110 / 127)  # the loudest hit of the step
    assert np.all(loop.groove[:, 2] == 0.0)  # on the grid


def test_a_one_bar_loop_is_played_twice(tmp_path):
    loop = midi_loop_file(drum_midi(tmp_path / "bar.mid", bars=1))
    assert loop.bars == 1
    assert np.array_equal(loop.groove[:16], loop.groove[16:])


def test_a_melody_is_not_a_drum_loop(tmp_path):
    with pytest.raises(Refused, match="not a drum loop"):
        midi_loop_file(drum_midi(tmp_path / "tune.mid", channel=0, notes=(60, 0, 0)))


def test_preset_from_midi_writes_latent_b_of_the_current_preset(tmp_path, capsys):
    path = drum_midi(tmp_path / "beat.mid")
    state = tmp_path / "state"
    assert main(["preset", "--from-midi", str(path), "--slot", "B", "--set",
                 f"state.dir={state}"]) == 0
    store = StateStore(state)
    preset = store.load_preset(1)
    assert preset is not None
    mu, _ = ModelRunner().encode(midi_loop_file(path).groove)
    assert np.allclose(preset.latent_b, mu, atol=1e-5)
    assert store.load_performance().latent_b == pytest.approx(preset.latent_b)
    assert "latent B of preset 1" in capsys.readouterr().err


def test_preset_from_midi_refuses_a_file_that_is_not_a_loop(tmp_path, capsys):
    path = drum_midi(tmp_path / "long.mid", bars=3)
    assert main(["preset", "--from-midi", str(path), "--set", f"state.dir={tmp_path}"]) == 2
    assert "3 bars" in capsys.readouterr().err
    assert not (tmp_path / "presets").exists()
