"""Real-time timing of `grooverack run --board sim` while the generator works every step.

Runs the CLI as a user would (a fresh process), for >= 30 s at 120 BPM, with the built-in line
(onsets re-encode the groove at every step) and a controls file that moves `morph` every 16th
(so the decoder runs every step as well). The run writes, for every output event, the time it was
scheduled and the time it was actually written; this script reports lateness median / p99 / max,
CPU use (os.times) and the time from launching `grooverack run` to its "ready" line, and writes
the results with the machine and the command into benchmarks/README.md (its own section).

    .venv/bin/python benchmarks/bench_realtime.py [--duration 30] [--bpm 120] [--no-readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from grooverack.storage import write_marked_section

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine_info import cpu_name  # noqa: E402

TARGETS = {"p99_ms": 0.3, "max_ms": 1.0, "cpu_pct": 5.0, "ready_s": 1.5}


def controls_csv(path: Path, duration: float, bpm: float) -> Path:
    """`morph` moves every 16th step (a slow triangle), so every step needs a new pattern."""
    step = 60.0 / bpm / 4
    lines = ["time,key,value"]
    for i in range(int(duration / step) + 1):
        phase = (i % 64) / 32.0
        lines.append(f"{i * step:.6f}s,morph,{(phase if phase <= 1 else 2 - phase):.4f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# A 20-line sleep-then-spin loop in a process of its own, run beside `grooverack run --rt`: the
# machine's own timing noise at the same moments (VM, kernel, other processes), for comparison.
CONTROL = """
import gc, os, sys, time
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(70))
except OSError:
    pass
gc.freeze()
late, period, spin = [], 0.010, 0.0003
t0 = time.perf_counter() + 0.01
for i in range(int(float(sys.argv[1]) / period)):
    deadline = t0 + i * period
    if deadline - time.perf_counter() > spin:
        time.sleep(deadline - time.perf_counter() - spin)
    while time.perf_counter() < deadline:
        pass
    late.append(time.perf_counter() - deadline)
late.sort()
print(f"{1000 * late[int(0.99 * len(late))]:.4f} {1000 * late[-1]:.4f}")
"""


def machine() -> str:
    cpu = cpu_name()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average at start {load}")


# (column heading, extra `grooverack run` options)
CONFIGS = (
    ("sim board, normal priority", []),
    ("sim board, `--rt`", ["--rt"]),
    ("`--direct`, `--rt`", ["--rt", "--direct"]),
)


def run(duration: float, bpm: float, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        controls = controls_csv(tmp / "morph.csv", duration, bpm)
        timing = tmp / "timing.csv"
        cmd = [sys.executable, "-m", "grooverack", "run", "--board", "sim",
               "--duration", f"{duration:g}", "--bpm", f"{bpm:g}", "--controls", str(controls),
               "--set", "generation.reencode=step", "--timing", str(timing), *extra]
        rt = "--rt" in extra
        control = subprocess.Popen([sys.executable, "-c", CONTROL, f"{duration + 1:g}"],
                                   stdout=subprocess.PIPE, text=True) if rt else None
        before = os.times()
        launched = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready_s, log = None, []
        for line in proc.stderr:
            log.append(line)
            if ready_s is None and "ready in" in line:
                ready_s = time.perf_counter() - launched
        proc.wait()
        after = os.times()
        control_p99, control_max = (float(x) for x in control.communicate()[0].split()) \
            if control else (float("nan"), float("nan"))
        if proc.returncode != 0:
            raise SystemExit(f"grooverack run failed ({proc.returncode}):\n{''.join(log)}")
        text = timing.read_text().splitlines()
    totals = dict(kv.split("=") for kv in text[0].lstrip("# ").split())
    totals = {k: float(v) for k, v in totals.items()}
    rows = [line.split(",") for line in text[2:]]
    out = np.array([(float(r[1]), float(r[2])) for r in rows if r[0] == "output"])
    inputs = np.array([(float(r[1]), float(r[2])) for r in rows if r[0] == "input"])
    late = (out[:, 1] - out[:, 0]) * 1000.0
    in_late = (inputs[:, 1] - inputs[:, 0]) * 1000.0 if len(inputs) else np.zeros(1)
    child_cpu = (after.children_user - before.children_user
                 + after.children_system - before.children_system)
    summary = [line.strip() for line in log if "patterns" in line or "output writes" in line]
    return {
        "command": " ".join(["grooverack"] + cmd[3:]).replace(str(controls), "morph.csv")
                   .replace(str(timing), "timing.csv"),
        "events": len(late), "inputs": len(inputs),
        "median_ms": float(np.median(late)), "p99_ms": float(np.percentile(late, 99)),
        "max_ms": float(late.max()), "early_ms": float(late.min()),
        "over_1ms": int((late > 1.0).sum()),
        "in_p99_ms": float(np.percentile(in_late, 99)), "in_max_ms": float(in_late.max()),
        "wall_s": totals["wall_s"], "cpu_pct": 100 * totals["process_cpu_s"] / totals["wall_s"],
        "loop_cpu_pct": 100 * totals["loop_cpu_s"] / totals["wall_s"],
        "writer_cpu_pct": 100 * totals["writer_cpu_s"] / totals["wall_s"],
        "patterns": totals.get("patterns", float("nan")),
        "all_cpu_s": child_cpu, "ready_s": ready_s, "ready_inner_s": totals["ready_s"],
        "log": summary, "control_p99_ms": control_p99, "control_max_ms": control_max,
    }


def markdown(results: list[dict], machine_line: str) -> str:
    def cells(key: str, fmt: str, target: str = "") -> str:
        values = " | ".join(fmt.format(r[key]) for r in results)
        if not target:
            return f"{values} | |"
        marks = ", ".join("met" if r[key] <= TARGETS[key] else "**missed**" for r in results)
        return f"{values} | {target}: {marks} |"

    normal = results[0]
    heads = " | ".join(r["heading"] for r in results)
    return "\n".join([
        "## Real-time timing (`bench_realtime.py`)",
        "",
        f"`{normal['command']}` (`morph.csv` moves `morph` every 16th and "
        "`generation.reencode=step` re-encodes the groove at every step: a new pattern every "
        "step). Three runs: the `sim` board (patch volts -> emulated ADC/GPIO -> the Pi's panel "
        "code -> engine -> emulated DACs/GPIO) at normal priority, the same with `--rt` "
        "(SCHED_FIFO and locked memory, as the Pi service runs), and `--direct --rt` (the engine "
        "straight from the patch, no chip emulation). Launched by "
        "`.venv/bin/python benchmarks/bench_realtime.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Machine: {machine_line}. The machine is shared (other engineers' tests and a "
        "training run using more than one core): figures are under load, not on an idle box.",
        "",
        f"| measure | {heads} | target |",
        "|---|" + "---|" * len(results) + "---|",
        "| output events written | " + cells("events", "{}"),
        "| patterns generated | " + cells("patterns", "{:.0f}"),
        "| playing time | " + cells("wall_s", "{:.1f} s"),
        "| lateness median | " + cells("median_ms", "{:.3f} ms"),
        "| lateness p99 | " + cells("p99_ms", "{:.3f} ms", "≤ 0.3 ms"),
        "| lateness max | " + cells("max_ms", "{:.3f} ms", "≤ 1 ms"),
        "| writes later than 1 ms | " + " | ".join(f"{r['over_1ms']} of {r['events']}"
                                                    for r in results) + " | |",
        "| CPU, whole process while playing | " + cells("cpu_pct", "{:.1f} % of a core",
                                                        "≤ 5 %"),
        "| CPU, loop thread / writer thread | "
        + " | ".join(f"{r['loop_cpu_pct']:.1f} % / {r['writer_cpu_pct']:.1f} %" for r in results)
        + " | |",
        "| CPU, whole run incl. start-up | " + cells("all_cpu_s", "{:.2f} s"),
        "| launch to ready | " + cells("ready_s", "{:.2f} s", "≤ 1.5 s"),
        "| control: a bare sleep-then-spin loop (SCHED_FIFO 70, 10 ms period) in another "
        "process during the `--rt` runs, lateness p99 / max | "
        + " | ".join(f"{r['control_p99_ms']:.3f} / {r['control_max_ms']:.3f} ms"
                     if r["control_p99_ms"] == r["control_p99_ms"] else "" for r in results)
        + " | |",
        "| inputs applied late, p99 / max | "
        + " | ".join(f"{r['in_p99_ms']:.3f} / {r['in_max_ms']:.3f} ms" for r in results) + " | |",
        "",
        "Lateness = actual write time − scheduled time of each output event (velocity CV, "
        "trigger rise and fall, clock, reset), both on `time.perf_counter()`. `grooverack run` "
        "has a writer thread that only moves data: it sleeps to before each queued output "
        "(by twice the worst recent sleep overshoot, 0.1-0.5 ms) and spins to its time; the loop thread applies "
        "inputs at their time and asks the engine for the next 20 ms of outputs; the generator "
        "works in its own thread. With `--rt` they run SCHED_FIFO (writer 80 > loop 75 > "
        "generator 70). CPU while playing is `os.times()` of the process over the playing time "
        "(all threads); launch to ready is from starting the `grooverack run` process to its "
        "\"ready\" line (imports, model load, engine); playing starts 50 ms later.",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    machine_line = machine()
    results = []
    for heading, extra in CONFIGS:
        results.append(run(args.duration, args.bpm, extra) | {"heading": heading})
    section = markdown(results, machine_line)
    print(section)
    for result in results:
        for line in result["log"]:
            print(line)
    if not args.no_readme:
        print(f"wrote {write_marked_section(HERE / 'README.md', 'bench_realtime', section)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
