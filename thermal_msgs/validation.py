"""The one check every incoming image passes before a node paints, shows or records it.

Conversion (`thermal_msgs.image`) answers "what do these bytes mean"; validation answers "may this
subscriber use them": the encoding the topic carries (`topics.IMAGE_ENCODINGS`), pixels at all, rows
as long as their width, exactly the bytes the size promises, the size the stream has been sending and,
for float images, finite values. A 0x0 image or a 12x0 frame converts without error, which is how such
frames once reached a training bag; here they are refused.

Every refusal is a `Rejection` with a short machine-readable `reason` (one of `REASONS`), so nodes
count them per reason in /diagnostics (`rejected.<reason>`) and the dataset builder in its report,
and a human-readable `detail` for the log. Nothing here imports ROS: the bag reader runs the same
check on rosbags messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from thermal_msgs import topics
from thermal_msgs.image import ENCODINGS, image_to_array

ENCODING: Final = "encoding"
"""Not an encoding this topic carries (unknown ones included), a byte order that is neither 0 nor 1,
or a width the encoding cannot hold (yuv422_yuy2 pairs pixels)."""
EMPTY: Final = "empty"
"""No pixels: a zero height or width, or no data."""
STEP: Final = "step"
"""Rows shorter than width x bytes per pixel, or not a whole number of samples."""
DATA_LENGTH: Final = "data_length"
"""More or fewer data bytes than height x step."""
SIZE_CHANGED: Final = "size_changed"
"""Another height x width than the stream has been sending."""
NON_FINITE: Final = "non_finite"
"""NaN or Inf in a float image."""
REASONS: Final = (ENCODING, EMPTY, STEP, DATA_LENGTH, SIZE_CHANGED, NON_FINITE)

FOLLOW_AFTER_FRAMES: Final = 3
"""Consecutive frames of one new size after which a stream that may change size (a restarted driver,
a live `output_size`) is followed. One odd frame is dropped; a new size that lasts costs two frames."""


@dataclass(frozen=True)
class Rejection:
    """Why an image was refused: `reason` for counters, `detail` for people."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def validate_image(msg: Any, topic: str, encodings: Collection[str] | None = None) -> np.ndarray | Rejection:
    """The image as `image_to_array` views it, or why `topic`'s subscriber must not use it.

    `encodings` defaults to what `topics.IMAGE_ENCODINGS` allows on `topic`; a participant's copy of a
    topic passes its topic's. Only the Image attributes are read (rclpy or rosbags messages), and
    nothing is copied: the fields are checked before a single pixel is looked at.
    """
    accepted = topics.IMAGE_ENCODINGS[topic] if encodings is None else encodings
    if msg.encoding not in accepted:
        return Rejection(ENCODING, f"{topic} must be {' or '.join(accepted)}, got {msg.encoding!r}")
    if msg.is_bigendian not in (0, 1):
        return Rejection(ENCODING, f"is_bigendian must be 0 or 1, got {msg.is_bigendian!r}")
    spec = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data_bytes = np.frombuffer(msg.data, dtype=np.uint8).size
    if height <= 0 or width <= 0 or not data_bytes:
        return Rejection(EMPTY, f"the image is empty: {height}x{width} with {data_bytes} data bytes")
    if spec.name == "yuv422_yuy2" and width % 2:
        return Rejection(ENCODING, f"yuv422_yuy2 pairs pixels, so the width must be even, got {width}")
    row_bytes = width * spec.bytes_per_pixel
    if step < row_bytes or step % spec.dtype.itemsize:
        return Rejection(
            STEP,
            f"step {step} for {width} {msg.encoding} pixels a row: at least {row_bytes}, "
            f"a multiple of {spec.dtype.itemsize}",
        )
    if data_bytes != height * step:
        expected = f"height x step = {height} x {step} = {height * step}"
        return Rejection(DATA_LENGTH, f"{data_bytes} data bytes, expected {expected}")
    array = image_to_array(msg)
    if spec.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            return Rejection(NON_FINITE, f"NaN or Inf values in {bad} of {array.size} pixels")
    return array


class ImageValidator:
    """One subscriber's check: `validate_image`, then the size its stream has been sending.

    The first accepted image sets the size. With `follow_after=None` it stays for good (a recording keeps
    one size per topic: start a new recording for a new camera mode); with a number, that many
    consecutive valid images of one new size move it, so a restarted driver or a live output size is
    followed while a stray frame is not.
    """

    def __init__(
        self, topic: str, encodings: Collection[str] | None = None, *, follow_after: int | None = None
    ) -> None:
        if follow_after is not None and follow_after < 1:
            raise ValueError(f"follow_after must be >= 1 or None, got {follow_after}")
        self.topic = topic
        self.encodings = tuple(topics.IMAGE_ENCODINGS[topic] if encodings is None else encodings)
        self.follow_after = follow_after
        self.size: tuple[int, int] | None = None
        self._candidate: tuple[int, int] | None = None
        self._candidate_frames = 0

    def check(self, msg: Any) -> np.ndarray | Rejection:
        result = validate_image(msg, self.topic, self.encodings)
        if isinstance(result, Rejection):
            return result
        size = (int(msg.height), int(msg.width))
        if self.size is None or size == self.size:
            self.size, self._candidate, self._candidate_frames = size, None, 0
            return result
        if self.follow_after is not None:
            if size == self._candidate:
                self._candidate_frames += 1
            else:
                self._candidate, self._candidate_frames = size, 1
            if self._candidate_frames >= self.follow_after:
                self.size, self._candidate, self._candidate_frames = size, None, 0
                return result
        return Rejection(SIZE_CHANGED, self._size_changed_detail(size))

    def _size_changed_detail(self, size: tuple[int, int]) -> str:
        assert self.size is not None
        detail = f"{size[0]}x{size[1]}, but {self.topic} has been sending {self.size[0]}x{self.size[1]}"
        if self.follow_after is None:
            return f"{detail}; start a new recording for the new size"
        return f"{detail}; a new size is followed after {self.follow_after} frames in a row"


class RejectionTally:
    """A node's refused images per reason, and a log that stays readable under a flood of them.

    `add` says whether the rejection should be logged: the first of each reason, then at most one per
    reason every `log_period_s`, so a camera sending nothing but 0x0 frames neither fills the disk
    nor hides a second, different problem behind its own messages.
    """

    def __init__(
        self,
        reasons: Sequence[str] = REASONS,
        *,
        log_period_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts = dict.fromkeys(reasons, 0)
        self.log_period_s = log_period_s
        self._clock = clock
        self._logged_at: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, rejection: Rejection) -> bool:
        self.counts[rejection.reason] = self.counts.get(rejection.reason, 0) + 1
        now = self._clock()
        last = self._logged_at.get(rejection.reason)
        if last is not None and now - last < self.log_period_s:
            return False
        self._logged_at[rejection.reason] = now
        return True

    def log_line(self, topic: str, rejection: Rejection) -> str:
        """What a node logs for a refused image: the topic, the problem and its reason's count."""
        count = self.counts[rejection.reason]
        return f"dropping {topic} frame: {rejection} ({count} rejected for {rejection.reason} so far)"

    def diagnostic_values(self) -> dict[str, str]:
        """`rejected.<reason>` for every reason, zeros included, so a monitor can plot each one."""
        return {f"rejected.{reason}": str(count) for reason, count in self.counts.items()}
