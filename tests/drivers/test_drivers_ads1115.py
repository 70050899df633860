"""ADS1115 driver against its emulator: single-shot, continuous, PGA, clipping, timing."""

import pytest
from grooverack.drivers.ads1115 import ADS1115
from grooverack.emulators import ADS1115Emulator, I2CBusEmulator, ProtocolError, VirtualClock


def make(fsr=4.096, rate=860):
    clock = VirtualClock()
    bus = I2CBusEmulator(1)
    chip = bus.attach(ADS1115Emulator(0x48, vdd=3.3, clock=clock))
    return clock, bus, chip, ADS1115(bus, 0x48, fsr=fsr, data_rate=rate, sleep=clock.sleep)


def test_config_word_bits():
    _, _, _, adc = make(fsr=2.048, rate=128)
    assert adc.config_word(0b100, start=True, continuous=False) == 0xC583
    assert ADS1115Emulator().config == 0x8583  # reset value per datasheet


@pytest.mark.parametrize("volts, code", [(0.0, 0), (1.0, 8000), (2.048, 16384), (3.3, 26400),
                                         (4.5, 28800)])
def test_single_shot_known_volts(volts, code):
    clock, _, chip, adc = make()
    chip.set_input(1, volts)
    t0 = clock.now
    assert adc.read_single(1) == code                      # 4.5 V clamps at VDD + 0.3 = 3.6 V
    assert clock.now - t0 == pytest.approx(1 / 860)        # one conversion of virtual time


def test_pga_clipping_and_negative_differential():
    _, _, chip, adc = make(fsr=0.256)
    chip.set_input(0, 1.0)
    assert adc.read_single(0) == 32767                     # above +FS: 0x7FFF
    chip.set_input(2, 0.1)
    chip.set_input(3, 0.2)
    assert adc.read_single((2, 3)) == -12800               # -0.1 V of 0.256 V FS


def test_os_bit_reads_busy_until_the_conversion_ends():
    clock, _, chip, adc = make(rate=8)
    chip.set_input(0, 1.0)
    adc.write_register(1, adc.config_word(0b100, start=True, continuous=False))
    assert not adc.read_register(1) & 0x8000
    assert adc.read_register(0) == 0                       # nothing converted yet
    clock.sleep(0.126)
    assert adc.read_register(1) & 0x8000
    assert adc.signed(adc.read_register(0)) == 8000


def test_continuous_mode_tracks_the_input_each_period():
    clock, _, chip, adc = make(rate=128)
    chip.set_input(3, 0.5)
    adc.start_continuous(3)
    clock.sleep(1 / 128 + 1e-6)
    assert adc.read_latest() == 4000
    chip.set_input(3, 1.5)
    assert adc.read_latest() == 4000                       # the next conversion has not ended
    clock.sleep(1 / 128)
    assert adc.read_latest() == 12000


def test_protocol_errors():
    _, bus, _, adc = make()
    with pytest.raises(ProtocolError, match="read only"):
        adc.write_register(0, 0)
    with pytest.raises(ProtocolError, match="2 bytes"):
        bus.read_i2c_block_data(0x48, 1, 3)
    with pytest.raises(ValueError, match="data rate"):
        ADS1115(bus, 0x48, data_rate=100)
