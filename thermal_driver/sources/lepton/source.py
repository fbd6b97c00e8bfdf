"""FLIR Lepton 2.5/3.5 on SPI (video) and I2C (CCI) as a ThermalSource.

The recovery ladder answers the usual complaints about Lepton drivers: a frame is only returned
when it is whole (no torn images), a lost sync is fixed with a real >185 ms /CS idle, and when
resyncs stop helping the module is rebooted over the CCI instead of hanging forever.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from thermal_driver.sources.base import SensorUnavailable, ThermalFrame
from thermal_driver.sources.i2c import I2cBus, LinuxI2cBus
from thermal_driver.sources.lepton.cci import CciError, LeptonCci, LeptonConfigurationError
from thermal_driver.sources.lepton.vospi import (
    PACKET_BYTES,
    TLINEAR_RESOLUTIONS_K,
    TelemetryMode,
    VoSpiAssembler,
)

MAX_SPI_SPEED_HZ = 20_000_000
SPI_MODE_3 = 0x03
"""CPOL=1, CPHA=1, as the datasheet requires (pylepton's mode 0 only works by luck of timing)."""
SPIDEV_DEFAULT_BUFSIZ = 4096
RESYNC_IDLE_S = 0.186
"""/CS idle that forces a VoSPI resync: the datasheet asks for more than 185 ms (5 frame periods)."""
REBOOTS_BEFORE_GIVING_UP = 2
"""Reboots without a single frame after which the fault is wiring, not the module: tell the user."""

_IOC_WRITE = 1
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30


def _iow(ioctl_type: str, number: int, size: int) -> int:
    """Linux `_IOW` in the generic layout used on arm, arm64 and x86 (not mips/powerpc/sparc)."""
    return (
        _IOC_WRITE << _IOC_DIRSHIFT
        | size << _IOC_SIZESHIFT
        | ord(ioctl_type) << _IOC_TYPESHIFT
        | number << _IOC_NRSHIFT
    )


SPI_IOC_MAGIC = "k"
SPI_IOC_WR_MODE = _iow(SPI_IOC_MAGIC, 1, 1)
SPI_IOC_WR_BITS_PER_WORD = _iow(SPI_IOC_MAGIC, 3, 1)
SPI_IOC_WR_MAX_SPEED_HZ = _iow(SPI_IOC_MAGIC, 4, 4)

ENABLE_SPI_HINT = (
    "enable SPI (`raspi-config` > Interface Options > SPI, or `dtparam=spi=on` in config.txt) and reboot"
)
BUFSIZ_HINT = (
    "a whole VoSPI segment is read at once, more than spidev's default 4096-byte buffer: add "
    "`spidev.bufsiz=65536` to cmdline.txt and reboot"
)


class SpiPort(Protocol):
    """Half-duplex receive from one SPI device; each `read` is one /CS-asserted transfer."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class LinuxSpi:
    """/dev/spidevB.C in SPI mode 3, read with plain os.read (MOSI idles, as the Lepton wants)."""

    def __init__(self, path: str, speed_hz: int) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDWR)
        except FileNotFoundError as error:
            raise SensorUnavailable(f"SPI device {path} does not exist: {ENABLE_SPI_HINT}") from error
        except PermissionError as error:
            raise SensorUnavailable(
                f"permission denied opening {path}: add the user to group spi (`sudo usermod -aG spi $USER`)"
            ) from error
        except OSError as error:
            raise SensorUnavailable(f"cannot open SPI device {path}: {error.strerror}") from error
        try:
            fcntl.ioctl(self._fd, SPI_IOC_WR_MODE, struct.pack("=B", SPI_MODE_3))
            fcntl.ioctl(self._fd, SPI_IOC_WR_BITS_PER_WORD, struct.pack("=B", 8))
            fcntl.ioctl(self._fd, SPI_IOC_WR_MAX_SPEED_HZ, struct.pack("=I", speed_hz))
        except OSError as error:
            self.close()
            raise SensorUnavailable(
                f"{path} refused SPI mode 3, 8 bits/word, {speed_hz} Hz ({error.strerror}): "
                "is it an spidev device?"
            ) from error

    def read(self, n: int) -> bytes:
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self.path} is closed")
        try:
            return os.read(self._fd, n)
        except OSError as error:
            if error.errno == errno.EMSGSIZE and n > SPIDEV_DEFAULT_BUFSIZ:
                raise SensorUnavailable(
                    f"SPI read of {n} bytes from {self.path} failed: {BUFSIZ_HINT}"
                ) from error
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LeptonSpiSource:
    """Radiometric Lepton frames in centi-Kelvin, configured over CCI and read over VoSPI."""

    name = "lepton_spi"
    provides_rgb = False
    nominal_rate_hz = 8.7

    def __init__(
        self,
        spi_device: str = "/dev/spidev0.0",
        cci_bus: I2cBus | None = None,
        *,
        i2c_device: str = "/dev/i2c-1",
        spi_speed_hz: int = 18_000_000,
        telemetry: TelemetryMode = TelemetryMode.FOOTER,
        spi_factory: Callable[[str, int], SpiPort] = LinuxSpi,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_resyncs_before_reboot: int = 20,
    ) -> None:
        if not 0 < spi_speed_hz <= MAX_SPI_SPEED_HZ:
            raise ValueError(
                f"spi_speed_hz must be in (0, {MAX_SPI_SPEED_HZ}] (Lepton maximum), got {spi_speed_hz}"
            )
        if max_resyncs_before_reboot < 1:
            raise ValueError(f"max_resyncs_before_reboot must be >= 1, got {max_resyncs_before_reboot}")
        self.spi_device = spi_device
        self.i2c_device = i2c_device
        self.spi_speed_hz = spi_speed_hz
        self.telemetry = telemetry
        self.max_resyncs_before_reboot = max_resyncs_before_reboot
        self._given_bus = cci_bus
        self._spi_factory = spi_factory
        self._sleep = sleep
        self._clock = clock
        self._segment_bytes = telemetry.packets_per_segment * PACKET_BYTES
        self._assembler = VoSpiAssembler(telemetry)
        self._spi: SpiPort | None = None
        self._owned_bus: LinuxI2cBus | None = None
        self._cci: LeptonCci | None = None
        self._pending = memoryview(b"")
        self._pending_offset = 0
        self._frames = 0
        self._resyncs = 0
        self._reboots = 0
        self._resyncs_without_frame = 0
        self._reboots_without_frame = 0

    def open(self) -> None:
        self.close()
        self._spi = self._spi_factory(self.spi_device, self.spi_speed_hz)
        try:
            bus = self._given_bus
            if bus is None:
                bus = self._owned_bus = LinuxI2cBus(self.i2c_device)
            self._cci = LeptonCci(bus, clock=self._clock, sleep=self._sleep)
            self._configure()
        except BaseException:
            self.close()
            raise
        self._resyncs_without_frame = 0
        self._reboots_without_frame = 0
        self._resync()

    def read(self) -> ThermalFrame:
        if self._spi is None:
            raise SensorUnavailable(f"Lepton on {self.spi_device} is not open")
        while True:
            if self._assembler.needs_resync:
                self._recover()
            frame = self._frame_from_pending()
            if frame is not None:
                return self._to_thermal_frame(frame)
            with self._as_sensor_unavailable(f"reading video from {self.spi_device}"):
                self._pending = memoryview(self._spi.read(self._segment_bytes))
            self._pending_offset = 0

    def run_ffc(self) -> None:
        """Flat-field correction now; the image freezes for about 23 frames while the shutter closes."""
        if self._cci is None:
            raise SensorUnavailable(f"Lepton on {self.i2c_device} is not open")
        with self._as_sensor_unavailable("running FFC"):
            self._cci.run_ffc()

    def close(self) -> None:
        if self._spi is not None:
            with contextlib.suppress(OSError):
                self._spi.close()
            self._spi = None
        if self._owned_bus is not None:
            with contextlib.suppress(OSError):
                self._owned_bus.close()
            self._owned_bus = None
        self._cci = None

    def diagnostics(self) -> dict[str, str]:
        stats = self._assembler.stats
        return {
            "spi_device": self.spi_device,
            "spi_speed_hz": str(self.spi_speed_hz),
            "telemetry": self.telemetry.value,
            "frames": str(self._frames),
            "resyncs": str(self._resyncs),
            "reboots": str(self._reboots),
            "crc_errors": str(stats.crc_errors),
            "lost_packets": str(stats.lost_packets),
            "noise_packets": str(stats.noise_packets),
            "invalid_segments": str(stats.invalid_segments),
            "broken_frames": str(stats.broken_frames),
        }

    def _frame_from_pending(self) -> np.ndarray | None:
        pending, offset, push = self._pending, self._pending_offset, self._assembler.push
        last_start = len(pending) - PACKET_BYTES
        frame = None
        while offset <= last_start and frame is None and not self._assembler.needs_resync:
            frame = push(pending[offset : offset + PACKET_BYTES])
            offset += PACKET_BYTES
        self._pending_offset = offset
        return frame

    def _recover(self) -> None:
        if self._resyncs_without_frame >= self.max_resyncs_before_reboot:
            self._reboot()
        self._resyncs += 1
        self._resyncs_without_frame += 1
        self._resync()

    def _resync(self) -> None:
        """Keep /CS deasserted (no SPI transfer) long enough that the module restarts its VoSPI stream."""
        self._pending = memoryview(b"")
        self._pending_offset = 0
        self._sleep(RESYNC_IDLE_S)
        self._assembler.reset()

    def _reboot(self) -> None:
        """The fix for 'resync never recovers' (LeptonModule#40): OEM reboot, then configure again."""
        if self._reboots_without_frame >= REBOOTS_BEFORE_GIVING_UP:
            raise SensorUnavailable(
                f"no video from the Lepton on {self.spi_device} after {self._reboots_without_frame} reboots "
                f"and {self._resyncs} resyncs: check the SPI wiring (MISO, SCLK, /CS, ground) and try a "
                f"lower spi_speed_hz than {self.spi_speed_hz}"
            )
        assert self._cci is not None
        with self._as_sensor_unavailable("rebooting the Lepton"):
            self._cci.reboot()
            self._cci.wait_until_booted()
        self._reboots += 1
        self._reboots_without_frame += 1
        self._resyncs_without_frame = 0
        self._configure()

    def _configure(self) -> None:
        assert self._cci is not None
        with self._as_sensor_unavailable("configuring the Lepton"):
            self._cci.configure_for_radiometry(self.telemetry)

    def _to_thermal_frame(self, pixels: np.ndarray) -> ThermalFrame:
        self._frames += 1
        self._resyncs_without_frame = 0
        self._reboots_without_frame = 0
        telemetry = self._assembler.last_telemetry
        if telemetry is None:
            return ThermalFrame(centikelvin=pixels)
        if not telemetry.tlinear_enabled or telemetry.tlinear_resolution_k != TLINEAR_RESOLUTIONS_K[1]:
            raise SensorUnavailable(
                f"the Lepton's frame telemetry says TLinear is {'on' if telemetry.tlinear_enabled else 'OFF'}"
                f" at {telemetry.tlinear_resolution_k} K: pixels are not centi-Kelvin (the module may have "
                "reset itself after a power dip); reopening configures it again"
            )
        return ThermalFrame(
            centikelvin=pixels,
            ffc_state=telemetry.ffc_state,
            fpa_temperature_k=telemetry.fpa_temperature_k,
            extra={"frame_counter": str(telemetry.frame_counter)},
        )

    @contextlib.contextmanager
    def _as_sensor_unavailable(self, doing: str) -> Iterator[None]:
        """Mid-stream failures become SensorUnavailable, the one error the node retries with a message."""
        try:
            yield
        except LeptonConfigurationError as error:
            raise SensorUnavailable(f"Lepton on {self.i2c_device}: {error}") from error
        except CciError as error:
            raise SensorUnavailable(f"{doing} over CCI ({self.i2c_device}) failed: {error}") from error
        except OSError as error:
            raise SensorUnavailable(
                f"{doing} failed ({error.strerror or error}): check the Lepton's wiring and power"
            ) from error
