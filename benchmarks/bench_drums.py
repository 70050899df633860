"""Drum voices (issue 33): what drums.wav costs to render, and whether live sound (`--audio`)
touches the real-time loop's timing.

    .venv/bin/python -m benchmarks.bench_drums [--takes 3] [--seconds 12] [--rt] [--write]

- render: the rows of a `grooverack sim` render (8 and 64 bars of the built-in line, shipped
  model) played through `grooverack.drums` into drums.wav's 16-bit bytes (`sim.render.drums_audio`
  + `wav_bytes`), this process pinned to one core: seconds of CPU per second of music (target
  <= 10 %).
- clock grid: `grooverack run --board sim --clock` (4 PPQN, 120 BPM, as bench_sync.py) as a
  subprocess, with and without `--audio hearrec` (a JACK client of tests/rig/audiorec.py on a
  `jackd -d dummy`, 48 kHz, 1024-frame periods: the sound card), takes alternating; each take's
  trigger rises (actual write times from `--timing`) against the patch's clock grid: p99 |offset|.
  Both kinds of take run beside the same JACK server and recorder, so only `--audio` differs.

`--write` puts the tables into benchmarks/README.md between the bench_drums markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from grooverack.storage import write_marked_section  # noqa: E402

from benchmarks.bench_sync import SETTINGS, _figures, _rises  # noqa: E402
from benchmarks.machine_info import cpu_name  # noqa: E402

GROOVERACK = [sys.executable, "-m", "grooverack"]


def machine() -> str:
    cpu = cpu_name()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average at start {load}")


def render_cost(bars: int, repeat: int = 3) -> dict:
    """CPU seconds per music second of drums.wav (rows of a real render; one core)."""
    import argparse as ap

    from grooverack.sim.render import drums_audio, wav_bytes
    from grooverack.sim.session import drum_voices, simulate

    args = ap.Namespace(config=None, overrides=[], input="line", bars=float(bars), bpm=None,
                        seed=0, controls=None, clock=False, board="sim", quiet=True)
    patch, recorder, settings, _ = simulate(args)
    voices = drum_voices(settings)
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        audio = drums_audio(recorder.rows, rate=48000, voices=voices,
                            velocity_volts=settings["outputs.velocity_volts"],
                            duration=patch.duration)
        wav_bytes(audio, 48000)
        best = min(best, time.process_time() - c0)
    hits = len(recorder.hits(settings["outputs.velocity_volts"]))
    return {"bars": bars, "music_s": patch.duration, "cpu_s": best, "hits": hits,
            "share": best / patch.duration}


def grid_take(seconds: float, audio: bool, tmp: Path, rt: bool = False) -> dict:
    bpm, ppqn = 120.0, 4
    step_s = 15.0 / bpm
    timing = tmp / "timing.csv"
    cmd = [*GROOVERACK, "run", "--board", "sim", "--clock", "--bpm", f"{bpm:g}",
           "--set", f"clock.ppqn={ppqn}", "--duration", f"{seconds:g}", "--timing",
           str(timing), *SETTINGS, *(["--audio", "hearrec"] if audio else []),
           *(["--rt"] if rt else [])]
    env = {**os.environ, "GROOVERACK_STATE_DIR": str(tmp),
           "PYTHONPATH": str(REPO / "firmware")}
    run = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=REPO)
    rises = np.array([t for t in _rises(timing) if t >= 60.0 / bpm - 0.25 * step_s])
    figures = _figures((rises - np.round(rises / step_s) * step_s) * 1e3)
    if audio:
        m = re.search(r"audio: (\d+) hits.*?\(([0-9.]+) % of it in the callback\), (\d+) late",
                      run.stderr)
        if m is None:
            raise RuntimeError(f"no audio report: {run.stderr[-800:]}")
        figures.update(hits=int(m[1]), callback_pct=float(m[2]), late=int(m[3]))
    return figures


def clock_grid(takes: int, seconds: float, rt: bool = False) -> dict:
    from tests.rig.audiorec import AudioRecorder
    from tests.rig.jackserver import start_server, stop_server

    server = start_server(period=1024)
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    results: dict[str, list[dict]] = {"without": [], "with": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(takes):
                for kind in (("without", "with") if k % 2 == 0 else ("with", "without")):
                    rec = AudioRecorder(server, seconds + 30, Path(tmp))
                    try:
                        rec.go()
                        results[kind].append(grid_take(seconds, kind == "with", Path(tmp), rt))
                    finally:
                        rec.close()
                    print(kind, results[kind][-1], flush=True)
    finally:
        stop_server(server)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--takes", type=int, default=3)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--rt", action="store_true",
                   help="the runs get --rt (SCHED_FIFO, as the Pi service runs), so that a shared "
                        "box's other work delays their wake-ups less")
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    where = machine()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    except (AttributeError, OSError):
        pass
    costs = [render_cost(8), render_cost(64)]
    for c in costs:
        print(f"render {c['bars']} bars: {c['cpu_s']:.3f} s CPU for {c['music_s']:.1f} s "
              f"({100 * c['share']:.2f} %)", flush=True)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    grid = clock_grid(a.takes, a.seconds, a.rt)
    rt = " --rt" if a.rt else ""
    lines = [f"`.venv/bin/python -m benchmarks.bench_drums --takes {a.takes} --seconds "
             f"{a.seconds:g}{rt} --write` on {started}. Machine: {where}.", "",
             "| drums.wav of | music | hits | CPU (one core) | share of the music's length |",
             "|---|---|---|---|---|"]
    lines += [f"| `grooverack sim --bars {c['bars']}` (line, seed 0) | {c['music_s']:.1f} s | "
              f"{c['hits']} | {c['cpu_s']:.3f} s | {100 * c['share']:.2f} % (target <= 10 %) |"
              for c in costs]
    lines += ["", f"| `run --board sim --clock{rt}` (4 PPQN, 120 BPM) | takes | p99 \\|offset\\| "
              "per take | median of p99s | max | audio callback |", "|---|---|---|---|---|---|"]
    for kind in ("without", "with"):
        r = grid[kind]
        p99s = [x["p99_ms"] for x in r]
        extra = ("; ".join(f"{x['hits']} hits, {x['callback_pct']:.1f} % of the sound's time, "
                           f"{x['late']} late" for x in r) if kind == "with" else "")
        lines.append(f"| {kind} `--audio hearrec` | {len(r)} | "
                     f"{', '.join(f'{v:.3f}' for v in p99s)} ms | {np.median(p99s):.3f} ms | "
                     f"{max(x['max_ms'] for x in r):.3f} ms | {extra} |")
    text = "\n".join(lines)
    print(text)
    if a.write:
        write_marked_section(REPO / "benchmarks" / "README.md", "bench_drums",
                             "## Drum voices: drums.wav and live sound (`bench_drums.py`, "
                             "issue 33)\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
