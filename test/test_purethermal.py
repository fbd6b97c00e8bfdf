"""PureThermalSource against a fake OpenCV V4L2 capture that behaves like the board and like OpenCV.

The failure users hit most is OpenCV silently converting Y16 to 8-bit BGR, so the fake does exactly
that unless the source asked for Y16 with RGB conversion off before streaming started.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import LEPTON_FRAME

from thermal_driver.sources.base import SensorUnavailable
from thermal_driver.sources.purethermal import FRAME_SHAPE, PureThermalSource, parse_device

Y16_FOURCC = cv2.VideoWriter_fourcc("Y", "1", "6", " ")
BY_ID_PATH = "/dev/v4l/by-id/usb-GroupGets_PureThermal_(fw:v1.3.0)_0018003c-video-index0"


class FakeV4l2Capture:
    """cv2.VideoCapture(device, CAP_V4L2) on a PureThermal.

    Protocol rules: frames are uint16 Y16 only if FOURCC 'Y16 ' and CONVERT_RGB=0 were set before the
    first read (streaming fixes the format); otherwise, like OpenCV, it converts to 8-bit BGR. Reading
    a released capture is a caller bug and fails loudly. `frames` may have 122 rows (telemetry on);
    after `stall_after` frames it stalls like the known PureThermal hang: read() gives (False, None).
    """

    def __init__(
        self,
        frames: list[np.ndarray],
        *,
        present: bool = True,
        supports_y16: bool = True,
        stall_after: int | None = None,
    ) -> None:
        self.frames = frames
        self.present = present
        self.supports_y16 = supports_y16
        self.stall_after = stall_after
        self.opened_as: int | str | None = None
        self.set_calls: list[tuple[int, float]] = []
        self.released = False
        self.frames_read = 0
        self._streams_y16: bool | None = None

    def open_as(self, device: int | str) -> FakeV4l2Capture:
        """The capture factory: what `cv2.VideoCapture(device, cv2.CAP_V4L2)` would return."""
        self.opened_as = device
        return self

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.present and not self.released

    def set(self, prop: int, value: float) -> bool:
        self.set_calls.append((prop, value))
        return self.isOpened()

    def read(self) -> tuple[bool, np.ndarray | None]:
        assert not self.released, "read() on a released capture"
        if self._streams_y16 is None:
            requested = dict(self.set_calls)
            self._streams_y16 = (
                self.supports_y16
                and requested.get(cv2.CAP_PROP_FOURCC) == Y16_FOURCC
                and requested.get(cv2.CAP_PROP_CONVERT_RGB) == 0
            )
        if self.stall_after is not None and self.frames_read >= self.stall_after:
            return False, None
        frame = self.frames[self.frames_read % len(self.frames)]
        self.frames_read += 1
        if self._streams_y16:
            return True, frame.copy()
        grey = (frame >> 8).astype(np.uint8)
        return True, np.repeat(grey[..., np.newaxis], 3, axis=2)

    def release(self) -> None:
        self.released = True


def lepton_scene_centikelvin() -> np.ndarray:
    """The real Lepton person frame, its relative 0..65535 scale mapped onto 20..36 degC, in centi-Kelvin."""
    relative = np.load(LEPTON_FRAME)[..., 0].astype(np.float64) / 65535
    return np.rint(29315 + 1600 * relative).astype(np.uint16)


def with_telemetry_rows(frame: np.ndarray) -> np.ndarray:
    """160x122 Y16: the two telemetry rows hold words that are no temperature at all."""
    telemetry = np.array([[0x000E] * 80 + [0xFFFF] * 80, [0] * 160], dtype=np.uint16)
    return np.vstack([frame, telemetry])


def opened_source(capture: FakeV4l2Capture, device: str = "0") -> PureThermalSource:
    source = PureThermalSource(device, capture_factory=capture.open_as)
    source.open()
    return source


def test_opens_the_parsed_device_and_requests_unconverted_y16() -> None:
    capture = FakeV4l2Capture([lepton_scene_centikelvin()])
    opened_source(capture, "0")
    assert capture.opened_as == 0
    assert (cv2.CAP_PROP_FOURCC, Y16_FOURCC) in capture.set_calls
    assert (cv2.CAP_PROP_CONVERT_RGB, 0) in capture.set_calls


def test_frames_are_centikelvin_exactly_as_streamed() -> None:
    scenes = [lepton_scene_centikelvin(), lepton_scene_centikelvin() + 25]
    source = opened_source(FakeV4l2Capture(scenes))
    for scene in scenes:
        frame = source.read().centikelvin
        assert frame.dtype == np.uint16
        assert frame.shape == FRAME_SHAPE
        np.testing.assert_array_equal(frame, scene)


def test_telemetry_rows_are_stripped() -> None:
    scene = lepton_scene_centikelvin()
    source = opened_source(FakeV4l2Capture([with_telemetry_rows(scene)]))
    frame = source.read().centikelvin
    assert frame.shape == FRAME_SHAPE
    assert frame.flags.c_contiguous
    np.testing.assert_array_equal(frame, scene)


def test_rgb_converted_frames_are_refused_naming_y16() -> None:
    source = opened_source(FakeV4l2Capture([lepton_scene_centikelvin()], supports_y16=False), "/dev/video2")
    with pytest.raises(SensorUnavailable, match=r"'/dev/video2' delivers uint8 frames .* not 16-bit Y16"):
        source.read()


def test_fake_only_streams_y16_when_asked_before_streaming() -> None:
    """The fake's own rule, so the test above means something: a late or partial request gives 8-bit."""
    capture = FakeV4l2Capture([lepton_scene_centikelvin()])
    capture.set(cv2.CAP_PROP_FOURCC, Y16_FOURCC)
    _, frame = capture.read()
    capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    _, later = capture.read()
    assert frame is not None
    assert later is not None
    assert (frame.dtype, later.dtype) == (np.uint8, np.uint8)


@pytest.mark.parametrize("shape", [(60, 80), (120, 159), (121, 160)])
def test_wrong_frame_size_is_refused(shape: tuple[int, int]) -> None:
    source = opened_source(FakeV4l2Capture([np.full(shape, 29800, np.uint16)]))
    with pytest.raises(SensorUnavailable, match=rf"{shape[1]}x{shape[0]} Y16 frames, expected 160x120"):
        source.read()


def test_non_radiometric_values_are_refused_mentioning_tlinear() -> None:
    """A Lepton 3.0 or TLinear off: 14-bit counts around 8000, not centi-Kelvin around 30000."""
    counts = np.random.default_rng(0).integers(7900, 8300, FRAME_SHAPE, dtype=np.uint16)
    source = opened_source(FakeV4l2Capture([counts]))
    with pytest.raises(SensorUnavailable, match="TLinear"):
        source.read()
    assert source.diagnostics()["implausible_frames"] == "1"


def test_absent_device_is_refused_with_the_hint_and_released() -> None:
    capture = FakeV4l2Capture([lepton_scene_centikelvin()], present=False)
    source = PureThermalSource("1", capture_factory=capture.open_as)
    with pytest.raises(SensorUnavailable, match=r"cannot open video device 1: is the PureThermal plugged in"):
        source.open()
    assert capture.released


def test_stalled_stream_raises_sensor_unavailable() -> None:
    source = opened_source(FakeV4l2Capture([lepton_scene_centikelvin()], stall_after=2))
    source.read()
    source.read()
    with pytest.raises(SensorUnavailable, match="stopped delivering frames"):
        source.read()


def test_read_needs_open_and_close_releases_the_device() -> None:
    capture = FakeV4l2Capture([lepton_scene_centikelvin()])
    source = PureThermalSource("0", capture_factory=capture.open_as)
    with pytest.raises(RuntimeError, match=r"read\(\) before open\(\)"):
        source.read()
    source.open()
    source.close()
    assert capture.released
    with pytest.raises(RuntimeError, match=r"read\(\) before open\(\)"):
        source.read()


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("0", 0),
        (" 3 ", 3),
        ("/dev/video0", "/dev/video0"),
        (BY_ID_PATH, BY_ID_PATH),
    ],
)
def test_parse_device_takes_indices_as_int_and_keeps_paths(device: str, expected: int | str) -> None:
    assert parse_device(device) == expected
    assert type(parse_device(device)) is type(expected)
