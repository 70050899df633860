"""Engine: the facade every back end drives (see ARCHITECTURE.md, "Engine contract").

    eng = Engine(settings, runner, threaded=False)
    eng.start(t); eng.stop(t); eng.continue_(t); eng.reset(t)
    eng.clock_pulse(t); eng.midi_clock(t); eng.song_position(t, sixteenths)
    eng.onset(t, velocity=None, pitch_volts=None)
    eng.set_control(name, value); eng.press(button)
    events = eng.advance(t_until)       # OutputEvents with time < t_until, sorted
    eng.pattern; eng.groove

Pure: time is always an argument. Wiring: Clock -> position; GrooveCapture <- onsets;
Generator <- (groove, controls) at step commits; Player <- pattern + clock -> events.

When the generator is asked for a new pattern (at the commit of step `s`, i.e. when the position
reaches s - 0.5): a control changed (decode only), the tempo moved by TEMPO_STEP from the one the
pattern was made for (a tempo-conditioned model only; decode only), the groove changed and `s` is
on the `generation.reencode` boundary (bar, the default / step / loop; after a groove knob, the
next step; a first groove, into an empty one, from the first bar line after its first onset, read
bar-filled until a whole loop has been heard: see `_before_commit`), or a new loop starts with
uncertainty > 0
(new sampling noise: the pattern varies from loop to loop, by the loop count only, never by the
input). Synchronously the new pattern plays from step `s`; threaded from a later commit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from grooverack.config import BUTTONS, CONTROLS, Settings, canonical_key
from grooverack.controls import GENERATION_KEYS, GenerationControls
from grooverack.engine.clock import Clock
from grooverack.engine.fill import FillGate
from grooverack.engine.generator import Generator, Request
from grooverack.engine.groove import GrooveCapture, PitchToVelocity, bar_filled
from grooverack.engine.pattern import Pattern
from grooverack.engine.player import OutputEvent, Player
from grooverack.engine.seam import RunnerSeam
from grooverack.errors import ConfigError
from grooverack.voices import STEPS, STEPS_PER_BAR, VOICE_GROUPS, VOICE_NAMES

__all__ = ["Engine", "OutputEvent", "BUTTONS", "PRESET_FORMAT"]
log = logging.getLogger("grooverack.engine")

REENCODE_EVERY = {"step": 1, "bar": 16, "loop": STEPS}
# A tempo-conditioned model hears the tempo in steps of about 4 %: a new pattern when the clock's
# tempo has moved that far from the one the pattern was made for, not at every wobble of an
# external clock's estimate (+-0.5 BPM at 120 with 8 intervals of smoothing).
TEMPO_STEP = 0.04
RESET_GRACE_S = 0.002   # a reset this soon after a clock edge may belong to that edge
PRESET_FORMAT = 1
PRESET_SLOTS = 16
# Keys a preset stores besides the latents: the panel (its shift layer's velocity scales too).
PRESET_KEYS = (*CONTROLS, "genre", "record", "memory", *(f"mute.{v}" for v in VOICE_NAMES),
               *(f"outputs.scale.{n}" for n in range(1, 17)))
# Keys that need a restart (the model, the board, where files live).
FIXED_KEYS = ("model.path", "model.variant", "board", "state.dir", "log.level")
_TYPED = frozenset(GENERATION_KEYS)  # the keys set_control moves in `Engine.controls`


class Engine:
    """Clock + groove capture + generator + player, driven by explicit times."""

    def __init__(self, settings: Settings | None, runner: RunnerSeam, *, threaded: bool = False,
                 watch: Any = None) -> None:
        self.settings = settings.copy() if settings is not None else Settings()
        s = self.settings
        # what generation reads, typed and checked once; `set_control` replaces it whole and
        # keeps `settings` (the record presets, state and the page read) in step
        self.controls = GenerationControls.from_settings(s)
        self.runner = runner
        self.clock = Clock(s)
        self.capture = GrooveCapture(s)
        self.pitch = PitchToVelocity(s)
        genre = self._genre_index(self.controls.genre)
        self.generator = Generator(runner, seed=self.controls.seed, threaded=threaded,
                                   genre=genre, watch=watch)
        self._model_serial = self.generator.model_serial
        self._fill = FillGate()         # the fill gate and the fill it plays (engine/fill.py)
        self.player = Player(s, self.generator.buffer)
        self.threaded = threaded
        self.presets: dict[int, dict[str, Any]] = {}
        self.preset_slot = 1
        self._epoch = self.clock.epoch
        self._now = -math.inf          # the latest time any call told us about
        self._horizon = -math.inf      # the latest t_until of advance()
        self._serial = 0
        self._controls_dirty = False
        self._knob_dirty = False  # a groove knob moved: re-encode at the next step
        self._groove = self.capture.groove
        self._groove_version = self.capture.version
        self._listening_since: int | None = None   # step of the first onset into an empty groove
        self._partial = False   # the model reads a bar-filled first groove (not a whole loop yet)
        self._variation = 0
        self._genre = genre
        self._model_bpm = round(self.clock.bpm, 1) if self.generator.tempo_aware else 0.0
        # the first pattern, synchronously, so something sensible plays from the first step
        first = self.generator.generate(self._make_request())
        self.player.pattern = first

    # --- helpers ---------------------------------------------------------------------------------------
    def _genre_index(self, name: str) -> int:
        if self.runner.problem:
            return 0  # no model to check the style with: it is checked once one loads
        genres = tuple(self.runner.genres)
        if not genres:
            if name != "any":
                raise ConfigError(f"config key 'genre': value {name!r} is not allowed; "
                                  f"this model has no genres, allowed: 'any'")
            return 0
        # only the styles the model offers (enough train loops to have learned them)
        offered = self.offered_styles
        if name not in offered:
            dropped = (self.runner.manifest or {}).get(
                "genres_offered_rule", {}).get("dropped", {}).get(name, {})
            reason = ("not recognisable as the style (a genre classifier of its own, "
                      "models/README.md)" if "reason" in dropped else "too few train loops")
            why = (f" (the model knows it but does not offer it: {reason})"
                   if name in genres else "")
            raise ConfigError(f"config key 'genre': value {name!r} is not allowed{why}; "
                              f"allowed: {', '.join(offered)}")
        return genres.index(name)

    @property
    def offered_styles(self) -> tuple[str, ...]:
        """The styles a player may choose ('any' first): the model's genres that had enough
        train loops to be learned (`ModelRunner.genres_offered`; "gospel" has none). The one
        list the `genre` key, the style buttons and the panel offer."""
        genres = tuple(self.runner.genres)
        return tuple(self.runner.genres_offered or genres) or ("any",)

    def _touch(self, t: float) -> None:
        self._now = max(self._now, t)

    def _t(self) -> float:
        """The time a timeless change (set_control) takes effect: after what was returned."""
        t = max(self._now, self._horizon)
        return t if math.isfinite(t) else 0.0

    def _after_clock(self, t: float) -> None:
        if self.clock.epoch != self._epoch:
            self._epoch = self.clock.epoch
            position = self.clock.position(t)
            self.player.rebase(position)
            self._fill.rebased(self.player)  # a start or reset ends a fill whose gate is low
            self.capture.rebase(position)

    def _make_request(self, fill: int | None = None) -> Request:
        self._serial += 1
        return Request(
            controls=self.controls,
            z_a=self.generator.z_a.copy(), z_b=self.generator.z_b.copy(),
            groove=self._groove, groove_version=self._groove_version, genre=self._genre,
            variation=self._variation, serial=self._serial, bpm=self._model_bpm,
            fill=self.player.fill if fill is None else fill)

    def _before_commit(self, step: int) -> None:
        want = self._controls_dirty
        want = self._model_commit(step) or want
        want = self._fill_commit(step) or want
        every = REENCODE_EVERY[self.settings["generation.reencode"]]
        boundary = step % every == 0 or (self._knob_dirty and not self._partial)
        self._knob_dirty = False
        if (self.capture.version != self._groove_version or self._partial) and boundary:
            groove = self.capture.groove
            if not groove[:, 0].any():
                self._listening_since = None
            since = self._listening_since
            heard = STEPS if since is None else step - since
            # A first groove is followed from the first bar line after its first onset: a
            # half-captured loop would encode as a half-empty groove (the drums falling silent
            # where the line has not been heard yet), so until a whole loop has been heard the
            # model reads the heard bar(s) copied over the unheard ones (`bar_filled`), renewed
            # at each bar line. Once a loop has been heard, changes are followed at the next
            # `generation.reencode` boundary (default: the bar line, as a drummer changes a
            # pattern; a line whose cycle does not divide the loop changes the groove at every
            # onset, and re-encoding each step would stitch one loop from a dozen patterns).
            if heard >= STEPS or (self._groove[:, 0].any() and not self._partial):
                self._groove = groove
                self._groove_version = self.capture.version
                self._partial = False
                want = True
            elif heard > 0 and step % STEPS_PER_BAR == 0:
                assert since is not None  # heard < STEPS: a first onset was heard
                self._groove = bar_filled(groove, since, step)
                self._groove_version = self.capture.version
                self._partial = True
                want = True
        # the engine's own view of the model (taken at its commit): a model the worker is taking
        # over meanwhile is not this loop's until `_model_commit` sees it, whole
        if self._model_bpm > 0.0:
            bpm = self.clock.bpm
            if abs(math.log(bpm / self._model_bpm)) >= math.log1p(TEMPO_STEP):
                self._model_bpm = round(bpm, 1)
                want = True
        loop = max(step, 0) // STEPS
        if step % STEPS == 0 and loop != self._variation:
            self._variation = loop
            want = want or self.controls.uncertainty > 0.0
        if want:
            self._controls_dirty = False
            self.generator.request(self._make_request())

    # --- transport -------------------------------------------------------------------------------------
    def start(self, t: float, *, midi: bool = False) -> None:
        """MIDI Start semantics: reset + run (step 0 at t, or at the next external pulse;
        `midi`: a MIDI Start, step 0 on the first MIDI clock after it, in `auto` too)."""
        self._touch(t)
        self.clock.start(t, midi=midi)
        self._variation = 0
        self._after_clock(t)

    def stop(self, t: float) -> None:
        """Freeze the position; pending hits are dropped, high outputs fall at t."""
        self._touch(t)
        self.clock.stop(t)
        self.player.stop(t, self.clock.position(t))

    def continue_(self, t: float, *, midi: bool = False) -> None:
        """Run on from where the transport stopped (`midi`: from the next MIDI clock)."""
        self._touch(t)
        self.clock.continue_(t, midi=midi)
        self._after_clock(t)

    def reset(self, t: float) -> None:
        """Reset: with an external clock it re-arms step 0 and never fires (the next clock plays
        step 0); with the internal clock a reset in the first half of a 16th plays step 0 now, one
        in the second half makes the next 16th step 0 (a reset on a grid line makes that line
        step 0, so a sequencer's line lands on its steps).

        A reset arriving just after an external clock edge (within RESET_GRACE_S or a quarter of
        the pulse period) belongs to that edge when it started a step that has not sounded yet:
        that edge becomes step 0 (clock and reset from one sequencer come together, in either
        order; step 0 is then neither late nor doubled).
        """
        self._touch(t)
        clock = self.clock
        pulse_t = clock.last_pulse_time
        if clock.driver == "internal" and clock.playing and abs(clock.position(t)) < 1e-9:
            return   # step 0 is now already (a start at the same time): nothing to re-arm
        if (clock.driver == "external" and clock.playing and pulse_t is not None
                and 0.0 <= t - pulse_t <= min(RESET_GRACE_S, 0.25 * clock.period)):
            p = clock.position(pulse_t)
            step = round(p)
            if abs(p - step) < 1e-6 and step == 0:
                # that edge is step 0 already (auto: the first edge took over from the internal
                # tempo on step 0, which sounded then): the reset asks for nothing more; arming
                # it again would move step 0 to the next edge and the groove a pulse early
                return
            if abs(p - step) < 1e-6 and self.player.sounded < step:
                clock.reset(t, at_last_pulse=True)
                self._after_clock(pulse_t)
                return
        clock.reset(t)
        self._after_clock(t)

    def clock_pulse(self, t: float) -> None:
        """An external clock edge (resolution `clock.ppqn`)."""
        self._touch(t)
        self.clock.pulse(t)
        self._after_clock(t)

    def midi_clock(self, t: float) -> None:
        """MIDI timing clock 0xF8 (24 PPQN)."""
        self._touch(t)
        self.clock.midi_clock(t)
        self._after_clock(t)

    def song_position(self, t: float, sixteenths: int) -> None:
        """MIDI Song Position Pointer (in sixteenths = steps): the next MIDI clock plays it."""
        self._touch(t)
        self.clock.song_position(t, int(sixteenths), midi=True)
        self._after_clock(t)

    # --- the model, or rules, and fills ------------------------------------------------------------------
    @property
    def generation(self) -> str:
        """What plays: "model", "rules" (generation.mode = rules, chosen: the model need not
        load) or "fallback" (rule patterns because the model is missing or failed to load:
        `model_problem` says why)."""
        if self.controls.mode == "rules":
            return "rules"
        return "fallback" if self.generator.problem else "model"

    @property
    def model_problem(self) -> str:
        """Why no model plays (the file and the reason), '' when it does."""
        return self.generator.problem

    def _model_commit(self, step: int) -> bool:
        """A model that loaded while rules played, or replaced the one that played (the worker
        took it over, or here at a loop boundary in virtual time): play it from now on."""
        if not self.generator.threaded and step % STEPS == 0:
            self.generator.poll_model()
        if self.generator.model_serial == self._model_serial:
            return False
        self._model_serial = self.generator.model_serial
        self.runner = self.generator.runner
        self._model_bpm = round(self.clock.bpm, 1) if self.generator.tempo_aware else 0.0
        try:
            self._genre = self._genre_index(self.controls.genre)
        except ConfigError as exc:
            log.warning("%s; the model plays 'any'", exc)
            self._genre = 0
        if self._genre:  # A/B of the style, as a start with the model draws them
            self.generator.start_latents(self._genre)
        return True

    def fill(self, t: float, high: bool) -> None:
        """The fill gate at t. High: from the next step the drums play a fill (the model's own
        busier pattern, toms and crash allowed; in rules a denser rule pattern). Low: the fill
        goes on to the next bar line (16 steps; the loop end is one) and ends there."""
        self._touch(t)
        self._fill.set(bool(high), self.clock.position(t) if self.clock.running else -math.inf)

    @property
    def filling(self) -> bool:
        """True while a fill plays (from the gate's rise to the bar line after its fall)."""
        return bool(self.player.fill)

    def _fill_commit(self, step: int) -> bool:
        """At the commit of `step`: start, hold or end the fill (`engine.fill.FillGate`)."""
        return self._fill.commit(
            step, self.player, lambda fill: self.generator.request(self._make_request(fill=fill)))

    # --- input --------------------------------------------------------------------------------------------
    def onset(self, t: float, velocity: float | None = None,
              pitch_volts: float | None = None) -> bool:
        """A gate rising edge at t. velocity 0..1 direct (MIDI), else from pitch_volts via
        PitchToVelocity (in `input.velocity_mode = "cv"`, pitch_volts carries the velocity CV).
        Returns True when the onset was captured (transport running, record mode not off)."""
        self._touch(t)
        if velocity is None:
            velocity = self.pitch.velocity(pitch_volts)
        if not self.clock.running:
            return False
        position = self.clock.position(t)
        captured = self.capture.add(position, float(velocity))
        if captured and self._listening_since is None:
            self._listening_since = round(position)
        return captured

    # --- controls ---------------------------------------------------------------------------------------
    def set_control(self, name: str, value: Any) -> Any:
        """Change a setting while playing (validated by the schema; ConfigError names the key).

        A key generation reads (`controls.GENERATION_KEYS`) makes a new `self.controls`, checked
        when made; `settings` records every key (presets, the saved state and the page read it).
        Then the dispatch table below says what else the change does."""
        if name in FIXED_KEYS:
            raise ConfigError(f"config key {name!r} cannot change while running; restart with it")
        name = canonical_key(name)
        if name in _TYPED:
            controls = self.controls.with_value(name, value)
            if name == "genre":  # the model's own check: a style it offers
                self._genre = self._genre_index(controls.genre)
            self.controls = controls
            value = controls.value(name)
        value = self.settings.set(name, value)
        setter = _SETTERS.get(name)
        if setter is None:
            setter = next((f for prefix, f in _PREFIX_SETTERS if name.startswith(prefix)), None)
        if setter is not None:
            setter(self, name, value, self._t())
        return value

    def _generation_changed(self, name: str, value: Any, t: float) -> None:
        self._controls_dirty = True  # the next step boundary asks for a new decode

    def _groove_knob(self, **amounts: float) -> None:
        """A groove knob (velocity, offset) reshapes the groove already heard: re-encoded at the
        next step, as a control is, not at the `generation.reencode` boundary the line's own
        changes wait for."""
        self.capture.set_amounts(**amounts)
        self._knob_dirty = True

    def _outputs_changed(self, name: str, value: Any, t: float) -> None:
        player, settings = self.player, self.settings
        player.outputs = int(settings["outputs.count"])
        player.trigger_s = float(settings["outputs.trigger_ms"]) / 1000.0
        player.gate_mode = bool(settings["outputs.gate_mode"])
        player.accent = bool(settings["outputs.accent"])
        player.accent_threshold = float(settings["outputs.accent_threshold"])
        player.clock_ppqn = int(settings["outputs.clock_ppqn"])
        player.read_modes(settings)

    def _input_changed(self, name: str, value: Any, t: float) -> None:
        history = self.pitch._recent
        self.pitch = PitchToVelocity(self.settings)
        self.pitch._recent.extend(history)

    def press(self, button: str) -> Any:
        """A panel button: record (cycles record/overdub/off), clear, randomize_a/b,
        save_preset / recall_preset (the current slot), next_preset / previous_preset,
        next_style / previous_style (the offered styles, wrapping; returns the new one),
        mute_<group> (toggles the voices of `voices.VOICE_GROUPS[group]`; returns the new mute).
        recall_preset on an empty slot logs a warning and returns None (a press never raises for
        the state the module is in; an unknown button is a ValueError)."""
        if button == "record":
            mode = self.capture.cycle_mode()
            self.settings.set("record", mode)
            return mode
        if button == "clear":
            self.capture.clear()
            return None
        if button in ("randomize_a", "randomize_b"):
            z = self.generator.randomize(button[-1], self._genre)
            self._controls_dirty = True
            return z
        if button == "save_preset":
            return self.save_preset(self.preset_slot)
        if button == "recall_preset":
            # a button cannot be refused: an empty (or unreadable) slot is said in the log and
            # the module plays on with what it has
            try:
                return self.recall_preset(self.preset_slot)
            except ValueError as exc:
                log.warning("recall_preset: %s", exc)
                return None
        if button in ("next_preset", "previous_preset"):
            step = 1 if button == "next_preset" else -1
            self.preset_slot = (self.preset_slot - 1 + step) % PRESET_SLOTS + 1
            return self.preset_slot
        if button in ("next_style", "previous_style"):
            styles = self.offered_styles
            now = self.controls.genre
            at = styles.index(now) if now in styles else 0
            step = 1 if button == "next_style" else -1
            return self.set_control("genre", styles[(at + step) % len(styles)])
        if button.startswith("mute_") and button[5:] in VOICE_GROUPS:
            # a group that is all muted unmutes; any other state mutes the whole group
            keys = [f"mute.{v}" for v in VOICE_GROUPS[button[5:]]]
            mute = not all(self.controls.value(k) for k in keys)
            for key in keys:
                self.set_control(key, mute)
            return mute
        if button == "shift":  # held on the panel: its back end switches layers, nothing here
            return None
        raise ConfigError(f"unknown button {button!r}; allowed: {', '.join(BUTTONS)}")

    # --- presets -------------------------------------------------------------------------------------------
    def save_preset(self, n: int) -> dict[str, Any]:
        """Latents A and B and the panel as a plain dict (JSON-ready); kept as preset n."""
        data = {
            "format": PRESET_FORMAT,
            "slot": int(n),
            "latent_size": self.generator.latent_size,
            "a": [float(x) for x in self.generator.z_a],
            "b": [float(x) for x in self.generator.z_b],
            "panel": {key: self.settings[key] for key in PRESET_KEYS},
        }
        self.presets[int(n)] = data
        self.preset_slot = int(n)
        return data

    def recall_preset(self, n: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Restore preset n (from `data` when given, else the one saved in this session)."""
        if data is None:
            if int(n) not in self.presets:
                raise ValueError(f"preset {n} is empty; saved presets: {sorted(self.presets)}")
            data = self.presets[int(n)]
        if data.get("format") != PRESET_FORMAT:
            raise ValueError(f"preset {n}: format {data.get('format')!r}, expected {PRESET_FORMAT}")
        self.generator.set_latent("a", data["a"])
        self.generator.set_latent("b", data["b"])
        for key, value in data.get("panel", {}).items():
            if key in PRESET_KEYS:
                self.set_control(key, value)
        self._controls_dirty = True
        self.presets[int(n)] = data
        self.preset_slot = int(n)
        return data

    # --- output ---------------------------------------------------------------------------------------------
    def advance(self, t_until: float) -> list[OutputEvent]:
        """Every OutputEvent with time < t_until not yet returned, sorted by (time, order)."""
        self.clock.poll(t_until)
        self._after_clock(t_until)
        if self.clock.running:
            self.capture.advance(self.clock.position(t_until))
        events = self.player.advance(t_until, self.clock, self._before_commit)
        self._horizon = max(self._horizon, t_until)
        return events

    def on_next_pulse(self) -> list[OutputEvent]:
        """The step table of an external clock: what its next pulse releases at its own time
        (`Player.on_next_pulse`), for a back end that writes it from its real-time path."""
        return self.player.on_next_pulse(self.clock)

    def on_start_pulse(self) -> list[OutputEvent] | None:
        """What the first MIDI clock after a MIDI Start taken now releases (`Player.on_start_pulse`:
        step 0 of the pattern playing), for a back end that writes it from its real-time path
        when the Start and that clock reach it before this loop has taken the Start; None when
        it cannot be known now (a pattern waits to be taken at step 0's commit) or a MIDI
        Start would not wait for a MIDI clock (`clock.source` internal or external)."""
        if self.clock.source not in ("auto", "midi"):
            return None
        return self.player.on_start_pulse()

    @property
    def patterns_offered(self) -> int:
        """Patterns the generator has offered the player so far (`PatternBuffer.offered`): one
        offered after `on_start_pulse` voids its guess."""
        return self.player.buffer.offered

    def trigger_seconds(self, output: int) -> float:
        """How long a trigger rising now on `output` stays high (`Player.trigger_seconds`): a
        back end that writes a step's rise at its frame writes its fall that much later."""
        return self.player.trigger_seconds(self.clock, output)

    @property
    def pattern(self) -> Pattern:
        """The Pattern now playing."""
        return self.player.pattern

    @property
    def groove(self) -> np.ndarray:
        """The captured groove, float32 [32, 3] (hit, velocity, offset)."""
        return self.capture.groove

    @property
    def position(self) -> float:
        """Musical position at the latest time the engine was told about."""
        return self.clock.position(self._t())

    @property
    def alive(self) -> bool:
        return self.generator.alive

    @property
    def heartbeat(self) -> float:
        return self.generator.heartbeat

    def close(self) -> None:
        """Stop the generator's worker thread (threaded mode)."""
        self.generator.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()




# What a control change does while playing (`Engine.set_control`): one entry per key, then the
# key families by prefix (the longer prefix first). A key in neither only changes its setting.
Setter = Callable[[Engine, str, Any, float], None]
_SETTERS: dict[str, Setter] = {
    **{key: Engine._generation_changed for key in GENERATION_KEYS},
    "quantize": lambda e, _, v, t: setattr(e.player, "quantize", v),
    "tempo": lambda e, _, v, t: e.clock.set_tempo(v, t),
    "swing": lambda e, _, v, t: e.clock.set_swing(v, t),
    "groove_velocity": lambda e, _, v, t: e._groove_knob(velocity=v),
    "groove_offset": lambda e, _, v, t: e._groove_knob(offset=v),
    "record": lambda e, _, v, t: e.capture.set_mode(v),
    "memory": lambda e, _, v, t: e.capture.set_memory(v),
    "clock.source": lambda e, _, v, t: e.clock.set_source(v, t),
    "clock.ppqn": lambda e, _, v, t: e.clock.set_ppqn(v, t),
    "clock.smoothing": lambda e, _, v, t: e.clock.set_smoothing(v),
    "clock.slew": lambda e, _, v, t: setattr(e.clock, "slew", v),
    "clock.stop_timeout": lambda e, _, v, t: setattr(e.clock, "stop_timeout", v),
    "clock.auto_stop": lambda e, _, v, t: setattr(e.clock, "auto_stop", v),
}
_PREFIX_SETTERS: tuple[tuple[str, Setter], ...] = (
    ("map.", lambda e, name, v, t: e.player.set_map(VOICE_NAMES.index(name[4:]), v)),
    ("outputs.scale.", lambda e, name, v, t: e.player.scale.__setitem__(
        int(name.rsplit(".", 1)[1]) - 1, v)),
    ("outputs.", Engine._outputs_changed),
    ("input.", Engine._input_changed),
)
