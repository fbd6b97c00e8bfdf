"""Smooth video from a slow sensor: heatmaps interpolated between consecutive thermal frames.

The Lepton delivers 8.7 frames per second and a video call shows 25-30; repeating each frame
would look like a stutter. Instead the synthesis node plays the heatmap stream back one input
period late, so there is always a later frame to blend towards, and paints the blends in between.
Blending in Celsius is physically sound: a coarse pixel reads the area-weighted mean temperature
of what it sees, so a body partway across it reads a linear mix of the two temperatures.

Nothing here knows ROS: the node and the benchmark drive the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BLEND_GAP_S = 1.0
"""Frames further apart than this (the sensor paused, a burst was lost) are cut between, not
blended: a morph drawn out over seconds would show a movement nobody made."""


@dataclass(frozen=True)
class TimedHeatmap:
    stamp_ns: int
    heatmap: np.ndarray
    arrival_s: float


@dataclass(frozen=True)
class PlaybackFrame:
    """A heatmap to paint, stamped in the input's time base so output stamps line up with the sensor's."""

    stamp_ns: int
    heatmap: np.ndarray
    fraction: float
    """Where between the previous and the newest input it lies: 0 and 1 are input frames."""

    @property
    def interpolated(self) -> bool:
        return 0.0 < self.fraction < 1.0


class HeatmapTimeline:
    """The latest two input frames and a playhead that runs one input period behind the newest.

    The playhead advances in real time from the newest frame's arrival, starting at the previous
    frame's stamp, so it reaches the newest stamp just as the next frame is due. A late frame
    leaves it waiting at the newest stamp and an early one moves it forward: it never runs
    backwards, and a sample that would not move it returns nothing rather than a duplicate.
    """

    def __init__(self, max_gap_s: float = MAX_BLEND_GAP_S) -> None:
        self.max_gap_ns = round(max_gap_s * 1e9)
        self._previous: TimedHeatmap | None = None
        self._newest: TimedHeatmap | None = None
        self._played_ns: int | None = None

    def push(self, stamp_ns: int, heatmap: np.ndarray, arrival_s: float) -> bool:
        """Adds the newest input frame (`arrival_s` on the clock `sample` is given).

        Returns True when the frame broke the stream (its stamp went back, or its shape changed)
        and playback restarted from it; whether that is worth reporting is the caller's call.
        A frame with the newest frame's stamp is a re-send and is ignored.
        """
        newest = self._newest
        if newest is not None and stamp_ns == newest.stamp_ns:
            return False
        # A copy: the caller's buffer (a message's data) may be reused after this returns.
        frame = TimedHeatmap(stamp_ns, np.array(heatmap, dtype=np.float32), arrival_s)
        self._newest = frame
        if newest is None:
            return False
        if stamp_ns < newest.stamp_ns or frame.heatmap.shape != newest.heatmap.shape:
            self._previous, self._played_ns = None, None
            return True
        self._previous = newest if stamp_ns - newest.stamp_ns <= self.max_gap_ns else None
        return False

    def sample(self, now_s: float) -> PlaybackFrame | None:
        """The heatmap at the playhead, or None when there is no frame yet or the playhead has not
        moved since the last sample. A lone frame (the first, or the first after a gap or a
        restart) is played at once, so output starts without waiting a period for a partner."""
        newest, previous = self._newest, self._previous
        if newest is None:
            return None
        if previous is None:
            playhead_ns = newest.stamp_ns
        else:
            elapsed_ns = round((now_s - newest.arrival_s) * 1e9)
            playhead_ns = min(max(previous.stamp_ns + elapsed_ns, previous.stamp_ns), newest.stamp_ns)
        if self._played_ns is not None and playhead_ns <= self._played_ns:
            return None
        self._played_ns = playhead_ns
        if previous is None:
            return PlaybackFrame(playhead_ns, newest.heatmap, 1.0)
        fraction = (playhead_ns - previous.stamp_ns) / (newest.stamp_ns - previous.stamp_ns)
        heatmap = (1.0 - fraction) * previous.heatmap + fraction * newest.heatmap
        return PlaybackFrame(playhead_ns, heatmap, fraction)
