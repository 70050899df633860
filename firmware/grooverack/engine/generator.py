"""Generator: latents A/B + the captured groove + the panel controls -> a complete Pattern.

`z_AB = (1 - morph) z_A + morph z_B`, `z = (1 - follow) z_AB + follow z_groove` (z_groove = the
encoder's mu of the captured groove), decoded by the model and sampled (`model.sampling`).
Random latents A/B (at start and on randomize) come from the model's latent bank when it has one
(`model.bank`: a stored train-loop latent of the chosen genre, perturbed), else from N(0, I); the
n-th draw of a given `generation.seed` is always the same. The bank's `hit_shift` moves the
per-voice thresholds in proportion to the A/B part of z (1 - follow; all of it with no groove), so
that A/B play as many hits per voice as real loops while a followed groove keeps the F1 thresholds.
A tempo-conditioned model (`runner.tempo`) also gets the tempo the pattern plays at (`Request.bpm`,
0 = unknown); the engine moves it in steps (TEMPO_STEP), not with every wobble of a clock.
Work is skipped where it can be: the encoder runs only when the groove changed (its version), the
decoder only when z, the genre, the tempo or the removed voice groups changed; otherwise only the
sampling runs again. Voice redistribution (`Request.removed`, a model with `removal_groups`): a
voice group muted whole is given to the decoder as removed, and it re-voices the groove onto the
remaining instruments; the muted voices stay silent either way (`sampling.sample_pattern`).
A fill (`Request.fill`) is the same decode sampled busier (`rules.fill_controls`): no extra
inference. Rule patterns (`engine.rules`) play for `generation.mode = "rules"` and while the
runner is a `model.watch.NoModel` (`problem` says why); `poll_model` asks the watch for the model
(the worker's idle loop, or the engine at loop boundaries in synchronous mode) and takes it over,
also a model copied over the one that plays (whole: the old one is closed on the same thread).

Synchronous mode (sim, tests): `request` computes at once and offers the pattern to `buffer`;
the player swaps it in at its next step commit: deterministic. In both modes a failing generation
is logged and counted (`errors`, `last_error`) and the last good pattern keeps playing. Threaded mode: a worker thread
takes the newest request (requests coalesce: one pending slot, a newer one replaces it), offers
the complete pattern, logs exceptions and keeps going (the player keeps the last good pattern).
`alive` and `heartbeat` (time.monotonic() of the worker's last loop) are for the watchdog.

Each request carries its own copy of everything it needs (latents, groove, and the frozen
`controls.GenerationControls` it was made with), so the worker never reads state the real-time
thread is changing. The controls were checked when made: nothing here clamps or checks them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from grooverack.controls import GenerationControls
from grooverack.engine import rules
from grooverack.engine.pattern import Pattern, PatternBuffer
from grooverack.engine.seam import RunnerSeam
from grooverack.model import sampling
from grooverack.model.kit import KitRules

log = logging.getLogger("grooverack.generator")
HEARTBEAT_S = 0.25


@dataclass(frozen=True, eq=False)
class Request:
    """Everything one generation needs (a snapshot, safe to hand to the worker)."""

    controls: GenerationControls  # follow, morph, uncertainty, densities, mutes, seed, mode, ...
    z_a: np.ndarray
    z_b: np.ndarray
    groove: np.ndarray          # [32, 3]
    groove_version: int
    genre: int                  # the index of `controls.genre` in the model's genres
    variation: int              # selects the sampling noise: same variation -> same noise
    serial: int
    bpm: float = 0.0            # the tempo given to a tempo-conditioned model (0 = unknown)
    fill: int = 0               # the fill (its number, counted from 1) this pattern plays, 0 = none


class Generator:
    """Latents A/B and the model -> patterns, synchronously or on a worker thread."""

    def __init__(self, runner: RunnerSeam, *, seed: int = 0, threaded: bool = False,
                 genre: int = 0, watch: Any = None) -> None:
        self.buffer = PatternBuffer()
        self.seed = int(seed)
        self._use_runner(runner)
        self._randomized = 0
        self.z_a = self._random_latent(genre)
        self.z_b = self._random_latent(genre)
        self._own_latents = False  # randomized or set: kept when a model loads later
        self.threaded = threaded
        # no model (model.watch.NoModel: missing, damaged): rule patterns play, and `watch`
        # (a model.watch.ModelWatch) is polled off the real-time path until the model loads,
        # and then for files copied over it
        self.watch = watch
        self.model_serial = 0      # counts models taken over while playing (`poll_model`)
        self.started_with_model = not self.problem  # (else rules played until one loaded)
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
        self._z_swapped: np.ndarray | None = None  # its bar-swapped copy's (runner.bar_swap)
        # per decode ("ab", "groove"): (its inputs, its outputs)
        self._decoded: dict[str, tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        # worker
        self._cond = threading.Condition()
        # a model that loads later is taken over whole: what a press reads (latent size, bank,
        # A/B) never mixes the old model's and the new one's (the load itself is outside it)
        self._swap = threading.RLock()
        self._pending: Request | None = None
        self._submitted = -1   # serial of the newest request handed over
        self._finished = -1    # serial of the newest request served
        self._closing = False
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._work, name="grooverack-generator",
                                             daemon=True)
            self._thread.start()

    def _use_runner(self, runner: RunnerSeam) -> None:
        """What the generator takes from its model (at start, and when a model loads later)."""
        self.runner = runner
        # another model's latents and decodes mean nothing to this one
        self._groove_key = None
        self._z_groove = self._z_swapped = None
        self._decoded = {}
        self.problem = str(runner.problem or "")  # why no model plays, or ''
        self.latent_size = int(runner.latent_size)
        self.thresholds = np.asarray(runner.thresholds, dtype=np.float64)
        bank = runner.latent_bank
        self.bank = bank if bank is not None and bank.latent_size == self.latent_size else None
        shift = None if self.bank is None else np.asarray(self.bank.hit_shift, dtype=np.float64)
        self._hit_shift = shift if shift is not None and shift.any() else None
        self._thr_cache: tuple[Any, np.ndarray] | None = None
        self.tempo_aware = bool(runner.tempo)
        self.revoices = bool(runner.removal_groups)

    def poll_model(self, *, force: bool = False) -> bool:
        """Ask the watch for a model that loaded or replaced the one that plays (off the
        real-time path: the worker's loop, or a loop boundary in virtual time); it is taken over
        whole, with the latents A/B of a start with it unless they were randomized or set, and
        the model it replaced is closed here (`ModelRunner.close`: its sessions let go one by
        one, never by the real-time loop). True when one was taken over."""
        if self.watch is None:
            return False
        runner = self.watch.poll(force=force)  # the slow part: files, sessions (no lock held)
        if runner is None:
            if self.problem and self.watch.problem:
                self.problem = self.watch.problem  # the newest reason no model plays
            return False
        replaced = self.runner
        with self._swap:  # the take-over: assignments and two latent draws, microseconds
            size = self.latent_size
            self._groove_key = None
            self._use_runner(runner)
            if self.latent_size != size:
                self._own_latents = False  # the kept ones do not fit this model
            self.start_latents()
            self.model_serial += 1
        close = getattr(replaced, "close", None)  # a ModelRunner; a NoModel holds nothing
        if close is not None:
            close()
        return True

    def start_latents(self, genre: int = 0) -> None:
        """Latents A/B as a start draws them (of `genre`), unless they were randomized or set."""
        if not self._own_latents:
            self._randomized = 0
            self.z_a = self._random_latent(genre)
            self.z_b = self._random_latent(genre)

    # --- latents --------------------------------------------------------------------------------------
    def _random_latent(self, genre: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self._randomized])
        self._randomized += 1
        if self.bank is not None:
            drawn: np.ndarray = self.bank.draw(rng, int(genre))
            return drawn
        return np.asarray(rng.standard_normal(self.latent_size), dtype=np.float32)

    def randomize(self, which: str, genre: int = 0) -> np.ndarray:
        """New random latent for "a" or "b": from the latent bank (a stored latent of `genre`,
        0 = any, perturbed), else N(0, I); seeded: the n-th randomisation is reproducible."""
        with self._swap:
            z = self._random_latent(genre)
            self.set_latent(which, z)
        return z

    def set_latent(self, which: str, z: Any) -> None:
        with self._swap:
            self._set_latent(which, z)

    def _set_latent(self, which: str, z: Any) -> None:
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
        self._own_latents = True

    # --- the work ----------------------------------------------------------------------------------------
    def _thresholds(self, ab_part: float, removed: tuple[bool, ...] = ()) -> np.ndarray:
        """The per-voice thresholds (the runner's set for the removed groups, if any) with the
        bank's hit_shift applied to the A/B part of z."""
        base = self.thresholds
        if removed and hasattr(self.runner, "thresholds_for"):
            base = np.asarray(self.runner.thresholds_for(np.asarray(removed, np.float32)),
                              dtype=np.float64)
        if self._hit_shift is None or ab_part <= 0.0:
            return base
        key = (ab_part, removed)
        if self._thr_cache is not None and self._thr_cache[0] == key:
            return self._thr_cache[1]
        p = np.clip(base, 1e-6, 1.0 - 1e-6)
        x = np.log(p / (1.0 - p)) + min(ab_part, 1.0) * self._hit_shift
        thr = 1.0 / (1.0 + np.exp(-x))
        self._thr_cache = (key, thr)
        return thr

    def generate(self, req: Request) -> Pattern:
        """One request -> Pattern (encode / decode only when their inputs changed)."""
        c = req.controls
        if c.mode == "rules" or self.problem:
            return self._rule_pattern(req)
        groove = np.asarray(req.groove, dtype=np.float32)
        two_views = bool(self.runner.bar_swap)
        z_swapped = None
        follow = c.follow
        if follow > 0.0 and groove[:, 0].any():
            key = groove.tobytes()
            if key != self._groove_key:
                if two_views:  # the groove and its bar-swapped copy in one encoder call
                    mus = np.asarray(self.runner.encode_views(groove), dtype=np.float32)
                    self._z_groove, self._z_swapped = mus[0], mus[1]
                else:
                    mu, _logvar = self.runner.encode(groove)
                    self._z_groove = np.asarray(mu, dtype=np.float32)
                self._groove_key = key
                self.encodes += 1
            z_groove = self._z_groove
            z_swapped = self._z_swapped if two_views else None
        else:
            # follow 0: the groove cannot matter; an empty groove has nothing to follow (the
            # module plays A/B until the input plays): skip the encoder either way
            z_groove = None
        bpm = float(req.bpm)  # the engine leaves it 0 (unknown) for a model without tempo
        # voice groups muted whole with generation.on_mute = revoice, for a model that re-voices
        removed = c.removed_groups() if self.revoices else ()
        removed = removed if any(removed) else ()
        flags = np.asarray(removed, np.float32) if removed else None
        z_ab = sampling.mix_latents(req.z_a, req.z_b, None, c.morph, 0.0)
        ab = self._decode("ab", (z_ab,), req.genre, bpm, flags)
        if z_groove is None:
            # A/B alone: the bank's hit_shift makes them play as many hits as real loops
            logits, vel, off = ab
            thresholds = self._thresholds(1.0, removed)
            per_voice = None
        else:
            # the groove decoded alone (as is and bar-swapped, the two views alike: what the
            # thresholds were chosen for), crossfaded with A/B by follow
            views = (z_groove,) if z_swapped is None else (z_groove, z_swapped)
            followed = self._decode("groove", views, req.genre, bpm, flags)
            thresholds = self._thresholds(0.0, removed)
            per_voice = sampling.voice_follow(follow, c.colour_follow)
            logits, vel, off = sampling.blend_follow(
                ab, followed, per_voice,
                self._thresholds(1.0, removed), thresholds)
        rng = np.random.default_rng([c.seed, req.variation])
        density, uncertainty = c.effective_density(), c.uncertainty
        if req.fill:  # the model's own busier pattern: the same decode, sampled busier
            density, uncertainty = rules.fill_controls(density, uncertainty)
        kit = KitRules(self._real_hits(req.genre), c.kit_cap, c.anchor,
                       onsets=groove[:, 0] > 0, follow=follow if z_groove is not None else 0.0,
                       kick_removed=bool(removed) and bool(removed[0]),
                       snare_removed=len(removed) > 1 and bool(removed[1]),
                       revoiced=bool(removed), floor=c.kit_floor, voice_follow=per_voice,
                       fill_floor=c.kit_floor_fills, random_round=c.kit_random_round,
                       ab_slack=c.kit_cap_ab)
        hits, vel, off = sampling.sample_pattern(
            logits, vel, off, temperature=sampling.temperature(uncertainty),
            thresholds=thresholds, density=np.asarray(density),
            max_counts=c.max_count, rng=rng, mutes=np.asarray(c.mutes, dtype=bool), kit=kit)
        self.generated += 1
        pattern = Pattern(hits, vel, off, req.serial,
                          {"follow": follow, "morph": c.morph, "variation": req.variation,
                           "groove_version": req.groove_version, "genre": req.genre,
                           "bpm": bpm, "mode": "model", "fill": req.fill,
                           "revoiced": removed})
        self.last_pattern = pattern
        return pattern

    def _decode(self, which: str, views: tuple[np.ndarray, ...], genre: int, bpm: float,
                flags: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode A/B ("ab": one latent) or the groove ("groove": the groove's latent, and its
        bar-swapped copy's pooled at weight 0.5), each kept until its inputs change: moving
        follow decodes nothing."""
        key = (tuple(z.tobytes() for z in views), genre, bpm,
               None if flags is None else flags.tobytes())
        cached = self._decoded.get(which)
        if cached is not None and cached[0] == key:
            return cached[1]
        if len(views) == 2:
            out = self.runner.decode_views(np.stack(views), genre, bpm, flags, 0.5)
        else:
            args = (views[0], genre, bpm, flags) if flags is not None else (views[0], genre, bpm)
            out = self.runner.decode(*args)
        h, v, o = (np.asarray(a, dtype=np.float32) for a in out)
        result = (h, v, o)
        self._decoded[which] = (key, result)
        self.decodes += 1
        return result

    def _real_hits(self, genre: int) -> np.ndarray | None:
        """The style's real hits per voice per loop (the bank's `real_hits`; None: no budget)."""
        real = None if self.bank is None else getattr(self.bank, "real_hits", None)
        if real is None:
            return None
        row = np.asarray(real[genre] if 0 <= genre < len(real) else real[0], dtype=np.float64)
        return row if row.any() else np.asarray(real[0], dtype=np.float64)

    def _rule_pattern(self, req: Request) -> Pattern:
        """The request played by rules (`engine.rules`): no model, or generation.mode = rules."""
        c = req.controls
        density, uncertainty = c.effective_density(), c.uncertainty
        if req.fill:
            density, uncertainty = rules.fill_controls(density, uncertainty)
        hits, vel, off = rules.rule_pattern(
            density, uncertainty=uncertainty, temperature=sampling.temperature(uncertainty),
            mutes=c.mutes, max_count=c.max_count,
            rng=np.random.default_rng([c.seed, req.variation]))
        self.generated += 1
        pattern = Pattern(hits, vel, off, req.serial,
                          {"follow": c.follow, "morph": c.morph, "variation": req.variation,
                           "groove_version": req.groove_version, "genre": req.genre,
                           "bpm": float(req.bpm), "mode": "rules", "fill": req.fill})
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
            if req is None:  # idle: look for a model (new or replaced) here, off the real-time path
                self.poll_model()
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

