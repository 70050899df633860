"""MCP4728 quad 12-bit DAC on I2C (address 0x60..0x67), internal 2.048 V reference x2 = 0..4.096 V.

Updates use the multi-write command, one I2C transaction for any number of channels, in the
order given (velocity before trigger), each with VREF = internal, gain x2, UDAC = 0, so every
channel's output changes at the ACK of its own last byte. `fast_write` writes all four at once
(VREF/gain as configured). `read_back` parses the 24-byte read (input register + EEPROM).
"""

from __future__ import annotations

from dataclasses import dataclass

from smbus2 import i2c_msg

from grooverack.drivers.ads1115 import I2CLike


@dataclass(frozen=True)
class ChannelState:
    channel: int
    ready: bool       # RDY/BSY: False while an EEPROM write is in progress
    por: bool
    vref_internal: bool
    power_down: int
    gain2: bool
    code: int


class MCP4728:
    def __init__(self, bus: I2CLike, address: int = 0x60, *, internal_vref: bool = True,
                 gain2: bool = True) -> None:
        if not 0x60 <= address <= 0x67:
            raise ValueError(f"MCP4728 address 0x{address:02x} outside 0x60..0x67")
        self.bus, self.address = bus, address
        self.internal_vref, self.gain2 = internal_vref, gain2

    def configure(self) -> None:
        """VREF and gain of all four channels (volatile: EEPROM untouched)."""
        v = 0x0F if self.internal_vref else 0x00
        g = 0x0F if self.gain2 else 0x00
        self.bus.i2c_rdwr(i2c_msg.write(self.address, [0x80 | v]))
        self.bus.i2c_rdwr(i2c_msg.write(self.address, [0xC0 | g]))

    def _check(self, channel: int, code: int) -> None:
        if not 0 <= channel <= 3:
            raise ValueError(f"MCP4728@0x{self.address:02x}: channel {channel} outside 0..3")
        if not 0 <= code <= 4095:
            raise ValueError(f"MCP4728@0x{self.address:02x}: code {code} outside 0..4095")

    def multi_write(self, writes: list[tuple[int, int]]) -> None:
        """(channel, code) pairs, in order, in one transaction."""
        if not writes:
            return
        cfg = (0x80 if self.internal_vref else 0) | (0x10 if self.gain2 else 0)
        data: list[int] = []
        for channel, code in writes:
            self._check(channel, code)
            data += [0x40 | channel << 1, cfg | code >> 8, code & 0xFF]
        self.bus.i2c_rdwr(i2c_msg.write(self.address, data))

    def write_many(self, writes: list[tuple[int, int]]) -> None:
        """The DAC interface: the pairs as one multi-write transaction."""
        self.multi_write(writes)

    def write(self, channel: int, code: int) -> None:
        self.multi_write([(channel, code)])

    def fast_write(self, codes: list[int]) -> None:
        """All four channels A..D in one 8-byte transaction (power-down bits 00)."""
        if len(codes) != 4:
            raise ValueError(f"MCP4728 fast write needs 4 codes, got {len(codes)}")
        data: list[int] = []
        for ch, code in enumerate(codes):
            self._check(ch, code)
            data += [code >> 8, code & 0xFF]
        self.bus.i2c_rdwr(i2c_msg.write(self.address, data))

    def read_back(self) -> list[ChannelState]:
        """The four input registers (what the outputs hold unless an update is pending)."""
        msg = i2c_msg.read(self.address, 24)
        self.bus.i2c_rdwr(msg)
        raw = list(bytes(msg))
        states = []
        for ch in range(4):
            b0, b1, b2 = raw[6 * ch: 6 * ch + 3]
            if b0 >> 4 & 3 != ch:
                raise OSError(f"MCP4728@0x{self.address:02x}: read-back block {ch} names channel "
                              f"{b0 >> 4 & 3} (bytes {raw[6 * ch: 6 * ch + 3]})")
            states.append(ChannelState(ch, bool(b0 & 0x80), bool(b0 & 0x40), bool(b1 & 0x80),
                                       b1 >> 5 & 3, bool(b1 & 0x10), (b1 & 0x0F) << 8 | b2))
        return states

    def probe(self) -> bool:
        """True when the address answers and the read-back is well formed."""
        self.read_back()
        return True
