"""A fixed output rate for the nodes that send video on their own clock (the synthesis node's
interpolated playback, the virtual webcam), whatever each frame took to make."""

from __future__ import annotations

import math


class OutputClock:
    """Render ticks on a fixed grid, so output frames are evenly spaced whatever each render took.

    A render that overruns a period skips the ticks it missed instead of firing them in a burst:
    late frames would only pile up latency.
    """

    def __init__(self, rate_hz: float, start_s: float) -> None:
        self.period_s = 1.0 / rate_hz
        self.next_tick_s = start_s

    def wait_s(self, now_s: float) -> float:
        return max(0.0, self.next_tick_s - now_s)

    def advance(self, now_s: float) -> None:
        """Moves to the first tick after `now_s`; call it once the current tick's work is done."""
        missed = max(0, math.floor((now_s - self.next_tick_s) / self.period_s))
        self.next_tick_s += (missed + 1) * self.period_s
