"""MCP4922 driver against its emulator: codes written -> expected volts."""

import pytest
from grooverack.drivers.mcp4922 import MCP4922
from grooverack.emulators import GPIOEmulator, MCP4922Emulator, ProtocolError, SpiDeviceEmulator


def make(gain=1, ldac=False):
    gpio = GPIOEmulator()
    chip = MCP4922Emulator(vref=(4.096, 2.5), vdd=5.0, clock=gpio.clock, ldac_tied_low=not ldac)
    spi = SpiDeviceEmulator(chip, 0, 1)
    spi.open(0, 1)
    if ldac:
        gpio.setmode(gpio.BCM)
        gpio.listeners.append(lambda t, pin, level: pin == 7 and chip.set_ldac(level))
    dac = MCP4922(spi, gain=gain, gpio=gpio if ldac else None, ldac_pin=7 if ldac else None)
    return chip, spi, dac


def test_word_bits_per_datasheet():
    _, _, dac = make(gain=1)
    assert dac.word(0, 0x123) == 0b0011_0001_0010_0011     # A, unbuffered, 1x, active
    assert dac.word(1, 0xFFF) == 0b1011_1111_1111_1111
    dac2 = MCP4922(make()[1], gain=2, buffered=True)
    assert dac2.word(0, 0) == 0b0101_0000_0000_0000        # BUF, 2x (GA = 0), active
    assert dac2.word(1, 5, active=False) == 0b1100_0000_0000_0101


@pytest.mark.parametrize("code", [0, 1, 1000, 2048, 4095])
def test_codes_give_expected_volts(code):
    chip, _, dac = make()
    dac.write(0, code)
    dac.write(1, 4095 - code)
    assert chip.volts(0) == pytest.approx(4.096 * code / 4096)
    assert chip.volts(1) == pytest.approx(2.5 * (4095 - code) / 4096)


def test_gain_two_clips_at_vdd_and_shutdown():
    chip, _, dac = make(gain=2)
    dac.write(0, 4095)
    assert chip.volts(0) == pytest.approx(5.0)         # 8.19 V asked, rail is 5 V
    dac.write(1, 1000)
    assert chip.volts(1) == pytest.approx(2 * 2.5 * 1000 / 4096)
    dac.shutdown(1)
    assert chip.volts(1) == 0.0


def test_ldac_moves_both_channels_together():
    chip, _, dac = make(ldac=True)
    dac.spi.xfer2([0x30, 0x64])  # a word without LDAC: input register only
    assert chip.volts(0) == 0.0
    dac.write_many([(0, 100), (1, 200)])
    assert (chip.code(0), chip.code(1)) == (100, 200)
    assert chip.history[-1][0] == chip.history[-2][0]


def test_short_write_is_refused():
    _, spi, _ = make()
    with pytest.raises(ProtocolError, match="needs 16"):
        spi.xfer2([0x30])
