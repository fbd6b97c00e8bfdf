"""Salvage: every complete record of a storage file, without trusting its index or metadata, and
the log times of a file read from its indexes where it has them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from thermal_msgs.topics import PAIRS_RGB, PAIRS_THERMAL
from thermal_synth.recording.bags.layout import inspect_bag

_MAX_CHUNK_BYTES = 1 << 30
"""Our chunks hold about a second of pairs (a few MB); a bigger claim is damage, not data."""


class SalvagedMessage(NamedTuple):
    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


@dataclass
class _SalvageLog:
    problems: list[str] = field(default_factory=list)
    dropped_bytes: int = 0


class _Damaged(ValueError):
    """A record that cannot be trusted: fields past its end, a bad checksum, an encoding we do not read."""


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06
_OP_MESSAGE_INDEX, _OP_DATA_END = 0x07, 0x0F
_OP_LAST_KNOWN = 0x0F
"""Opcodes above this and below 0x80 are reserved by the MCAP spec: in our files they mean garbage."""
_RECORD_HEAD = struct.Struct("<BQ")
_MESSAGE_HEAD = struct.Struct("<HIQQ")
_CHUNK_HEAD = struct.Struct("<QQQI")


class _Fields:
    """Sequential reads of MCAP primitives from one record body, refusing to read past its end."""

    def __init__(self, body: memoryview) -> None:
        self.body = body
        self.pos = 0

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        if self.pos + layout.size > len(self.body):
            raise _Damaged("record shorter than its fields")
        values = layout.unpack_from(self.body, self.pos)
        self.pos += layout.size
        return values

    def blob(self, length_layout: struct.Struct) -> memoryview:
        (length,) = self.unpack(length_layout)
        if self.pos + length > len(self.body):
            raise _Damaged("field longer than its record")
        value = self.body[self.pos : self.pos + length]
        self.pos += length
        return value

    def text(self) -> str:
        try:
            return str(self.blob(_U32), "utf-8")
        except UnicodeDecodeError:
            raise _Damaged("string is not UTF-8") from None

    def rest(self) -> memoryview:
        return self.body[self.pos :]


_U16 = struct.Struct("<H")
_U16_PAIR = struct.Struct("<HH")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _inner_records(records: memoryview) -> Iterator[tuple[int, memoryview]]:
    pos = 0
    while pos < len(records):
        if pos + _RECORD_HEAD.size > len(records):
            raise _Damaged("record header cut short")
        opcode, length = _RECORD_HEAD.unpack_from(records, pos)
        pos += _RECORD_HEAD.size
        if length > len(records) - pos:
            raise _Damaged(f"record of {length} bytes runs past the end")
        yield opcode, records[pos : pos + length]
        pos += length


class _McapSalvager:
    """Walks an MCAP record stream from the magic, keeping every complete record: a file without its
    summary and footer (the recorder died) or cut anywhere (disk full, copied half-way) loses only the
    record it ends in."""

    def __init__(self, file: Path, log: _SalvageLog) -> None:
        self.file = file
        self.log = log
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, str]] = {}
        self.unknown_channels = 0

    def messages(self) -> Iterator[SalvagedMessage]:
        size = self.file.stat().st_size
        with self.file.open("rb") as stream:
            if stream.read(len(_MCAP_MAGIC)) != _MCAP_MAGIC:
                self._problem("is not an MCAP file (bad magic)", size)
                return
            good_end = stream.tell()
            while True:
                head = stream.read(_RECORD_HEAD.size)
                if not head:
                    break
                if len(head) < _RECORD_HEAD.size:
                    self._problem(f"is cut off at byte {good_end} of {size}", size - good_end)
                    break
                opcode, length = _RECORD_HEAD.unpack(head)
                if opcode in (_OP_DATA_END, _OP_FOOTER):
                    good_end = size
                    break
                if opcode == 0 or _OP_LAST_KNOWN < opcode < 0x80 or length > size - stream.tell():
                    self._problem(f"is cut off or damaged at byte {good_end} of {size}", size - good_end)
                    break
                if length > _MAX_CHUNK_BYTES:
                    self._problem(
                        f"claims a {length}-byte record at byte {good_end}; damaged", size - good_end
                    )
                    break
                if opcode in (_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK):
                    body = stream.read(length)
                    yield from self._record(opcode, memoryview(body), good_end)
                else:
                    stream.seek(length, os.SEEK_CUR)
                good_end = stream.tell()
        if self.unknown_channels:
            self.log.problems.append(
                f"{self.file.name}: skipped {self.unknown_channels} messages on channels it never defines"
            )

    def _problem(self, what: str, dropped: int) -> None:
        self.log.problems.append(f"{self.file.name}: {what}")
        self.log.dropped_bytes += dropped

    def _record(self, opcode: int, body: memoryview, offset: int) -> Iterator[SalvagedMessage]:
        try:
            if opcode == _OP_CHUNK:
                yield from self._chunk(body)
            else:
                message = self._plain_record(opcode, body)
                if message is not None:
                    yield message
        except _Damaged as exc:
            self.log.problems.append(f"{self.file.name}: record at byte {offset} is damaged ({exc}); skipped")

    def _chunk(self, body: memoryview) -> Iterator[SalvagedMessage]:
        fields = _Fields(body)
        _start, _end, uncompressed_size, crc = fields.unpack(_CHUNK_HEAD)
        compression = fields.text()
        records = fields.blob(_U64)
        if compression:
            raise _Damaged(f"{compression}-compressed chunks are not salvaged")
        if len(records) != uncompressed_size:
            raise _Damaged(f"chunk holds {len(records)} bytes but claims {uncompressed_size}")
        if crc and zlib.crc32(records) != crc:
            raise _Damaged("chunk checksum mismatch")
        for opcode, inner in _inner_records(records):
            message = self._plain_record(opcode, inner)
            if message is not None:
                yield message

    def _plain_record(self, opcode: int, body: memoryview) -> SalvagedMessage | None:
        fields = _Fields(body)
        if opcode == _OP_SCHEMA:
            (schema_id,) = fields.unpack(_U16)
            self.schemas[schema_id] = fields.text()
        elif opcode == _OP_CHANNEL:
            channel_id, schema_id = fields.unpack(_U16_PAIR)
            topic, encoding = fields.text(), fields.text()
            if encoding == "cdr" and schema_id in self.schemas:
                self.channels[channel_id] = (topic, self.schemas[schema_id])
        elif opcode == _OP_MESSAGE:
            channel_id, _sequence, log_time, _publish_time = fields.unpack(_MESSAGE_HEAD)
            channel = self.channels.get(channel_id)
            if channel is None:
                self.unknown_channels += 1
                return None
            return SalvagedMessage(channel[0], channel[1], log_time, bytes(fields.rest()))
        return None


@contextmanager
def _sqlite_snapshot(file: Path, scratch: Path | None) -> Iterator[sqlite3.Connection]:
    """A connection that sees exactly the committed transactions of `file`, which stays untouched.

    A writer that died mid-transaction leaves a hot journal (or a WAL) beside the database, and SQLite
    refuses read-only connections until someone rolls it back. That someone works on a copy, so a bag
    is never modified by reading it.
    """
    sidecars = [file.with_name(file.name + s) for s in ("-journal", "-wal")]
    if not any(s.exists() for s in sidecars):
        connection = sqlite3.connect(f"{file.absolute().as_uri()}?mode=ro", uri=True)
        try:
            yield connection
        finally:
            connection.close()
        return
    with tempfile.TemporaryDirectory(prefix=".salvage-", dir=scratch) as tmp:
        for source in (file, *sidecars):
            if source.exists():
                shutil.copyfile(source, Path(tmp) / source.name)
        connection = sqlite3.connect(Path(tmp) / file.name)
        try:
            yield connection
        finally:
            connection.close()


def _salvage_sqlite3(file: Path, log: _SalvageLog, scratch: Path | None) -> Iterator[SalvagedMessage]:
    try:
        with _sqlite_snapshot(file, scratch) as db:
            topics = {}
            for topic_id, name, msgtype, serialization in db.execute(
                "SELECT id, name, type, serialization_format FROM topics"
            ):
                if isinstance(name, str) and isinstance(msgtype, str) and serialization == "cdr":
                    topics[topic_id] = (name, msgtype)
            skipped = 0
            for topic_id, timestamp, data in db.execute(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY id"
            ):
                if topic_id not in topics or not isinstance(timestamp, int) or not isinstance(data, bytes):
                    skipped += 1
                    continue
                yield SalvagedMessage(*topics[topic_id], timestamp, data)
            if skipped:
                log.problems.append(
                    f"{file.name}: skipped {skipped} messages with unknown topics or bad fields"
                )
    except sqlite3.Error as exc:
        log.problems.append(f"{file.name}: SQLite stopped reading it: {exc}")


def _salvage_file(file: Path, log: _SalvageLog, scratch: Path | None = None) -> Iterator[SalvagedMessage]:
    if file.suffix == ".mcap":
        yield from _McapSalvager(file, log).messages()
    else:
        yield from _salvage_sqlite3(file, log, scratch)


def salvage_messages(path: Path | str, problems: list[str] | None = None) -> Iterator[SalvagedMessage]:
    """Every complete message of a bag directory (all its storage files, listed or not, finished or
    interrupted) or of one storage file, in recording order, without trusting any index or metadata.
    What had to be dropped is described in `problems` when given."""
    path = Path(path)
    files = [path] if path.is_file() else list(inspect_bag(path).files)
    log = _SalvageLog()
    try:
        for file in files:
            yield from _salvage_file(file, log)
    finally:
        if problems is not None:
            problems.extend(log.problems)


def _mcap_index_times(file: Path, topics: set[str]) -> dict[str, list[int]] | None:
    """Log times per topic from a finished MCAP's message indexes, seeking past every chunk, so counting
    pairs in a multi-GB bag reads kilobytes. None when the file has no message indexes."""
    channels: dict[int, str] = {}
    times: dict[int, list[int]] = {}
    size = file.stat().st_size
    with file.open("rb") as stream:
        if stream.read(len(_MCAP_MAGIC)) != _MCAP_MAGIC:
            return None
        while len(head := stream.read(_RECORD_HEAD.size)) == _RECORD_HEAD.size:
            opcode, length = _RECORD_HEAD.unpack(head)
            if opcode == _OP_FOOTER or length > min(size - stream.tell(), _MAX_CHUNK_BYTES):
                break
            if opcode not in (_OP_CHANNEL, _OP_MESSAGE_INDEX):
                stream.seek(length, os.SEEK_CUR)
                continue
            fields = _Fields(memoryview(stream.read(length)))
            if opcode == _OP_CHANNEL:
                channel_id, _schema = fields.unpack(_U16_PAIR)
                channels[channel_id] = fields.text()
            else:
                (channel_id,) = fields.unpack(_U16)
                entries = fields.blob(_U32)
                if len(entries) % 16:
                    raise _Damaged("message index entries are 16 bytes each")
                times.setdefault(channel_id, []).extend(t for t, _ in struct.iter_unpack("<QQ", entries))
    if not times:
        return None
    found: dict[str, list[int]] = {}
    for channel_id, stamps in times.items():
        if channels.get(channel_id) in topics:
            found.setdefault(channels[channel_id], []).extend(stamps)
    return found


def _sqlite_log_times(file: Path, topics: set[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    with _sqlite_snapshot(file, None) as db:
        rows = db.execute(
            "SELECT topics.name, messages.timestamp FROM messages JOIN topics ON topic_id = topics.id"
        )
        for name, timestamp in rows:
            if name in topics:
                found.setdefault(name, []).append(timestamp)
    return found


def _log_times(file: Path, topics: set[str]) -> dict[str, list[int]]:
    """Log times per topic, from indexes where the file has them rather than by reading every message."""
    if file.suffix == ".db3":
        with suppress(sqlite3.Error):
            return _sqlite_log_times(file, topics)
    if file.suffix == ".mcap":
        try:
            indexed = _mcap_index_times(file, topics)
        except _Damaged:
            indexed = None
        if indexed is not None:
            return indexed
    found: dict[str, list[int]] = {}
    for message in _salvage_file(file, _SalvageLog()):
        if message.topic in topics:
            found.setdefault(message.topic, []).append(message.timestamp_ns)
    return found


def _complete_pairs(files: Iterable[Path]) -> int:
    """Stamps that have both a thermal and an RGB message; log times equal header stamps in pair bags."""
    thermal: set[int] = set()
    rgb: set[int] = set()
    for file in files:
        times = _log_times(file, {PAIRS_THERMAL, PAIRS_RGB})
        thermal.update(times.get(PAIRS_THERMAL, ()))
        rgb.update(times.get(PAIRS_RGB, ()))
    return len(thermal & rgb)
