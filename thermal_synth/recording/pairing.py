"""Pairing thermal frames with the RGB frame taken at the same moment, by header stamp.

A thermal frame is decided only once the RGB stream has moved past `stamp + slop`: from then on
no RGB frame that could still arrive is closer, so the pair is the nearest one, not merely the
first one within slop (ROS 2's ApproximateTimeSynchronizer emits the first candidate it sees,
which at 30 Hz RGB can be 33 ms off when a 1 ms match was about to arrive). Each RGB frame is
used at most once, so two thermal frames never share an image.

Nothing here knows about ROS: items are opaque, so the recorder passes messages and the tests
pass strings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

Thermal = TypeVar("Thermal")
Rgb = TypeVar("Rgb")

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class MatchedPair(Generic[Thermal, Rgb]):
    stamp_ns: int
    """The thermal frame's stamp: the RGB frame is written under it, so a pair shares one stamp."""
    thermal: Thermal
    rgb: Rgb
    rgb_stamp_ns: int

    @property
    def skew_s(self) -> float:
        return (self.rgb_stamp_ns - self.stamp_ns) / NS_PER_S


@dataclass
class PairingCounts:
    thermal_frames: int = 0
    rgb_frames: int = 0
    pairs: int = 0
    thermal_unmatched: int = 0
    """Thermal frames with no RGB frame within slop: lost for training, so worth a warning."""
    rgb_unused: int = 0
    """RGB frames no thermal frame claimed; normal, RGB runs at about 3x the thermal rate."""
    max_skew_s: float = 0.0


@dataclass(frozen=True)
class PairingConfig:
    slop_s: float = 0.05
    max_pending_thermal: int = 32
    """Thermal frames waiting for RGB beyond this (RGB stalled) are decided with what is there."""
    rgb_history_s: float = 2.0
    """RGB frames older than the oldest undecided thermal frame by more than this are forgotten."""

    def __post_init__(self) -> None:
        if not 0.0 < self.slop_s <= 1.0:
            raise ValueError(f"slop_s must be in (0, 1] seconds, got {self.slop_s}")
        if self.max_pending_thermal < 1:
            raise ValueError(f"max_pending_thermal must be >= 1, got {self.max_pending_thermal}")


class PairMatcher(Generic[Thermal, Rgb]):
    """Feed both streams in arrival order; every call returns the pairs it could decide."""

    def __init__(self, config: PairingConfig = PairingConfig()) -> None:
        self.config = config
        self.counts = PairingCounts()
        self._slop_ns = round(config.slop_s * NS_PER_S)
        self._pending: deque[tuple[int, Thermal]] = deque()
        self._rgb: dict[int, Rgb] = {}
        self._newest_rgb_ns: int | None = None
        self._last_decided_ns: int | None = None

    def add_thermal(self, stamp_ns: int, thermal: Thermal) -> list[MatchedPair[Thermal, Rgb]]:
        self.counts.thermal_frames += 1
        self._pending.append((stamp_ns, thermal))
        return self._decide()

    def add_rgb(self, stamp_ns: int, rgb: Rgb) -> list[MatchedPair[Thermal, Rgb]]:
        self.counts.rgb_frames += 1
        if stamp_ns in self._rgb:
            self.counts.rgb_unused += 1
        self._rgb[stamp_ns] = rgb
        if self._newest_rgb_ns is None or stamp_ns > self._newest_rgb_ns:
            self._newest_rgb_ns = stamp_ns
        return self._decide()

    def finish(self) -> list[MatchedPair[Thermal, Rgb]]:
        """Decides every waiting thermal frame with the RGB frames seen so far (end of recording)."""
        pairs = [pair for pair in (self._decide_oldest() for _ in range(len(self._pending))) if pair]
        self.counts.rgb_unused += len(self._rgb)
        self._rgb.clear()
        return pairs

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _decide(self) -> list[MatchedPair[Thermal, Rgb]]:
        pairs = []
        while self._pending and (
            self._rgb_passed(self._pending[0][0]) or len(self._pending) > self.config.max_pending_thermal
        ):
            pair = self._decide_oldest()
            if pair is not None:
                pairs.append(pair)
        self._forget_old_rgb()
        return pairs

    def _rgb_passed(self, stamp_ns: int) -> bool:
        return self._newest_rgb_ns is not None and self._newest_rgb_ns > stamp_ns + self._slop_ns

    def _decide_oldest(self) -> MatchedPair[Thermal, Rgb] | None:
        stamp_ns, thermal = self._pending.popleft()
        self._last_decided_ns = stamp_ns
        candidates = [rgb_ns for rgb_ns in self._rgb if abs(rgb_ns - stamp_ns) <= self._slop_ns]
        if not candidates:
            self.counts.thermal_unmatched += 1
            return None
        rgb_ns = min(candidates, key=lambda candidate: (abs(candidate - stamp_ns), candidate))
        pair = MatchedPair(stamp_ns, thermal, self._rgb.pop(rgb_ns), rgb_ns)
        self.counts.pairs += 1
        self.counts.max_skew_s = max(self.counts.max_skew_s, abs(pair.skew_s))
        return pair

    def _forget_old_rgb(self) -> None:
        """RGB frames no waiting or future thermal frame can claim; bounded memory at 30 Hz."""
        if self._pending:
            horizon = self._pending[0][0] - self._slop_ns
        elif self._newest_rgb_ns is not None:
            horizon = self._newest_rgb_ns - round(self.config.rgb_history_s * NS_PER_S)
            if self._last_decided_ns is not None:
                horizon = max(horizon, self._last_decided_ns - self._slop_ns)
        else:
            return
        for rgb_ns in [stamp for stamp in self._rgb if stamp < horizon]:
            del self._rgb[rgb_ns]
            self.counts.rgb_unused += 1
