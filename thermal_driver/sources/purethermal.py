"""PureThermal 1/2/3/Mini boards: a Lepton behind a UVC bridge, read as Y16 through OpenCV V4L2.

With a Lepton 3.5 the board streams TLinear centi-Kelvin at 160x120 (160x122 with telemetry rows).
The failure users hit most is OpenCV silently converting to 8-bit BGR; we ask for Y16 with
RGB conversion off and refuse anything that is not 16-bit, instead of publishing garbage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from thermal_driver.sources.base import SensorUnavailable, ThermalFrame
from thermal_driver.sources.video_device import open_capture, parse_device

FRAME_SHAPE = (120, 160)
TELEMETRY_ROWS = 2
PLAUSIBLE_CENTIKELVIN = (20000, 45000)
"""-73 degC .. 177 degC: anything outside on most pixels means the board is not in TLinear mode."""


class VideoCapture(Protocol):
    """The part of cv2.VideoCapture we use, so tests can substitute a protocol-checking fake."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)

    def set(self, prop: int, value: float) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def open_v4l2(device: int | str) -> VideoCapture:
    """Always V4L2: only its backend honours the Y16 and CONVERT_RGB requests."""
    return open_capture(device, cv2.CAP_V4L2)


class PureThermalSource:
    name = "purethermal"
    provides_rgb = False
    nominal_rate_hz = 8.7

    def __init__(self, device: str = "0", capture_factory: Callable[[int | str], VideoCapture] = open_v4l2):
        self.device = parse_device(device)
        self._capture_factory = capture_factory
        self._capture: VideoCapture | None = None
        self._frames = 0
        self._implausible_frames = 0

    def open(self) -> None:
        capture = self._capture_factory(self.device)
        if not capture.isOpened():
            capture.release()
            raise SensorUnavailable(
                f"cannot open video device {self.device!r}: is the PureThermal plugged in? "
                "`v4l2-ctl --list-devices` shows it as 'PureThermal (fw:...)'; check group video"
            )
        requested = (
            (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc("Y", "1", "6", " ")),
            (cv2.CAP_PROP_CONVERT_RGB, 0),
            (cv2.CAP_PROP_FRAME_WIDTH, FRAME_SHAPE[1]),
            (cv2.CAP_PROP_FRAME_HEIGHT, FRAME_SHAPE[0]),
        )
        for prop, value in requested:
            capture.set(prop, value)
        self._capture = capture

    def read(self) -> ThermalFrame:
        if self._capture is None:
            raise RuntimeError("read() before open()")
        ok, image = self._capture.read()
        if not ok or image is None:
            raise SensorUnavailable(
                f"video device {self.device!r} stopped delivering frames (unplugged, or the known "
                "PureThermal stall after hours of streaming); reopening"
            )
        frame = self._to_centikelvin(image)
        self._frames += 1
        return ThermalFrame(centikelvin=frame)

    def _to_centikelvin(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint16 or (image.ndim == 3 and image.shape[2] != 1):
            raise SensorUnavailable(
                f"video device {self.device!r} delivers {image.dtype} frames of shape {image.shape}, not "
                "16-bit Y16: it is not a PureThermal, or the V4L2 backend ignored the Y16 request"
            )
        frame = image.reshape(image.shape[:2])
        if frame.shape == (FRAME_SHAPE[0] + TELEMETRY_ROWS, FRAME_SHAPE[1]):
            frame = frame[: FRAME_SHAPE[0]]
        if frame.shape != FRAME_SHAPE:
            raise SensorUnavailable(
                f"video device {self.device!r} delivers {frame.shape[1]}x{frame.shape[0]} Y16 frames, "
                f"expected {FRAME_SHAPE[1]}x{FRAME_SHAPE[0]} (Lepton 3.x)"
            )
        low, high = PLAUSIBLE_CENTIKELVIN
        if np.median(frame) < low or np.median(frame) > high:
            self._implausible_frames += 1
            raise SensorUnavailable(
                f"video device {self.device!r}: median pixel {int(np.median(frame))} is not a plausible "
                "centi-Kelvin value (~29000-31500 indoors); the board is not in radiometric TLinear mode "
                "(a Lepton 3.0, or TLinear disabled)"
            )
        return np.ascontiguousarray(frame)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def diagnostics(self) -> dict[str, str]:
        return {"device": str(self.device), "implausible_frames": str(self._implausible_frames)}
