"""The `rgb_camera` node: any OpenCV camera, video file or stream on camera/image_raw (rgb8).

For users without usb_cam or v4l2_camera, who need the RGB half of training pairs. One thread
grabs, stamps, converts and publishes: a webcam queues frames in kernel buffers, so unlike the
Lepton nothing is lost while a publish takes a few milliseconds, and the executor stays free for
parameters and diagnostics. A missing or unplugged camera never ends the node; it retries with
backoff, because cameras get plugged in after bring-up and USB hubs reset.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from thermal_driver.sources.base import SensorUnavailable
from thermal_driver.sources.video_device import (
    explain_open_failure,
    is_local_file,
    open_capture,
    parse_device,
)
from thermal_msgs import topics
from thermal_msgs.diagnostics import ERROR, OK, WARN, RateMeter, diagnostic_array
from thermal_msgs.image import array_to_image
from thermal_msgs.node_main import ConfigError, run_guarded, run_node
from thermal_msgs.qos import stream_publisher_qos

NODE_NAME = "rgb_camera"
LOW_RATE_FRACTION = 0.8
FPS_TOLERANCE = 0.5
"""V4L2 reports rates such as 29.97 for a requested 30: not worth a log line."""
MAX_FPS = 1000.0


@dataclass(frozen=True)
class CameraConfig:
    """Everything fixed for the node's lifetime: changing the device or its format means reopening it."""

    device: str = "0"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    fourcc: str = ""
    loop: bool = False
    reliability: str = "reliable"
    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0

    def validate(self) -> None:
        """Raises ValueError naming the parameter, so the node refuses to start with one clear line."""
        if not self.device.strip():
            raise ValueError(
                "device must not be empty: a video index (0), a /dev/video* path, a file or a URL"
            )
        if self.width < 0 or self.height < 0:
            raise ValueError(
                f"width and height must be >= 0 (0 = the device's default), got {self.width}x{self.height}"
            )
        if not (math.isfinite(self.fps) and 0 < self.fps <= MAX_FPS):
            raise ValueError(f"fps must be in (0, {MAX_FPS:.0f}], got {self.fps}")
        if self.fourcc and (len(self.fourcc) != 4 or not self.fourcc.isascii()):
            raise ValueError(
                f"fourcc must be 4 ASCII characters such as MJPG or YUYV (empty = device default), "
                f"got {self.fourcc!r}"
            )
        if not (math.isfinite(self.retry_max_s) and 0 < self.retry_initial_s <= self.retry_max_s):
            raise ValueError(
                "retry_initial_s and retry_max_s must satisfy 0 < retry_initial_s <= retry_max_s, "
                f"got {self.retry_initial_s} and {self.retry_max_s}"
            )


@dataclass(frozen=True)
class StreamFormat:
    """What the device actually delivers: V4L2 silently rounds a request to the nearest mode it has."""

    width: int
    height: int
    fps: float
    fourcc: str

    def describe(self) -> str:
        codec = f", {self.fourcc}" if self.fourcc else ""
        return f"{self.width}x{self.height} at {self.fps:.1f} fps{codec}"


class EndOfFile(Exception):
    """A video file ran out: the normal end of a replay, not a lost device."""


def decode_fourcc(code: float) -> str:
    """OpenCV returns FOURCC as a float; empty when the backend does not know it."""
    if not 0 < code < 2**32:
        return ""
    text = int(code).to_bytes(4, "little").decode("ascii", errors="replace")
    return text if text.isprintable() and text.strip() else ""


class OpenCvCamera:
    """One device as OpenCV sees it. Plain Python, so the node only deals with threads and messages."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.device = parse_device(config.device)
        self._capture: cv2.VideoCapture | None = None
        self.is_file = False

    def open(self) -> StreamFormat:
        capture = open_capture(self.device)
        if not capture.isOpened():
            capture.release()
            raise SensorUnavailable(explain_open_failure(self.device))
        self.is_file = is_local_file(self.device)
        if not self.is_file:
            self._request_format(capture)
        self._capture = capture
        return StreamFormat(
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=capture.get(cv2.CAP_PROP_FPS),
            fourcc=decode_fourcc(capture.get(cv2.CAP_PROP_FOURCC)),
        )

    def _request_format(self, capture: cv2.VideoCapture) -> None:
        """FOURCC first: a camera offers different sizes and rates per pixel format."""
        config = self.config
        if config.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*config.fourcc))
        if config.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        if config.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        capture.set(cv2.CAP_PROP_FPS, config.fps)

    def grab(self) -> None:
        """Waits for the next frame without decoding it, so the caller can stamp the moment it arrived."""
        if self._capture is None:
            raise RuntimeError("grab() before open()")
        if self._capture.grab():
            return
        if self.is_file:
            raise EndOfFile(f"{self.device}: end of file")
        raise SensorUnavailable(
            f"lost {self.device!r}: it stopped delivering frames (unplugged, or a USB reset?); reconnecting"
        )

    def retrieve_rgb(self) -> np.ndarray:
        if self._capture is None:
            raise RuntimeError("retrieve_rgb() before open()")
        ok, frame = self._capture.retrieve()
        if not ok or frame is None:
            raise SensorUnavailable(f"{self.device!r}: a frame arrived but could not be decoded")
        return self._to_rgb(frame)

    def _to_rgb(self, frame: np.ndarray) -> np.ndarray:
        channels = 1 if frame.ndim == 2 else frame.shape[2]
        conversions = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
        if frame.dtype != np.uint8 or channels not in conversions:
            raise SensorUnavailable(
                f"{self.device!r} delivers {frame.dtype} frames of shape {frame.shape}, not 8-bit colour "
                "(a thermal or depth camera? try fourcc MJPG or YUYV)"
            )
        return cv2.cvtColor(frame, conversions[channels])

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _descriptor(
    description: str, *, read_only: bool = True, dynamic_typing: bool = False
) -> ParameterDescriptor:
    if read_only:
        description = f"{description} (read-only: restart the node to change)"
    return ParameterDescriptor(description=description, read_only=read_only, dynamic_typing=dynamic_typing)


class RgbCameraNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.config = self._declare_parameters()
            self.config.validate()
            self._qos = stream_publisher_qos(self.config.reliability)
            self._frame_id = self._declare(
                "frame_id", topics.CAMERA_FRAME_ID, "header frame_id", read_only=False
            )
            _validate_frame_id(self._frame_id)
        except ValueError as error:
            # Release the half-built node's services now: a retry under the same name must not race them.
            super().destroy_node()
            raise ConfigError(str(error)) from error

        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._camera = OpenCvCamera(self.config)
        self._image_pub = self.create_publisher(Image, topics.CAMERA_IMAGE_RAW, self._qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_timer(1.0, self._publish_diagnostics)

        self._rate = RateMeter()
        self._frames_published = 0
        self._retries = 0
        self._state = "starting"
        self._problem = ""
        self._has_streamed = False
        self._format: StreamFormat | None = None
        self._format_announced = False
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded_capture, name="rgb_capture", daemon=True)
        self.get_logger().info(
            f"device={self.config.device} requested={self._requested()} reliability={self.config.reliability}"
        )
        self._thread.start()

    def _declare(self, name: str, default: object, description: str, **descriptor_options: bool) -> object:
        try:
            return self.declare_parameter(name, default, _descriptor(description, **descriptor_options)).value
        except InvalidParameterTypeException:
            kind = Parameter.Type.from_parameter_value(default).name.lower()
            raise ValueError(f"{name} must be of type {kind}, like {default!r}") from None

    def _declare_parameters(self) -> CameraConfig:
        defaults = CameraConfig()
        declare = self._declare
        device = declare(
            "device",
            defaults.device,
            "video index (0 = /dev/video0), /dev/video* or /dev/v4l/by-id/... path, video file or URL",
            dynamic_typing=True,
        )
        if not isinstance(device, (int, str)) or isinstance(device, bool):
            raise ValueError(f"device must be a video index or a path, got {device!r}")
        return CameraConfig(
            # `-p device:=0` arrives as an integer; accepting it saves every user the quoting puzzle.
            device=str(device),
            width=declare("width", defaults.width, "requested frame width in pixels, 0 = device default"),
            height=declare("height", defaults.height, "requested frame height in pixels, 0 = device default"),
            fps=declare("fps", defaults.fps, "requested frame rate; for a video file, the playback rate"),
            fourcc=declare(
                "fourcc", defaults.fourcc, "requested pixel format such as MJPG or YUYV; empty = default"
            ),
            loop=declare("loop", defaults.loop, "video file: start over at the end"),
            reliability=declare(
                "reliability",
                defaults.reliability,
                "reliable (REP-2003: matches every subscriber) or best_effort",
            ),
            retry_initial_s=declare(
                "retry_initial_s", defaults.retry_initial_s, "first wait before reopening a missing device"
            ),
            retry_max_s=declare("retry_max_s", defaults.retry_max_s, "longest wait between reopen attempts"),
        )

    def _requested(self) -> str:
        config = self.config
        size = f"{config.width or 'default'}x{config.height or 'default'}"
        codec = f", {config.fourcc}" if config.fourcc else ""
        return f"{size} at {config.fps:.1f} fps{codec}"

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == "frame_id":
                try:
                    _validate_frame_id(parameter.value)
                except ValueError as error:
                    return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        for parameter in parameters:
            if parameter.name == "frame_id":
                self._frame_id = parameter.value

    def _guarded_capture(self) -> None:
        try:
            run_guarded(self, self._capture_loop, "capture", self._fail)
        finally:
            self._camera.close()

    def _fail(self, problem: str) -> None:
        self._state, self._problem = "failed", problem

    def _capture_loop(self) -> None:
        """Backoff restarts only once a frame got through, so a device that opens but never streams
        (busy, wrong format) is retried as slowly as one that is missing."""
        retry_s = self.config.retry_initial_s
        while not self._stop.is_set():
            published_before = self._frames_published
            try:
                self._stream(self._camera.open())
            except SensorUnavailable as error:
                if self._frames_published > published_before:
                    retry_s = self.config.retry_initial_s
                self._report_problem(str(error), retry_s)
                self._retries += 1
                self._stop.wait(retry_s)
                retry_s = min(2 * retry_s, self.config.retry_max_s)
            except EndOfFile as end:
                if not self.config.loop:
                    self._finish(str(end))
                    return
                retry_s = self.config.retry_initial_s
                self.get_logger().debug(f"{end}; looping")
            finally:
                self._camera.close()

    def _start_streaming(self, stream_format: StreamFormat) -> None:
        if self._state != "streaming":
            self.get_logger().info(f"streaming {self.config.device}: {stream_format.describe()}")
        self._state, self._problem, self._has_streamed = "streaming", "", True
        self._format = stream_format
        if not self._format_announced:
            self._format_announced = True
            self._announce_format(stream_format)

    def _announce_format(self, delivered: StreamFormat) -> None:
        """Once per node: a camera ignoring the request is worth one line, not one per reconnect."""
        config = self.config
        if self._camera.is_file:
            self.get_logger().info(
                f"{config.device} is a video file ({delivered.describe()}): played at fps={config.fps:.1f}, "
                "frames published at the file's own size"
            )
            return
        differs = (
            (config.width and delivered.width != config.width)
            or (config.height and delivered.height != config.height)
            or (delivered.fps > 0 and abs(delivered.fps - config.fps) > FPS_TOLERANCE)
            or (config.fourcc and delivered.fourcc and delivered.fourcc != config.fourcc)
        )
        if differs:
            self.get_logger().info(
                f"{config.device} delivers {delivered.describe()}, not the requested {self._requested()}: "
                "`v4l2-ctl --list-formats-ext` lists the modes it offers"
            )

    def _stream(self, stream_format: StreamFormat) -> None:
        """Video files are paced at `fps`; cameras pace themselves, so waiting on grab() is the clock."""
        period = 1.0 / self.config.fps
        due = time.monotonic()
        frames = 0
        while not self._stop.is_set():
            if self._camera.is_file:
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                due = max(due + period, time.monotonic())
            try:
                self._camera.grab()
            except EndOfFile:
                if frames == 0:
                    raise SensorUnavailable(
                        f"{self.config.device}: the file has no decodable frames"
                    ) from None
                raise
            stamp = self.get_clock().now().to_msg()
            rgb = self._camera.retrieve_rgb()
            self._image_pub.publish(
                array_to_image(rgb, topics.RGB_ENCODING, stamp=stamp, frame_id=self._frame_id)
            )
            if frames == 0:
                self._start_streaming(stream_format)
            frames += 1
            self._frames_published += 1
            self._rate.tick()

    def _report_problem(self, problem: str, retry_s: float) -> None:
        """One ERROR per distinct problem; repeats only at debug level, so an unplugged camera is no spam."""
        if problem != self._problem:
            self.get_logger().error(
                f"{problem}; retrying in {retry_s:.1f} s, backing off to every {self.config.retry_max_s:g} s"
            )
        else:
            self.get_logger().debug(f"retry {self._retries}: {problem}")
        self._state = "lost device" if self._has_streamed else "waiting for device"
        self._problem = problem

    def _finish(self, reason: str) -> None:
        self._state, self._problem = "finished", f"{reason} after {self._frames_published} frames"
        self.get_logger().info(f"{self._problem}; loop is false, so publishing stops (the node stays up)")

    def _publish_diagnostics(self) -> None:
        rate = self._rate.rate_hz()
        level, message = self._health(rate)
        values = {
            "state": self._state,
            "device": self.config.device,
            "frames_published": str(self._frames_published),
            "achieved_fps": f"{rate:.2f}",
            "retries": str(self._retries),
            "requested": self._requested(),
        }
        stream_format = self._format
        if stream_format is not None:
            values.update(
                delivered_width=str(stream_format.width),
                delivered_height=str(stream_format.height),
                delivered_fps=f"{stream_format.fps:.2f}",
                delivered_fourcc=stream_format.fourcc,
            )
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                name=f"{self.get_fully_qualified_name()}: camera",
                hardware_id=self.config.device,
                level=level,
                message=message,
                values=values,
            )
        )

    def _expected_fps(self) -> float:
        """A file plays at `fps`; a camera at whatever rate it agreed to, when it says."""
        stream_format = self._format
        if self._camera.is_file or stream_format is None or stream_format.fps <= 0:
            return self.config.fps
        return stream_format.fps

    def _health(self, rate: float) -> tuple[bytes, str]:
        if self._state in ("waiting for device", "lost device", "failed"):
            return ERROR, self._problem
        if self._state == "finished":
            return OK, self._problem
        expected = self._expected_fps()
        if (
            self._state == "streaming"
            and self._frames_published > 2 * expected
            and rate < LOW_RATE_FRACTION * expected
        ):
            return WARN, f"{rate:.1f} fps, below the expected {expected:.1f} (auto-exposure in dim light?)"
        return OK, self._state

    def destroy_node(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        super().destroy_node()


def _validate_frame_id(frame_id: object) -> None:
    if not isinstance(frame_id, str) or not frame_id:
        raise ValueError(f"frame_id must be a non-empty string, got {frame_id!r}")


NODE_CLASS = RgbCameraNode
"""What the runner builds for `--single-process`; `main` is what it runs as a process."""


def main(args: list[str] | None = None) -> int:
    return run_node(NODE_NAME, RgbCameraNode, args)


if __name__ == "__main__":
    sys.exit(main())
