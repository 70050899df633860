"""The module's page (issue 33): how fast it shows the pattern, how fast a control moved in it
reaches the engine, and whether it costs the real-time loop anything.

    .venv/bin/python -m benchmarks.bench_web [--loads 10] [--moves 200] [--takes 3]
                                             [--seconds 12] [--rt] [--write]
                                             [--screenshot docs/web-page.png]

- load: `grooverack web` (sim board) in a subprocess; Debian's chromium (Playwright,
  executable_path) opens the page `--loads` times, each in a fresh context; the figure is
  navigation start -> the first pattern drawn (`window.grooverackFirstPattern`, performance.now()).
- control: FOLLOW focused and moved with the arrow keys `--moves` times, 30 ms apart; each move's
  time from the page's input event to the answer the page gets on its websocket (its `ack`, which
  the server sends once the engine's loop thread has applied the value and published the state
  that shows it): an upper bound of "reaches the engine".
- clock grid: `run --board sim --clock` against `web --clock` with the page open in chromium and a
  client calling the API 100 times a second (GET /api/state; `--writes`: every 10th a POST),
  alternating, `--takes` each; trigger rises' actual write times against the clock's step grid
  (benchmarks/bench_sync.py's measure), p99 of |offset|. `--rt` gives both `--rt`.
`--write` puts the results into benchmarks/README.md between the bench_web markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from grooverack.storage import write_marked_section  # noqa: E402

from benchmarks.bench_sync import SETTINGS, _figures, _rises  # noqa: E402
from benchmarks.machine_info import cpu_name  # noqa: E402
from tests.rig.webserver import chromium, web_server  # noqa: E402

BPM = 120.0


def measure_load(url: str, browser, loads: int) -> list[float]:
    out = []
    for _ in range(loads):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.grooverackFirstPattern !== undefined", timeout=10000)
        out.append(float(page.evaluate("window.grooverackFirstPattern")))
        context.close()
    return out


def measure_control(url: str, browser, moves: int) -> list[float]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.grooverackFirstPattern !== undefined", timeout=10000)
    follow = page.get_by_role("slider", name="FOLLOW")
    follow.focus()
    page.keyboard.press("Home")
    time.sleep(0.3)
    page.evaluate("window.grooverackControlMs.length = 0")
    for i in range(moves):
        page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        time.sleep(0.03)
    time.sleep(0.5)
    out = [float(x) for x in page.evaluate("window.grooverackControlMs")]
    context.close()
    return out


def screenshot(url: str, browser, path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.grooverackFirstPattern !== undefined", timeout=10000)
    time.sleep(2.0)  # a few patterns in, the playhead moving
    page.screenshot(path=str(path), full_page=True)
    context.close()


def grid_offsets(timing: Path) -> np.ndarray:
    step_s, beat_s = 15.0 / BPM, 60.0 / BPM
    rises = np.array([t for t in _rises(timing) if t >= beat_s - 0.25 * step_s])
    return (rises - np.round(rises / step_s) * step_s) * 1e3


def run_plain(seconds: float, rt: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        timing = Path(tmp) / "timing.csv"
        cmd = [sys.executable, "-m", "grooverack", "run", "--board", "sim", "--clock", "--bpm",
               f"{BPM:g}", "--duration", f"{seconds:g}", "--timing", str(timing), *SETTINGS,
               *(["--rt"] if rt else [])]
        env = {**os.environ, "GROOVERACK_STATE_DIR": tmp,
               "PYTHONPATH": str(REPO / "firmware")}
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=REPO)
        return _figures(grid_offsets(timing))


def api_client(url: str, stop: threading.Event, calls: list[float], writes: bool = False) -> None:
    """100 calls a second: GET /api/state (`writes`: every 10th a POST /api/controls, which makes
    the generator decode a new pattern as a turned pot does)."""
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        if writes and n % 10 == 9:
            req = urllib.request.Request(url + "api/controls", method="POST",
                                         data=json.dumps({"uncertainty": 0.0}).encode(),
                                         headers={"content-type": "application/json"})
        else:
            req = urllib.request.Request(url + "api/state")
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                r.read()
            calls.append(time.monotonic() - t)
        except OSError:
            pass
        n += 1
        next_at += 0.01
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def run_with_page(browser, seconds: float, rt: bool, writes: bool) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        timing = state / "timing.csv"
        extra = ["--clock", "--bpm", f"{BPM:g}", "--duration", f"{seconds:g}", "--timing",
                 str(timing), *SETTINGS, *(["--rt"] if rt else [])]
        calls: list[float] = []
        started = time.monotonic()
        with web_server(state, *extra) as url:
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            stop = threading.Event()
            client = threading.Thread(target=api_client, args=(url, stop, calls, writes),
                                      daemon=True)
            client.start()
            # until the run's own --duration ends it (the timing file is written at its end)
            while not timing.exists() and time.monotonic() - started < seconds + 20:
                time.sleep(0.2)
            stop.set()
            client.join(3)
            rate = len(calls) / max(time.monotonic() - started, 1e-9)
            context.close()
        return _figures(grid_offsets(timing)), rate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=10)
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--takes", type=int, default=3)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--rt", action="store_true")
    p.add_argument("--writes", action="store_true",
                   help="the API client's every 10th call a POST /api/controls")
    p.add_argument("--write", action="store_true")
    p.add_argument("--screenshot", metavar="PNG")
    a = p.parse_args(argv)
    load_before = os.getloadavg()
    with chromium() as browser:
        with (tempfile.TemporaryDirectory() as tmp,
              web_server(Path(tmp), *(["--rt"] if a.rt else [])) as url):
            if a.screenshot:  # first: the module as it starts, the controls untouched
                screenshot(url, browser, Path(a.screenshot))
            loads = measure_load(url, browser, a.loads)
            moves = measure_control(url, browser, a.moves)
        print(f"load to first pattern: median {np.median(loads):.0f} ms, max {max(loads):.0f} ms "
              f"({len(loads)} loads)")
        print(f"control to engine: median {np.median(moves):.1f} ms, p99 "
              f"{np.percentile(moves, 99):.1f} ms, max {max(moves):.1f} ms ({len(moves)} moves)")
        plain, paged, rates = [], [], []
        for take in range(a.takes):
            plain.append(run_plain(a.seconds, a.rt))
            figures, rate = run_with_page(browser, a.seconds, a.rt, a.writes)
            paged.append(figures)
            rates.append(rate)
            print(f"take {take + 1}: run p99 {plain[-1]['p99_ms']:.3f} ms (n {plain[-1]['count']}),"
                  f" web + page + API p99 {paged[-1]['p99_ms']:.3f} ms (n {paged[-1]['count']},"
                  f" {rate:.0f} calls/s)", flush=True)
    rt = " --rt" if a.rt else ""
    load_after = os.getloadavg()
    rows = [f"| {i + 1} | {x['p99_ms']:.3f} | {y['p99_ms']:.3f} | {y['p99_ms'] - x['p99_ms']:+.3f} "
            f"| {x['median_ms']:.3f} / {y['median_ms']:.3f} | {r:.0f} |"
            for i, (x, y, r) in enumerate(zip(plain, paged, rates, strict=True))]
    text = "\n".join([
        "## The web page (`bench_web.py`, issue 33)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}), chromium {chromium_version()}: "
        f"`python -m benchmarks.bench_web --loads {a.loads} --moves {a.moves} --takes {a.takes} "
        f"--seconds {a.seconds:g}{rt}{' --writes' if a.writes else ''}`. The box is shared: load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores.",
        "",
        f"- Page load to the first pattern drawn: median {np.median(loads):.0f} ms, max "
        f"{max(loads):.0f} ms over {len(loads)} loads (target <= 1000 ms).",
        f"- A control moved in the page (FOLLOW by arrow key, 30 ms apart) to the answer that the "
        f"engine's thread applied it: median {np.median(moves):.1f} ms, p99 "
        f"{np.percentile(moves, 99):.1f} ms, max {max(moves):.1f} ms over {len(moves)} moves "
        "(target p99 <= 20 ms).",
        f"- Clock grid (`--clock`, {BPM:g} BPM, {a.seconds:g} s a take, takes alternating), p99 of "
        f"|trigger rise - clock step| in ms: `run --board sim{rt}` against `web{rt}` with the "
        "page open in chromium and a client calling the API"
        f" ({'GET /api/state, every 10th a POST /api/controls' if a.writes else 'GET /api/state'})"
        " (target: within +-0.1 ms):",
        "",
        "| take | run p99 | web + page + API p99 | difference | medians run / web | API calls/s |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Median over the takes: run p99 {np.median([x['p99_ms'] for x in plain]):.3f} ms, web + "
        f"page + API p99 {np.median([y['p99_ms'] for y in paged]):.3f} ms.",
    ])
    print(text)
    if a.write:
        write_marked_section(REPO / "benchmarks" / "README.md", "bench_web", text,
                             "The web page (bench_web.py)")
    return 0


def chromium_version() -> str:
    try:
        out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True,
                             timeout=20).stdout.strip()
        return out.split()[1] if len(out.split()) > 1 else out
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
