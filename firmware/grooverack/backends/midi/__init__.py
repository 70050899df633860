"""MIDI back end (python-rtmidi): notes, clock and CCs in; the player's events out as notes.

`backend.py` (`MidiBackend`: the ports, the threads), `served.py` (`ServedMidi`, `run_backend`:
it in the shared run skeleton), `inputs.py` (messages -> engine calls), `parse.py` (bytes ->
messages), `output.py` (events -> timed messages, the sender), `ports.py` (rtmidi ports by name,
virtual ports, reopening), `jackport.py` (`midi.api=jack`: JACK clients of its own). The timeline is `time.monotonic()`; output
messages leave at the time the player scheduled, micro-timing included: the same events the CV
outputs would play. The JACK watch (`backends.jack`) is shared with the ES-9.
"""

from grooverack.backends.midi.backend import MidiBackend
from grooverack.backends.midi.inputs import MidiInputHandler
from grooverack.backends.midi.output import MidiOutput, MidiSender, OutputMap
from grooverack.backends.midi.ports import PortKeeper, api_id, find_port, load_rtmidi
from grooverack.backends.midi.served import ServedMidi, run_backend

__all__ = ["MidiBackend", "MidiInputHandler", "MidiOutput", "MidiSender", "OutputMap",
           "PortKeeper", "ServedMidi", "api_id", "find_port", "load_rtmidi", "run_backend"]
