"""A minimal simulated Lepton: a warm upper body swaying in a room-temperature scene.

It exists so the driver, its tests and the demo run with no hardware; the full simulated rig
(identities, rooms, paired RGB) replaces the rendering later behind the same interface.
"""

from __future__ import annotations

import math
import time

import numpy as np

from thermal_driver.source import RateKeeper, ThermalFrame
from thermal_msgs.units import celsius_to_centikelvin

LEPTON_SHAPE = (120, 160)
LEPTON_RATE_HZ = 8.7


class SimSource:
    """Deterministic for a seed; paced on absolute deadlines at `rate_hz`."""

    name = "sim"

    def __init__(
        self, rate_hz: float = LEPTON_RATE_HZ, seed: int = 0, *, clock=time.monotonic, sleep=time.sleep
    ):
        self.nominal_rate_hz = rate_hz
        self._pace = RateKeeper(rate_hz, clock=clock, sleep=sleep)
        self._rng = np.random.default_rng(seed)
        self._phase = self._rng.uniform(0, 2 * math.pi)
        self._frames = 0
        rows, cols = np.mgrid[0 : LEPTON_SHAPE[0], 0 : LEPTON_SHAPE[1]].astype(np.float32)
        self._rows, self._cols = rows, cols
        self._background = 21.5 + 1.5 * rows / LEPTON_SHAPE[0] - 0.8 * cols / LEPTON_SHAPE[1]
        self._fixed_pattern = self._rng.normal(0.0, 0.03, LEPTON_SHAPE).astype(np.float32)

    def open(self) -> None:
        self._frames = 0

    def read(self) -> ThermalFrame:
        self._pace.wait()
        t = self._frames / self.nominal_rate_hz
        self._frames += 1
        celsius = self.render(t) + self._rng.normal(0.0, 0.05, LEPTON_SHAPE).astype(np.float32)
        return ThermalFrame(centikelvin=celsius_to_centikelvin(celsius), ffc_state="complete")

    def render(self, t: float) -> np.ndarray:
        """Noise-free scene at time `t` seconds, degrees Celsius."""
        sway = 18.0 * math.sin(0.6 * t + self._phase)
        bob = 4.0 * math.sin(1.3 * t)
        centre_x = LEPTON_SHAPE[1] / 2 + sway
        head_y = 42.0 + bob
        rows, cols = self._rows, self._cols
        head = ((cols - centre_x) / 17.0) ** 2 + ((rows - head_y) / 22.0) ** 2 <= 1.0
        neck = (np.abs(cols - centre_x) <= 8.0) & (rows > head_y) & (rows < head_y + 30.0)
        torso = ((cols - centre_x) / 50.0) ** 2 + ((rows - 125.0 - bob) / 50.0) ** 2 <= 1.0
        celsius = self._background + self._fixed_pattern
        celsius = np.where(torso, 29.5, celsius)
        celsius = np.where(neck, 34.0, celsius)
        return np.where(head, 34.5 - 1.5 * np.clip((head_y - 14.0 - rows) / 8.0, 0, 1), celsius)

    def close(self) -> None:
        """Nothing to release."""

    def diagnostics(self) -> dict[str, str]:
        return {"simulated_frames": str(self._frames)}
