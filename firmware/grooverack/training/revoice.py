"""Voice redistribution targets: a drum pattern re-voiced without some voice groups.

The decoder learns what a drummer does when an instrument is taken away: it is told which groups
(`voices.VOICE_GROUPS`: kick, snare, hats, toms, cymbals) are removed and trained towards the
loop played without them, where every groove onset that only a removed voice played moves onto
the nearest remaining instrument (`SUBSTITUTES`: kick -> low tom, snare -> high tom, closed hat
-> ride, crash -> open hat, ...), with that hit's velocity and offset. Onsets another remaining
voice already plays stay as they are, so a removed group thins nothing but itself and the groove
stays covered: the target plays a hit on every step the drummer did.

`revoice_torch` does the work (the training batch); `revoice` is it on numpy arrays (tests and
measurements). `substitute_table` precomputes the substitute of every voice for each of the 2^G
combinations of removed groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grooverack.voices import NUM_VOICES, VOICE_GROUPS, VOICE_NAMES

GROUPS = tuple(VOICE_GROUPS)
# group -> voice indices
GROUP_VOICES = tuple(tuple(VOICE_NAMES.index(v) for v in VOICE_GROUPS[g]) for g in GROUPS)
# removed voice -> the instruments a drummer moves its hits to, nearest first
SUBSTITUTES: dict[str, tuple[str, ...]] = {
    "kick": ("low_tom", "snare", "mid_tom"),
    "snare": ("high_tom", "mid_tom", "low_tom", "closed_hat"),
    "closed_hat": ("ride", "crash", "snare"),
    "open_hat": ("crash", "ride", "snare"),
    "low_tom": ("kick", "mid_tom", "snare"),
    "mid_tom": ("snare", "high_tom", "low_tom"),
    "high_tom": ("snare", "mid_tom", "closed_hat"),
    "crash": ("open_hat", "ride", "closed_hat", "snare"),
    "ride": ("closed_hat", "open_hat", "crash", "snare"),
}


def group_matrix() -> np.ndarray:
    """[G, 9] 0/1: which voices each group holds."""
    m = np.zeros((len(GROUPS), NUM_VOICES), np.float32)
    for gi, voices in enumerate(GROUP_VOICES):
        m[gi, list(voices)] = 1.0
    return m


def removed_voices(flags: np.ndarray) -> np.ndarray:
    """Group flags [..., G] -> removed voices [..., 9] bool."""
    return (np.asarray(flags, np.float32) @ group_matrix()) > 0.5


def combo_index(flags: np.ndarray) -> np.ndarray:
    """Group flags [..., G] (0/1) -> the combination's index 0..2^G-1 (bit g = group g)."""
    bits = (np.asarray(flags) > 0.5).astype(np.int64)
    return (bits * (1 << np.arange(len(GROUPS)))).sum(-1)


def substitute_table() -> np.ndarray:
    """[2^G, 9] int: for each combination of removed groups, the voice a removed voice's hits
    move to (the first of its SUBSTITUTES not removed, else the first remaining voice; -1 where
    the voice is not removed or nothing remains)."""
    table = np.full((1 << len(GROUPS), NUM_VOICES), -1, np.int64)
    for combo in range(1 << len(GROUPS)):
        flags = np.array([(combo >> g) & 1 for g in range(len(GROUPS))], np.float32)
        gone = removed_voices(flags)
        left = [v for v in range(NUM_VOICES) if not gone[v]]
        if not left:
            continue
        for v in np.flatnonzero(gone):
            prefs = [VOICE_NAMES.index(s) for s in SUBSTITUTES[VOICE_NAMES[v]]]
            table[combo, v] = next((s for s in prefs if not gone[s]), left[0])
    return table


def revoice(hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray,
            flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loops [N, 32, 9] and group flags [N, G] -> the loops re-voiced without those groups
    (numpy in and out; the work is `revoice_torch`'s, the one the training batch uses)."""
    import torch

    out = revoice_torch(*(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                          for a in (hits, velocities, offsets, flags)),
                        torch.from_numpy(substitute_table()), torch.from_numpy(group_matrix()))
    return tuple(t.numpy() for t in out)  # type: ignore[return-value]


def revoice_torch(hits: Any, velocities: Any, offsets: Any, flags: Any, table: Any,
                  matrix: Any) -> tuple[Any, Any, Any]:
    """`revoice` on torch tensors (hits may be soft: > 0.5 is a hit); `table` =
    torch.from_numpy(substitute_table()), `matrix` = torch.from_numpy(group_matrix())."""
    import torch

    h = (hits > 0.5).to(torch.float32)
    v, o = velocities.clone(), offsets.clone()
    gone = (flags.to(torch.float32) @ matrix) > 0.5                       # [B, 9]
    bits = (flags > 0.5).to(torch.int64) * (1 << torch.arange(flags.shape[-1]))
    sub = table[bits.sum(-1)]                                              # [B, 9]
    covered = (h * (~gone)[:, None, :].to(h.dtype)).amax(-1) > 0           # [B, 32]
    for voice in range(h.shape[-1]):
        move = (h[:, :, voice] > 0) & gone[:, voice, None] & ~covered
        n, s = torch.nonzero(move, as_tuple=True)
        target = sub[n, voice]
        ok = target >= 0
        n, s, target = n[ok], s[ok], target[ok]
        h[n, s, target] = 1.0
        v[n, s, target] = velocities[n, s, voice]
        o[n, s, target] = offsets[n, s, voice]
        covered = covered | move
    keep = (~gone)[:, None, :].to(h.dtype)
    return h * keep, v * keep, o * keep


def onset_coverage(pred_hits: np.ndarray, groove: np.ndarray,
                   voices: np.ndarray | None = None) -> float:
    """Share of the groove's onsets (steps with groove hit > 0) on which the pattern plays a hit
    on one of `voices` ([9] bool, or [N, 9]; default all)."""
    p = np.asarray(pred_hits) > 0.5
    if voices is not None:
        p = p & np.broadcast_to(np.asarray(voices, bool).reshape(-1, 1, NUM_VOICES)
                                if np.ndim(voices) == 2 else np.asarray(voices, bool), p.shape)
    onsets = np.asarray(groove)[..., 0] > 0.5
    return float((p.any(-1) & onsets).sum() / max(onsets.sum(), 1))
