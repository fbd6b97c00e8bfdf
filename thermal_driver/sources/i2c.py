"""A two-call I2C transport, small enough that a fake bus can check every register protocol in tests."""

from __future__ import annotations

import errno
from typing import Protocol

from smbus2 import SMBus, i2c_msg

from thermal_driver.sources.base import SensorUnavailable


class I2cBus(Protocol):
    """Combined transactions as the sensors need them: register address out, data back (repeated start)."""

    def write(self, address: int, data: bytes) -> None: ...

    def write_read(self, address: int, data: bytes, read_length: int) -> bytes: ...

    def close(self) -> None: ...


def bus_path(device: str | int) -> str:
    """Accept `1`, `"1"` or `"/dev/i2c-1"`, the three ways users name a Linux I2C bus."""
    text = str(device).strip()
    return f"/dev/i2c-{text}" if text.isdigit() else text


class LinuxI2cBus:
    """/dev/i2c-N through smbus2's i2c_rdwr, which has no 32-byte SMBus block limit."""

    def __init__(self, device: str | int) -> None:
        self.path = bus_path(device)
        try:
            self._bus = SMBus(self.path)
        except OSError as error:
            hint = " (enable I2C, e.g. `raspi-config` > Interfaces, and check the user is in group i2c)"
            if error.errno == errno.EACCES:
                hint = " (permission denied: add the user to group i2c)"
            raise SensorUnavailable(f"cannot open I2C bus {self.path}: {error.strerror}{hint}") from error

    def write(self, address: int, data: bytes) -> None:
        self._transfer(address, i2c_msg.write(address, data))

    def write_read(self, address: int, data: bytes, read_length: int) -> bytes:
        reply = i2c_msg.read(address, read_length)
        self._transfer(address, i2c_msg.write(address, data), reply)
        return bytes(reply)

    def _transfer(self, address: int, *messages) -> None:
        try:
            self._bus.i2c_rdwr(*messages)
        except OSError as error:
            raise SensorUnavailable(
                f"I2C device 0x{address:02X} on {self.path} did not answer ({error.strerror}): "
                "check wiring and power"
            ) from error

    def close(self) -> None:
        self._bus.close()
