"""The `pair_recorder` node: thermal and RGB frames in, a rosbag2 of matched pairs out.

Every thermal frame is paired with the RGB frame nearest in header stamp within `slop_s`, and
both are written under the thermal stamp to /pairs/thermal and /pairs/rgb (the dataset builder
joins them on it). Unpaired frames are counted in /diagnostics, never written as pairs. Every
frame is checked on arrival (`thermal_msgs.validation`: the topic's encodings, pixels that match
the declared size, one size per topic and recording), so a pair is written only when both its
halves passed; refusals are counted per reason. The session labels go into the bag, so the
builder can name appearances and split by session.

Recording starts with the node (`record_on_start`) or with the `~/record` SetBool service;
stopping finalises the bag, and starting again opens a new one beside it. Parameters are read
when a recording starts, so changing the labels between takes needs no restart.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

from thermal_msgs import topics
from thermal_msgs.diagnostics import ERROR, OK, WARN, RateMeter, diagnostic_array
from thermal_msgs.node_main import ConfigError, run_node
from thermal_msgs.qos import stream_publisher_qos
from thermal_msgs.units import stamp_ns
from thermal_msgs.validation import ImageValidator, Rejection, RejectionTally
from thermal_synth.recording.bags import STORAGES, BagOptions, BagWriteError, SessionLabels
from thermal_synth.recording.pairing import MatchedPair, PairingConfig
from thermal_synth.recording.session import Recording

NODE_NAME = "pair_recorder"
SUBSCRIPTION_DEPTH = 10
BAD_FRAME_LOG_PERIOD_S = 5.0
NO_CAMERA_WARNING_FRAMES = 18
"""Thermal frames (about 2 s of a Lepton) without any RGB frame before the recorder says so."""
LABELS = ("person", "outfit", "scene", "notes")
VALIDATED_TOPICS = (topics.THERMAL_IMAGE_RAW, topics.CAMERA_IMAGE_RAW, topics.CAMERA_PERSON_MASK)
SETTINGS_PARAMETERS = ("bag_path", "storage", "slop_s", "max_bag_size_mb", "max_bag_duration_s", *LABELS)


@dataclass(frozen=True)
class RecorderSettings:
    """What a recording is started with; validated as a whole so a bad edit is refused at once."""

    bag_path: str
    storage: str
    slop_s: float
    labels: SessionLabels
    max_bag_size_mb: float
    max_bag_duration_s: float

    def __post_init__(self) -> None:
        self.bag_options()
        self.pairing()

    def bag_options(self) -> BagOptions:
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        return BagOptions(
            storage=self.storage,
            max_bag_size_mb=self.max_bag_size_mb,
            max_bag_duration_s=self.max_bag_duration_s,
        )

    def pairing(self) -> PairingConfig:
        return PairingConfig(slop_s=self.slop_s)


def new_bag_path(requested: str, now: float | None = None) -> Path:
    """Never overwrites: an existing directory gets a numbered sibling, like a second take."""
    if requested:
        base = Path(requested).expanduser()
    else:
        base = Path(time.strftime("pairs_%Y_%m_%d-%H_%M_%S", time.localtime(now)))
    candidate, take = base, 1
    while candidate.exists():
        take += 1
        candidate = base.with_name(f"{base.name}_{take}")
    return candidate


def serialize_pair(pair: MatchedPair[Image, Image], mask: Image | None) -> tuple[bytes, bytes, bytes | None]:
    """The RGB frame (and its mask) take the thermal stamp: one stamp per pair, as the bag promises."""
    thermal, rgb = pair.thermal, pair.rgb
    rgb.header.stamp = thermal.header.stamp
    if mask is not None:
        mask.header.stamp = thermal.header.stamp
    return (
        serialize_message(thermal),
        serialize_message(rgb),
        None if mask is None else serialize_message(mask),
    )


class PairRecorderNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        declare = self.declare_parameter
        reliability = declare(
            "reliability",
            "reliable",
            ParameterDescriptor(
                description="subscription reliability: reliable (lossless from reliable publishers) or "
                "best_effort (needed for best-effort cameras); read-only",
                read_only=True,
            ),
        ).value
        declare(
            "bag_path",
            "",
            ParameterDescriptor(
                description="directory of the bag to create (empty = pairs_YYYY_MM_DD-HH_MM_SS); "
                "an existing one gets a numbered sibling"
            ),
        )
        declare("storage", "mcap", ParameterDescriptor(description="mcap or sqlite3"))
        declare(
            "slop_s",
            0.05,
            ParameterDescriptor(description="largest thermal/RGB stamp difference still paired, seconds"),
        )
        record_on_start = declare(
            "record_on_start", True, ParameterDescriptor(description="start recording with the node")
        ).value
        for label in LABELS:
            declare(label, "", ParameterDescriptor(description=f"session label {label!r}, stored in the bag"))
        declare(
            "max_bag_size_mb",
            0.0,
            ParameterDescriptor(description="start a new bag file after this many MB (0 = never)"),
        )
        declare(
            "max_bag_duration_s",
            0.0,
            ParameterDescriptor(description="start a new bag file after this many seconds (0 = never)"),
        )
        try:
            self._settings_with([])
            qos = stream_publisher_qos(reliability)
        except ValueError as error:
            super().destroy_node()
            raise ConfigError(str(error)) from error
        qos.depth = SUBSCRIPTION_DEPTH
        self.add_on_set_parameters_callback(self._validate_parameters)

        self.recording: Recording | None = None
        self.last_summary = ""
        self.rejected = RejectionTally(log_period_s=BAD_FRAME_LOG_PERIOD_S)
        self._validators = self._new_validators()
        self.last_problem = ""
        self._write_error = ""
        self._control = threading.Lock()
        self._rate = RateMeter()
        self._last_written = 0
        self._dropped_at_last_report = 0
        self._unmatched_at_last_report = 0
        self._rejected_at_last_report = 0
        self.failure: BaseException | None = None

        events = SubscriptionEventCallbacks(incompatible_qos=self._incompatible_qos)
        self.create_subscription(
            Image, topics.THERMAL_IMAGE_RAW, self._on_thermal, qos, event_callbacks=events
        )
        self.create_subscription(Image, topics.CAMERA_IMAGE_RAW, self._on_rgb, qos, event_callbacks=events)
        self.create_subscription(Image, topics.CAMERA_PERSON_MASK, self._on_mask, qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_service(SetBool, "~/record", self._record_service)
        self.create_timer(1.0, self._publish_diagnostics)

        if record_on_start:
            try:
                self.start()
            except (ValueError, BagWriteError) as error:
                super().destroy_node()
                raise ConfigError(str(error)) from error

    @property
    def frames_dropped_bad(self) -> int:
        return self.rejected.total

    @staticmethod
    def _new_validators() -> dict[str, ImageValidator]:
        """Strict about size: a bag holds one size per topic, whatever the camera does mid-recording."""
        return {topic: ImageValidator(topic) for topic in VALIDATED_TOPICS}

    def _settings_with(self, parameters: list[Parameter]) -> RecorderSettings:
        """The settings a recording would start with, given pending parameter changes."""
        values = {name: self.get_parameter(name).value for name in SETTINGS_PARAMETERS}
        values |= {parameter.name: parameter.value for parameter in parameters if parameter.name in values}
        return RecorderSettings(
            bag_path=values["bag_path"],
            storage=values["storage"],
            slop_s=values["slop_s"],
            labels=SessionLabels(**{label: values[label] for label in LABELS}),
            max_bag_size_mb=values["max_bag_size_mb"],
            max_bag_duration_s=values["max_bag_duration_s"],
        )

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        try:
            self._settings_with(parameters)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def start(self) -> Path:
        """Opens a new bag with the current parameters; raises BagWriteError if it cannot be created."""
        with self._control:
            if self.recording is not None and self.recording.active:
                return self.recording.path
            settings = self._settings_with([])
            path = new_bag_path(settings.bag_path)
            try:
                # Like `ros2 bag record -o a/b`: missing parent directories are created.
                path.absolute().parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise BagWriteError(f"{path}: cannot create its parent directory: {error}") from error
            self._write_error = ""
            self._validators = self._new_validators()
            self.recording = Recording(
                path,
                settings.labels,
                settings.bag_options(),
                pairing=settings.pairing(),
                serialize=serialize_pair,
                on_error=self._on_write_error,
            )
            self._last_written = 0
        self.get_logger().info(f"recording pairs to {path} ({settings.storage})")
        return path

    def stop(self) -> str:
        """Finalises the bag; the returned line is what the service and the log report."""
        with self._control:
            recording, self.recording = self.recording, None
        if recording is None:
            return "not recording"
        summary = recording.stop()
        stats = recording.stats
        if summary is None:
            report = f"stopped {recording.path}: {stats.error}"
        else:
            report = (
                f"wrote {summary.pairs} pairs to {summary.path} ({len(summary.files)} file(s), "
                f"{summary.duration_s:.1f} s); unpaired thermal frames: {stats.pairing.thermal_unmatched}, "
                f"pairs dropped: {stats.pairs_dropped}"
            )
        self.last_summary = report
        self._shutdown_safe_logger().info(report)
        return report

    def _shutdown_safe_logger(self) -> RcutilsLogger:
        """After Ctrl-C the context is gone before the final report: a logger under the node's own
        name would try to publish it on the dead /rosout and complain, a child logger just prints."""
        return self.get_logger() if self.context.ok() else get_logger(f"{NODE_NAME}.shutdown")

    def _record_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if not request.data:
            response.success, response.message = True, self.stop()
            return response
        try:
            response.message = f"recording to {self.start()}"
            response.success = True
        except (ValueError, BagWriteError) as error:
            response.success, response.message = False, str(error)
            self.get_logger().error(f"cannot start recording: {error}")
        return response

    def _on_write_error(self, message: str) -> None:
        """Runs on the writer thread; the recording has stopped itself, the node stays up."""
        self._write_error = message
        self.get_logger().error(f"recording stopped: {message}")

    def _on_thermal(self, msg: Image) -> None:
        recording = self.recording
        if recording is not None and recording.active and self._valid(topics.THERMAL_IMAGE_RAW, msg):
            recording.add_thermal(stamp_ns(msg.header.stamp), msg)

    def _on_rgb(self, msg: Image) -> None:
        recording = self.recording
        if recording is not None and recording.active and self._valid(topics.CAMERA_IMAGE_RAW, msg):
            recording.add_rgb(stamp_ns(msg.header.stamp), msg)

    def _on_mask(self, msg: Image) -> None:
        recording = self.recording
        if recording is not None and recording.active and self._valid(topics.CAMERA_PERSON_MASK, msg):
            recording.add_mask(stamp_ns(msg.header.stamp), msg)

    def _valid(self, topic: str, msg: Image) -> bool:
        """Only frames that pass reach the pairing, so both halves of every written pair passed."""
        result = self._validators[topic].check(msg)
        if isinstance(result, Rejection):
            self._drop_bad(topic, result)
            return False
        return True

    def _drop_bad(self, topic: str, rejection: Rejection) -> None:
        self.last_problem = f"{topic}: {rejection}"
        if self.rejected.add(rejection):
            self.get_logger().warning(self.rejected.log_line(topic, rejection))

    def _incompatible_qos(self, _info: QoSRequestedIncompatibleQoSInfo) -> None:
        self.get_logger().warning(
            "a publisher's QoS does not match this recorder's reliable subscription; for best-effort "
            "cameras start the recorder with reliability:=best_effort",
            throttle_duration_sec=BAD_FRAME_LOG_PERIOD_S,
        )

    def _publish_diagnostics(self) -> None:
        recording = self.recording
        values = {
            "state": "idle",
            "last_recording": self.last_summary,
            "frames_dropped_bad": str(self.frames_dropped_bad),
            **self.rejected.diagnostic_values(),
            "last_problem": self.last_problem,
        }
        if recording is not None:
            stats = recording.stats
            for _ in range(stats.pairs_written - self._last_written):
                self._rate.tick()
            self._last_written = stats.pairs_written
            values |= {
                "state": "recording" if recording.active else "stopped by error",
                "bag": str(recording.path),
                "files": str(len(recording.files)),
                "pairs_written": str(stats.pairs_written),
                "pairs_with_mask": str(stats.pairs_with_mask),
                "write_rate_hz": f"{self._rate.rate_hz():.2f}",
                "megabytes_written": f"{stats.bytes_written / 1e6:.1f}",
                "thermal_frames": str(stats.pairing.thermal_frames),
                "rgb_frames": str(stats.pairing.rgb_frames),
                "thermal_unmatched": str(stats.pairing.thermal_unmatched),
                "rgb_unused": str(stats.pairing.rgb_unused),
                "pairs_dropped": str(stats.pairs_dropped),
                "max_skew_ms": f"{stats.pairing.max_skew_s * 1e3:.1f}",
            }
        level, message = self._health(recording)
        if level == WARN:
            # Also on the console: a recording that pairs nothing must not look fine until it ends.
            self.get_logger().warning(message, throttle_duration_sec=BAD_FRAME_LOG_PERIOD_S)
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                name=f"{self.get_fully_qualified_name()}: recording",
                hardware_id=values.get("bag", "none"),
                level=level,
                message=message,
                values=values,
            )
        )

    def _health(self, recording: Recording | None) -> tuple[bytes, str]:
        """Losses warn in the report after they happened; a write error stays until the next start."""
        if self._write_error:
            return ERROR, self._write_error
        if recording is None:
            return OK, "idle; call ~/record true to start"
        stats = recording.stats
        dropped = stats.pairs_dropped - self._dropped_at_last_report
        unmatched = stats.pairing.thermal_unmatched - self._unmatched_at_last_report
        rejected = self.rejected.total - self._rejected_at_last_report
        self._dropped_at_last_report = stats.pairs_dropped
        self._unmatched_at_last_report = stats.pairing.thermal_unmatched
        self._rejected_at_last_report = self.rejected.total
        if dropped:
            return WARN, f"disk too slow: dropped {dropped} pairs"
        if rejected:
            return WARN, f"rejected {rejected} malformed frames, none recorded: {self.last_problem}"
        if stats.pairing.thermal_frames >= NO_CAMERA_WARNING_FRAMES and not stats.pairing.rgb_frames:
            return WARN, (
                f"{stats.pairing.thermal_frames} thermal frames and not one {topics.CAMERA_IMAGE_RAW} "
                "frame: is a camera publishing it? (rgb_camera:=true for a webcam, publish_rgb:=true "
                "with source:=sim)"
            )
        if unmatched:
            return WARN, f"{unmatched} thermal frames had no RGB frame within slop_s"
        if not stats.pairs_written:
            return OK, f"waiting for {topics.THERMAL_IMAGE_RAW} and {topics.CAMERA_IMAGE_RAW}"
        return OK, f"recording to {recording.path}"

    def destroy_node(self) -> None:
        """Ctrl-C or SIGTERM finalise the bag, so a normal stop never needs a repair."""
        self.stop()
        super().destroy_node()


NODE_CLASS = PairRecorderNode
"""What the runner builds for `--single-process`; `main` is what it runs as a process."""


def main(args: list[str] | None = None) -> None:
    sys.exit(run_node(NODE_NAME, PairRecorderNode, args))


if __name__ == "__main__":
    main()
