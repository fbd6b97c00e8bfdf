"""The `virtual_camera` node: synth/image as a webcam that Zoom, Meet and Teams can pick.

Frames are sent by a worker thread on absolute deadlines, not by a ROS timer: the executor also
deserialises incoming images and fits them to the camera size (milliseconds each at 640x480), and a
timer queued behind that work on run_node's single-threaded executor would jitter and drift. The
thread's cadence depends only on its own sleep and send. The subscription fits each frame once and
hands it to the scheduler, which decides whether a tick shows it, repeats it or shows the placeholder.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from sensor_msgs.msg import Image

from thermal_msgs import topics
from thermal_msgs.diagnostics import ERROR, OK, WARN, RateMeter, diagnostic_array
from thermal_msgs.node_main import ConfigError, run_guarded, run_node
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_msgs.validation import FOLLOW_AFTER_FRAMES, ImageValidator, Rejection, RejectionTally
from thermal_synth.engine.pacing import OutputClock
from thermal_synth.engine.webcam import (
    CARD_LABEL,
    FrameKind,
    FrameScheduler,
    FrameSink,
    VirtualCameraConfig,
    VirtualCameraUnavailable,
    fit_frame,
    open_virtual_camera,
)

NODE_NAME = "virtual_camera"
BAD_FRAME_LOG_PERIOD_S = 5.0
WORKER_JOIN_S = 5.0

SinkFactory = Callable[[VirtualCameraConfig], FrameSink]


def _read_only(description: str) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=f"{description} (read-only: restart the node to change)", read_only=True
    )


class VirtualCameraNode(Node):
    def __init__(self, *, sink_factory: SinkFactory = open_virtual_camera, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.config = self._declare_config()
            self.config.validate()
            self.sink = sink_factory(self.config)
        except (ValueError, InvalidParameterTypeException, VirtualCameraUnavailable) as error:
            # Release the half-built node's services now: a retry under the same name must not race them.
            super().destroy_node()
            raise ConfigError(str(error)) from error

        self._scheduler = FrameScheduler(self.config)
        self._input_rate = RateMeter()
        self._output_rate = RateMeter()
        self.frames_sent = 0
        self.frames_repeated = 0
        self.placeholder_frames = 0
        # thermal_synth's output_size is live: a new size that lasts is followed, a stray frame is not.
        self._validator = ImageValidator(topics.SYNTH_IMAGE, follow_after=FOLLOW_AFTER_FRAMES)
        self.rejected = RejectionTally(log_period_s=BAD_FRAME_LOG_PERIOD_S)
        self._bad_at_last_report = 0
        self.last_problem = ""
        self.showing_placeholder = True
        self._stop = threading.Event()
        self.failure: BaseException | None = None

        self._diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_subscription(Image, topics.SYNTH_IMAGE, self._receive, STREAM_SUBSCRIBER_QOS)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._guarded_send, name="virtual_camera", daemon=True)
        self.get_logger().info(
            f"virtual camera {self.sink.device}: {self.config.size} at {self.config.fps:g} fps; "
            "pick it in the call app's camera settings"
        )
        self._worker.start()

    def _declare_config(self) -> VirtualCameraConfig:
        defaults = VirtualCameraConfig()

        def declare(name: str, description: str):
            return self.declare_parameter(name, getattr(defaults, name), _read_only(description)).value

        return VirtualCameraConfig(
            device=declare(
                "device",
                f"/dev/video* of the v4l2loopback device; empty = the one labelled {CARD_LABEL!r}, "
                "else the first loopback device",
            ),
            width=declare(
                "width", "camera width in pixels, even, at most 3840; frames are fitted, not cropped"
            ),
            height=declare("height", "camera height in pixels, even, at most 2160"),
            fps=declare("fps", "frames per second sent to the camera, whatever the rate of synth/image"),
            stale_timeout_s=declare(
                "stale_timeout_s", "seconds without synth/image before a placeholder replaces the last frame"
            ),
        )

    @property
    def frames_dropped_bad(self) -> int:
        return self.rejected.total

    def _receive(self, msg: Image) -> None:
        """Only a valid rgb8 frame is fitted and offered: anything else would show in the call with
        swapped or missing colours, or not at all."""
        frame = self._validator.check(msg)
        if isinstance(frame, Rejection):
            self._drop_bad(frame)
            return
        self._scheduler.offer(fit_frame(frame, self.config.height, self.config.width))
        self._input_rate.tick()

    def _drop_bad(self, rejection: Rejection) -> None:
        self.last_problem = str(rejection)
        if self.rejected.add(rejection):
            self.get_logger().warning(self.rejected.log_line(topics.SYNTH_IMAGE, rejection))

    def _guarded_send(self) -> None:
        run_guarded(self, self._send_loop, "virtual camera", self._fail)

    def _fail(self, problem: str) -> None:
        self.last_problem = problem
        self._stop.set()

    def _send_loop(self) -> None:
        clock = OutputClock(self.config.fps, time.monotonic())
        while not self._stop.wait(clock.wait_s(time.monotonic())):
            frame, kind = self._scheduler.next_frame()
            self.sink.send(frame)
            self._count(kind)
            clock.advance(time.monotonic())

    def _count(self, kind: FrameKind) -> None:
        self.frames_sent += 1
        self._output_rate.tick()
        if kind is FrameKind.REPEATED:
            self.frames_repeated += 1
        placeholder = kind is FrameKind.PLACEHOLDER
        if placeholder:
            self.placeholder_frames += 1
        if placeholder != self.showing_placeholder:
            self.showing_placeholder = placeholder
            self._announce(placeholder)

    def _announce(self, placeholder: bool) -> None:
        """One line per switch, so a log shows when the call saw the placeholder and for how long."""
        if placeholder:
            self.get_logger().warning(
                f"no {topics.SYNTH_IMAGE} for {self.config.stale_timeout_s:g} s: showing the placeholder"
            )
        else:
            self.get_logger().info(f"{topics.SYNTH_IMAGE} arrived: streaming to {self.sink.device}")

    def _publish_diagnostics(self) -> None:
        level, message = self._health()
        state = "failed" if self.failure else ("placeholder" if self.showing_placeholder else "streaming")
        values = {
            "state": state,
            "device": self.sink.device,
            "size": self.config.size,
            "output_fps": f"{self._output_rate.rate_hz():.2f}",
            "target_fps": f"{self.config.fps:g}",
            "input_fps": f"{self._input_rate.rate_hz():.2f}",
            "frames_sent": str(self.frames_sent),
            "frames_repeated": str(self.frames_repeated),
            "placeholder_frames": str(self.placeholder_frames),
            "frames_dropped_bad": str(self.frames_dropped_bad),
            **self.rejected.diagnostic_values(),
            "last_problem": self.last_problem,
        }
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                name=f"{self.get_fully_qualified_name()}: virtual camera",
                hardware_id=self.sink.device,
                level=level,
                message=message,
                values=values,
            )
        )

    def _health(self) -> tuple[bytes, str]:
        """Bad frames warn only in the report after they arrived: one burst must not taint it for good."""
        bad_since_last, self._bad_at_last_report = (
            self.frames_dropped_bad - self._bad_at_last_report,
            self.frames_dropped_bad,
        )
        if self.failure is not None:
            return ERROR, self.last_problem
        if self.showing_placeholder:
            return WARN, self._placeholder_reason()
        if bad_since_last:
            return WARN, f"dropped {bad_since_last} bad frames: {self.last_problem}"
        return OK, f"streaming to {self.sink.device}"

    def _placeholder_reason(self) -> str:
        age_s = self._scheduler.input_age_s()
        if math.isinf(age_s):
            return f"showing the placeholder: no {topics.SYNTH_IMAGE} yet"
        return f"showing the placeholder: no {topics.SYNTH_IMAGE} for {age_s:.1f} s"

    def destroy_node(self) -> None:
        self._stop.set()
        self._worker.join(timeout=WORKER_JOIN_S)
        self.sink.close()
        super().destroy_node()


NODE_CLASS = VirtualCameraNode


def main(args: list[str] | None = None) -> int:
    return run_node(NODE_NAME, VirtualCameraNode, args)


if __name__ == "__main__":
    sys.exit(main())
