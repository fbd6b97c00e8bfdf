"""The contract every thermal source fulfils, so the driver node never knows which sensor it drives."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class SensorUnavailable(RuntimeError):
    """The sensor cannot be opened or stopped answering; the node retries with backoff.

    The message is written for the user: it names the device and the most likely fix, because
    it is the one line they see instead of a traceback.
    """


@dataclass(frozen=True)
class ThermalFrame:
    """One full-resolution frame in centi-Kelvin (uint16), plus what the sensor says about itself."""

    centikelvin: np.ndarray
    rgb: np.ndarray | None = None
    """The paired RGB camera frame taken at the same instant, when the source has one (sim)."""
    person_mask: np.ndarray | None = None
    """(H, W) bool on the RGB grid: the simulated rig's ground truth, recorded for masked training."""
    ffc_state: str | None = None
    fpa_temperature_k: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ThermalSource(Protocol):
    """A blocking frame source: `read` returns the next new frame at the sensor's own pace."""

    name: str
    nominal_rate_hz: float
    provides_rgb: bool
    """Whether frames carry a paired RGB image (the simulated rig does; real thermal sensors do not)."""

    def open(self) -> None: ...

    def read(self) -> ThermalFrame: ...

    def close(self) -> None: ...

    def diagnostics(self) -> dict[str, str]: ...


class RateKeeper:
    """Paces software sources on absolute deadlines, so the average rate never drifts with work time."""

    def __init__(self, rate_hz: float, clock=time.monotonic, sleep=time.sleep) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            # NaN would slip past `<= 0` and turn every deadline into NaN: a silent busy loop.
            raise ValueError(f"rate_hz must be finite and > 0, got {rate_hz}")
        self.period_s = 1.0 / rate_hz
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next is None or now - self._next > self.period_s:
            # First call, or we fell more than a period behind: restart the schedule instead of bursting.
            self._next = now
        delay = self._next - now
        if delay > 0:
            self._sleep(delay)
        self._next += self.period_s
