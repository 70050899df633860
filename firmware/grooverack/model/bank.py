"""The latent bank: where the encoder puts real grooves, so that random A/B latents sound like drummers.

A latent drawn from N(0, I) is not where the encoder puts real drumming: decoded at follow = 0 it
played about 50 hits per loop (real GMD loops: 38), snare 24 (real: 10) and almost never a tom. The
bank (`models/latent-bank.npz`, built by `python -m grooverack.training.latent_bank`) holds the
encoder's mu of a few hundred TRAIN loops per style (each style's most typical: the build's
`--typical`); a random latent is one of them, of the chosen
style (or of any style, in proportion to its train loops, for "any"), moved by a small Gaussian
perturbation: `z = mu_i + k * sigma * eps`, `sigma` the encoder's mean posterior standard deviation
per latent dimension, `k` the manifest's `latent_bank.perturbation` (1 = a sample of q(z | loop)).

The decoder with the validation thresholds (chosen for hit F1 when following a groove) plays about
16 % more hits than the loops it decodes (kick, snare, hats). `hit_shift` [9] moves each voice's
threshold, in logit space, by the amount that makes the decoded train loops play as many hits per
voice as the real ones; the generator applies it in proportion to how much of z is A/B
(`1 - follow`, all of it when there is no groove), so following a groove keeps the F1 thresholds.

The file (all arrays, no pickles): `mu` float16 [N, L]; `genre` int16 [N] (index into `genres`);
`genres` str [G] (the manifest's genres); `genre_loops` int32 [G] (train loops per genre, the
weights of "any"); `sigma` float32 [L]; `format` int (BANK_FORMAT); optional `hit_shift`
float32 [9] (absent: no shift); optional `real_hits` float32 [G, 9] (mean hits per voice per
loop of the genre's train loops, row 0 = all train loops: the reference a render is checked
against without the dataset).

numpy only (the runtime's dependency).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grooverack.errors import ModelError
from grooverack.voices import NUM_VOICES

BANK_FORMAT = 1
BANK_KEY = "latent_bank"          # the manifest's entry: {"file", "sha256", "perturbation", "built"}
DEFAULT_PERTURBATION = 1.0
_ARRAYS = ("mu", "genre", "genres", "genre_loops", "sigma", "format")


class LatentBank:
    """Stored train-loop latents per genre; `draw(rng, genre)` -> one perturbed latent."""

    def __init__(self, mu: np.ndarray, genre: np.ndarray, genre_loops: np.ndarray,
                 sigma: np.ndarray, perturbation: float = DEFAULT_PERTURBATION,
                 path: Path | None = None, hit_shift: np.ndarray | None = None,
                 real_hits: np.ndarray | None = None) -> None:
        self.mu = np.asarray(mu, dtype=np.float32)
        self.genre = np.asarray(genre, dtype=np.int64)
        self.genre_loops = np.asarray(genre_loops, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float32)
        self.perturbation = float(perturbation)
        self.path = path
        self.hit_shift = (np.zeros(NUM_VOICES) if hit_shift is None
                          else np.asarray(hit_shift, dtype=np.float64).reshape(NUM_VOICES))
        self.real_hits = None if real_hits is None else np.asarray(real_hits, dtype=np.float64)
        self.latent_size = self.mu.shape[1]
        self._by_genre = {int(g): np.flatnonzero(self.genre == g) for g in np.unique(self.genre)}
        # "any": a genre in proportion to its train loops (as a real GMD loop would be), then
        # one of its stored latents: the bank keeps at most a few hundred a genre, so drawing
        # entries uniformly would make the small styles as common as rock
        keys = np.array(sorted(self._by_genre), dtype=np.int64)
        weights = np.array([max(self.genre_loops[g], 0.0) for g in keys])
        if weights.sum() <= 0:
            weights = np.array([len(self._by_genre[g]) for g in keys], dtype=np.float64)
        self._any_genres = keys
        self._any_cdf = np.cumsum(weights / weights.sum())

    def __len__(self) -> int:
        return len(self.mu)

    def genres_stored(self) -> tuple[int, ...]:
        return tuple(int(g) for g in self._any_genres)

    def draw(self, rng: np.random.Generator, genre: int = 0) -> np.ndarray:
        """A stored latent of `genre` (0 = "any", or a genre the bank does not hold: of all
        genres) plus the perturbation; the same rng state gives the same latent."""
        if genre not in self._by_genre:
            pick = int(np.searchsorted(self._any_cdf, rng.random(), side="right"))
            genre = int(self._any_genres[min(pick, len(self._any_genres) - 1)])
        rows = self._by_genre[genre]
        i = rows[int(rng.integers(len(rows)))]
        eps = np.asarray(rng.standard_normal(self.latent_size), dtype=np.float32)
        z: np.ndarray = self.mu[i] + np.float32(self.perturbation) * self.sigma * eps
        return z.astype(np.float32)


def load_bank(path: str | Path, latent_size: int, genres: Sequence[str],
              perturbation: float = DEFAULT_PERTURBATION, *, data: bytes | None = None
              ) -> LatentBank:
    """Read and check a bank file (or `data`, its bytes already read: the model runner hashes
    and loads the same bytes); ModelError names the file and what is wrong."""
    path = Path(path)
    if data is None and not path.is_file():
        raise ModelError(f"{path}: latent bank file not found")
    try:
        with np.load(io.BytesIO(data) if data is not None else path, allow_pickle=False) as npz:
            missing = [k for k in _ARRAYS if k not in npz.files]
            if missing:
                raise ModelError(f"{path}: latent bank lacks the arrays {', '.join(missing)}")
            a = {k: npz[k] for k in _ARRAYS}
            shift = npz["hit_shift"] if "hit_shift" in npz.files else None
            real = npz["real_hits"] if "real_hits" in npz.files else None
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelError(f"{path}: not a readable latent bank ({exc})") from None
    if int(np.asarray(a["format"]).reshape(-1)[0]) != BANK_FORMAT:
        raise ModelError(f"{path}: latent bank format {a['format']!r}, this firmware reads "
                         f"format {BANK_FORMAT}")
    mu, genre, loops, sigma = a["mu"], a["genre"], a["genre_loops"], a["sigma"]
    stored = [str(g) for g in a["genres"]]
    if stored != list(genres):
        raise ModelError(f"{path}: latent bank genres {stored} differ from the model's "
                         f"{list(genres)} (a bank of another model)")
    if mu.ndim != 2 or mu.shape[1] != latent_size or len(mu) == 0:
        raise ModelError(f"{path}: latent bank mu has shape {list(mu.shape)}, expected "
                         f"[N > 0, {latent_size}]")
    if genre.shape != (len(mu),) or genre.min() < 0 or genre.max() >= max(len(genres), 1):
        raise ModelError(f"{path}: latent bank genre must be {len(mu)} indices into the "
                         f"{len(genres)} genres")
    if loops.shape != (len(stored),) or sigma.shape != (latent_size,):
        raise ModelError(f"{path}: latent bank genre_loops / sigma have shapes "
                         f"{list(loops.shape)} / {list(sigma.shape)}, expected "
                         f"[{len(stored)}] / [{latent_size}]")
    mu32 = mu.astype(np.float32)
    if not (np.all(np.isfinite(mu32)) and np.all(np.isfinite(sigma)) and np.all(sigma >= 0)):
        raise ModelError(f"{path}: latent bank holds non-finite or negative values")
    if shift is not None and (shift.shape != (NUM_VOICES,) or not np.all(np.isfinite(shift))
                              or np.abs(shift).max() > 10.0):
        raise ModelError(f"{path}: latent bank hit_shift must be {NUM_VOICES} finite logit "
                         f"shifts within +-10, found shape {list(shift.shape)}")
    if real is not None and real.shape != (len(stored) or 1, NUM_VOICES):
        raise ModelError(f"{path}: latent bank real_hits has shape {list(real.shape)}, expected "
                         f"[{len(stored) or 1}, {NUM_VOICES}]")
    if not (np.isfinite(perturbation) and 0.0 <= perturbation <= 10.0):
        raise ModelError(f"{path}: latent bank perturbation {perturbation!r}; allowed 0..10")
    return LatentBank(mu32, genre, loops, sigma, perturbation, path, shift, real)


def save_bank(path: str | Path, mu: np.ndarray, genre: np.ndarray, genres: Sequence[str],
              genre_loops: np.ndarray, sigma: np.ndarray,
              hit_shift: np.ndarray | None = None, real_hits: np.ndarray | None = None) -> None:
    """Write a bank file (float16 latents, compressed)."""
    from grooverack.storage import atomic_write_bytes

    arrays = {} if hit_shift is None else {"hit_shift": np.asarray(hit_shift, dtype=np.float32)}
    if real_hits is not None:
        arrays["real_hits"] = np.asarray(real_hits, dtype=np.float32)
    arrays.update(
        mu=np.asarray(mu, dtype=np.float16), genre=np.asarray(genre, dtype=np.int16),
        genres=np.asarray(list(genres), dtype=str),
        genre_loops=np.asarray(genre_loops, dtype=np.int32),
        sigma=np.asarray(sigma, dtype=np.float32), format=np.array(BANK_FORMAT, dtype=np.int32))
    # an .npz (np.load reads it) written with fixed member times: the same build, the same bytes
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)
            zf.writestr(info, member.getvalue())
    atomic_write_bytes(Path(path), buf.getvalue())
