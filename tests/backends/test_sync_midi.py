"""MIDI back end in time with an incoming MIDI clock, end to end over JACK (tests/rig/sync_midi.py
`measure`): Start puts step 0 on the first tick after it, notes land on the clock's step ticks
within 1 ms + one JACK period, SPP + Continue plays the named step, a tempo jump is followed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.rig.jackserver import jack_server  # noqa: F401  (fixture)
from tests.rig.sync_midi import measure  # noqa: E402

SOURCES = ("auto", "midi")


def bound(r) -> float:
    return 1.0 + r["period_ms"]


def tick_ms(bpm: float) -> float:
    return 60_000.0 / bpm / 24


def on_its_tick(offset_ms: float, r) -> bool:
    """One note on the step's own tick: a note can only be placed once its tick is in, so it is
    never early (1 ms for the two clocks' mapping), and it is not as late as the next tick (the
    old design's error was whole ticks). The 1 ms + one period target is bench_sync.py's, on a
    quiet machine: a loaded shared CI box delayed one such note 6.6 ms."""
    return -1.0 <= offset_ms < tick_ms(r["bpm"])


@pytest.mark.jack
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("bpm", (120.0,))
def test_start_puts_step0_on_first_tick(jack_server, tmp_path, bpm, source):  # noqa: F811
    for take in range(3):
        r = measure(jack_server, tmp_path / str(take), bpm, seconds=1.5, source=source)
        assert 0 in r["pattern_rows"], r["pattern_rows"]  # (seeded: the pattern hits step 0)
        assert r["first_step"] == 0, r
        assert on_its_tick(r["first_offset_ms"], r), r
        assert r["doubles"] == 0


@pytest.mark.jack
@pytest.mark.parametrize("source,bpm", (("auto", 120.0), ("midi", 90.0)))
def test_notes_on_the_clock_grid(jack_server, tmp_path, bpm, source):  # noqa: F811
    r = measure(jack_server, tmp_path, bpm, source=source, line=True)
    off = np.abs([o for s, _, o, _, _ in r["notes"] if s == 0])
    assert r["count"] > 50
    if r["xruns"] > 4:  # every take missed JACK cycles: timing cannot be measured on this box
        pytest.skip(f"{r['xruns']} JACK xruns in the last of {r['takes']} takes: the machine is "
                    "too loaded to measure timing (run on a quiet machine)")
    if r["xruns"] == 0:
        # robust for a shared 2-core CI box (the p99 target, 1 ms + one period, is measured by
        # benchmarks/bench_sync.py on a quiet machine): nine notes in ten within the bound and
        # none as late as a MIDI clock tick (the old design's error was whole ticks)
        assert np.percentile(off, 90) <= bound(r), r
        assert off.max() < tick_ms(bpm), r
    else:  # a busy shared box: a few outliers per xrun
        assert np.sum(off > bound(r)) <= 4 * r["xruns"] + 0.1 * off.size, r
    assert r["doubles"] == 0 or r["xruns"], r


@pytest.mark.jack
@pytest.mark.parametrize("source", SOURCES)
def test_song_position_and_continue(jack_server, tmp_path, source):  # noqa: F811
    r = measure(jack_server, tmp_path, 120.0, seconds=4.0, source=source, spp=16,
                stop_after=3.0)
    rows = r["pattern_rows"]
    want = min(x for x in rows if x >= 16)
    assert r["first_row_after_continue"] == want, r
    assert r["first_step_after_continue"] == want - 16, r
    assert on_its_tick(r["first_offset_after_continue_ms"], r), r


@pytest.mark.jack
@pytest.mark.parametrize("source", SOURCES)
def test_tempo_jump_120_to_90(jack_server, tmp_path, source):  # noqa: F811
    jump = 6.0  # beats
    r = measure(jack_server, tmp_path, 120.0, seconds=7.0, source=source, jump_to=90.0,
                jump_after=jump)
    notes = [x for x in r["notes"] if x[0] == 0]
    late = [o for _, k, o, _, _ in notes if k >= (jump + 2) * 4]
    assert len(late) > 10
    if r["xruns"] == 0:
        # re-locked: the CI-robust bound of test_notes_on_the_clock_grid (a CI take with no
        # xruns had a note 1.5 periods late with only the suite running), none a tick late
        off = np.abs(late)
        assert np.percentile(off, 90) <= bound(r), r
        assert off.max() < tick_ms(90.0), r
        assert r["doubles"] == 0
    steps = {k for _, k, *_ in notes}
    rows = set(r["pattern_rows"])
    want = {k for k in range(min(steps), max(steps) + 1) if k % 32 in rows}
    assert steps == want or r["xruns"], (sorted(want - steps), sorted(steps - want))
