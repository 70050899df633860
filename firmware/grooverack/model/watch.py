"""The model as the module finds it at start and while it plays: loaded, or absent with the reason.

A missing, damaged or foreign model must not silence the module: `ModelWatch` tries to open the
configured manifest once at start; when that fails it logs one warning naming the file and the
reason, hands out a `NoModel` (the runner's attributes, no inference: the engine then plays rule
patterns, `engine.rules`) and, from `poll()`, looks again at most every `period` seconds: when the
manifest or the files it names have appeared or changed (size, mtime), it tries to open them and
returns the new `ModelRunner` once. The same holds while a model plays: files copied over it are
opened beside it and the new model is returned whole; files that do not load (a copy under way, a
damaged file, a bank that does not read) leave the model that plays as it is, with one warning
naming the file, and are tried again when they change. `poll` runs on the generator's worker (real
time) or at loop boundaries (virtual time), never on the real-time path; the generator closes the
model it replaced there too (`ModelRunner.close`).

What a load costs the real-time loop (onnxruntime 1.32, x86, measured with a probe thread under
SCHED_FIFO): a session's creation releases the GIL but for the parse of the file (~0.6 ms for
the decoder), the bank ~0.8 ms, a whole runner dropped at once 2.4 ms (hence `close`);
benchmarks/README.md ("A model loaded while playing") has the loop's lateness.

A command that needs the model itself (export, eval) opens `ModelRunner` directly, which raises
the `ModelError` naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.errors import ModelError
from grooverack.model.bank import BANK_KEY
from grooverack.model.runner import ModelRunner, default_manifest_path
from grooverack.storage import read_text_bounded
from grooverack.voices import NUM_VOICES, VOICE_NAMES

RECHECK_S = 2.0          # how often an absent model's files are looked at again
DEFAULT_LATENT_SIZE = 128  # the shipped model's; used when no manifest says otherwise

log = logging.getLogger("grooverack.model")


class NoModel:
    """What the engine holds while no model loads: the runner's attributes, no inference.

    `problem` says why (the ModelError's text: the file and what is wrong with it)."""

    trained = False
    tempo = False
    latent_bank = None
    data_hash = ""
    removal_groups: tuple[str, ...] = ()
    bar_swap = False

    def __init__(self, manifest_path: Path, variant: str, problem: str) -> None:
        self.manifest_path = manifest_path
        self.variant = variant
        self.problem = problem
        self.latent_size = _manifest_latent_size(manifest_path)
        self.voices: tuple[str, ...] = VOICE_NAMES
        self.genres: tuple[str, ...] = ()
        self.genres_offered: tuple[str, ...] = ()
        self.thresholds = np.full(NUM_VOICES, 0.5, dtype=np.float32)
        self.manifest: dict[str, Any] = {}

    # never called: the engine plays rules meanwhile
    def thresholds_for(self, removed: Any = None) -> Any:
        return self.thresholds

    def encode(self, groove: Any) -> Any:
        raise ModelError(self.problem)

    def encode_views(self, groove: Any) -> Any:
        raise ModelError(self.problem)

    def decode(self, z: Any, genre: int = 0, bpm: float | None = None,
               removed: Any = None) -> Any:
        raise ModelError(self.problem)

    def decode_views(self, z_pair: Any, genre: int = 0, bpm: float | None = None,
                     removed: Any = None, weight: float = 0.5) -> Any:
        raise ModelError(self.problem)

    def __repr__(self) -> str:
        return f"NoModel({str(self.manifest_path)!r}: {self.problem})"


def _manifest_latent_size(path: Path) -> int:
    """The latent size a readable manifest names (presets keep their latents), else 128."""
    try:
        size = json.loads(read_text_bounded(path, "model manifest", ModelError)).get("latent_size")
    except (ModelError, ValueError, AttributeError):
        return DEFAULT_LATENT_SIZE
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 \
        else DEFAULT_LATENT_SIZE


# The smallest ONNX graph (y = Identity(x), opset 17): one session made from it at start
# leaves nothing for a later load to initialise (see `prepare_runtime`).
_WARM_MODEL = (b'\x08\x08::\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x04warmZ\x0f\n\x01x\x12\n\n'
               b'\x08\x08\x01\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02'
               b'\x08\x01B\x04\n\x00\x10\x11')


def prepare_runtime() -> bool:
    """Import onnxruntime and make one session, at start, while nothing plays. A model that
    loads later (on the generator's worker) then costs the real-time loop nothing: the import
    of the runtime's C++ module and its first session hold the GIL for 100-200 ms (measured on
    x86; more on a Pi), which a loop waiting for the GIL would feel as late outputs."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        ort.InferenceSession(_WARM_MODEL, options, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime missing or broken: the load will say so
        return False
    return True


def model_files(manifest_path: Path, variant: str) -> list[Path]:
    """The manifest and the files it names for `variant` (encoder, decoders) and its latent
    bank, as far as readable."""
    files = [manifest_path]
    try:
        manifest = json.loads(read_text_bounded(manifest_path, "model manifest", ModelError))
        pair = manifest["variants"][variant]
        files += [manifest_path.parent / str(pair[role])
                  for role in ("encoder", "decoder", "decoder_plain") if role in pair]
        bank = manifest.get(BANK_KEY)
        if isinstance(bank, dict) and isinstance(bank.get("file"), str):
            files.append(manifest_path.parent / bank["file"])
    except (ModelError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return files


def _signature(files: list[Path]) -> tuple[tuple[str, int, int] | tuple[str], ...]:
    out: list[tuple[str, int, int] | tuple[str]] = []
    for path in files:
        try:
            st = os.stat(path)
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path),))
    return tuple(out)


class ModelWatch:
    """The configured model, opened at start and looked at again (`poll`): while absent, until
    it loads; while it plays, for files copied over it."""

    def __init__(self, manifest_path: str | os.PathLike[str] | None = None,
                 variant: str = "int8", *, period: float = RECHECK_S, quiet: bool = False,
                 clock: Any = time.monotonic) -> None:
        self.manifest_path = Path(manifest_path) if manifest_path else default_manifest_path()
        self.variant = variant
        self.period = float(period)
        self.clock = clock
        self.tries = 0
        self._next = -float("inf")
        self._signature: tuple[Any, ...] | None = None
        self.rejected = ""  # why the files last tried while a model plays did not replace it
        self._named: tuple[Any, list[Path]] = ((), [])  # the manifest's stat, the files it names
        self.runner: ModelRunner | NoModel = self._try()
        if isinstance(self.runner, NoModel):
            prepare_runtime()  # before the loop runs: a later load must not stall it
            if quiet:  # generation.mode = rules: the model is not needed to play
                log.info("%s; generation.mode = rules plays rule patterns", self.problem)
            else:
                log.warning("%s; playing rule patterns instead (the fallback) until the model "
                            "loads: its files are looked at again every %g s\n  %s",
                            self.problem, self.period, ModelError.FIX)

    def _files_signature(self) -> tuple[Any, ...]:
        """Size and mtime of the manifest and the files it names; the manifest is read again
        only when its own stat changed (a poll while a model plays: a few stats)."""
        head = _signature([self.manifest_path])
        if head != self._named[0]:
            self._named = (head, model_files(self.manifest_path, self.variant)[1:])
        return head + _signature(self._named[1])

    @property
    def problem(self) -> str:
        """Why no model plays ('' when it loaded)."""
        return self.runner.problem

    def _try(self, replacing: bool = False) -> ModelRunner | NoModel:
        """Open the model's files (the signature taken first: files that change while they load
        are tried again). `replacing` (a model plays): its latent bank must load too, or the
        model that plays goes on whole (a copy may still be under way)."""
        self.tries += 1
        self._signature = self._files_signature()
        try:
            return ModelRunner(self.manifest_path, self.variant, require_bank=replacing)
        except ModelError as exc:  # its message without the fix (the warning adds that once)
            return NoModel(self.manifest_path, self.variant,
                           str(exc.args[0]) if exc.args else repr(exc))
        except Exception as exc:  # onnxruntime missing or broken: still the module plays
            return NoModel(self.manifest_path, self.variant,
                           f"{self.manifest_path}: the model fails to load "
                           f"({type(exc).__name__}: {exc})")

    def poll(self, *, force: bool = False) -> ModelRunner | None:
        """At most every `period` s, when the files changed since the last try (or `force`), try
        them. Returns the new ModelRunner once (the caller takes it over whole and closes the one
        it replaces), else None: nothing changed, or the files did not load (then the model that
        plays, or the rule patterns, go on; one warning per reason names the file)."""
        now = self.clock()
        if not force and now < self._next:
            return None
        self._next = now + self.period
        if not force and self._files_signature() == self._signature:
            return None
        playing = not self.problem
        before = self.rejected if playing else self.problem
        runner = self._try(replacing=playing)
        if isinstance(runner, NoModel):
            if runner.problem != before:
                log.warning("%s; %s", runner.problem,
                            "the model loaded before plays on" if playing
                            else "still playing rule patterns")
            if playing:
                self.rejected = runner.problem
            else:
                self.runner = runner
            return None
        self.rejected = ""
        self.runner = runner
        log.warning("%s: the model %s", self.manifest_path,
                    "replaced: the new one plays from the next step" if playing
                    else "loaded; it plays again (rule patterns end)")
        return runner
