"""Independent JACK timing probe (issue 34 item 4): the ES-9 and MIDI back ends against a clock
played by a JACK client of the probe's own (tests/rig/jackprobe.py), timed from the sent clock and
the recorded outputs only.

    python -m benchmarks.probe_jack [--periods 64 128] [--bpm 40 120 300] [--takes 2]
        [--only es9|midi] [--json out.json] [--set key=value ...]

Per JACK period (`jackd -d dummy -r 48000 -p P`, a server of its own) and tempo: the ES-9 at
4 and 24 PPQN (CV clock pulses into input 1; step k on edge k * ppqn / 4; every trigger rise
after the first beat against its step's edge: the latency in frames, how many rises lie within
+-1 sample of it, the spread) and MIDI (Start + 24 PPQN clock; every note-on after the first beat
against its step's tick as the probe wrote it: median, p99, max in ms, the spread about the
median; how many notes the step table placed). Targets: ES-9 steps at edge + a fixed latency
+-1 sample, the same in every take; MIDI p99 <= 1 ms (`--chain`; docs/jack.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks.machine_info import cpu_name  # noqa: E402
from tests.rig import jackprobe  # noqa: E402
from tests.rig.jackserver import start_server, stop_server  # noqa: E402


def _midi_line(f: dict) -> str:
    """One take's MIDI figures on a line."""
    parts = []
    if "notes" in f:
        parts.append(f"{f['notes']} notes, median {f['median_signed_ms']} ms, p99 "
                     f"{f['abs']['p99_ms']} ms, max {f['abs']['max_ms']} ms, spread p99 "
                     f"{f['spread']['p99_ms']} ms; first step {f.get('first_frames')} frames")
    parts.append(f"note-offs {f['exact']}/{f['offs']} exact, p99 {f['abs_offs']['p99_ms']} ms, "
                 f"max {f['abs_offs']['max_ms']} ms, hanging {f['hanging']}")
    if "grid" in f:
        parts.append(f"clock out {f['clock_out']}: grid p99 {f['grid']['p99_ms']} ms max "
                     f"{f['grid']['max_ms']} ms, interval p99 {f['interval']['p99_ms']} ms, "
                     f"{f['interval_exact']:.0%} within 1 frame")
    elif "offset" in f:
        parts.append(f"clock out {f['clock_out']}: median {f['median_frames']} frames, p99 "
                     f"{f['offset']['p99_ms']} ms, spread p99 {f['spread_clock']['p99_ms']} ms, "
                     f"{f['at_median']:.0%} at the median")
    return "; ".join(parts) + f"; xruns {f['xruns']} ({f['transport']}, {f['placed']} placed)"


def _mirror_line(f: dict) -> str:
    """The MIDI mirror's figures of an ES-9 take, on the end of its line."""
    m = f.get("mirror")
    if m is None:
        return ""
    return (f"; mirror: note-ons {m['on_exact']}/{m['note_ons']} on their rise's frame "
            f"({m['on_min']}..{m['on_max']} frames, p99 {m['on_frames']['p99_ms']} ms), "
            f"note-offs {m['off_exact']}/{m['note_offs']} on their fall's, late {f['late']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--periods", type=int, nargs="+", default=[64, 128])
    p.add_argument("--bpm", type=float, nargs="+", default=[40.0, 120.0, 300.0])
    p.add_argument("--ppqn", type=int, nargs="+", default=[4, 24])
    p.add_argument("--takes", type=int, default=2)
    p.add_argument("--only", choices=("es9", "midi"))
    p.add_argument("--rt", action="store_true",
                   help="the back end's threads real-time, as `grooverack run --rt`")
    p.add_argument("--chain", action="store_true",
                   help="MIDI: the answer recorded by a second client of the probe (a chain: "
                        "clock client -> back end -> recorder), not the clock's own (a loop)")
    p.add_argument("--master", action="store_true",
                   help="MIDI: the module the clock master (internal clock, MIDI clock out); "
                        "its clock out timed against its own grid")
    p.add_argument("--start-gap", type=int, default=1,
                   help="MIDI: frames from the probe's Start to its first tick (default 1)")
    p.add_argument("--mirror", action="store_true",
                   help="ES-9: with its MIDI mirror (midi.api=jack), recorded on the CV "
                        "recorder's client: each note-on/off against its trigger's rise/fall")
    p.add_argument("--json")
    p.add_argument("--set", dest="extra", action="append", default=[])
    a = p.parse_args(argv)
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    rows = []
    for period in a.periods:
        server = start_server(period=period)
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for bpm in a.bpm:
                    for take in range(a.takes):
                        if a.only != "midi":
                            for ppqn in a.ppqn:
                                f = jackprobe.es9_take(server.name, Path(tmp), ppqn, bpm,
                                                       rt=a.rt, extra=tuple(a.extra),
                                                       mirror=a.mirror)
                                row = {"path": "es9", "period": period, "bpm": bpm,
                                       "ppqn": ppqn, "take": take, **f}
                                rows.append(row)
                                print(f"es9  p{period} {bpm:5.0f} BPM {ppqn:2d} PPQN take {take}: "
                                      f"latency {f['latency']} within+-1 {f['within']}/"
                                      f"{f['rises']} spread p99 {f['spread']['p99_ms']} ms "
                                      f"offsets {f.get('min')}..{f.get('max')} "
                                      f"xruns {f['xruns']}/{f['backend_xruns']} "
                                      f"({f['transport']})" + _mirror_line(f), flush=True)
                        if a.only != "es9":
                            f = jackprobe.midi_take(server.name, Path(tmp), bpm,
                                                    rt=a.rt, extra=tuple(a.extra),
                                                    name=f"midiprobe{take}", chain=a.chain,
                                                    master=a.master, start_gap=a.start_gap)
                            rows.append({"path": "midi", "period": period, "bpm": bpm,
                                         "take": take, **f})
                            print(f"midi p{period} {bpm:5.0f} BPM take {take}: "
                                  + _midi_line(f), flush=True)
        finally:
            stop_server(server)
    info = {"machine": platform.node(), "cpu": cpu_name(), "cores": os.cpu_count(),
            "command": " ".join(["python", "benchmarks/probe_jack.py", *(argv or sys.argv[1:])]),
            "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
