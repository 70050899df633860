"""MCP3208 driver against its emulator: known volts in -> expected codes."""

import pytest
from grooverack.drivers.mcp3208 import MCP3208
from grooverack.emulators import MCP3208Emulator, ProtocolError, SpiDeviceEmulator


def make(vref=3.3):
    chip = MCP3208Emulator(vref=vref, vdd=3.3)
    spi = SpiDeviceEmulator(chip, 0, 0)
    spi.open(0, 0)
    return chip, spi, MCP3208(spi, max_speed_hz=1_000_000)


def test_frame_bytes_per_datasheet():
    assert MCP3208.frame(0) == [0x06, 0x00, 0x00]
    assert MCP3208.frame(5) == [0x07, 0x40, 0x00]
    assert MCP3208.frame(7) == [0x07, 0xC0, 0x00]
    assert MCP3208.frame(2, single=False) == [0x04, 0x80, 0x00]


@pytest.mark.parametrize("volts, code", [(0.0, 0), (1.65, 2048), (3.3, 4095), (4.0, 4095),
                                         (-0.2, 0), (1.0, 1241), (3.3 * 4095 / 4096, 4095)])
def test_known_volts_give_expected_codes(volts, code):
    chip, _, adc = make()
    for ch in range(8):
        chip.set_input(ch, volts if ch == 3 else 0.5)
    assert adc.read(3) == code
    assert chip.last_channel == 3


def test_every_channel_is_its_own():
    chip, spi, adc = make(vref=3.3)
    for ch in range(8):
        chip.set_input(ch, 0.4 * ch)
    codes = adc.read_many(range(8))
    assert codes == [int(4096 * 0.4 * ch / 3.3) for ch in range(8)]
    assert spi.transfers == 8


def test_pseudo_differential_pair():
    chip, _, adc = make()
    chip.set_input(2, 2.0)
    chip.set_input(3, 0.5)
    assert adc.read(2, single=False) == int(4096 * 1.5 / 3.3)   # CH2 = IN+, CH3 = IN-
    assert adc.read(3, single=False) == 0                        # CH3 - CH2 < 0 clips to 0


def test_emulator_refuses_protocol_errors():
    chip, spi, _ = make()
    with pytest.raises(ProtocolError, match="no start bit"):
        spi.xfer2([0, 0, 0])
    with pytest.raises(ProtocolError, match="ends before B0"):
        spi.xfer2([0x06, 0x00])
    spi.max_speed_hz = 2_000_000
    with pytest.raises(ProtocolError, match="above the part's limit"):
        spi.xfer2([0x06, 0x00, 0x00])
    spi.max_speed_hz, spi.mode = 1_000_000, 1
    with pytest.raises(ProtocolError, match="mode 1"):
        spi.xfer2([0x06, 0x00, 0x00])


def test_emulator_bit_stream_matches_datasheet_figure():
    # start bit at the 6th clock: null bit at clock 13, B11 at clock 14; with 8 more clocks the
    # part continues LSB first (B1..B8 here)
    chip = MCP3208Emulator(vref=4.096, vdd=5.0)
    chip.set_input(0, 2.730)  # code 2730 = 0b1010_1010_1010
    reply = chip.transfer(bytes([0x06, 0x00, 0x00, 0x00]))
    assert reply[0] == 0 and reply[1] & 0xF0 == 0
    assert (reply[1] & 0x0F) << 8 | reply[2] == 2730
    assert reply[3] == 0b1010_1010  # B1..B8 = 1,0,1,0,1,0,1,0, LSB first after B0
