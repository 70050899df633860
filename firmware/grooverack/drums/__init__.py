"""Drum voices of our own (numpy only, no I/O): what drum modules patched to the outputs play.

`voices` (one class per voice), `tables` (loop tables of their noisy and metallic sources),
`kit` (the outputs' jacks, the mix). Used by `sim.render` for `drums.wav` and by
`backends.speaker` for live sound.
"""
