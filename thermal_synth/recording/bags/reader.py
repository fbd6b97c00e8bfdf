"""Reading: pairs back from a pair bag, intact or crashed, and what `thermal-synth bag info` shows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from thermal_msgs.image import to_rgb8
from thermal_msgs.topics import PAIRS_MASK, PAIRS_RGB, PAIRS_SESSION, PAIRS_THERMAL
from thermal_msgs.validation import ImageValidator, Rejection
from thermal_synth.recording.bags.labels import _NS, IMAGE_TYPE, STRING_TYPE, SessionLabels, _typestore
from thermal_synth.recording.bags.layout import BagLayout, inspect_bag
from thermal_synth.recording.bags.salvage import SalvagedMessage, _complete_pairs, _salvage_file, _SalvageLog

UNDECODABLE = "undecodable"
"""Why a message was skipped when it is no sensor_msgs/Image at all; the other reasons are
`thermal_msgs.validation.REASONS`."""
PAIR_LOOKAHEAD = 64
"""Stamps the reader keeps open while joining topics; a pair's messages are written back to back, so
anything older than this many stamps will never be completed."""

_MAX_LABEL_JSON_BYTES = 64 << 10
_MAX_PROBLEM_LINES = 50


@dataclass(frozen=True, eq=False)
class RecordedPair:
    """One recorded pair as plain arrays; `eq=False` because arrays have no single truth value."""

    stamp_ns: int
    thermal_centikelvin: np.ndarray
    """(H, W) uint16 as the sensor produced it."""
    rgb: np.ndarray
    """(H, W, 3) uint8 in RGB order, whatever encoding the camera sent."""
    person_mask: np.ndarray | None
    """(H, W) bool on the RGB grid, when the rig knew it."""


def _labels_from_message(message: SalvagedMessage, problems: list[str]) -> SessionLabels | None:
    if message.msgtype != STRING_TYPE:
        problems.append(f"{PAIRS_SESSION} has type {message.msgtype}, expected {STRING_TYPE}")
        return None
    try:
        if len(message.data) > _MAX_LABEL_JSON_BYTES:
            raise ValueError(f"{len(message.data)} bytes, more than {_MAX_LABEL_JSON_BYTES}")
        text = _typestore().deserialize_cdr(message.data, STRING_TYPE).data
        return SessionLabels.from_json(json.loads(text))
    except Exception as exc:  # a broken label message must not stop the pairs from being read
        problems.append(f"{PAIRS_SESSION}: unreadable session labels ({type(exc).__name__}: {exc})")
        return None


class _Pending:
    __slots__ = ("mask", "rgb", "thermal")

    def __init__(self) -> None:
        self.thermal: np.ndarray | None = None
        self.rgb: np.ndarray | None = None
        self.mask: np.ndarray | None = None


class _PairJoiner:
    """Joins thermal, RGB and mask by header stamp with a bounded look-ahead, in stamp order."""

    _SLOTS: Mapping[str, str] = {PAIRS_THERMAL: "thermal", PAIRS_RGB: "rgb", PAIRS_MASK: "mask"}

    def __init__(self, problems: _Problems) -> None:
        self._pending: dict[int, _Pending] = {}
        self._problems = problems
        self.unpaired: Counter[str] = Counter()

    def add(self, topic: str, stamp_ns: int, array: np.ndarray) -> Iterator[RecordedPair]:
        pending = self._pending.setdefault(stamp_ns, _Pending())
        slot = self._SLOTS[topic]
        if getattr(pending, slot) is not None:
            self._problems.add(f"{topic}: a second message with stamp {stamp_ns}; kept the first")
        else:
            setattr(pending, slot, array)
        # A later stamp means the recorder has moved on: older pairs will get no more messages.
        while self._pending:
            oldest = min(self._pending)
            head = self._pending[oldest]
            full = head.thermal is not None and head.rgb is not None and head.mask is not None
            settled = oldest < stamp_ns and head.thermal is not None and head.rgb is not None
            if not (full or settled or len(self._pending) > PAIR_LOOKAHEAD):
                break
            yield from self._emit(oldest)

    def finish(self) -> Iterator[RecordedPair]:
        while self._pending:
            yield from self._emit(min(self._pending))

    def _emit(self, stamp_ns: int) -> Iterator[RecordedPair]:
        pending = self._pending.pop(stamp_ns)
        if pending.thermal is None or pending.rgb is None:
            for name in ("thermal", "rgb", "mask"):
                self.unpaired[name] += getattr(pending, name) is not None
            return
        mask = pending.mask
        if mask is not None and mask.shape != pending.rgb.shape[:2]:
            self._problems.add(
                f"{PAIRS_MASK}: stamp {stamp_ns} is {mask.shape}, its RGB {pending.rgb.shape[:2]}; dropped"
            )
            mask = None
        yield RecordedPair(stamp_ns, pending.thermal, pending.rgb, mask)


class _Problems:
    """The reader's problem list, capped so a bag of garbage cannot fill memory with messages about it."""

    def __init__(self, target: list[str]) -> None:
        self.target = target
        self.suppressed = 0

    def add(self, text: str) -> None:
        if len(self.target) < _MAX_PROBLEM_LINES:
            self.target.append(text)
        else:
            self.suppressed += 1

    def close(self) -> None:
        if self.suppressed:
            self.target.append(f"... and {self.suppressed} more problems")


class _Skipped(ValueError):
    """One message the reader cannot use; `reason` is what the skipped counts are kept by."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _decode_image(message: SalvagedMessage, validator: ImageValidator) -> tuple[int, np.ndarray]:
    """(header stamp, array in the form RecordedPair holds). Raises _Skipped for anything unusable.

    `validator` is the one every live subscriber uses, so a bag written before the recorder checked
    its frames (or edited since) yields nothing a live node would have refused."""
    if message.msgtype != IMAGE_TYPE:
        raise _Skipped(UNDECODABLE, f"type {message.msgtype}, expected {IMAGE_TYPE}")
    try:
        msg = _typestore().deserialize_cdr(message.data, IMAGE_TYPE)
    except Exception as exc:  # the CDR deserialiser raises whatever the bytes lead it into
        raise _Skipped(UNDECODABLE, f"undecodable CDR ({type(exc).__name__}: {exc})") from None
    stamp = int(msg.header.stamp.sec) * _NS + int(msg.header.stamp.nanosec)
    image = validator.check(msg)
    if isinstance(image, Rejection):
        raise _Skipped(image.reason, image.detail)
    if message.topic == PAIRS_THERMAL:
        return stamp, np.array(image, dtype=np.uint16)
    if message.topic == PAIRS_RGB:
        return stamp, np.require(to_rgb8(image, msg.encoding), requirements=("C", "W", "O"))
    return stamp, image != 0


class PairBagReader:
    """Reads pairs back from a pair bag, intact or crashed.

    An intact bag is read through rosbags' indexed Reader. A bag a crash left behind (no or stale
    metadata.yaml, a file without its summary) is read through the salvage path instead of failing:
    `salvaged` is True and `problems` says what is missing; `thermal-synth bag repair` fixes it for good.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._layout = inspect_bag(self.path)
        self.salvaged = not self._layout.intact
        self._base_problems = list(self._layout.problems)
        if self.salvaged:
            self._base_problems.append(
                f"read by salvaging; run `thermal-synth bag repair {self.path}` to fix it"
            )
        self.problems: list[str] = list(self._base_problems)
        self.skipped: Counter[str] = Counter()
        """Image messages the last `pairs()` skipped, by reason."""
        self._topic_counts: dict[str, int] | None = None
        self.labels = self._read_labels()

    def _messages(self, topics: set[str], problems: list[str]) -> Iterator[SalvagedMessage]:
        if self.salvaged:
            log = _SalvageLog()
            try:
                for file in self._layout.files:
                    for message in _salvage_file(file, log):
                        if message.topic in topics:
                            yield message
            finally:
                problems.extend(log.problems)
            return
        try:
            with Reader(self.path) as reader:
                wanted = [c for c in reader.connections if c.topic in topics]
                if not wanted:
                    return
                for connection, timestamp, data in reader.messages(connections=wanted):
                    yield SalvagedMessage(connection.topic, connection.msgtype, timestamp, data)
        except Exception as exc:  # a damaged chunk behind an intact index ends the read, not the caller
            problems.append(f"stopped reading: {type(exc).__name__}: {exc}")

    def _read_labels(self) -> SessionLabels:
        problems: list[str] = []
        messages = self._messages({PAIRS_SESSION}, problems)
        try:
            for message in messages:
                labels = _labels_from_message(message, problems)
                if labels is not None:
                    return labels
        finally:
            messages.close()
        custom = self._layout.metadata.get("custom_data") if self._layout.metadata else None
        try:
            fallback = SessionLabels.from_custom_data(custom)
        except ValueError as exc:
            problems.append(f"metadata.yaml custom_data: unusable session labels ({exc})")
            fallback = None
        if fallback is None:
            problems.append("no session labels found")
        self._base_problems += problems
        self.problems = list(self._base_problems)
        return fallback or SessionLabels()

    def topic_counts(self) -> dict[str, int]:
        """Messages per topic: from metadata.yaml for an intact bag, by scanning for a salvaged one."""
        if self._topic_counts is None:
            counts: Counter[str] = Counter()
            if self.salvaged:
                for file in self._layout.files:
                    counts.update(m.topic for m in _salvage_file(file, _SalvageLog()))
            else:
                with Reader(self.path) as reader:
                    for name, info in reader.topics.items():
                        counts[name] += info.msgcount
            self._topic_counts = dict(counts)
        return dict(self._topic_counts)

    def pairs(self) -> Iterator[RecordedPair]:
        """Complete pairs in stamp order. Messages that do not decode or hold no valid image (as
        `thermal_msgs.validation` judges it, one size per topic) are skipped, counted in `skipped` by
        reason and described in `problems` (both reset at each call), as are thermal or RGB frames
        left unpaired."""
        self.problems = list(self._base_problems)
        self.skipped = Counter()
        problems = _Problems(self.problems)
        joiner = _PairJoiner(problems)
        validators = {topic: ImageValidator(topic) for topic in (PAIRS_THERMAL, PAIRS_RGB, PAIRS_MASK)}
        read_problems: list[str] = []
        for message in self._messages(set(validators), read_problems):
            try:
                stamp, array = _decode_image(message, validators[message.topic])
            except _Skipped as skipped:
                self.skipped[skipped.reason] += 1
                problems.add(
                    f"{message.topic}: skipped the message logged at {message.timestamp_ns} "
                    f"({skipped.reason}): {skipped}"
                )
                continue
            yield from joiner.add(message.topic, stamp, array)
        yield from joiner.finish()
        for problem in read_problems:
            problems.add(problem)
        names = {"thermal": "thermal frames", "rgb": "RGB frames", "mask": "masks"}
        for slot, count in joiner.unpaired.items():
            if count:
                problems.add(f"{names[slot]} without a partner of the same stamp: {count}")
        problems.close()


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str
    count: int
    serialization_format: str


@dataclass(frozen=True)
class BagInfo:
    """What `ros2 bag info` shows, plus the pair-specific parts; counts are zero for a damaged bag."""

    layout: BagLayout
    size_bytes: int
    start_ns: int
    duration_ns: int
    message_count: int
    topics: tuple[TopicSummary, ...]
    labels: SessionLabels | None
    complete_pairs: int


def bag_info(path: Path | str) -> BagInfo:
    layout = inspect_bag(path)
    size = sum(f.stat().st_size for f in layout.files)
    if not layout.intact or layout.metadata is None:
        return BagInfo(layout, size, 0, 0, 0, (), None, 0)
    with Reader(layout.path) as reader:
        topics = tuple(
            TopicSummary(
                name, info.msgtype or "(mixed)", info.msgcount, info.connections[0].ext.serialization_format
            )
            for name, info in reader.topics.items()
        )
        start, count = reader.start_time, reader.message_count
        # rosbags reports end and duration one nanosecond past the last message; ros2 bag info does not.
        duration = reader.end_time - 1 - start if count else 0
    labels = PairBagReader(layout.path).labels
    return BagInfo(layout, size, start, duration, count, topics, labels, _complete_pairs(layout.files))
