"""The ES-9's CV as a JACK client of its own (JACK-Client): samples at JACK's own frames.

When the audio server is JACK, PortAudio sits between the module and JACK's frame clock: its
buffering and its callback times hide which JACK frame a sample belongs to. `JackAudioStream`
is the module itself as a JACK client: one input port per input channel (connected from the
output ports of the client named like the board's input device, in their order), one output
port per output channel (into the input ports of the output device's client). Its process
callback only moves data: it hands `callback(f0, indata, outdata, frames)` the cycle's input
block and the output block to fill, `f0` being the cycle's first frame on JACK's frame clock
(`last_frame_time`, unwrapped past 2**32), so an edge read at frame `f` and a level written at
frame `f + R` are `R` samples apart at the jacks, whatever the period.

`jacktransport.JackTransport` is `ES9Stream`'s side of it. A server that goes away calls `on_gone`
(JACK's shutdown callback); its dead client is never
closed or collected (libjack's close of a dead client has crashed the process, see
`JackWatch.close`); the back end opens a new stream when the server is back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CLIENT_NAME = "grooverack es9"
CLOSE_TIMEOUT = 2.0  # s: a deactivate/close that takes longer is left behind
WRAP = 1 << 32  # jack_nframes_t

_dead: list[Any] = []  # clients of a server that went away: never closed, never collected


class RateMismatch(RuntimeError):
    """The JACK server runs at another sample rate than the board's."""

    def __init__(self, server: int, board: int) -> None:
        super().__init__(f"the JACK server runs at {server} Hz, the board at {board} Hz")
        self.server, self.board = server, board


def _probe_client() -> Any:
    """A short-lived client of the JACK server that answers (never starting one), quietly; None
    where JACK-Client or a server is missing. The caller closes it."""
    try:
        import jack  # type: ignore[import-untyped]
    except (ImportError, OSError):
        return None
    jack.set_error_function(lambda _msg: None)
    try:
        return jack.Client("grooverack probe", no_start_server=True)
    except jack.JackError:
        return None
    finally:
        jack.set_error_function()


def server_format() -> tuple[int, int] | None:
    """(sample rate, period in frames) of the JACK server that answers, None when none does."""
    client = _probe_client()
    if client is None:
        return None
    try:
        return int(client.samplerate), int(client.blocksize)
    finally:
        client.close()


def device_ports(client: Any, name: str, output: bool) -> list[str]:
    """The audio ports of the first JACK client whose name contains `name` (case-insensitive):
    its output ports (`output`: an input device's capture channels) or its input ports."""
    want = name.lower()
    ports = client.get_ports(is_audio=True, is_output=output, is_input=not output)
    owners: list[str] = []
    for port in ports:
        owner = port.name.split(":", 1)[0]
        if want in owner.lower() and not owner.startswith(CLIENT_NAME) and owner not in owners:
            owners.append(owner)
    if not owners:
        return []
    return [p.name for p in ports if p.name.split(":", 1)[0] == owners[0]]


class JackAudioStream:
    """`inputs` x `outputs` channels of float32 samples on JACK (see the module docstring)."""

    def __init__(self, input_device: str, output_device: str, inputs: int, outputs: int,
                 callback: Callable[[int, np.ndarray, np.ndarray, int, Any], None],
                 on_gone: Callable[[], None], samplerate: int, midi_port: str = "") -> None:
        import jack  # type: ignore[import-untyped]

        self.callback = callback
        self.on_gone = on_gone
        self.gone = threading.Event()
        self.xruns = 0
        self.client = jack.Client(CLIENT_NAME, no_start_server=True)
        c = self.client
        if c.samplerate != samplerate:
            rate = c.samplerate
            self._drop(close=True)
            raise RateMismatch(rate, samplerate)
        self.samplerate = c.samplerate
        self.capture = device_ports(c, input_device, output=True)
        self.playback = device_ports(c, output_device, output=False)
        if not self.capture or not self.playback:
            missing = input_device if not self.capture else output_device
            self._drop(close=True)
            raise RuntimeError(f"no JACK client named like {missing!r}")
        self.ins = [c.inports.register(f"in_{i}") for i in range(1, inputs + 1)]
        self.outs = [c.outports.register(f"out_{i}") for i in range(1, outputs + 1)]
        # the MIDI mirror's port (`midiframes`): its messages at their CV changes' frames;
        # registered once the client is active (`start`), so it is never seen unconnectable
        self.midi: Any = None
        self._midi_port = midi_port
        self._indata = np.zeros((c.blocksize, inputs), dtype=np.float32)
        self._outdata = np.zeros((c.blocksize, outputs), dtype=np.float32)
        self._last: int | None = None
        self._base = 0  # frames of the wraps of JACK's 32-bit frame clock
        self.active = False
        c.set_process_callback(self._process)
        c.set_shutdown_callback(self._shutdown)
        c.set_xrun_callback(self._xrun)
        c.set_blocksize_callback(self._blocksize)

    # --- JACK's threads
    def _process(self, frames: int) -> None:
        raw = self.client.last_frame_time
        if self._last is not None and raw < self._last:
            self._base += WRAP
        self._last = raw
        indata, outdata = self._indata, self._outdata
        if len(indata) != frames:  # (the period changed: a callback between the two calls)
            return
        for ch, port in enumerate(self.ins):
            indata[:, ch] = port.get_array()
        midi = self.midi
        if midi is not None:
            midi.clear_buffer()
        self.callback(self._base + raw, indata, outdata, frames, midi)
        for ch, port in enumerate(self.outs):
            port.get_array()[:] = outdata[:, ch]

    def _blocksize(self, frames: int) -> None:
        self._indata = np.zeros((frames, len(self.ins)), dtype=np.float32)
        self._outdata = np.zeros((frames, len(self.outs)), dtype=np.float32)

    def _shutdown(self, _status: Any, _reason: str) -> None:
        self.active = False
        self.gone.set()
        self.on_gone()

    def _xrun(self, _delay: float) -> None:
        self.xruns += 1

    # --- the back end's threads
    @property
    def blocksize(self) -> int:
        return int(self.client.blocksize)

    def start(self) -> None:
        """Activate and connect: input k from the input device's k-th output port, output k to
        the output device's k-th input port (channels beyond the device's stay unconnected)."""
        c = self.client
        c.activate()
        self.active = True
        if self._midi_port:
            self.midi = c.midi_outports.register(self._midi_port)
        for port, source in zip(self.ins, self.capture, strict=False):
            c.connect(source, port)
        for port, sink in zip(self.outs, self.playback, strict=False):
            c.connect(port, sink)

    def latency(self) -> int:
        """Frames from the input device's jacks into the graph plus from the graph to the
        output device's jacks (JACK's latency ranges of the connected ports, their maximum;
        0 where libjack's latency API cannot be reached)."""
        c = self.client
        try:
            cap = max((port_latency(c.get_port_by_name(p), capture=True)
                       for p in self.capture[:len(self.ins)]), default=0)
            play = max((port_latency(c.get_port_by_name(p), capture=False)
                        for p in self.playback[:len(self.outs)]), default=0)
        except (OSError, AttributeError) as exc:
            log.debug("ES-9: JACK port latency: %s", exc)
            return 0
        return cap + play

    def close(self) -> bool:
        """Deactivate and close, bounded; a client of a server that went away is dropped
        untouched. True when it closed in time."""
        if self.gone.is_set():
            self._drop()
            return True
        done = threading.Event()

        def close() -> None:
            try:
                self.client.deactivate()
                self.client.close()
            except Exception as exc:  # the server went away meanwhile
                log.debug("ES-9: closing the JACK client: %s", exc)
            finally:
                done.set()

        self.active = False
        threading.Thread(target=close, name="grooverack-es9-close", daemon=True).start()
        if done.wait(CLOSE_TIMEOUT):
            return True
        log.warning("ES-9: closing the JACK client did not return within %.1f s; left behind",
                    CLOSE_TIMEOUT)
        _dead.append(self.client)
        return False

    def _drop(self, close: bool = False) -> None:
        self.active = False
        if close:
            self.client.close()
        else:
            _dead.append(self.client)  # never closed: jack.Client closes on collection


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


_libjack: Any = None


def port_latency(port: Any, capture: bool) -> int:
    """The maximum of a port's capture or playback latency range (libjack's
    jack_port_get_latency_range; JACK-Client does not wrap it)."""
    global _libjack
    import jack  # type: ignore[import-untyped]

    if _libjack is None:
        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                                    ctypes.POINTER(_Range)]
        lib.jack_port_get_latency_range.restype = None
        _libjack = lib
    rng = _Range()
    ptr = int(jack._ffi.cast("uintptr_t", port._ptr))
    _libjack.jack_port_get_latency_range(ptr, 0 if capture else 1, ctypes.byref(rng))
    return int(rng.max)


def device_found(input_device: str, output_device: str) -> bool:
    """True when the JACK server has clients named like both devices (their audio ports)."""
    client = _probe_client()
    if client is None:
        return False
    try:
        return bool(device_ports(client, input_device, output=True)
                    and device_ports(client, output_device, output=False))
    finally:
        client.close()
