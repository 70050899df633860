"""The onset detector (grooverack.onsets): its stages, and what it hears in FluidSynth renders.

Renders are made at test time from MIDI written here (FluidSynth + FluidR3 GM, Debian's
`fluidsynth` and `fluid-soundfont-gm`); no audio is shipped.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
from grooverack.errors import SourceError
from grooverack.onsets import OnsetDetector, OnsetParams, check_rate, detect
from grooverack.onsets.frames import Framer
from grooverack.onsets.peaks import PeakPicker
from grooverack.onsets.spectrum import filterbank
from grooverack.onsets.velocity import VelocityCurve
from grooverack.sim import fluid

needs_fluidsynth = pytest.mark.skipif(fluid.available() is not None,
                                      reason=str(fluid.available()))


def clicks(rate: int, times: list[float], seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Noise bursts (30 ms decay) starting exactly at `times`."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * rate))
    n = int(0.2 * rate)
    for t in times:
        i = int(round(t * rate))
        m = min(n, len(x) - i)
        x[i:i + m] += rng.normal(0, 0.3, m) * np.exp(-np.arange(m) / rate / 0.03)
    return x


TIMES = [0.1, 0.35, 0.62, 1.0, 1.25, 1.5]


# --- the stages -------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [16000, 44100, 96000])
def test_frames_are_sized_in_ms_and_the_same_for_any_block_size(rate):
    x = np.random.default_rng(1).normal(size=rate // 2)
    whole = Framer(rate, 23.0, 5.0, 50.0)
    frames, ends = whole.feed(x)
    assert whole.size == round(0.023 * rate) and whole.hop == round(0.005 * rate)
    assert list(ends) == [(k + 1) * whole.hop for k in range(len(x) // whole.hop)]
    pieces = Framer(rate, 23.0, 5.0, 50.0)
    got = [pieces.feed(x[i:i + 37])[0] for i in range(0, len(x), 37)]
    assert np.array_equal(np.concatenate(got), frames)
    # a frame holds only samples already heard: the last sample of frame k is sample end - 1
    assert frames[3][-1] == x[ends[3] - 1]


def test_filterbank_bands_have_unit_area_and_rise():
    for rate in (16000, 48000, 96000):
        nfft = 1024 if rate < 30000 else 4096
        bank = filterbank(rate, nfft, 12)
        assert np.allclose(bank.sum(axis=0), 1.0)
        centres = bank.argmax(axis=0)
        assert np.all(np.diff(centres) > 0)
        assert centres[-1] * rate / nfft <= 16000 * 1.06


def test_peak_picker_fires_once_per_spike_and_never_on_a_flat_line():
    picker = PeakPicker(threshold=1.0, avg=20, before=6, combine=6)
    flat = [picker(0.3) for _ in range(100)]
    assert not any(flat)
    spike = [picker(v) for v in [0.3, 4.0, 8.0, 6.0, 2.0, 0.3, 0.3, 0.3, 0.3]]
    assert spike.count(True) == 1 and spike.index(True) == 1  # the first frame over the bar


def test_peak_picker_spread_raises_the_bar_over_a_noisy_function():
    """Room noise makes the detection function jitter around its median: the spread term (the
    median absolute deviation over the moving window) raises the bar over the jitter, and a real
    spike still passes it."""
    rng = np.random.default_rng(1)
    jitter = 0.3 + np.abs(rng.normal(0.0, 0.25, 400))
    fired = {}
    for spread in (0.0, OnsetParams().spread):
        picker = PeakPicker(threshold=0.4, avg=20, before=6, combine=6, spread=spread)
        fired[spread] = sum(picker(float(v)) for v in jitter)
        spike = [picker(v) for v in [0.3, 3.0, 2.0, 0.3, 0.3]]
        assert spike == [False, True, False, False, False], spread
    assert fired[OnsetParams().spread] * 3 <= fired[0.0], fired


def test_velocity_curve_is_relative_to_the_loudest_recent_onset():
    curve = VelocityCurve(curve=2.0, minimum=0.1)
    assert curve(0.0, 0.5) == 1.0
    assert curve(0.1, 0.125) == pytest.approx(0.5, abs=0.01)  # 12 dB under: 0.5 at curve 2
    assert curve(0.2, 1e-6) == 0.1
    assert VelocityCurve(1.0)(0.0, 0.2) == 1.0


@pytest.mark.parametrize("rate", [16000, 8000, 96000, 192000])
def test_sample_rate_range(rate):
    if 16000 <= rate <= 96000:
        assert check_rate(rate) == rate
        return
    with pytest.raises(SourceError, match=rf"{rate:,}|{rate}.*16,000 to 96,000 Hz"):
        OnsetDetector(rate)


# --- the detector on synthetic bursts ---------------------------------------------------------

@pytest.mark.parametrize("rate", [16000, 48000, 96000])
def test_bursts_are_found_at_their_own_sample(rate):
    onsets = detect(clicks(rate, TIMES), rate)
    assert [round(o.time, 3) for o in onsets] == pytest.approx(TIMES, abs=0.002)
    for o in onsets:  # reported after it sounded, within a frame + the velocity window
        assert 0 < (o.reported - o.sample) / rate * 1000 <= OnsetDetector(rate).delay_ms + 1


def test_any_block_size_gives_the_same_onsets():
    x = clicks(44100, TIMES)
    ref = detect(x, 44100, block=4096)
    for block in (1, 63, 256, 100000):
        got = detect(x, 44100, block=block) if block > 1 else None
        if block == 1:  # one sample at a time (slow path, a short stretch)
            det = OnsetDetector(44100)
            got = [o for s in x[:int(0.5 * 44100)] for o in det.feed(np.array([s]))]
            assert [o.sample for o in got] == [o.sample for o in ref if o.time < 0.45]
            continue
        assert [(o.sample, o.velocity) for o in got] == [(o.sample, o.velocity) for o in ref]


def test_level_independent_over_40_db_and_silence_is_empty():
    x = clicks(48000, TIMES)
    loud = detect(x, 48000)
    for gain_db in (-20, -40, -50):
        quiet = detect(x * 10 ** (gain_db / 20), 48000)
        assert [o.sample for o in quiet] == [o.sample for o in loud]
        assert [o.velocity for o in quiet] == pytest.approx([o.velocity for o in loud], abs=0.02)
    assert detect(np.zeros(48000), 48000) == []


def test_dc_offset_clipping_and_a_chosen_channel():
    x = clicks(48000, TIMES)
    ref = [o.sample for o in detect(x, 48000)]
    assert [o.sample for o in detect(x + 0.4, 48000)] == ref  # DC offset
    clipped = np.clip(x * 8, -1, 1)
    assert [round(o.time, 2) for o in detect(clipped, 48000)] == pytest.approx(TIMES, abs=0.01)
    stereo = np.stack([np.zeros_like(x), x], axis=1)
    assert [o.sample for o in detect(stereo, 48000, channel=1)] == ref
    assert detect(stereo, 48000, channel=0) == []
    with pytest.raises(SourceError, match="channel 3 is not there.*2 channel"):
        detect(stereo, 48000, channel=2)


def test_a_ringing_note_is_one_onset():
    rate = 48000
    t = np.arange(2 * rate) / rate
    x = np.zeros_like(t)
    start = int(0.2 * rate)
    ring = t[:len(t) - start]
    # a plucked tone with beating partials and a slow vibrato: one event
    x[start:] = np.exp(-ring / 0.8) * (np.sin(2 * np.pi * 110 * ring + 0.3 * np.sin(2 * np.pi * 5 * ring))
                                       + 0.5 * np.sin(2 * np.pi * 221.5 * ring)
                                       + 0.3 * np.sin(2 * np.pi * 330 * ring))
    onsets = detect(x * 0.5, rate)
    assert len(onsets) == 1 and onsets[0].time == pytest.approx(0.2, abs=0.003)


def _room(rate: int, seconds: float, db: float) -> np.ndarray:
    return fluid.room_noise(int(seconds * rate), rate, db, seed=3)


@pytest.mark.parametrize("rate", [22050, 48000])
def test_noise_that_starts_with_the_stream_is_not_an_onset(rate):
    """Room noise (-45 dB under the hits) that begins with the stream, as it does when a
    capture device opens, is a sound already playing: no onset at the start. A hit at the very
    first sample is still one (it changes the level within two frames; the noise does not)."""
    later = [0.3, 0.62, 1.0]
    x = clicks(rate, later) + _room(rate, 2.0, -45.0)

    def early(onsets: list) -> list[float]:
        return [o.time for o in onsets if o.time < 0.2]

    assert early(detect(x, rate)) == []
    # the old behaviour, start_db = 0: the stream's first frame is an onset
    assert early(detect(x, rate, OnsetParams(start_db=0.0))) == [pytest.approx(0.0, abs=0.002)]
    heard = detect(clicks(rate, [0.0] + later) + _room(rate, 2.0, -45.0), rate)
    assert early(heard) == [pytest.approx(0.0, abs=0.002)]
    found = [min(abs(o.time - t) for o in heard) for t in later]
    assert max(found) < 0.005, found
    # clean: a hit at sample 0 out of digital silence
    assert early(detect(clicks(rate, [0.0] + later), rate)) == [pytest.approx(0.0, abs=0.002)]


def test_a_stream_start_onset_waits_only_for_its_two_frames():
    rate = 48000
    det = OnsetDetector(rate)
    x = clicks(rate, [0.0, 0.5])
    got = []
    for i in range(0, len(x), 256):
        got += det.feed(x[i:i + 256])
    assert got[0].sample == 0
    assert (got[0].reported - got[0].sample) / rate * 1000 <= det.delay_ms + 1
    assert (got[1].reported - got[1].sample) / rate * 1000 <= det.delay_ms


def test_params_come_from_the_config_keys():
    from grooverack.config import SCHEMA, Settings

    settings = Settings({"onsets.threshold": 2.0, "onsets.hop_ms": 4.0})
    params = OnsetParams.from_settings(settings)
    assert params.threshold == 2.0 and params.hop_ms == 4.0
    defaults = OnsetParams()
    for name in ("frame_ms", "range_db", "velocity_curve", "combine_ms", "threshold", "spread",
                 "rearm", "start_db"):
        assert SCHEMA[f"onsets.{name}"].default == getattr(defaults, name)


# --- FluidSynth renders -----------------------------------------------------------------------

def drum_groove(path: Path, bpm: float = 100.0, bars: int = 4) -> Path:
    """A 2-bar funk groove with ghost notes, an open hat and micro-timing, repeated."""
    rng = np.random.default_rng(7)
    ppq = 480
    step = ppq // 4
    mid = mido.MidiFile(ticks_per_beat=ppq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    bar = {36: [(0, 110), (6, 90), (10, 100), (16, 112), (22, 95), (27, 85)],
           38: [(4, 115), (12, 118), (20, 116), (28, 120), (7, 35), (15, 40), (25, 38)],
           42: [(s, 60 + 30 * (s % 4 == 0)) for s in range(0, 32, 2) if s not in (14, 30)],
           46: [(14, 90), (30, 95)]}
    events = []
    for rep in range(bars // 2):
        for note, hits in bar.items():
            for s, vel in hits:
                tick = (rep * 32 + s + 1) * step + int(rng.integers(-12, 13))
                events += [(tick, 1, note, vel), (tick + step // 2, 0, note, 0)]
    events.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for tick, on, note, vel in events:
        track.append(mido.Message("note_on" if on else "note_off", channel=9, note=note,
                                  velocity=vel, time=tick - last))
        last = tick
    mid.save(str(path))
    return path


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    if fluid.available():
        pytest.skip(fluid.available())
    tmp = tmp_path_factory.mktemp("renders")
    out = {}
    drums = drum_groove(tmp / "drums.mid")
    out["drums"] = (drums, fluid.render(drums, 44100)[:, 0])
    line = fluid.write_line(tmp / "guitar.mid", "guitar", seed=3, bars=4)
    out["guitar"] = (line, fluid.render(line, 48000)[:, 0])
    return out


@needs_fluidsynth
@pytest.mark.parametrize("name,rate", [("drums", 44100), ("guitar", 48000)])
def test_render_f1_and_offsets(renders, name, rate):
    midi, audio = renders[name]
    heard = detect(fluid.at_level(audio, -6.0), rate)
    score = fluid.score([o.time for o in heard], [t for t, _ in fluid.note_ons(midi)])
    assert score["f1"] >= 0.9, score
    assert abs(score["median_ms"]) <= 10.0, score
    assert score["p90_spread_ms"] <= 5.0, score


@needs_fluidsynth
def test_render_level_independence(renders):
    midi, audio = renders["drums"]
    loud = detect(fluid.at_level(audio, 0.0), 44100)
    quiet = detect(fluid.at_level(audio, -30.0), 44100)
    assert [o.sample for o in quiet] == [o.sample for o in loud]
    assert np.allclose([o.velocity for o in quiet], [o.velocity for o in loud], atol=0.02)
    # the velocities follow the played ones: accents louder than ghost notes
    truth = fluid.note_ons(midi)
    pairs = [(v, o.velocity) for t, v in truth for o in loud if abs(o.time - t) < 0.025]
    played, heard = np.array(pairs).T
    assert np.corrcoef(played, heard)[0, 1] > 0.5


# --- grooverack sim --input AUDIO -------------------------------------------------------------

def _input_notes(path: Path) -> list[tuple[float, int]]:
    t, out = 0.0, []
    for msg in mido.MidiFile(str(path)):
        t += msg.time
        if msg.type == "note_on" and msg.velocity:
            out.append((t, msg.velocity))
    return out


def test_sim_hears_an_audio_file_on_the_default_board(tmp_path, fake_manifest, caplog):
    import soundfile
    from grooverack.cli import main

    rate = 32000
    x = clicks(rate, [0.2, 0.8, 1.4, 1.7, 2.3], seconds=2.6)
    stereo = np.stack([x * 0.1, np.zeros_like(x)], axis=1)
    wav = tmp_path / "loop.wav"
    soundfile.write(str(wav), stereo, rate, subtype="FLOAT")
    out = tmp_path / "out"
    rc = main(["sim", "--input", str(wav), "--bpm", "100", "--out", str(out), "-q",
               "--set", f"model.path={fake_manifest}"])
    assert rc == 0
    heard = _input_notes(out / "input.mid")
    assert [round(t, 3) for t, _ in heard] == pytest.approx([0.2, 0.8, 1.4, 1.7, 2.3], abs=0.002)
    assert all(1 <= v <= 127 for _, v in heard)
    # the second channel is silent: one warning, an empty groove, the module still renders
    out2 = tmp_path / "out2"
    rc = main(["sim", "--input", str(wav), "--bpm", "100", "--out", str(out2),
               "--set", "input.audio_channel=2", "--set", f"model.path={fake_manifest}"])
    assert rc == 0
    assert _input_notes(out2 / "input.mid") == []
    warned = [r for r in caplog.records if "no onsets heard" in r.getMessage()]
    assert len(warned) == 1 and "loop.wav" in warned[0].getMessage()
    assert (out2 / "drums.mid").exists()


def test_sim_refuses_bad_audio_naming_the_file_and_what_was_found(tmp_path, capsys):
    import soundfile
    from grooverack.cli import main

    mp3 = tmp_path / "song.wav"
    mp3.write_bytes(b"ID3\x03\x00\x00\x00" + bytes(200))
    assert main(["sim", "--input", str(mp3), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "song.wav" in err and "an MP3 file" in err and "WAV, FLAC or OGG" in err
    low = tmp_path / "phone.wav"
    soundfile.write(str(low), np.zeros(8000), 8000)
    assert main(["sim", "--input", str(low), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "phone.wav" in err and "8000 Hz" in err and "16,000 to 96,000 Hz" in err
    mono = tmp_path / "mono.flac"
    soundfile.write(str(mono), np.zeros(16000), 16000)
    assert main(["sim", "--input", str(mono), "--set", "input.audio_channel=3",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "mono.flac" in err and "1 channel" in err


# --- the truth: what the render sounds ----------------------------------------------------------

@needs_fluidsynth
def test_truth_leaves_out_drum_notes_the_soundfont_does_not_sound(tmp_path):
    """GMD plays its hi-hat edge on notes 22 and 26: FluidR3's kit has no sample there, the
    render is silent, and the truth (`fluid.note_ons`) has no onset for them."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 1 beat = 0.5 s
    for note in (22, 26, 36, 27, 87):
        track.append(mido.Message("note_on", channel=9, note=note, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=9, note=note, velocity=0, time=480))
    track.append(mido.Message("note_on", channel=0, note=22, velocity=100, time=0))  # a melody
    track.append(mido.Message("note_off", channel=0, note=22, velocity=0, time=480))
    path = tmp_path / "keys.mid"
    mid.save(str(path))
    audio = fluid.render(path, 22050)[:, 0]
    peaks = [float(np.abs(audio[int(k * 0.5 * 22050):int((k * 0.5 + 0.4) * 22050)]).max())
             for k in range(6)]
    assert peaks[0] < 1e-6 and peaks[1] < 1e-6, peaks  # 22 and 26: silence
    assert min(peaks[2:]) > 1e-3, peaks  # 36, 27, 87 and the channel-1 note sound
    assert [round(t, 3) for t, _ in fluid.note_ons(path)] == [1.0, 1.5, 2.0, 2.5]
    assert 22 not in fluid.DRUM_KEYS and 26 not in fluid.DRUM_KEYS


@needs_fluidsynth
def test_a_gmd_beat_is_rendered_with_the_drums_the_drummer_struck(tmp_path):
    """GMD's Roland-only keys (hi-hat edge 22 / 26, the floor tom's rim 58) are played as the GM
    key of the same drum (`fluid.gm_drums`): each sounds, the truth counts it and the detector
    hears it. As recorded, 22 and 26 are silent and 58 is GM's vibraslap, a rattle the detector
    hears as several onsets; the floor tom it stands for is one."""
    def beat(notes: tuple[int, ...], path: Path) -> Path:
        mid = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 1 beat = 0.5 s
        for note in notes:
            track.append(mido.Message("note_on", channel=9, note=note, velocity=100, time=480))
            track.append(mido.Message("note_off", channel=9, note=note, velocity=0, time=480))
        mid.save(str(path))
        return path

    gm = fluid.gm_drums(beat((22, 26, 58), tmp_path / "roland.mid"), tmp_path / "gm.mid")
    assert [m.note for m in mido.MidiFile(str(gm)) if m.type == "note_on"] == [42, 46, 43]
    rate = 22050
    audio = fluid.render(gm, rate)[:, 0]
    peaks = [float(np.abs(audio[int(t * rate):int((t + 0.4) * rate)]).max())
             for t in (0.5, 1.5, 2.5)]
    assert min(peaks) > 1e-3, peaks  # every stroke sounds
    truth = [t for t, _ in fluid.note_ons(gm)]
    assert [round(t, 3) for t in truth] == [0.5, 1.5, 2.5]
    heard = [o.time for o in detect(fluid.at_level(audio, -6.0), rate)]
    assert fluid.score(heard, truth)["recall"] == 1.0, heard

    def strokes(note: int) -> list[float]:
        path = beat((note,), tmp_path / f"{note}.mid")
        x = fluid.at_level(fluid.render(path, rate)[:, 0], -6.0)
        return [o.time for o in detect(x, rate) if o.time < 1.0]

    assert len(strokes(58)) > 1  # the vibraslap's rattle
    assert strokes(fluid.ROLAND_TO_GM[58]) == [pytest.approx(0.5, abs=0.01)]


def _one_note(path: Path, note: int, *, channel: int = fluid.DRUM_CHANNEL,
              program: int | None = None, hold: float = 0.5) -> Path:
    """A MIDI file with one note-on at 0.5 s (held `hold` s), then FluidSynth's ring-out."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 1 beat = 0.5 s
    if program is not None:
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    track.append(mido.Message("note_on", channel=channel, note=note, velocity=100, time=480))
    track.append(mido.Message("note_off", channel=channel, note=note, velocity=0,
                              time=int(hold * 960)))
    track.append(mido.MetaMessage("end_of_track", time=480))
    mid.save(str(path))
    return path


# the steady-rise rule (`onsets.ring_*`), off by default: it also drops the first note after
# a stretch of room noise when that note's attack is slow (docs/onsets.md)
RING = OnsetParams(ring_margin=2.0)


def _heard(path: Path, rate: int, noisy: bool, params: OnsetParams | None = RING
           ) -> list[float]:
    x = fluid.at_level(fluid.render(path, rate)[:, 0], -6.0)
    if noisy:  # room noise 45 dB under the peak, from the stream's start to its end
        x = x + fluid.room_noise(len(x), rate, -51.0, seed=3)
    return [o.time for o in detect(x, rate, params)]


@needs_fluidsynth
@pytest.mark.parametrize("noisy", [False, True], ids=["clean", "room"])
@pytest.mark.parametrize("rate", [22050, 48000])
@pytest.mark.parametrize("key", [49, 51, 52], ids=["crash", "ride", "chinese"])
def test_a_struck_cymbal_is_one_onset(tmp_path, key, rate, noisy):
    """One cymbal struck alone (FluidR3, 5-11 s of ring-out): one onset, at its stroke. The
    log spectrum is level-independent, so the jitter of a noisy decay (and of room noise once
    the cymbal is under it) is as large 40 dB down as at the stroke; far from the last onset an
    onset must also rise over each band's own jitter (`onsets.ring_*`). Before: the crash and
    the china cymbal with room noise at 22.05 kHz gave 3 onsets each."""
    heard = _heard(_one_note(tmp_path / "hit.mid", key), rate, noisy)
    assert heard == [pytest.approx(0.5, abs=0.01)], heard
    if key == 49 and rate == 22050 and noisy:  # the defaults (the rule off): as before
        assert len(_heard(_one_note(tmp_path / "hit.mid", key), rate, noisy, None)) == 3


@needs_fluidsynth
@pytest.mark.parametrize("noisy", [False, True], ids=["clean", "room"])
@pytest.mark.parametrize("rate", [22050, 48000])
@pytest.mark.parametrize("program,note", [(0, 48), (25, 52), (48, 60)],
                         ids=["piano", "steel-guitar", "strings"])
def test_a_long_pitched_note_is_one_onset(tmp_path, program, note, rate, noisy):
    """A note held 2 s and its release (5-17 s in all): one onset. Before: the steel guitar
    and the strings with room noise at 22.05 kHz gave 2-3 (the noise-only tail)."""
    path = _one_note(tmp_path / "note.mid", note, channel=0, program=program, hold=2.0)
    heard = _heard(path, rate, noisy)
    assert heard == [pytest.approx(0.5, abs=0.015)], heard


@needs_fluidsynth
@pytest.mark.parametrize("rate", [22050, 48000])
def test_an_open_hat_rings_out_without_onsets_after_its_swell(tmp_path, rate):
    """The open hi-hat (GM 46) gave onsets until 2.46 s for one stroke at 0.5 s. FluidR3's
    sample swells by ~2 dB at ~1.26 s (a real rise of its 200 Hz-1 kHz bands, over their
    jitter): up to it the jitter of its decay still gives onsets at 48 kHz (the rule acts only
    400 ms after the last onset, and one that passes restarts that wait); after it, none. One
    onset is not met yet (the strict xfail below)."""
    path = _one_note(tmp_path / "hat.mid", 46)
    for noisy in (False, True):
        heard = _heard(path, rate, noisy)
        assert heard[0] == pytest.approx(0.5, abs=0.01), heard
        assert all(t < 1.3 for t in heard), heard


@needs_fluidsynth
@pytest.mark.xfail(strict=True, reason="the open hat's sample swells ~2 dB at 1.26 s: heard as "
                   "a second onset (docs/onsets.md)")
@pytest.mark.parametrize("rate", [22050, 48000])
def test_an_open_hat_is_one_onset(tmp_path, rate):
    heard = _heard(_one_note(tmp_path / "hat.mid", 46), rate, False)
    assert heard == [pytest.approx(0.5, abs=0.01)], heard
