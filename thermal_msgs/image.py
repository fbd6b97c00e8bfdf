"""Exact, copy-free conversion between numpy arrays and ``sensor_msgs/msg/Image``.

Thermal frames are radiometric: a changed bit is a changed temperature, so every conversion here is
bit-exact and reinterprets the message buffer in place instead of copying it. sensor_msgs is imported
only where an rclpy message is built, so offline tools (rosbags readers and writers) can use this module
without a ROS installation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image


class ImageFormatError(ValueError):
    """Raised when a message's fields do not describe a valid image; the message names the field.

    ``field`` lets callers react to the specific defect (e.g. drop frames from a driver that
    mislabels its encoding) without parsing the message text.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class Encoding:
    """Memory layout of one pixel; ``dtype`` is little-endian because that is the ROS wire default."""

    name: str
    dtype: np.dtype
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


@dataclass(frozen=True, eq=False)
class ImageFields:
    """Everything an Image message needs besides its header, independent of the message class.

    ``eq=False`` because ``data`` is an array: element-wise ``==`` has no single truth value.
    """

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray

    def layout(self) -> dict[str, int | str]:
        """The size and format fields as keyword arguments for any Image class (rclpy or rosbags)."""
        return {
            "height": self.height,
            "width": self.width,
            "encoding": self.encoding,
            "is_bigendian": self.is_bigendian,
            "step": self.step,
        }


def validate_size(
    name: str, size: tuple[int, int] | list[int], maximum: tuple[int, int], beyond: str = ""
) -> tuple[int, int]:
    """(rows, cols) of an image-size parameter, or a ValueError naming it, for parameter callbacks.

    `beyond` says what to do instead of exceeding `maximum`.
    """
    # A JSON file can hold anything here: a number, a string, booleans (which Python counts as ints).
    if isinstance(size, str) or not hasattr(size, "__len__"):
        raise ValueError(f"{name} must be two integers [height, width], got {size!r}")
    if len(size) != 2 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size):
        raise ValueError(f"{name} must be two integers [height, width], got {list(size)}")
    rows, cols = (int(v) for v in size)
    if rows < 1 or cols < 1:
        raise ValueError(f"{name} must be positive, got [{rows}, {cols}]")
    if rows > maximum[0] or cols > maximum[1]:
        raise ValueError(f"{name} [{rows}, {cols}] exceeds the maximum {list(maximum)}{beyond}")
    return rows, cols


def _encodings(*specs: tuple[str, str, int]) -> Mapping[str, Encoding]:
    encodings = {name: Encoding(name, np.dtype(dtype), channels) for name, dtype, channels in specs}
    return MappingProxyType(encodings)


ENCODINGS: Mapping[str, Encoding] = _encodings(
    ("16UC1", "<u2", 1),
    ("mono16", "<u2", 1),
    ("32FC1", "<f4", 1),
    ("mono8", "u1", 1),
    ("rgb8", "u1", 3),
    ("bgr8", "u1", 3),
    ("rgba8", "u1", 4),
    ("bgra8", "u1", 4),
    # One (Y, U) or (Y, V) byte pair per pixel: each chroma sample is shared by two neighbouring pixels.
    ("yuv422_yuy2", "u1", 2),
)


def _lookup(encoding: str) -> Encoding:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        supported = ", ".join(ENCODINGS)
        raise ImageFormatError("encoding", f"expected one of {supported}; got {encoding!r}") from None


def _check_yuy2_width(spec: Encoding, width: int) -> None:
    if spec.name == "yuv422_yuy2" and width % 2:
        raise ImageFormatError("width", f"yuv422_yuy2 pairs pixels, so width must be even; got {width}")


def image_to_array(msg: Any) -> np.ndarray:
    """Copy-free view of ``msg.data``: (H, W) for one-channel encodings, (H, W, C) otherwise.

    Row padding and big-endian payloads are expressed through strides and dtype byte order rather than
    repacking, so the view stays on the message buffer (and writes through when it is writable). Only the
    attributes are read, so rclpy messages, rosbags dataclasses and look-alikes all work.
    """
    spec = _lookup(msg.encoding)
    if msg.is_bigendian not in (0, 1):
        raise ImageFormatError("is_bigendian", f"expected 0 or 1; got {msg.is_bigendian!r}")
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    for field, size in (("height", height), ("width", width)):
        if size < 0 or (size == 0 and raw.size):
            raise ImageFormatError(field, f"expected > 0 for {raw.size} data bytes; got {size}")
    _check_yuy2_width(spec, width)
    row_bytes = width * spec.bytes_per_pixel
    if step < row_bytes:
        raise ImageFormatError("step", f"expected >= {row_bytes} (width * bytes per pixel); got {step}")
    if step % spec.dtype.itemsize:
        raise ImageFormatError("step", f"expected a multiple of {spec.dtype.itemsize}; got {step}")
    if raw.size != step * height:
        raise ImageFormatError("data", f"expected step * height = {step * height} bytes; got {raw.size}")
    dtype = spec.dtype.newbyteorder(">") if msg.is_bigendian else spec.dtype
    shape: tuple[int, ...] = (height, width)
    strides: tuple[int, ...] = (step, spec.bytes_per_pixel)
    if spec.channels > 1:
        shape, strides = (*shape, spec.channels), (*strides, dtype.itemsize)
    return np.ndarray(shape, dtype, buffer=raw, strides=strides)


def _check_array(array: np.ndarray, encoding: str) -> Encoding:
    spec = _lookup(encoding)
    if array.dtype.newbyteorder("<") != spec.dtype:
        raise ImageFormatError("encoding", f"{encoding} expects dtype {spec.dtype.name}; got {array.dtype}")
    expected_shape = "(H, W)" if spec.channels == 1 else f"(H, W, {spec.channels})"
    has_expected_shape = (array.ndim == 2 and spec.channels == 1) or (
        array.ndim == 3 and array.shape[2] == spec.channels
    )
    if not has_expected_shape:
        raise ImageFormatError("encoding", f"{encoding} expects shape {expected_shape}; got {array.shape}")
    _check_yuy2_width(spec, array.shape[1])
    return spec


def image_fields(array: np.ndarray, encoding: str) -> ImageFields:
    """Validated message fields plus a flat uint8 view of the pixels, for any Image message class.

    The view aliases ``array`` whenever it is C-contiguous, so the only copy left is the one the target
    message class itself makes when it takes the bytes.
    """
    spec = _check_array(array, encoding)
    byte_order = array.dtype.byteorder
    is_bigendian = byte_order == ">" or (byte_order == "=" and sys.byteorder == "big")
    flat_bytes = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    height, width = array.shape[:2]
    return ImageFields(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(is_bigendian and spec.dtype.itemsize > 1),
        step=width * spec.bytes_per_pixel,
        data=flat_bytes,
    )


def array_to_image(
    array: np.ndarray, encoding: str, *, stamp: Time | None = None, frame_id: str = ""
) -> Image:
    """Build an rclpy Image with a single copy, straight from the array's buffer into the message.

    The bytes are appended to the ``array.array('B')`` the constructor already created: assigning
    ``msg.data`` instead would copy again (the setter wraps every value in a new array.array) or, for a
    numpy array, convert it element by element.
    """
    from sensor_msgs.msg import Image

    fields = image_fields(array, encoding)
    msg = Image(**fields.layout())
    msg.data.frombytes(fields.data)
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


# BT.601 limited range: luma spans 16..235 and chroma 16..240, so both are rescaled to full range
# before applying the Kr/Kb colour-difference weights.
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
_LUMA_GAIN, _CHROMA_GAIN = 255 / 219, 255 / 224
_YUV_TO_RGB = np.array(
    [
        [_LUMA_GAIN, 0.0, 2 * (1 - _KR) * _CHROMA_GAIN],
        [_LUMA_GAIN, -2 * (1 - _KB) * _KB / _KG * _CHROMA_GAIN, -2 * (1 - _KR) * _KR / _KG * _CHROMA_GAIN],
        [_LUMA_GAIN, 2 * (1 - _KB) * _CHROMA_GAIN, 0.0],
    ],
    dtype=np.float32,
)


def _yuy2_to_rgb8(array: np.ndarray) -> np.ndarray:
    luma = array[..., 0].astype(np.float32) - 16
    blue_diff = np.repeat(array[:, 0::2, 1], 2, axis=1).astype(np.float32) - 128
    red_diff = np.repeat(array[:, 1::2, 1], 2, axis=1).astype(np.float32) - 128
    rgb = np.stack([luma, blue_diff, red_diff], axis=-1) @ _YUV_TO_RGB.T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Render any colour or mono encoding as a C-contiguous (H, W, 3) uint8 RGB image for display.

    Contiguous rgb8 input comes back as a view of itself; anything else becomes a new array. 16-bit
    images keep their high byte, a fixed scale that avoids per-frame flicker. 32FC1 is refused because
    floats have no canonical range to map onto colours.
    """
    spec = _check_array(array, encoding)
    if spec.name == "32FC1":
        raise ImageFormatError("encoding", "expected a colour or integer mono encoding; got 32FC1")
    if spec.name in ("16UC1", "mono16"):
        array = (array >> 8).astype(np.uint8)
    if spec.channels == 1:
        return np.repeat(array[..., np.newaxis], 3, axis=2)
    if spec.name == "yuv422_yuy2":
        return _yuy2_to_rgb8(array)
    rgb = array[..., 2::-1] if spec.name.startswith("bgr") else array[..., :3]
    return np.ascontiguousarray(rgb)
