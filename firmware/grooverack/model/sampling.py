"""From decoder outputs to a drum pattern: latent mixing, temperature, density, max counts, mutes.

numpy only, every random draw from the `rng` passed in (seeded by the caller), so a render is
reproducible.

Hit decision. For each cell the model gives a logit `x`; each voice has a threshold `thr` (the
validation threshold moved by the density control). With temperature `T` a cell hits when

    x - logit(thr) + T * L > 0,        L ~ Logistic(0, 1) from `rng`

which is exactly a Bernoulli draw with p = sigmoid((x - logit(thr)) / T): T = 0 is the plain
deterministic threshold of the reference plugin, T = 1 with thr = 0.5 samples the model as
trained, larger T is wilder. The same score ranks the cells for the per-voice top-k (max count).

Uncertainty (the panel knob, 0..1) maps to temperature as `T = 2 * u**2`: 0 -> 0 (steady),
0.5 -> 0.5, 0.7 -> ~1 (the model's own randomness), 1 -> 2 (wild).

Density (per voice, 0..1) moves the threshold in logit space: 0 -> the voice is silent,
0.5 -> the validation threshold, 1 -> THRESHOLD_BUSY (near zero: every step the model gives any
weight to); in between the logit is interpolated linearly, so equal knob moves feel alike.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from grooverack.model.kit import KitRules, keep_time
from grooverack.voices import NUM_VOICES, STEPS, VOICE_NAMES

# The kit's colour: the voices a sequencer line says nothing about (which drum colours a hit,
# not where it goes). Follow reaches them by follow x generation.colour_follow.
COLOUR_VOICES = ("open_hat", "low_tom", "mid_tom", "high_tom", "crash", "ride")
_COLOUR = np.array([v in COLOUR_VOICES for v in VOICE_NAMES])

_P_EDGE = 1e-6  # blend_follow: probabilities clipped here ...
_EDGE_SLOPE = 1.0 / (_P_EDGE * (1.0 - _P_EDGE))  # ... and past it the logit goes on at its slope there
# a hit the kit rules add to a voice with no hit of the model's own plays at this velocity (a
# voice's alone, so muting another voice never changes it)
ADDED_VELOCITY = 0.5
THRESHOLD_BUSY = 0.02   # density 1
THRESHOLD_SPARSE = 0.995  # density just above 0
MAX_TEMPERATURE = 2.0


_LOGIT_BUSY = math.log(THRESHOLD_BUSY / (1.0 - THRESHOLD_BUSY))
_LOGIT_SPARSE = math.log(THRESHOLD_SPARSE / (1.0 - THRESHOLD_SPARSE))


def temperature(uncertainty: float) -> float:
    """Panel uncertainty 0..1 -> sampling temperature (see the module text). The controls are
    checked once, where they enter (`controls.GenerationControls`): not clamped here."""
    u = float(uncertainty)
    return MAX_TEMPERATURE * u * u


def voice_follow(follow: float, colour_follow: float) -> np.ndarray:
    """Follow per voice [9]: `follow` for the time keepers (kick, snare, closed hat), `follow *
    colour_follow` for the kit's colour (COLOUR_VOICES). A line's groove decodes to kick, snare
    and hats only; followed all the way it takes the ride, toms, crash and open hat the stored
    drummer plays away from every pattern past follow 0.25. Both 0..1, checked where they
    entered (`controls.GenerationControls`): not clamped here."""
    f = float(follow)
    c = float(colour_follow)
    return np.where(_COLOUR, f * c, f)


def blend_follow(ab: tuple[np.ndarray, np.ndarray, np.ndarray],
                 groove: tuple[np.ndarray, np.ndarray, np.ndarray], follow: float | np.ndarray,
                 ab_thresholds: np.ndarray, thresholds: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Follow as a crossfade of two decodes: A/B's (hit logits, velocities, offsets) [32, 9]
    judged by `ab_thresholds`, the groove's by `thresholds`. Each cell's margin over its
    threshold, in probability, moves linearly from A/B's to the groove's:

        p = thr + (1 - follow) * (sigmoid(x_ab) - thr_ab) + follow * (sigmoid(x_groove) - thr)

    returned as a hit logit to be judged by `thresholds` (velocities and offsets move linearly).
    So every cell changes at most once over the knob's travel, where its two margins balance: the
    knob moves smoothly (a latent mixed half way can decode to a third pattern, 12-20 cells
    changing per tenth of travel). Margins in probability, not logits: a decode's confident
    silences (logits of -8) would otherwise outvote the other's likely hits long before the
    knob's end. `follow` 0..1, one value or one per voice [9] (`voice_follow`), checked where it
    entered (`controls.GenerationControls`): not clamped here. Where the margins leave no
    probability (p under 1e-6, or over 1 - 1e-6) the logit goes on linearly in p, so cells
    keep their order (what the kit's floor ranks by) and never tie."""
    f = np.asarray(follow, dtype=np.float64)
    x_ab, v_ab, o_ab = (np.asarray(a, dtype=np.float64) for a in ab)
    x_g, v_g, o_g = (np.asarray(a, dtype=np.float64) for a in groove)
    thr = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    thr_ab = np.asarray(ab_thresholds, dtype=np.float64)
    p = thr + (1.0 - f) * (_sigmoid(x_ab) - thr_ab) + f * (_sigmoid(x_g) - thr)
    inside = np.clip(p, _P_EDGE, 1.0 - _P_EDGE)
    # past the edges the logit goes on linearly in p: cells no decode wants keep their order
    # (clipped, they would tie, and a voice's floor would pick them by step index)
    logits = np.log(inside / (1.0 - inside)) + _EDGE_SLOPE * (p - inside)
    return (logits.astype(np.float32), ((1.0 - f) * v_ab + f * v_g).astype(np.float32),
            ((1.0 - f) * o_ab + f * o_g).astype(np.float32))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def mix_latents(z_a: np.ndarray, z_b: np.ndarray, z_groove: np.ndarray | None,
                morph: float, follow: float) -> np.ndarray:
    """z_AB = (1 - morph) z_A + morph z_B;  z = (1 - follow) z_AB + follow z_groove.

    With no groove latent (nothing encoded yet) follow has nothing to follow: z = z_AB.
    `morph` and `follow` 0..1, checked where they entered (`controls.GenerationControls`).
    """
    morph = float(morph)
    follow = float(follow)
    z_a = np.asarray(z_a, dtype=np.float32)
    z_b = np.asarray(z_b, dtype=np.float32)
    z_ab = (1.0 - morph) * z_a + morph * z_b
    if z_groove is None:
        return z_ab.astype(np.float32)
    z_g = np.asarray(z_groove, dtype=np.float32)
    if z_g.shape != z_ab.shape:
        raise ValueError(f"groove latent {list(z_g.shape)} and A/B latents {list(z_ab.shape)} differ")
    return ((1.0 - follow) * z_ab + follow * z_g).astype(np.float32)


def _per_voice(value: np.ndarray | float, name: str) -> list[float]:
    """One number or one per voice -> a list of NUM_VOICES Python floats."""
    if isinstance(value, (int, float)):
        return [float(value)] * NUM_VOICES
    flat = np.asarray(value, dtype=np.float64).ravel().tolist()
    if len(flat) == 1:
        return flat * NUM_VOICES
    if len(flat) != NUM_VOICES:
        raise ValueError(f"{name} must be one value or {NUM_VOICES} (one per voice), "
                         f"got {len(flat)}")
    return flat


def density_logits(thresholds: np.ndarray, density: np.ndarray | float) -> np.ndarray:
    """Per-voice hit thresholds for density 0..1, in logit space [9] (density <= 0 -> +inf).

    Runs at every regeneration on 9 values, so it is plain float arithmetic: a dozen whole-array
    numpy calls on 9 numbers cost more (12 us) than this loop (5 us); same numbers, in float64.
    The knobs rarely move between patterns, so the last results are kept (read-only arrays).
    """
    key = (tuple(_per_voice(thresholds, "thresholds")), tuple(_per_voice(density, "density")))
    return _density_logits(*key)


@functools.lru_cache(maxsize=64)
def _density_logits(thr: tuple[float, ...], dens: tuple[float, ...]) -> np.ndarray:
    out = []
    for p, d in zip(thr, dens, strict=True):
        if not d > 0.0:  # density 0: the voice is silent
            out.append(math.inf)
            continue
        p = min(max(p, 1e-6), 1.0 - 1e-6)
        base = math.log(p / (1.0 - p))
        w = 2.0 * d - 1.0  # -1 (density 0) .. 0 (the validation threshold) .. 1 (busy)
        out.append(base + abs(w) * ((_LOGIT_SPARSE if w <= 0.0 else _LOGIT_BUSY) - base))
    logits = np.array(out, dtype=np.float64)
    logits.flags.writeable = False
    return logits


def sample_pattern(hit_logits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray, *,
                   temperature: float, thresholds: np.ndarray, density: np.ndarray | float,
                   max_counts: np.ndarray | int, rng: np.random.Generator,
                   mutes: np.ndarray | None = None, kit: KitRules | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoder outputs [32, 9] -> (hits bool, velocities 0..1, offsets -0.5..0.5) [32, 9].

    density: per voice (or one value) 0..1 and temperature >= 0 (from the controls, checked where
    they entered: `controls.GenerationControls`; not clamped here); max_counts: per voice (or one value) top-k limit;
    mutes: bool [9], a muted voice never hits; kit: the style's budget and beat one
    (`model.kit.keep_time`, on the same scores). Velocities/offsets are zero where there is no hit.
    Always draws the same amount of noise from `rng`, so a seed gives the same noise whatever
    the controls are (moving density adds or removes hits, it does not reshuffle them).
    """
    x = np.asarray(hit_logits, dtype=np.float64)
    if x.shape != (STEPS, NUM_VOICES):
        raise ValueError(f"hit_logits must be [{STEPS}, {NUM_VOICES}], got {list(x.shape)}")
    t = float(temperature)
    noise = rng.logistic(size=x.shape)
    floor_draw = rng.random(NUM_VOICES)  # the kit's rounding (drawn always: the same noise)
    score = x - density_logits(thresholds, density) + t * noise  # -inf where density is 0
    hits = score > 0.0
    if mutes is not None:
        hits[:, np.asarray(mutes, dtype=bool)] = False
    if not (isinstance(max_counts, (int, np.integer)) and max_counts >= STEPS):
        counts = np.asarray(max_counts, dtype=np.int64)
        over = hits.sum(0) > counts
        if over.any():  # rank only the voices over their max count
            counts = counts * np.ones(NUM_VOICES, dtype=np.int64)
            for voice in np.flatnonzero(over):
                k = int(counts[voice])
                ranked = np.argsort(-np.where(hits[:, voice], score[:, voice], -np.inf),
                                    kind="stable")
                hits[ranked[k:], voice] = False
    if kit is not None:
        muted = np.zeros(NUM_VOICES, bool) if mutes is None else np.asarray(mutes, dtype=bool)
        sampled = hits
        hits = keep_time(hits, score, real=kit.real, density=np.asarray(_per_voice(density, "density")),
                         mutes=muted, cap=kit.cap, anchor=kit.anchor, onsets=kit.onsets,
                         follow=kit.follow, kick_removed=kit.kick_removed,
                         snare_removed=kit.snare_removed, revoiced=kit.revoiced,
                         floor=kit.floor, max_counts=max_counts,
                         voice_follow=kit.voice_follow, fill_floor=kit.fill_floor,
                         floor_draw=floor_draw if kit.random_round else None,
                         ab_slack=kit.ab_slack)
        velocities = added_velocities(hits, sampled, velocities)
    return _velocities_offsets(hits, velocities, offsets)


def added_velocities(hits: np.ndarray, sampled: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Velocities [32, 9] where a hit the kit rules added (in `hits`, not in `sampled`: the
    floor's, the kick on the one, a timekeeper's) plays at least as loud as the model's own hits
    of that voice do on average (ADDED_VELOCITY where it has none). The decoder's velocity
    where it wanted no hit is near 0: such a hit would be counted and never heard."""
    vel = np.asarray(velocities, dtype=np.float32)
    added = hits & ~sampled
    if not added.any():
        return vel
    own = hits & sampled
    count = own.sum(0)
    mean = np.where(count > 0, (np.clip(vel, 0.0, 1.0) * own).sum(0) / np.maximum(count, 1),
                    ADDED_VELOCITY)
    return np.where(added, np.maximum(vel, mean.astype(np.float32)), vel)


def _velocities_offsets(hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vel = np.asarray(velocities, dtype=np.float32)
    off = np.asarray(offsets, dtype=np.float32)
    vel = np.where(hits, np.minimum(np.maximum(vel, 0.0), 1.0), np.float32(0.0))
    off = np.where(hits, np.minimum(np.maximum(off, -0.5), 0.5), np.float32(0.0))
    return hits, vel, off
