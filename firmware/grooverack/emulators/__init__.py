"""Byte-exact chip emulators and a GPIO header emulator: the far end of the real drivers.

Used by the tests and by the `sim` board, so simulation runs through the same drivers, scanning
and calibration code as the module on a Raspberry Pi.
"""

from grooverack.emulators.ads1115 import ADS1115Emulator
from grooverack.emulators.base import VirtualClock
from grooverack.emulators.gpio import GPIOEmulator
from grooverack.emulators.i2c import I2CBusEmulator
from grooverack.emulators.mcp3208 import MCP3208Emulator
from grooverack.emulators.mcp4728 import MCP4728Emulator
from grooverack.emulators.mcp4922 import MCP4922Emulator
from grooverack.emulators.spi import SpiDeviceEmulator
from grooverack.errors import ProtocolError

__all__ = [
    "ADS1115Emulator", "GPIOEmulator", "I2CBusEmulator", "MCP3208Emulator", "MCP4728Emulator",
    "MCP4922Emulator", "ProtocolError", "SpiDeviceEmulator", "VirtualClock",
]
