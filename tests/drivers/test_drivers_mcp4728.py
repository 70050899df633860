"""MCP4728 driver against its emulator: codes -> volts, multi-write order, read-back."""

import errno

import pytest
from grooverack.drivers.mcp4728 import MCP4728
from grooverack.emulators import I2CBusEmulator, MCP4728Emulator, ProtocolError, VirtualClock
from smbus2 import i2c_msg


def make(address=0x60):
    clock = VirtualClock()
    bus = I2CBusEmulator(1)
    chip = bus.attach(MCP4728Emulator(address, vdd=5.0, clock=clock))
    dac = MCP4728(bus, address)
    dac.configure()
    return clock, bus, chip, dac


def test_power_on_default_is_vdd_reference():
    chip = MCP4728Emulator(0x60, vdd=5.0)
    chip.i2c_write(bytes([0x58, 0x08, 0x00]))  # single write ch A, VREF = VDD, code 2048
    assert chip.volts(0) == pytest.approx(2.5)


@pytest.mark.parametrize("code, volts", [(0, 0.0), (1, 0.001), (2048, 2.048), (4095, 4.095)])
def test_internal_reference_gain_two(code, volts):
    _, _, chip, dac = make()
    dac.multi_write([(2, code)])
    assert chip.volts(2) == pytest.approx(volts)


def test_datasheet_sequential_write_example():
    # DS22187 figure 7-4: A = VDD ref 2048, B = VDD ref 4095, C = internal x2 2048, D = 4095
    chip = MCP4728Emulator(0x60, vdd=5.0)
    chip.i2c_write(bytes([0x50, 0x08, 0x00, 0x0F, 0xFF, 0x98, 0x00, 0x9F, 0xFF]))
    assert chip.volts(0) == pytest.approx(2.5)
    assert chip.volts(1) == pytest.approx(5.0 * 4095 / 4096)
    assert chip.volts(2) == pytest.approx(2.048 * 2048 / 4096 * 2)
    assert chip.volts(3) == pytest.approx(4.095)  # internal ref x2, limited below VDD
    assert [r.code for r in chip.eeprom] == [2048, 4095, 2048, 4095]


def test_multi_write_is_one_transaction_in_the_given_order():
    clock, bus, chip, dac = make()
    before = bus.transactions
    clock.advance_to(1.0)
    dac.multi_write([(3, 4000), (0, 100)])  # velocity (D) first, then A
    assert bus.transactions == before + 1
    assert [h[1:3] for h in chip.history[-2:]] == [(3, 4000), (0, 100)]


def test_fast_write_and_read_back():
    _, _, chip, dac = make(0x61)
    dac.fast_write([1, 2, 3, 4095])
    assert [chip.code(c) for c in range(4)] == [1, 2, 3, 4095]
    states = dac.read_back()
    assert [s.code for s in states] == [1, 2, 3, 4095]
    assert all(s.vref_internal and s.gain2 and s.ready and s.por for s in states)
    assert chip.volts(3) == pytest.approx(4.095)


def test_udac_and_general_call_software_update():
    chip = MCP4728Emulator(0x60, vdd=5.0, ldac_tied_low=False)
    bus = I2CBusEmulator(1)
    bus.attach(chip)
    bus.i2c_rdwr(i2c_msg.write(0x60, [0x41, 0x90, 0x10]))  # multi-write A, UDAC = 1
    assert chip.volts(0) == 0.0
    bus.i2c_rdwr(i2c_msg.write(0x00, [0x08]))              # general call software update
    assert chip.code(0) == 0x010


def test_unknown_address_nacks_and_bad_commands_raise():
    _, bus, _, _ = make()
    with pytest.raises(OSError) as info:
        MCP4728(bus, 0x62).multi_write([(0, 1)])
    assert info.value.errno == errno.EREMOTEIO
    with pytest.raises(ProtocolError, match="3 bytes per channel"):
        bus.i2c_rdwr(i2c_msg.write(0x60, [0x40, 0x90]))
    with pytest.raises(ProtocolError, match="reserved"):
        bus.i2c_rdwr(i2c_msg.write(0x60, [0xE0]))
    with pytest.raises(ValueError, match="code 4096"):
        MCP4728(bus, 0x60).multi_write([(0, 4096)])
