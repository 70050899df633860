"""MCP4728: quad 12-bit DAC with EEPROM on I2C (Microchip DS22187), emulated command by command.

Address 0b1100 A2 A1 A0 (0x60..0x67). Write commands (first byte C2 C1 C0 W1 W0 ...):
- 00 PD1 PD0 D11..D8, D7..D0, channels A..D in turn: fast write (input registers only; VREF and
  gain keep their values).
- 01000 DAC1 DAC0 UDAC, VREF PD1 PD0 Gx D11..D8, D7..D0, repeated: multi-write.
- 01010 DAC1 DAC0 UDAC + 2 bytes per channel from DAC1:DAC0 to D: sequential write (+EEPROM).
- 01011 DAC1 DAC0 UDAC + 2 bytes: single write (+EEPROM).
- 100x VA VB VC VD: VREF select (1 = internal 2.048 V); 110x GA GB GC GD: gain (1 = x2);
  101x PDA1 PDA0 PDB1 PDB0, PDC1 PDC0 PDD1 PDD0 xxxx: power-down select.
- 011: write I2C address bits: needs the LDAC pin toggled inside the 2nd byte: not emulated.
An input register reaches its output at the ACK of its last byte when UDAC = 0 or LDAC is low
(the VREF/gain/power-down commands update the outputs at once). General call: 0x06 reset
(EEPROM -> registers), 0x09 wake-up (PD = 00), 0x08 software update (inputs -> outputs).
A read returns 24 bytes: per channel A..D, the input register then the EEPROM, 3 bytes each:
RDY/BSY POR DAC1 DAC0 0 A2 A1 A0 | VREF PD1 PD0 Gx D11..D8 | D7..D0.
VOUT = VREF * D / 4096 * G (internal 2.048 V, G = 1 or 2) or VDD * D / 4096 (VDD reference);
power-down pulls the output to ground (0 V); the output cannot exceed VDD. EEPROM writes
complete at once here (RDY/BSY always reads 1: ready).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from grooverack.emulators.base import hexbytes
from grooverack.errors import ProtocolError

INTERNAL_VREF = 2.048


@dataclass(frozen=True)
class Register:
    vref: int = 0    # 0 = VDD, 1 = internal 2.048 V
    pd: int = 0      # 0 = normal, 1..3 = power-down (1k/100k/500k to ground)
    gain: int = 0    # 0 = x1, 1 = x2
    code: int = 0


class MCP4728Emulator:
    name = "MCP4728"

    def __init__(self, address: int = 0x60, vdd: float = 5.0,
                 clock: Callable[[], float] = lambda: 0.0, ldac_tied_low: bool = True) -> None:
        if not 0x60 <= address <= 0x67:
            raise ValueError(f"MCP4728: address 0x{address:02x} outside 0x60..0x67")
        self.address, self.vdd, self.clock = address, vdd, clock
        self.ldac_low = ldac_tied_low
        self.eeprom = [Register()] * 4          # factory default: VDD reference, x1, code 0
        self.input = list(self.eeprom)
        self.output = list(self.eeprom)
        self.history: list[tuple[float, int, int, float]] = []  # (t, channel, code, volts)
        self.writes = 0

    # --- outputs
    def volts(self, channel: int) -> float:
        r = self.output[channel]
        if r.pd:
            return 0.0
        v = INTERNAL_VREF * r.code / 4096 * (2 if r.gain else 1) if r.vref else self.vdd * r.code / 4096
        return min(v, self.vdd)

    def code(self, channel: int) -> int:
        return self.output[channel].code

    def _update(self, channel: int) -> None:
        if self.output[channel] != self.input[channel]:
            before = self.volts(channel)
            self.output[channel] = self.input[channel]
            after = self.volts(channel)
            if after != before or not self.history:
                self.history.append((self.clock(), channel, self.input[channel].code, after))

    def set_ldac(self, level: int) -> None:
        falling = not self.ldac_low and not level
        self.ldac_low = not level
        if falling:
            for ch in range(4):
                self._update(ch)

    # --- I2C
    def _fail(self, data: bytes, why: str) -> ProtocolError:
        return ProtocolError(f"MCP4728@0x{self.address:02x}: {why} (bytes {hexbytes(data)})")

    def i2c_write(self, data: bytes) -> None:
        if not data:
            return  # address-only write (a probe): ACK and nothing else
        self.writes += 1
        first = data[0]
        if first >> 6 == 0:
            self._fast_write(data)
        elif first >> 5 == 0b010:
            self._dac_write(data)
        elif first >> 5 == 0b100:
            self._select(data, "vref")
        elif first >> 5 == 0b110:
            self._select(data, "gain")
        elif first >> 5 == 0b101:
            if len(data) != 2:
                raise self._fail(data, "power-down select takes 2 bytes")
            pds = (first >> 2 & 3, first & 3, data[1] >> 6 & 3, data[1] >> 4 & 3)
            for ch in range(4):
                self.input[ch] = replace(self.input[ch], pd=pds[ch])
                self._update(ch)
        elif first >> 5 == 0b011:
            raise self._fail(data, "write-address command needs LDAC timing inside the 2nd "
                             "byte; not emulated")
        else:
            raise self._fail(data, f"command bits C2:C0 = {first >> 5:03b} are reserved")

    def _fast_write(self, data: bytes) -> None:
        if len(data) % 2:
            raise self._fail(data, "fast write sends 2 bytes per channel; got an odd count")
        for i in range(0, len(data), 2):
            ch = (i // 2) % 4
            hi = data[i]  # channels B..D: the two top bits are don't-care
            self.input[ch] = replace(self.input[ch], pd=hi >> 4 & 3,
                                     code=(hi & 0x0F) << 8 | data[i + 1])
            if self.ldac_low:
                self._update(ch)

    def _dac_write(self, data: bytes) -> None:
        w = data[0] >> 3 & 3
        if w == 0b00:  # multi-write: [cmd, hi, lo] repeated
            if len(data) % 3:
                raise self._fail(data, "multi-write sends 3 bytes per channel")
            for i in range(0, len(data), 3):
                cmd = data[i]  # in repeats only DAC1 DAC0 UDAC count (figure 5-8: X X X X X)
                self._write_channel(cmd >> 1 & 3, data[i + 1], data[i + 2], cmd & 1)
        elif w == 0b10:  # sequential write from DAC1:DAC0 to D, plus EEPROM
            start = data[0] >> 1 & 3
            if len(data) != 1 + 2 * (4 - start):
                raise self._fail(data, f"sequential write from channel {'ABCD'[start]} needs "
                                 f"{1 + 2 * (4 - start)} bytes")
            for k, ch in enumerate(range(start, 4)):
                self._write_channel(ch, data[1 + 2 * k], data[2 + 2 * k], data[0] & 1, eeprom=True)
        elif w == 0b11:  # single write + EEPROM
            if len(data) != 3:
                raise self._fail(data, "single write takes 3 bytes")
            self._write_channel(data[0] >> 1 & 3, data[1], data[2], data[0] & 1, eeprom=True)
        else:
            raise self._fail(data, "write function W1:W0 = 01 is reserved")

    def _write_channel(self, ch: int, hi: int, lo: int, udac: int, eeprom: bool = False) -> None:
        reg = Register(vref=hi >> 7, pd=hi >> 5 & 3, gain=hi >> 4 & 1, code=(hi & 0x0F) << 8 | lo)
        self.input[ch] = reg
        if eeprom:
            self.eeprom[ch] = reg
        if not udac or self.ldac_low:
            self._update(ch)

    def _select(self, data: bytes, what: str) -> None:
        if len(data) != 1:
            raise self._fail(data, f"{what} select is a single byte")
        for ch in range(4):
            bit = data[0] >> (3 - ch) & 1
            self.input[ch] = replace(self.input[ch], **{what: bit})
            self._update(ch)

    def i2c_read(self, length: int) -> bytes:
        if not 1 <= length <= 24:
            raise ProtocolError(f"MCP4728@0x{self.address:02x}: read of {length} bytes; the "
                                "device sends 24 (input register + EEPROM per channel)")
        out = bytearray()
        a = self.address & 7
        for ch in range(4):
            for reg in (self.input[ch], self.eeprom[ch]):
                out += bytes([0x80 | 0x40 | ch << 4 | a,  # RDY/BSY = 1 (ready), POR = 1
                              reg.vref << 7 | reg.pd << 5 | reg.gain << 4 | reg.code >> 8,
                              reg.code & 0xFF])
        return bytes(out[:length])

    def general_call(self, data: bytes) -> None:
        if data == b"\x06":      # reset: EEPROM -> input registers -> outputs
            self.input = list(self.eeprom)
            for ch in range(4):
                self._update(ch)
        elif data == b"\x09":    # wake-up: power-down bits cleared
            self.input = [replace(r, pd=0) for r in self.input]
            for ch in range(4):
                self._update(ch)
        elif data == b"\x08":    # software update
            for ch in range(4):
                self._update(ch)
        elif data[:1] == b"\x0c":
            raise ProtocolError("MCP4728: general call read-address needs LDAC timing; not emulated")
