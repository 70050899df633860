"""In time with the sequencer (issue 17): where each real-time path's steps land against the clock
that comes in, measured from outside the module's schedule.

    .venv/bin/python -m benchmarks.bench_sync [--paths sim,es9,midi] [--ppqn 1,2,4,8,24,48]
                                              [--bpm 40,97,120,174,300] [--rt] [--write]

- sim: `grooverack run --board sim --clock` on the wall clock (a subprocess, as a user runs it);
  its trigger rises' *actual* write times (`--timing`) against the virtual patch's clock edges
  (steady, so step k of the grid is at k * 15 / BPM). Also the first downbeat after start on the
  internal clock. `--rt`: the runs get `--rt` (SCHED_FIFO, as the Pi service runs), so that a
  shared box's other work does not delay their wake-ups (where permitted; else it says so).
- es9: `benchmarks/sync_es9.measure` (a JACK client plays the clock into the ES-9 back end and
  records its outputs).
- midi: `benchmarks/sync_midi.measure` (a JACK MIDI client sends Start + 24-PPQN clock and
  timestamps the notes that come back).

Signed offsets: median and p99 of |offset| per path x PPQN x BPM, after the first beat.
`--write` puts the table into benchmarks/README.md between the bench_sync markers.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GROOVERACK = [sys.executable, "-m", "grooverack"]
SETTINGS = ["--set", "quantize=1", "--set", "density=1", "--set", "swing=50",
            "--set", "follow=0", "--set", "uncertainty=0"]


def _rises(timing: Path) -> list[float]:
    with timing.open(encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and r[0] == "output"]
    return [float(r[2]) for r in rows if r[4] == "trigger" and float(r[5]) > 0]


def measure_sim(ppqn: int, bpm: float, seconds: float | None = None, rt: bool = False) -> dict:
    """`run --board sim --clock`: trigger rises (actual write times) vs the patch's step grid."""
    step_s = 15.0 / bpm
    beat_s = 60.0 / bpm
    seconds = seconds or max(6.0, 9 * beat_s)
    with tempfile.TemporaryDirectory() as tmp:
        timing = Path(tmp) / "timing.csv"
        cmd = [*GROOVERACK, "run", "--board", "sim", "--clock", "--bpm", f"{bpm:g}",
               "--set", f"clock.ppqn={ppqn}", "--duration", f"{seconds:g}", "--timing",
               str(timing), *SETTINGS, *(["--rt"] if rt else [])]
        env = {**os.environ, "GROOVERACK_STATE_DIR": tmp}
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=REPO)
        rises = np.array([t for t in _rises(timing) if t >= beat_s - 0.25 * step_s])
    offsets = (rises - np.round(rises / step_s) * step_s) * 1e3
    return _figures(offsets)


def measure_first_downbeat(bpm: float = 120.0, rt: bool = False) -> float:
    """ms from patch time 0 (the downbeat) to the first trigger rise written, internal clock."""
    with tempfile.TemporaryDirectory() as tmp:
        timing = Path(tmp) / "timing.csv"
        cmd = [*GROOVERACK, "run", "--board", "sim", "--bpm", f"{bpm:g}", "--duration", "2",
               "--timing", str(timing), *SETTINGS, *(["--rt"] if rt else [])]
        env = {**os.environ, "GROOVERACK_STATE_DIR": tmp}
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=REPO)
        rises = _rises(timing)
    return min(rises) * 1e3 if rises else float("nan")


def _figures(offsets_ms: np.ndarray) -> dict:
    if offsets_ms.size == 0:
        return {"count": 0, "median_ms": float("nan"), "p99_ms": float("nan")}
    return {"count": int(offsets_ms.size), "median_ms": float(np.median(offsets_ms)),
            "p99_ms": float(np.percentile(np.abs(offsets_ms), 99)),
            "max_ms": float(np.abs(offsets_ms).max())}


def measure_es9(server, tmp: Path, ppqn: int, bpm: float) -> dict:
    from tests.rig.sync_es9 import measure

    return measure(server, tmp, ppqn, bpm)


def es9_row(r: dict) -> str:
    """latency (measured, and the R + L the back end reports), then the spread of the steps on
    edges and between edges around that latency, in samples (48 kHz)."""
    e, b = r["edge"], r["between"]

    def spread(s: dict) -> str:
        if not s["count"]:
            return "-"
        return f"median {s['median']:+.1f}, p99 {s['p99']:.1f}, max {s['max']:.0f} smp"

    flags = []
    if r["doubled"] or r["clock_skipped"] or r["clock_doubled"]:
        flags.append(f"doubled {len(r['doubled']) + len(r['clock_doubled'])}, "
                     f"skipped {len(r['clock_skipped'])}")
    if not r["xrun_free"]:
        flags.append(f"xruns in every take {r['take_xruns']}")
    return (f"| ES-9 (JACK, 1024-frame periods) | {r['ppqn']} | {r['bpm']:g} | "
            f"{e['count']} + {b['count']} | latency {r['latency']:.0f} smp (R+L "
            f"{r['reported']}); on edges: {spread(e)} | between: {spread(b)}"
            f"{'; ' + '; '.join(flags) if flags else ''} |")


def measure_midi(server, tmp: Path, bpm: float, rt: bool = False) -> dict:
    from tests.rig.sync_midi import measure

    r = measure(server, tmp, bpm, rt=rt)
    return {"count": r["count"], "median_ms": r["median_ms"], "p99_ms": r["p99_abs_ms"],
            "max_ms": r["max_abs_ms"], "period_ms": r["period_ms"], "xruns": r["xruns"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--paths", default="sim,es9,midi")
    p.add_argument("--ppqn", default="1,2,4,8,24,48")
    p.add_argument("--bpm", default="40,97,120,174,300")
    p.add_argument("--rt", action="store_true",
                   help="sim and midi: SCHED_FIFO and locked memory, as the Pi service runs "
                        "(`run --rt`)")
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    paths = a.paths.split(",")
    ppqns = [int(x) for x in a.ppqn.split(",")]
    bpms = [float(x) for x in a.bpm.split(",")]
    rows: dict[str, list[str]] = {path: [] for path in paths}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if "sim" in paths:
        for ppqn in ppqns:
            for bpm in bpms:
                r = measure_sim(ppqn, bpm, rt=a.rt)
                label = "run --board sim --rt" if a.rt else "run --board sim"
                rows["sim"].append(f"| {label} (wall clock) | {ppqn} | {bpm:g} | {r['count']} | "
                             f"{r['median_ms']:+.3f} ms | {r['p99_ms']:.3f} ms (max "
                             f"{r.get('max_ms', float('nan')):.3f}) |")
                print(rows["sim"][-1], flush=True)
    server = None
    if "es9" in paths or "midi" in paths:
        from tests.rig.jackserver import start_server, stop_server

    if "es9" in paths:
        server = start_server(period=1024)
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        try:
            for ppqn in ppqns:
                for bpm in bpms:
                    with tempfile.TemporaryDirectory() as tmp:
                        r = measure_es9(server, Path(tmp), ppqn, bpm)
                    rows["es9"].append(es9_row(r))
                    print(rows["es9"][-1], flush=True)
        finally:
            stop_server(server)
    if "midi" in paths:
        server = start_server(period=128)
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        try:
            for bpm in bpms:
                with tempfile.TemporaryDirectory() as tmp:
                    r = measure_midi(server, Path(tmp), bpm, rt=a.rt)
                rt = " --rt" if a.rt else ""
                rows["midi"].append(f"| MIDI{rt} (JACK, 128-frame periods = {r['period_ms']:.2f} ms) | 24 | "
                             f"{bpm:g} | {r['count']} | {r['median_ms']:+.3f} ms | "
                             f"{r['p99_ms']:.3f} ms (xruns {r['xruns']}) |")
                print(rows["midi"][-1], flush=True)
        finally:
            stop_server(server)
    first = measure_first_downbeat(rt=a.rt) if "sim" in paths else float("nan")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
               f"load {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    command = f"`.venv/bin/python -m benchmarks.bench_sync {' '.join(argv or sys.argv[1:])}`"
    blocks = {path: block(path, rows[path], f"{command} on {started}. Machine: {machine}.",
                          first if path == "sim" else None) for path in paths}
    for text in blocks.values():
        print(text)
    if a.write:
        write_blocks(REPO / "benchmarks" / "README.md", blocks)
    return 0


HEADER = "| path | PPQN | BPM | n | median offset | p99 abs offset |\n|---|---|---|---|---|---|"
HEADERS = {"es9": "| path | PPQN | BPM | n (on + between edges) | edge to step, and its spread on edges "
                  "| spread between edges |\n|---|---|---|---|---|---|"}


def block(path: str, rows: list[str], how: str, first: float | None = None) -> str:
    """One path's table between its own markers (each path can be measured again alone)."""
    lines = [f"<!-- bench_sync:{path}:start -->", how, "", HEADERS.get(path, HEADER), *rows]
    if first is not None:
        lines += ["", f"First downbeat after `grooverack run --board sim` starts (internal "
                  f"clock): {first:.3f} ms after patch time 0."]
    return "\n".join([*lines, f"<!-- bench_sync:{path}:end -->"])


def write_blocks(readme: Path, blocks: dict[str, str]) -> None:
    """Each block replaces the one of its path in README.md (or is added at the end)."""
    text = readme.read_text(encoding="utf-8")
    for path, new in blocks.items():
        start, end = f"<!-- bench_sync:{path}:start -->", f"<!-- bench_sync:{path}:end -->"
        if start in text:
            head, rest = text.split(start, 1)
            text = head + new + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + new + "\n"
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
