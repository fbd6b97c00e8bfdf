"""One storage file of a bag, written by its own rosbags Writer and flushed while it is open.

`_flush_mcap` and `_flush_sqlite3` are the only two places that reach inside rosbags (pinned <0.12 in
setup.py and by test_bags.py::test_flush_reaches_the_file_while_the_writer_is_open).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbags.rosbag2 import StoragePlugin, Writer

from thermal_synth.recording.bags.labels import _typestore
from thermal_synth.recording.bags.metadata import _SUFFIXES, METADATA_VERSION, STAGING_DIR, _FilePart

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def _flush_mcap(storage: Any) -> None:
    """Pushes rosbags 0.11's McapWriter state to disk.

    McapWriter collects messages in `storage.chunk` (a BytesIO) until it passes 1 MiB and writes through
    the buffered file `storage.bio`. `close_chunk()` writes the chunk and its message index exactly as
    reaching 1 MiB would (the summary is still written at close), so flushing only makes chunks smaller.
    The fsync is not needed for SIGKILL, but at 1 Hz it is cheap and extends the guarantee to a power
    cut, which on a battery-powered rig is the likelier crash.
    """
    if storage.chunk.msgs:
        storage.close_chunk()
    storage.bio.flush()
    os.fsync(storage.bio.fileno())


def _flush_sqlite3(storage: Any) -> None:
    """Commits rosbags 0.11's Sqlite3Writer transaction.

    Sqlite3Writer keeps one implicit transaction open from its first INSERT until close(); committing it
    through `storage.conn` ends it and the next INSERT opens a new one. Python's sqlite3 runs with
    synchronous=FULL, so the commit is also durable across a power cut.
    """
    storage.conn.commit()


_FLUSHERS: Mapping[str, Callable[[Any], None]] = {"mcap": _flush_mcap, "sqlite3": _flush_sqlite3}


class _StorageFileWriter:
    """One storage file of a bag, written by its own rosbags Writer in `<bag>/.recording/<stem>/`.

    rosbags writes exactly one storage file into a directory it creates itself, while a split bag keeps
    all its files in one directory under one metadata.yaml; so each file is written aside and moved up
    into the bag by `finish()`.
    """

    def __init__(self, bag: Path, stem: str, storage: str, custom_data: Mapping[str, str]) -> None:
        self.storage = storage
        self.directory = bag / STAGING_DIR / stem
        self.file = self.directory / f"{stem}{_SUFFIXES[storage]}"
        self.payload_bytes = 0
        self.first_stamp_ns: int | None = None
        self._connections: dict[tuple[str, str], Connection] = {}
        self._writer = Writer(self.directory, version=METADATA_VERSION, storage_plugin=_PLUGINS[storage])
        for key, value in custom_data.items():
            self._writer.set_custom_data(key, value)
        self._writer.open()

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes | memoryview) -> None:
        connection = self._connections.get((topic, msgtype))
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=_typestore())
            self._connections[topic, msgtype] = connection
        self._writer.write(connection, stamp_ns, data)
        self.payload_bytes += len(data)
        if self.first_stamp_ns is None:
            self.first_stamp_ns = stamp_ns

    def flush(self) -> None:
        _FLUSHERS[self.storage](self._writer.storage)

    def finish(self, destination: Path) -> _FilePart:
        """Completes the file (index, summary), moves it into `destination` and describes it."""
        self._writer.close()
        part = _FilePart.from_writer(self._writer, self.file.name)
        os.replace(self.file, destination / self.file.name)
        shutil.rmtree(self.directory)
        return part

    def abort(self) -> None:
        """Releases the file as it is; what was flushed stays for `repair_bag`."""
        with suppress(Exception):
            self._writer.abort()


def _write_failure(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        reasons = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exhausted",
            errno.EFBIG: "the file size limit was reached",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
        }
        return reasons.get(exc.errno or 0, exc.strerror or str(exc))
    if isinstance(exc, sqlite3.Error):
        return f"SQLite: {exc} (a full disk or file size limit shows up this way)"
    return str(exc)
