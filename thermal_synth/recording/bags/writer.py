"""Writing: pairs recorded into a new bag directory.

Recordings run for hours on a rig that may lose power or be killed, so the layout is built for that:

* Each storage file is written by its own rosbags `Writer` inside `<bag>/.recording/<stem>/` and moved
  up into the bag directory only once it is complete. A file in the bag directory is therefore always
  finished; the one under `.recording/` is the one a crash interrupted.
* `metadata.yaml` lists the finished files only, and is rewritten atomically after every split.
* `flush()` pushes everything written so far into the file at least once per `flush_interval_s`,
  so SIGKILL loses at most that much. `repair_bag` then salvages every complete record.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rosbags.rosbag2 import Reader, WriterError

from thermal_msgs.topics import PAIRS_MASK, PAIRS_RGB, PAIRS_SESSION, PAIRS_THERMAL
from thermal_synth.common.json_files import write_text_atomic
from thermal_synth.recording.bags.labels import (
    _NS,
    DEFAULT_OPTIONS,
    IMAGE_TYPE,
    STRING_TYPE,
    BagOptions,
    BagRepairError,
    BagWriteError,
    SessionLabels,
    _header_stamp_ns,
    _stamp,
    _string_cdr,
)
from thermal_synth.recording.bags.layout import inspect_bag
from thermal_synth.recording.bags.metadata import STAGING_DIR, _FilePart, _metadata_yaml
from thermal_synth.recording.bags.repair import repair_bag
from thermal_synth.recording.bags.storage import _StorageFileWriter, _write_failure

if TYPE_CHECKING:
    from types import TracebackType

_MB = 1_000_000


@dataclass(frozen=True)
class BagSummary:
    path: Path
    storage: str
    files: tuple[Path, ...]
    pairs: int
    duration_s: float
    labels: SessionLabels
    topic_counts: dict[str, int]


class PairBagWriter:
    """Records pairs into a new bag directory; see the module docstring for the on-disk layout.

    Thread-safe: the recorder may call `flush()` from a timer while pairs arrive on another thread.
    After any write error the writer is dead: every further write or flush raises BagWriteError, so a
    recorder that missed the first one cannot carry on believing it is recording.
    """

    def __init__(
        self,
        path: Path | str,
        labels: SessionLabels,
        options: BagOptions = DEFAULT_OPTIONS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(labels, SessionLabels):
            raise TypeError(f"labels must be SessionLabels, got {type(labels).__name__}")
        if not isinstance(options, BagOptions):
            raise TypeError(f"options must be BagOptions, got {type(options).__name__}")
        self._path = Path(path)
        self._labels = labels
        self._options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._start_ns = time.time_ns()
        self._create_directories()
        self._parts: list[_FilePart] = []
        self._split: _StorageFileWriter | None = None
        self._pairs = 0
        self._bytes = 0
        self._topic_counts: Counter[str] = Counter()
        self._stamps: tuple[int, int] | None = None
        self._last_flush = clock()
        self._failure: str | None = None
        self._summary: BagSummary | None = None

    def _create_directories(self) -> None:
        path = self._path
        if path.exists() or path.is_symlink():
            raise BagWriteError(f"{path}: already exists; a pair bag is never overwritten or appended to")
        parent = path.absolute().parent
        try:
            path.mkdir()
            (path / STAGING_DIR).mkdir()
        except FileExistsError:
            raise BagWriteError(
                f"{path}: already exists; a pair bag is never overwritten or appended to"
            ) from None
        except FileNotFoundError:
            raise BagWriteError(f"{path}: cannot create the bag, directory {parent} does not exist") from None
        except NotADirectoryError:
            raise BagWriteError(f"{path}: cannot create the bag, {parent} is not a directory") from None
        except OSError as exc:
            with suppress(OSError):
                path.rmdir()
            raise BagWriteError(f"{path}: cannot create the bag directory: {_write_failure(exc)}") from None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def pairs_written(self) -> int:
        return self._pairs

    @property
    def bytes_written(self) -> int:
        """Serialised message bytes handed to storage (labels included), not counting file overhead."""
        return self._bytes

    @property
    def files(self) -> list[Path]:
        """Where the storage files are now: finished ones in the bag, the open one under .recording/."""
        finished = [self._path / part.name for part in self._parts]
        return finished if self._split is None else [*finished, self._split.file]

    def write_pair(
        self, stamp_ns: int, thermal_cdr: bytes, rgb_cdr: bytes, mask_cdr: bytes | None = None
    ) -> None:
        """Writes one pair, every topic at log time `stamp_ns`, which must be the messages' header stamp:
        readers join the topics on it."""
        messages = [(PAIRS_THERMAL, thermal_cdr), (PAIRS_RGB, rgb_cdr)]
        if mask_cdr is not None:
            messages.append((PAIRS_MASK, mask_cdr))
        _stamp(stamp_ns)
        for topic, data in messages:
            if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
                raise ValueError(f"{topic}: expected non-empty serialised bytes, got {type(data).__name__}")
            header_stamp = _header_stamp_ns(data)
            if header_stamp != stamp_ns:
                raise ValueError(
                    f"{topic}: header stamp {header_stamp} differs from the pair's stamp {stamp_ns}"
                )
        with self._lock:
            self._check_usable()
            try:
                split = self._split_for(stamp_ns)
                for topic, data in messages:
                    split.write(topic, IMAGE_TYPE, stamp_ns, data)
                    self._count(topic, stamp_ns, len(data))
                self._pairs += 1
                now = self._clock()
                if now - self._last_flush >= self._options.flush_interval_s:
                    split.flush()
                    self._last_flush = now
            except (OSError, sqlite3.Error, WriterError) as exc:
                raise self._fail(f"writing the pair at stamp {stamp_ns}", exc) from exc

    def flush(self) -> None:
        """Makes everything written so far survive a crash of this process (and a power cut)."""
        with self._lock:
            self._check_usable()
            if self._split is None:
                return
            try:
                self._split.flush()
            except (OSError, sqlite3.Error) as exc:
                raise self._fail("flushing", exc) from exc
            self._last_flush = self._clock()

    def close(self) -> BagSummary:
        """Finishes the last storage file and metadata.yaml. Idempotent: later calls return the summary.

        After a write error it salvages what was flushed into a readable bag instead (as `repair_bag`
        does, verified before anything is replaced); BagWriteError only if that fails too, typically
        because the disk is still full.
        """
        with self._lock:
            if self._summary is not None:
                return self._summary
            if self._failure is not None:
                self._summary = self._salvage_after_failure()
                return self._summary
            try:
                if self._split is None and not self._parts:
                    # An empty session still yields a readable bag that carries its labels.
                    self._split = self._start_split(self._start_ns)
                if self._split is not None:
                    self._finish_split()
            except (OSError, sqlite3.Error, WriterError) as exc:
                raise self._fail("finishing the bag", exc) from exc
            with suppress(OSError):  # only ever empty here; a leftover costs nothing and readers ignore it
                (self._path / STAGING_DIR).rmdir()
            first, last = self._stamps or (0, 0)
            self._summary = BagSummary(
                path=self._path,
                storage=self._options.storage,
                files=tuple(self._path / part.name for part in self._parts),
                pairs=self._pairs,
                duration_s=(last - first) / _NS,
                labels=self._labels,
                topic_counts=dict(self._topic_counts),
            )
            return self._summary

    def _salvage_after_failure(self) -> BagSummary:
        try:
            report = repair_bag(self._path, backup=False)
        except (BagRepairError, OSError, sqlite3.Error) as exc:
            raise BagWriteError(
                f"{self._path}: after a write error, salvaging what was flushed failed too ({exc}); "
                f"run `thermal-synth bag repair {self._path}` once the disk has room"
            ) from exc
        with Reader(self._path) as reader:
            counts = {name: info.msgcount for name, info in reader.topics.items()}
            duration_ns = reader.end_time - 1 - reader.start_time if reader.message_count else 0
        return BagSummary(
            path=self._path,
            storage=self._options.storage,
            files=tuple(inspect_bag(self._path).files),
            pairs=report.recovered_pairs,
            duration_s=duration_ns / _NS,
            labels=self._labels,
            topic_counts=counts,
        )

    def __enter__(self) -> PairBagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # Finish what was recorded even when the recorder is dying (Ctrl-C, an exception in a callback);
        # if that fails too, the original exception is the one worth seeing.
        with suppress(BagWriteError):
            self.close()

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise BagWriteError(self._failure)
        if self._summary is not None:
            raise BagWriteError(f"{self._path}: the bag is closed")

    def _fail(self, doing: str, exc: BaseException) -> BagWriteError:
        self._failure = (
            f"{self._path}: {doing} failed: {_write_failure(exc)}; what was flushed before is kept, "
            f"run `thermal-synth bag repair {self._path}` to make it readable"
        )
        if self._split is not None:
            self._split.abort()
        return BagWriteError(self._failure)

    def _split_for(self, stamp_ns: int) -> _StorageFileWriter:
        split, options = self._split, self._options
        if split is not None and split.first_stamp_ns is not None:
            too_big = options.max_bag_size_mb and split.payload_bytes >= options.max_bag_size_mb * _MB
            too_long = (
                options.max_bag_duration_s
                and stamp_ns - split.first_stamp_ns >= options.max_bag_duration_s * _NS
            )
            if too_big or too_long:
                self._finish_split()
        if self._split is None:
            self._split = self._start_split(stamp_ns)
        return self._split

    def _start_split(self, stamp_ns: int) -> _StorageFileWriter:
        """A new storage file that starts with the labels, so every split (and whatever a crash leaves of
        it) says whom it shows."""
        stem = f"{self._path.name}_{len(self._parts)}"
        split = _StorageFileWriter(self._path, stem, self._options.storage, self._labels.custom_data())
        self._split = split
        session = _string_cdr(json.dumps(self._labels.to_json(), ensure_ascii=False, sort_keys=True))
        split.write(PAIRS_SESSION, STRING_TYPE, stamp_ns, session)
        self._count(PAIRS_SESSION, stamp_ns, len(session))
        return split

    def _finish_split(self) -> None:
        split, self._split = self._split, None
        assert split is not None
        try:
            self._parts.append(split.finish(self._path))
        except BaseException:
            self._split = split
            raise
        write_text_atomic(
            self._path / "metadata.yaml",
            _metadata_yaml(self._options.storage, self._parts, self._labels.custom_data()),
        )

    def _count(self, topic: str, stamp_ns: int, size: int) -> None:
        self._topic_counts[topic] += 1
        self._bytes += size
        first, last = self._stamps or (stamp_ns, stamp_ns)
        self._stamps = (min(first, stamp_ns), max(last, stamp_ns))
