"""GPIO over libgpiod v2: `GpiodPins` on the gpiod emulator (edges, levels, pulls, outputs, kernel
stamps, release), the reader thread in real time, picking the library (gpiod, else RPi.GPIO), and
the sim board playing the same through either library."""

from __future__ import annotations

import errno
import threading
import time

import pytest
from grooverack.backends.panel import hardware
from grooverack.backends.panel.hardware import gpio_choice, open_hardware, open_pins
from grooverack.boards.board import load_board
from grooverack.config import Settings
from grooverack.drivers.gpio import GPIOPins
from grooverack.drivers.gpiod_pins import GpiodPins, header_chip, open_gpiod
from grooverack.emulators import gpio as rpi
from grooverack.emulators import gpiod as emulated
from grooverack.emulators.base import VirtualClock
from grooverack.emulators.gpio import GPIOEmulator
from grooverack.emulators.gpiod import GpiodEmulator
from grooverack.emulators.world import EmulatedWorld
from grooverack.errors import ConfigError

CHIP = "/dev/gpiochip0"


def rig(reader="poll"):
    clock = VirtualClock()
    header = GPIOEmulator(clock)
    emu = GpiodEmulator(header)
    return clock, header, emu, GpiodPins(emu, CHIP, clock, event_clock=clock, reader=reader)


def test_edges_carry_the_time_the_line_changed_and_their_level():
    clock, header, emu, pins = rig()
    seen = []
    pins.add_input(17, pull="off", edge="both", on_edge=lambda *a: seen.append(a))
    pins.add_input(27, pull="off", edge="rising", on_edge=lambda *a: seen.append(a))
    pins.add_input(22, pull="off", edge="falling", on_edge=lambda *a: seen.append(a))
    for pin in (17, 27, 22):
        header.drive(pin, 1, 0.25)
    for pin in (17, 27, 22):
        header.drive(pin, 0, 0.5)
    assert seen == []                      # nothing is handed on until the edges are read
    assert pins.poll() == 4
    assert seen == [(17, 1, 0.25), (27, 1, 0.25), (17, 0, 0.5), (22, 0, 0.5)]
    assert pins.poll() == 0


def test_an_edge_read_late_is_applied_at_its_stamped_time():
    """The line changes at 1.000; the reader only gets to it at 1.007: `t` is still 1.000."""
    clock, header, emu, pins = rig()
    seen = []
    pins.add_input(5, edge="rising", on_edge=lambda pin, level, t: seen.append((t, clock())))
    header.drive(5, 1, 1.000)
    clock.advance_to(1.007)                # the loop's wake-up jitter
    pins.poll()
    assert seen == [(1.000, 1.007)]


def test_the_panel_hands_the_engine_the_edges_stamped_time():
    from grooverack.backends.panel.simboard import SimPanelBoard
    from grooverack.sim.patch import OutputRecorder

    from tests.backends.test_panel import ScriptedEngine

    engine = ScriptedEngine()
    sim = SimPanelBoard(load_board("sim"), Settings(), OutputRecorder(), engine)
    assert isinstance(sim.hw.gpio, GpiodPins)
    sim.start(0.0)
    sim.advance(1.0)
    item = sim.board.gpio_inputs["clock"]
    sim.world.gpio.drive(item.pin, int(not item.active_low), 1.000)   # the jack rises at 1.000
    sim.clock.advance_to(1.007)
    assert engine.of("clock") == []
    sim.advance(1.008)                     # read 7-8 ms late
    assert engine.of("clock") == [("clock", 1.000)]


def test_levels_pulls_and_outputs():
    clock, header, emu, pins = rig()
    pins.add_input(4, pull="up")
    pins.add_input(6, pull="down")
    assert (pins.read(4), pins.read(6)) == (1, 0)       # released: the pull decides
    header.drive(4, 0)
    header.drive(6, 1)
    assert (pins.read(4), pins.read(6)) == (0, 1)
    assert header.pull[4] == rpi.PUD_UP and header.pull[6] == rpi.PUD_DOWN
    pins.add_output(12, initial=1)
    assert header.level(12) == 1 and pins.outputs == {12: 1}
    clock.advance_to(0.5)
    pins.write(12, 0)
    pins.write(12, 1)
    assert header.history == [(0.0, 12, 1), (0.5, 12, 0), (0.5, 12, 1)]
    assert pins.read(12) == 1
    with pytest.raises(ValueError, match="pull 'sideways'"):
        pins.add_input(7, pull="sideways")
    with pytest.raises(ValueError, match="edge 'up'"):
        pins.add_input(7, edge="up", on_edge=print)
    with pytest.raises(RuntimeError, match="GPIO 9 is not set up"):
        pins.read(9)


def test_setting_a_pin_up_again_replaces_its_request():
    clock, header, emu, pins = rig()
    seen = []
    pins.add_input(17, pull="up")                       # doctor's look at rest...
    pins.add_input(17, pull="up", edge="both", on_edge=lambda *a: seen.append(a))  # ...then armed
    header.drive(17, 0, 0.1)
    pins.poll()
    assert seen == [(17, 0, 0.1)] and len(emu.requests) == 1


def test_a_line_held_by_another_program_is_named():
    clock, header, emu, pins = rig()
    other = emu.request_lines(CHIP, consumer="someone", config={23: emu.LineSettings()})
    with pytest.raises(OSError, match="line 23.*Device or resource busy") as err:
        pins.add_input(23)
    assert err.value.errno == errno.EBUSY
    other.release()
    pins.add_input(23)


def test_close_drives_outputs_low_and_releases_every_line():
    clock, header, emu, pins = rig()
    pins.add_output(12, initial=1)
    pins.add_input(17, pull="up", on_edge=print)
    requests = list(pins.requests.values())
    pins.close()
    assert header.level(12) == 0 and emu.owner == {} and emu.requests == []
    assert 12 not in header.direction and 17 not in header.direction
    for request in requests:
        with pytest.raises(emulated.RequestReleasedError):
            request.get_value(request.offsets[0])
    pins.close()                                        # twice is fine
    GpiodPins(emu, CHIP, clock, event_clock=clock).add_input(17)   # free for the next program


def test_bouncetime_is_the_lines_debounce_period():
    clock, header, emu, pins = rig()
    seen = []
    pins.add_input(17, edge="both", on_edge=lambda *a: seen.append(a), bouncetime_ms=5)
    assert pins.requests[17].settings[17].debounce_period.total_seconds() == 0.005
    for k, level in enumerate((1, 0, 1)):
        header.drive(17, level, 1.0 + k * 0.001)
    header.drive(17, 0, 1.1)
    pins.poll()
    assert seen == [(17, 1, 1.0), (17, 0, 1.1)]


@pytest.mark.timing  # a wall-clock bound: `pytest -m timing`
def test_reader_thread_in_real_time_and_a_clock_of_its_own():
    header = GPIOEmulator(time.monotonic)               # a header on the real monotonic clock
    emu = GpiodEmulator(header)
    got, done = [], threading.Event()

    def on_edge(pin, level, t):
        got.append((pin, level, t, time.monotonic()))
        if len(got) == 2:
            done.set()

    offset = 100.0
    pins = GpiodPins(emu, CHIP, lambda: time.monotonic() + offset)
    try:
        pins.add_input(17, edge="both", on_edge=on_edge)
        pins.add_input(27, edge="both", on_edge=on_edge)   # a second line: the reader waits on both
        t0 = time.monotonic()
        header.drive(17, 1)
        time.sleep(0.01)
        header.drive(27, 1)
        assert done.wait(2.0), "the reader thread handed on no edge"
    finally:
        pins.close()
    assert pins._thread is None
    (p1, l1, t1, called1), (p2, l2, t2, _) = got
    assert (p1, l1, p2, l2) == (17, 1, 27, 1)
    stamp1 = t1 - pins.offset_s                        # back on the monotonic clock
    assert t0 - 1e-6 <= stamp1 <= called1 + 1e-6     # at the change, not at the read
    assert pins.offset_s == pytest.approx(offset, abs=0.01)
    assert t2 - t1 == pytest.approx(0.01, abs=0.008) and stamp1 < t2 - pins.offset_s


@pytest.mark.timing  # a wall-clock bound: `pytest -m timing`
def test_the_loop_wakes_on_an_edge_event_and_gets_its_stamp():
    """`wait(timeout)` blocks on the lines' edge-event descriptors: it returns as the line
    changes (not at the timeout), runs `on_edge` on the waiting thread, and hands it the time
    the line changed however late the waiter gets to read it."""
    header = GPIOEmulator(time.monotonic)               # a header on the real monotonic clock
    emu = GpiodEmulator(header)
    got = []
    pins = GpiodPins(emu, CHIP, time.monotonic, reader="wait")
    try:
        pins.add_input(17, edge="both",
                       on_edge=lambda pin, level, t: got.append((pin, level, t,
                                                                 threading.current_thread())))
        pins.add_input(27, edge="both", on_edge=lambda *a: None)
        assert pins._thread is None                     # no reader thread: the caller waits
        changed = []

        def drive():
            time.sleep(0.05)
            changed.append(time.monotonic())
            header.drive(17, 1)

        driver = threading.Thread(target=drive)
        t0 = time.monotonic()
        driver.start()
        assert pins.wait(5.0) == 1
        woke = time.monotonic()
        driver.join()
        assert woke - t0 < 2.0                          # woken by the edge, not the timeout
        (pin, level, t, thread), = got
        assert (pin, level, thread) == (17, 1, threading.current_thread())
        assert changed[0] <= t <= woke
        header.drive(17, 0)                             # the line falls ...
        fell = time.monotonic()
        time.sleep(0.02)                                # ... while the loop is busy elsewhere
        assert pins.wait(0.0) == 1
        assert got[-1][:2] == (17, 0) and got[-1][2] == pytest.approx(fell, abs=0.005)
        assert pins.wait(0.01) == 0                     # nothing more: the timeout
    finally:
        pins.close()


def test_the_header_chip_is_found_by_its_label():
    header = GPIOEmulator()
    pi5 = GpiodEmulator(header, chips={"/dev/gpiochip0": "gpio-brcmstb@107d508500",
                                       "/dev/gpiochip4": "pinctrl-rp1",
                                       "/dev/gpiochip10": "pinctrl-bcm2712"},
                        header_chip="/dev/gpiochip4")
    assert header_chip(pi5, pi5.paths) == "/dev/gpiochip4"
    pins = GpiodPins(pi5, header_chip(pi5, pi5.paths), VirtualClock())
    pins.add_output(18, 1)                              # BCM numbers are RP1 line offsets
    assert header.level(18) == 1
    pi4 = GpiodEmulator(GPIOEmulator(), chips={"/dev/gpiochip0": "pinctrl-bcm2711",
                                               "/dev/gpiochip1": "raspberrypi-exp-gpio"})
    assert header_chip(pi4, ["/dev/gpiochip1", "/dev/gpiochip0"]) == "/dev/gpiochip0"
    laptop = GpiodEmulator(GPIOEmulator(), chips={"/dev/gpiochip0": "INT34C5:00"})
    with pytest.raises(OSError, match=r"no GPIO chip labelled.*INT34C5:00"):
        header_chip(laptop, laptop.paths)
    with pytest.raises(OSError, match="found: none"):
        header_chip(laptop, [])


def fake_gpiod():
    emu = GpiodEmulator(GPIOEmulator())
    return lambda: emu


def no_gpiod():
    raise OSError("gpiod is not importable (No module named 'gpiod')")


def test_gpiod_is_picked_when_it_works_else_rpi_gpio():
    rpi_gpio = GPIOEmulator
    pins = open_pins(time.monotonic, "auto", gpiod=fake_gpiod(), rpi_gpio=rpi_gpio, chips=[CHIP])
    assert isinstance(pins, GpiodPins) and pins.library == "libgpiod" and pins.chip == CHIP
    fallback = open_pins(time.monotonic, "auto", gpiod=no_gpiod, rpi_gpio=rpi_gpio)
    assert isinstance(fallback, GPIOPins) and fallback.library == "RPi.GPIO"
    no_chip = open_pins(time.monotonic, "auto", gpiod=fake_gpiod(), rpi_gpio=rpi_gpio, chips=[])
    assert isinstance(no_chip, GPIOPins)                # gpiod installed, but not a Pi
    forced = open_pins(time.monotonic, "rpigpio", gpiod=fake_gpiod(), rpi_gpio=rpi_gpio,
                       chips=[CHIP])
    assert isinstance(forced, GPIOPins)
    with pytest.raises(OSError, match="gpiod is not importable"):
        open_pins(time.monotonic, "gpiod", gpiod=no_gpiod, rpi_gpio=rpi_gpio)
    with pytest.raises(ConfigError, match="'lgpio'"):
        open_pins(time.monotonic, "lgpio")


def test_the_environment_override():
    assert gpio_choice({}) == "auto"
    assert gpio_choice({"GROOVERACK_GPIO": " GPIOD "}) == "gpiod"
    assert gpio_choice({"GROOVERACK_GPIO": "rpigpio"}) == "rpigpio"
    with pytest.raises(ConfigError, match="GROOVERACK_GPIO='wiringpi'"):
        gpio_choice({"GROOVERACK_GPIO": "wiringpi"})


def test_an_emulated_world_offers_both_libraries(monkeypatch):
    board = load_board("sim")
    monkeypatch.delenv("GROOVERACK_GPIO", raising=False)
    assert isinstance(open_hardware(board, world=EmulatedWorld(board)).gpio, GpiodPins)
    assert isinstance(open_hardware(board, world=EmulatedWorld(board), gpio="rpigpio").gpio,
                      GPIOPins)
    monkeypatch.setenv("GROOVERACK_GPIO", "rpigpio")
    assert isinstance(open_hardware(board, world=EmulatedWorld(board)).gpio, GPIOPins)


def test_the_ldac_pin_goes_through_the_gpiod_pins():
    clock, header, emu, pins = rig()
    view = pins.rpi_gpio_view()
    view.setup(25, view.OUT, initial=view.HIGH)
    view.output(25, view.LOW)
    view.output(25, view.HIGH)
    assert [level for _, pin, level in header.history if pin == 25] == [1, 0, 1]


def render_sequencer(monkeypatch, library):
    from grooverack.backends.panel.simboard import patch_board
    from grooverack.runtime.serve import make_engine
    from grooverack.sim.patch import OutputRecorder
    from grooverack.sim.session import render

    from tests.sim.test_panel_sim import Recording, sequencer

    monkeypatch.setenv("GROOVERACK_GPIO", library)
    settings = Settings({"tempo": 120.0, "follow": 0.9, "input.velocity_mode": "window"})
    engine = Recording(make_engine(settings, threaded=False))
    recorder = OutputRecorder()
    board = patch_board("sim", settings, recorder, engine)
    assert board.hw.gpio.library == {"gpiod": "libgpiod", "rpigpio": "RPi.GPIO"}[library]
    patch, _ = sequencer(bars=2)
    render(patch, board)
    return engine.onsets, [(r.time, r.output, r.kind, r.volts) for r in recorder.rows]


def test_the_sim_board_plays_the_same_through_either_library(monkeypatch):
    onsets, rows = render_sequencer(monkeypatch, "gpiod")
    assert len(onsets) == 16 and rows
    assert render_sequencer(monkeypatch, "rpigpio") == (onsets, rows)


def test_doctor_names_the_library_it_uses(monkeypatch, tmp_path):
    from grooverack.commands import doctor

    monkeypatch.setenv("GROOVERACK_GPIO", "rpigpio")
    check = doctor.gpio_check(tmp_path)
    assert "RPi.GPIO API from" in check.detail and "GROOVERACK_GPIO=rpigpio" in check.detail
    monkeypatch.delenv("GROOVERACK_GPIO")
    emu = GpiodEmulator(GPIOEmulator())
    emu.__version__ = "2.2.0"
    monkeypatch.setattr(doctor, "open_gpiod", lambda: emu)
    monkeypatch.setattr(doctor, "chip_paths", lambda dev: [CHIP])
    check = doctor.gpio_check(tmp_path)
    assert check.status == doctor.OK
    assert check.detail.startswith("libgpiod v2 (gpiod 2.2.0) on /dev/gpiochip0 (pinctrl-bcm2711)")
    monkeypatch.setattr(doctor, "open_gpiod", no_gpiod)
    monkeypatch.setenv("GROOVERACK_GPIO", "gpiod")
    assert doctor.gpio_check(tmp_path).status == doctor.FAIL


def test_the_real_gpiod_package():
    """The emulator hands out the real package's types; real lines need a Pi (or the gpio-sim
    kernel module, which a test machine rarely has loaded)."""
    gpiod = pytest.importorskip("gpiod", reason="gpiod (libgpiod v2 bindings) not installed")
    assert open_gpiod() is gpiod
    assert emulated.REAL_TYPES and emulated.LineSettings is gpiod.LineSettings
    assert emulated.Edge is gpiod.line.Edge and emulated.EdgeEvent is gpiod.EdgeEvent
    from grooverack.drivers.gpiod_pins import chip_paths
    paths = chip_paths()
    if not paths:
        pytest.skip("no /dev/gpiochip* here (not a Pi, gpio-sim not loaded): real lines untested")
    try:
        chip = header_chip(gpiod, paths)
    except OSError as exc:
        pytest.skip(f"GPIO chips here, but no Pi header: {exc}")
    assert chip in paths
    assert hardware.GpiodPins is GpiodPins
