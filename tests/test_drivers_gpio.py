"""GPIO driver over the emulated header: edges with timestamps, outputs, cleanup."""

import pytest
from grooverack.drivers.gpio import GPIOPins
from grooverack.emulators import GPIOEmulator, VirtualClock


def pins():
    clock = VirtualClock()
    emu = GPIOEmulator(clock)
    return clock, emu, GPIOPins(emu, clock)


def test_edge_callbacks_carry_the_edge_time_and_level():
    clock, emu, gpio = pins()
    seen = []
    gpio.add_input(17, pull="up", edge="falling", on_edge=lambda p, lv, t: seen.append((p, lv, t)))
    gpio.add_input(5, pull="up", edge="both", on_edge=lambda p, lv, t: seen.append((p, lv, t)))
    emu.drive(17, 0, t=0.125)
    emu.drive(17, 1, t=0.200)       # rising: not asked for
    emu.drive(5, 0, t=0.300)
    emu.drive(5, None, t=0.350)     # released: the pull-up raises it
    assert seen == [(17, 0, 0.125), (5, 0, 0.3), (5, 1, 0.35)]
    assert gpio.read(17) == 1 and emu.pull[17] == emu.PUD_UP


def test_timestamp_is_taken_before_the_handler_runs():
    clock, emu, gpio = pins()
    stamps = []

    def slow_handler(pin, level, t):
        clock.sleep(0.003)          # whatever the handler costs comes after the stamp
        stamps.append((t, clock()))

    gpio.add_input(27, edge="rising", on_edge=slow_handler)
    emu.drive(27, 1, t=1.0)
    assert stamps == [(1.0, pytest.approx(1.003))]


def test_outputs_and_close():
    clock, emu, gpio = pins()
    gpio.add_output(4)
    gpio.add_output(18, initial=1)
    clock.advance_to(0.5)
    gpio.write(4, 1)
    assert (emu.level(4), emu.level(18)) == (1, 1)
    gpio.close()                    # everything low, then released
    assert [h for h in emu.history if h[0] == 0.5] == [(0.5, 4, 1), (0.5, 4, 0), (0.5, 18, 0)]
    assert emu.getmode() is None


def test_bad_pull_and_edge_names():
    _, _, gpio = pins()
    with pytest.raises(ValueError, match="pull 'sideways'"):
        gpio.add_input(6, pull="sideways")
    with pytest.raises(ValueError, match="edge 'up'"):
        gpio.add_input(13, edge="up", on_edge=lambda *a: None)
