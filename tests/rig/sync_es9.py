"""ES-9 path against the incoming clock, end to end (issue 17, "in time with the sequencer").

`measure(server, tmp_path, ppqn, bpm)` runs the real ES9Backend (PortAudio over a real JACK
server, e.g. the `jack_audio_server` fixture of tests/rig/jackserver.py: `jackd -d dummy`, 48 kHz,
1024-frame periods) while an AudioRig (tests/rig/jackserver.py, a child process) plays a steady clock
(5 V pulses, 5 ms wide or half a pulse if shorter) into its clock input and records every output
frame-accurately. Everything is measured on the rig's frames, from the *sent* clock edges and the
*recorded* outputs only:

- the step grid: step k sits on the clock edge of pulse k * ppqn / 4 (ppqn >= 4, and every 4 /
  ppqn-th step below 4 PPQN); steps between edges (ppqn < 4) are placed linearly between the two
  sent edges around them;
- each recorded trigger rise is given the grid step nearest to it once a constant delay is taken
  off (first estimated from the clock output, whose first pulse is step 0 on the first edge);
  its offset is rise - grid;
- the measured constant latency is the median offset of the rises on an edge after the first
  beat (lock); the spread is |offset - latency| (median, p99, max), for rises on an edge and
  between edges separately;
- the back end's own figures: R (`reaction_frames`), L (`latency_frames`), R + L; the difference
  measured - (R + L) in samples and in JACK periods (a graph that ran the rig's sink before the
  back end would add one period of the rig -> back end -> rig loop);
- counts: rises per (output, step) (none doubled), the clock output once per step in the sent
  clock's span (no step skipped), and the steps the back end scheduled against those recorded.

Only takes without xruns count (rig and back end); a take with one is retried (`takes`).
`python -m tests.rig.sync_es9 [ppqn bpm ...]` (from the repository root) runs a few cases on a server of its own.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

SR = 48000
VPU = 10.0  # volts per sample unit (the board's nominal scaling)
PULSE_S = 0.005  # s: width of a sent clock pulse (at most half its period)
LEAD = 2400  # frames of silence before the first sent edge
TAIL = SR  # frames recorded after the signal
LEVEL = 0.2  # sample units (2 V): an output above it is high
TRIGGERS = (1, 2, 3, 4)  # the board's trigger channels
CLOCK_OUT, RESET_OUT = 9, 10

BOARD = {
    "kind": "es9", "name": "es9 sync",
    "es9": {
        "input_device": "es9test-in", "output_device": "es9test-out",
        "samplerate": SR, "blocksize": 1024, "safe_min": -1.0, "safe_max": 4.5,
        "trigger_volts": 4.0,
        "inputs": {"gate": 1, "pitch": 2, "clock": 3},
        "outputs": {"trigger": list(TRIGGERS), "velocity": [5, 6, 7, 8],
                    "clock": CLOCK_OUT, "reset": RESET_OUT},
    },
}


def _jackserver():  # imported when a measurement starts: importing this module needs no JACK
    from tests.rig import jackserver

    return jackserver


def default_seconds(ppqn: int, bpm: float, beats_after_lock: int = 8) -> float:
    """Signal length: the lead-in, one beat to lock, `beats_after_lock` + 2 beats measured
    (at least 4 s; at 40 BPM 1 PPQN a pulse is 1.5 s)."""
    return max(4.0, LEAD / SR + (beats_after_lock + 3) * 60.0 / bpm)


def sent_edges(ppqn: int, bpm: float, frames: int, *, jump: tuple[float, float] | None = None,
               gap: tuple[float, float] | None = None) -> np.ndarray:
    """Frames of the sent rising edges: a steady `bpm`, or `jump` = (beat, new bpm) from that
    beat on; `gap` = (beat, seconds): the clock stops after that beat's edge for one interval
    plus `seconds` (a sequencer stopped and started again, on the beat); the first at LEAD, the
    last a pulse width before the end."""
    edges, t, j = [], float(LEAD), 0
    while t < frames - SR * PULSE_S - 1:
        edges.append(int(round(t)))
        tempo = jump[1] if jump is not None and j / ppqn >= jump[0] else bpm
        t += 60.0 * SR / (tempo * ppqn)
        if gap is not None and j == int(round(gap[0] * ppqn)):
            t += gap[1] * SR
        j += 1
    return np.array(edges, dtype=np.int64)


def build_signal(edges: np.ndarray, ppqn: int, frames: int, gate: bool) -> np.ndarray:
    """[3, frames] volts: gate (a 5 ms pulse on every beat's edge when `gate`), pitch 0 V, clock
    (5 V pulses, 5 ms wide or half the shortest interval)."""
    sig = np.zeros((3, frames))
    width = int(SR * PULSE_S)
    if len(edges) > 1:
        width = min(width, int(np.diff(edges).min()) // 2)
    for a in edges:
        sig[2, a:a + width] = 5.0
    if gate:
        for a in edges[::ppqn]:
            sig[0, a:a + int(SR * PULSE_S)] = 5.0
    return sig


def step_grid(edges: np.ndarray, ppqn: int) -> tuple[np.ndarray, np.ndarray]:
    """(frame of step k, whether it is on an edge) for every step within the sent clock."""
    pulses = np.arange(0, (len(edges) - 1) * 4 // ppqn + 1) * ppqn / 4.0
    lo = np.floor(pulses).astype(np.int64)
    frac = pulses - lo
    hi = np.minimum(lo + 1, len(edges) - 1)
    grid = edges[lo] + frac * (edges[hi] - edges[lo])
    return grid.astype(np.float64), frac == 0.0


def rises(x: np.ndarray) -> np.ndarray:
    """Frames where `x` goes above LEVEL."""
    high = np.concatenate(([False], x > LEVEL))
    return np.flatnonzero(high[1:] & ~high[:-1])


def _stats(dev: np.ndarray) -> dict[str, Any]:
    a = np.abs(np.asarray(dev, dtype=np.float64))
    if a.size == 0:
        return {"count": 0, "median": None, "p99": None, "max": None,
                "median_ms": None, "p99_ms": None, "max_ms": None}
    med, p99, mx = float(np.median(a)), float(np.percentile(a, 99)), float(a.max())
    return {"count": int(a.size), "median": med, "p99": p99, "max": mx,
            "median_ms": med / SR * 1e3, "p99_ms": p99 / SR * 1e3, "max_ms": mx / SR * 1e3}


def settings_for(ppqn: int, bpm: float, source: str = "external", seed: int = 1,
                 extra: tuple[str, ...] = ()):
    from grooverack.config import load_settings

    return load_settings(overrides=[
        f"clock.source={source}", f"clock.ppqn={ppqn}", f"tempo={min(300.0, max(20.0, bpm))}",
        "quantize=1.0", "density=1.0", "uncertainty=0.0", "follow=0.0", "swing=50",
        f"generation.seed={seed}", "outputs.trigger_ms=5.0", "outputs.clock_ppqn=4", *extra])


def take(server, tmp_path, signal: np.ndarray, settings) -> tuple[np.ndarray, int, Any]:
    """One run: (capture [10, frames], rig xruns, the stopped back end)."""
    import sounddevice as sd
    from grooverack.backends.es9 import ES9Backend, refresh_devices
    from grooverack.runtime.serve import make_engine

    js = _jackserver()
    rig = js.AudioRig(server, signal / VPU, Path(tmp_path), source="es9test-in",
                      sink="es9test-out", inputs=RESET_OUT, tail=TAIL)
    engine = make_engine(settings, threaded=True)
    refresh_devices()  # PortAudio reads the JACK clients that exist now
    backend = ES9Backend(engine, settings,
                         SimpleNamespace(name="es9 sync", kind="es9", path="sync-es9.toml",
                                         data=BOARD))
    try:
        backend.start()
        backend.wait_latency()
        rig.go()
        cap, xruns = rig.result(timeout=signal.shape[1] / SR + 60)
    finally:
        backend.stop()
        engine.close()
        sd._terminate()  # before the server goes away
        rig.close()
    return cap, xruns, backend


def analyse(cap: np.ndarray, edges: np.ndarray, ppqn: int, backend: Any, *,
            lock_beats: float = 1.0, period: int = 1024) -> dict[str, Any]:
    """The figures of one take (see the module docstring)."""
    grid, on_edge = step_grid(edges, ppqn)
    step_frames = np.diff(grid).min() if len(grid) > 1 else SR
    R, L = backend.reaction_frames or 0, backend.latency_frames or 0
    clock_rises = rises(cap[CLOCK_OUT - 1])
    # a first delay: the clock output's first pulse after the first edge is the step on it
    # (in `auto` the module may free-run before the clock comes: those pulses come earlier)
    after_first = clock_rises[clock_rises >= edges[0]]
    prior = int(after_first[0] - edges[0]) if after_first.size else R + L

    def assign(frames: np.ndarray, delay: float) -> tuple[np.ndarray, np.ndarray]:
        """(step index, offset = frame - grid[step]) of each frame; step -1: outside the grid."""
        u = frames - delay
        k = np.clip(np.searchsorted(grid, u), 1, len(grid) - 1)
        k = np.where(np.abs(grid[k - 1] - u) <= np.abs(grid[k] - u), k - 1, k)
        off = frames - grid[k]
        inside = (u > grid[0] - step_frames / 2) & (u < grid[-1] + step_frames / 2)
        return np.where(inside, k, -1), off

    lock = edges[min(len(edges) - 1, int(math.ceil(lock_beats * ppqn)))]
    rows = []  # (output, step, offset, on edge, grid frame)
    for out, ch in enumerate(TRIGGERS, start=1):
        r = rises(cap[ch - 1])
        k, off = assign(r.astype(np.float64), prior)
        rows += [(out, int(kk), float(o), bool(on_edge[kk]), float(grid[kk]))
                 for kk, o in zip(k, off, strict=True) if kk >= 0]
    locked_edge = np.array([o for _, _, o, e, g in rows if e and g >= lock])
    latency = float(np.median(locked_edge)) if locked_edge.size else float(prior)
    if abs(latency - prior) > step_frames / 4:  # the prior was off: assign again
        rows2 = []
        for out, ch in enumerate(TRIGGERS, start=1):
            r = rises(cap[ch - 1])
            k, off = assign(r.astype(np.float64), latency)
            rows2 += [(out, int(kk), float(o), bool(on_edge[kk]), float(grid[kk]))
                      for kk, o in zip(k, off, strict=True) if kk >= 0]
        rows = rows2
        locked_edge = np.array([o for _, _, o, e, g in rows if e and g >= lock])
        latency = float(np.median(locked_edge)) if locked_edge.size else latency
    latency_int = int(round(latency))
    dev_edge = [o - latency_int for _, _, o, e, g in rows if e and g >= lock]
    dev_between = [o - latency_int for _, _, o, e, g in rows if not e and g >= lock]
    # counts: rises per (output, step), the clock output once per step
    per: dict[tuple[int, int], int] = {}
    for out, k, *_ in rows:
        per[(out, k)] = per.get((out, k), 0) + 1
    doubled = sorted(key for key, n in per.items() if n > 1)
    ck, coff = assign(clock_rises.astype(np.float64), latency_int)
    clock_steps = [int(k) for k in ck if k >= 0]
    clock_count = np.bincount(clock_steps, minlength=len(grid)) if clock_steps else \
        np.zeros(len(grid), dtype=int)
    # the clock out of the last step may fall past the recording; steps of the grid's span
    span = [k for k in range(len(grid)) if grid[k] + latency_int + 240 < cap.shape[1]]
    clock_skipped = [k for k in span if clock_count[k] == 0]
    clock_doubled = [k for k in span if clock_count[k] > 1]
    clock_dev = [o - latency_int for k, o in zip(ck, coff, strict=True)
                 if k >= 0 and grid[k] >= lock]
    # what the back end scheduled (engine time -> rig frames through its clock edges) vs recorded
    detected = [f for jack, kind, f in backend.edges if jack == "clock" and kind == "rise"]
    missing = extra = None
    if detected:
        shift = detected[0] - int(edges[0])
        sched = set()
        for _, _ch, _volts, ev in backend.scheduled:
            if ev.kind == "trigger" and ev.value > 0.5:
                k, _ = assign(np.array([round(ev.time * SR) - shift], dtype=np.float64), 0.0)
                if k[0] >= 0 and grid[k[0]] + latency_int < cap.shape[1] - 240:
                    sched.add((ev.output, int(k[0])))
        got = {(out, k) for out, k, *_ in rows if grid[k] + latency_int < cap.shape[1] - 240}
        missing, extra = sorted(sched - got), sorted(got - sched)
    reported = R + L
    return {
        "R": R, "L": L, "reported": reported, "reported_ms": reported / SR * 1e3,
        "latency": latency, "latency_ms": latency / SR * 1e3,
        "latency_minus_reported": latency - reported,
        "jack_periods": (latency - reported) / period,
        "edge": _stats(dev_edge), "between": _stats(dev_between),
        "all": _stats(dev_edge + dev_between), "clock_out": _stats(clock_dev),
        "rises": rows, "lock_frame": int(lock), "steps": len(grid),
        "doubled": doubled, "clock_skipped": clock_skipped, "clock_doubled": clock_doubled,
        # one clock-out pulse per step played: as many in the grid's span as it has steps means
        # none doubled or skipped, even where a tempo jump's first interval put them off-grid
        "clock_pulses": int(sum(clock_count[k] for k in span)), "span_steps": len(span),
        "lock_step": int(np.searchsorted(grid, lock)),
        # the pattern rows the clock output's pulses played, in order (a restart after a stop
        # must go on from the held step, not from step 0)
        "clock_rows": [int(ev.step) for _, _, _, ev in backend.scheduled
                       if ev.kind == "clock" and ev.value > 0.5],
        "missing": missing, "extra": extra,
        "late_events": backend.late_events,
    }


def measure(server, tmp_path, ppqn: int, bpm: float, seconds: float | None = None, *,
            source: str = "external", gate: bool = False,
            jump: tuple[float, float] | None = None,
            gap: tuple[float, float] | None = None, takes: int = 3, seed: int = 1,
            lock_beats: float = 1.0, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One case on `server` (a tests/jackserver.JackServer, named in JACK_DEFAULT_SERVER):
    the figures of the first take without xruns (up to `takes`; `xrun_free` False when none).

    `seconds`: the signal's length (default `default_seconds`: 8 beats measured after lock);
    `jump`: (beat, new bpm), a tempo jump; `gap`: (beat, seconds), the clock stops and starts
    again (`sent_edges`); `gate`: a gate pulse on every beat too; `extra`:
    more settings overrides."""
    seconds = default_seconds(ppqn, bpm) if seconds is None else seconds
    frames = int(round(seconds * SR))
    edges = sent_edges(ppqn, bpm, frames, jump=jump, gap=gap)
    signal = build_signal(edges, ppqn, frames, gate)
    settings = settings_for(ppqn, bpm, source, seed, extra)
    period = getattr(server, "period", 1024)
    history = []
    t0 = time.monotonic()
    for n in range(1, takes + 1):  # noqa: B007 (the count of takes is reported)
        cap, rig_xruns, backend = take(server, tmp_path, signal, settings)
        history.append((rig_xruns, backend.xruns, backend.stream.dropped_frames))
        if rig_xruns == 0 and backend.xruns == 0 and backend.stream.dropped_frames == 0:
            break
    result = analyse(cap, edges, ppqn, backend, lock_beats=lock_beats, period=period)
    rig_xruns, be_xruns, dropped = history[-1]
    result.update({
        "ppqn": ppqn, "bpm": bpm, "seconds": seconds, "source": source, "jump": jump, "gap": gap,
        "sr": SR, "period": period, "edges": edges.tolist(), "takes": n,
        "xruns": rig_xruns + be_xruns, "rig_xruns": rig_xruns, "backend_xruns": be_xruns,
        "dropped_frames": dropped, "xrun_free": rig_xruns == 0 and be_xruns == 0 and dropped == 0,
        "take_xruns": history, "wall_s": time.monotonic() - t0,
        "describe": backend.describe(),
    })
    return result


def summary(r: dict[str, Any]) -> str:
    e, b = r["edge"], r["between"]

    def fmt(s):
        if not s["count"]:
            return "n=0"
        return (f"n={s['count']} med {s['median']:.1f} p99 {s['p99']:.1f} max {s['max']:.0f} "
                f"smp ({s['p99_ms']:.3f}/{s['max_ms']:.3f} ms)")

    return (f"{r['ppqn']:>2} PPQN {r['bpm']:>5g} BPM: latency {r['latency']:.0f} smp "
            f"({r['latency_ms']:.2f} ms) vs R+L {r['reported']} (R {r['R']}, L {r['L']}): "
            f"{r['latency_minus_reported']:+.0f} ({r['jack_periods']:+.2f} periods); "
            f"edge {fmt(e)}; between {fmt(b)}; doubled {len(r['doubled'])}, clock skipped "
            f"{len(r['clock_skipped'])}, missing {len(r['missing'] or [])}, extra "
            f"{len(r['extra'] or [])}; xruns {r['xruns']} (takes {r['takes']}), "
            f"late {r['late_events']}")


def main(argv: list[str]) -> int:
    import os
    import tempfile

    js = _jackserver()
    cases = [(int(a), float(b)) for a, b in zip(argv[::2], argv[1::2], strict=False)] or \
        [(4, 120.0), (24, 120.0), (1, 97.0)]
    with tempfile.TemporaryDirectory() as tmp:
        server = js.start_server(period=1024, log_dir=Path(tmp))
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        try:
            for ppqn, bpm in cases:
                print(summary(measure(server, tmp, ppqn, bpm)), flush=True)
        finally:
            js.stop_server(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
