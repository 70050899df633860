"""The GMD loop pipeline: tiny MIDI files written here, groove properties, and the real zip."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
from grooverack.training import data
from grooverack.training.data import (
    STYLES,
    DataError,
    build_splits,
    load_splits,
    make_groove,
    parse_midi,
)
from grooverack.voices import NUM_VOICES, VOICE_NAMES, VOICE_SOURCE_NOTES
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

TPB = 480
BAR = 4 * TPB
SIXTEENTH = TPB // 4


def midi_bytes(notes, *, tempos=((0, 500000),), time_sig=(4, 4), tpb=TPB, end=None) -> bytes:
    """A type-0 drum file: notes = [(tick, note, velocity)], each 60 ticks long."""
    events = [(t, mido.MetaMessage("set_tempo", tempo=tempo)) for t, tempo in tempos]
    events.append((0, mido.MetaMessage("time_signature", numerator=time_sig[0],
                                       denominator=time_sig[1])))
    for tick, note, vel in notes:
        events.append((tick, mido.Message("note_on", channel=9, note=note, velocity=vel)))
        events.append((tick + 60, mido.Message("note_off", channel=9, note=note, velocity=64)))
    if end is not None:  # a silent note that only marks the end of the performance
        events.append((end, mido.Message("note_off", channel=9, note=36, velocity=0)))
    events.sort(key=lambda e: e[0])
    track = mido.MidiTrack()
    now = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(type=0, ticks_per_beat=tpb)
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def write_zip(path: Path, files, bpm: dict[str, str] | None = None) -> Path:
    """files = [(name, split, style, beat_type, time_signature, midi bytes)] -> a GMD-shaped zip;
    info.csv's bpm is 120 unless `bpm` names another for a file."""
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature",
                "midi_filename", "audio_filename", "duration", "split"])
    with zipfile.ZipFile(path, "w") as zf:
        for name, split, style, beat_type, ts, blob in files:
            w.writerow(["drummer1", "drummer1/s1", name, style, (bpm or {}).get(name, "120"),
                        beat_type, ts,
                        f"drummer1/s1/{name}.mid", "", "8.0", split])
            zf.writestr(f"groove/drummer1/s1/{name}.mid", blob)
        zf.writestr("groove/info.csv", rows.getvalue())
    return path


def beat(bars: int, *, extra=()) -> list[tuple[int, int, int]]:
    """A plain rock beat over `bars` bars: kick on 1 and 3, snare on 2 and 4, hats on 8ths."""
    notes = []
    for b in range(bars):
        for q in range(4):
            t = b * BAR + q * TPB
            notes.append((t, 36 if q % 2 == 0 else 38, 100))
            notes.append((t, 42, 70))
            notes.append((t + TPB // 2, 42, 50))
    return notes + list(extra)


# ------------------------------------------------------------------------------ tiny MIDI files


def test_windows_one_bar_hop_and_counts(tmp_path):
    z = write_zip(tmp_path / "g.zip", [("a", "train", "rock/groove1", "beat", "4-4", midi_bytes(beat(4)))])
    loops = build_splits(z)["train"]
    assert len(loops) == 3  # 4 bars -> windows starting on bars 0, 1, 2
    assert loops.source == [f"drummer1/s1/a.mid:{b:03d}" for b in range(3)]
    assert loops.style.tolist() == [STYLES.index("rock")] * 3
    # every window holds the same 2 bars of the beat
    np.testing.assert_array_equal(loops.hits[0], loops.hits[2])
    assert loops.hits[0, :, 0].nonzero()[0].tolist() == [0, 8, 16, 24]  # kick
    assert loops.hits[0, :, 1].nonzero()[0].tolist() == [4, 12, 20, 28]  # snare
    assert loops.hits[0, :, 2].sum() == 16  # hats on 8ths
    assert loops.velocities[0, 0, 0] == pytest.approx(100 / 127)


def test_each_loop_carries_its_files_tempo(tmp_path):
    z = write_zip(tmp_path / "g.zip", [("a", "train", "rock", "beat", "4-4", midi_bytes(beat(4))),
                                       ("b", "train", "funk", "beat", "4-4", midi_bytes(beat(3)))],
                  bpm={"a": "87", "b": "143"})
    loops = build_splits(z)["train"]
    assert loops.bpm.dtype == np.float32 and loops.bpm.tolist() == [87.0] * 3 + [143.0] * 2
    bad = write_zip(tmp_path / "bad.zip", [("a", "train", "rock", "beat", "4-4",
                                            midi_bytes(beat(4)))], bpm={"a": "fast"})
    with pytest.raises(data.DataError, match=r"bad\.zip:info\.csv: bpm 'fast'"):
        build_splits(bad)


def test_last_bar_counts_when_half_played(tmp_path):
    # 3 bars + notes up to the middle of bar 4: round(3.5 ..) = 4 bars -> 3 windows
    half = beat(3, extra=[(3 * BAR + 2 * TPB, 36, 90)])
    short = beat(3, extra=[(3 * BAR + TPB // 2, 36, 90)])  # bar 4 barely started -> 3 bars
    z = write_zip(tmp_path / "g.zip", [("half", "train", "funk", "beat", "4-4", midi_bytes(half)),
                                       ("short", "test", "funk", "beat", "4-4", midi_bytes(short))])
    s = build_splits(z)
    assert len(s["train"]) == 3
    assert len(s["test"]) == 2


def test_tempo_changes_keep_the_musical_grid(tmp_path):
    # 120 BPM for a bar, then 75 BPM: a loader that turns seconds into steps with one tempo would
    # put the second bar's hits on the wrong steps.
    blob = midi_bytes(beat(3), tempos=((0, 500000), (BAR, 800000)))
    z = write_zip(tmp_path / "g.zip", [("t", "validation", "jazz", "beat", "4-4", blob)])
    loops = build_splits(z)["validation"]
    assert len(loops) == 2
    assert loops.hits[0, :, 0].nonzero()[0].tolist() == [0, 8, 16, 24]
    assert loops.hits[0, :, 1].nonzero()[0].tolist() == [4, 12, 20, 28]
    assert np.all(loops.offsets == 0)


def test_ticks_per_beat_is_honoured():
    blob = midi_bytes([(0, 36, 100), (96 * 2 + 12, 38, 80)], tpb=96)
    pos, voice, vel, end = parse_midi(blob, "x.mid")
    assert pos.tolist() == pytest.approx([0.0, 8.5])
    assert voice.tolist() == [0, 1]
    assert end == pytest.approx((96 * 2 + 12 + 60) * 4 / 96)


def test_early_hit_before_downbeat_is_step_zero_with_negative_offset(tmp_path):
    early = BAR - SIXTEENTH // 4  # a quarter of a 16th before bar 2's downbeat
    notes = [n for n in beat(3) if not (n[0] == BAR and n[1] == 36)] + [(early, 36, 110)]
    z = write_zip(tmp_path / "g.zip", [("e", "train", "rock", "beat", "4-4", midi_bytes(notes))])
    loops = build_splits(z)["train"]
    # window 0: the hit is step 16 played early; window 1 (starts on bar 2): step 0, early
    assert loops.hits[0, 16, 0] == 1 and loops.offsets[0, 16, 0] == pytest.approx(-0.25)
    assert loops.hits[1, 0, 0] == 1 and loops.offsets[1, 0, 0] == pytest.approx(-0.25)
    assert loops.velocities[1, 0, 0] == pytest.approx(110 / 127)
    assert loops.groove[1, 0].tolist() == pytest.approx([1.0, 110 / 127, -0.25])
    # nothing else moved, and the window before does not own the hit at its own end
    assert loops.hits[1, :, 0].nonzero()[0].tolist() == [0, 8, 16, 24]


def test_hit_half_a_step_late_belongs_to_the_next_step_and_window_end_is_exclusive():
    pos = np.array([31.5, 31.49, 16.0])
    voice = np.array([0, 1, 2])
    vel = np.array([0.5, 0.5, 0.5])
    h, _, o, starts = data.cut_loops(pos, voice, vel, end=32.0)
    assert starts == [0]
    assert h[0, 31, 1] == 1 and o[0, 31, 1] == pytest.approx(0.49)
    assert h[0, :, 0].sum() == 0  # 31.5 rounds to step 32: the next loop's step 0


def test_same_voice_same_step_keeps_the_louder(tmp_path):
    notes = beat(2) + [(BAR // 2 + 10, 36, 120), (BAR // 2 - 20, 36, 30)]  # step 8 has a kick
    notes += [(3 * SIXTEENTH + 5, 38, 40), (3 * SIXTEENTH - 7, 40, 90)]  # snare notes 38 and 40
    z = write_zip(tmp_path / "g.zip", [("d", "train", "rock", "beat", "4-4", midi_bytes(notes))])
    loops = build_splits(z)["train"]
    assert loops.velocities[0, 8, 0] == pytest.approx(120 / 127)
    assert loops.offsets[0, 8, 0] == pytest.approx(10 / SIXTEENTH)
    assert loops.velocities[0, 3, 1] == pytest.approx(90 / 127)
    assert loops.offsets[0, 3, 1] == pytest.approx(-7 / SIXTEENTH)


def test_fills_and_other_meters_are_skipped(tmp_path):
    z = write_zip(tmp_path / "g.zip", [
        ("fill", "train", "rock", "fill", "4-4", midi_bytes(beat(4))),
        ("waltz", "train", "jazz", "beat", "3-4", midi_bytes(beat(4), time_sig=(3, 4))),
        ("liar", "train", "jazz", "beat", "4-4", midi_bytes(beat(4), time_sig=(6, 8))),
        ("ok", "test", "pop", "beat", "4-4", midi_bytes(beat(3))),
    ])
    s = build_splits(z)
    assert len(s["train"]) == 0 and len(s["validation"]) == 0
    assert s["train"].hits.shape == (0, 32, 9)
    assert [src.split(":")[0] for src in s["test"].source] == ["drummer1/s1/ok.mid"] * 2


def test_every_source_note_maps_to_its_voice(tmp_path):
    notes = []
    expected = []
    step = 0
    for voice, sources in enumerate(VOICE_SOURCE_NOTES):
        for note in sources:
            notes.append((step * SIXTEENTH, note, 64 + voice))
            expected.append((step, voice))
            step += 1
    notes.append((2 * BAR - SIXTEENTH, 36, 1))  # makes the file 2 bars long
    notes.append((SIXTEENTH * 30, 99, 127))  # not a drum of the mapping: ignored
    expected.append((31, 0))
    z = write_zip(tmp_path / "g.zip", [("m", "train", "soul", "beat", "4-4", midi_bytes(notes))])
    loops = build_splits(z)["train"]
    assert len(loops) == 1
    assert sorted(zip(*np.nonzero(loops.hits[0]), strict=True)) == expected


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nowhere.zip"):
        load_splits(tmp_path / "nowhere.zip", tmp_path / "cache")
    with pytest.raises(DataError, match="broken.mid"):
        parse_midi(b"MThd nonsense", "broken.mid")
    bad = write_zip(tmp_path / "bad.zip", [("s", "train", "polka", "beat", "4-4", midi_bytes(beat(3)))])
    with pytest.raises(DataError, match="polka"):
        build_splits(bad)


def test_cache_is_written_reused_and_rebuilt_when_corrupt(tmp_path):
    z = write_zip(tmp_path / "g.zip", [("a", "train", "rock", "beat", "4-4", midi_bytes(beat(4))),
                                       ("b", "validation", "funk", "beat", "4-4", midi_bytes(beat(3)))])
    cache = tmp_path / "cache"
    first = load_splits(z, cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and f"v{data.PIPELINE_VERSION}" in files[0].name
    again = load_splits(z, cache)
    for split in data.SPLITS:
        np.testing.assert_array_equal(first[split].hits, again[split].hits)
        np.testing.assert_array_equal(first[split].groove, again[split].groove)
        assert first[split].source == again[split].source
        assert again[split].style.dtype == np.int64
        np.testing.assert_array_equal(first[split].bpm, again[split].bpm)
    files[0].write_bytes(b"not an npz")
    rebuilt = load_splits(z, cache)
    np.testing.assert_array_equal(rebuilt["train"].offsets, first["train"].offsets)
    # another zip -> another key
    z2 = write_zip(tmp_path / "g2.zip", [("a", "train", "rock", "beat", "4-4", midi_bytes(beat(5)))])
    assert len(load_splits(z2, cache)["train"]) == 4
    assert len(list(cache.glob("*.npz"))) == 2


# ---------------------------------------------------------------------------- groove properties


def _drums():
    shape = (32, NUM_VOICES)
    return st.tuples(
        arrays(np.float32, shape, elements=st.sampled_from([0.0, 1.0])),
        arrays(np.float32, shape, elements=st.floats(0, 1, width=32)),
        arrays(np.float32, shape, elements=st.floats(-0.5, 0.4921875, width=32)),
    )


@settings(max_examples=60, deadline=None)
@given(_drums())
def test_groove_is_any_hit_max_velocity_offset_of_the_loudest(drums):
    hits, vel, off = drums
    g = make_groove(hits, vel, off)
    assert g.shape == (32, 3) and g.dtype == np.float32
    for t in range(32):
        on = np.nonzero(hits[t])[0]
        if len(on) == 0:
            assert g[t].tolist() == [0.0, 0.0, 0.0]
            continue
        assert g[t, 0] == 1.0
        assert g[t, 1] == vel[t, on].max()
        loudest = on[np.argmax(vel[t, on])]
        assert g[t, 2] == off[t, loudest]


@settings(max_examples=20, deadline=None)
@given(st.lists(_drums(), min_size=1, max_size=3))
def test_groove_batches_like_single_loops(batch):
    hits, vel, off = (np.stack(x) for x in zip(*batch, strict=True))
    g = make_groove(hits, vel, off)
    assert g.shape == (len(batch), 32, 3)
    for i in range(len(batch)):
        np.testing.assert_array_equal(g[i], make_groove(hits[i], vel[i], off[i]))


def test_velocity_of_silent_voices_does_not_leak_into_the_groove():
    hits = np.zeros((32, 9), np.float32)
    vel = np.full((32, 9), 0.9, np.float32)
    off = np.full((32, 9), 0.3, np.float32)
    hits[5, 2], vel[5, 2], off[5, 2] = 1, 0.2, -0.1
    g = make_groove(hits, vel, off)
    assert g[5].tolist() == pytest.approx([1.0, 0.2, -0.1])
    assert g[[0, 6]].sum() == 0


# -------------------------------------------------------------------------------- the real zip


@pytest.fixture(scope="session")
def gmd_splits(gmd_zip, gmd_cache_dir):
    return load_splits(gmd_zip, gmd_cache_dir)


@pytest.mark.gmd
@pytest.mark.slow
def test_real_zip_counts_match_the_literature(gmd_splits):
    for split, published in data.PUBLISHED_COUNTS.items():
        n = len(gmd_splits[split])
        assert abs(n - published) / published < 0.02, (split, n, published)


@pytest.mark.gmd
@pytest.mark.slow
def test_real_zip_arrays_are_valid(gmd_splits):
    for split, loops in gmd_splits.items():
        n = len(loops)
        for name in ("hits", "velocities", "offsets"):
            a = getattr(loops, name)
            assert a.shape == (n, 32, 9) and a.dtype == np.float32, (split, name)
        assert loops.groove.shape == (n, 32, 3) and loops.style.shape == (n,)
        assert len(loops.source) == n and len(set(loops.source)) == n
        assert set(np.unique(loops.hits)) == {0.0, 1.0}
        on = loops.hits > 0
        assert loops.velocities[on].min() > 0 and loops.velocities.max() <= 1
        assert np.all(loops.velocities[~on] == 0) and np.all(loops.offsets[~on] == 0)
        assert loops.offsets.min() >= -0.5 and loops.offsets.max() < 0.5
        assert loops.style.min() >= 0 and loops.style.max() < len(STYLES)
        # the tempo is info.csv's, which the file names repeat: <id>_<style>_<bpm>_beat_4-4.mid
        named = [float(src.split(":")[0].rsplit("/", 1)[-1].split("_")[2]) for src in loops.source]
        np.testing.assert_array_equal(loops.bpm, np.asarray(named, np.float32))
        np.testing.assert_array_equal(loops.groove,
                                      make_groove(loops.hits, loops.velocities, loops.offsets))
        assert loops.hits.sum(axis=(1, 2)).min() >= data.MIN_HITS
    train = gmd_splits["train"]
    # the published per-style train counts: rock leads, then latin and jazz
    order = np.argsort(-np.bincount(train.style, minlength=len(STYLES)))
    assert [STYLES[i] for i in order[:3]] == ["rock", "latin", "jazz"]
    # early hits kept on step 0 (the published cut lost them): a few percent of all hits
    early = ((train.hits[:, 0] > 0) & (train.offsets[:, 0] < 0)).sum() / train.hits.sum()
    assert 0.02 < early < 0.05
    assert {Path(s.split(":")[0]).suffix for s in train.source} == {".mid"}
    assert len(VOICE_NAMES) == train.hits.shape[2]
