"""The MIDI step table (issue 34 item 4), as logic: what `Engine.on_next_pulse` says the next MIDI
clock tick releases is exactly what the tick releases, at the tick's own time; `MidiOutput`
turns it into the note-ons it would send and sends none of them twice; `count_clock` counts
ticks and transport messages on both sides of the hand-over by one rule. Virtual time, the
shipped model (no JACK: `test_midi_jack_rt.py` checks the frames on a real server)."""

from __future__ import annotations

import pytest
from grooverack.backends.midi.output import MidiOutput, MidiSender
from grooverack.backends.midi.steptable import StepTable, count_clock
from grooverack.boards.midi import midi_options
from grooverack.config import load_settings
from grooverack.runtime.serve import make_engine


def settings(bpm: float, *extra: str):
    return load_settings(overrides=[
        "clock.source=midi", f"tempo={bpm}", "quantize=1.0", "density=1.0", "uncertainty=0.0",
        "follow=0.0", "generation.seed=3", "midi.profile=poly2", *extra])


def ticks_through(engine, bpm: float, beats: float, lookahead: float = 0.02,
                  every: list | None = None):
    """Start, then a steady 24-PPQN clock; per tick: (tick time, the table before it, what
    advance released at the tick's time); `every` gets every event released."""
    every = [] if every is None else every
    tick = 60.0 / bpm / 24
    engine.start(0.0, midi=True)
    out = []
    for k in range(int(beats * 24)):
        t = 0.001 + k * tick
        table = engine.on_next_pulse()
        engine.midi_clock(t)
        released = engine.advance(t + lookahead)
        out.append((t, table, [e for e in released if abs(e.time - t) < 1e-9]))
        released += engine.advance(t + tick - 1e-4)  # the loop between ticks: lookahead
        every.extend(released)
    return out


@pytest.mark.parametrize("bpm", (40.0, 120.0, 300.0))
def test_the_table_is_what_the_tick_releases(bpm):
    engine = make_engine(settings(bpm), threaded=False)
    try:
        takes = ticks_through(engine, bpm, 9.0)
    finally:
        engine.close()
    steps_played = 0
    for k, (_t, table, at_tick) in enumerate(takes):
        rises = [e for e in at_tick if e.kind in ("trigger", "velocity") and
                 (e.kind == "velocity" or e.value > 0.5)]
        if k == 0:
            continue  # Start's first tick: step 0 committed by it, nothing was held yet
        clocks = [e for e in table if e.kind == "clock"]  # the clock-out pulses (4 PPQN)
        assert [e.step for e in clocks] == [
            e.step for e in at_tick if e.kind == "clock" and e.value > 0.5], k
        table = [e for e in table if e.kind != "clock"]
        assert [(e.kind, e.output, e.step, e.voice) for e in table] == \
               [(e.kind, e.output, e.step, e.voice) for e in rises], k
        for held, played in zip(table, rises, strict=True):
            assert held.value == played.value  # the same velocities
        if k % 6:
            assert not table  # only a step's own tick releases notes (quantize = 1)
        else:
            assert all(e.step == (k // 6) % 32 for e in table)
            steps_played += bool(table)
    assert steps_played > 20  # the seeded pattern at density 1 plays most steps


@pytest.mark.parametrize("bpm", (40.0, 120.0, 300.0))
def test_the_table_holds_every_clock_out_pulse_at_24_ppqn(bpm):
    """Clock out at 24 PPQN on a MIDI clock (forwarded): every tick releases one pulse, and the
    table before it says so, the one on the position that commits the next step (half a step
    before it, pushed by that commit when the tick comes) included."""
    engine = make_engine(settings(bpm, "outputs.clock_ppqn=24"), threaded=False)
    try:
        takes = ticks_through(engine, bpm, 6.0)
    finally:
        engine.close()
    for k, (_t, table, at_tick) in enumerate(takes[1:], start=1):
        played = [e for e in at_tick if e.kind == "clock" and e.value > 0.5]
        assert len(played) == 1, k
        assert [e.kind for e in table if e.kind == "clock"] == ["clock"], k


@pytest.mark.parametrize("bpm", (40.0, 300.0))
def test_the_first_step_after_a_start_is_in_the_table(bpm):
    """After a MIDI Start the engine waits for the first clock, which plays step 0: once the
    loop has taken the Start (and committed step 0), the table is step 0's, and the first tick
    releases exactly that at its own time."""
    engine = make_engine(settings(bpm), threaded=False)
    try:
        for t0 in (1.0, 9.0):  # a Start while stopped, and one while playing (a restart)
            engine.start(t0, midi=True)
            engine.advance(t0 + 0.02)  # the loop's pass after it: step 0 committed
            table = engine.on_next_pulse()
            tick = t0 + 0.005
            engine.midi_clock(tick)
            released = [e for e in engine.advance(tick + 0.02) if e.time == tick
                        and e.kind != "reset" and (e.kind == "velocity" or e.value > 0.5)]
            assert any(e.kind == "trigger" for e in table)
            assert [(e.kind, e.output, e.step, e.value) for e in table] == \
                   [(e.kind, e.output, e.step, e.value) for e in released]
            assert all(e.step == 0 for e in table)
            for k in range(1, 24 * 4):  # play on for four beats
                engine.midi_clock(tick + k * 60.0 / bpm / 24)
                engine.advance(tick + k * 60.0 / bpm / 24 + 0.02)
    finally:
        engine.close()


@pytest.mark.parametrize("timing", (("swing=62",), ("quantize=0.0", "follow=1.0")))
def test_offsets_and_swing_stay_with_the_loop(timing):
    """Micro-timing: a hit off its tick (swing, quantize < 1) is never in the table; it plays at
    its own time through the loop, as before."""
    engine = make_engine(settings(120.0, *timing), threaded=False)
    every: list = []
    try:
        takes = ticks_through(engine, 120.0, 9.0, every=every)
    finally:
        engine.close()
    tick_times = [t for t, _, _ in takes]
    off_tick = [e for e in every if e.kind == "trigger" and e.value > 0.5
                and min(abs(e.time - t) for t in tick_times) > 1e-6]
    assert len(off_tick) > 10  # the swung steps at least
    tabled = {(e.step, e.output) for _, table, _ in takes for e in table}
    assert len(tabled) > 5 or "quantize=0.0" in timing  # (the model's offsets: few on a tick)
    for t, table, at_tick in takes[1:]:
        table = [e for e in table if e.kind != "clock"]
        for e in table:
            assert e.time == pytest.approx(t, abs=0.05)  # (a prediction of this tick)
            assert e.step % 2 == 0  # swung odd steps sit between ticks
        assert [e.output for e in table if e.kind == "trigger"] == \
               [e.output for e in at_tick if e.kind == "trigger" and e.value > 0.5]


def test_output_maps_the_table_and_sends_written_notes_once():
    s = settings(120.0)
    engine = make_engine(s, threaded=False)
    sender = MidiSender(direct=True)
    out = MidiOutput(midi_options(s), sender)
    try:
        engine.start(0.0, midi=True)
        tick = 60.0 / 120.0 / 24
        t, k, written = 0.001, 0, 0
        while written < 8:
            notes = out.step_table(engine.on_next_pulse())
            engine.midi_clock(t)
            if notes and k:
                out.wrote(k + 1, 1000 * k, notes)  # as the port's callback would have
            for event in engine.advance(t + 0.02):
                out.play(event)
            out.forget_written(k + 1)
            if notes and k:
                written += len(notes)
                assert sender.placed_count == written
                assert not out.written
            t += tick
            k += 1
        queued = [d for _, d in sender.queued() if d[0] & 0xF0 == 0x90]
        placed = [d for _, _, d in sender.sent if d[0] & 0xF0 == 0x90]
        assert len(placed) == written and not set(queued) & set(placed[-1:])
    finally:
        engine.close()


def test_clock_counts_and_a_table_void_after_transport():
    counts = [0, 0, 0]
    for msg in (b"\xfa", b"\xf8", b"\xf8", b"\xfe", bytes((0xF2, 16, 0)), b"\xfb", b"\xf8",
                bytes((0x90, 36, 100)), b"\xfc", bytes((0xB0, 1, 64))):
        count_clock(msg, counts)
    assert counts == [3, 4, 2]  # (ticks, transport, other: the note and the CC)
    table = StepTable(4, 4, ((0, 1, bytes((0x90, 36, 100))),), out=None)  # type: ignore[arg-type]
    assert (table.tick, table.transport) == (4, 4)


def test_a_tick_the_engine_takes_as_noise_sends_no_note_twice():
    """After an xrun a late tick and the next one come close together: the engine takes the
    second as noise and plays its step a tick later, while the port's callback already wrote it
    on that second tick. The step leaves once: no table writes it again, and the loop sends it
    no more (the written notes wait WRITTEN_TICKS ticks for the engine's rise)."""
    from grooverack.backends.midi.backend import WRITTEN_TICKS

    s = settings(120.0)
    engine = make_engine(s, threaded=False)
    sender = MidiSender(direct=True)
    out = MidiOutput(midi_options(s), sender)
    tick = 60.0 / 120.0 / 24
    try:
        engine.start(0.0, midi=True)
        late = 6 * 8 - 1  # the tick before step 8's is 2 ms before step 8's
        fired = None
        for k in range(6 * 12):
            t = 0.001 + k * tick + (0.0185 if k == late else 0.0)
            notes = out.step_table(engine.on_next_pulse())
            if k == late + 1:
                assert notes and all(step == 8 for step, _, _ in notes)
                fired = notes
                out.wrote(k + 1, 4800 * k, notes)  # the callback on that tick
            elif fired and k < late + 6:
                assert not notes  # the step waits, written: no table writes it again
            engine.midi_clock(t)
            for event in engine.advance(t + 0.02):
                out.play(event)
            out.forget_written(k + 1 - WRITTEN_TICKS)
        assert fired
        ons = [(due, d) for due, _, d in sender.sent if d[0] & 0xF0 == 0x90]
        ons += [(due, d) for due, d in sender.queued() if d[0] & 0xF0 == 0x90]
        step8 = 0.001 + 6 * 8 * tick
        near = [d for due, d in ons if step8 - 0.001 <= due < step8 + tick + 0.001]
        assert sorted(near) == sorted(d for _, _, d in fired)  # once each, none twice
        assert sender.placed_count == len(fired)
    finally:
        engine.close()


def _rises(events) -> list:
    return [(e.kind, e.output, e.step, e.voice, round(e.value, 6)) for e in events
            if e.kind == "velocity" or (e.kind == "trigger" and e.value > 0.5)]


@pytest.mark.parametrize("when", (0.0, 0.5, 3.3))  # before any Start, mid-loop, mid-step
def test_the_start_guess_is_what_the_first_tick_after_a_start_releases(when):
    """`Engine.on_start_pulse` before a MIDI Start is what the first tick after the Start
    releases (step 0 of the pattern playing: outputs, voices, velocities); None while a pattern
    waits in the buffer (taken at step 0's commit: not known ahead)."""
    bpm = 120.0
    engine = make_engine(settings(bpm), threaded=False)
    try:
        if when:
            ticks_through(engine, bpm, when * 4)
        t = 10.0
        engine.advance(t)
        guess = engine.on_start_pulse()
        assert guess is not None
        engine.start(t, midi=True)
        engine.midi_clock(t + 0.001)
        released = [e for e in engine.advance(t + 0.05) if abs(e.time - t - 0.001) < 1e-9]
        assert _rises(guess) == _rises(released) and _rises(guess), (guess, released)
        engine.player.buffer.offer(engine.pattern)
        assert engine.on_start_pulse() is None
    finally:
        engine.close()
