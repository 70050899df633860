"""The CPU a benchmark ran on, for the machine line printed beside its figures.

Benchmarks run both as scripts (`python benchmarks/bench_x.py`) and as modules
(`python -m benchmarks.bench_x`); each puts this folder on `sys.path` and imports
`machine_info`, so the lookup lives in one place.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows, else 'unknown CPU'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
