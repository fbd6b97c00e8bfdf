"""Panasonic Grid-EYE AMG8833: 8x8 thermopiles over I2C, the sensor of the original SPADE-SR data."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from thermal_driver.sources.base import RateKeeper, ThermalFrame
from thermal_driver.sources.i2c import I2cBus, LinuxI2cBus
from thermal_msgs.units import celsius_to_centikelvin

DEFAULT_ADDRESS = 0x69
"""AD_SELECT high, the Adafruit breakout default; 0x68 when it is tied low."""

REG_POWER_CONTROL = 0x00
REG_RESET = 0x01
REG_FRAME_RATE = 0x02
REG_THERMISTOR = 0x0E
REG_PIXELS = 0x80

POWER_NORMAL = 0x00
RESET_INITIAL = 0x3F
FRAME_RATE_10_FPS = 0x00

PIXEL_COUNT = 64
PIXEL_LSB_C = 0.25
THERMISTOR_LSB_C = 0.0625


def decode_pixels(raw: bytes) -> np.ndarray:
    """128 little-endian bytes -> 8x8 degC. Pixels are 12-bit two's complement (not sign-magnitude,
    the mistake older Adafruit code made, which turns -0.25 degC into +511.75 degC)."""
    if len(raw) != 2 * PIXEL_COUNT:
        raise ValueError(f"expected {2 * PIXEL_COUNT} pixel bytes, got {len(raw)}")
    words = np.frombuffer(raw, dtype="<u2").astype(np.int32) & 0x0FFF
    signed = np.where(words & 0x0800, words - 0x1000, words)
    return (signed * PIXEL_LSB_C).astype(np.float32).reshape(8, 8)


def decode_thermistor(raw: bytes) -> float:
    """12-bit sign-magnitude, 0.0625 degC per LSB."""
    word = int.from_bytes(raw[:2], "little") & 0x0FFF
    magnitude = (word & 0x07FF) * THERMISTOR_LSB_C
    return -magnitude if word & 0x0800 else magnitude


class Amg8833Source:
    name = "amg8833"
    provides_rgb = False
    nominal_rate_hz = 10.0

    def __init__(
        self,
        device: str = "1",
        address: int = DEFAULT_ADDRESS,
        bus_factory: Callable[[str], I2cBus] = LinuxI2cBus,
        *,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        if address not in (0x68, 0x69):
            raise ValueError(f"AMG8833 address must be 0x68 or 0x69, got 0x{address:02X}")
        self.device = device
        self.address = address
        self._bus_factory = bus_factory
        self._bus: I2cBus | None = None
        self._pace = RateKeeper(self.nominal_rate_hz, clock=clock, sleep=sleep)
        self._sleep = sleep
        self._thermistor_c: float | None = None

    def open(self) -> None:
        bus = self._bus_factory(self.device)
        try:
            bus.write(self.address, bytes([REG_POWER_CONTROL, POWER_NORMAL]))
            bus.write(self.address, bytes([REG_RESET, RESET_INITIAL]))
            bus.write(self.address, bytes([REG_FRAME_RATE, FRAME_RATE_10_FPS]))
        except Exception:
            bus.close()
            raise
        # The datasheet asks for 50 ms after the mode change and 2 frames after reset before reading.
        self._sleep(0.25)
        self._bus = bus

    def read(self) -> ThermalFrame:
        if self._bus is None:
            raise RuntimeError("read() before open()")
        self._pace.wait()
        pixels = decode_pixels(self._bus.write_read(self.address, bytes([REG_PIXELS]), 2 * PIXEL_COUNT))
        self._thermistor_c = decode_thermistor(self._bus.write_read(self.address, bytes([REG_THERMISTOR]), 2))
        return ThermalFrame(
            centikelvin=celsius_to_centikelvin(pixels), extra={"thermistor_c": f"{self._thermistor_c:.2f}"}
        )

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def diagnostics(self) -> dict[str, str]:
        thermistor = "unknown" if self._thermistor_c is None else f"{self._thermistor_c:.2f}"
        return {"i2c_address": f"0x{self.address:02X}", "thermistor_c": thermistor}
