"""An independent timing probe on a real JACK server: the clock goes in, what comes out is timed.

Nothing here asks the back end under test what it did: a JACK client of the probe's own (in a
child process, so that its process callback never waits for the GIL of the process under test)
plays a clock and records the answer on JACK's frame clock, and the figures come from the sent
clock and the recorded samples or MIDI events only.

- ES-9 (`CvProbe`): client `es9test-in` plays CV clock pulses (5 V, 5 ms or half the interval) at
  `ppqn` on its output port 1 (the back end's input device, clock on input 1); client
  `es9test-out` records every input port sample by sample (the back end's output device). Steps
  sit on the edges (step k on edge k * ppqn / 4); `es9_figures` gives each trigger rise's offset
  from its step's edge.
- MIDI (`MidiProbe`): client `midiprobe` sends Start, then 24-PPQN clock (0xF8) into the port
  matching `to`, and records what the port matching `from_` sends, each event at its frame.
  `midi_figures` gives each note-on's offset from its step's tick (step k on tick 6k).

`python tests/rig/jackprobe.py cv|midi ...` is the child; `benchmarks/probe_jack.py` the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SR = 48000
PULSE_S = 0.005  # s: a sent clock pulse's width (at most half the interval)
LEVEL = 0.2  # sample units (2 V at 10 V per unit): an output above it is high
VPU = 10.0  # volts per sample unit


def clock_edges(ppqn: int, bpm: float, frames: int, lead: int) -> np.ndarray:
    """Frames of a steady clock's rising edges from `lead` to a pulse before `frames`."""
    every = 60.0 * SR / (bpm * ppqn)
    n = int((frames - lead - SR * PULSE_S - 1) // every) + 1
    return np.round(lead + np.arange(n) * every).astype(np.int64)


def midi_clock(bpm: float, beats: float, lead: int,
               gap: int = 1) -> tuple[list[tuple[int, bytes]], np.ndarray]:
    """(events [(frame, bytes)]: Start at `lead`, the first tick `gap` frames later, then 24
    PPQN; the tick frames)."""
    tick = SR * 60.0 / bpm / 24
    ticks = np.round(lead + gap + np.arange(int(round(beats * 24))) * tick).astype(np.int64)
    return [(lead, b"\xfa")] + [(int(f), b"\xf8") for f in ticks], ticks


# --- the child: a JACK client of its own

def _cv_main(a: Any) -> int:
    import jack

    edges = np.asarray(json.loads(a.edges), dtype=np.int64)
    width = int(SR * PULSE_S)
    if len(edges) > 1:
        width = min(width, int(np.diff(edges).min()) // 2)
    signal = np.zeros(a.frames, dtype=np.float32)
    for e in edges:
        signal[e:e + width] = 5.0 / VPU
    src = jack.Client(a.source, servername=a.server, no_start_server=True)
    sink = jack.Client(a.sink, servername=a.server, no_start_server=True)
    outs = [src.outports.register(f"cv_{i}") for i in range(1, a.outputs + 1)]
    ins = [sink.inports.register(f"cv_{i}") for i in range(1, a.inputs + 1)]
    # --midi-from: the MIDI the back end sends beside its CV, on the same client and frames
    midi_in = sink.midi_inports.register("midi") if a.midi_from else None
    midi: list[tuple[int, str]] = []
    cap = np.zeros((a.inputs, a.frames), dtype=np.float32)
    state: dict[str, Any] = {"start": None, "armed": False, "xruns": 0}
    done = threading.Event()

    @src.set_process_callback
    def play(frames: int) -> None:
        f0 = src.last_frame_time
        if state["armed"] and state["start"] is None:
            state["start"] = f0
        for port in outs:
            port.get_array()[:] = 0.0
        if state["start"] is not None:
            i = f0 - state["start"]
            if i < a.frames:
                n = min(frames, a.frames - i)
                outs[0].get_array()[:n] = signal[i:i + n]

    @sink.set_process_callback
    def record(frames: int) -> None:
        if state["start"] is None or done.is_set():
            return
        i = sink.last_frame_time - state["start"]
        if i + frames > a.frames:
            done.set()
            return
        for ch, port in enumerate(ins):
            cap[ch, i:i + frames] = port.get_array()
        if midi_in is not None:
            for offset, data in midi_in.incoming_midi_events():
                midi.append((i + offset, bytes(data).hex()))

    @src.set_xrun_callback
    def xrun(_delay: float) -> None:
        state["xruns"] += 1

    src.activate()
    sink.activate()
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + 20
    while midi_in is not None and not sink.get_all_connections(midi_in):
        try:  # the port under test may come up after the probe's
            sink.connect([p.name for p in sink.get_ports(a.midi_from, is_midi=True, is_output=True)
                          if not p.name.startswith(a.sink)][0], midi_in)
        except IndexError:
            if time.monotonic() > deadline:
                print("ports not found", flush=True)
                return 1
            time.sleep(0.05)
    state["xruns"] = 0
    state["armed"] = True
    ok = done.wait(timeout=a.frames / SR + 60)
    src.deactivate()
    sink.deactivate()
    np.save(a.out, cap)
    Path(a.out + ".json").write_text(json.dumps({"xruns": state["xruns"], "complete": ok,
                                                 "midi": midi}))
    return 0


def _midi_main(a: Any) -> int:
    import jack

    events = [(int(f), bytes.fromhex(h)) for f, h in json.loads(Path(a.play).read_text())]
    client = jack.Client(a.name, servername=a.server, no_start_server=True)
    out = client.midi_outports.register("out")
    # --chain: the answer recorded by a second client, run after the one under test (a chain,
    # as a MIDI interface's capture and playback are), not the clock's (a loop: JACK runs one
    # of its clients before the other, so the answer arrives a period later)
    rec = jack.Client(a.name + "-rec", servername=a.server, no_start_server=True) \
        if a.chain else client
    inp = rec.midi_inports.register("in")
    state: dict[str, Any] = {"start": None, "armed": False, "next": 0, "xruns": 0}
    received: list[tuple[int, str]] = []
    sent: list[tuple[int, str]] = []  # the frames they were really written at (an xrun shifts)
    done = threading.Event()

    @client.set_process_callback
    def process(frames: int) -> None:
        out.clear_buffer()
        f0 = client.last_frame_time
        if state["armed"] and state["start"] is None:
            state["start"] = f0
        if state["start"] is None:
            return
        rel = f0 - state["start"]
        while state["next"] < len(events) and events[state["next"]][0] < rel + frames:
            frame, data = events[state["next"]]
            out.write_midi_event(max(0, frame - rel), data)
            sent.append((rel + max(0, frame - rel), data.hex()))
            state["next"] += 1
        if not a.chain:
            record(frames)

    def record(frames: int) -> None:
        if state["start"] is None:
            return
        rel = rec.last_frame_time - state["start"]
        for offset, data in inp.incoming_midi_events():
            received.append((rel + offset, bytes(data).hex()))
        if rel + frames >= a.frames:
            done.set()

    if a.chain:
        rec.set_process_callback(record)
        rec.activate()

    @client.set_xrun_callback
    def xrun(_delay: float) -> None:
        state["xruns"] += 1

    client.activate()
    deadline = time.monotonic() + 20
    while True:  # the ports under test may come up after the probe's
        try:
            if a.to:
                client.connect(out, [p.name for p in client.get_ports(
                    a.to, is_midi=True, is_input=True) if not p.name.startswith(a.name + ":")][0])
            if a.from_:
                client.connect([p.name for p in client.get_ports(
                    a.from_, is_midi=True, is_output=True)
                    if not p.name.startswith(a.name)][0], inp)
            break
        except IndexError:
            if time.monotonic() > deadline:
                print("ports not found", flush=True)
                return 1
            time.sleep(0.05)
    print("ready", flush=True)
    sys.stdin.readline()
    state["xruns"] = 0
    state["armed"] = True
    ok = done.wait(timeout=a.frames / SR + 60)
    client.deactivate()
    if a.chain:
        rec.deactivate()
    Path(a.out).write_text(json.dumps({"complete": ok, "xruns": state["xruns"],
                                       "received": received, "sent": sent}))
    client.close()
    if a.chain:
        rec.close()
    return 0


def _main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("cv", "midi"))
    p.add_argument("--server", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--edges", default="[]")
    p.add_argument("--source", default="es9test-in")
    p.add_argument("--sink", default="es9test-out")
    p.add_argument("--outputs", type=int, default=4)
    p.add_argument("--inputs", type=int, default=4)
    p.add_argument("--play", default="")
    p.add_argument("--name", default="midiprobe")
    p.add_argument("--to", default="")
    p.add_argument("--from", dest="from_", default="")
    p.add_argument("--chain", action="store_true")
    p.add_argument("--midi-from", dest="midi_from", default="")
    a = p.parse_args(argv)
    return _cv_main(a) if a.mode == "cv" else _midi_main(a)


# --- the parent's side

class _Child:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        import select

        poller = select.poll()
        assert self.proc.stdout is not None
        poller.register(self.proc.stdout, select.POLLIN | select.POLLHUP)
        line = self.proc.stdout.readline() if poller.poll(60_000) else "(nothing in 60 s)"
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"JACK probe did not start: {line!r}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> None:
        self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class CvProbe(_Child):
    """Plays `edges` as CV clock pulses on `es9test-in:cv_1` and records `inputs` channels of
    `es9test-out` for `frames` frames from `go()`; `midi_from`: and on the same client, what the
    MIDI port matching it sends (`midi`: [(frame, message)])."""

    def __init__(self, server: str, edges: np.ndarray, frames: int, tmp: Path, *,
                 inputs: int = 4, outputs: int = 4, midi_from: str = "") -> None:
        self.out = str(Path(tmp) / "cvprobe.npy")
        self.frames = frames
        super().__init__(["cv", "--server", server, "--frames", str(frames), "--out", self.out,
                          "--edges", json.dumps([int(e) for e in edges]),
                          "--inputs", str(inputs), "--outputs", str(outputs),
                          *(["--midi-from", midi_from] if midi_from else [])])

    def result(self) -> tuple[np.ndarray, int]:
        """(capture [inputs, frames], xruns)."""
        self.wait(self.frames / SR + 90)
        info = json.loads(Path(self.out + ".json").read_text())
        if not info["complete"]:
            raise AssertionError("CV probe: the recording did not complete")
        self.midi = [(int(f), bytes.fromhex(h)) for f, h in info.get("midi", [])]
        return np.load(self.out), int(info["xruns"])


class MidiProbe(_Child):
    """Plays `events` [(frame, bytes)] into the MIDI input port matching `to` and records what
    the port matching `from_` sends, for `frames` frames from `go()`; `chain`: recorded by a
    client of its own (`NAME-rec`), after the one under test in the cycle."""

    def __init__(self, server: str, events: list[tuple[int, bytes]], frames: int, tmp: Path, *,
                 to: str, from_: str, name: str = "midiprobe", chain: bool = False) -> None:
        play = Path(tmp) / f"{name}-play.json"
        play.write_text(json.dumps([[int(f), bytes(d).hex()] for f, d in events]))
        self.out = str(Path(tmp) / f"{name}-received.json")
        self.frames = frames
        super().__init__(["midi", "--server", server, "--frames", str(frames), "--out", self.out,
                          "--play", str(play), "--name", name, "--to", to, "--from", from_,
                          *(["--chain"] if chain else [])])

    def result(self) -> tuple[list[tuple[int, bytes]], int]:
        """([(frame, message)] received, xruns); `sent`: [(frame, message)] as written (a
        cycle an xrun skipped moves its events to the next one's first frame)."""
        self.wait(self.frames / SR + 90)
        info = json.loads(Path(self.out).read_text())
        if not info["complete"]:
            raise AssertionError("MIDI probe: the recording did not complete")
        self.sent = [(int(f), bytes.fromhex(h)) for f, h in info["sent"]]
        return [(int(f), bytes.fromhex(h)) for f, h in info["received"]], int(info["xruns"])


# --- figures

def rises(x: np.ndarray) -> np.ndarray:
    """Frames where `x` goes above LEVEL."""
    high = np.concatenate(([False], x > LEVEL))
    return np.flatnonzero(high[1:] & ~high[:-1])


def _ms(frames: np.ndarray) -> dict[str, float | int | None]:
    a = np.abs(np.asarray(frames, dtype=np.float64))
    if a.size == 0:
        return {"count": 0, "median_ms": None, "p99_ms": None, "max_ms": None}
    return {"count": int(a.size), "median_ms": float(np.median(a)) / SR * 1e3,
            "p99_ms": float(np.percentile(a, 99)) / SR * 1e3, "max_ms": float(a.max()) / SR * 1e3}


def es9_figures(cap: np.ndarray, edges: np.ndarray, ppqn: int, *,
                lock_beats: float = 1.0) -> dict[str, Any]:
    """Trigger rises (every recorded channel) against the step grid: step k on edge k * ppqn /
    4. Each rise after the lock (`lock_beats` of clock) is given the latest step edge at or
    before it; `latency` is the median offset (frames), `spread` each offset less it. `within`:
    rises within +-1 sample of the latency."""
    step_edges = edges[:: max(1, ppqn // 4)]
    lock = edges[min(len(edges) - 1, int(round(lock_beats * ppqn)))]
    offsets = []
    for ch in range(cap.shape[0]):
        for r in rises(cap[ch]):
            k = int(np.searchsorted(step_edges, r, side="right")) - 1
            if k >= 0 and step_edges[k] >= lock:
                offsets.append(int(r - step_edges[k]))
    off = np.asarray(offsets, dtype=np.int64)
    if off.size == 0:
        return {"rises": 0, "latency": None, "within": 0, "spread": _ms(off),
                "offsets": []}
    latency = int(np.median(off))
    spread = off - latency
    return {"rises": int(off.size), "latency": latency, "latency_ms": latency / SR * 1e3,
            "within": int((np.abs(spread) <= 1).sum()), "spread": _ms(spread),
            "offset_ms": _ms(off), "min": int(off.min()), "max": int(off.max()),
            "offsets": sorted({int(o) for o in off})[:20]}


def falls(x: np.ndarray) -> np.ndarray:
    """Frames where `x` goes back to LEVEL or below."""
    high = np.concatenate(([False], x > LEVEL))
    return np.flatnonzero(~high[1:] & high[:-1])


def mirror_figures(cap: np.ndarray, midi: list[tuple[int, bytes]]) -> dict[str, Any]:
    """The ES-9's MIDI mirror against its CV outputs, recorded together: each note-on's frame
    less the nearest trigger rise's (any recorded channel), each note-off's less the nearest
    fall's; `exact`: how many at 0 frames."""
    up = np.sort(np.concatenate([rises(cap[ch]) for ch in range(cap.shape[0])]))
    down = np.sort(np.concatenate([falls(cap[ch]) for ch in range(cap.shape[0])]))

    def nearest(frame: int, at: np.ndarray) -> int | None:
        if at.size == 0:
            return None
        k = int(np.argmin(np.abs(at - frame)))
        return int(frame - at[k])

    on, off = [], []
    for frame, msg in midi:
        if len(msg) > 2 and msg[0] & 0xE0 == 0x80:
            note_on = msg[0] & 0xF0 == 0x90 and msg[2] > 0
            d = nearest(frame, up if note_on else down)
            if d is not None:
                (on if note_on else off).append(d)
    a, b = np.asarray(on, dtype=np.int64), np.asarray(off, dtype=np.int64)
    return {"rises": int(up.size), "note_ons": int(a.size), "on_exact": int(np.sum(a == 0)),
            "on_frames": _ms(a), "on_min": int(a.min()) if a.size else None,
            "on_max": int(a.max()) if a.size else None, "note_offs": int(b.size),
            "off_exact": int(np.sum(b == 0)), "off_frames": _ms(b)}


def midi_figures(received: list[tuple[int, bytes]], ticks: np.ndarray, *,
                 lock_beats: float = 1.0) -> dict[str, Any]:
    """Note-ons after the lock against the nearest step tick (step k on tick 6k): signed
    offsets, and their |median| / p99 / max in ms; `spread`: each offset less their median
    (a fixed latency taken out)."""
    steps = ticks[::6]
    lock = ticks[min(len(ticks) - 1, int(round(lock_beats * 24)))]
    offsets = []
    for frame, msg in received:
        if msg and msg[0] & 0xF0 == 0x90 and len(msg) > 2 and msg[2] > 0 and frame >= lock:
            k = int(np.argmin(np.abs(steps - frame)))
            offsets.append(int(frame - steps[k]))
    off = np.asarray(offsets, dtype=np.int64)
    signed = (float(np.median(off)) / SR * 1e3) if off.size else None
    spread = off - int(np.median(off)) if off.size else off
    return {"notes": int(off.size), "median_signed_ms": signed, "abs": _ms(off),
            "spread": _ms(spread),
            "min_ms": float(off.min()) / SR * 1e3 if off.size else None,
            "max_ms": float(off.max()) / SR * 1e3 if off.size else None}


def note_lengths(received: list[tuple[int, bytes]]) -> tuple[list[int], int]:
    """Each note's length in frames as recorded (note-on to the next note-off of its channel
    and key), and how many note-ons got no note-off."""
    on: dict[tuple[int, int], int] = {}
    lengths = []
    for frame, msg in received:
        if len(msg) > 2 and msg[0] & 0xE0 == 0x80:
            key = (msg[0] & 0x0F, msg[1])
            if msg[0] & 0xF0 == 0x90 and msg[2]:
                on[key] = frame
            elif key in on:
                lengths.append(frame - on.pop(key))
    return lengths, len(on)


def note_off_figures(received: list[tuple[int, bytes]], length: int) -> dict[str, Any]:
    """Each note-off against its note-on's frame + `length` (the trigger's length in frames):
    the note's recorded length (`note_lengths`) less `length`; `hanging`: note-ons without a
    note-off."""
    lengths, hanging = note_lengths(received)
    e = np.asarray(lengths, dtype=np.int64) - length
    return {"offs": int(e.size), "exact": int(np.sum(e == 0)), "abs_offs": _ms(e),
            "hanging": hanging}


def first_step_figures(received: list[tuple[int, bytes]], first_tick: int) -> dict[str, Any]:
    """The first note-on after a Start against the first tick after it (step 0's), frames."""
    ons = [f for f, m in received if len(m) > 2 and m[0] & 0xF0 == 0x90 and m[2]]
    return {"first_frames": (ons[0] - first_tick) if ons else None}


def clock_out_figures(received: list[tuple[int, bytes]], ticks: np.ndarray | None = None,
                      bpm: float | None = None) -> dict[str, Any]:
    """MIDI clock (0xF8) the back end sent. Forwarded (`ticks`, the clock it was sent): each
    against the tick it answers (the nearest at or before it), frames. Master (`bpm`): against
    its own ideal grid, the least-squares line through the ticks (its phase) at the tempo's
    spacing; `interval`: each interval less the ideal."""
    out = np.asarray([f for f, m in received if m == b"\xf8"], dtype=np.int64)
    if out.size < 3:
        return {"clock_out": int(out.size)}
    if ticks is not None:
        idx = np.searchsorted(ticks, out, side="right") - 1
        off = out[idx >= 0] - ticks[idx[idx >= 0]]
        return {"clock_out": int(out.size), "offset": _ms(off),
                "median_frames": float(np.median(off)),
                "at_median": float(np.mean(off == np.median(off))),
                "spread_clock": _ms(off - np.median(off))}
    every = SR * 60.0 / float(bpm or 120.0) / 24
    out = out[24:]  # after the first beat (its first ticks: no interval to divide yet)
    k = np.round((out - out[0]) / every)
    phase = float(np.median(out - k * every))
    resid = out - (phase + k * every)
    diff = np.diff(out) - every
    return {"clock_out": int(out.size), "grid": _ms(resid), "interval": _ms(diff),
            "interval_exact": float(np.mean(np.abs(diff) <= 1.0))}


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))


# --- takes: a back end under test with the probe on one server

ES9_BOARD: dict[str, Any] = {
    "kind": "es9", "name": "es9 probe",
    "es9": {"input_device": "es9test-in", "output_device": "es9test-out", "samplerate": SR,
            "blocksize": 64, "safe_min": -1.0, "safe_max": 4.5, "trigger_volts": 4.0,
            "inputs": {"clock": 1}, "outputs": {"trigger": [1, 2, 3, 4], "velocity": []}},
}
COMMON = ("quantize=1.0", "density=1.0", "uncertainty=0.0", "follow=0.0", "swing=50",
          "generation.seed=1")


def es9_take(server: str, tmp: Path, ppqn: int, bpm: float, *, beats: float = 7.0,
             lead_s: float = 0.5, blocksize: int = 64, rt: bool = False,
             extra: tuple[str, ...] = (), mirror: bool = False) -> dict[str, Any]:
    """One take of the ES-9 back end on a CV clock: figures (`es9_figures`) + xruns; `rt`:
    its threads real-time, as `grooverack run --rt` has them; `mirror`: with its MIDI mirror
    (`midi.api = jack`), recorded beside the CV (`mirror_figures`)."""
    import inspect
    from types import SimpleNamespace

    from grooverack.backends.es9 import ES9Backend, refresh_devices
    from grooverack.config import load_settings
    from grooverack.runtime.serve import make_engine

    frames = int((lead_s + (beats + 1.0) * 60.0 / bpm) * SR)
    edges = clock_edges(ppqn, bpm, frames - SR // 4, int(lead_s * SR))
    settings = load_settings(overrides=[
        "clock.source=external", f"clock.ppqn={ppqn}", f"tempo={bpm}", "outputs.trigger_ms=2.0",
        *COMMON, *(["outputs.count=4"] if mirror else []), *extra])  # (every note on a CV out)
    data = {**ES9_BOARD, "es9": {**ES9_BOARD["es9"], "blocksize": blocksize}}
    if mirror:
        data["midi"] = {"api": "jack", "profile": "poly2", "channel": 2}
    board = SimpleNamespace(name="es9 probe", kind="es9", path="probe-es9.toml", data=data)
    probe = CvProbe(server, edges, frames, tmp, midi_from="grooverack out" if mirror else "")
    engine = make_engine(settings, threaded=True)
    backend = midi = None
    try:
        refresh_devices()
        if mirror:
            from grooverack.backends.es9 import MidiMirror

            midi = MidiMirror(board, settings)
            if "mirror" in inspect.signature(ES9Backend).parameters:
                backend = ES9Backend(engine, settings, board, mirror=midi)
            else:  # (the code before the mirror's port was the ES-9 client's)
                midi.start()
                backend = ES9Backend(engine, settings, board, midi_output=midi.output)
        else:
            backend = ES9Backend(engine, settings, board)
        backend.start()
        if rt:
            backend.realtime()
        backend.wait_latency()
        probe.go()
        cap, xruns = probe.result()
    finally:
        if backend is not None:
            backend.stop()
        if midi is not None:
            midi.stop()
        engine.close()
        _portaudio_done()
        probe.close()
    figures = es9_figures(cap, edges, ppqn)
    if mirror:
        figures["mirror"] = mirror_figures(cap, probe.midi)
    figures.update(xruns=xruns, backend_xruns=backend.xruns, late=backend.late_events,
                   transport=getattr(backend, "transport", "portaudio"))
    return figures


def _portaudio_done() -> None:
    """PortAudio let go of its JACK client before the server goes (when it was used)."""
    import sounddevice as sd

    if sd._initialized:
        sd._terminate()


def midi_take(server: str, tmp: Path, bpm: float, *, beats: float = 12.0, lead_s: float = 0.3,
              rt: bool = False, extra: tuple[str, ...] = (),
              name: str = "midiprobe", chain: bool = False, master: bool = False,
              start_gap: int = 1) -> dict[str, Any]:
    """One take of the MIDI back end (`midi.api=jack`) on MIDI clock + Start: figures
    (`midi_figures`, the note-offs' `note_off_figures`, the first step's `first_step_figures`,
    and with `midi.clock_out=true` among `extra` the clock it forwards, `clock_out_figures`) +
    xruns; `chain`: see `MidiProbe`; `start_gap`: frames from Start to the first tick.
    `master`: the module is the clock master (internal clock, MIDI clock out): nothing is sent,
    its clock and notes are recorded (`clock_out_figures` against its own grid)."""
    from grooverack.backends.midi import MidiBackend
    from grooverack.config import load_settings
    from grooverack.runtime.serve import make_engine

    lead = int(lead_s * SR)
    events, ticks = midi_clock(bpm, beats, lead, start_gap)
    frames = int(ticks[-1]) + SR // 4
    settings = load_settings(overrides=[
        "midi.api=jack", f"clock.source={'internal' if master else 'midi'}",
        "midi.profile=poly2", f"tempo={bpm}", *COMMON, *extra])
    if master:
        events = []
    engine = make_engine(settings, threaded=True)
    backend = MidiBackend(engine, settings)
    probe = None
    try:
        backend.open_ports()
        probe = MidiProbe(server, events, frames, tmp, to="grooverack in",
                          from_="grooverack out", name=name, chain=chain)
        backend.start(rt=rt)
        probe.go()
        received, xruns = probe.result()
    finally:
        backend.stop()
        engine.close()
        if probe is not None:
            probe.close()
    # the grid is the clock as the probe wrote it (a cycle it missed moves its ticks)
    written = np.array([f for f, d in probe.sent if d == b"\xf8"], dtype=np.int64)
    grid = written if len(written) == len(ticks) else ticks
    length = int(round(settings["outputs.trigger_ms"] / 1000.0 * SR))
    figures = {} if master else midi_figures(received, grid)
    figures.update(note_off_figures(received, length))
    if master:
        figures.update(clock_out_figures(received, bpm=bpm))
    else:
        figures.update(first_step_figures(received, int(grid[0])))
        if settings["midi.clock_out"]:
            figures.update(clock_out_figures(received, ticks=grid))
    figures.update(xruns=xruns, transport=getattr(backend, "transport", "rtmidi"),
                   placed=len(getattr(backend.output, "placed", ())))
    return figures
