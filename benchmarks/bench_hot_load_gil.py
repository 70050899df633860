"""What a model load holds the GIL for: the longest wait of a real-time thread, piece by piece.

    python benchmarks/bench_hot_load_gil.py [--reps 8] [--write]

A probe thread sleeps 0.2 ms in a loop, as a real-time loop waits for its next write; each wake's
gap minus the time the thread waited on the CPU run queue (`/proc/self/task/TID/schedstat`) is
the time it was kept from running by something else in the process: the GIL (or the memory lock
a populating mmap holds). Both threads run SCHED_FIFO when permitted, with memory locked
(mlockall) and a 0.1 ms GIL switch interval, as `--rt` and the Pi service run: the other
processes of a shared machine then disturb the figures little. The loader thread opens each of
the shipped model's sessions, the latent bank, whole runners, replaces a model through
`ModelWatch.poll` + `ModelRunner.close` (what the generator's worker does) and, for comparison,
drops a whole runner at once. Printed: the median and the worst of the longest wait per
repetition.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))

from grooverack.model import runner as runner_module  # noqa: E402
from grooverack.model.bank import load_bank  # noqa: E402
from grooverack.model.watch import ModelWatch, prepare_runtime  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine_info import cpu_name  # noqa: E402

MODELS = REPO / "models"


def set_fifo(priority: int) -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


class Probe:
    """A thread that sleeps 0.2 ms in a loop and notes, per wake, its gap and run-queue wait."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float]] = []
        self.stop = False
        self.fifo = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        time.sleep(0.05)

    def _run(self) -> None:
        self.fifo = set_fifo(75)
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat", "rb",
                  buffering=0) as f:
            def queued() -> float:
                f.seek(0)
                return int(f.read().split()[1]) / 1e9

            last, last_q = time.perf_counter(), queued()
            while not self.stop:
                time.sleep(0.0002)
                now, q = time.perf_counter(), queued()
                self.rows.append((now, now - last, q - last_q))
                last, last_q = now, q

    def longest_wait(self, t0: float, t1: float) -> float:
        """The longest time (s) a wake overlapping [t0, t1] was kept from running."""
        return max(gap - q for t, gap, q in self.rows if t >= t0 and t - gap <= t1)

    def close(self) -> None:
        self.stop = True
        self.thread.join()


def measure(probe: Probe, reps: int, step: Callable[[], Any],
            setup: Callable[[], Any] | None = None) -> tuple[float, float]:
    waits = []
    for _ in range(reps):
        if setup is not None:
            setup()
        time.sleep(0.02)
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        time.sleep(0.01)
        waits.append(1000.0 * probe.longest_wait(t0, t1))
    return float(np.median(waits)), float(max(waits))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    prepare_runtime()  # as the module does at start
    sys.setswitchinterval(0.0001)
    fifo = set_fifo(70)
    libc = ctypes.util.find_library("c")
    locked = bool(libc) and ctypes.CDLL(libc).mlockall(3) == 0
    folder = Path(tempfile.mkdtemp(prefix="grooverack-gil-"))
    for p in MODELS.iterdir():
        if p.suffix in (".json", ".onnx", ".npz"):
            shutil.copy(p, folder / p.name)
    manifest = folder / "grooverack.json"
    watch = ModelWatch(manifest, period=0.0)
    data = json.loads(manifest.read_text())
    pair = data["variants"]["int8"]
    held: list[Any] = [watch.runner]
    serial = [0]

    def touch_manifest() -> None:  # a new model: its manifest changed
        serial[0] += 1
        data["thresholds"] = [0.4 + serial[0] / 1000] * 9
        manifest.write_text(json.dumps(data))

    def replace() -> None:  # the generator's worker: the watch loads it, the old is closed
        new = watch.poll()
        assert new is not None
        old, held[0] = held[0], new
        old.close()

    def drop_whole() -> None:  # a runner let go of at once
        held[0] = None

    def new_runner() -> None:
        held[0] = runner_module.ModelRunner(manifest)

    probe = Probe()
    rows: list[tuple[str, tuple[float, float]]] = []
    try:
        rows.append(("nothing (a 20 ms sleep)", measure(probe, args.reps,
                                                         lambda: time.sleep(0.02))))
        for role in ("encoder", "decoder", "decoder_plain"):
            path = folder / pair[role]
            rows.append((f"session: {pair[role]}", measure(
                probe, args.reps, lambda path=path: runner_module.open_session(path.read_bytes()))))
        bank = folder / data["latent_bank"]["file"]
        rows.append(("latent bank", measure(probe, args.reps, lambda: load_bank(
            bank, data["latent_size"], data["genres"], data["latent_bank"]["perturbation"]))))
        rows.append(("a whole runner (ModelRunner)", measure(probe, args.reps, new_runner,
                                                             drop_whole)))
        rows.append(("the same runner dropped at once", measure(probe, args.reps, drop_whole,
                                                                new_runner)))
        held[0] = watch.runner
        rows.append(("a replacement (watch.poll + close)",
                     measure(probe, args.reps, replace, touch_manifest)))
    finally:
        probe.close()
        shutil.rmtree(folder, ignore_errors=True)
    cpu = cpu_name()
    import onnxruntime

    text = (f"The longest time a 0.2 ms-sleeping probe thread was kept from running (its gap "
            f"minus its run-queue wait) while the loader did each step, median and worst of "
            f"{args.reps}. {cpu}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} (a shared machine), Python {platform.python_version()}, "
            f"onnxruntime {onnxruntime.__version__}; SCHED_FIFO "
            f"{'yes' if fifo and probe.fifo else 'no'}, mlockall {'yes' if locked else 'no'}, "
            f"switch interval 0.1 ms; `python benchmarks/bench_hot_load_gil.py --reps "
            f"{args.reps} --write`.\n\n| step | median | worst |\n|---|---|---|\n"
            + "".join(f"| {name} | {a:.2f} ms | {b:.2f} ms |\n" for name, (a, b) in rows))
    print(text)
    if args.write:
        from grooverack.storage import write_marked_section

        write_marked_section(REPO / "benchmarks" / "README.md", "bench_hot_load_gil",
                             "### Piece by piece: what a load holds the GIL for "
                             "(bench_hot_load_gil)\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
