"""Round trips, zero-copy guarantees and validation of thermal_msgs.image.

Radiometric frames must survive transport bit for bit, and full-resolution frames must not be copied
needlessly, so both properties are asserted directly rather than inferred from value equality.
"""

from __future__ import annotations

import array
import tracemalloc
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image

from thermal_msgs.image import (
    ENCODINGS,
    ImageFormatError,
    array_to_image,
    image_fields,
    image_to_array,
    to_rgb8,
)

ROSBAGS_TYPES = get_typestore(Stores.ROS2_JAZZY)
RosbagsImage = ROSBAGS_TYPES.types["sensor_msgs/msg/Image"]
RosbagsHeader = ROSBAGS_TYPES.types["std_msgs/msg/Header"]
RosbagsTime = ROSBAGS_TYPES.types["builtin_interfaces/msg/Time"]


@dataclass
class DuckImage:
    """Minimal stand-in for any message class; only the fields image_to_array reads."""

    height: int
    width: int
    encoding: str
    step: int
    data: Any
    is_bigendian: int = 0
    header: Any = field(default=None)


@st.composite
def image_arrays(draw: st.DrawFn, encoding: str) -> np.ndarray:
    """Arbitrary bit patterns in either byte order, so NaN payloads and infinities appear for 32FC1."""
    spec = ENCODINGS[encoding]
    height = draw(st.integers(1, 9))
    width = draw(st.integers(1, 9)) * (2 if encoding == "yuv422_yuy2" else 1)
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    byte_order = draw(st.sampled_from("<>")) if spec.dtype.itemsize > 1 else "|"
    bits = draw(arrays(np.dtype(f"{byte_order}u{spec.dtype.itemsize}"), shape))
    return bits.view(spec.dtype.newbyteorder(byte_order))


def assert_bit_exact(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert actual.tobytes() == expected.tobytes()


def to_rosbags(original: np.ndarray, encoding: str) -> Any:
    fields = image_fields(original, encoding)
    header = RosbagsHeader(stamp=RosbagsTime(sec=0, nanosec=0), frame_id="thermal")
    return RosbagsImage(header=header, data=fields.data, **fields.layout())


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rclpy_round_trip_is_bit_exact(encoding: str, data: st.DataObject) -> None:
    original = data.draw(image_arrays(encoding))
    msg = array_to_image(original, encoding)
    assert msg.is_bigendian == int(original.dtype.byteorder == ">")
    assert_bit_exact(image_to_array(msg), original)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rosbags_round_trip_is_bit_exact(encoding: str, data: st.DataObject) -> None:
    original = data.draw(image_arrays(encoding))
    assert_bit_exact(image_to_array(to_rosbags(original, encoding)), original)


def test_float_specials_and_nan_payloads_survive() -> None:
    bit_patterns = np.array([[0x7FC00001, 0xFFA00000, 0x7F800000], [0xFF800000, 0x80000000, 0x00000001]])
    original = bit_patterns.astype("<u4").view("<f4")
    assert_bit_exact(image_to_array(array_to_image(original, "32FC1")), original)


def test_empty_image_round_trips() -> None:
    original = np.zeros((0, 0), dtype=np.uint16)
    decoded = image_to_array(array_to_image(original, "16UC1"))
    assert decoded.shape == (0, 0)


def test_message_is_the_real_rclpy_image_with_header() -> None:
    from builtin_interfaces.msg import Time

    msg = array_to_image(np.zeros((2, 4, 3), np.uint8), "rgb8", stamp=Time(sec=7, nanosec=9), frame_id="cam")
    assert type(msg) is Image
    assert type(msg).__module__.startswith("sensor_msgs.msg")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (7, 9, "cam")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (2, 4, 12, "rgb8")
    assert isinstance(msg.data, array.array)
    assert msg.data.typecode == "B"


def test_step_padding_is_skipped_without_copying() -> None:
    height, width, step = 3, 2, 8
    padding = b"\xee" * (step - 2 * width)
    rows = [bytes([10 * row + col for col in range(2 * width)]) + padding for row in range(height)]
    buffer = array.array("B", b"".join(rows))
    msg = DuckImage(height=height, width=width, encoding="16UC1", step=step, data=buffer)
    view = image_to_array(msg)
    expected = np.array([[r[0] | r[1] << 8, r[2] | r[3] << 8] for r in rows], dtype=np.uint16)
    np.testing.assert_array_equal(view, expected)
    assert view.strides == (step, 2)
    assert np.shares_memory(view, np.frombuffer(buffer, np.uint8))


def test_padded_colour_rows_decode_per_channel() -> None:
    pixels = bytes([1, 2, 3, 4, 5, 6])
    msg = DuckImage(height=2, width=2, encoding="bgr8", step=7, data=pixels + b"\0" + pixels[::-1] + b"\0")
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, [[[1, 2, 3], [4, 5, 6]], [[6, 5, 4], [3, 2, 1]]])


def test_big_endian_16uc1_decodes_to_correct_values() -> None:
    buffer = array.array("B", [0x01, 0x02, 0xFF, 0x00, 0x00, 0x10, 0xAB, 0xCD])
    msg = DuckImage(height=2, width=2, encoding="16UC1", step=4, data=buffer, is_bigendian=1)
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, [[0x0102, 0xFF00], [0x0010, 0xABCD]])
    assert view.dtype.byteorder == ">"
    assert np.shares_memory(view, np.frombuffer(buffer, np.uint8))


def test_big_endian_array_is_written_as_big_endian_message() -> None:
    original = np.array([[1.5, -2.0]], dtype=">f4")
    msg = array_to_image(original, "32FC1")
    assert msg.is_bigendian == 1
    assert bytes(msg.data) == original.tobytes()
    np.testing.assert_array_equal(image_to_array(msg), [[1.5, -2.0]])


def test_view_of_rclpy_message_writes_through_to_its_buffer() -> None:
    msg = array_to_image(np.zeros((2, 3), np.uint16), "mono16")
    view = image_to_array(msg)
    view[1, 2] = 0xBEEF
    assert msg.data[-2:] == array.array("B", [0xEF, 0xBE])
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_view_of_rosbags_message_aliases_its_numpy_data() -> None:
    msg = to_rosbags(np.arange(12, dtype=np.uint8).reshape(2, 2, 3), "rgb8")
    view = image_to_array(msg)
    assert np.shares_memory(view, msg.data)
    view[0, 0, 0] = 200
    assert msg.data[0] == 200


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_other_buffer_types_are_viewed_in_place(wrap: type) -> None:
    buffer = wrap(bytes(range(6)))
    view = image_to_array(DuckImage(height=1, width=2, encoding="rgb8", step=6, data=buffer))
    np.testing.assert_array_equal(view, [[[0, 1, 2], [3, 4, 5]]])
    assert np.shares_memory(view, np.frombuffer(buffer, np.uint8))


def test_image_fields_aliases_contiguous_arrays_and_copies_strided_ones() -> None:
    frame = np.arange(24, dtype=np.uint16).reshape(4, 6)
    assert np.shares_memory(image_fields(frame, "16UC1").data, frame)
    every_other_column = frame[:, ::2]
    fields = image_fields(every_other_column, "16UC1")
    assert not np.shares_memory(fields.data, frame)
    assert fields.step == 6
    np.testing.assert_array_equal(fields.data.view("<u2").reshape(4, 3), every_other_column)


def test_array_to_image_copies_a_contiguous_frame_only_once() -> None:
    frame = np.arange(256 * 320, dtype=np.uint16).reshape(256, 320)
    array_to_image(frame, "16UC1")
    tracemalloc.start()
    try:
        msg = array_to_image(frame, "16UC1")
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bytes(msg.data) == frame.tobytes()
    assert peak_bytes < 1.25 * frame.nbytes


VALID = DuckImage(height=2, width=3, encoding="mono16", step=6, data=bytes(12))


@pytest.mark.parametrize(
    ("msg", "field_name"),
    [
        (replace(VALID, encoding="bayer_rggb8"), "encoding"),
        (replace(VALID, height=0), "height"),
        (replace(VALID, height=-2), "height"),
        (replace(VALID, width=0), "width"),
        (replace(VALID, step=5), "step"),
        (replace(VALID, step=7, data=bytes(14)), "step"),
        (replace(VALID, data=bytes(11)), "data"),
        (replace(VALID, height=3), "data"),
        (replace(VALID, is_bigendian=2), "is_bigendian"),
        (replace(VALID, encoding="yuv422_yuy2"), "width"),
    ],
)
def test_invalid_message_names_the_field(msg: DuckImage, field_name: str) -> None:
    with pytest.raises(ImageFormatError) as caught:
        image_to_array(msg)
    assert caught.value.field == field_name
    assert field_name in str(caught.value)


def test_unknown_encoding_lists_the_supported_ones() -> None:
    with pytest.raises(ImageFormatError, match=r"16UC1.*yuv422_yuy2"):
        image_to_array(replace(VALID, encoding="bayer_rggb8"))


@pytest.mark.parametrize(
    ("array_", "encoding", "field_name"),
    [
        (np.zeros((2, 2), np.float64), "32FC1", "encoding"),
        (np.zeros((2, 2), np.uint8), "16UC1", "encoding"),
        (np.zeros((2, 2), np.int16), "mono16", "encoding"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", "encoding"),
        (np.zeros((2, 2, 4), np.uint8), "rgb8", "encoding"),
        (np.zeros((2, 2), np.uint8), "bgr8", "encoding"),
        (np.zeros(4, np.uint8), "mono8", "encoding"),
        (np.zeros((2, 2), np.uint8), "jpeg", "encoding"),
        (np.zeros((2, 3, 2), np.uint8), "yuv422_yuy2", "width"),
    ],
)
def test_invalid_array_names_the_field(array_: np.ndarray, encoding: str, field_name: str) -> None:
    with pytest.raises(ImageFormatError) as caught:
        array_to_image(array_, encoding)
    assert caught.value.field == field_name
    assert field_name in str(caught.value)


def test_to_rgb8_reorders_and_drops_alpha() -> None:
    red = np.array([255, 0, 0], np.uint8)
    expected = np.broadcast_to(red, (2, 2, 3))
    np.testing.assert_array_equal(to_rgb8(np.full((2, 2, 3), [0, 0, 255], np.uint8), "bgr8"), expected)
    np.testing.assert_array_equal(to_rgb8(np.full((2, 2, 4), [0, 0, 255, 9], np.uint8), "bgra8"), expected)
    np.testing.assert_array_equal(to_rgb8(np.full((2, 2, 4), [255, 0, 0, 9], np.uint8), "rgba8"), expected)
    rgb = np.full((2, 2, 3), red)
    assert np.shares_memory(to_rgb8(rgb, "rgb8"), rgb)


def test_to_rgb8_replicates_mono_and_keeps_high_byte() -> None:
    np.testing.assert_array_equal(to_rgb8(np.array([[7, 200]], np.uint8), "mono8"), [[[7] * 3, [200] * 3]])
    for encoding in ("mono16", "16UC1"):
        for dtype in ("<u2", ">u2"):
            mono = np.array([[0x12FF, 0xAB00]], dtype)
            np.testing.assert_array_equal(to_rgb8(mono, encoding), [[[0x12] * 3, [0xAB] * 3]])


@pytest.mark.parametrize(
    ("yuv", "rgb"),
    [
        ((16, 128, 128), (0, 0, 0)),
        ((126, 128, 128), (128, 128, 128)),
        ((235, 128, 128), (255, 255, 255)),
        ((81, 90, 240), (255, 0, 0)),
        ((145, 54, 34), (0, 255, 0)),
        ((41, 240, 110), (0, 0, 255)),
    ],
)
def test_to_rgb8_converts_yuy2_with_bt601_limited_range(yuv: tuple[int, ...], rgb: tuple[int, ...]) -> None:
    luma, blue_diff, red_diff = yuv
    pixel_pair = np.array([[[luma, blue_diff], [luma, red_diff]]], np.uint8)
    converted = to_rgb8(pixel_pair, "yuv422_yuy2").astype(int)
    assert converted.shape == (1, 2, 3)
    assert np.abs(converted - np.array(rgb)).max() <= 2


def test_to_rgb8_shares_yuy2_chroma_between_pixel_pairs() -> None:
    row = np.array([[[16, 128], [235, 128], [81, 90], [81, 240]]], np.uint8)
    converted = to_rgb8(row, "yuv422_yuy2")
    np.testing.assert_array_equal(converted[0, :2], [[0, 0, 0], [255, 255, 255]])
    np.testing.assert_array_equal(converted[0, 2], converted[0, 3])
    assert converted[0, 2, 0] > 250


def test_to_rgb8_refuses_float_images() -> None:
    with pytest.raises(ImageFormatError) as caught:
        to_rgb8(np.zeros((2, 2), np.float32), "32FC1")
    assert caught.value.field == "encoding"
