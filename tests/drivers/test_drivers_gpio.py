"""GPIO driver over the emulated header: edges with timestamps, outputs, cleanup."""

import threading
import time

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


@pytest.mark.timing  # a wall-clock bound: `pytest -m timing`
def test_reader_wait_hands_edges_to_the_waiting_thread_at_their_stamps():
    """The fallback as the Pi loop uses it: the library's callback only stamps the edge; the
    loop's `wait` wakes on it and runs `on_edge` on its own thread, with the callback's time."""
    header = GPIOEmulator(time.monotonic)
    gpio = GPIOPins(header, time.monotonic, reader="wait")
    got = []
    gpio.add_input(17, edge="rising",
                   on_edge=lambda pin, level, t: got.append((pin, level, t,
                                                             threading.current_thread())))
    stamps = []

    def drive():
        time.sleep(0.05)
        stamps.append(time.monotonic())
        header.drive(17, 1)

    driver = threading.Thread(target=drive)
    t0 = time.monotonic()
    driver.start()
    assert gpio.wait(5.0) == 1
    woke = time.monotonic()
    driver.join()
    assert woke - t0 < 2.0 and got[0][3] is threading.current_thread()
    assert got[0][:2] == (17, 1) and stamps[0] <= got[0][2] <= woke
    assert gpio.wait(0.01) == 0 and gpio.poll() == 0
    gpio.close()


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
