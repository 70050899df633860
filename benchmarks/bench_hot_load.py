"""A model loaded while the module plays (issue 30): how late the outputs get while it loads.

    python benchmarks/bench_hot_load.py [--takes 3] [--duration 8] [--at 3] [--replace] [--write]

Each take runs `grooverack run --board sim --rt --timing` (a subprocess, as a user runs it) at
300 BPM with the clock output at 48 PPQN: a rise or fall about every 2 ms, a dense grid on which
any stall of the real-time loop shows as late writes. `model.path` points at a folder of its
own: empty (rule patterns play; `--replace`: holding the shipped model, which plays). `--at`
seconds after ready the shipped model's files are copied in (replaced with new copies); the
generator's worker finds and loads them off the real-time path within the watch's period (2 s).
The measure is the lateness of every output write (actual minus scheduled write time, from
`--timing`) in the window from `--at` to `--at` + 3 s of patch time, which holds the load: its
maximum and 99th percentile. Each take is paired with a run where nothing is copied (the
baseline of the machine at that moment, the same window).

`--write` puts the table into benchmarks/README.md between the bench_hot_load_appear (or
bench_hot_load_replace) markers, below the before/after summary (bench_hot_load).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from machine_info import cpu_name  # noqa: E402

MODELS = REPO / "models"
WINDOW_S = 3.0  # the watch looks every 2 s, the worker every 0.25 s: the load falls in here


def copy_model(folder: Path) -> None:
    """The shipped model's files, the manifest last (as a careful user copies them)."""
    for p in sorted(MODELS.iterdir()):
        if p.suffix in (".onnx", ".npz"):
            shutil.copy(p, folder / p.name)
    shutil.copy(MODELS / "grooverack.json", folder / "grooverack.json")


def take(duration: float, at: float, copy: bool, replace: bool) -> tuple[float, float, int]:
    """(max, p99 lateness in ms, writes) in the window of one `run --board sim --rt`."""
    with tempfile.TemporaryDirectory(prefix="grooverack-hotload-") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "model"
        folder.mkdir()
        if replace:
            copy_model(folder)
        timing = tmp / "timing.csv"
        env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"),
               "GROOVERACK_STATE_DIR": str(tmp / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "grooverack", "run", "--board", "sim",
                                 "--rt", "--duration", str(duration), "--fresh",
                                 "--set", "tempo=300", "--set", "outputs.clock_ppqn=48",
                                 "--set", f"model.path={folder / 'grooverack.json'}",
                                 "--timing", str(timing)], env=env,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready in" in line:  # patch time 0 is (within a few ms) now
                break
        time.sleep(at)
        if copy:
            copy_model(folder)
        rest = proc.stderr.read()
        if proc.wait() != 0:
            raise RuntimeError(rest)
        if copy and "the model loaded" not in rest and "model replaced" not in rest:
            raise RuntimeError(f"the model did not load:\n{rest}")
        with open(timing, newline="") as f:
            late = [float(r[2]) - float(r[1]) for r in csv.reader(f)
                    if r and r[0] == "output" and at <= float(r[1]) < at + WINDOW_S]
    ms = 1000.0 * np.asarray(late)
    return float(ms.max()), float(np.percentile(ms, 99)), len(ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--at", type=float, default=3.0, help="seconds after ready")
    parser.add_argument("--replace", action="store_true",
                        help="the model plays from the start; its files are copied over it")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.duration < args.at + WINDOW_S:
        parser.error(f"--duration must be at least --at + {WINDOW_S:g} s")
    loaded: list[tuple[float, float, int]] = []
    baseline: list[tuple[float, float, int]] = []
    loads: list[float] = []
    for _ in range(args.takes):
        loaded.append(take(args.duration, args.at, True, args.replace))
        baseline.append(take(args.duration, args.at, False, args.replace))
        loads.append(os.getloadavg()[0])
        print(f"max / p99 lateness: model {'replaced' if args.replace else 'appearing'} "
              f"{loaded[-1][0]:.2f} / {loaded[-1][1]:.2f} ms, nothing copied "
              f"{baseline[-1][0]:.2f} / {baseline[-1][1]:.2f} ms ({loaded[-1][2]} writes)",
              flush=True)
    what = ("copied over the playing model (a `--replace` take: it plays from the start)"
            if args.replace else "copied into an empty `model.path`")
    text = (f"Lateness of the output writes of `run --board sim --rt` at 300 BPM with the "
            f"clock output at 48 PPQN (a write about every 2 ms), in the {WINDOW_S:g} s after "
            f"the shipped model's files are {what} {args.at:g} s after ready, and in the same "
            f"window of a run where nothing is copied; {args.takes} takes each, alternating. "
            f"{cpu_name()}, {os.cpu_count()} CPUs, load average "
            f"{min(loads):.1f}-{max(loads):.1f} (a shared machine), Python "
            f"{platform.python_version()}; `python benchmarks/bench_hot_load.py --takes "
            f"{args.takes}{' --replace' if args.replace else ''} --write`.\n\n"
            "| take | loads: max | loads: p99 | nothing copied: max | nothing copied: p99 |\n"
            "|---|---|---|---|---|\n"
            + "".join(f"| {i + 1} | {a[0]:.2f} ms | {a[1]:.2f} ms | {b[0]:.2f} ms | "
                      f"{b[1]:.2f} ms |\n"
                      for i, (a, b) in enumerate(zip(loaded, baseline, strict=True)))
            + f"| median | {np.median([a[0] for a in loaded]):.2f} ms | "
              f"{np.median([a[1] for a in loaded]):.2f} ms | "
              f"{np.median([b[0] for b in baseline]):.2f} ms | "
              f"{np.median([b[1] for b in baseline]):.2f} ms |\n")
    print(text)
    if args.write:
        sys.path.insert(0, str(REPO / "firmware"))
        from grooverack.storage import write_marked_section

        # the last run's table, below the before/after summary (section bench_hot_load)
        name = "bench_hot_load_replace" if args.replace else "bench_hot_load_appear"
        title = ("### The last run: a model replaced while playing (--replace)" if args.replace
                 else "### The last run: a model appearing while rule patterns play")
        write_marked_section(REPO / "benchmarks" / "README.md", name, f"{title}\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
