"""Generator: latents A/B + the captured groove + the panel controls -> a complete Pattern.

`z_AB = (1 - morph) z_A + morph z_B`, `z = (1 - follow) z_AB + follow z_groove` (z_groove = the
encoder's mu of the captured groove), decoded by the model and sampled (`model.sampling`).
A tempo-conditioned model (`runner.tempo`) also gets the tempo the pattern plays at (`Request.bpm`,
0 = unknown); the engine moves it in steps (TEMPO_STEP), not with every wobble of a clock.
Work is skipped where it can be: the encoder runs only when the groove changed (its version), the
decoder only when z, the genre or the tempo changed; otherwise only the sampling runs again.

Synchronous mode (sim, tests): `request` computes at once and offers the pattern to `buffer`;
the player swaps it in at its next step commit: deterministic. In both modes a failing generation
is logged and counted (`errors`, `last_error`) and the last good pattern keeps playing. Threaded mode: a worker thread
takes the newest request (requests coalesce: one pending slot, a newer one replaces it), offers
the complete pattern, logs exceptions and keeps going (the player keeps the last good pattern).
`alive` and `heartbeat` (time.monotonic() of the worker's last loop) are for the watchdog.

Each request carries its own copy of everything it needs (latents, groove, controls), so the
worker never reads state the real-time thread is changing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from grooverack.engine.pattern import Pattern, PatternBuffer
from grooverack.model import sampling

log = logging.getLogger("grooverack.generator")
HEARTBEAT_S = 0.25


@dataclass(frozen=True, eq=False)
class Request:
    """Everything one generation needs (a snapshot, safe to hand to the worker)."""

    z_a: np.ndarray
    z_b: np.ndarray
    groove: np.ndarray          # [32, 3]
    groove_version: int
    follow: float
    morph: float
    uncertainty: float
    density: tuple[float, ...]  # effective per voice, 0..1
    mutes: tuple[bool, ...]
    max_count: int
    genre: int
    seed: int
    variation: int              # selects the sampling noise: same variation -> same noise
    serial: int
    bpm: float = 0.0            # the tempo given to a tempo-conditioned model (0 = unknown)


class Generator:
    """Latents A/B and the model -> patterns, synchronously or on a worker thread."""

    def __init__(self, runner: Any, *, seed: int = 0, threaded: bool = False) -> None:
        self.runner = runner
        self.latent_size = int(runner.latent_size)
        self.thresholds = np.asarray(runner.thresholds, dtype=np.float64)
        self.buffer = PatternBuffer()
        self.seed = int(seed)
        self._randomized = 0
        self.z_a = self._random_latent()
        self.z_b = self._random_latent()
        self.threaded = threaded
        self.tempo_aware = bool(getattr(runner, "tempo", False))
        self.generated = 0
        self.encodes = 0
        self.decodes = 0
        self.errors = 0
        self.last_error = ""
        self._heartbeat = time.monotonic()
        self.last_pattern: Pattern | None = None
        # caches (touched only by whoever runs `generate`: the caller, or the worker)
        self._groove_key: bytes | None = None
        self._z_groove: np.ndarray | None = None
        self._decode_key: tuple[bytes, int, float] | None = None
        self._decoded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # worker
        self._cond = threading.Condition()
        self._pending: Request | None = None
        self._submitted = -1   # serial of the newest request handed over
        self._finished = -1    # serial of the newest request served
        self._closing = False
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._work, name="grooverack-generator",
                                             daemon=True)
            self._thread.start()

    # --- latents --------------------------------------------------------------------------------------
    def _random_latent(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self._randomized])
        self._randomized += 1
        return rng.standard_normal(self.latent_size).astype(np.float32)

    def randomize(self, which: str) -> np.ndarray:
        """New N(0, I) latent for "a" or "b" (seeded: the n-th randomisation is reproducible)."""
        z = self._random_latent()
        self.set_latent(which, z)
        return z

    def set_latent(self, which: str, z: Any) -> None:
        z = np.asarray(z, dtype=np.float32).reshape(-1)
        if z.shape != (self.latent_size,):
            raise ValueError(f"latent {which!r} must have {self.latent_size} values, got {z.size}")
        if not np.all(np.isfinite(z)):
            raise ValueError(f"latent {which!r} holds non-finite values")
        if which == "a":
            self.z_a = z.copy()
        elif which == "b":
            self.z_b = z.copy()
        else:
            raise ValueError(f"latent {which!r}: allowed 'a' or 'b'")

    # --- the work ----------------------------------------------------------------------------------------
    def generate(self, req: Request) -> Pattern:
        """One request -> Pattern (encode / decode only when their inputs changed)."""
        groove = np.asarray(req.groove, dtype=np.float32)
        if req.follow > 0.0 and groove[:, 0].any():
            key = groove.tobytes()
            if key != self._groove_key:
                mu, _logvar = self.runner.encode(groove)
                self._z_groove = np.asarray(mu, dtype=np.float32)
                self._groove_key = key
                self.encodes += 1
            z_groove = self._z_groove
        else:
            # follow 0: the groove cannot matter; an empty groove has nothing to follow (the
            # module plays A/B until the input plays): skip the encoder either way
            z_groove = None
        z = sampling.mix_latents(req.z_a, req.z_b, z_groove, req.morph, req.follow)
        bpm = float(req.bpm)  # the engine leaves it 0 (unknown) for a model without tempo
        dkey = (z.tobytes(), req.genre, bpm)
        if dkey != self._decode_key or self._decoded is None:
            self._decoded = tuple(np.asarray(a, dtype=np.float32)
                                  for a in self.runner.decode(z, req.genre, bpm))
            self._decode_key = dkey
            self.decodes += 1
        logits, vel, off = self._decoded
        rng = np.random.default_rng([req.seed, req.variation])
        hits, vel, off = sampling.sample_pattern(
            logits, vel, off, temperature=sampling.temperature(req.uncertainty),
            thresholds=self.thresholds, density=np.asarray(req.density),
            max_counts=req.max_count, rng=rng, mutes=np.asarray(req.mutes, dtype=bool))
        self.generated += 1
        pattern = Pattern(hits, vel, off, req.serial,
                          {"follow": req.follow, "morph": req.morph, "variation": req.variation,
                           "groove_version": req.groove_version, "genre": req.genre,
                           "bpm": bpm})
        self.last_pattern = pattern
        return pattern

    def request(self, req: Request) -> None:
        """Synchronous: generate now and offer. Threaded: hand to the worker (newest wins)."""
        if not self.threaded:
            self._serve(req)
            return
        with self._cond:
            self._pending = req
            self._submitted = req.serial
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                if self._pending is None and not self._closing:
                    self._cond.wait(HEARTBEAT_S)
                self._heartbeat = time.monotonic()
                if self._closing:
                    return
                req, self._pending = self._pending, None
            if req is None:
                continue
            self._serve(req)
            with self._cond:
                self._finished = req.serial
                self._cond.notify_all()

    def _serve(self, req: Request) -> None:
        try:
            self.buffer.offer(self.generate(req))
        except Exception as exc:  # keep playing the last good pattern
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("pattern generation failed (request %d); keeping the last pattern",
                          req.serial)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None

    @property
    def heartbeat(self) -> float:
        """time.monotonic() of the worker's last loop; synchronous: now (the caller's own loop
        stalls with it, its watchdog sees that)."""
        return self._heartbeat if self.threaded else time.monotonic()

    @property
    def alive(self) -> bool:
        """True while generation can happen (synchronous, or the worker thread running)."""
        if not self.threaded:
            return True
        return self._thread is not None and self._thread.is_alive() and not self._closing

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Threaded: block until the newest request has been served (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._finished != self._submitted:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        if self._thread is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

