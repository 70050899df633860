"""Emulators on their own: GPIO header (RPi.GPIO API), I2C bus dispatch and faults, SPI faults."""

import errno
import math

import pytest
from grooverack.emulators import (
    ADS1115Emulator,
    GPIOEmulator,
    I2CBusEmulator,
    MCP3208Emulator,
    MCP4728Emulator,
    SpiDeviceEmulator,
    VirtualClock,
)
from grooverack.emulators.gpio import BOARD_TO_BCM
from hypothesis import given, settings
from hypothesis import strategies as st
from smbus2 import i2c_msg


def gpio():
    g = GPIOEmulator(VirtualClock())
    g.setmode(g.BCM)
    return g


def test_gpio_needs_a_mode_and_setup():
    g = GPIOEmulator()
    with pytest.raises(RuntimeError, match="numbering mode"):
        g.setup(17, g.IN)
    g.setmode(g.BCM)
    with pytest.raises(RuntimeError, match="setup"):
        g.input(17)
    g.setup(17, g.IN)
    with pytest.raises(RuntimeError, match="OUTPUT"):
        g.output(17, 1)
    with pytest.raises(ValueError, match="invalid"):
        g.setup(40, g.IN)
    with pytest.raises(ValueError, match="different mode"):
        g.setmode(g.BOARD)


def test_pull_ups_and_external_drive():
    g = gpio()
    g.setup(5, g.IN, pull_up_down=g.PUD_UP)
    g.setup(6, g.IN, pull_up_down=g.PUD_DOWN)
    assert (g.input(5), g.input(6)) == (1, 0)
    g.drive(5, 0)
    g.drive(6, 1)
    assert (g.input(5), g.input(6)) == (0, 1)
    g.drive(5, None)  # released: the pull-up wins again
    assert g.input(5) == 1


def test_edges_call_back_at_their_virtual_time():
    g = gpio()
    seen = []
    g.setup(17, g.IN, pull_up_down=g.PUD_DOWN)
    g.add_event_detect(17, g.RISING, callback=lambda ch: seen.append((ch, g.clock(), g.input(ch))))
    g.drive(17, 1, t=0.5)
    g.drive(17, 0, t=0.6)      # falling: not reported
    g.drive(17, 1, t=0.7)
    g.drive(17, 1, t=0.8)      # no change: no edge
    assert seen == [(17, 0.5, 1), (17, 0.7, 1)]
    assert g.event_detected(17) and not g.event_detected(17)
    assert [e[:2] for e in g.edges] == [(0.5, 17), (0.6, 17), (0.7, 17)]
    with pytest.raises(RuntimeError, match="Conflicting"):
        g.add_event_detect(17, g.FALLING)


def test_bouncetime_and_both_edges():
    g = gpio()
    seen = []
    g.setup(5, g.IN, pull_up_down=g.PUD_UP)
    g.add_event_detect(5, g.BOTH, callback=lambda ch: seen.append(g.clock()), bouncetime=10)
    for k, level in enumerate([0, 1, 0, 1, 0]):   # contact bounce every 1 ms
        g.drive(5, level, t=1.0 + k * 0.001)
    g.drive(5, None, t=1.1)
    assert seen == [1.0, 1.1]


def test_board_numbering_maps_header_pins():
    g = GPIOEmulator()
    g.setmode(g.BOARD)
    g.setup(11, g.OUT, initial=g.HIGH)     # header pin 11 = GPIO 17
    assert g.level(17) == 1 and BOARD_TO_BCM[11] == 17
    with pytest.raises(ValueError, match="invalid"):
        g.setup(1, g.OUT)                  # 3V3 power pin
    g.output(11, 0)
    assert [h[1:] for h in g.history] == [(17, 1), (17, 0)]
    g.cleanup()
    assert g.getmode() is None


def test_outputs_record_history_with_time():
    clock = VirtualClock()
    g = GPIOEmulator(clock)
    g.setmode(g.BCM)
    g.setup([4, 12], g.OUT)
    clock.advance_to(0.25)
    g.output([4, 12], [1, 0])
    g.output(4, 1)  # unchanged: not a new history entry
    assert g.history == [(0.0, 4, 0), (0.0, 12, 0), (0.25, 4, 1)]


def test_i2c_unknown_address_is_a_remote_io_error():
    bus = I2CBusEmulator(1)
    bus.attach(MCP4728Emulator(0x60))
    with pytest.raises(OSError) as info:
        bus.write_byte(0x61, 0)
    assert info.value.errno == errno.EREMOTEIO == 121
    with pytest.raises(ValueError, match="already used"):
        bus.attach(MCP4728Emulator(0x60))


def test_i2c_nack_burst_then_recovery_and_stuck_bus():
    bus = I2CBusEmulator(1)
    chip = bus.attach(MCP4728Emulator(0x60))
    bus.nack_burst(2, address=0x60)
    for _ in range(2):
        with pytest.raises(OSError) as info:
            bus.i2c_rdwr(i2c_msg.write(0x60, [0x40, 0x80, 0x01]))
        assert info.value.errno == errno.EREMOTEIO
    bus.i2c_rdwr(i2c_msg.write(0x60, [0x40, 0x80, 0x01]))
    assert chip.code(0) == 1 and bus.nacks == 2
    bus.set_stuck(True)
    with pytest.raises(OSError) as info:
        bus.read_byte(0x60)
    assert info.value.errno == errno.ETIMEDOUT
    bus.set_stuck(False)
    r = i2c_msg.read(0x60, 24)
    bus.i2c_rdwr(r)                    # the bus answers again once SDA is released
    assert list(r)[1:3] == [0x80, 0x01]


def test_i2c_general_call_reaches_every_device():
    bus = I2CBusEmulator(1)
    a = bus.attach(MCP4728Emulator(0x60))
    b = bus.attach(MCP4728Emulator(0x61))
    for chip in (a, b):
        chip.eeprom[1] = chip.eeprom[1].__class__(vref=1, gain=1, code=1000)
    bus.i2c_rdwr(i2c_msg.write(0x00, [0x06]))  # general call reset: EEPROM -> outputs
    assert a.volts(1) == b.volts(1) == pytest.approx(1.0)


def test_spi_faults_and_open_checks():
    chip = MCP3208Emulator(3.3, 3.3)
    spi = SpiDeviceEmulator(chip, 0, 0)
    with pytest.raises(OSError, match="not open"):
        spi.xfer2([6, 0, 0])
    with pytest.raises(FileNotFoundError):
        spi.open(0, 1)
    spi.open(0, 0)
    spi.fail_next(1)
    with pytest.raises(OSError) as info:
        spi.xfer2([6, 0, 0])
    assert info.value.errno == errno.EIO
    chip.set_input(0, 3.3)
    assert spi.xfer2([6, 0, 0])[1:] == [0x0F, 0xFF]
    spi.miso_stuck = 0x00
    assert spi.xfer2([6, 0, 0]) == [0, 0, 0]


@settings(max_examples=150, deadline=None)
@given(channel=st.integers(0, 7), volts=st.floats(-1.0, 5.0), vref=st.sampled_from([2.5, 3.3, 4.096]))
def test_mcp3208_driver_reads_the_ideal_code(channel, volts, vref):
    from grooverack.drivers.mcp3208 import MCP3208

    chip = MCP3208Emulator(vref=vref, vdd=5.0)
    spi = SpiDeviceEmulator(chip, 0, 0)
    spi.open(0, 0)
    chip.set_input(channel, volts)
    pin = min(max(volts, -0.3), 5.3)
    assert MCP3208(spi).read(channel) == max(0, min(4095, math.floor(4096 * pin / vref + 1e-9)))


@settings(max_examples=100, deadline=None)
@given(writes=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4095)), min_size=1, max_size=8))
def test_mcp4728_multi_write_leaves_the_last_code_per_channel(writes):
    from grooverack.drivers.mcp4728 import MCP4728

    bus = I2CBusEmulator(1)
    chip = bus.attach(MCP4728Emulator(0x60, vdd=5.0))
    dac = MCP4728(bus, 0x60)
    dac.multi_write(writes)
    last = dict(writes)
    for ch, code in last.items():
        assert chip.code(ch) == code
        assert chip.volts(ch) == pytest.approx(2.048 * 2 * code / 4096)
    assert [s.code for s in dac.read_back()] == [last.get(ch, 0) for ch in range(4)]


@settings(max_examples=100, deadline=None)
@given(mux=st.integers(0, 7), pga=st.integers(0, 5), rate=st.integers(0, 7),
       a=st.floats(0, 3.3), b=st.floats(0, 3.3))
def test_ads1115_any_config_converts_per_datasheet(mux, pga, rate, a, b):
    from grooverack.emulators.ads1115 import DATA_RATES, FSR, MUX

    clock = VirtualClock()
    bus = I2CBusEmulator(1)
    chip = bus.attach(ADS1115Emulator(0x49, vdd=3.3, clock=clock))
    for ch, v in enumerate((a, b, b, a)):
        chip.set_input(ch, v)
    config = 0x8000 | mux << 12 | pga << 9 | 0x0100 | rate << 5 | 0x3
    bus.write_i2c_block_data(0x49, 1, [config >> 8, config & 0xFF])
    assert bus.read_i2c_block_data(0x49, 1, 2)[0] & 0x80 == 0        # converting
    clock.sleep(1 / DATA_RATES[rate])
    hi, lo = bus.read_i2c_block_data(0x49, 0, 2)
    raw = hi << 8 | lo
    code = raw - 0x10000 if raw & 0x8000 else raw
    p, n = MUX[mux]
    diff = (a, b, b, a)[p] - (0.0 if n is None else (a, b, b, a)[n])
    assert code == max(-32768, min(32767, math.floor(32768 * diff / FSR[pga] + 1e-9)))
