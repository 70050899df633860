"""MIDI back end (python-rtmidi): notes, clock and CCs in; the player's events out as notes.

`backend.py` (`MidiBackend`, `run_backend`: the threads), `inputs.py` (messages -> engine calls),
`parse.py` (bytes -> messages), `output.py` (events -> timed messages, the sender), `ports.py`
(rtmidi ports by name, virtual ports, reopening). The timeline is `time.monotonic()`; output
messages leave at the time the player scheduled, micro-timing included: the same events the CV
outputs would play. The JACK watch (`backends.jack`) is shared with the ES-9.
"""

from grooverack.backends.midi.backend import MidiBackend, run_backend
from grooverack.backends.midi.inputs import MidiInputHandler
from grooverack.backends.midi.output import MidiOutput, MidiSender, OutputMap
from grooverack.backends.midi.ports import PortKeeper, api_id, find_port, load_rtmidi

__all__ = ["MidiBackend", "MidiInputHandler", "MidiOutput", "MidiSender", "OutputMap",
           "PortKeeper", "api_id", "find_port", "load_rtmidi", "run_backend"]
