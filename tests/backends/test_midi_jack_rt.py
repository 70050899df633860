"""MIDI over JACK, the step table's real-time path (issue 34 item 4), timed by the independent
probe of tests/rig/jackprobe.py (a JACK client in a child process plays Start + 24-PPQN clock
and records what `grooverack out` sends, each event at its frame).

A step that waits for a clock tick is written by the input's process callback when that tick is
read, at the tick's own frame: the probe's recorder sees it there when it is a client of its own
(`chain`: clock -> grooverack -> recorder), one period later when the clock's own client records
(a loop: JACK runs one of its clients first, so an answer comes a cycle later). The checks
without `timing` are on frames and steps (logic: which notes, on which step, at which frame);
how many of the steps the loop hands over in time depends on the machine's load, and is
checked under `timing`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.rig.jackprobe import SR, MidiProbe, midi_clock, note_lengths
from tests.rig.jackserver import serve


@pytest.fixture
def jack64(tmp_path, monkeypatch):
    yield from serve(tmp_path, monkeypatch, period=64)


@pytest.fixture
def jack128(tmp_path, monkeypatch):
    yield from serve(tmp_path, monkeypatch, period=128)


def take(server, tmp_path, bpm: float, beats: float, name: str = "rtprobe",
         chain: bool = False, extra: tuple[str, ...] = ()) -> dict:
    """One take of the MIDI back end (`midi.api=jack`, `clock.source=midi`) on the probe's clock:
    what the probe sent and received (frames from its start), what the back end played and
    which notes its step table placed."""
    from grooverack.backends.midi import MidiBackend
    from grooverack.config import load_settings
    from grooverack.runtime.serve import make_engine

    lead = int(0.3 * SR)
    events, ticks = midi_clock(bpm, beats, lead)
    settings = load_settings(overrides=[
        "midi.api=jack", "clock.source=midi", "midi.profile=poly2", f"tempo={bpm}",
        "quantize=1.0", "density=1.0", "uncertainty=0.0", "follow=0.0", "generation.seed=1",
        *extra])
    engine = make_engine(settings, threaded=True)
    backend = MidiBackend(engine, settings)
    probe = None
    try:
        backend.open_ports()
        probe = MidiProbe(server.name, events, int(ticks[-1]) + SR // 4, tmp_path,
                          to="grooverack in", from_="grooverack out", name=name, chain=chain)
        backend.start()
        probe.go()
        received, xruns = probe.result()
    finally:
        backend.stop()
        engine.close()
        if probe is not None:
            probe.close()
    sent_ticks = np.array([f for f, d in probe.sent if d == b"\xf8"])
    return {"received": received, "xruns": xruns, "ticks": ticks, "sent_ticks": sent_ticks,
            "placed": list(backend.output.placed), "played": list(backend.played),
            "latency": 0 if chain else server.period, "pattern_rows": set(
                int(r) for r in np.flatnonzero(engine.pattern.hits.any(axis=1)))}


def check_frames(r: dict) -> int:
    """Every note the step table placed reached the probe at its tick's frame + the topology's
    latency (`take`); without xruns each on its own step (step k on tick 6k), and every note-on
    the probe received on a step of the pattern, once. Returns how many notes the table placed.
    A missed cycle moves what was in it, and the probe writes the ticks it held up together (the
    engine takes one of a bunch: its steps then sit a tick later): with xruns, one step's notes
    per xrun may be elsewhere and the steps are not checked."""
    latency, sent_ticks, exact = r["latency"], r["sent_ticks"], r["xruns"] == 0
    got = Counter((f, d) for f, d in r["received"])
    wrong = set()
    for tick, _frame, step, data in r["placed"]:
        if exact:
            assert (tick - 1) % 6 == 0 and (tick - 1) // 6 % 32 == step, (tick, step)
        want = (int(sent_ticks[tick - 1]) + latency, data)
        if got[want]:
            got[want] -= 1
        else:
            wrong.add(tick)
    assert len(wrong) <= r["xruns"], (sorted(wrong), r["xruns"])
    if exact:
        steps = r["ticks"][::6]
        seen: Counter = Counter()
        for f, d in r["received"]:
            if d[0] & 0xF0 == 0x90 and d[2]:
                k = int(np.argmin(np.abs(steps - f)))
                seen[(k, d[1])] += 1
                assert k % 32 in r["pattern_rows"], (k, sorted(r["pattern_rows"]))
        assert max(seen.values()) == 1, seen.most_common(3)
    return len(r["placed"])


def checked_take(server, tmp_path, bpm: float, beats: float, **kw) -> bool:
    """`take` up to three times, until one without an xrun, and `check_frames` it. One missed
    cycle can move the probe's clock phase for the rest of a take (every later tick then a few
    frames from where it was sent), which says nothing about the back end: a take with xruns
    is still checked (its bound eased by the xruns) and skipped only where that check fails.
    True when the table placed notes (or xruns may have kept it from placing any)."""
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        r = take(server, tmp_path / str(attempt), bpm, beats, **kw)
        if r["xruns"] == 0:
            return check_frames(r) > 0
    try:
        return check_frames(r) > 0 or r["xruns"] > 0
    except AssertionError as exc:
        pytest.skip(f"JACK xruns in 3 takes ({r['xruns']} in the last) moved the clock: {exc}")


@pytest.mark.jack
def test_step_table_notes_at_the_ticks_frame_p64_chain(jack64, tmp_path):
    assert checked_take(jack64, tmp_path, 300.0, 8.0, chain=True)


@pytest.mark.jack
def test_step_table_notes_a_period_later_in_a_loop_p128(jack128, tmp_path):
    assert checked_take(jack128, tmp_path, 120.0, 6.0)


@pytest.mark.jack
def test_step_0_after_a_start_in_the_same_cycle_at_the_first_ticks_frame(jack64, tmp_path):
    """The probe's Start and its first tick one frame apart, in one JACK cycle (the engine loop
    cannot take the Start before the tick is read): step 0's notes are written by the input's
    process callback from the step table's guess of step 0 after a Start (`StepTable.start`), at
    that tick's frame (chain: 0 frames), each once (the engine loop sends none again). Before,
    step 0 went the loop's way: 76-128 frames late, none of it placed by the table. Frames only:
    the table is handed over in the probe's 0.3 s lead; a take whose first cycles an xrun moved
    is retried."""
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        r = take(jack64, tmp_path / str(attempt), 120.0, 2.0, chain=True)
        if r["xruns"] == 0:
            break
    assert 0 in r["pattern_rows"], r["pattern_rows"]  # (generation.seed=1: a hit on step 0)
    first = [(step, data) for tick, _f, step, data in r["placed"] if tick == 1]
    assert first and all(step == 0 for step, _ in first), r["placed"][:4]
    at = int(r["sent_ticks"][0])
    step0 = sorted(d for f, d in r["received"]
                   if abs(f - at) < 24 * 48 and d[0] & 0xF0 == 0x90 and d[2])  # (step 0's)
    if r["xruns"] == 0:
        assert sorted(d for f, d in r["received"] if f == at and d[0] & 0xF0 == 0x90) \
            == sorted(d for _, d in first) == step0, (at, r["received"][:6])
    check_frames(r)


@pytest.mark.jack
@pytest.mark.parametrize("period,bpm,chain", ((64, 300.0, True), (128, 120.0, False)))
def test_note_offs_and_forwarded_clock_at_their_frames(tmp_path, monkeypatch, period, bpm,
                                                       chain):
    """Each note-off (issue 34 item 4) leaves at its note-on's frame + the trigger's length in
    frames (7 ms: 336 frames, not a whole number of periods), as the probe recorded them: the
    step table's notes (the note-off written by the process callback with the note-on) and the
    engine loop's (the first step after Start: its length handed over with the note-on). Before,
    the engine loop sent each note-off on its own, placed from JACK's frame estimate at the
    sender's wake-up (lengths off by up to a period). Frames only, no wall-clock bound: a cycle an
    xrun skipped moves what was in it to the next cycle's first frame (one note per xrun).
    Also MIDI clock forwarded at 24 PPQN: each at its incoming tick's frame (the step table)."""
    for attempt in range(3):  # a take without xruns, where one can be had
        (tmp_path / str(attempt)).mkdir()
        gen = serve(tmp_path / str(attempt), monkeypatch, period=period)
        server = next(gen)
        try:
            r = take(server, tmp_path / str(attempt), bpm, 4.0, chain=chain,
                     extra=("outputs.trigger_ms=7.0", "midi.clock_out=true",
                            "outputs.clock_ppqn=24"))
        finally:
            gen.close()
        if r["xruns"] == 0:
            break
    lengths, hanging = note_lengths(r["received"])
    assert len(lengths) >= 8, r["received"][:20]
    assert hanging == 0
    exact = float(np.mean(np.asarray(lengths) == 336))
    assert exact >= (1.0 if r["xruns"] == 0 else 0.5), \
        (sorted(Counter(lengths).items()), r["xruns"])
    # MIDI clock forwarded (24 PPQN out): written by the step table at the incoming tick's frame
    # (+ the topology's latency); the first goes with the Start the loop sends. Before: each one
    # from the loop, a period or more late (none on a tick's frame). How many tables the loop
    # hands over in time is the load's (`timing`): here at least half
    out = [f for f, d in r["received"] if d == b"\xf8"][1:]
    on_tick = np.isin(np.asarray(out) - r["latency"], r["sent_ticks"])
    assert len(out) >= 24 * 3, len(out)
    assert np.mean(on_tick) >= 0.5, (np.asarray(out)[~on_tick][:10], r["xruns"])


def offsets_ms(r: dict) -> np.ndarray:
    """Each note-on after the first beat against the nearest step tick as the probe wrote it,
    ms (the probe's frames only, as `jackprobe.midi_figures`)."""
    ticks = r["sent_ticks"] if len(r["sent_ticks"]) == len(r["ticks"]) else r["ticks"]
    steps = ticks[::6]
    lock = ticks[24]
    out = [f - steps[int(np.argmin(np.abs(steps - f)))] for f, d in r["received"]
           if d[0] & 0xF0 == 0x90 and d[2] and f >= lock]
    return np.asarray(out, dtype=float) / SR * 1e3


@pytest.mark.jack
@pytest.mark.timing
@pytest.mark.parametrize("period,bpm", ((64, 300.0), (128, 40.0)))
def test_notes_on_the_clock_grid(tmp_path, monkeypatch, period, bpm):
    """The target (issue 34): note-ons p99 within 1 ms of the incoming clock's step ticks, timed
    by the probe's recorder (`chain`). Robust for a loaded shared box: on a take without xruns
    nine notes in ten exactly on their tick's frame, none as late as a clock tick; a take with
    xruns is retried, then skipped as not measurable."""
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        gen = serve(tmp_path / str(attempt), monkeypatch, period=period)
        server = next(gen)
        try:
            r = take(server, tmp_path / str(attempt), bpm, 6.0 if bpm < 100 else 10.0,
                     chain=True)
        finally:
            gen.close()
        if r["xruns"] == 0:
            break
    else:
        pytest.skip(f"JACK xruns in 3 takes ({r['xruns']} in the last): too loaded to time")
    off = offsets_ms(r)
    assert off.size > 8
    assert np.mean(off == 0.0) >= 0.9, sorted(Counter(np.round(off, 3)).items())
    assert np.abs(off).max() < 60_000.0 / bpm / 24, off


@pytest.mark.jack
@pytest.mark.timing
def test_clock_out_as_master_keeps_its_spacing(tmp_path, monkeypatch):
    """The module as the clock master (internal clock, `midi.clock_out`): each MIDI clock goes at
    the frame of its due time on a steady map of time to JACK's frames (`JackMidiOut._map`), so
    the probe records them evenly spaced: 98 % of the intervals within a frame of the tempo's
    (before, from one reading of JACK's frame estimate at each send: 91-94 % with 5-8 xruns,
    69-85 % with 18-27; after 99-100 % with 20-30).
    Each xrun (the dummy server's frames fall behind the wall clock) moves an interval or two: of
    three takes the one with the fewest is checked, skipped above 20 (too loaded to time)."""
    from tests.rig.jackprobe import midi_take

    takes = []
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        gen = serve(tmp_path / str(attempt), monkeypatch, period=64)
        server = next(gen)
        try:
            takes.append(midi_take(server.name, tmp_path / str(attempt), 300.0, beats=10.0,
                                   chain=True, master=True, extra=("midi.clock_out=true",)))
        finally:
            gen.close()
        if takes[-1]["xruns"] == 0:
            break
    f = min(takes, key=lambda t: t["xruns"])
    if f["xruns"] > 20:
        pytest.skip(f"JACK xruns in 3 takes ({f['xruns']} in the best): too loaded to time")
    assert f["clock_out"] > 24 * 6, f
    assert f["interval_exact"] >= 0.98, f


@pytest.mark.jack
def test_a_retrigger_ends_the_old_note_never_the_new_one(jack64):
    """`JackMidiOut` on a real server, recorded by a client of the test's own: notes written as a
    step table writes them (each with its note-off `length` frames on). A note-off still to come
    of a note that starts again is written just before the new note-on (the old note ends, the
    new one keeps its length); the others at their note-on's frame + length. Frames only."""
    import time

    from grooverack.backends.midi.jackport import JackMidiOut

    out = JackMidiOut(name="retrig")
    out.open_virtual_port("out")
    rec = jack64.client("retrig-rec")
    port = rec.midi_inports.register("in")
    got: list[tuple[int, bytes]] = []

    @rec.set_process_callback
    def _record(frames: int) -> None:
        for offset, data in port.incoming_midi_events():
            got.append((rec.last_frame_time + offset, bytes(data)))

    rec.activate()
    try:
        rec.connect("retrig:out", "retrig-rec:in")
        on, off = b"\x90\x24\x64", b"\x80\x24\x00"
        other_on, other_off = b"\x90\x26\x64", b"\x80\x26\x00"
        f = out.client.frame_time + 4800
        out.write_later(f, ((0, 1, on), (0, 2, other_on)), None, ((1000, off), (700, other_off)))
        out.write_later(f + 990, ((1, 1, on),), None, ((1000, off),))  # 10 frames before the end
        out.write_later(f + 3000, ((2, 1, on),), None, ((240, off),))
        time.sleep(0.2)
    finally:
        rec.deactivate()
        rec.close()
        out.close_port()
        out.delete()
    n = jack64.period  # (write_later without an order: one period on)
    rel = [(fr - f - n, d) for fr, d in got]
    assert sorted(rel) == [(0, on), (0, other_on), (700, other_off), (990, off), (990, on),
                           (1990, off), (3000, on), (3240, off)], rel
    assert rel.index((990, off)) < rel.index((990, on))  # at one frame: the old note ends first
