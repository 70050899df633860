"""ES-9 outputs: engine events -> level changes at output frames -> sample blocks.

`ES9Outputs` (engine thread) turns each event into the sample of its channel through the
`Calibration` (clamped to the safe range, then to +-1.0) at output frame `round(t * rate) + R`
(velocity `velocity_lead_samples` earlier; accents on their trigger's samples). `LevelQueue` is
the hand-over to the audio callback, which only renders queued changes, each at its own sample.
On JACK it carries the MIDI mirror's messages too (column `MIDI`), handed over with the level
changes of the same pass in one step, so a message and its CV change reach the callback in the
same cycle (`midiframes`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from grooverack.boards.es9 import ES9Board
from grooverack.calibration import Calibration, es9_output_channels
from grooverack.config import Settings
from grooverack.engine.accents import AccentFollower
from grooverack.engine.player import OutputEvent

MIDI = -1  # the column of a MIDI mirror's message in a LevelQueue (its value: the bytes)


class LevelQueue:
    """Level changes (frame, column, sample) queued by the engine thread, rendered by the audio
    callback (deque append/popleft are atomic in CPython: no lock on the real-time path).

    A change that reaches the callback after its sample (the engine thread was held up) is
    written at the block's first sample, and the next change of that output keeps its distance
    from it (a trigger's fall after its rise, in this block or a later one): a late pulse plays
    late at its own width instead of vanishing under its fall. Where that distance runs past the
    block, the change is carried to the sample it moved to."""

    def __init__(self, zero_levels: np.ndarray) -> None:
        self.zero_levels = zero_levels
        self.levels = zero_levels.copy()
        self.queue: deque[tuple[int, int, Any]] = deque()  # (frame, column, sample), by frame
        # MIDI messages (frame, bytes) the callback took off the queue, for `MidiFrames.render`
        self.midi: list[tuple[int, bytes]] = []
        self.late_events = 0  # level changes that reached the callback after their sample
        self.late: deque[tuple[int, int]] = deque(maxlen=1000)  # (their frame, written at)
        # column -> (frame written at, its own frame) of its last change, which came late
        self.moved: dict[int, tuple[int, int]] = {}
        # changes moved past their block (frame moved to, column, sample)
        self.carried: list[tuple[int, int, Any]] = []

    def extend(self, changes: list[tuple[int, int, Any]]) -> None:
        """One pass's changes (and MIDI messages), in one step (a list: no thread switch)."""
        self.queue.extend(changes)

    def render(self, outdata: Any, f0: int, frames: int) -> None:
        """The block from frame `f0`: the levels held, each queued change from its sample."""
        levels = self.levels
        outdata[:] = levels
        end = f0 + frames
        if self.carried:  # rare: a late pulse's fall, moved on
            due = [c for c in self.carried if c[0] < end]
            self.carried = [c for c in self.carried if c[0] >= end]
            for at, col, value in due:
                outdata[max(at - f0, 0):, col] = value
                levels[col] = value
        q = self.queue
        moved = self.moved
        while q and (q[0][0] < end or q[0][1] == MIDI):
            frame, col, value = q.popleft()
            if col == MIDI:  # (written at its frame by `MidiFrames.render`)
                self.midi.append((frame, value))
                continue
            at = frame
            if moved:
                last = moved.pop(col, None)
                if last is not None:  # after a late change: at its distance from it
                    at = max(frame, last[0] + frame - last[1])
            if at < f0:
                self.late_events += 1
                self.late.append((frame, f0))
                moved[col] = (f0, frame)
                at = f0
            elif at >= end:
                self.carried.append((at, col, value))
                continue
            outdata[at - f0:, col] = value
            levels[col] = value

    def render_zero(self, outdata: Any) -> None:
        """Every output at its 0 V sample; nothing queued plays any more."""
        self.levels[:] = self.zero_levels
        self.carried.clear()
        self.moved.clear()
        q = self.queue
        while q:
            frame, col, value = q.popleft()
            if col == MIDI:
                self.midi.append((frame, value))
        outdata[:] = self.levels

    def reset(self) -> None:
        """A new stream: every output from 0 V, what was queued for the old one dropped."""
        self.queue.clear()
        self.midi.clear()
        self.carried.clear()
        self.moved.clear()
        self.levels[:] = self.zero_levels


class ES9Outputs:
    """The output channels of one ES-9 board: events -> samples through the calibration."""

    def __init__(self, settings: Settings, board: ES9Board, cal: Calibration) -> None:
        self.board = board
        self.sr = board.samplerate
        # volts -> samples through the Calibration (`es9_calibration`), as on the Pi: the safe
        # range kept
        self.cal = cal
        self.output_names = {ch: name for name, ch in es9_output_channels(board).items()}
        self.velocity_volts = settings["outputs.velocity_volts"]
        # accent outputs: accent n high with trigger n when its velocity CV reached the threshold
        self.accents = AccentFollower([n for n, ch in enumerate(board.accent, 1) if ch],
                                      float(settings["outputs.accent_threshold"]))
        # every output channel's sample for 0 V through the board's scaling (its calibration)
        self.zero_levels = np.array([self.to_sample(c, 0.0)
                                     for c in range(1, board.output_channels + 1)],
                                    dtype=np.float32)
        self.scheduled: deque[tuple[int, int, float, Any]] = deque(maxlen=100_000)
        self.played: deque[OutputEvent] = deque(maxlen=100_000)  # every engine event, in order

    def to_sample(self, channel: int, volts: float) -> float:
        """Output volts -> the sample of host channel `channel` (1-based) through the
        calibration: clamped to the safe range, then to +-1.0."""
        name = self.output_names.get(channel)
        if name is None:  # a channel no output uses: the board's scaling
            return self.board.to_sample(channel, volts)
        return float(self.cal.to_code(name, volts))

    def changes(self, events: list[OutputEvent], react: int, driven: bool = True
                ) -> tuple[list[tuple[int, int, float]], list[OutputEvent]]:
        """Engine events -> (level changes at output frames sorted by frame, the events played
        in order: accents are not). `driven` false: no stream, no level changes."""
        b = self.board
        changes = []
        played = []
        for ev in self.accents(events):  # + accent rises / falls with their triggers
            frame = int(round(ev.time * self.sr)) + react
            if ev.kind == "accent":  # on its trigger's samples; not played over MIDI
                ch = b.accent[ev.output - 1]
                if driven:
                    volts = b.trigger_volts * ev.value
                    changes.append((frame, ch - 1, self.to_sample(ch, volts)))
                    self.scheduled.append((frame, ch, volts, ev))
                continue
            self.played.append(ev)
            if ev.kind == "velocity":
                ch = b.velocity[ev.output - 1] if 0 < ev.output <= len(b.velocity) else 0
                volts = ev.value * self.velocity_volts
                frame -= b.velocity_lead_samples
            elif ev.kind == "trigger":
                ch = b.trigger[ev.output - 1] if 0 < ev.output <= len(b.trigger) else 0
                volts = b.trigger_volts if ev.value > 0.5 else 0.0
            elif ev.kind == "clock":
                ch, volts = b.clock_out, b.trigger_volts * ev.value
            elif ev.kind == "reset":
                ch, volts = b.reset_out, b.trigger_volts * ev.value
            else:
                continue
            if ch and driven:  # no stream, nothing drives the outputs
                changes.append((frame, ch - 1, self.to_sample(ch, volts)))
                self.scheduled.append((frame, ch, volts, ev))
            played.append(ev)
        changes.sort(key=lambda c: c[0])
        return changes, played
