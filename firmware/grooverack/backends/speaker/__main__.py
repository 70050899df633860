"""`python -m grooverack.backends.speaker`: the sound process of `SpeakerProcess`."""

import sys

from grooverack.backends.speaker.process import _child

raise SystemExit(_child(sys.argv[1:]))
