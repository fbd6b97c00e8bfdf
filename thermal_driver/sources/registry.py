"""Which sources exist and how a node's parameters turn into one (plain Python, no ROS)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from thermal_driver.sources.base import ThermalSource
from thermal_driver.sources.lepton.source import MAX_SPI_SPEED_HZ

SOURCE_NAMES = ("sim", "lepton_spi", "purethermal", "amg8833", "replay")
TELEMETRY_MODES = ("footer", "header", "disabled")

DEFAULT_DEVICES = {
    "sim": "",
    "lepton_spi": "/dev/spidev0.0",
    "purethermal": "0",
    "amg8833": "/dev/i2c-1",
    "replay": "",
}


@dataclass(frozen=True)
class SourceConfig:
    """Everything needed to open a source; fixed for the node's lifetime (changing it means restarting)."""

    source: str = "sim"
    device: str = ""
    cci_device: str = "/dev/i2c-1"
    i2c_address: int = 0x69
    spi_speed_hz: int = 18_000_000
    telemetry: str = "footer"
    rate_hz: float = 8.7
    loop: bool = False
    seed: int = 0

    @property
    def resolved_device(self) -> str:
        return self.device or DEFAULT_DEVICES[self.source]

    def validate(self) -> None:
        """Raises ValueError naming the parameter, so the node can refuse to start with one clear line."""
        if self.source not in SOURCE_NAMES:
            raise ValueError(f"source must be one of {list(SOURCE_NAMES)}, got {self.source!r}")
        if self.source == "replay" and not self.device:
            raise ValueError("source 'replay' needs device: a rosbag2 directory or a folder of .npy frames")
        if not (math.isfinite(self.rate_hz) and 0 < self.rate_hz <= 100):
            raise ValueError(f"rate_hz must be in (0, 100], got {self.rate_hz}")
        if not 0 < self.spi_speed_hz <= MAX_SPI_SPEED_HZ:
            raise ValueError(
                f"spi_speed_hz must be in (0, {MAX_SPI_SPEED_HZ}] (Lepton maximum), got {self.spi_speed_hz}"
            )
        if self.telemetry not in TELEMETRY_MODES:
            raise ValueError(f"telemetry must be one of {list(TELEMETRY_MODES)}, got {self.telemetry!r}")
        if self.i2c_address not in (0x68, 0x69):
            raise ValueError(
                f"i2c_address must be 0x68 (104) or 0x69 (105) for an AMG8833, got {self.i2c_address}"
            )


def make_source(config: SourceConfig) -> ThermalSource:
    """Imports each source's module only when chosen, so a laptop never loads SPI code and vice versa."""
    config.validate()
    device = config.resolved_device
    if config.source == "sim":
        from thermal_driver.sources.sim import SimSource

        return SimSource(rate_hz=config.rate_hz, seed=config.seed)
    if config.source == "lepton_spi":
        from thermal_driver.sources.lepton.source import LeptonSpiSource
        from thermal_driver.sources.lepton.vospi import TelemetryMode

        return LeptonSpiSource(
            spi_device=device,
            i2c_device=config.cci_device,
            spi_speed_hz=config.spi_speed_hz,
            telemetry=TelemetryMode[config.telemetry.upper()],
        )
    if config.source == "purethermal":
        from thermal_driver.sources.purethermal import PureThermalSource

        return PureThermalSource(device)
    if config.source == "amg8833":
        from thermal_driver.sources.amg8833 import Amg8833Source

        return Amg8833Source(device, address=config.i2c_address)
    from thermal_driver.sources.replay import ReplaySource

    return ReplaySource(device, rate_hz=config.rate_hz, loop=config.loop)
