"""Replays recorded thermal frames as if a sensor produced them: rosbag2 recordings or .npy folders.

Bags and folders may come from strangers, so every frame is validated (encoding, shape, dtype)
and .npy files are loaded without pickle.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from thermal_driver.sources.base import SensorUnavailable, ThermalFrame
from thermal_msgs.image import ImageFormatError, image_to_array
from thermal_msgs.topics import THERMAL_RAW_ENCODINGS

PREFERRED_TOPICS = ("/thermal/image_raw", "/pairs/thermal")
"""The driver's raw stream first, then the recorder's paired thermal."""
IMAGE_TYPE = "sensor_msgs/msg/Image"


class ReplayFinished(Exception):
    """The recording ended and `loop` is off: the node stops publishing instead of erroring."""


class ReplaySource:
    """Frames from `path` (a rosbag2 directory or a folder of .npy frames), paced like the recording.

    Bag frames keep their recorded spacing (from header stamps); .npy folders play at `rate_hz`.
    """

    name = "replay"
    provides_rgb = False

    def __init__(
        self,
        path: str,
        rate_hz: float = 8.7,
        loop: bool = False,
        topic: str = "",
        *,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        self.path = Path(path).expanduser()
        self.nominal_rate_hz = rate_hz
        self.loop = loop
        self.topic = topic
        self._clock = clock
        self._sleep = sleep
        self._frames: Iterator[tuple[float, np.ndarray]] | None = None
        self._first: tuple[float, np.ndarray] | None = None
        self._played = 0
        self._passes = 0
        self._start: tuple[float, float] | None = None

    def open(self) -> None:
        if not self.path.exists():
            raise SensorUnavailable(f"replay path {self.path} does not exist")
        if not self._is_bag() and not any(self.path.glob("*.npy")):
            raise SensorUnavailable(
                f"replay path {self.path} is neither a rosbag2 directory (metadata.yaml) "
                "nor a folder of .npy frames"
            )
        self._frames = self._timeline()
        # Decoding the first frame now reports a wrong encoding or a pickled .npy at open, not later.
        self._first = next(self._frames, None)

    def read(self) -> ThermalFrame:
        if self._frames is None:
            raise RuntimeError("read() before open()")
        upcoming, self._first = self._first or next(self._frames, None), None
        if upcoming is None:
            raise ReplayFinished(f"replay of {self.path} finished after {self._played} frames")
        offset_s, frame = upcoming
        self._wait_until(offset_s)
        self._played += 1
        return ThermalFrame(centikelvin=frame)

    def close(self) -> None:
        self._frames = self._first = None
        self._start = None

    def diagnostics(self) -> dict[str, str]:
        return {
            "replay_path": str(self.path),
            "frames_played": str(self._played),
            "passes": str(self._passes),
        }

    def _is_bag(self) -> bool:
        return (self.path / "metadata.yaml").is_file() or self.path.suffix in (".mcap", ".db3")

    def _timeline(self) -> Iterator[tuple[float, np.ndarray]]:
        """(seconds since the start of the whole replay, frame) forever when looping, else once."""
        elapsed = 0.0
        while True:
            self._passes += 1
            pass_offset = elapsed
            frames = self._bag_frames() if self._is_bag() else self._npy_frames()
            frames_this_pass = 0
            for offset_s, frame in frames:
                frames_this_pass += 1
                elapsed = pass_offset + offset_s
                yield elapsed, frame
            if not self.loop:
                return
            if not frames_this_pass:
                # Looping over nothing would spin forever inside read().
                raise SensorUnavailable(f"replay {self.path} has no thermal frames to loop over")
            elapsed += 1.0 / self.nominal_rate_hz

    def _wait_until(self, offset_s: float) -> None:
        """Sleep until the frame's recorded time; re-anchor after a stall instead of bursting to catch up."""
        now = self._clock()
        if self._start is None or now - self._due(offset_s) > 1.0:
            self._start = (now, offset_s)
        delay = self._due(offset_s) - now
        if delay > 0:
            self._sleep(delay)

    def _due(self, offset_s: float) -> float:
        assert self._start is not None
        wall_start, offset_start = self._start
        return wall_start + offset_s - offset_start

    def _reader(self) -> closing[AnyReader]:
        """An already opened reader (so open errors become SensorUnavailable), closed by `with`."""
        try:
            reader = AnyReader([self.path])
            reader.open()
        except Exception as error:
            raise SensorUnavailable(f"cannot read rosbag2 {self.path}: {error}") from error
        return closing(reader)

    def _select_connections(self, reader: AnyReader) -> list:
        images = [c for c in reader.connections if c.msgtype == IMAGE_TYPE]
        wanted = [self.topic] if self.topic else PREFERRED_TOPICS
        for topic in wanted:
            chosen = [c for c in images if c.topic == topic]
            if chosen:
                return chosen
        found = sorted({c.topic for c in images}) or "none"
        raise SensorUnavailable(f"bag {self.path} has no thermal topic {list(wanted)}; image topics: {found}")

    def _bag_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        with self._reader() as reader:
            first_stamp_ns: int | None = None
            for connection, _, rawdata in reader.messages(connections=self._select_connections(reader)):
                msg = reader.deserialize(rawdata, connection.msgtype)
                stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                first_stamp_ns = stamp_ns if first_stamp_ns is None else first_stamp_ns
                yield (stamp_ns - first_stamp_ns) / 1e9, self._validated_bag_frame(msg)

    def _validated_bag_frame(self, msg) -> np.ndarray:
        if msg.encoding not in THERMAL_RAW_ENCODINGS:
            raise SensorUnavailable(
                f"bag {self.path}: thermal frames must be {' or '.join(THERMAL_RAW_ENCODINGS)} centi-Kelvin, "
                f"got encoding {msg.encoding!r}"
            )
        try:
            return np.array(image_to_array(msg), dtype=np.uint16)
        except ImageFormatError as error:
            raise SensorUnavailable(f"bag {self.path}: malformed thermal frame: {error}") from error

    def _npy_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        period_s = 1.0 / self.nominal_rate_hz
        for index, file in enumerate(sorted(self.path.glob("*.npy"))):
            yield index * period_s, self._load_npy(file)

    @staticmethod
    def _load_npy(file: Path) -> np.ndarray:
        try:
            frame = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise SensorUnavailable(f"{file}: not a plain numpy array ({error})") from error
        frame = frame.squeeze()
        if frame.dtype != np.uint16 or frame.ndim != 2:
            raise SensorUnavailable(
                f"{file}: expected a 2-D uint16 centi-Kelvin frame, got {frame.dtype} of shape {frame.shape}"
            )
        return frame
