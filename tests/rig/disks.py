"""Small disks for the write-fault tests: a tmpfs of a chosen size (the test is skipped where
mounting is not permitted, e.g. without root), unmounted when the test is done, and a filler
that takes what room is left on one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """`where` (created) with a tmpfs mounted on it (`options`: e.g. "size=64k", "ro,size=64k")."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, chunk: int = 4096) -> None:
    """Write zeros to `disk`/filler until the disk says it is full."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * chunk):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
