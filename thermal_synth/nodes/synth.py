"""The `thermal_synth` node: privacy-safe heatmaps in, a synthesised RGB person out.

Synthesis can be slower than the sensor, and a video call wants the newest picture rather than
every picture: the subscription only checks each message (`thermal_msgs.validation`) and drops its
heatmap into a one-slot mailbox, and a worker thread renders whatever is newest, so a slow model skips
stale frames instead of queueing them.
The executor only serves the subscription, parameters, services and the diagnostics timer.

With `output_rate_hz` > 0 the worker instead renders on its own clock from a timeline of the
incoming heatmaps, one input period behind the newest (`thermal_synth.engine.interpolation`), so an
8.7 Hz sensor gives a call 30 distinct frames a second rather than 8.7 repeated ones.

With `streams` the node serves several participants: each name reads `thermal/<name>/image` and
publishes `synth/<name>/image` with its own appearance, and the worker paints the newest frame of
every stream that has one in a single forward pass, which is how one GPU serves a whole call.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.time import Time
from rclpy.timer import Timer
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from thermal_msgs import topics
from thermal_msgs.diagnostics import ERROR, OK, WARN, RateMeter, diagnostic_array
from thermal_msgs.image import array_to_image
from thermal_msgs.node_main import ConfigError, run_guarded, run_node
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS, stream_publisher_qos
from thermal_msgs.units import stamp_ns
from thermal_msgs.validation import FOLLOW_AFTER_FRAMES, REASONS, ImageValidator, Rejection, RejectionTally
from thermal_synth.engine.appearances import Appearances, code_name
from thermal_synth.engine.inference import (
    DEVICE_AUTO,
    PRECISION_AUTO,
    HeatmapError,
    SynthesisEngine,
    fit_heatmap,
)
from thermal_synth.engine.interpolation import HeatmapTimeline
from thermal_synth.engine.pacing import OutputClock
from thermal_synth.engine.streams import SINGLE_STREAM, Mailboxes, paint_heatmaps, parse_streams
from thermal_synth.model.files import HOW_TO_GET_A_MODEL, ModelBundle, ModelFileError, load_trained_model
from thermal_synth.nodes.synth_parameters import (
    MAX_OUTPUT_RATE_HZ,
    MAX_OUTPUT_SIZE,
    SETTINGS_PARAMETERS,
    RenderSettings,
    parse_cpu_threads,
    stream_code_parameter,
)

NODE_NAME = "thermal_synth"
LATENCY_WINDOW = 100
BAD_FRAME_LOG_PERIOD_S = 5.0
MODEL_GRID = "model_grid"
"""Rejection reason of a valid heatmap whose size is no integral multiple of the model's grid."""
INPUT_WAIT_S = 0.2
"""How long the worker waits for a frame or a tick before looking at the settings and the stop flag again."""


@dataclass(frozen=True)
class Arrival:
    """An accepted heatmap, fitted to the model's grid, and when it came: the interpolation's playhead
    runs from the arrival, not from whenever the worker got round to taking it."""

    heatmap: np.ndarray
    stamp_ns: int
    frame_id: str
    received_s: float


@dataclass(eq=False)
class Stream:
    """One participant: heatmaps in on `input_topic` (checked by `validator`), painted frames out
    through `publisher`."""

    name: str
    input_topic: str
    publisher: Publisher
    validator: ImageValidator
    rate: RateMeter = field(default_factory=RateMeter)
    frames_published: int = 0
    frame_id: str = ""


@dataclass(frozen=True)
class Paintable:
    """One frame of one stream waiting for the batch's forward pass."""

    stream: Stream
    heatmap: np.ndarray
    stamp_ns: int
    frame_id: str
    interpolated: bool = False


def _read_only(description: str, *, resolved_at_start: bool = False) -> ParameterDescriptor:
    """`resolved_at_start`: writable until the node has replaced a placeholder ("", auto, 0) with
    what it stands for (`_name_resolved_settings`), read-only from then on."""
    return ParameterDescriptor(
        description=f"{description} (read-only: restart the node to change)", read_only=not resolved_at_start
    )


RESOLVED_AT_START = ("model", "device", "precision", "cpu_threads")
"""Settings whose placeholders read back as what the node chose, so `ros2 param get` says what runs."""


class ThermalSynthNode(Node):
    """`worker_thread` False leaves the painting loop to whoever calls `work()`: the executable
    and the single-process runner run it on the process's main thread, where PyTorch's CPU
    threads are fastest (`run_node`)."""

    MAIN_THREAD_WORK: ClassVar[bool] = True

    def __init__(self, *, worker_thread: bool = True, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        declare = self.declare_parameter
        model = declare(
            "model",
            "",
            _read_only("model directory; empty = the model shipped with the package", resolved_at_start=True),
        ).value
        device = declare(
            "device", DEVICE_AUTO, _read_only("auto, cpu, cuda or cuda:N", resolved_at_start=True)
        ).value
        precision = declare(
            "precision",
            PRECISION_AUTO,
            _read_only(
                "auto (bf16 where the device computes it natively: a GPU, or a CPU with AVX-512 BF16 "
                "or AMX; else fp32), fp32 or bf16",
                resolved_at_start=True,
            ),
        ).value
        reliability = declare(
            "reliability",
            "reliable",
            _read_only("reliable (REP-2003: matches every subscriber) or best_effort"),
        ).value
        cpu_threads = declare(
            "cpu_threads",
            0,
            _read_only(
                "torch threads painting on a CPU; 0 = half the cores, at least one, leaving the rest to "
                "the driver, ROS and the call application",
                resolved_at_start=True,
            ),
        ).value
        latent_code = declare(
            "latent_code",
            "",
            ParameterDescriptor(
                description="appearance: a code of the model's bank (~/list_codes); empty = the first"
            ),
        ).value
        transition_s = declare(
            "transition_s",
            1.0,
            ParameterDescriptor(description="seconds over which a new latent_code blends in; 0 = cut"),
        ).value
        output_size = declare(
            "output_size",
            [0, 0],
            ParameterDescriptor(
                description=f"[rows, cols] of synth/image, at most {list(MAX_OUTPUT_SIZE)}; "
                "[0, 0] or [] = the model's native size",
                # `ros2 param set ... output_size "[]"` sends an empty array of another type.
                dynamic_typing=True,
            ),
        ).value
        output_rate_hz = declare(
            "output_rate_hz",
            0.0,
            ParameterDescriptor(
                description=f"frames per second of synth/image, at most {MAX_OUTPUT_RATE_HZ:g}, painted from "
                "heatmaps interpolated between thermal frames (one input period late); "
                "0 = one frame per thermal frame",
                dynamic_typing=True,
            ),
        ).value
        streams = declare(
            "streams",
            None,
            ParameterDescriptor(
                description="participants served in one forward pass: each name reads thermal/<name>/image, "
                "publishes synth/<name>/image and takes its appearance from <name>.latent_code "
                "(empty = latent_code); [] = one stream on thermal/image -> synth/image "
                "(read-only: restart the node to change)",
                read_only=True,
                # An empty list has no element type: YAML's [] arrives unset, Python's as a byte array.
                dynamic_typing=True,
            ),
        ).value
        try:
            self._qos = stream_publisher_qos(reliability)
            self.settings = RenderSettings.from_parameters(output_size, transition_s, output_rate_hz)
            self.cpu_threads = parse_cpu_threads(cpu_threads)
            stream_names = parse_streams(streams)
            own_codes = {
                name: declare(
                    stream_code_parameter(name),
                    "",
                    ParameterDescriptor(description=f"appearance of stream {name}; empty = latent_code"),
                ).value
                for name in stream_names
                if name
            }
            self.engine = SynthesisEngine(_load_model(model), device, precision=precision)
            bank = self.engine.bundle.bank
            self.appearances = Appearances(
                self.engine,
                {name: code_name(bank, own_codes.get(name) or latent_code) for name in stream_names},
            )
        except ValueError as error:
            # Release the half-built node's services now: a retry under the same name must not race them.
            super().destroy_node()
            raise ConfigError(str(error)) from error
        self._name_active_code()
        self._name_resolved_settings()
        self._naming_timer: Timer | None = None
        """Pending while an empty latent_code waits to read back as the code's name."""

        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._mailboxes: Mailboxes[Arrival] = Mailboxes(stream_names)
        self.streams: dict[str, Stream] = {}
        for name in stream_names:
            input_topic = topics.stream_topic(topics.THERMAL_IMAGE, name)
            publisher = self.create_publisher(Image, topics.stream_topic(topics.SYNTH_IMAGE, name), self._qos)
            validator = ImageValidator(
                input_topic,
                topics.IMAGE_ENCODINGS[topics.THERMAL_IMAGE],
                # A restarted driver may publish another output_size: follow it, not one stray frame.
                follow_after=FOLLOW_AFTER_FRAMES,
            )
            self.streams[name] = Stream(name, input_topic, publisher, validator)
            self.create_subscription(
                Image, input_topic, lambda msg, name=name: self._receive(name, msg), STREAM_SUBSCRIBER_QOS
            )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_service(Trigger, "~/list_codes", self._list_codes)
        self.create_service(Trigger, "~/reload_bank", self._reload_bank)
        self.create_timer(1.0, self._publish_diagnostics)

        self._rate = RateMeter()
        self._latencies_s: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._batch_sizes: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self.interpolated_frames = 0
        self.rejected = RejectionTally((*REASONS, MODEL_GRID), log_period_s=BAD_FRAME_LOG_PERIOD_S)
        self.last_problem = ""
        self._bad_at_last_report = 0
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._worker = (
            threading.Thread(target=self.work, name="synth", daemon=True) if worker_thread else None
        )
        now_s = time.monotonic()
        described = {name: self.appearances.describe(name, now_s)[0] for name in self.streams}
        codes = " ".join(f"{name}:{code}" if name else code for name, code in described.items())
        self.get_logger().info(
            f"model={self.engine.bundle.directory} device={self.engine.device} "
            f"precision={self.engine.precision} code={codes} "
            f"heatmap={_size(self.engine.heatmap_size)} image={_size(self._output_size())} "
            f"output_rate_hz={self.settings.output_rate_hz:g}"
            + (f" streams={len(self.streams)}" if self._named_streams else "")
        )
        if self._worker is not None:
            self._worker.start()

    @property
    def _named_streams(self) -> bool:
        return SINGLE_STREAM not in self.streams

    @property
    def frames_published(self) -> int:
        return sum(stream.frames_published for stream in self.streams.values())

    @property
    def frames_dropped_bad(self) -> int:
        return self.rejected.total

    def _settings_with(self, parameters: list[Parameter]) -> RenderSettings:
        values = {name: self.get_parameter(name).value for name in SETTINGS_PARAMETERS}
        values.update({p.name: p.value for p in parameters if p.name in SETTINGS_PARAMETERS})
        return RenderSettings.from_parameters(**values)

    def _is_code_parameter(self, name: str) -> bool:
        return name == "latent_code" or any(name == stream_code_parameter(s) for s in self.streams if s)

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        try:
            self._settings_with(parameters)
            for parameter in parameters:
                if self._is_code_parameter(parameter.name):
                    code_name(self.appearances.bank, parameter.value)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        self.settings = self._settings_with(parameters)
        if not any(self._is_code_parameter(parameter.name) for parameter in parameters):
            return
        # Every stream follows its own code, or latent_code when it has none; an unchanged target is a no-op.
        shared = self.get_parameter("latent_code").value
        for name in self.streams:
            own = self.get_parameter(stream_code_parameter(name)).value if name else ""
            try:
                self.appearances.switch(
                    name,
                    code_name(self.appearances.bank, own or shared),
                    self.settings.transition_s,
                    time.monotonic(),
                )
            except ValueError as error:
                # A reload between validation and now removed the code: keep the current appearance.
                self.get_logger().warning(f"latent_code not applied: {error}")
        if not shared and self._naming_timer is None:
            # Not from inside this callback: parameters are set again once it has returned. One
            # pending timer serves any number of empty settings before it fires.
            self._naming_timer = self.create_timer(0.0, self._name_code_once)

    def _name_code_once(self) -> None:
        self.destroy_timer(self._naming_timer)
        self._naming_timer = None
        self._name_active_code()

    def _name_active_code(self) -> None:
        """An empty latent_code means the bank's first code; it reads back as that code's name,
        so `ros2 param get` says what is painted."""
        shared = self.get_parameter("latent_code").value
        active = code_name(self.appearances.bank, shared)
        if active != shared:
            self.set_parameters([Parameter("latent_code", value=active)])

    def _name_resolved_settings(self) -> None:
        """Empty, auto and 0 read back as the model directory, device, precision and thread count in use;
        then the settings become read-only, as their descriptions say."""
        resolved = {
            "model": str(self.engine.bundle.directory),
            "device": str(self.engine.device),
            "precision": self.engine.precision,
            "cpu_threads": self.cpu_threads,
        }
        self.set_parameters([Parameter(name, value=value) for name, value in resolved.items()])
        for name in RESOLVED_AT_START:
            writable = self.describe_parameter(name)
            fixed = ParameterDescriptor(type=writable.type, description=writable.description, read_only=True)
            self.set_descriptor(name, fixed)

    def _receive(self, name: str, msg: Image) -> None:
        """Checked on arrival, so a bad frame never displaces a good one waiting in the mailbox."""
        received_s = time.monotonic()
        stream = self.streams[name]
        heatmap = self._accept(stream, msg)
        if heatmap is not None:
            arrival = Arrival(heatmap, stamp_ns(msg.header.stamp), msg.header.frame_id, received_s)
            self._mailboxes.put(name, arrival)

    def work(self) -> None:
        """The painting loop, until `stop()` or a failure (then `failure` is set and it returns)."""
        if self.engine.device.type == "cpu":
            torch.set_num_threads(self.cpu_threads)
        run_guarded(self, self._work, "synthesis", self._fail)

    def stop(self) -> None:
        self._stop.set()

    def _fail(self, problem: str) -> None:
        self.last_problem = problem
        self._stop.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            rate_hz = self.settings.output_rate_hz
            if rate_hz:
                self._play_interpolated(rate_hz)
                continue
            arrivals = self._mailboxes.take_all(timeout_s=INPUT_WAIT_S)
            batch = [
                Paintable(self.streams[name], arrival.heatmap, arrival.stamp_ns, arrival.frame_id)
                for name, arrival in arrivals.items()
            ]
            self._paint_and_publish(batch)

    def _play_interpolated(self, rate_hz: float) -> None:
        """Renders at `rate_hz` until the rate changes or the node stops.

        A new rate starts new timelines: the first frame after it is shown at once and the
        one-period delay builds up again, which keeps output stamps increasing across the change.
        Every stream's frame of a tick is painted in the same forward pass.
        """
        timelines = {name: HeatmapTimeline() for name in self.streams}
        clock = OutputClock(rate_hz, time.monotonic())
        while self.settings.output_rate_hz == rate_hz:
            wait_s = clock.wait_s(time.monotonic())
            if wait_s > 0.0:
                # In slices, so that a new rate applies at once even when this one ticks rarely.
                if self._stop.wait(min(wait_s, INPUT_WAIT_S)):
                    return
                continue
            for name, arrival in self._mailboxes.take_all(timeout_s=0.0).items():
                self._push(timelines[name], self.streams[name], arrival)
            now_s = time.monotonic()
            batch = []
            for name, timeline in timelines.items():
                frame = timeline.sample(now_s)
                if frame is not None:
                    stream = self.streams[name]
                    batch.append(
                        Paintable(stream, frame.heatmap, frame.stamp_ns, stream.frame_id, frame.interpolated)
                    )
            self._paint_and_publish(batch)
            clock.advance(time.monotonic())

    def _accept(self, stream: Stream, msg: Image) -> np.ndarray | None:
        """The message's heatmap fitted to the model's grid, or None when it is dropped as bad: a bad
        frame must neither spoil a batch shared with other streams nor a blend with its neighbours."""
        heatmap = stream.validator.check(msg)
        if isinstance(heatmap, Rejection):
            self._drop_bad(stream, heatmap)
            return None
        try:
            return fit_heatmap(heatmap, self.engine.heatmap_size)
        except HeatmapError as error:
            self._drop_bad(stream, Rejection(MODEL_GRID, str(error)))
            return None

    def _push(self, timeline: HeatmapTimeline, stream: Stream, arrival: Arrival) -> None:
        stream.frame_id = arrival.frame_id
        if timeline.push(arrival.stamp_ns, arrival.heatmap, arrival.received_s):
            self.get_logger().warning(
                f"{stream.input_topic} stamps went back in time: interpolation restarts from this frame",
                throttle_duration_sec=BAD_FRAME_LOG_PERIOD_S,
            )

    def _paint_and_publish(self, batch: list[Paintable]) -> None:
        if not batch:
            return
        now_s = time.monotonic()
        projections = [self.appearances.projection(item.stream.name, now_s) for item in batch]
        images = paint_heatmaps(
            self.engine, [item.heatmap for item in batch], projections, self.settings.output_size
        )
        self._batch_sizes.append(len(batch))
        for item, image in zip(batch, images, strict=True):
            self._publish(item.stream, image, item.stamp_ns, item.frame_id)
            if item.interpolated:
                self.interpolated_frames += 1

    def _publish(self, stream: Stream, image: np.ndarray, stamp_ns: int, frame_id: str) -> None:
        stamp = Time(nanoseconds=stamp_ns).to_msg()
        stream.publisher.publish(array_to_image(image, topics.RGB_ENCODING, stamp=stamp, frame_id=frame_id))
        stream.frames_published += 1
        stream.rate.tick()
        self._rate.tick()
        self._latencies_s.append((self.get_clock().now().nanoseconds - stamp_ns) / 1e9)

    def _drop_bad(self, stream: Stream, rejection: Rejection) -> None:
        self.last_problem = str(rejection)
        if self.rejected.add(rejection):
            self.get_logger().warning(self.rejected.log_line(stream.input_topic, rejection))

    def _list_codes(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        bank = self.appearances.bank
        response.success, response.message = True, "\n".join(bank.names())
        return response

    def _reload_bank(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            response.message = self.appearances.reload(self.settings.transition_s, time.monotonic())
        except ModelFileError as error:
            response.success, response.message = False, f"kept the previous bank: {error}"
            return response
        response.success = True
        self.get_logger().info(response.message)
        return response

    def _output_size(self) -> tuple[int, int]:
        return self.settings.output_size or self.engine.image_size

    def _publish_diagnostics(self) -> None:
        now_s = time.monotonic()
        latencies = np.array(self._latencies_s)
        level, message = self._health()
        output_rate_hz = self.settings.output_rate_hz
        values = {
            "state": "failed" if self.failure else ("running" if self.frames_published else "waiting"),
            "fps": f"{self._rate.rate_hz():.2f}",
            "output_rate_hz": f"{output_rate_hz:g}",
            "frames_published": str(self.frames_published),
            "frames_dropped_stale": str(sum(self._mailboxes.overwritten.values())),
            "frames_dropped_bad": str(self.frames_dropped_bad),
            **self.rejected.diagnostic_values(),
            "last_problem": self.last_problem,
            "latency_p50_ms": f"{np.median(latencies) * 1e3:.1f}" if latencies.size else "",
            "latency_max_ms": f"{latencies.max() * 1e3:.1f}" if latencies.size else "",
            "device": str(self.engine.device),
            "precision": self.engine.precision,
            "cpu_threads": str(self.cpu_threads),
            "model": str(self.engine.bundle.directory),
            "output_size": _size(self._output_size()),
        }
        if self._named_streams:
            values["streams"] = ", ".join(self.streams)
            values["frames_per_forward_pass"] = (
                f"{np.mean(self._batch_sizes):.2f}" if self._batch_sizes else ""
            )
            for name, stream in self.streams.items():
                code, transition = self.appearances.describe(name, now_s)
                values[f"{name}.latent_code"] = f"{code} ({transition})"
                values[f"{name}.fps"] = f"{stream.rate.rate_hz():.2f}"
                values[f"{name}.frames_published"] = str(stream.frames_published)
                values[f"{name}.frames_dropped_stale"] = str(self._mailboxes.overwritten[name])
        else:
            values["latent_code"], values["transition"] = self.appearances.describe(SINGLE_STREAM, now_s)
        if output_rate_hz:
            values["interpolated_frames"] = str(self.interpolated_frames)
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                name=f"{self.get_fully_qualified_name()}: synthesis",
                hardware_id=str(self.engine.device),
                level=level,
                message=message,
                values=values,
            )
        )

    def _health(self) -> tuple[bytes, str]:
        """Bad frames warn only in the report after they arrived: one burst must not taint it for good."""
        if self.failure is not None:
            return ERROR, self.last_problem
        bad_since_last, self._bad_at_last_report = (
            self.frames_dropped_bad - self._bad_at_last_report,
            self.frames_dropped_bad,
        )
        if bad_since_last:
            return WARN, f"dropped {bad_since_last} bad frames: {self.last_problem}"
        if not self.frames_published:
            waiting_for = ", ".join(stream.input_topic for stream in self.streams.values())
            return OK, f"waiting for {waiting_for}"
        return OK, "running"

    def destroy_node(self) -> None:
        self.stop()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        super().destroy_node()


def _load_model(path: str) -> ModelBundle:
    """Every model problem ends with how to get a working model, the one thing the user needs next."""
    try:
        return load_trained_model(path)
    except ModelFileError as error:
        message = str(error)
        if HOW_TO_GET_A_MODEL not in message:
            message = f"{message}; {HOW_TO_GET_A_MODEL}"
        raise ModelFileError(message) from None


def _size(size: tuple[int, int]) -> str:
    return "x".join(map(str, size))


NODE_CLASS = ThermalSynthNode
"""What the runner builds for `--single-process`; `main` is what it runs as a process."""


def main(args: list[str] | None = None) -> int:
    return run_node(
        NODE_NAME,
        partial(ThermalSynthNode, worker_thread=False),
        args,
        main_thread_work=ThermalSynthNode.MAIN_THREAD_WORK,
    )


if __name__ == "__main__":
    sys.exit(main())
