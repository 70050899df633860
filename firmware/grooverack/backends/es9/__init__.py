"""ES-9 back end (sounddevice / PortAudio): CV as audio samples, in and out.

One duplex stream (`stream.py`). Its callback only moves data: it stamps each input block with
its frame number and posts it, and renders the output block from level changes the engine thread
queued earlier, each at its own sample. The engine thread (`backend.py`) turns input blocks into
engine calls (`inputs.py`: Schmitt-trigger edges placed to the sample, pitch read a settle time
after the edge, control CVs, button gates) and engine events into level changes (`outputs.py`);
generation runs in the engine's worker; `served.py` runs it all as `grooverack run --board es9`.
`mirror.py` plays the same events over MIDI (on JACK on the stream's own client:
`midiframes.py`), `rig.py`
is the calibration rig, `portaudio.py` keeps PortAudio (device lists, restarts, bounded stops).

The timeline is input frames: engine time `t = frame / samplerate` is when that sample was at the
input jacks. Steps on a clock edge fire from that edge (`Clock.hold`): an edge at input frame `f`
is answered at output frame `f + R`, `R` being the reaction time, two blocks (the engine thread
takes a block in after its callback and has one more block's time to answer it); every event at
`t` is written at output frame `round(t * samplerate) + R`, so the whole pattern keeps its
micro-timing and each step on an edge sounds exactly `R + L` after that edge at the jacks, `L`
being the stream's own input-to-output latency (PortAudio's DAC time minus ADC time of the
callback, plus the board's `latency_trim_samples`). `describe()` reports both.

Button inputs (`[es9.inputs] next_style = 10`): gates through the same Schmitt trigger; a rising
edge is `Engine.press(action)` on the engine thread at its frame, as the panel's debounced buttons
are on its loop (never in the callback). Accent outputs (`[es9.outputs] accent`): accent n rises
with trigger n when that hit's velocity CV reaches `outputs.accent_threshold` and falls with it,
on the trigger's own samples (`engine.accents`, as the panel's accent jacks).

Volts <-> samples: `volts = gain * sample * volts_per_unit + offset` per channel (nominal:
gain 1, offset 0, 10 V per unit, i.e. +-1.0 = +-10 V), from the board's `[es9.calibration]`;
outputs are written through a `calibration.Calibration` (`es9_calibration`: a calibration file's
measurements, per-volt tables included, over the board's; the safe range kept). Control CVs go
through `grooverack.controls`, the one door to control values.

When the stream goes away (the JACK server killed or restarted, the device unplugged) the engine
plays on on its clock (pattern and position kept; nothing drives the outputs), and a keeper thread
opens the stream again once a second until the device is back; its frames go on from the clock,
its latency is measured again. Each loss and each return is logged once.
"""

from grooverack.backends.es9.backend import ES9Backend
from grooverack.backends.es9.mirror import MidiMirror
from grooverack.backends.es9.portaudio import (
    find_device,
    mark_portaudio_stale,
    portaudio_stale,
    refresh_devices,
)
from grooverack.backends.es9.rig import open_calibration_rig
from grooverack.backends.es9.served import run_backend

__all__ = ["ES9Backend", "MidiMirror", "find_device", "mark_portaudio_stale",
           "open_calibration_rig", "portaudio_stale", "refresh_devices", "run_backend"]
