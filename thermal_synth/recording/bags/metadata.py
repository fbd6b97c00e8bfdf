"""metadata.yaml: what it says about each storage file, written for all split files at once and
loaded without trusting it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from rosbags.rosbag2 import Reader, Writer

from thermal_synth.recording.bags.labels import STORAGES, BagRepairError, _typestore

METADATA_VERSION = 8
"""Humble's `ros2 bag` cannot parse version 9 (QoS profiles became a list)."""
STAGING_DIR = ".recording"

_SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}
_MAX_METADATA_BYTES = 16 << 20


class _TopicPart(NamedTuple):
    name: str
    msgtype: str
    serialization_format: str
    type_hash: str
    count: int


@dataclass(frozen=True)
class _FilePart:
    """What metadata.yaml says about one storage file."""

    name: str
    start_ns: int
    end_ns: int
    topics: tuple[_TopicPart, ...]

    @property
    def message_count(self) -> int:
        return sum(topic.count for topic in self.topics)

    @classmethod
    def from_writer(cls, writer: Writer, name: str) -> _FilePart:
        """From the counts a closed rosbags Writer keeps in its (public, undocumented) attributes."""
        topics = tuple(
            _TopicPart(c.topic, c.msgtype, c.ext.serialization_format, c.digest, writer.counts[c.id])
            for c in writer.connections
        )
        return cls(name, writer.min_timestamp, writer.max_timestamp, topics)

    @classmethod
    def from_reader(cls, file: Path) -> _FilePart:
        """Describes a finished storage file from its own index (MCAP summary, sqlite tables)."""
        with Reader(file) as reader:
            topics = tuple(
                _TopicPart(
                    c.topic,
                    c.msgtype,
                    c.ext.serialization_format,
                    c.digest or _type_hash(c.msgtype),
                    c.msgcount,
                )
                for c in reader.connections
            )
            if not reader.message_count:
                raise BagRepairError(f"{file}: holds no messages")
            return cls(file.name, reader.start_time, reader.end_time - 1, topics)


def _type_hash(msgtype: str) -> str:
    """MCAP files do not store RIHS01 hashes; metadata.yaml should, for types we know."""
    try:
        return _typestore().hash_rihs01(msgtype)
    except KeyError:
        return ""


def _metadata_yaml(storage: str, parts: Iterable[_FilePart], custom_data: Mapping[str, str]) -> str:
    """One metadata.yaml for all split files, in the layout rosbag2 uses for split bags."""
    parts = list(parts)
    topics: dict[tuple[str, str], _TopicPart] = {}
    for part in parts:
        for topic in part.topics:
            key = (topic.name, topic.msgtype)
            seen = topics.get(key)
            topics[key] = topic if seen is None else seen._replace(count=seen.count + topic.count)
    start = min((p.start_ns for p in parts), default=0)
    end = max((p.end_ns for p in parts), default=0)
    info = {
        "version": METADATA_VERSION,
        "storage_identifier": storage,
        "relative_file_paths": [p.name for p in parts],
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(p.message_count for p in parts),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.msgtype,
                    "serialization_format": t.serialization_format,
                    # Pair bags carry no QoS; version 8 stores the profiles as a YAML string.
                    "offered_qos_profiles": "",
                    "type_description_hash": t.type_hash,
                },
                "message_count": t.count,
            }
            for t in topics.values()
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": [
            {
                "path": p.name,
                "starting_time": {"nanoseconds_since_epoch": p.start_ns},
                "duration": {"nanoseconds": p.end_ns - p.start_ns},
                "message_count": p.message_count,
            }
            for p in parts
        ],
        "custom_data": dict(custom_data) or None,
        "ros_distro": "rosbags",
    }
    return yaml.safe_dump(
        {"rosbag2_bagfile_information": info}, sort_keys=False, allow_unicode=True, width=1 << 16
    )


def _load_metadata(bag: Path, problems: list[str]) -> Mapping[str, Any] | None:
    meta = bag / "metadata.yaml"
    if not meta.is_file():
        problems.append("metadata.yaml is missing (the recording was not closed)")
        return None
    try:
        if meta.stat().st_size > _MAX_METADATA_BYTES:
            raise ValueError(f"larger than {_MAX_METADATA_BYTES} bytes")
        info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        names = info["relative_file_paths"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("relative_file_paths is not a list of names")
        if info.get("storage_identifier") not in STORAGES:
            raise ValueError(
                f"storage_identifier {info.get('storage_identifier')!r} is not one of {STORAGES}"
            )
        return info
    except (OSError, yaml.YAMLError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"metadata.yaml is unreadable ({type(exc).__name__}: {exc})")
        return None
