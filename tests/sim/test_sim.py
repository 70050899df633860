"""`grooverack sim` end to end with the shipped model, and `grooverack run --board sim`.

The musical facts of issue 3 are measured on the render: density 0 silences a voice; with
follow = 0 the drums do not depend on the input; with follow = 1 most input onsets coincide with a
generated hit. The last one needs a trained model: it is skipped, with the reason, while
`models/grooverack.json` says `"trained": false` (the random-weight placeholder).
"""

from __future__ import annotations

import argparse
import csv
import json

import mido
import pytest
from grooverack.cli import main
from grooverack.model.runner import default_manifest_path
from grooverack.sim.direct import DirectBoard
from grooverack.sim.patch import OutputRecorder, build_patch
from grooverack.sim.png import read_png_size
from grooverack.sim.session import render, simulate
from grooverack.sim.sources import load_source
from grooverack.voices import VOICE_NAMES

FILES = ("outputs.csv", "drums.mid", "input.mid", "roll.png")


def sim_args(**kw) -> argparse.Namespace:
    base = dict(config=None, overrides=[], input="line", bars=4.0, bpm=120.0, seed=1,
                controls=None, clock=False, board="sim", quiet=True)
    base.update(kw)
    return argparse.Namespace(**base)


def trained() -> bool:
    return bool(json.loads(default_manifest_path().read_text()).get("trained", True))


def hits_of(recorder: OutputRecorder, settings) -> list:
    return recorder.hits(settings["outputs.velocity_volts"])


@pytest.fixture(scope="module")
def default_render(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    rc = main(["sim", "--out", str(out), "--seed", "7", "-q"])
    assert rc == 0
    return out


def test_default_render_writes_valid_files(default_render):
    for name in FILES:
        assert (default_render / name).stat().st_size > 0
    with open(default_render / "outputs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["time_s", "output", "kind", "volts"]
    kinds = {r["kind"] for r in rows}
    assert {"velocity", "trigger"} <= kinds
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times)
    assert max(times) < 8 * 2.0 + 0.05  # 8 bars at 120 BPM (+ the last trigger's fall)
    # every trigger rises after its output's velocity CV was set (the sim board writes a jack
    # only when its voltage changes: a repeated velocity keeps the earlier write)
    velocity_set, first_write = set(), {}
    for i, r in enumerate(rows):
        first_write.setdefault((r["time_s"], r["output"], r["kind"]), i)
    for i, r in enumerate(rows):
        if r["kind"] == "velocity":
            velocity_set.add(r["output"])
        elif r["kind"] == "trigger" and float(r["volts"]) > 0:
            assert r["output"] in velocity_set, r
            assert first_write.get((r["time_s"], r["output"], "velocity"), -1) < i, r
    drums = mido.MidiFile(str(default_render / "drums.mid"))
    notes = [m for m in drums if m.type == "note_on" and m.velocity > 0]
    assert notes and all(m.channel == 9 for m in notes)
    rises = sum(1 for r in rows if r["kind"] == "trigger" and float(r["volts"]) > 0)
    assert len(notes) == rises
    inputs = [m for m in mido.MidiFile(str(default_render / "input.mid"))
              if m.type == "note_on" and m.velocity > 0]
    assert len(inputs) == 92  # the built-in line: 46 notes per 4 bars
    width, height = read_png_size((default_render / "roll.png").read_bytes())
    assert width > 1000 and height > 300


def test_render_is_deterministic_for_a_seed(default_render, tmp_path):
    assert main(["sim", "--out", str(tmp_path), "--seed", "7", "-q"]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (default_render / name).read_bytes(), name
    other = tmp_path / "other"
    assert main(["sim", "--out", str(other), "--seed", "8", "-q"]) == 0
    assert (other / "drums.mid").read_bytes() != (default_render / "drums.mid").read_bytes()


def test_summary_and_errors(tmp_path, capsys):
    assert main(["sim", "--input", "euclid:5:16", "--bars", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 bars at 120 BPM" in out and "onsets in: 10" in out
    assert "per voice: kick" in out and "played by: the model (int8)" in out
    assert main(["sim", "--bars", "1", "--set", "generation.mode=rules", "--out",
                 str(tmp_path)]) == 0
    assert "played by: rule patterns (generation.mode = rules)" in capsys.readouterr().out
    assert main(["sim", "--input", str(tmp_path / "nope.mid"), "--out", str(tmp_path)]) == 2
    assert "nope.mid" in capsys.readouterr().err
    assert main(["sim", "--set", "follow=2", "--out", str(tmp_path)]) == 2
    assert "follow" in capsys.readouterr().err
    assert main(["sim", "--board", "midi", "--out", str(tmp_path)]) == 2
    assert "kind 'midi'" in capsys.readouterr().err


def test_density_zero_silences_a_voice():
    args = sim_args(overrides=["density.kick=0", "density.snare=1"], bars=8.0)
    _, recorder, settings, _ = simulate(args)
    hits = hits_of(recorder, settings)
    assert not [h for h in hits if h.voice == VOICE_NAMES.index("kick")]
    assert not [h for h in hits if h.output == settings["map.kick"]]
    assert [h for h in hits if h.voice == VOICE_NAMES.index("snare")]


def test_follow_zero_drums_do_not_depend_on_the_input():
    played = []
    for source in ("line", "euclid:3:8", "euclid:7:16:2"):
        _, recorder, settings, _ = simulate(sim_args(input=source, overrides=["follow=0"]))
        played.append([(round(h.time, 6), h.output, round(h.velocity, 4))
                       for h in hits_of(recorder, settings)])
    assert played[0], "follow = 0 still plays latents A/B"
    assert played[0] == played[1] == played[2]


def coincidence_counts(patch, hits, skip_bars: int = 2) -> tuple[int, int, int, int]:
    """On the 16th grid after the first `skip_bars` (while the groove is captured): steps with
    an input onset that hold a generated hit (any output, nearest step), steps with an input
    onset, steps without one that hold a hit, steps without one."""
    step = patch.step_seconds
    first, steps = skip_bars * 16, int(round(patch.duration / step))
    onset_steps = {int(round(t / step)) for t in patch.gate_rises()}
    hit_steps = {int(round(h.time / step)) for h in hits}
    with_onset = [s for s in range(first, steps) if s in onset_steps]
    without = [s for s in range(first, steps) if s not in onset_steps]
    return (sum(s in hit_steps for s in with_onset), len(with_onset),
            sum(s in hit_steps for s in without), len(without))


def coincidence(patch, hits, skip_bars: int = 2) -> tuple[float, float]:
    """(share of onset steps holding a hit, share of the other steps holding one: chance)."""
    a, b, c, d = coincidence_counts(patch, hits, skip_bars)
    return a / max(b, 1), c / max(d, 1)


@pytest.mark.skipif(not trained(), reason="models/grooverack.json is the random-weight "
                    "placeholder (\"trained\": false): following the input needs a trained model")
def test_follow_one_drums_lock_to_the_input():
    """Over four inputs (the line and three euclidean rhythms), 8 bars each: with follow = 1
    most input onsets coincide with a generated hit, far more often than chance; with follow = 0
    the coincidence is no better than chance."""
    pooled = {1.0: [0, 0, 0, 0], 0.0: [0, 0, 0, 0]}  # onset steps hit, onset steps, other ...
    for source in ("line", "euclid:5:16", "euclid:3:8", "euclid:7:16:2"):
        for follow in (1.0, 0.0):
            patch, recorder, settings, _ = simulate(sim_args(
                input=source, bars=8.0, overrides=[f"follow={follow}"]))
            counts = coincidence_counts(patch, hits_of(recorder, settings))
            pooled[follow] = [a + b for a, b in zip(pooled[follow], counts, strict=True)]
    share = {f: (c[0] / c[1], c[2] / c[3]) for f, c in pooled.items()}
    recall, chance = share[1.0]
    assert recall >= 0.75, share  # most input onsets coincide with a generated hit
    assert recall - chance >= 0.3, share  # far more often than chance: the drums follow
    recall0, chance0 = share[0.0]
    assert recall - chance > recall0 - chance0 + 0.2, share


def test_coincidence_measure():
    patch = build_patch(load_source("euclid:4:16"), bpm=120.0, bars=4)
    from grooverack.sim.patch import Hit

    on_every_onset = [Hit(t + 0.01, 1, 1.0, 0) for t in patch.gate_rises()]
    assert coincidence(patch, on_every_onset) == (1.0, 0.0)
    between = [Hit(t + 0.25, 1, 1.0, 0) for t in patch.gate_rises()]
    assert coincidence(patch, between) == (0.0, pytest.approx(16 / 48))
    everywhere = [Hit(i * 0.125, 1, 1.0, 0) for i in range(64)]
    assert coincidence(patch, everywhere) == (1.0, 1.0)


def test_direct_board_samples_pitch_after_the_settle_time():
    calls = []

    class Recording:  # records the calls the board makes on an engine
        def start(self, t):
            calls.append(("start", t))

        def advance(self, t):
            return []

        def onset(self, t, velocity=None, pitch_volts=None):
            calls.append(("onset", t, velocity, pitch_volts))

        def set_control(self, name, value):
            calls.append(("set", name, round(value, 6)))

        def clock_pulse(self, t):
            calls.append(("clock", t))

        def reset(self, t):
            calls.append(("reset", t))

    from grooverack.config import Settings

    settings = Settings({"input.pitch_settle_ms": 2.0})
    board = DirectBoard(Recording(), settings, OutputRecorder())
    from grooverack.sim.patch import VirtualPatch

    patch = VirtualPatch([(0.0, "tempo", 0.5), (0.0, "pitch", 1.0), (0.0, "gate", 5.0),
                          (0.001, "pitch", 2.0),  # changes inside the settle time: it counts
                          (0.05, "gate", 0.0), (0.1, "gate", 1.0),  # below the rising threshold
                          (0.2, "gate", 5.0), (0.3, "clock", 5.0), (0.4, "reset", 5.0)],
                         duration=0.5, bpm=120.0)
    render(patch, board)
    assert calls == [("start", 0.0), ("set", "tempo", 160.0), ("onset", 0.0, None, 2.0),
                     ("onset", 0.2, None, 2.0), ("clock", 0.3), ("reset", 0.4)]


@pytest.mark.parametrize("extra", [[], pytest.param(["--direct"], marks=pytest.mark.slow)])
def test_run_board_sim_real_time_writes_timing(tmp_path, capsys, extra):
    timing = tmp_path / "timing.csv"
    rc = main(["run", "--board", "sim", "--duration", "1.5", "--timing", str(timing),
               "--out", str(tmp_path / "render"), *extra])
    assert rc == 0
    err = capsys.readouterr().err
    assert "ready in" in err and "lateness median" in err
    lines = timing.read_text().splitlines()
    assert lines[0].startswith("# ready_s=")
    rows = list(csv.DictReader(lines[1:]))
    outputs = [r for r in rows if r["what"] == "output"]
    assert outputs and [r for r in rows if r["what"] == "input"]
    for r in outputs:  # written at or after its time (never early), in time order
        assert float(r["actual_s"]) >= float(r["scheduled_s"])
    assert (tmp_path / "render" / "roll.png").exists()


def test_drum_midi_input_becomes_a_groove_end_to_end(tmp_path, capsys):
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    for beat in range(4):  # kick + closed hat together on every beat, louder on 1 and 3
        vel = 120 if beat % 2 == 0 else 60
        track.append(mido.Message("note_on", channel=9, note=36, velocity=vel,
                                  time=0 if beat == 0 else 420))
        track.append(mido.Message("note_on", channel=9, note=42, velocity=50, time=0))
        track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=60))
        track.append(mido.Message("note_off", channel=9, note=42, velocity=0, time=0))
    midi.tracks.append(track)
    path = tmp_path / "beat.mid"
    midi.save(str(path))
    out = tmp_path / "render"
    assert main(["sim", "--input", str(path), "--bars", "2", "--out", str(out)]) == 0
    assert "onsets in: 8" in capsys.readouterr().out  # chords merge into one onset each
    drums_in = [m for m in mido.MidiFile(str(out / "input.mid"))
                if m.type == "note_on" and m.velocity > 0]
    assert len(drums_in) == 16 and {m.channel for m in drums_in} == {9}


def test_patched_clock_is_followed():
    """A clock patched at 97 BPM while the internal tempo says 120: with quantize = 1 every hit
    lands on the 97 BPM 16th grid once the clock is locked (after the first bar)."""
    from grooverack.config import Settings
    from grooverack.runtime.serve import make_engine
    from grooverack.sim.session import make_board

    settings = Settings({"tempo": 120.0, "quantize": 1.0, "clock.ppqn": 4})
    patch = build_patch(load_source("euclid:5:16"), bpm=97.0, bars=6, clock_ppqn=4)
    recorder = OutputRecorder()
    render(patch, make_board(settings, recorder, make_engine(settings, threaded=False), "direct"))
    step = 60.0 / 97.0 / 4
    hits = [h for h in hits_of(recorder, settings) if h.time > 16 * step]
    assert hits
    for h in hits:
        assert abs(h.time / step - round(h.time / step)) * step < 0.0005, h.time
    assert any(abs(h.time / (0.125) - round(h.time / 0.125)) * 0.125 > 0.005 for h in hits)


def test_progress_bar_on_long_renders():
    import io
    import time

    from grooverack.sim.session import Progress

    stream = io.StringIO()
    progress = Progress(16.0, 2.0, stream)
    progress(0.0)
    assert stream.getvalue() == ""  # a render that is over within a second shows nothing
    progress.started = time.perf_counter() - 5.0
    for t in (0.0, 8.0, 16.0):
        progress(t)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("bar 1/8") and lines[1].endswith("bar 5/8")
    assert lines[-1] == "rendering [" + "#" * 30 + "] bar 8/8"


@pytest.mark.parametrize("board", ["sim", "direct"])
def test_controls_file_changes_the_panel_over_time(tmp_path, board):
    """`quantize` (no pot on the sim board: it reaches the engine as a MIDI CC would) goes to 1
    at bar 5: from then on every hit is on the 16th grid; before, the model's micro-timing."""
    controls = tmp_path / "moves.csv"
    controls.write_text("time_or_bar,key,value\n5,quantize,1\n", encoding="utf-8")
    _, recorder, settings, _ = simulate(sim_args(board=board, bars=8.0, controls=str(controls)))
    step = 0.125

    def off_grid(h) -> float:
        return abs(h.time / step - round(h.time / step)) * step

    hits = hits_of(recorder, settings)
    assert any(off_grid(h) > 0.001 for h in hits if h.time < 8.0)
    after = [h for h in hits if h.time >= 8.0 + step]
    assert after and all(off_grid(h) < 1e-6 for h in after)


@pytest.mark.parametrize("board", ["direct", "sim"])
def test_controls_file_presses_a_button(tmp_path, board):
    """`press,randomize_a` at bar 5 with follow = 0: the same drums as without the press before
    it, new ones (a new latent A) after it; on the sim board through the emulated, debounced
    button (a press landing exactly on its debounce deadline once hung the render)."""
    controls = tmp_path / "press.csv"
    controls.write_text("5,press,randomize_a\n", encoding="utf-8")
    played = []
    for extra in ({}, {"controls": str(controls)}):
        _, recorder, settings, _ = simulate(sim_args(board=board, bars=8.0,
                                                     overrides=["follow=0"], **extra))
        played.append([(round(h.time, 6), h.output) for h in hits_of(recorder, settings)])
    plain, pressed = played
    assert [h for h in plain if h[0] < 8.0] == [h for h in pressed if h[0] < 8.0]
    assert [h for h in plain if h[0] >= 8.0] != [h for h in pressed if h[0] >= 8.0]


def test_renders_do_not_keep_descriptors_open():
    """Each render on the sim board releases its emulated GPIO lines: a process that renders many
    times (the test run, a benchmark) once held 18 more descriptors per render until select()
    failed above 1023 and the lines' edges were lost."""
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    simulate(sim_args(bars=1.0))
    before = open_fds()
    for _ in range(5):
        simulate(sim_args(board="sim", bars=1.0))
    assert open_fds() <= before + 2
