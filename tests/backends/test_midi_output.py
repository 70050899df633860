"""MIDI back end without a MIDI system: player events -> timed messages, bytes -> engine calls."""

from __future__ import annotations

import pytest
from grooverack.backends.midi import MidiInputHandler, MidiOutput, MidiSender
from grooverack.boards.midi import midi_options
from grooverack.config import load_settings
from grooverack.engine.player import OutputEvent
from grooverack.runtime.serve import make_engine


def queued(sender: MidiSender) -> list[tuple[float, bytes]]:
    return [(round(t, 6), data) for t, data in sender.queued()]


def output(*overrides: str, ppqn: int = 4) -> tuple[MidiOutput, MidiSender]:
    sender = MidiSender()  # not started: messages stay queued for inspection
    return MidiOutput(midi_options(load_settings(overrides=list(overrides))), sender, ppqn), sender


def test_poly2_notes_velocity_and_retrigger():
    out, sender = output("midi.profile=poly2", "midi.channel=3")
    out.play(OutputEvent(1.0, 3, "velocity", 0.5, 0, 2))
    out.play(OutputEvent(1.0, 3, "trigger", 1.0, 0, 2))
    out.play(OutputEvent(1.005, 3, "trigger", 0.0, 0, 2))
    out.play(OutputEvent(2.0, 3, "trigger", 1.0, 8, 2))  # no velocity event: the last one holds
    out.play(OutputEvent(2.001, 3, "trigger", 1.0, 8, 2))  # a rise while high ends the note first
    assert queued(sender) == [
        (1.0, bytes((0x92, 38, 64))), (1.005, bytes((0x82, 38, 0))),
        (2.0, bytes((0x92, 38, 64))), (2.001, bytes((0x82, 38, 0))),
        (2.001, bytes((0x92, 38, 64)))]
    out.stop(3.0)  # no note left hanging: its note-off, then all notes off (CC 123) on channel 3
    assert queued(sender)[-2:] == [(3.0, bytes((0x82, 38, 0))), (3.0, bytes((0xB2, 123, 0)))]


def test_stop_drops_note_ons_past_it_and_sends_everything_off():
    out, sender = output("midi.profile=poly2", "midi.clock_out=true")
    out.play(OutputEvent(0.0, 0, "clock", 1.0, 0, -1))
    out.play(OutputEvent(1.0, 1, "trigger", 1.0, 0, 0))  # sounding at the stop
    out.play(OutputEvent(1.02, 2, "trigger", 1.0, 1, 1))  # queued ahead, past the stop
    out.stop(1.01)
    q = queued(sender)
    assert (1.02, bytes((0x90, 37, 100))) not in q  # would sound after everything went off
    assert q[-4:] == [(1.01, bytes((0x80, 36, 0))), (1.01, bytes((0x80, 37, 0))),
                      (1.01, bytes((0xB0, 123, 0))), (1.01, b"\xfc")]


@pytest.mark.timing  # a wall-clock bound: `pytest -m timing`
def test_sender_sends_at_the_time_and_flush_sends_the_rest_now():
    import time

    sender = MidiSender()
    got = []
    sender.port = type("Port", (), {"send_message": lambda self, d: got.append(bytes(d))})()
    sender.start()
    now = time.monotonic()
    sender.schedule(now + 0.01, b"\x90\x24\x40")
    sender.schedule(now + 30.0, b"\x80\x24\x00")
    deadline = now + 5.0
    while not sender.sent and time.monotonic() < deadline:
        time.sleep(0.001)
    sender.flush()
    sender.stop()
    assert got == [b"\x90\x24\x40", b"\x80\x24\x00"]
    (due, sent, _), = sender.sent
    assert due == now + 0.01 and 0.0 <= sent - due < 0.05
    assert [d for _, _, d in sender.flushed] == [b"\x80\x24\x00"]
    assert sender.thread is None


def test_gm_uses_the_voice_note_on_channel_10():
    out, sender = output("midi.profile=gm")
    out.play(OutputEvent(0.5, 8, "velocity", 1.0, 0, 8))
    out.play(OutputEvent(0.5, 8, "trigger", 1.0, 0, 8))  # ride shares output 8: its own note
    assert queued(sender) == [(0.5, bytes((0x99, 51, 127)))]


def test_clock_out_24_ppqn_from_the_player_clock_and_stop():
    out, sender = output("midi.clock_out=true", ppqn=4)
    for k in range(3):
        out.play(OutputEvent(0.125 * k, 0, "clock", 1.0, k, -1))
        out.play(OutputEvent(0.125 * k + 0.005, 0, "clock", 0.0, k, -1))
    q = queued(sender)
    assert q[0] == (0.0, b"\xfa") and [d for _, d in q].count(b"\xfa") == 1
    ticks = [t for t, d in q if d == b"\xf8"]
    # one tick for the first pulse, then 6 per pulse spread over the last interval
    assert ticks == [0.0] + [round(0.125 + k * 0.125 / 6, 6) for k in range(12)]
    out.stop(0.3)  # ticks predicted past the stop are dropped; Stop is sent
    q = queued(sender)
    assert max(t for t, d in q if d == b"\xf8") <= 0.3 and q[-1] == (0.3, b"\xfc")


def test_byte_stream_to_engine_calls():
    settings = load_settings(overrides=["clock.source=midi", "memory=0", "groove_velocity=1.0"])
    engine = make_engine(settings, threaded=False)
    handler = MidiInputHandler(engine, midi_options(settings))
    try:
        t = 0.0
        handler.feed(t, b"\x00\x7f\xfa")  # garbage, then Start
        tick = 60 / 120 / 24
        for i in range(24 * 4):  # one bar of clock at 120 BPM; notes with running status
            t = i * tick
            data = b"\xf8"
            if i % 6 == 0:
                data = (b"\x99\x24" if i == 0 else b"\x24") + bytes((20 + i,)) + data
            handler.feed(t, data)
        engine.advance(t)
        assert handler.counts == {"start": 1, "clock": 96, "note": 16}
        assert abs(engine.clock.bpm - 120) < 0.5
        hits = engine.groove[:, 0].nonzero()[0].tolist()
        assert hits == list(range(16))
        assert engine.groove[5, 1] == pytest.approx((20 + 30) / 127)
        assert handler.parser.dropped == 2
    finally:
        engine.close()


@pytest.mark.parametrize("message", [b"\xfa", b"\xfc", b"\xfb", b"\xf2\x10\x00"])
def test_transport_drops_what_the_old_phase_queued_past_it(message):
    """`auto` plays ahead on the internal clock until MIDI Start comes; step 0 then waits for
    the next clock. Note-ons (and predicted clock ticks) the free-running phase queued past the
    Start, Stop, Continue or Song Position must not sound after it."""
    from grooverack.backends.midi import MidiBackend

    settings = load_settings(overrides=["clock.source=auto", "midi.profile=poly2",
                                        "midi.clock_out=true"])
    engine = make_engine(settings, threaded=False)
    try:
        backend = MidiBackend(engine, settings)  # no ports opened: the sender only queues
        out = backend.output
        out.play(OutputEvent(0.99, 0, "clock", 1.0, 0, -1))
        out.play(OutputEvent(1.0, 0, "clock", 1.0, 1, -1))   # ticks predicted to 1.0 + 5/6 step
        out.play(OutputEvent(1.0, 1, "trigger", 1.0, 0, 0))  # sounding before the message
        out.play(OutputEvent(1.015, 2, "trigger", 1.0, 1, 1))  # queued ahead, past it
        backend.input.feed(1.01, message)
        q = queued(backend.sender)
        assert (1.0, bytes((0x90, 36, 100))) in q            # before it: kept
        assert not [m for t, m in q if t > 1.01 and m[0] & 0xF0 == 0x90]
        assert not [m for t, m in q if t > 1.01 and m == b"\xf8"]
    finally:
        engine.close()
