"""One recording in progress: pair the streams, queue the pairs, write them on a thread.

The executor thread only pairs (cheap); serialising and writing megabytes of RGB per pair happens
on the writer thread, so a slow disk never stalls the subscriptions. The queue between them is
bounded: when the disk cannot keep up, pairs are dropped and counted, never silently lost and
never allowed to grow memory without limit. The writer also flushes when no pair arrives for a
while, so a recorder killed during a pause still has everything on disk.

Nothing here imports ROS: messages are opaque, and the node passes in how to serialise a pair.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thermal_synth.recording.bags import BagOptions, BagSummary, BagWriteError, PairBagWriter, SessionLabels
from thermal_synth.recording.pairing import MatchedPair, PairingConfig, PairingCounts, PairMatcher

QUEUE_PAIRS = 64
"""About 7 s of pairs at 8.7 Hz: rides out a slow flush, bounded at ~60 MB of 480x640 RGB."""
MASK_HISTORY = 64
"""Masks share their RGB frame's stamp; a few seconds of them is enough to find any pair's."""
MASK_WAIT_S = 0.5
MASK_STREAM_TIMEOUT_S = 1.0
"""No mask for this long: the stream has stopped, and pairs no longer wait for one."""
"""Pairs recorded before the mask subscription matched have no mask; later ones wait this long."""

SerializePair = Callable[[MatchedPair[Any, Any], Any | None], tuple[bytes, bytes, bytes | None]]
"""(pair, mask or None) -> CDR of thermal, RGB and mask, all under the pair's stamp."""


@dataclass
class RecordingStats:
    pairing: PairingCounts = field(default_factory=PairingCounts)
    pairs_written: int = 0
    pairs_dropped: int = 0
    """Pairs the writer could not take in time (disk too slow): counted and warned about."""
    pairs_with_mask: int = 0
    bytes_written: int = 0
    error: str = ""


class Recording:
    """Create with the bag's path; feed stamped messages; `stop` closes the bag and returns its summary.

    Raises BagWriteError from the constructor when the bag cannot be created at all (the
    caller reports it); a write error later stops the recording, keeps what was flushed, and
    shows up in `stats.error`.
    """

    def __init__(
        self,
        path: Path,
        labels: SessionLabels,
        options: BagOptions,
        *,
        pairing: PairingConfig,
        serialize: SerializePair,
        on_error: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self.path = Path(path)
        self.stats = RecordingStats()
        self._matcher: PairMatcher[Any, Any] = PairMatcher(pairing)
        self.stats.pairing = self._matcher.counts
        self._serialize = serialize
        self._on_error = on_error
        self._masks: OrderedDict[int, Any] = OrderedDict()
        self._queue: queue.Queue[MatchedPair[Any, Any] | None] = queue.Queue(maxsize=QUEUE_PAIRS)
        self._lock = threading.Lock()
        self._mask_arrived = threading.Condition(self._lock)
        self._last_mask_s: float | None = None
        self._writer = PairBagWriter(self.path, labels, options)
        self._flush_interval_s = options.flush_interval_s
        self._summary: BagSummary | None = None
        self._thread = threading.Thread(target=self._write_loop, name="pair-writer", daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return self._thread.is_alive() and not self.stats.error

    def add_thermal(self, stamp_ns: int, message: Any) -> None:
        with self._lock:
            self._enqueue(self._matcher.add_thermal(stamp_ns, message))

    def add_rgb(self, stamp_ns: int, message: Any) -> None:
        with self._lock:
            self._enqueue(self._matcher.add_rgb(stamp_ns, message))

    def add_mask(self, stamp_ns: int, message: Any) -> None:
        with self._lock:
            self._masks[stamp_ns] = message
            while len(self._masks) > MASK_HISTORY:
                self._masks.popitem(last=False)
            self._last_mask_s = time.monotonic()
            self._mask_arrived.notify_all()

    def stop(self, timeout_s: float = 30.0) -> BagSummary | None:
        """Writes the pairs still waiting for an RGB frame, then closes the bag; None if closing failed."""
        with self._lock:
            if self._thread.is_alive():
                self._enqueue(self._matcher.finish())
                self._queue.put(None)
        self._thread.join(timeout_s)
        return self._summary

    @property
    def files(self) -> list[Path]:
        return list(self._writer.files)

    def _enqueue(self, pairs: list[MatchedPair[Any, Any]]) -> None:
        for pair in pairs:
            if self.stats.error:
                return
            try:
                self._queue.put_nowait(pair)
            except queue.Full:
                self.stats.pairs_dropped += 1

    def _write_loop(self) -> None:
        try:
            while True:
                try:
                    pair = self._queue.get(timeout=self._flush_interval_s)
                except queue.Empty:
                    self._writer.flush()
                    continue
                if pair is None:
                    break
                self._write(pair)
        except (BagWriteError, OSError) as error:
            self.stats.error = str(error)
            self._on_error(self.stats.error)
        finally:
            self._close()

    def _write(self, pair: MatchedPair[Any, Any]) -> None:
        with self._lock:
            # Once a mask stream exists, each RGB frame's mask is on its way: wait briefly for it
            # rather than write the pair without one because the mask callback ran late.
            if self._mask_stream_alive():
                self._mask_arrived.wait_for(lambda: self._mask_settled(pair.rgb_stamp_ns), MASK_WAIT_S)
            mask = self._masks.get(pair.rgb_stamp_ns)
        thermal, rgb, mask_cdr = self._serialize(pair, mask)
        self._writer.write_pair(pair.stamp_ns, thermal, rgb, mask_cdr)
        self.stats.pairs_written += 1
        self.stats.pairs_with_mask += mask_cdr is not None
        self.stats.bytes_written = self._writer.bytes_written

    def _mask_stream_alive(self) -> bool:
        return self._last_mask_s is not None and time.monotonic() - self._last_mask_s < MASK_STREAM_TIMEOUT_S

    def _mask_settled(self, rgb_stamp_ns: int) -> bool:
        """Masks arrive in stamp order: once a later one is here, this frame's is never coming."""
        return rgb_stamp_ns in self._masks or next(reversed(self._masks)) > rgb_stamp_ns

    def _close(self) -> None:
        """Closing after a write error still finalises what was flushed, so it reads without repair."""
        try:
            self._summary = self._writer.close()
        except (BagWriteError, OSError) as error:
            message = f"{error}; run `thermal-synth bag repair {self.path}` to recover what was written"
            self.stats.error = self.stats.error or message
            self._on_error(message)
