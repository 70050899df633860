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


@pytest.fixture
def rig(monkeypatch, tmp_path):
    board = load_board("reference")
    world = EmulatedWorld(board)

    def open_hardware(b, clock):
        return hardware.build_hardware(b, spi=world.spi, i2c=world.i2c, gpio_module=world.gpio,
                                    clock=clock, sleep_for=world.sleep_for)

    monkeypatch.setattr(loop, "open_hardware", open_hardware)
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
    def no_hardware(board, clock):
        raise OSError("RPi.GPIO is not importable (No module named 'RPi')")

    monkeypatch.setattr(loop, "open_hardware", no_hardware)
    status = loop.run_backend(load_board("reference"), Settings(), SimpleNamespace(duration=1.0))
    err = capsys.readouterr().err
    assert status == 2
    assert "cannot open its hardware: RPi.GPIO is not importable" in err
    assert "grooverack doctor --board reference" in err
