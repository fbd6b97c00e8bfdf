"""The `thermal_driver` node: one thermal source in, privacy-safe heatmaps out.

The source runs on its own capture thread, which only reads and stamps frames: a Lepton loses
VoSPI sync if a segment waits ~10 ms, so conversion and publishing happen on a second thread,
fed through a two-frame outbox that drops the oldest frame rather than stall the sensor. The
executor only serves parameters, services and the diagnostics timer.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from thermal_driver.sources.base import SensorUnavailable, ThermalFrame, ThermalSource
from thermal_driver.sources.registry import SOURCE_NAMES, TELEMETRY_MODES, SourceConfig, make_source
from thermal_driver.sources.replay import ReplayFinished
from thermal_msgs import topics
from thermal_msgs.diagnostics import ERROR, OK, WARN, RateMeter, diagnostic_array
from thermal_msgs.false_colour import false_colour, validate_color_size
from thermal_msgs.image import array_to_image
from thermal_msgs.node_main import ConfigError, run_guarded, run_node
from thermal_msgs.privacy import (
    BACKGROUND_RANGE_C,
    DRIVER_DEFAULTS,
    MAX_TRANSFORM_C,
    MIN_QUANTISATION_C,
    PrivacySettings,
)
from thermal_msgs.qos import stream_publisher_qos
from thermal_msgs.units import centikelvin_to_celsius, kelvin_to_celsius

NODE_NAME = "thermal_driver"
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0
LOW_RATE_FRACTION = 0.9
OUTBOX_FRAMES = 2
PRIVACY_PARAMETERS = frozenset(f.name for f in fields(PrivacySettings))


@dataclass(frozen=True)
class PublishSettings:
    """What may change while running; swapped whole so the capture thread never sees half an update.

    `privacy` validates itself when built; `validate` checks the rest.
    """

    privacy: PrivacySettings
    publish_raw: bool
    publish_rgb: bool
    publish_color: bool
    color_size: tuple[int, int]
    frame_id: str

    def validate(self) -> None:
        validate_color_size(self.color_size)
        if not self.frame_id:
            raise ValueError("frame_id must not be empty")


class OnDemandPublisher:
    """A publisher that exists only while wanted, so opt-in topics do not even appear by default."""

    def __init__(self, node: Node, topic: str, qos) -> None:
        self._node = node
        self._topic = topic
        self._qos = qos
        self._publisher = None
        self._lock = threading.Lock()

    def get(self, wanted: bool):
        with self._lock:
            if wanted and self._publisher is None:
                self._publisher = self._node.create_publisher(Image, self._topic, self._qos)
            elif not wanted and self._publisher is not None:
                self._node.destroy_publisher(self._publisher)
                self._publisher = None
            return self._publisher


def _read_only(description: str) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=f"{description} (read-only: restart the node to change)", read_only=True
    )


class ThermalDriverNode(Node):
    def __init__(
        self, source_factory: Callable[[SourceConfig], ThermalSource] = make_source, **node_kwargs
    ) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.config = self._declare_source_parameters()
        reliability = self.declare_parameter(
            "reliability",
            "reliable",
            _read_only("reliable (REP-2003: matches every subscriber) or best_effort"),
        ).value
        try:
            self.settings = self._declare_publish_parameters()
            self.config.validate()
            self.settings.validate()
            self._qos = stream_publisher_qos(reliability)
            self.source = source_factory(self.config)
            self._check_rgb_available(self.settings)
        except ValueError as error:
            # Release the half-built node's services now: a retry under the same name must not race them.
            super().destroy_node()
            raise ConfigError(str(error)) from error

        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._image_pub = self.create_publisher(Image, topics.THERMAL_IMAGE, self._qos)
        self._raw_pub = OnDemandPublisher(self, topics.THERMAL_IMAGE_RAW, self._qos)
        self._rgb_pub = OnDemandPublisher(self, topics.CAMERA_IMAGE_RAW, self._qos)
        self._mask_pub = OnDemandPublisher(self, topics.CAMERA_PERSON_MASK, self._qos)
        self._color_pub = OnDemandPublisher(self, topics.THERMAL_IMAGE_COLOR, self._qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_service(Trigger, "~/run_ffc", self._run_ffc)
        self.create_timer(1.0, self._publish_diagnostics)

        # noise_c's noise, seeded from OS entropy (a known seed would let an eavesdropper subtract
        # the noise); only the publish thread draws from it.
        self._noise_rng = np.random.default_rng()
        self._rate = RateMeter()
        self._frames_published = 0
        self._state = "starting"
        self._problem = ""
        self._last_frame: ThermalFrame | None = None
        self._frames_dropped = 0
        self._outbox: queue.Queue[tuple[Time, ThermalFrame]] = queue.Queue(maxsize=OUTBOX_FRAMES)
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._threads = [
            threading.Thread(
                target=self._guarded, args=(self._capture_loop,), name="thermal_capture", daemon=True
            ),
            threading.Thread(
                target=self._guarded, args=(self._publish_loop,), name="thermal_publish", daemon=True
            ),
        ]
        self.get_logger().info(
            f"source={self.config.source} device={self.config.resolved_device or '-'} "
            f"heatmap={self.settings.privacy.label} publish_raw={self.settings.publish_raw}"
        )
        for thread in self._threads:
            thread.start()

    def _declare_source_parameters(self) -> SourceConfig:
        defaults = SourceConfig()
        declare = self.declare_parameter
        return SourceConfig(
            source=declare("source", defaults.source, _read_only(f"one of {', '.join(SOURCE_NAMES)}")).value,
            device=declare(
                "device",
                defaults.device,
                _read_only("spidev path, video index/path, I2C bus or replay path; empty = source default"),
            ).value,
            cci_device=declare(
                "cci_device", defaults.cci_device, _read_only("lepton_spi: I2C bus of the CCI")
            ).value,
            i2c_address=declare(
                "i2c_address", defaults.i2c_address, _read_only("amg8833: 0x68 or 0x69")
            ).value,
            spi_speed_hz=declare(
                "spi_speed_hz", defaults.spi_speed_hz, _read_only("lepton_spi: SCK, max 20 MHz")
            ).value,
            telemetry=declare(
                "telemetry", defaults.telemetry, _read_only(f"lepton_spi: {', '.join(TELEMETRY_MODES)}")
            ).value,
            rate_hz=declare("rate_hz", defaults.rate_hz, _read_only("sim and .npy replay frame rate")).value,
            loop=declare("loop", defaults.loop, _read_only("replay: start over at the end")).value,
            seed=declare("seed", defaults.seed, _read_only("sim: random seed")).value,
        )

    def _declare_publish_parameters(self) -> PublishSettings:
        """Raises ValueError naming the parameter when a value is bad."""
        declare = self.declare_parameter
        return PublishSettings(
            privacy=self._declare_privacy_parameters(),
            publish_raw=declare(
                "publish_raw",
                False,
                ParameterDescriptor(description="also publish full-resolution thermal/image_raw (16UC1 cK)"),
            ).value,
            publish_rgb=declare(
                "publish_rgb",
                False,
                ParameterDescriptor(
                    description="sim: also publish the paired camera/image_raw (rgb8) and camera/person_mask "
                    "(mono8 ground truth), same stamp"
                ),
            ).value,
            publish_color=declare(
                "publish_color",
                False,
                ParameterDescriptor(
                    description="also publish thermal/image_color, an rgb8 false-colour preview of "
                    "thermal/image for rqt_image_view and RViz"
                ),
            ).value,
            color_size=tuple(
                declare(
                    "color_size",
                    [240, 320],
                    ParameterDescriptor(
                        description="[rows, cols] of thermal/image_color, at most [1080, 1440]"
                    ),
                ).value
            ),
            frame_id=declare(
                "frame_id", topics.THERMAL_FRAME_ID, ParameterDescriptor(description="header frame_id")
            ).value,
        )

    def _declare_privacy_parameters(self) -> PrivacySettings:
        """The privacy transforms of docs/privacy.md, in the order applied."""
        defaults = DRIVER_DEFAULTS
        declare = self.declare_parameter
        low, high = BACKGROUND_RANGE_C
        return PrivacySettings(
            output_size=declare(
                "output_size",
                list(defaults.output_size),
                ParameterDescriptor(description="[height, width] of thermal/image, at most [24, 32]"),
            ).value,
            blur_sigma=declare(
                "blur_sigma",
                defaults.blur_sigma,
                ParameterDescriptor(description="Gaussian blur before averaging, in output cells"),
            ).value,
            relative_temperature=declare(
                "relative_temperature",
                defaults.relative_temperature,
                ParameterDescriptor(
                    description="shift each heatmap so the median of its cells reads background_c "
                    "(hides absolute temperatures)"
                ),
            ).value,
            background_c=declare(
                "background_c",
                defaults.background_c,
                ParameterDescriptor(
                    description=f"degrees C the median cell reads with relative_temperature, in "
                    f"[{low:g}, {high:g}]"
                ),
            ).value,
            quantisation_c=declare(
                "quantisation_c",
                defaults.quantisation_c,
                ParameterDescriptor(
                    description=f"round every cell to a multiple of this step in degrees C, 0 (off) or "
                    f"[{MIN_QUANTISATION_C:g}, {MAX_TRANSFORM_C:g}]"
                ),
            ).value,
            noise_c=declare(
                "noise_c",
                defaults.noise_c,
                ParameterDescriptor(
                    description=f"std in degrees C of Gaussian noise drawn for each frame and added "
                    f"before quantisation, [0, {MAX_TRANSFORM_C:g}]; 0 = off"
                ),
            ).value,
        )

    def _settings_with(self, parameters: list[Parameter]) -> PublishSettings:
        """Raises ValueError (or TypeError) naming the parameter when a value is bad."""
        privacy = {p.name: p.value for p in parameters if p.name in PRIVACY_PARAMETERS}
        publish = {p.name: p.value for p in parameters if p.name in PublishSettings.__dataclass_fields__}
        if "color_size" in publish:
            publish["color_size"] = tuple(publish["color_size"])
        return replace(self.settings, privacy=replace(self.settings.privacy, **privacy), **publish)

    def _check_rgb_available(self, settings: PublishSettings) -> None:
        if settings.publish_rgb and not self.source.provides_rgb:
            raise ValueError(
                f"publish_rgb: source {self.source.name} has no RGB camera; run the rgb_camera node "
                "(or usb_cam) for camera/image_raw"
            )

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        try:
            settings = self._settings_with(parameters)
            settings.validate()
            self._check_rgb_available(settings)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        self.settings = self._settings_with(parameters)

    def _guarded(self, loop: Callable[[], None]) -> None:
        run_guarded(self, loop, self.source.name, self._fail)

    def _fail(self, problem: str) -> None:
        self._state, self._problem = "failed", problem
        self._stop.set()

    def _capture_loop(self) -> None:
        retry_s = FIRST_RETRY_S
        try:
            while not self._stop.is_set():
                try:
                    self.source.open()
                    self._state, self._problem, retry_s = "streaming", "", FIRST_RETRY_S
                    self.get_logger().info(f"{self.source.name}: streaming")
                    while not self._stop.is_set():
                        frame = self.source.read()
                        self._hand_over(self.get_clock().now().to_msg(), frame)
                except SensorUnavailable as error:
                    self._report_unavailable(str(error), retry_s)
                    self.source.close()
                    self._stop.wait(retry_s)
                    retry_s = min(2 * retry_s, MAX_RETRY_S)
        except ReplayFinished as finished:
            self._state, self._problem = "finished", str(finished)
            self.get_logger().info(str(finished))
        finally:
            self.source.close()

    def _hand_over(self, stamp: Time, frame: ThermalFrame) -> None:
        try:
            self._outbox.put_nowait((stamp, frame))
        except queue.Full:
            self._frames_dropped += 1
            with contextlib.suppress(queue.Empty):
                self._outbox.get_nowait()
            self._outbox.put_nowait((stamp, frame))

    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            try:
                stamp, frame = self._outbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self._publish(stamp, frame)

    def _report_unavailable(self, problem: str, retry_s: float) -> None:
        """One ERROR per distinct problem; repeats of the same problem only at debug level."""
        if problem != self._problem:
            self.get_logger().error(f"{problem}; retrying with backoff (first in {retry_s:.0f} s)")
        else:
            self.get_logger().debug(f"still unavailable, next try in {retry_s:.0f} s")
        self._state, self._problem = "unavailable", problem

    def _publish(self, stamp: Time, frame: ThermalFrame) -> None:
        """The stamp is the capture time, taken before the frame waited in the outbox."""
        settings = self.settings
        heatmap = settings.privacy.apply(centikelvin_to_celsius(frame.centikelvin), self._noise_rng)
        self._image_pub.publish(
            array_to_image(heatmap, topics.THERMAL_ENCODING, stamp=stamp, frame_id=settings.frame_id)
        )
        color_pub = self._color_pub.get(settings.publish_color)
        if color_pub is not None:
            color_pub.publish(
                array_to_image(
                    false_colour(heatmap, settings.color_size),
                    topics.RGB_ENCODING,
                    stamp=stamp,
                    frame_id=settings.frame_id,
                )
            )
        raw_pub = self._raw_pub.get(settings.publish_raw)
        if raw_pub is not None:
            raw_pub.publish(
                array_to_image(
                    frame.centikelvin, topics.THERMAL_RAW_ENCODING, stamp=stamp, frame_id=settings.frame_id
                )
            )
        rgb_pub = self._rgb_pub.get(settings.publish_rgb and frame.rgb is not None)
        if rgb_pub is not None:
            rgb_pub.publish(
                array_to_image(frame.rgb, topics.RGB_ENCODING, stamp=stamp, frame_id=topics.CAMERA_FRAME_ID)
            )
        mask_pub = self._mask_pub.get(settings.publish_rgb and frame.person_mask is not None)
        if mask_pub is not None:
            mask = frame.person_mask.astype(np.uint8) * np.uint8(255)
            mask_pub.publish(
                array_to_image(mask, topics.MASK_ENCODING, stamp=stamp, frame_id=topics.CAMERA_FRAME_ID)
            )
        self._last_frame = frame
        self._frames_published += 1
        self._rate.tick()

    def _run_ffc(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        run_ffc = getattr(self.source, "run_ffc", None)
        if run_ffc is None:
            response.success, response.message = (
                False,
                f"source {self.source.name} has no flat-field correction",
            )
            return response
        try:
            run_ffc()
        except Exception as error:
            response.success, response.message = False, f"FFC failed: {error}"
            return response
        response.success, response.message = True, "flat-field correction started (video pauses ~1 s)"
        return response

    def _publish_diagnostics(self) -> None:
        rate = self._rate.rate_hz()
        level, message = self._health(rate)
        values = {
            "state": self._state,
            "frames_published": str(self._frames_published),
            "achieved_rate_hz": f"{rate:.2f}",
            "frames_dropped": str(self._frames_dropped),
            "nominal_rate_hz": f"{self.source.nominal_rate_hz:.2f}",
            "output_size": "x".join(map(str, self.settings.privacy.output_size)),
            "privacy": self.settings.privacy.label,
            "publish_raw": str(self.settings.publish_raw).lower(),
            "publish_rgb": str(self.settings.publish_rgb).lower(),
            "publish_color": str(self.settings.publish_color).lower(),
        }
        frame = self._last_frame
        if frame is not None and frame.ffc_state is not None:
            values["ffc_state"] = frame.ffc_state
        if frame is not None and frame.fpa_temperature_k is not None:
            values["fpa_temperature_c"] = f"{kelvin_to_celsius(frame.fpa_temperature_k):.2f}"
        values.update(self.source.diagnostics())
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                name=f"{self.get_fully_qualified_name()}: {self.source.name}",
                hardware_id=self.config.resolved_device or self.source.name,
                level=level,
                message=message,
                values=values,
            )
        )

    def _health(self, rate: float) -> tuple[bytes, str]:
        if self._state in ("unavailable", "failed"):
            return ERROR, self._problem
        if self._state == "finished":
            return OK, self._problem
        frame = self._last_frame
        if frame is not None and frame.ffc_state == "in_progress":
            return WARN, "flat-field correction in progress (video frozen)"
        if self._frames_published > 10 and rate < LOW_RATE_FRACTION * self.source.nominal_rate_hz:
            return WARN, f"rate {rate:.1f} Hz below nominal {self.source.nominal_rate_hz:.1f} Hz"
        return OK, self._state

    def destroy_node(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        super().destroy_node()


NODE_CLASS = ThermalDriverNode
"""What the runner builds for `--single-process`; `main` is what it runs as a process."""


def main(args: list[str] | None = None) -> int:
    return run_node(NODE_NAME, ThermalDriverNode, args)


if __name__ == "__main__":
    sys.exit(main())
