"""Online onset detection: audio in, onsets (time of their sample, velocity) out. numpy only.

A pipeline of small stages, each a module, each testable alone (after the online spectral-flux
detector of Böck, Krebs and Schedl, 2012; facts only, no code of theirs):

  frames.py     Framer: blocks of any size -> overlapping frames sized in ms (any sample rate)
  spectrum.py   LogSpectrum: windowed magnitude spectrum -> log-spaced bands -> dB above a floor
                that follows the recent peak (level-independent)
  flux.py       SpectralFlux: mean half-wave-rectified rise of the bands (the detection function)
  peaks.py      PeakPicker: adaptive threshold + peak picking that looks only backwards
  refine.py     refine_onset: the sample of the energy rise inside the frame; onset_level
  velocity.py   VelocityCurve: the onset's level -> velocity 0..1 (config keys onsets.velocity_*)
  detector.py   OnsetDetector: the pipeline, streaming (`feed(block) -> [Onset]`, `flush()`)

Nothing here reads a clock, a file or a device: time is sample count / rate from the stream start.
"""

from grooverack.onsets.detector import (
    MAX_RATE,
    MIN_RATE,
    Onset,
    OnsetDetector,
    OnsetParams,
    check_rate,
    detect,
)
from grooverack.onsets.velocity import VelocityCurve

__all__ = ["MAX_RATE", "MIN_RATE", "Onset", "OnsetDetector", "OnsetParams", "VelocityCurve",
           "check_rate", "detect"]
