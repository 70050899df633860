"""A real `grooverack web` in a subprocess on a free port, and Debian's chromium driven by
Playwright (no browser download: `executable_path`). Shared by the page tests and the web
benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def web_server(state_dir: Path, *extra: str, timeout: float = 30.0) -> Iterator[str]:
    """`grooverack web` until the block ends (SIGTERM: outputs to 0 V, state saved); yields the
    page's URL once it answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "firmware"), "GROOVERACK_STATE_DIR": str(state_dir)}
    log = open(state_dir / "web.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "grooverack", "web", "--port", str(port),
                             *extra], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        import urllib.request

        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"grooverack web ended: {(state_dir / 'web.log').read_text()}")
            try:
                with urllib.request.urlopen(url + "api/state", timeout=1) as r:
                    if r.status == 200 and len(r.read()) > 100:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"grooverack web did not answer in {timeout} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
