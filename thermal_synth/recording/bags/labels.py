"""Session labels, recording options, the errors of this package and the CDR of the messages a bag
holds."""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_msgs.image import image_fields

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

STORAGES = ("mcap", "sqlite3")
IMAGE_TYPE = "sensor_msgs/msg/Image"
STRING_TYPE = "std_msgs/msg/String"
CUSTOM_DATA_PREFIX = "thermal_synth."

_NS = 1_000_000_000
_LABEL_LIMITS = {"person": 100, "outfit": 100, "scene": 100, "notes": 2000}


class BagWriteError(RuntimeError):
    """Writing a bag failed; the message names the path, what failed and what to do about it."""


class BagReadError(ValueError):
    """The path is not a bag that can be read at all (a damaged bag is salvaged instead)."""


class BagRepairError(RuntimeError):
    """Repair found nothing to salvage or could not put the repaired bag in place."""


@cache
def _typestore() -> Typestore:
    """Jazzy's message definitions; Image and String are identical in Humble, so the CDR is too."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


@dataclass(frozen=True)
class SessionLabels:
    """Who and what a recording shows; split by identity/outfit/scene later needs them per bag."""

    person: str = ""
    outfit: str = ""
    scene: str = ""
    notes: str = ""
    """Free text; the only label that may span lines."""

    def __post_init__(self) -> None:
        for name, limit in _LABEL_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"session label {name} must be a string, got {type(value).__name__}")
            if len(value) > limit:
                raise ValueError(f"session label {name} is {len(value)} characters; at most {limit} allowed")
            allowed = "\n" if name == "notes" else ""
            bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in allowed), None)
            if bad is not None:
                raise ValueError(f"session label {name} contains control character {bad!r}")

    def to_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in _LABEL_LIMITS}

    @classmethod
    def from_json(cls, data: object) -> SessionLabels:
        """Labels from a decoded JSON object written by anyone: unknown keys are ignored (newer
        recorders may add some), known ones must be strings."""
        if not isinstance(data, dict):
            raise ValueError(f"session labels must be a JSON object, got {type(data).__name__}")
        return cls(**{name: data[name] for name in _LABEL_LIMITS if name in data})

    def custom_data(self) -> dict[str, str]:
        """The labels as metadata.yaml `custom_data`, which only holds strings."""
        return {f"{CUSTOM_DATA_PREFIX}{name}": value for name, value in self.to_json().items()}

    @classmethod
    def from_custom_data(cls, custom: object) -> SessionLabels | None:
        if not isinstance(custom, dict):
            return None
        found = {
            k[len(CUSTOM_DATA_PREFIX) :]: v
            for k, v in custom.items()
            if str(k).startswith(CUSTOM_DATA_PREFIX)
        }
        return cls.from_json(found) if found else None


@dataclass(frozen=True)
class BagOptions:
    storage: str = "mcap"
    """"mcap" (Jazzy's default) or "sqlite3" (Humble's default, needs no storage plugin there)."""
    max_bag_size_mb: float = 0.0
    """Start a new storage file once the current one holds this many MB (10^6 bytes) of messages;
    0 = never."""
    max_bag_duration_s: float = 0.0
    """Start a new storage file once the current one spans this many seconds of stamps; 0 = never."""
    flush_interval_s: float = 1.0
    """At most this much recording exists only in memory, i.e. what a crash may lose; 0 = every pair."""

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"BagOptions.storage must be one of {STORAGES}, got {self.storage!r}")
        for name in ("max_bag_size_mb", "max_bag_duration_s", "flush_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"BagOptions.{name} must be a number, got {value!r}")
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"BagOptions.{name} must be finite and >= 0, got {value!r}")


DEFAULT_OPTIONS = BagOptions()


def _stamp(stamp_ns: int) -> Any:
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)):
        raise ValueError(f"stamp_ns must be an integer, got {stamp_ns!r}")
    sec, nanosec = divmod(int(stamp_ns), _NS)
    if not 0 <= sec < 2**31:
        raise ValueError(f"stamp_ns must lie between 0 and 2^31 s (builtin_interfaces/Time), got {stamp_ns}")
    return _typestore().types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def image_cdr(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> bytes:
    """CDR of a sensor_msgs/msg/Image built from `array` exactly as thermal_msgs.image builds rclpy
    messages (little-endian, packed rows), so tests and ROS-free tools write what the recorder's
    `rclpy.serialization.serialize_message` writes. Equal field by field, not always byte by byte:
    rclpy leaves the CDR alignment padding uninitialised, rosbags zeroes it."""
    store = _typestore()
    fields = image_fields(array, encoding)
    header = store.types["std_msgs/msg/Header"](stamp=_stamp(stamp_ns), frame_id=frame_id)
    msg = store.types[IMAGE_TYPE](header=header, **fields.layout(), data=fields.data)
    return bytes(store.serialize_cdr(msg, IMAGE_TYPE))


def _string_cdr(text: str) -> bytes:
    store = _typestore()
    return bytes(store.serialize_cdr(store.types[STRING_TYPE](data=text), STRING_TYPE))


def _header_stamp_ns(cdr: bytes | memoryview) -> int | None:
    """The header stamp of a serialised message that starts with std_msgs/Header, read in place so the
    writer can check a pair's shared stamp without deserialising megabytes of pixels."""
    if len(cdr) < 12 or cdr[0] != 0 or cdr[1] not in (0, 1):
        return None
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] else ">iI", cdr, 4)
    return sec * _NS + nanosec
