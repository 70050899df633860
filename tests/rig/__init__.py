"""The test rig, importable as `tests.rig` from the repository root (tests and benchmarks alike):
`jackserver` (a private `jackd -d dummy`, JACK test clients in processes of their own: AudioRig,
MidiRig), `sync_es9` / `sync_midi` (the independent measurers of the back ends' timing against
an incoming clock), `streams` (fake audio streams), `fakemodel` (a small random-weight model with
the contract's names)."""
