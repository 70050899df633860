"""A real JACK server for tests: `jackd -d dummy` under a name of its own, stopped afterwards.

Tests that need it use the `jack_server` fixture (import it into the test module). They skip only
when `jackd` is not installed at all (Debian package jackd2; `.ci/run` installs it). Everything
else (a server that does not start, a client that cannot connect) is a failure.

While the fixture runs, `JACK_DEFAULT_SERVER` names the test server, so python-rtmidi's JACK API
and PortAudio's JACK host API (both read it when they connect) find it and nothing else.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

_counter = itertools.count()


@dataclass
class JackServer:
    name: str
    rate: int
    period: int
    process: subprocess.Popen

    def client(self, name: str):
        """A JACK-Client (python `jack`) client on this server."""
        import jack

        return jack.Client(name, servername=self.name, no_start_server=True)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if hasattr(self, "_log_path") else ""


REGISTRY = "/dev/shm/jack-shm-registry"
_ENTRY = 264      # JACK2's jack_shm_server_t: a pid_t, then the name (256 bytes, padded)
_FIRST = 24       # the registry header before the first entry
_MAX_SERVERS = 8


def stale_servers() -> list[str]:
    """Names of test servers (`grtest...`) that JACK's shared registry still holds for a process
    that is gone: a jackd killed (SIGKILL, a timeout) keeps its slot of the 8 until a server of
    the same name starts and stops cleanly. Best effort: [] where the registry cannot be read."""
    try:
        data = open(REGISTRY, "rb").read()  # noqa: SIM115
    except OSError:
        return []
    names = []
    for i in range(_MAX_SERVERS):
        at = _FIRST + i * _ENTRY
        entry = data[at:at + _ENTRY]
        if len(entry) < _ENTRY:
            break
        pid = int.from_bytes(entry[:4], sys.byteorder)
        full = entry[4:].split(b"\0", 1)[0].decode(errors="replace")  # "jack-UID:NAME:"
        parts = full.split(":")
        if pid <= 0 or len(parts) < 2 or not parts[1].startswith("grtest"):
            continue
        if not os.path.exists(f"/proc/{pid}"):
            names.append(parts[1])
    return names


def reclaim_stale_servers() -> int:
    """Free the slots of `stale_servers()` the way JACK does: start a server of that name (it
    takes the dead entry over) and stop it cleanly. Returns how many were freed."""
    freed = 0
    for name in stale_servers():
        try:
            server = start_server(name=name, reclaim=False)
        except RuntimeError:
            continue
        stop_server(server)
        freed += 1
    return freed


def start_server(rate: int = 48000, period: int = 64, log_dir=None,
                 name: str | None = None, reclaim: bool = True) -> JackServer:
    """A `jackd -d dummy`; `name`: that of one killed before (a restart), else a new one. When
    JACK's registry is full of test servers killed earlier (in this run or another), their
    slots are reclaimed and the start is tried once more."""
    try:
        return _start_server(rate, period, log_dir, name)
    except RuntimeError as exc:
        # ("Too many servers already active": jackd exits 255 and says so only in its log)
        if not reclaim or "exited with 255" not in str(exc) or not reclaim_stale_servers():
            raise
        return _start_server(rate, period, log_dir, name)


def _start_server(rate: int, period: int, log_dir, name: str | None) -> JackServer:
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (Debian package jackd2, installed by .ci/run)")
    import jack  # JACK-Client (dev extra); needs libjack, which jackd2 brings

    name = name or f"grtest{os.getpid()}x{next(_counter)}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    log = (log_dir / f"{name}-{next(_counter)}.log") if log_dir is not None else None
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    server = JackServer(name, rate, period, proc)
    atexit.register(stop_server, server)  # even when the process that started it fails
    if log is not None:
        server._log_path = log
    jack.set_error_function(lambda _msg: None)  # "cannot connect" while it starts is expected
    deadline = time.monotonic() + 15.0
    while True:  # up when a client can connect
        if proc.poll() is not None:
            raise RuntimeError(f"jackd -n {name} exited with {proc.returncode}: {server.log()}")
        try:
            probe = jack.Client("probe", servername=name, no_start_server=True)
        except jack.JackError:
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError(f"jackd -n {name} did not accept clients: {server.log()}") from None
            time.sleep(0.1)
            continue
        probe.close()
        jack.set_error_function()
        return server


def stop_server(server: JackServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def serve(tmp_path, monkeypatch, period: int = 64) -> Iterator[JackServer]:
    """Body of a fixture: a server named in JACK_DEFAULT_SERVER while the test runs."""
    server = start_server(period=period, log_dir=tmp_path)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def jack_server(tmp_path, monkeypatch) -> Iterator[JackServer]:
    """48 kHz, 128-frame periods (2.7 ms): MIDI timing tests. With 64-frame periods a loaded
    2-core machine (CI) made tens of xruns in every take; 256 frames would be coarser than a 5 ms
    trigger."""
    yield from serve(tmp_path, monkeypatch, period=128)


@pytest.fixture
def jack_audio_server(tmp_path, monkeypatch) -> Iterator[JackServer]:
    """48 kHz, 1024-frame periods (21 ms): audio tests. The PortAudio callback under test is a
    Python callback at JACK's real-time priority waiting for the GIL held by normal-priority
    threads; with shorter periods a busy shared machine makes xruns (missed cycles)."""
    yield from serve(tmp_path, monkeypatch, period=1024)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until predicate() is true (a test of real components waits for them, then checks)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


# --- an audio rig in a process of its own: its JACK callbacks never wait for the GIL of the
# process under test (three Python callbacks per cycle in one process make xruns on a loaded
# machine)

def _rig_main(argv: list[str]) -> int:
    import argparse
    import json

    import jack
    import numpy as np

    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--signal", required=True)  # .npy float32 [channels, frames]
    p.add_argument("--out", required=True)  # .npy of the capture; .json beside it
    p.add_argument("--source", default="rig-in")
    p.add_argument("--sink", default="rig-out")
    p.add_argument("--inputs", type=int, default=8)
    p.add_argument("--tail", type=int, default=48000)
    a = p.parse_args(argv)
    signal = np.load(a.signal)
    length = signal.shape[1]
    src = jack.Client(a.source, servername=a.server, no_start_server=True)
    sink = jack.Client(a.sink, servername=a.server, no_start_server=True)
    outs = [src.outports.register(f"cv_{i:02d}") for i in range(1, signal.shape[0] + 1)]
    ins = [sink.inports.register(f"cv_{i:02d}") for i in range(1, a.inputs + 1)]
    cap = np.zeros((a.inputs, length + a.tail), dtype=np.float32)
    state = {"start": None, "armed": False, "xruns": 0}
    done = threading.Event()

    @src.set_process_callback
    def play(frames):
        f0 = src.last_frame_time
        if state["armed"] and state["start"] is None:
            state["start"] = f0
        for ch, port in enumerate(outs):
            buf = port.get_array()
            buf[:] = 0.0
            if state["start"] is not None:
                i = f0 - state["start"]
                if i < length:
                    n = min(frames, length - i)
                    buf[:n] = signal[ch, i:i + n]

    @sink.set_process_callback
    def record(frames):
        if state["start"] is None or done.is_set():
            return
        i = sink.last_frame_time - state["start"]
        if i + frames > cap.shape[1]:
            done.set()
            return
        for ch, port in enumerate(ins):
            cap[ch, i:i + frames] = port.get_array()

    @src.set_xrun_callback
    def xrun(_delay):
        state["xruns"] += 1

    src.activate()
    sink.activate()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    state["xruns"] = 0
    state["armed"] = True
    ok = done.wait(timeout=120)
    src.deactivate()
    sink.deactivate()
    np.save(a.out, cap)
    with open(a.out + ".json", "w") as f:
        json.dump({"xruns": state["xruns"], "complete": ok}, f)
    src.close()
    sink.close()
    return 0


def _midi_rig_main(argv: list[str]) -> int:
    import argparse
    import ctypes
    import json

    import jack

    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--name", default="midirig")
    p.add_argument("--play", required=True)  # JSON [[frame, hex], ...] from "go"
    p.add_argument("--to", default="")  # our out -> the first MIDI input port containing this
    p.add_argument("--from", dest="from_", default="")  # that MIDI output port -> our in
    p.add_argument("--frames", type=int, required=True)  # record this long after "go"
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    with open(a.play) as f:
        events = [(int(fr), bytes.fromhex(h)) for fr, h in json.load(f)]
    client = jack.Client(a.name, servername=a.server, no_start_server=True)
    out = client.midi_outports.register("out")
    inp = client.midi_inports.register("in")
    lib = ctypes.CDLL("libjack.so.0")
    lib.jack_frames_to_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_get_time.restype = ctypes.c_uint64
    ptr = int(jack._ffi.cast("uintptr_t", client._ptr))
    state = {"start": None, "armed": False, "next": 0, "xruns": 0}
    received: list[tuple[int, bytes, float]] = []
    played: list[tuple[int, float]] = []  # (frame, time.monotonic() of the cycle that wrote it)
    done = threading.Event()

    @client.set_process_callback
    def process(frames):
        out.clear_buffer()
        f0 = client.last_frame_time
        if state["armed"] and state["start"] is None:
            state["start"] = f0
        if state["start"] is None:
            return
        now = time.monotonic()  # when the receiver has them in hand
        rel = f0 - state["start"]
        while state["next"] < len(events) and events[state["next"]][0] < rel + frames:
            fr, data = events[state["next"]]
            out.write_midi_event(max(0, fr - rel), data)
            played.append((fr, now))
            state["next"] += 1
        for offset, data in inp.incoming_midi_events():
            received.append((rel + offset, bytes(data), now))
        if rel + frames >= a.frames:
            done.set()

    @client.set_xrun_callback
    def xrun(_delay):
        state["xruns"] += 1

    client.activate()
    deadline = time.monotonic() + 20
    while True:  # the ports of the program under test may come up after us
        try:
            if a.to:
                target = [q.name for q in client.get_ports(a.to, is_midi=True, is_input=True)
                          if not q.name.startswith(a.name + ":")][0]
                client.connect(out, target)
            if a.from_:
                source = [q.name for q in client.get_ports(a.from_, is_midi=True, is_output=True)
                          if not q.name.startswith(a.name + ":")][0]
                client.connect(source, inp)
            break
        except IndexError:
            if time.monotonic() > deadline:
                print("ports not found", flush=True)
                return 1
            time.sleep(0.05)
    print("ready", flush=True)
    sys.stdin.readline()
    state["xruns"] = 0  # those of the graph changes before are harmless
    state["armed"] = True
    ok = done.wait(timeout=a.frames / client.samplerate + 30)
    client.deactivate()
    # JACK's clock (usec) and time.monotonic() run at the same rate from different origins
    offsets = []
    for _ in range(9):
        m0 = time.monotonic()
        j = lib.jack_get_time()
        m1 = time.monotonic()
        offsets.append((m1 - m0, j * 1e-6 - (m0 + m1) / 2))
    offset = min(offsets)[1]

    def mono(rel: int) -> float:
        return lib.jack_frames_to_time(ptr, (state["start"] + rel) & 0xFFFFFFFF) * 1e-6 - offset

    with open(a.out, "w") as f:
        json.dump({"complete": ok, "xruns": state["xruns"], "rate": client.samplerate,
                   "start": mono(0),
                   "received": [[fr, mono(fr), d.hex(), now] for fr, d, now in received],
                   "played": [[fr, now] for fr, now in played]}, f)
    client.close()
    return 0


def _wait_ready(proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    """The rig's "ready" line, or an error within `timeout` (a rig stuck opening its JACK client
    on a wedged server must not hang the test run)."""
    import select

    poller = select.poll()  # not select(): a long test run may hold descriptors above 1023
    poller.register(proc.stdout, select.POLLIN | select.POLLHUP)
    ready = poller.poll(timeout * 1000.0)
    line = proc.stdout.readline() if ready else f"(nothing within {timeout:g} s)"
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not start: {line!r}")


class MidiRig:
    """A JACK MIDI client in a child process: plays `events` ([(frame, bytes)], frames from
    `go()`) into the input port matching `to`, records what the output port matching `from_`
    sends, with JACK frame times mapped onto time.monotonic()."""

    def __init__(self, server: JackServer, events, frames: int, tmp_path, *, to: str = "",
                 from_: str = "", name: str = "midirig") -> None:
        import json

        play = tmp_path / f"{name}-play.json"
        play.write_text(json.dumps([[int(f), bytes(d).hex()] for f, d in events]))
        self.out_path = tmp_path / f"{name}-received.json"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "midirig", "--server", server.name, "--name", name,
             "--play", str(play), "--to", to, "--from", from_, "--frames", str(frames),
             "--out", str(self.out_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _wait_ready(self.proc, "MIDI rig")

    def go(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def result(self, timeout: float = 120.0) -> dict:
        """{"received": [[frame, its JACK time on time.monotonic(), hex, time.monotonic() in
        the receiving callback]], "played": [[frame, time.monotonic() in the callback that wrote
        it]] (in the order of `events`), "start", "rate", "xruns"}."""
        import json

        self.proc.wait(timeout=timeout)
        info = json.loads(self.out_path.read_text())
        if not info["complete"]:
            raise AssertionError("MIDI rig: run did not complete")
        return info

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class AudioRig:
    """`source` plays `signal` (volts / scale, [channels, frames]) from the moment `go()` is
    called; `sink` records `inputs` channels from the same JACK frame on. Both are JACK clients
    of a child process."""

    def __init__(self, server: JackServer, signal, tmp_path, *, source: str, sink: str,
                 inputs: int = 8, tail: int = 48000) -> None:
        import numpy as np

        self.signal_path = str(tmp_path / "rig-signal.npy")
        self.out_path = str(tmp_path / "rig-capture.npy")
        np.save(self.signal_path, np.asarray(signal, dtype=np.float32))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "rig", "--server", server.name, "--signal",
             self.signal_path, "--out", self.out_path, "--source", source, "--sink", sink,
             "--inputs", str(inputs), "--tail", str(tail)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _wait_ready(self.proc, "audio rig")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 120.0):
        """(capture [inputs, frames], xruns)."""
        import json

        import numpy as np

        self.proc.wait(timeout=timeout)
        with open(self.out_path + ".json") as f:
            info = json.load(f)
        if not info["complete"]:
            raise AssertionError("audio rig: capture did not complete")
        return np.load(self.out_path), info["xruns"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "rig":
    raise SystemExit(_rig_main(sys.argv[2:]))
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "midirig":
    raise SystemExit(_midi_rig_main(sys.argv[2:]))
