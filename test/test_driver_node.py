"""The thermal_driver node through real rclpy: in-process and as the installed executable."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import call_service, set_parameters, start_executable, stop, wait_for
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from thermal_driver.node import ConfigError, ThermalDriverNode
from thermal_msgs import topics
from thermal_msgs.image import image_to_array
from thermal_msgs.privacy import DRIVER_DEFAULTS, PrivacySettings, privacy_downsample
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_msgs.units import centikelvin_to_celsius

pytestmark = pytest.mark.ros

# The ends of inferno in RGB: near-black for the coldest heatmap cell, pale yellow for the hottest.
INFERNO_COLDEST_RGB = (0, 0, 4)
INFERNO_HOTTEST_RGB = (252, 255, 164)


class Listener(Node):
    """Records what arrives on the driver's topics, with arrival times, as any consumer would see it."""

    def __init__(self, context, name: str = "listener") -> None:
        super().__init__(name, context=context)
        self.images: list[tuple[float, Image]] = []
        self.raw: list[Image] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.create_subscription(Image, topics.THERMAL_IMAGE, self._on_image, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(Image, topics.THERMAL_IMAGE_RAW, self.raw.append, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)

    def _on_image(self, msg: Image) -> None:
        self.images.append((time.monotonic(), msg))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.extend(s for s in msg.status if "thermal_driver" in s.name)

    def last_values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].values}

    def set_parameters(self, node_name: str, **values) -> list:
        return set_parameters(self, node_name, **values)


@pytest.fixture
def driver(ros_context, spinner):
    """Builds driver nodes from parameters and destroys them (stopping their capture threads) afterwards."""
    nodes: list[ThermalDriverNode] = []

    def build(**parameters) -> ThermalDriverNode:
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        nodes.append(ThermalDriverNode(context=ros_context, parameter_overrides=overrides))
        return nodes[-1]

    yield build
    spinner.shutdown()
    for node in nodes:
        node.destroy_node()


def test_sim_publishes_privacy_safe_celsius_heatmaps_at_lepton_rate(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    node = spinner.add(driver(source="sim"))
    wait_for(lambda: len(listener.images) >= 2, 10.0, "first heatmaps")
    first = len(listener.images)
    time.sleep(4.0)
    arrivals = [t for t, _ in listener.images[first - 1 :]]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    # Never faster than asked; a loaded machine may lose best-effort messages or fall behind.
    assert 8.7 * 0.5 <= rate <= 8.7 * 1.1, f"rate {rate:.2f} Hz"

    msg = listener.images[-1][1]
    assert (msg.encoding, msg.height, msg.width) == ("32FC1", 12, 16)
    assert msg.header.frame_id == "thermal_optical_frame"
    assert msg.header.stamp.sec > 0
    heatmap = image_to_array(msg)
    assert 15.0 < heatmap.min() < heatmap.max() < 40.0, "not plausible degrees Celsius"
    assert heatmap.max() - heatmap.min() > 5.0, "no warm person in the scene"

    assert listener.raw == []
    assert node.count_publishers(topics.THERMAL_IMAGE_RAW) == 0
    wait_for(lambda: listener.diagnostics, 3.0, "diagnostics")
    status = listener.diagnostics[-1]
    assert status.level == DiagnosticStatus.OK
    assert 8.7 * 0.5 <= float(listener.last_values()["achieved_rate_hz"]) <= 8.7 * 1.1


def test_raw_stream_only_when_asked_and_stamped_like_the_heatmap(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    spinner.add(driver(source="sim", publish_raw=True))
    wait_for(lambda: len(listener.raw) >= 3 and len(listener.images) >= 3, 10.0, "raw frames")
    raw = listener.raw[-1]
    assert (raw.encoding, raw.height, raw.width) == ("16UC1", 120, 160)
    centikelvin = image_to_array(raw)
    assert 27315 + 1500 < int(np.median(centikelvin)) < 27315 + 3000, "indoor scene in centi-Kelvin"
    heatmap_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in listener.images}
    assert (raw.header.stamp.sec, raw.header.stamp.nanosec) in heatmap_stamps


def test_parameters_are_validated_and_applied_live(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    spinner.add(driver(source="sim"))
    wait_for(lambda: listener.images, 10.0, "first heatmap")

    rejected = listener.set_parameters("thermal_driver", output_size=[0, 16])
    assert not rejected[0].successful
    assert "output_size" in rejected[0].reason
    too_big = listener.set_parameters("thermal_driver", output_size=[120, 160])
    assert not too_big[0].successful
    assert "privacy" in too_big[0].reason
    assert not listener.set_parameters("thermal_driver", blur_sigma=-1.0)[0].successful
    negative_step = listener.set_parameters("thermal_driver", quantisation_c=-1.0)
    assert not negative_step[0].successful
    assert "quantisation_c must be 0 (off) or a finite number" in negative_step[0].reason
    read_only = listener.set_parameters("thermal_driver", source="purethermal")
    assert not read_only[0].successful

    assert listener.set_parameters("thermal_driver", output_size=[6, 8], publish_raw=True)[0].successful
    wait_for(lambda: listener.images[-1][1].width == 8 and listener.raw, 5.0, "6x8 heatmaps and raw frames")
    assert listener.images[-1][1].height == 6

    def steps_of(step: float) -> bool:
        heatmap = image_to_array(listener.images[-1][1]) / step
        return bool(np.all(heatmap == np.round(heatmap)))

    assert steps_of(DRIVER_DEFAULTS.quantisation_c), "the default publishes 2 C steps"
    assert listener.set_parameters("thermal_driver", quantisation_c=0.0)[0].successful
    wait_for(lambda: not steps_of(1.0), 5.0, "heatmaps no longer quantised")
    assert listener.set_parameters("thermal_driver", quantisation_c=1.0)[0].successful
    wait_for(lambda: steps_of(1.0) and not steps_of(2.0), 5.0, "heatmaps quantised to whole degrees")


def test_replay_of_npy_frames_publishes_exactly_the_downsampled_frames(
    ros_context, spinner, driver, tmp_path
):
    rng = np.random.default_rng(1)
    frames = [rng.integers(29000, 31500, (120, 160), dtype=np.uint16) for _ in range(4)]
    for index, frame in enumerate(frames):
        np.save(tmp_path / f"frame_{index:03d}.npy", frame)
    listener = spinner.add(Listener(ros_context))
    node = spinner.add(driver(source="replay", device=str(tmp_path), rate_hz=5.0, blur_sigma=0.5))
    wait_for(lambda: len(listener.images) == 4, 10.0, "all replayed frames")
    published = replace(DRIVER_DEFAULTS, blur_sigma=0.5)
    for (_, msg), frame in zip(listener.images, frames, strict=True):
        expected = published.apply(centikelvin_to_celsius(frame))
        np.testing.assert_array_equal(image_to_array(msg), expected)
    wait_for(lambda: listener.diagnostics and listener.last_values()["state"] == "finished", 3.0, "finished")
    assert node.failure is None


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"source": "flir_one"}, "source must be one of"),
        ({"quantisation_c": -0.5}, "quantisation_c must be 0 (off) or a finite number in [0.001, 100]"),
        ({"noise_c": -0.1}, "noise_c must be a finite number in [0, 100] (degrees C), got -0.1"),
        ({"background_c": 295.15}, "background_c must be a finite number in [-50, 100] (degrees C)"),
        ({"blur_sigma": float("inf")}, "blur_sigma must be a finite number >= 0"),
    ],
    ids=["source", "quantisation_c", "noise_c", "background_c", "blur_sigma"],
)
def test_bad_startup_parameter_is_refused_with_a_reason(driver, parameters, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        driver(**{"source": "sim", **parameters})


def test_privacy_transforms_shape_exactly_what_is_published(ros_context, spinner, driver, tmp_path):
    """The driver's heatmaps are PrivacySettings.apply of the frame: the median cell reads
    background_c whatever the room's temperature, and every cell is a whole degree."""
    rng = np.random.default_rng(2)
    # Rooms of 15-25, 19-29 and 23-33 C.
    frames = [rng.integers(low, low + 1000, (120, 160), dtype=np.uint16) for low in (28815, 29215, 29615)]
    for index, frame in enumerate(frames):
        np.save(tmp_path / f"frame_{index:03d}.npy", frame)
    listener = spinner.add(Listener(ros_context))
    spinner.add(
        driver(
            source="replay",
            device=str(tmp_path),
            rate_hz=5.0,
            relative_temperature=True,
            background_c=25.0,
            quantisation_c=1.0,
        )
    )
    wait_for(lambda: len(listener.images) == 3, 10.0, "all replayed frames")
    settings = PrivacySettings(relative_temperature=True, background_c=25.0, quantisation_c=1.0)
    for (_, msg), frame in zip(listener.images, frames, strict=True):
        heatmap = image_to_array(msg)
        np.testing.assert_array_equal(heatmap, settings.apply(centikelvin_to_celsius(frame)))
        np.testing.assert_array_equal(heatmap, np.round(heatmap))
        assert np.median(heatmap) == pytest.approx(25.0, abs=0.5)
    wait_for(lambda: listener.diagnostics, 3.0, "diagnostics")
    assert listener.last_values()["privacy"] == "12x16 rel25 q1"


def test_noise_is_fresh_for_every_published_frame(ros_context, spinner, driver, tmp_path):
    frame = np.random.default_rng(3).integers(29000, 31500, (120, 160), dtype=np.uint16)
    np.save(tmp_path / "frame.npy", frame)
    listener = spinner.add(Listener(ros_context))
    spinner.add(
        driver(
            source="replay", device=str(tmp_path), loop=True, rate_hz=20.0, noise_c=0.5, quantisation_c=0.0
        )
    )
    wait_for(lambda: len(listener.images) >= 6, 10.0, "heatmaps of the looped frame")
    plain = privacy_downsample(centikelvin_to_celsius(frame), (12, 16), 1.0)
    noise = np.stack([image_to_array(msg) for _, msg in listener.images[:6]]) - plain
    assert 0.4 < noise.std() < 0.6
    assert len({array.tobytes() for array in noise}) == 6, "the same frame must never repeat its noise"


def test_run_ffc_on_a_source_without_ffc_says_so(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    spinner.add(driver(source="sim"))
    client = listener.create_client(Trigger, "/thermal_driver/run_ffc")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    wait_for(future.done, 5.0, "run_ffc reply")
    assert not future.result().success
    assert "sim" in future.result().message


def test_executable_streams_and_rejects_bad_values_across_processes(ros_context, spinner):
    process = start_executable("thermal_driver", "-p", "source:=sim", "-p", "output_size:=[6,8]")
    try:
        listener = spinner.add(Listener(ros_context))
        wait_for(lambda: len(listener.images) >= 3, 20.0, "heatmaps from the executable")
        assert (listener.images[-1][1].height, listener.images[-1][1].width) == (6, 8)
        bad = ParameterMsg(
            name="blur_sigma",
            value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float("nan")),
        )
        reply = call_service(
            listener, SetParameters, "/thermal_driver/set_parameters", SetParameters.Request(parameters=[bad])
        )
        assert not reply.results[0].successful
        assert "blur_sigma" in reply.results[0].reason
    finally:
        code, _, stderr = stop(process)
    assert code == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("parameter", "reason"),
    [
        ("rate_hz:=0.0", "rate_hz must be in (0, 100]"),
        ("quantisation_c:=-1.0", "quantisation_c must be 0 (off) or a finite number in [0.001, 100]"),
    ],
    ids=["rate_hz", "quantisation_c"],
)
def test_executable_exits_2_with_one_line_on_a_bad_parameter(parameter, reason):
    process = start_executable("thermal_driver", "-p", "source:=sim", "-p", parameter)
    _, stderr = process.communicate(timeout=20.0)
    assert process.returncode == 2
    errors = [line for line in stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, f"expected one error line, got: {errors}"
    assert reason in errors[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (("-p", "rate_hz:=5"), "expecting type 'DOUBLE'"),
        (("-p", "params-file:=x"), "invalid --ros-args"),
    ],
    ids=["integer-for-float", "malformed"],
)
def test_command_line_mistakes_exit_2_without_a_traceback(arguments, reason):
    process = start_executable("thermal_driver", *arguments)
    _, stderr = process.communicate(timeout=20.0)
    assert process.returncode == 2, stderr
    assert reason in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("source", "device", "hint"),
    [
        ("lepton_spi", "/dev/spidev9.9", "/dev/spidev9.9"),
        ("purethermal", "/dev/video99", "/dev/video99"),
        ("amg8833", "/dev/i2c-98", "/dev/i2c-98"),
    ],
)
def test_absent_hardware_is_one_clear_error_and_a_retry_loop(ros_context, spinner, source, device, hint):
    process = start_executable(
        "thermal_driver",
        "-p",
        f"source:={source}",
        "-p",
        f"device:={device}",
        "-p",
        "cci_device:=/dev/i2c-99",
    )
    try:
        listener = spinner.add(Listener(ros_context))
        wait_for(lambda: len(listener.diagnostics) >= 3, 20.0, "diagnostics while the sensor is absent")
        status = listener.diagnostics[-1]
        assert status.level == DiagnosticStatus.ERROR
        assert listener.last_values()["state"] == "unavailable"
        assert "/dev/" in status.message
        assert process.poll() is None, "the node must keep retrying, not exit"
        assert listener.images == []
    finally:
        code, _, stderr = stop(process)
    assert code == 0
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, f"expected one error line, got: {errors}"
    assert hint in errors[0]


def test_publish_rgb_is_refused_for_a_source_without_a_camera(ros_context, spinner, driver, tmp_path):
    np.save(tmp_path / "frame.npy", np.full((120, 160), 30000, np.uint16))
    with pytest.raises(ConfigError, match="publish_rgb: source replay has no RGB camera"):
        driver(source="replay", device=str(tmp_path), publish_rgb=True)
    node = spinner.add(driver(source="replay", device=str(tmp_path), loop=True))
    listener = spinner.add(Listener(ros_context))
    refused = listener.set_parameters(node.get_name(), publish_rgb=True)
    assert not refused[0].successful
    assert "rgb_camera" in refused[0].reason


def test_sim_pairs_rgb_with_thermal_under_the_same_stamp(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    rgb: list[Image] = []
    listener.create_subscription(Image, topics.CAMERA_IMAGE_RAW, rgb.append, STREAM_SUBSCRIBER_QOS)
    spinner.add(driver(source="sim", publish_raw=True, publish_rgb=True))
    wait_for(lambda: len(rgb) >= 3 and len(listener.raw) >= 3, 10.0, "paired rgb and raw frames")
    camera = rgb[-1]
    assert (camera.encoding, camera.height, camera.width) == ("rgb8", 240, 320)
    assert camera.header.frame_id == "camera_optical_frame"
    raw_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in listener.raw}
    assert (camera.header.stamp.sec, camera.header.stamp.nanosec) in raw_stamps
    pixels = image_to_array(camera)
    assert pixels.std() > 10, "a rendered scene, not a blank frame"


def test_color_preview_shows_the_heatmap_of_its_frame_in_inferno(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    previews: list[Image] = []
    listener.create_subscription(Image, topics.THERMAL_IMAGE_COLOR, previews.append, STREAM_SUBSCRIBER_QOS)
    spinner.add(driver(source="sim", publish_color=True, color_size=[120, 160]))
    wait_for(lambda: len(previews) >= 3, 10.0, "colour previews")
    preview = previews[-1]
    assert (preview.encoding, preview.height, preview.width) == ("rgb8", 120, 160)
    assert preview.header.frame_id == "thermal_optical_frame"

    def same_frame_heatmap() -> Image | None:
        return next((m for _, m in listener.images if m.header.stamp == preview.header.stamp), None)

    wait_for(lambda: same_frame_heatmap() is not None, 5.0, "the heatmap with the preview's stamp")
    heatmap = image_to_array(same_frame_heatmap())
    blocks = image_to_array(preview).reshape(12, 10, 16, 10, 3)
    assert np.all(blocks == blocks[:, :1, :, :1]), "each heatmap cell must be one square block"
    cells = blocks[:, 0, :, 0]
    assert tuple(cells[np.unravel_index(heatmap.argmax(), heatmap.shape)]) == INFERNO_HOTTEST_RGB
    assert tuple(cells[np.unravel_index(heatmap.argmin(), heatmap.shape)]) == INFERNO_COLDEST_RGB

    wait_for(lambda: listener.diagnostics, 3.0, "diagnostics")
    assert listener.last_values()["publish_color"] == "true"


def test_color_preview_is_off_by_default_and_switches_live(ros_context, spinner, driver):
    listener = spinner.add(Listener(ros_context))
    previews: list[Image] = []
    listener.create_subscription(Image, topics.THERMAL_IMAGE_COLOR, previews.append, STREAM_SUBSCRIBER_QOS)
    node = spinner.add(driver(source="sim"))
    wait_for(lambda: len(listener.images) >= 3, 10.0, "heatmaps")
    assert node.count_publishers(topics.THERMAL_IMAGE_COLOR) == 0
    assert previews == []

    too_big = listener.set_parameters(node.get_name(), color_size=[1081, 320])
    assert not too_big[0].successful
    assert "color_size" in too_big[0].reason
    results = listener.set_parameters(node.get_name(), publish_color=True, color_size=[24, 32])
    assert all(result.successful for result in results)
    wait_for(lambda: previews and previews[-1].width == 32, 5.0, "24x32 previews once switched on")
    assert previews[-1].height == 24

    assert listener.set_parameters(node.get_name(), publish_color=False)[0].successful
    wait_for(lambda: node.count_publishers(topics.THERMAL_IMAGE_COLOR) == 0, 5.0, "the preview topic gone")


@pytest.mark.parametrize(
    ("color_size", "reason"),
    [
        ([0, 320], "color_size must be positive, got [0, 320]"),
        ([240, 320, 3], "color_size must be two integers [height, width]"),
        ([1080, 1441], "color_size [1080, 1441] exceeds the maximum [1080, 1440]"),
    ],
    ids=["zero", "three-values", "too-big"],
)
def test_bad_color_size_at_startup_is_refused_with_a_reason(driver, color_size, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        driver(source="sim", color_size=color_size)
