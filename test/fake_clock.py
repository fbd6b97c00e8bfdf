"""A virtual clock for code that paces itself or waits on hardware (resync idles, polling, replay).

Injecting it keeps those tests instant and lets them assert the exact sleeps.
"""

from __future__ import annotations

import math


class FakeClock:
    """`monotonic` and `sleep` on a virtual timeline, enforcing time.sleep's rule: durations finite and >= 0.

    Sleeping advances the clock instantly and records the duration; `advance` simulates work or a stall.
    """

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"sleep length must be finite and non-negative, got {seconds}")
        self.sleeps.append(seconds)
        self.now_s += seconds

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
