"""The invariants of an engine/player output stream, shared by the player and engine tests."""

from __future__ import annotations


def check_stream(events, ends_low: bool = False) -> None:
    """Sorted; per (kind, output) rises and falls alternate, never a double rise or a fall
    without a rise; a velocity at the same time right before every trigger rise; with
    `ends_low`, nothing is left high at the end."""
    times = [e.time for e in events]
    assert times == sorted(times)
    high: dict[tuple[str, int], float] = {}
    for i, e in enumerate(events):
        if e.kind == "velocity":
            continue
        key = (e.kind, e.output)
        if e.value == 1.0:
            assert key not in high, f"double rise on {key} at {e.time}"
            high[key] = e.time
            if e.kind == "trigger":
                before = [x for x in events[:i] if x.output == e.output and x.kind == "velocity"]
                assert before and before[-1].time == e.time, "velocity must precede its trigger"
        else:
            assert key in high, f"fall without rise on {key} at {e.time}"
            assert e.time >= high.pop(key)
    if ends_low:
        assert not high, f"left high at the end: {high}"
