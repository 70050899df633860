"""grooverack: a Eurorack module that listens to a sequencer and plays drums with it."""

__version__ = "0.1.0"
