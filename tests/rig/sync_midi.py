"""MIDI path against an incoming MIDI clock, end to end over JACK: how far each note-on grooverack
sends lands from the step grid of the clock it hears.

A MidiRig (tests/rig/jackserver.py, its own process) sends Start, one frame later the first 0xF8, then
a steady 24-PPQN clock at `bpm` (optionally a note line), into `grooverack in`, and records what
`grooverack out` sends with JACK frames. Step k = the (6k)-th tick after Start (the first tick
after Start is tick 0). For each note-on after Start: signed offset (ms) from the nearest step
tick. Takes with xruns are retried (up to `takes`).

    from tests.rig.sync_midi import measure; measure(jack_server, tmp_path, 120.0, source="auto")
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from grooverack.backends.midi import MidiBackend
from grooverack.config import load_settings
from grooverack.runtime.serve import make_engine

from tests.rig.jackserver import MidiRig

SR = 48000


def clock_script(bpm: float, beats: float, lead: int, *, spp: int | None = None,
                 stop_after: float | None = None, jump_to: float | None = None,
                 jump_after: float | None = None, line: bool = False):
    """events [(frame, bytes)] and the tick frames [(frame, segment)] (segment 0 = after Start,
    1 = after Continue)."""
    ev = [(lead, b"\xfa")]
    ticks = []
    f, tick = float(lead + 1), SR * 60.0 / bpm / 24
    n = 0
    total = int(round(beats * 24))
    while n < total:
        if stop_after is not None and n == int(stop_after * 24):
            break
        if jump_to is not None and n == int(jump_after * 24):
            tick = SR * 60.0 / jump_to / 24
        ev.append((round(f), b"\xf8"))
        ticks.append((round(f), 0))
        if line and n % 6 == 0 and (n // 6) % 4 == 0:
            ev.append((round(f) + 2, bytes((0x99, 36, 100))))
            ev.append((round(f) + 200, bytes((0x89, 36, 0))))
        f += tick
        n += 1
    if stop_after is not None:
        stop = round(f)
        ev.append((stop, b"\xfc"))
        ev.append((stop + SR // 4, bytes((0xF2, spp & 0x7F, spp >> 7))))
        cont = stop + SR // 2
        ev.append((cont, b"\xfb"))
        f = cont + 1.0
        for _ in range(int(round((beats - stop_after) * 24))):
            ev.append((round(f), b"\xf8"))
            ticks.append((round(f), 1))
            f += tick
    return sorted(ev, key=lambda e: e[0]), ticks, int(f) + SR // 4


def _take(server, tmp_path, settings, events, frames, name, rt=False):
    engine = make_engine(settings, threaded=True)
    backend = MidiBackend(engine, settings)
    backend.open_ports()
    rig = MidiRig(server, events, frames, tmp_path, to="grooverack in", from_="grooverack out",
                  name=name)
    try:
        backend.start(rt=rt)  # rt: SCHED_FIFO, as `grooverack run --board midi --rt`
        rig.go()
        result = rig.result()
        pattern = engine.pattern
    finally:
        backend.stop()
        engine.close()
        rig.close()
    return backend, result, pattern


def measure(server, tmp_path, bpm: float, seconds: float | None = None, source: str = "auto",
            *, takes: int = 3, seed: int = 7, line: bool = False, spp: int | None = None,
            stop_after: float | None = None, jump_to: float | None = None,
            jump_after: float | None = None, lead_s: float = 0.3, rt: bool = False,
            overrides: tuple[str, ...] = ()) -> dict:
    """One clean (xrun-free, if any of `takes` is) take; figures in ms. `seconds` default: 20
    beats (16 after 4 beats of lock) at `bpm`."""
    beats = (20.0 if seconds is None else seconds * bpm / 60.0)
    settings = load_settings(overrides=[
        "midi.api=jack", f"clock.source={source}", "quantize=1.0", "density=1.0", "follow=0",
        "uncertainty=0", f"generation.seed={seed}", "midi.profile=poly2", "tempo=120",
        *overrides])
    lead = int(lead_s * SR)
    events, ticks, frames = clock_script(bpm, beats, lead, spp=spp, stop_after=stop_after,
                                         jump_to=jump_to, jump_after=jump_after, line=line)
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(takes):
        backend, result, pattern = _take(server, tmp_path, settings, events, frames,
                                         f"syncrig{i}", rt)
        if result["xruns"] == 0:
            break
    rate = result["rate"]
    tick_f = np.array([f for f, _ in ticks], dtype=float)
    seg = np.array([s for _, s in ticks])
    ons = [(fr, bytes.fromhex(h)) for fr, _, h, _ in result["received"]
           if bytes.fromhex(h)[0] & 0xF0 == 0x90 and fr >= lead]
    out = {"bpm": bpm, "source": source, "period": server.period, "rate": rate,
           "period_ms": server.period / rate * 1e3, "xruns": result["xruns"], "takes": i + 1}
    rows = sorted({int(r) for r in np.flatnonzero(pattern.hits.any(axis=1))})
    out["pattern_rows"] = rows
    details = []
    for segment in (0, 1):
        st = tick_f[seg == segment][::6]   # step ticks of this segment
        if not len(st):
            continue
        lo = st[0] - (lead if segment == 0 else 0.3 * SR)
        hi = st[-1] + 6 * (st[-1] - st[-2]) / 6 if len(st) > 1 else st[0]
        for fr, d in ons:
            if not (lo <= fr <= hi + SR * 0.05) or (segment == 0 and (seg == 1).any()
                                                    and fr > tick_f[seg == 1][0] - 0.3 * SR):
                continue
            k = int(np.argmin(np.abs(st - fr)))
            details.append((segment, k, (fr - st[k]) / rate * 1e3, d[1], fr))
    off = np.array([o for s, _, o, _, _ in details if s == 0]) if details else np.zeros(0)
    out["count"] = int(off.size)
    if off.size:
        out.update(median_ms=float(np.median(off)), p99_abs_ms=float(np.quantile(np.abs(off), .99)),
                   max_ms=float(off.max()), min_ms=float(off.min()),
                   max_abs_ms=float(np.abs(off).max()))
    first = [x for x in details if x[0] == 0]
    if first:
        out["first_step"], out["first_offset_ms"] = first[0][1], first[0][2]
    after = [x for x in details if x[0] == 1]
    if after:
        out["first_step_after_continue"] = after[0][1]
        out["first_offset_after_continue_ms"] = after[0][2]
    cont_t = None
    if (seg == 1).any():
        cont_t = result["start"] + (tick_f[seg == 1][0] - 1) / rate
        rises = [e for e in backend.played if e.kind == "trigger" and e.value > 0.5
                 and e.time > cont_t - 0.01]
        out["first_row_after_continue"] = rises[0].step if rises else None
    out["notes"] = details   # (segment, step k, offset ms, note, frame)
    out["steps_with_notes"] = sorted({(s, k) for s, k, *_ in details})
    out["doubles"] = len(details) - len({(s, k, n) for s, k, _, n, _ in details})
    out["played_rows"] = [e.step for e in backend.played if e.kind == "trigger" and e.value > .5]
    return out


if __name__ == "__main__":
    import json
    import os
    import tempfile

    from tests.rig import jackserver

    server = jackserver.start_server(period=128)
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    try:
        for bpm in map(float, sys.argv[1:] or ["120"]):
            r = measure(server, tempfile.mkdtemp(), bpm)
            r.pop("notes"), r.pop("played_rows"), r.pop("steps_with_notes")
            print(json.dumps(r))
    finally:
        jackserver.stop_server(server)
