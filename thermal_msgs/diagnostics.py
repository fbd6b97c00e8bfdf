"""/diagnostics helpers shared by every node, so rqt_robot_monitor shows them all the same way."""

from __future__ import annotations

import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


def diagnostic_array(
    stamp, *, name: str, hardware_id: str, level: bytes, message: str, values: dict[str, str]
) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=str(value)) for key, value in values.items()],
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


class RateMeter:
    """Achieved event rate over a sliding window; a stalled stream reads as 0, not as the last good rate."""

    def __init__(self, window_s: float = 5.0, clock=time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()

    def tick(self) -> None:
        now = self._clock()
        self._times.append(now)
        self._forget_before(now - self.window_s)

    def rate_hz(self) -> float:
        self._forget_before(self._clock() - self.window_s)
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def _forget_before(self, horizon: float) -> None:
        while self._times and self._times[0] < horizon:
            self._times.popleft()
