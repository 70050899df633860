"""MIDI output timing over JACK: lateness of every message grooverack sends against the time the
player scheduled it, measured where a receiver gets it.

A JACK dummy server (`jackd -d dummy`, its own name) hosts grooverack's MIDI back end (virtual
ports, python-rtmidi's JACK API) and a test client in another process (tests/rig/jackserver.py
`MidiRig`). The client plays a note on every 16th with changing velocity (the groove changes at
every step: re-encoded at every step, `generation.reencode=step`) and a morph CC on every 16th
(a decode at every step), and records what `grooverack out` sends. Lateness = the JACK time of
the frame a message arrives on (mapped onto time.monotonic()) - its scheduled time. rtmidi writes
what it is given at frame 0 of the next JACK cycle, so a cycle (period / rate) bounds the spread.
Also reported: send-side lateness (when `send_message` returned - scheduled).

    .venv/bin/python -m benchmarks.bench_midi --seconds 20 --period 32 [--rt] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from grooverack.backends.midi import MidiBackend  # noqa: E402
from grooverack.config import load_settings  # noqa: E402
from grooverack.runtime.serve import make_engine  # noqa: E402

from tests.rig import jackserver  # noqa: E402  (the JACK server and MIDI test client)

SR = 48000


def stats(x: list[float]) -> dict[str, float]:
    a = np.asarray(x) * 1e3
    return {"n": int(a.size), "median_ms": float(np.median(a)), "p99_ms": float(np.quantile(a, 0.99)),
            "max_ms": float(a.max()), "min_ms": float(a.min())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--period", type=int, default=32, help="JACK period in frames (48 kHz)")
    p.add_argument("--bpm", type=float, default=120.0)
    p.add_argument("--rt", action="store_true", help="SCHED_FIFO sender/loop/generator")
    p.add_argument("--json", metavar="FILE", help="write the figures here too")
    args = p.parse_args(argv)

    try:
        server = jackserver.start_server(period=args.period)
    except BaseException as exc:  # pytest's Skipped when jackd is missing
        print(f"bench_midi: no JACK server: {exc}", file=sys.stderr)
        return 2
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    load0 = os.getloadavg()
    settings = load_settings(overrides=[
        "midi.api=jack", "clock.source=internal", f"tempo={args.bpm}", "generation.reencode=step",
        "density=0.7", "uncertainty=0.3", "midi.profile=poly2", "outputs.trigger_ms=5.0",
        "record=record"])
    step = SR * 15.0 / args.bpm  # frames per 16th
    steps = int(args.seconds * SR / step)
    events = []
    for i in range(steps):
        f = round(i * step)
        events.append((f, bytes((0x99, 36, 40 + (i * 37) % 80))))
        events.append((f + 200, bytes((0x89, 36, 0))))
        events.append((f + 100, bytes((0xB0, 21, (i * 13) % 128))))  # morph
    events.sort(key=lambda e: e[0])
    engine = make_engine(settings, threaded=True)
    backend = MidiBackend(engine, settings)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backend.open_ports()
            rig = jackserver.MidiRig(server, events, int(args.seconds * SR), Path(tmp),
                                     to="grooverack in", from_="grooverack out")
            try:
                backend.start(rt=args.rt)
                generated0 = engine.generator.generated
                rig.go()
                result = rig.result(timeout=args.seconds + 60)
                generated = engine.generator.generated - generated0
            finally:
                backend.stop()
                rig.close()
    finally:
        engine.close()
        jackserver.stop_server(server)

    due: dict[bytes, list[float]] = {}
    for d_time, _, data in backend.sender.sent:
        due.setdefault(data, []).append(d_time)
    # the time the receiver's JACK callback had the message in hand
    received = [(now, bytes.fromhex(h)) for _, _, h, now in result["received"]]
    late = [t - min(due[d], key=lambda x, t=t: abs(t - x)) for t, d in received if d in due]
    send = [sent - d for d, sent, _ in backend.sender.sent]
    out = {
        "command": "benchmarks/bench_midi.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
                   f"{platform.release()}, Python {platform.python_version()}",
        "load_average_at_start": [round(x, 2) for x in load0],
        "jack": f"dummy, {SR} Hz, {args.period} frames ({args.period / SR * 1e3:.2f} ms)",
        "bpm": args.bpm, "seconds": args.seconds, "rt": args.rt,
        "patterns_generated": generated, "steps": steps, "xruns": result["xruns"],
        "received": len(received), "unmatched": len(received) - len(late),
        "lateness_at_receiver": stats(late) if late else None,
        "lateness_at_send": stats(send) if send else None,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
