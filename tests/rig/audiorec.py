"""A JACK client that records what reaches it, in a process of its own (its process callback
never waits for the GIL of the program under test): `hearrec` with two input ports appears to
PortAudio's JACK host API as an output device of that name.

`AudioRecorder(server, seconds, tmp_path)` starts it; `go()` arms it (it records from the next
JACK cycle for `seconds`); `result()` gives a `Capture`: the audio, which frames were
recorded, and each JACK cycle's time on time.monotonic() (mapped as the MIDI rig of
jackserver.py does it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.rig.jackserver import JackServer, _wait_ready

NAME = "hearrec"
REPO = Path(__file__).resolve().parents[2]


def _main(argv: list[str]) -> int:
    import argparse
    import ctypes
    import json

    import jack
    import numpy as np

    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    client = jack.Client(NAME, servername=a.server, no_start_server=True)
    ports = [client.inports.register(f"in_{i}") for i in (1, 2)]
    frames_total = int(a.seconds * client.samplerate)
    cap = np.zeros((2, frames_total), dtype=np.float32)
    written = np.zeros(frames_total, dtype=bool)  # frames of cycles this client ran (xruns: not)
    state = {"start": None, "armed": False, "xruns": 0}
    cycles: list[tuple[int, int]] = []  # (capture index, JACK usec of that cycle's first frame)
    done = threading.Event()
    lib = ctypes.CDLL("libjack.so.0")
    lib.jack_frames_to_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_get_time.restype = ctypes.c_uint64
    ptr = int(jack._ffi.cast("uintptr_t", client._ptr))

    @client.set_process_callback
    def record(frames):
        if not state["armed"] or done.is_set():
            return
        f0 = client.last_frame_time
        if state["start"] is None:
            state["start"] = f0
        i = f0 - state["start"]
        n = min(frames, frames_total - i)
        for ch, port in enumerate(ports):
            cap[ch, i:i + n] = port.get_array()[:n]
        written[i:i + n] = True
        cycles.append((i, lib.jack_frames_to_time(ptr, f0 & 0xFFFFFFFF)))
        if i + frames >= frames_total:
            done.set()

    @client.set_xrun_callback
    def xrun(_delay):
        state["xruns"] += 1

    client.activate()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    state["xruns"] = 0
    state["armed"] = True
    ok = done.wait(timeout=a.seconds + 60)
    client.deactivate()
    offsets = []
    for _ in range(9):
        m0 = time.monotonic()
        j = lib.jack_get_time()
        m1 = time.monotonic()
        offsets.append((m1 - m0, j * 1e-6 - (m0 + m1) / 2))
    offset = min(offsets)[1]
    np.save(a.out, cap)
    np.save(a.out + ".cycles.npy", np.array([(i, us * 1e-6 - offset) for i, us in cycles]))
    np.save(a.out + ".written.npy", written)
    with open(a.out + ".json", "w") as f:
        json.dump({"complete": ok, "xruns": state["xruns"], "rate": client.samplerate}, f)
    client.close()
    return 0


class Capture:
    """What the recorder got: `audio` float32 [2, frames], `written` bool [frames] (the cycles
    an xrun cost are not), each cycle's first capture index and its time on time.monotonic()
    (JACK's own frame times: an xrun's lost time is in them), xruns, sample rate."""

    def __init__(self, audio, written, cycles, xruns: int, rate: int) -> None:
        self.audio, self.written, self.cycles = audio, written, cycles
        self.xruns, self.rate = xruns, rate

    def monotonic(self, seconds):
        """Capture positions (s from its first frame) -> time.monotonic()."""
        import numpy as np

        index = np.asarray(seconds) * self.rate
        k = np.clip(np.searchsorted(self.cycles[:, 0], index, side="right") - 1, 0, None)
        return self.cycles[k, 1] + (index - self.cycles[k, 0]) / self.rate


class AudioRecorder:
    def __init__(self, server: JackServer, seconds: float, tmp_path) -> None:
        self.out = str(tmp_path / "hearrec.npy")
        # (run as a script: the repository root on its path for `tests.rig`)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO), str(REPO / "firmware"), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--server", server.name, "--seconds", str(seconds),
             "--out", self.out], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env)
        _wait_ready(self.proc, "audio recorder")

    def go(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def result(self, timeout: float = 120.0):
        import json

        import numpy as np

        self.proc.wait(timeout=timeout)
        with open(self.out + ".json") as f:
            info = json.load(f)
        if not info["complete"]:
            raise AssertionError("audio recorder: capture did not complete")
        return Capture(np.load(self.out), np.load(self.out + ".written.npy"),
                       np.load(self.out + ".cycles.npy"), info["xruns"], info["rate"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
