"""Live sound: the drum voices of `grooverack.drums` played through a sound card (sounddevice;
PortAudio over JACK or ALSA), driven by the same output writes as the outputs.

The real-time path only moves data: whoever writes an output (the wall-clock sim's loop thread,
at the moment it hands the write to its scheduler) calls `push(time, output, kind, volts)`.
`SpeakerProcess` (what `run --board sim --audio` uses) runs the sound in a process of its own,
so that no lock, the GIL included, is shared with the loop: `push` is one non-blocking write of
a 24-byte record into its pipe (atomic; a full pipe drops the write and counts it). There,
`Speaker.push` appends it to a bounded `collections.deque` (no lock, never blocks), and the
audio callback renders: it moves what was pushed into a heap of its own, strikes each voice at
its event's frame and renders the block with `drums.kit.Kit`.

Latency-compensated: event time `t` is patch time on the back end's clock (`time.perf_counter`,
CLOCK_MONOTONIC); it sounds at the speaker at `t0 + t + delay`, `delay` being the stream's own
output latency (PortAudio's DAC time of the block minus the callback's current time), one block
(an event pushed at its own time is still ahead of the block that plays it), PUSH_MARGIN_S (one
pushed a little after its time, a step on a clock edge, too) and `audio.delay_ms`. The callback places events by the stream's time: the block's first frame is
the kit frame of its DAC time (the stream's time moved onto the clock by the smallest offset of
the last OFFSET_WINDOW callbacks: a late wake-up only ever adds to it); the kit's frames then run on sample by sample, and are set again
only when the stream's time and the kit's drift apart by more than REALIGN_S (`realigned`).
Every hit keeps its micro-timing; what arrives too late for its frame plays at the start of the
block being made (`late`).

A missing device at start is one warning; the module plays on, silently. A device that goes
away while it plays (the JACK server stops, the card is unplugged) is one warning too; the
module plays on, and the watch thread opens the device again once a second (PortAudio's device
list read again, a new copy of it after a dead JACK server's) until it is back: one line says so
and the sound goes on in time with the outputs (the stream's delay measured again; what was
pushed while it was away is dropped). Nothing here is ever waited for by the caller.
"""

from grooverack.backends.speaker.card import Speaker
from grooverack.backends.speaker.process import RECORD, SpeakerProcess

__all__ = ["RECORD", "Speaker", "SpeakerProcess"]
