"""On JACK, speak JACK (issue 34 item 4): the back ends as JACK clients of their own, timed by
the independent probe of tests/rig/jackprobe.py (a JACK client in a child process plays the clock
and records the answer; nothing is asked of the back end under test but its own late count).

ES-9: on `jackd -d dummy` every JACK frame is exact, so the checks are on frames: the step on a
clock edge is written at edge + R, R = two periods, in every take; a level change that reached
the process callback after its frame (`late_events`: the engine thread missed its period on a
loaded machine) lands later, never elsewhere. MIDI input (rtmidi over JACK): Active Sensing and
SysEx (terminated or not) cost the clock none of its time.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.rig.jackprobe import SR, MidiProbe, es9_take, midi_clock
from tests.rig.jackserver import serve


@pytest.fixture
def jack64(tmp_path, monkeypatch):
    yield from serve(tmp_path, monkeypatch, period=64)


@pytest.fixture
def jack128(tmp_path, monkeypatch):
    yield from serve(tmp_path, monkeypatch, period=128)


def clean_take(take, tries: int = 3, on_time: bool = False) -> dict:
    """A take without xruns (a cycle missed on a loaded machine drops the probe's clock pulses
    in it, and the engine counts pulses): up to `tries`, else skipped as not measurable.
    `on_time`: and no level change late (one that reached the callback after its frame goes
    at the cycle's first, its MIDI with it; a trigger's rise and fall both late leave no
    pulse at all)."""
    for _ in range(tries):
        f = take()
        if f["xruns"] == 0 and f["backend_xruns"] == 0 and not (on_time and f["late"]):
            return f
    pytest.skip(f"JACK xruns in {tries} takes (last: probe {f['xruns']}, back end "
                f"{f['backend_xruns']}): the machine is too loaded to time")


def check_es9(f: dict, period: int) -> None:
    assert f["transport"] == "jack"
    assert f["rises"] > 20
    # the latency: two periods, the reaction the back end states (at most the server's round
    # trip: capture + playback latency, 3 periods on jackd -d dummy -n 2)
    assert f["latency"] == 2 * period
    # never early; a rise off the latency is a late change (counted by the back end) or one of
    # an xrun's cycles
    assert f["min"] >= 2 * period - 1
    off = f["rises"] - f["within"]
    assert off <= f["late"] + f["xruns"] + f["backend_xruns"], f


@pytest.mark.jack
def test_es9_native_steps_at_edge_plus_two_periods_p64(jack64, tmp_path):
    check_es9(clean_take(lambda: es9_take(jack64.name, tmp_path, 4, 150.0, beats=5.0)), 64)


@pytest.mark.jack
def test_es9_native_steps_at_edge_plus_two_periods_p128_24ppqn(jack128, tmp_path):
    check_es9(clean_take(lambda: es9_take(jack128.name, tmp_path, 24, 200.0, beats=6.0)), 128)


@pytest.mark.jack
def test_es9_mirror_notes_on_the_trigger_frames(jack64, tmp_path):
    """The ES-9's MIDI mirror on JACK (`midi.api = jack`): its port is the ES-9 client's own,
    written by the process callback that writes the CV, so each note-on lands on its trigger's
    rise frame and each note-off on its fall frame, as the probe records both on one client
    (before: a JackMidiOut of its own on a time-to-frame map, 0-1 periods off)."""
    f = clean_take(lambda: es9_take(jack64.name, tmp_path, 4, 150.0, beats=5.0, mirror=True),
                   on_time=True)
    m = f["mirror"]
    assert f["transport"] == "jack"
    assert m["note_ons"] > 10 and m["note_offs"] > 10, m
    assert m["on_exact"] == m["note_ons"], m
    assert m["off_exact"] == m["note_offs"], m
    assert m["note_ons"] == m["rises"], m  # one note a rise


@pytest.mark.jack
@pytest.mark.timing
def test_midi_input_keeps_time_through_active_sensing_and_sysex(jack128, tmp_path):
    """A keyboard's Active Sensing (every 300 ms) and SysEx (one without F7) between 24-PPQN
    clock ticks (`midi.api=jack`: the back end's own JACK client): every tick arrives, stamped
    on its frame (rtmidi lost an ignored message's time delta with it, 33 ms a second, and
    joined what followed a SysEx without F7 into it)."""
    from grooverack.backends.midi import MidiBackend
    from grooverack.config import load_settings
    from grooverack.runtime.serve import make_engine

    clock, ticks = midi_clock(120.0, 8.0, SR // 10)
    noise = [(f, b"\xfe") for f in range(SR // 5, int(ticks[-1]), int(0.3 * SR))]
    noise += [(f + 7, bytes((0xF0, 0x7D, 1, 2, 3, 0xF7)))
              for f in range(SR // 4, int(ticks[-1]), SR // 2)]
    noise.append((int(ticks[40]) + 5, bytes((0xF0, 0x7D, 9, 9))))  # no F7
    events = sorted(clock + noise, key=lambda e: e[0])
    settings = load_settings(overrides=["midi.api=jack", "clock.source=midi", "tempo=120"])
    engine = make_engine(settings, threaded=True)
    backend = MidiBackend(engine, settings)
    stamps: list[float] = []
    handle = backend.input.handle

    def record(t: float, msg: bytes) -> None:  # the stamps the engine is given
        if msg == b"\xf8":
            stamps.append(t)
        handle(t, msg)

    backend.input.handle = record  # type: ignore[method-assign]
    probe = None
    try:
        backend.open_ports()
        probe = MidiProbe(jack128.name, events, int(ticks[-1]) + SR // 4, tmp_path,
                          to="grooverack in", from_="grooverack out")
        backend.start()
        probe.go()
        probe.result()
    finally:
        backend.stop()
        engine.close()
        if probe is not None:
            probe.close()
    assert len(stamps) >= len(ticks)  # none lost
    written = np.array([f for f, d in probe.sent if d == b"\xf8"])  # (an xrun moves some)
    sent = (written - written[0]) / SR
    got = np.asarray(stamps) - stamps[0]
    # on their frames, through the loop's frame -> time.monotonic() offset (a least-delay
    # estimate that settles within the first ticks): no drift (rtmidi's was 33 ms a second)
    n = min(len(got), len(sent))
    assert np.abs(got[:n] - sent[:n]).max() < 0.005
