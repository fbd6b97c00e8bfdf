"""Amg8833Source and its decoders against a fake I2C bus that emulates the Grid-EYE register map."""

from __future__ import annotations

import numpy as np
import pytest
from fake_clock import FakeClock

from thermal_driver.sources.amg8833 import Amg8833Source, decode_pixels, decode_thermistor
from thermal_driver.sources.base import SensorUnavailable
from thermal_driver.sources.i2c import I2cBus

PCTL, RST, FPSC = 0x00, 0x01, 0x02
THERMISTOR, PIXELS = 0x0E, 0x80
WRITABLE_VALUES = {
    PCTL: {0x00: "normal", 0x10: "sleep", 0x20: "standby 60 s", 0x21: "standby 10 s"},
    RST: {0x3F: "initial reset", 0x30: "flag reset"},
    FPSC: {0x00: "10 fps", 0x01: "1 fps"},
}
SETTLE_AFTER_RESET_S = 0.2
"""Two frames at 10 fps: before that the pixel registers hold stale data."""


class ProtocolViolation(AssertionError):
    """The driver did something the AMG8833 datasheet does not allow."""


def pixel_words(celsius: np.ndarray) -> bytes:
    """8x8 degC (multiples of 0.25) -> 128 bytes: 12-bit two's complement, little-endian."""
    quarters = np.rint(np.asarray(celsius) * 4).astype(np.int64).ravel()
    return (quarters & 0x0FFF).astype("<u2").tobytes()


def thermistor_word(celsius: float) -> bytes:
    """degC (multiple of 0.0625) -> 2 bytes: 12-bit sign-magnitude, little-endian."""
    magnitude = round(abs(celsius) * 16)
    return ((0x0800 if celsius < 0 else 0) | magnitude).to_bytes(2, "little")


class FakeAmg8833Bus(I2cBus):
    """An AMG8833 at `sensor_address` on an I2C bus, emulating PCTL, RST, FPSC, thermistor and pixels.

    Protocol rules: only addresses 0x68/0x69 are AMG8833 addresses (another one is a driver bug; the
    other valid one NACKs like an empty bus); writes are [register, value] to a writable register with
    a value the datasheet defines; reads send exactly one register byte and are either the 2-byte
    thermistor at 0x0E or the 128-byte pixel block at 0x80, the latter only after normal mode was set,
    an initial reset followed, and two frames passed since.
    """

    def __init__(
        self,
        clock: FakeClock,
        celsius: np.ndarray,
        thermistor_c: float = 24.5,
        sensor_address: int = 0x69,
    ) -> None:
        self.clock = clock
        self.celsius = celsius
        self.thermistor_c = thermistor_c
        self.sensor_address = sensor_address
        self.registers: dict[int, int | None] = dict.fromkeys(WRITABLE_VALUES)
        self.writes: list[tuple[int, int]] = []
        self.pixel_reads_at: list[float] = []
        self.device: str | None = None
        self.closed = False
        self._normal_mode_set = False
        self._reset_at: float | None = None

    def opened_as(self, device: str) -> FakeAmg8833Bus:
        """The bus factory: what `LinuxI2cBus(device)` would return."""
        self.device = device
        return self

    def _address(self, address: int) -> None:
        if self.closed:
            raise ProtocolViolation("transfer on a closed bus")
        if address not in (0x68, 0x69):
            raise ProtocolViolation(f"0x{address:02X} is not an AMG8833 address")
        if address != self.sensor_address:
            raise SensorUnavailable(f"I2C device 0x{address:02X} did not answer (fake NACK)")

    def write(self, address: int, data: bytes) -> None:
        self._address(address)
        if len(data) != 2:
            raise ProtocolViolation(f"expected [register, value], got {data.hex()}")
        register, value = data
        if value not in WRITABLE_VALUES.get(register, {}):
            raise ProtocolViolation(f"write of 0x{value:02X} to register 0x{register:02X}")
        self.registers[register] = value
        self.writes.append((register, value))
        if register == PCTL:
            self._normal_mode_set = value == 0x00
            self._reset_at = None
        elif register == RST and value == 0x3F and self._normal_mode_set:
            self._reset_at = self.clock.monotonic()

    def write_read(self, address: int, data: bytes, read_length: int) -> bytes:
        self._address(address)
        if len(data) != 1:
            raise ProtocolViolation(f"register address must be one byte, got {data.hex()}")
        register = data[0]
        if (register, read_length) == (THERMISTOR, 2):
            return thermistor_word(self.thermistor_c)
        if (register, read_length) != (PIXELS, 128):
            raise ProtocolViolation(f"read of {read_length} bytes at 0x{register:02X}")
        if not self._normal_mode_set or self._reset_at is None:
            raise ProtocolViolation("pixel read before normal mode and an initial reset")
        if self.clock.monotonic() - self._reset_at < SETTLE_AFTER_RESET_S:
            raise ProtocolViolation("pixel read within two frames of the reset")
        self.pixel_reads_at.append(self.clock.monotonic())
        return pixel_words(self.celsius)

    def close(self) -> None:
        self.closed = True


def scene_celsius() -> np.ndarray:
    """Quarter-degree values, all exactly representable: a room, a warm face, and two sub-zero pixels
    (-0.25 degC and the sensor's -55 degC limit) to exercise the sign."""
    scene = np.full((8, 8), 22.25)
    scene[2:5, 3:5] = 33.75
    scene[0, 0] = -0.25
    scene[7, 7] = -55.0
    return scene


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def source_on(bus: FakeAmg8833Bus, clock: FakeClock, address: int = 0x69) -> Amg8833Source:
    return Amg8833Source(
        "1", address=address, bus_factory=bus.opened_as, clock=clock.monotonic, sleep=clock.sleep
    )


@pytest.mark.parametrize(
    ("word", "celsius"),
    [
        (0x0000, 0.0),
        (0x0001, 0.25),
        (0x0064, 25.0),
        (0x01F4, 125.0),
        (0x07FF, 511.75),
        (0x0FFF, -0.25),
        (0x0F24, -55.0),
        (0x0800, -512.0),
        (0xFFFF, -0.25),  # upper nibble sign-extended: still the 12-bit value
        (0xF064, 25.0),  # upper nibble set on a positive value: ignored
    ],
)
def test_decode_pixels_is_12_bit_twos_complement(word: int, celsius: float) -> None:
    raw = np.full(64, word, dtype="<u2").tobytes()
    pixels = decode_pixels(raw)
    assert pixels.shape == (8, 8)
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, np.full((8, 8), celsius, np.float32))


def test_decode_pixels_avoids_the_sign_magnitude_trap() -> None:
    """Sign-magnitude reads -0.25 degC (0xFFF) as -511.75 degC, unsigned as +511.75 degC."""
    assert decode_pixels(np.full(64, 0x0FFF, "<u2").tobytes())[0, 0] == -0.25


def test_decode_pixels_keeps_row_major_order_and_little_endian_bytes() -> None:
    words = np.arange(64, dtype="<u2")
    pixels = decode_pixels(bytes(words.view(np.uint8)))
    np.testing.assert_array_equal(pixels, np.arange(64).reshape(8, 8) * 0.25)


@pytest.mark.parametrize("length", [0, 64, 127, 129])
def test_decode_pixels_refuses_a_short_or_long_block(length: int) -> None:
    with pytest.raises(ValueError, match=f"expected 128 pixel bytes, got {length}"):
        decode_pixels(bytes(length))


@pytest.mark.parametrize(
    ("raw", "celsius"),
    [
        (bytes([0x90, 0x01]), 25.0),
        (bytes([0x01, 0x00]), 0.0625),
        (bytes([0x01, 0x08]), -0.0625),
        (bytes([0x10, 0x08]), -1.0),
        (bytes([0xF0, 0x0A]), -47.0),
        (bytes([0xFF, 0x07]), 127.9375),
    ],
)
def test_decode_thermistor_is_12_bit_sign_magnitude(raw: bytes, celsius: float) -> None:
    assert decode_thermistor(raw) == celsius


def test_open_sets_normal_mode_resets_and_selects_10_fps(clock: FakeClock) -> None:
    bus = FakeAmg8833Bus(clock, scene_celsius())
    source_on(bus, clock).open()
    assert bus.device == "1"
    assert bus.writes == [(PCTL, 0x00), (RST, 0x3F), (FPSC, 0x00)]
    assert bus.registers == {PCTL: 0x00, RST: 0x3F, FPSC: 0x00}
    assert sum(clock.sleeps) >= SETTLE_AFTER_RESET_S
    assert not bus.closed


def test_read_returns_the_scene_in_centikelvin_and_the_thermistor(clock: FakeClock) -> None:
    bus = FakeAmg8833Bus(clock, scene_celsius(), thermistor_c=-3.5)
    source = source_on(bus, clock)
    source.open()
    frame = source.read()
    assert frame.centikelvin.dtype == np.uint16
    assert frame.centikelvin.shape == (8, 8)
    np.testing.assert_array_equal(frame.centikelvin, np.rint(scene_celsius() * 100 + 27315))
    assert frame.centikelvin[7, 7] == 27315 - 5500
    assert frame.extra == {"thermistor_c": "-3.50"}
    assert source.diagnostics() == {"i2c_address": "0x69", "thermistor_c": "-3.50"}


def test_reads_are_paced_at_10_hz_on_absolute_deadlines(clock: FakeClock) -> None:
    bus = FakeAmg8833Bus(clock, scene_celsius())
    source = source_on(bus, clock)
    source.open()
    for _ in range(21):
        source.read()
        clock.advance(0.004)  # the consumer's own work does not stretch the period
    periods = np.diff(bus.pixel_reads_at)
    np.testing.assert_allclose(periods, 0.1, atol=1e-9)


def test_wrong_address_fails_open_and_closes_the_bus(clock: FakeClock) -> None:
    bus = FakeAmg8833Bus(clock, scene_celsius(), sensor_address=0x69)
    with pytest.raises(SensorUnavailable, match="0x68 did not answer"):
        source_on(bus, clock, address=0x68).open()
    assert bus.closed


@pytest.mark.parametrize("address", [0x00, 0x40, 0x6A, 0x1E9])
def test_invalid_address_is_rejected_before_touching_the_bus(address: int) -> None:
    with pytest.raises(ValueError, match=f"must be 0x68 or 0x69, got 0x{address:02X}"):
        Amg8833Source("1", address=address, bus_factory=lambda device: pytest.fail("bus opened"))


def test_close_releases_the_bus_and_read_needs_open(clock: FakeClock) -> None:
    bus = FakeAmg8833Bus(clock, scene_celsius())
    source = source_on(bus, clock)
    with pytest.raises(RuntimeError, match=r"read\(\) before open\(\)"):
        source.read()
    source.open()
    source.close()
    assert bus.closed


def test_fake_refuses_pixel_reads_before_the_power_up_sequence(clock: FakeClock) -> None:
    """The fake's own rule, so the open-sequence tests above mean something."""
    bus = FakeAmg8833Bus(clock, scene_celsius())
    with pytest.raises(ProtocolViolation, match="before normal mode"):
        bus.write_read(0x69, bytes([PIXELS]), 128)
    bus.write(0x69, bytes([PCTL, 0x00]))
    bus.write(0x69, bytes([RST, 0x3F]))
    with pytest.raises(ProtocolViolation, match="within two frames"):
        bus.write_read(0x69, bytes([PIXELS]), 128)
    with pytest.raises(ProtocolViolation, match="read of 32 bytes at 0x80"):
        bus.write_read(0x69, bytes([PIXELS]), 32)
