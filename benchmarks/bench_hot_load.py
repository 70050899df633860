"""A model that appears while the module plays (issue 30): how late the outputs get while it loads.

    .venv/bin/python benchmarks/bench_hot_load.py [--takes 3] [--duration 8] [--write]

Each take runs `grooverack run --board sim --timing` (a subprocess, as a user runs it) with
`model.path` pointing at an empty folder: rule patterns play. After `--at` seconds the shipped
model's files are copied in; the generator's worker finds and loads them off the real-time
path. The outputs written while the load happens are the measure: the worst lateness of each
take's output writes (actual minus scheduled write time, from `--timing`), and the same run's
worst lateness without a model appearing (the baseline of that machine at that moment).

`--write` puts the table into benchmarks/README.md between the bench_hot_load markers.

What is left of a load's cost to the loop: onnxruntime holds the GIL inside each session's
creation (~7-8 ms per graph measured on x86, three graphs) and numpy inside the latent bank's
load (~15 ms); the import of onnxruntime's C++ module and its first session (~95-170 ms) happen
at start since issue 30 (`model.watch.prepare_runtime`).
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
MODELS = REPO / "models"


def take(duration: float, at: float | None) -> float:
    """Worst output lateness (ms) of one `run --board sim` with the model appearing at `at` s."""
    with tempfile.TemporaryDirectory(prefix="grooverack-hotload-") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "model"
        folder.mkdir()
        timing = tmp / "timing.csv"
        env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"),
               "GROOVERACK_STATE_DIR": str(tmp / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "grooverack", "run", "--board", "sim",
                                 "--duration", str(duration), "--fresh",
                                 "--set", f"model.path={folder / 'grooverack.json'}",
                                 "--timing", str(timing)], env=env,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready in" in line:
                break
        if at is not None:
            time.sleep(at)
            for p in MODELS.iterdir():
                if p.suffix in (".onnx", ".npz"):
                    shutil.copy(p, folder / p.name)
            shutil.copy(MODELS / "grooverack.json", folder / "grooverack.json")
        rest = proc.stderr.read()
        if proc.wait() != 0:
            raise RuntimeError(rest)
        if at is not None and "the model loaded" not in rest:
            raise RuntimeError(f"the model did not load:\n{rest}")
        with open(timing, newline="") as f:
            late = [float(r[2]) - float(r[1]) for r in csv.reader(f) if r and r[0] == "output"]
    return 1000.0 * max(late)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--at", type=float, default=3.0, help="seconds after ready")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    loaded, baseline = [], []
    for _ in range(args.takes):
        loaded.append(take(args.duration, args.at))
        baseline.append(take(args.duration, None))
        print(f"worst lateness: model appearing {loaded[-1]:.2f} ms, none {baseline[-1]:.2f} ms",
              flush=True)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (f"Worst output lateness of `run --board sim` ({args.duration:g} s) while the shipped "
            f"model is copied into an empty `model.path` {args.at:g} s after ready, and of the "
            f"same run with no model appearing; {args.takes} takes each, alternating. "
            f"{cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (a shared "
            f"machine), Python {platform.python_version()}; "
            f"`python benchmarks/bench_hot_load.py --takes {args.takes} --write`.\n\n"
            "| take | model appears | no model appears |\n|---|---|---|\n"
            + "".join(f"| {i + 1} | {a:.2f} ms | {b:.2f} ms |\n"
                      for i, (a, b) in enumerate(zip(loaded, baseline, strict=True)))
            + f"| median | {np.median(loaded):.2f} ms | {np.median(baseline):.2f} ms |\n")
    print(text)
    if args.write:
        sys.path.insert(0, str(REPO / "firmware"))
        from grooverack.storage import write_marked_section

        write_marked_section(REPO / "benchmarks" / "README.md", "bench_hot_load",
                             "## A model loaded while playing (bench_hot_load)\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
