"""Benchmarks: scripts that measure (run from the repository root; those that need the test
rig as `python -m benchmarks.NAME`)."""
