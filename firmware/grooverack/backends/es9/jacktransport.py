"""`ES9Stream`'s native side on JACK: its JACK client (`jackclient.JackAudioStream`) opened, the
process callback mapped onto the stream's frames (they go on across a reopened client), the MIDI
mirror's messages written there at their frames (`midiframes`), and the server's format checked
against the board's."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np

from grooverack.backends.es9.jackclient import JackAudioStream, server_format
from grooverack.backends.es9.midiframes import MidiFrames
from grooverack.backends.es9.outputs import LevelQueue

log = logging.getLogger(__name__)


def check_format(board: Any, transport: str, warned: set[str]) -> tuple[int, int] | None:
    """The JACK server's (rate, period), None where none runs; a rate other than the board's,
    or a period longer than its block, named in one warning each (`warned` keeps which)."""
    fmt = server_format()
    if fmt is None:
        return None
    rate, period = fmt
    if rate != board.samplerate:
        if f"rate {rate}" not in warned:
            warned.add(f"rate {rate}")
            log.warning("ES-9: the JACK server runs at %d Hz, the board (%s) at %d Hz: no "
                        "stream until the server runs at %d Hz (jackd -r %d)", rate,
                        board.path, board.samplerate, board.samplerate, board.samplerate)
    elif board.blocksize and period > board.blocksize and f"period {period}" not in warned:
        warned.add(f"period {period}")
        if transport == "portaudio":
            why = "PortAudio hands blocks over a period at a time: output changes come late"
        else:
            why = (f"a step on a clock edge sounds {2 * period} samples after it "
                   f"({2 * period / rate * 1e3:.1f} ms), not {2 * board.blocksize}")
        log.warning("ES-9: the JACK period (%d frames) is larger than the board's block "
                    "(es9.blocksize = %d in %s): %s; run jackd with -p %d", period,
                    board.blocksize, board.path, why, board.blocksize)
    return fmt


class JackTransport:
    """`ES9Stream`'s native side: its JACK client opened, its process callback on JACK's
    frames (the stream's own state: declared here, set by `ES9Stream`)."""

    board: Any
    sr: int
    frame: int
    stream: Any
    device_names: tuple[str, str]
    last_callback: float
    latency_frames: int | None
    latency_s: float | None
    reaction_frames: int | None
    xruns: int
    dropped_frames: int
    device_latency: int
    transport: str
    _gen: int
    _rebase: bool
    _jack: bool
    _jack_origin: int | None
    zeroing: bool
    levels: LevelQueue
    midi: MidiFrames | None
    midi_port: str

    def _resume(self, frames: int) -> None: ...  # (ES9Stream's)

    def _move(self, f0: int, indata: Any, outdata: Any, frames: int, adc: float) -> None: ...

    def _on_server_gone(self) -> None: ...

    def jack_callback(self, f0_jack: int, indata: np.ndarray, outdata: np.ndarray,
                      frames: int, midi: Any = None, gen: int = 0) -> None:
        """The native transport's process callback: frames are JACK's, so an xrun's skipped
        cycles leave their frames out and never shift the rest."""
        self.last_callback = time.monotonic()
        if gen != self._gen:
            outdata.fill(0.0)
            return
        if self._rebase:
            self._resume(frames)
            self._jack_origin = None
        if self._jack_origin is None:  # a new stream: our frames go on from where they were
            self._jack_origin = f0_jack - self.frame
        f0 = f0_jack - self._jack_origin
        if f0 > self.frame and self.latency_frames is not None:
            self.dropped_frames += f0 - self.frame
            self.xruns += 1
        if self.latency_frames is None:
            # in JACK's frames a sample read at f and one written at f + R are R apart: the
            # transport adds nothing (the devices' own latency is the same on every path
            # through the graph, `device_latency`, and only reported)
            self.latency_frames = self.board.latency_trim_samples
            self.latency_s = max(self.latency_frames, 0) / self.sr
            self.reaction_frames = 2 * frames  # the engine thread answers within a period
        self._move(f0, indata, outdata, frames, 0.0)
        if midi is not None and self.midi is not None:  # the mirror's messages at their frames
            self.midi.render(midi, f0, frames, self.levels.midi, self.zeroing)

    def _open_jack(self) -> None:
        b = self.board
        self._gen += 1
        stream = JackAudioStream(
            b.input_device, b.output_device, b.input_channels, b.output_channels,
            functools.partial(self.jack_callback, gen=self._gen), self._on_server_gone,
            b.samplerate, self.midi_port if self.midi is not None else "")
        self.stream = stream
        self.device_latency = stream.latency()
        self.device_names = (stream.capture[0].split(":", 1)[0],
                             stream.playback[0].split(":", 1)[0])
        self._jack = True
        self.transport = "jack"
        self._jack_origin = None
