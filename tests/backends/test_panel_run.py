"""`run_backend` (grooverack run on a Pi) over emulated hardware: SIGTERM and an unhandled error
both leave every output at 0 V."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest
from grooverack.backends.panel import hardware, loop
from grooverack.boards.board import load_board
from grooverack.config import Settings
from grooverack.drivers.gpio import GPIOPins
from grooverack.drivers.gpiod_pins import GpiodPins
from grooverack.emulators.base import VirtualClock
from grooverack.emulators.world import EmulatedWorld
from grooverack.engine.player import OutputEvent


class LiveEngine:
    """Plays one long note on output 1 right after start; can be told to fail."""

    def __init__(self, fail_after: int | None = None):
        self.events: list[OutputEvent] = []
        self.calls = 0
        self.fail_after = fail_after
        self.alive = True
        self.heartbeat = time.monotonic()
        self.closed = False
        self.controls: list[tuple[str, float]] = []
        self.settings = Settings()  # the engine seam: what the panel and the state keeper read
        self.presets: dict[int, dict] = {}
        self.preset_slot = 0

    def start(self, t):
        self.events = [OutputEvent(t + 0.01, 1, "velocity", 1.0, 0, 0),
                       OutputEvent(t + 0.01, 1, "trigger", 1.0, 0, 0),
                       OutputEvent(t + 60.0, 1, "trigger", 0.0, 0, 0)]

    def advance(self, t_until):
        self.calls += 1
        self.heartbeat = time.monotonic()
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("engine exploded")
        out = [e for e in self.events if e.time < t_until]
        self.events = [e for e in self.events if e.time >= t_until]
        return out

    def set_control(self, name, value):
        self.controls.append((name, value))

    def close(self):
        self.closed = True


class WallClock(VirtualClock):
    """The emulated world on the loop's clock (time.monotonic): the header stamps edges when a
    jack really changed, as the kernel does."""

    @property
    def now(self):
        return time.monotonic()

    @now.setter
    def now(self, value):
        pass


def emulated_hardware(monkeypatch, board, world, library="rpigpio"):
    """`loop.open_hardware` over `world`: RPi.GPIO's API, or libgpiod's (`library="gpiod"`)."""

    def open_hardware(b, clock, wait=False):
        if library == "gpiod":
            pins = GpiodPins(world.gpiod, world.gpiod_chip, clock, event_clock=world.clock,
                             reader="wait" if wait else "thread")
        else:
            pins = GPIOPins(world.gpio, clock, reader="wait" if wait else "callback")
        return hardware.build_hardware(b, spi=world.spi, i2c=world.i2c, pins=pins,
                                       clock=clock, sleep_for=world.sleep_for)

    monkeypatch.setattr(loop, "open_hardware", open_hardware)


@pytest.fixture
def rig(monkeypatch, tmp_path):
    board = load_board("reference")
    world = EmulatedWorld(board)
    emulated_hardware(monkeypatch, board, world)
    settings = Settings({"state.dir": str(tmp_path)})
    return board, world, settings


def outputs_at_zero(board, world):
    return all(world.output_volts(n) == 0.0 for n in [*board.outputs, *board.gpio_outputs])


def wait_for(predicate):
    for _ in range(2000):
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_sigterm_stops_with_outputs_at_zero(rig, monkeypatch, tmp_path):
    board, world, settings = rig
    engine = LiveEngine()
    monkeypatch.setattr("grooverack.backends.panel.loop.make_engine", lambda s, threaded: engine)
    playing = []

    def terminate():
        playing.append(wait_for(lambda: world.output_volts("trigger_1") == 5.0))
        playing.append(world.output_volts("velocity_1"))
        world.set_pot("density", 1.0)           # the scanner thread sees it, the loop applies it
        playing.append(wait_for(lambda: ("density", 1.0) in engine.controls))
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate)
    killer.start()
    status = loop.run_backend(board, settings, SimpleNamespace(duration=30.0))
    killer.join()
    assert status == 0
    assert playing[0] and playing[1] == pytest.approx(8.0, abs=0.003) and playing[2]
    assert outputs_at_zero(board, world) and engine.closed
    report = json.loads((tmp_path / "bus-faults-reference.json").read_text())
    assert set(report["chips"]) == {"adc", "adc2", "dac1", "dac2", "dac3"}
    assert report["chips"]["adc"]["ok"] > 0 and report["chips"]["adc"]["faults"] == 0


class FillingEngine(LiveEngine):
    """Keeps the fill gate's levels and the thread each came in on."""

    def __init__(self):
        super().__init__()
        self.fills: list[tuple[bool, str]] = []

    def fill(self, t, high):
        self.fills.append((high, threading.current_thread().name))


def test_an_adc_fill_gate_reaches_the_engine_on_the_loops_thread(rig, monkeypatch):
    """The reference board's FILL (MCP3208 #2 channel 3) is read by the scanner thread with the
    pots; its edges are posted to the loop, which hands them to the engine (one thread calls
    the engine)."""
    board, world, settings = rig
    engine = FillingEngine()
    monkeypatch.setattr("grooverack.backends.panel.loop.make_engine", lambda s, threaded: engine)
    loop_thread = threading.current_thread().name
    seen = []

    def patch_fill():
        seen.append(wait_for(lambda: engine.calls > 2))
        world.set_cv("fill", 5.0)
        seen.append(wait_for(lambda: len(engine.fills) == 1))
        world.set_cv("fill", 1.2)   # between the thresholds: still high
        time.sleep(0.05)
        world.set_cv("fill", 0.0)
        seen.append(wait_for(lambda: len(engine.fills) == 2))
        os.kill(os.getpid(), signal.SIGTERM)

    patcher = threading.Thread(target=patch_fill)
    patcher.start()
    status = loop.run_backend(board, settings, SimpleNamespace(duration=30.0))
    patcher.join()
    assert status == 0 and all(seen)
    assert engine.fills == [(True, loop_thread), (False, loop_thread)]


def test_unhandled_error_sets_outputs_to_zero(rig, monkeypatch):
    board, world, settings = rig
    engine = LiveEngine(fail_after=30)
    monkeypatch.setattr("grooverack.backends.panel.loop.make_engine", lambda s, threaded: engine)
    with pytest.raises(RuntimeError, match="engine exploded"):
        loop.run_backend(board, settings, SimpleNamespace(duration=30.0))
    pin = board.gpio_outputs["trigger_1"].pin
    assert (pin, 1) in [(p, level) for _, p, level in world.gpio.history]  # it was playing
    assert outputs_at_zero(board, world)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_missing_hardware_is_a_clear_error(monkeypatch, capsys):
    def no_hardware(board, clock, wait=False):
        raise OSError("RPi.GPIO is not importable (No module named 'RPi')")

    monkeypatch.setattr(loop, "open_hardware", no_hardware)
    status = loop.run_backend(load_board("reference"), Settings(), SimpleNamespace(duration=1.0))
    err = capsys.readouterr().err
    assert status == 2
    assert "cannot open its hardware: RPi.GPIO is not importable" in err
    assert "grooverack doctor --board reference" in err


class ClockedEngine(LiveEngine):
    """Plays output 1 on every external clock edge, at the edge's time."""

    def __init__(self):
        super().__init__()
        self.pulses: list[tuple[float, str]] = []  # (edge time, thread it came in on)

    def start(self, t):
        self.events = []

    def clock_pulse(self, t):
        self.pulses.append((t, threading.current_thread().name))
        self.events += [OutputEvent(t, 1, "velocity", 1.0, 0, 0),
                        OutputEvent(t, 1, "trigger", 1.0, 0, 0),
                        OutputEvent(t + 0.005, 1, "trigger", 0.0, 0, 0)]


@pytest.mark.parametrize("library", ["gpiod", "rpigpio"])
def test_the_loop_wakes_on_a_clock_edge_and_writes_its_step_at_once(monkeypatch, tmp_path,
                                                                    library):
    """The loop waits on the clock line itself: the edge reaches the engine on the loop's
    thread with its stamp (the time the jack rose, not the time the loop read it), and the step
    on it is written from there at once, not handed to the writer's thread."""
    board = load_board("reference")
    world = EmulatedWorld(board, WallClock())
    emulated_hardware(monkeypatch, board, world, library)
    engine = ClockedEngine()
    monkeypatch.setattr("grooverack.backends.panel.loop.make_engine", lambda s, threaded: engine)
    trigger = board.gpio_outputs["trigger_1"].pin
    rises: list[tuple[float, str]] = []
    world.gpio.listeners.append(lambda t, pin, level: pin == trigger and level and rises.append(
        (time.monotonic(), threading.current_thread().name)))
    edges: list[tuple[float, float]] = []

    def play():
        wait_for(lambda: engine.calls > 2)  # the loop is up and idle
        for _ in range(5):
            before = time.monotonic()
            world.set_digital("clock", 5.0)
            edges.append((before, time.monotonic()))
            time.sleep(0.02)
            world.set_digital("clock", 0.0)
            time.sleep(0.03)
        os.kill(os.getpid(), signal.SIGTERM)

    player = threading.Thread(target=play)
    player.start()
    status = loop.run_backend(board, Settings({"state.dir": str(tmp_path)}),
                              SimpleNamespace(duration=30.0))
    player.join()
    me = threading.current_thread().name
    assert status == 0 and len(engine.pulses) == 5 and len(rises) == 5
    for (before, after), (t, thread), (written, writer) in zip(edges, engine.pulses, rises,
                                                                strict=True):
        assert thread == me and writer == me           # no hand-over between threads
        assert before - 1e-6 <= t <= after + 1e-6     # the edge's stamp
        assert written - t < 0.05                     # (loose: a shared CI box)
