"""A webcam for Zoom, Meet and Teams made from synth/image, without ROS: fitting, pacing and the device.

Call apps open a camera once and expect one fixed size at a steady rate, while synthesis delivers
whatever size the model paints, when it gets to it, and stops when the sensor does. Everything here
bridges that gap in plain Python (the node only adds topics and threads): frames are fitted to the
camera size once on arrival, a scheduler decides what each output tick shows, and the device itself
is a v4l2loopback node opened through pyvirtualcam behind a small protocol that tests can fake.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import pyvirtualcam

from thermal_driver.sources.video_device import VIDEO_GROUP_HINT
from thermal_msgs import topics

CARD_LABEL = "Thermal Synth"
"""The name call apps list the camera under; a device with this label is preferred over other loopbacks."""
MODPROBE_COMMAND = (
    f'sudo modprobe v4l2loopback devices=1 video_nr=10 card_label="{CARD_LABEL}" exclusive_caps=1'
)
"""The one line that creates our camera; the README quotes it, so users see the same command everywhere."""
APT_PACKAGE = "v4l2loopback-dkms"
SETUP_HINT = (
    f"install v4l2loopback (`sudo apt install {APT_PACKAGE}`) and create the camera: `{MODPROBE_COMMAND}`"
)
SYSFS_VIDEO4LINUX = Path("/sys/devices/virtual/video4linux")
"""Loopback devices have no parent bus, so the kernel lists them here and real cameras elsewhere."""
BACKEND = "v4l2loopback" if sys.platform.startswith("linux") else None
"""On Linux, naming the backend makes pyvirtualcam's error about the loopback device, not a backend list."""

MAX_SIZE = (2160, 3840)
"""4K UHD, as for synth/image: no call app sends more, and it bounds the per-frame copy and conversion."""
MAX_FPS = 60.0
"""Call apps send at most 60 fps; a faster camera only costs CPU."""
PLACEHOLDER_TEXT = f"Thermal Synth: waiting for {topics.SYNTH_IMAGE}"
PLACEHOLDER_GREY = 48
PLACEHOLDER_INK = 200
PLACEHOLDER_TEXT_SPAN = 0.8
"""Fraction of the frame width the placeholder text spans, so it reads the same at any camera size."""
PLACEHOLDER_FONT = cv2.FONT_HERSHEY_SIMPLEX


class VirtualCameraUnavailable(RuntimeError):
    """The camera cannot be opened; the message says what to run to fix it."""


@dataclass(frozen=True)
class VirtualCameraConfig:
    """Fixed for the node's lifetime: a call app keeps the size it saw when it opened the camera."""

    device: str = ""
    width: int = 640
    height: int = 480
    fps: float = 30.0
    stale_timeout_s: float = 2.0

    def validate(self) -> None:
        """Raises ValueError naming the parameter, so the node refuses to start with one clear line."""
        if self.device and not self.device.startswith("/dev/"):
            raise ValueError(
                f"device must be a /dev/video* path, or empty to find a loopback device; got {self.device!r}"
            )
        max_height, max_width = MAX_SIZE
        if not (0 < self.width <= max_width and 0 < self.height <= max_height):
            raise ValueError(
                f"width and height must be positive and at most {max_width}x{max_height}, "
                f"got {self.width}x{self.height}"
            )
        if self.width % 2 or self.height % 2:
            # pyvirtualcam sends I420, one colour sample per 2x2 block, and sizes its buffer for even sizes.
            raise ValueError(
                f"width and height must be even (the camera carries I420), got {self.width}x{self.height}"
            )
        if not (math.isfinite(self.fps) and 0 < self.fps <= MAX_FPS):
            raise ValueError(f"fps must be in (0, {MAX_FPS:g}], got {self.fps}")
        if not (math.isfinite(self.stale_timeout_s) and self.stale_timeout_s > 0):
            raise ValueError(
                f"stale_timeout_s must be a finite number of seconds > 0, got {self.stale_timeout_s}"
            )

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def fit_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """The whole frame, as large as fits, centred on black: cropping could cut off the person's head.

    Area averaging when shrinking avoids aliasing; cubic when enlarging keeps the 96x128 model output
    from looking blocky. Runs once per input frame, not per output frame, so its cost does not scale
    with the camera rate. Always a new C-contiguous array, never a view of the message buffer.
    """
    rows, cols = frame.shape[:2]
    scale = min(height / rows, width / cols)
    fitted_rows = min(height, max(1, round(rows * scale)))
    fitted_cols = min(width, max(1, round(cols * scale)))
    if (fitted_rows, fitted_cols) != (rows, cols):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        frame = cv2.resize(frame, (fitted_cols, fitted_rows), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fitted_rows) // 2, (width - fitted_cols) // 2
    canvas[top : top + fitted_rows, left : left + fitted_cols] = frame
    return canvas


def placeholder_frame(height: int, width: int, text: str = PLACEHOLDER_TEXT) -> np.ndarray:
    """Shown instead of a frozen last frame, so the other side of the call never sees a stuck person."""
    canvas = np.full((height, width, 3), PLACEHOLDER_GREY, np.uint8)
    (unit_width, _), _ = cv2.getTextSize(text, PLACEHOLDER_FONT, 1.0, 1)
    scale = PLACEHOLDER_TEXT_SPAN * width / unit_width
    thickness = max(1, round(scale))
    (text_width, text_height), _ = cv2.getTextSize(text, PLACEHOLDER_FONT, scale, thickness)
    origin = ((width - text_width) // 2, (height + text_height) // 2)
    ink = (PLACEHOLDER_INK,) * 3
    cv2.putText(canvas, text, origin, PLACEHOLDER_FONT, scale, ink, thickness, cv2.LINE_AA)
    return canvas


class FrameKind(Enum):
    NEW = "new"
    REPEATED = "repeated"
    PLACEHOLDER = "placeholder"


class FrameScheduler:
    """What each output tick shows, so the camera runs at its own rate whatever the input does.

    A slower input repeats its newest frame; an input silent for longer than `stale_timeout_s`, or
    not yet started, shows the placeholder. Thread-safe: frames arrive on the executor and leave on
    the sending thread.
    """

    def __init__(self, config: VirtualCameraConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_timeout_s = config.stale_timeout_s
        self.placeholder = placeholder_frame(config.height, config.width)
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._received_at = -math.inf
        self._sent_latest = False

    def offer(self, frame: np.ndarray) -> None:
        """Takes a frame already fitted to the camera size."""
        with self._lock:
            self._latest, self._received_at, self._sent_latest = frame, self._clock(), False

    def next_frame(self) -> tuple[np.ndarray, FrameKind]:
        with self._lock:
            if self._latest is None or self._clock() - self._received_at > self.stale_timeout_s:
                return self.placeholder, FrameKind.PLACEHOLDER
            kind = FrameKind.REPEATED if self._sent_latest else FrameKind.NEW
            self._sent_latest = True
            return self._latest, kind

    def input_age_s(self) -> float:
        """Seconds since the newest frame arrived; infinite before the first."""
        with self._lock:
            return self._clock() - self._received_at


class FrameSink(Protocol):
    """Where the camera frames go: pyvirtualcam in use, a protocol-checking fake in tests."""

    @property
    def device(self) -> str: ...

    def send(self, frame: np.ndarray) -> None:
        """Takes a C-contiguous uint8 (height, width, 3) RGB frame of the configured size."""

    def close(self) -> None: ...


class PyVirtualCamSink:
    """A v4l2loopback device (an OBS virtual camera elsewhere) through pyvirtualcam."""

    def __init__(self, config: VirtualCameraConfig, device: str | None) -> None:
        try:
            self._camera = pyvirtualcam.Camera(
                config.width,
                config.height,
                config.fps,
                fmt=pyvirtualcam.PixelFormat.RGB,
                device=device,
                backend=BACKEND,
            )
        except (RuntimeError, ValueError) as error:
            raise VirtualCameraUnavailable(explain_open_failure(device, error)) from None

    @property
    def device(self) -> str:
        return self._camera.device

    def send(self, frame: np.ndarray) -> None:
        self._camera.send(frame)

    def close(self) -> None:
        self._camera.close()


@dataclass(frozen=True)
class LoopbackDevice:
    path: str
    label: str
    """The card label call apps list the camera under."""


def loopback_devices(sysfs: Path = SYSFS_VIDEO4LINUX) -> list[LoopbackDevice]:
    """Loopback devices by number, so /dev/video2 comes before /dev/video10 as in the apps' lists."""
    found: list[tuple[int, LoopbackDevice]] = []
    for entry in sysfs.glob("video*"):
        number = re.fullmatch(r"video(\d+)", entry.name)
        if number is None:
            continue
        try:
            label = (entry / "name").read_text().strip()
        except OSError:
            label = ""
        found.append((int(number[1]), LoopbackDevice(f"/dev/{entry.name}", label)))
    return [device for _, device in sorted(found, key=lambda item: item[0])]


def choose_device(devices: list[LoopbackDevice]) -> LoopbackDevice:
    """Ours by its card label, else the first: another loopback may belong to OBS or a browser extension."""
    if not devices:
        raise VirtualCameraUnavailable(
            f"no v4l2loopback device found (none in {SYSFS_VIDEO4LINUX}): {SETUP_HINT}"
        )
    return next((device for device in devices if device.label == CARD_LABEL), devices[0])


def explain_open_failure(device: str | None, error: Exception) -> str:
    """pyvirtualcam's reason plus the fix, because "could not be configured" alone helps nobody."""
    target = device or "the first loopback device"
    reason = str(error).rstrip(".")
    message = f"cannot open {target} as a virtual camera ({reason})"
    if "permission" in reason.lower():
        return f"{message}; {VIDEO_GROUP_HINT}"
    if "busy" in reason.lower() or "in use" in reason.lower():
        return (
            f"{message}; another program holds it at another size or format (`fuser {target}` names it): "
            "close that program, or load v4l2loopback with devices=2 and set `device`"
        )
    return f"{message}; it must be a v4l2loopback device: {SETUP_HINT}"


def open_virtual_camera(config: VirtualCameraConfig) -> PyVirtualCamSink:
    """The node's default sink: the configured device, else our labelled loopback, else the first one."""
    device = config.device or None
    if device is None and BACKEND == "v4l2loopback":
        device = choose_device(loopback_devices()).path
    return PyVirtualCamSink(config, device)
