"""The rgb_camera node through real rclpy and real OpenCV, fed a video file written here.

Only V4L2 hardware cannot exist on a test machine; a file takes the same code path through OpenCV,
and its frames carry their own number and known colours, so order, pacing and channel order are
checked on the pixels that arrive, not on what the node claims.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import start_executable, stop, wait_for
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from thermal_driver.rgb_camera import ConfigError, RgbCameraNode
from thermal_driver.sources.video_device import explain_open_failure
from thermal_msgs import topics
from thermal_msgs.image import image_to_array
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_synth.bringup.graph import config_dir, yaml_parameters

pytestmark = pytest.mark.ros

SIZE = (120, 160)
"""Height x width; the colour bands sit on 16-pixel MJPG block boundaries so their centres stay pure."""
RED_PIXEL, BLUE_PIXEL, LEVEL_PIXEL = (60, 24), (60, 72), (60, 128)
FIRST_LEVEL, LEVEL_STEP = 10, 6


def write_clip(path: Path, frames: int, fps: float = 20.0) -> Path:
    """MJPG in AVI: opencv-python-headless writes and reads it without system codecs.

    Left band red, middle band blue (written as BGR, as OpenCV wants), right band a grey level that
    encodes the frame number.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (SIZE[1], SIZE[0]))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG/AVI"
    for index in range(frames):
        frame = np.empty((*SIZE, 3), np.uint8)
        frame[:, :48] = (0, 0, 255)
        frame[:, 48:96] = (255, 0, 0)
        frame[:, 96:] = FIRST_LEVEL + LEVEL_STEP * index
        writer.write(frame)
    writer.release()
    return path


def frame_number(pixels: np.ndarray) -> int:
    return round((float(pixels[LEVEL_PIXEL].mean()) - FIRST_LEVEL) / LEVEL_STEP)


def stamp_s(msg: Image) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class CameraListener(Node):
    """Subscribes the way a consumer of camera/image_raw does (sensor-data QoS), plus /diagnostics."""

    def __init__(self, context) -> None:
        super().__init__("camera_listener", context=context)
        self.images: list[tuple[float, Image]] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.create_subscription(Image, topics.CAMERA_IMAGE_RAW, self._on_image, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)

    def _on_image(self, msg: Image) -> None:
        self.images.append((time.monotonic(), msg))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.extend(s for s in msg.status if "rgb_camera" in s.name)

    def values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].values} if self.diagnostics else {}

    @staticmethod
    def state_of(status: DiagnosticStatus) -> str:
        return next(kv.value for kv in status.values if kv.key == "state")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "[ERROR]" in line]


def test_late_device_is_retried_then_streams_rgb8_in_order_at_fps_and_finishes_alive(
    ros_context, spinner, tmp_path
):
    """One node's life: absent, appearing, streaming, finished.

    The clip appears only after the node's diagnostics reach us, so discovery is complete before
    its 2 s run starts; a clip present at start-up can be over before a loaded machine connects.
    """
    device = tmp_path / "camera" / "clip.avi"
    device.parent.mkdir()
    listener = spinner.add(CameraListener(ros_context))
    process = start_executable(
        "rgb_camera",
        *("-p", f"device:={device}", "-p", "fps:=20.0"),
        *("-p", "retry_initial_s:=0.1", "-p", "retry_max_s:=0.4"),
    )
    try:
        wait_for(lambda: int(listener.values().get("retries", 0)) >= 2, 10.0, "two retries in diagnostics")
        status = listener.diagnostics[-1]
        assert status.level == DiagnosticStatus.ERROR
        assert listener.values()["state"] == "waiting for device"
        assert str(device) in status.message
        assert "does not exist" in status.message
        assert process.poll() is None, "the node must keep retrying, not exit"
        assert listener.images == []

        # Written elsewhere and renamed into place, as a camera appears: never half there.
        os.replace(write_clip(tmp_path / "clip.avi", frames=40), device)
        wait_for(lambda: listener.values().get("state") == "finished", 10.0, "the end of the clip")
        streaming = [s for s in listener.diagnostics if listener.state_of(s) == "streaming"]
        assert streaming, "diagnostics never showed the clip streaming"
        assert {s.level for s in streaming} == {DiagnosticStatus.OK}
        status = listener.diagnostics[-1]
        assert status.level == DiagnosticStatus.OK
        assert "end of file" in status.message
        assert process.poll() is None, "a finished file must not end the node"
        received = len(listener.images)
        time.sleep(1.0)
        assert len(listener.images) == received, "nothing is published after the end"
    finally:
        code, _, stderr = stop(process)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, f"expected one error line however many retries, got: {errors}"
    assert str(device) in errors[0]
    assert "retrying" in errors[0]

    messages = [msg for _, msg in listener.images]
    # Best effort: a busy machine's subscriber once got 24 of 40; streaming at all brings at least half.
    assert len(messages) >= 20, f"only {len(messages)} of 40 frames arrived"
    first = messages[0]
    assert (first.encoding, first.height, first.width) == ("rgb8", *SIZE)
    assert {msg.header.frame_id for msg in messages} == {"camera_optical_frame"}

    # Best-effort delivery may drop a frame on a loaded machine; it must never repeat or reorder one.
    numbers = [frame_number(image_to_array(msg)) for msg in messages]
    assert numbers == sorted(set(numbers)), f"repeated or out of order: {numbers}"
    assert numbers[-1] <= 39, numbers
    pixels = image_to_array(messages[-1])
    np.testing.assert_allclose(pixels[RED_PIXEL], (255, 0, 0), atol=8, err_msg="red must stay red (not BGR)")
    np.testing.assert_allclose(pixels[BLUE_PIXEL], (0, 0, 255), atol=8, err_msg="blue must stay blue")

    stamps = [stamp_s(msg) for msg in messages]
    assert stamps == sorted(set(stamps)), "stamps must strictly increase"
    assert abs(stamps[-1] - time.time()) < 30.0, "stamps are the node clock's capture time"
    frames_spanned = numbers[-1] - numbers[0]
    # A file plays at its fps, never as fast as it decodes; a busy machine may fall behind.
    assert 10.0 <= frames_spanned / (stamps[-1] - stamps[0]) <= 23.0, "capture rate"
    arrivals = [t for t, _ in listener.images]
    assert 10.0 <= frames_spanned / (arrivals[-1] - arrivals[0]) <= 25.0, "arrival rate"


def test_executable_exits_2_with_one_error_line_on_a_bad_parameter():
    process = start_executable("rgb_camera", "-p", "fourcc:=MJPEG")
    _, stderr = process.communicate(timeout=20.0)
    assert process.returncode == 2
    assert "Traceback" not in stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, errors
    assert "fourcc must be 4 ASCII characters" in errors[0]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"width": -640}, "width and height must be >= 0"),
        ({"fps": 0.0}, "fps must be in"),
        ({"fps": 30}, "fps must be of type double"),
        ({"reliability": "sometimes"}, "reliability must be one of"),
        ({"frame_id": ""}, "frame_id must be a non-empty string"),
        ({"retry_initial_s": 5.0, "retry_max_s": 1.0}, "retry_initial_s and retry_max_s"),
    ],
)
def test_bad_startup_parameters_are_refused_naming_them(ros_context, parameters, message):
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    with pytest.raises(ConfigError, match=message):
        RgbCameraNode(context=ros_context, parameter_overrides=overrides)


def test_yaml_parameters_are_exactly_what_the_node_declares_and_frame_id_is_live(ros_context, tmp_path):
    parameters = yaml_parameters(config_dir() / "rgb_camera.yaml", "rgb_camera")
    # The YAML's camera 0 may be a real webcam on a developer's machine: never open it in a test.
    expected = {**parameters, "device": str(tmp_path / "absent.avi")}
    overrides = [Parameter(name, value=value) for name, value in expected.items()]
    node = RgbCameraNode(context=ros_context, parameter_overrides=overrides)
    try:
        declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}
        assert set(parameters) == declared
        for name, value in expected.items():
            assert node.get_parameter(name).value == value
        assert not node.set_parameters([Parameter("device", value="1")])[0].successful, "read-only"
        assert not node.set_parameters([Parameter("frame_id", value="")])[0].successful
        assert node.set_parameters([Parameter("frame_id", value="webcam_optical_frame")])[0].successful
    finally:
        node.destroy_node()


def test_an_integer_device_means_a_video_index(ros_context):
    node = RgbCameraNode(
        context=ros_context,
        parameter_overrides=[Parameter("device", value=97), Parameter("retry_initial_s", value=5.0)],
    )
    try:
        assert node.config.device == "97"
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("device", "hint"),
    [
        (97, "/dev/video97 does not exist"),
        ("/dev/video97", "/dev/video97 does not exist"),
        ("rtsp://192.0.2.1/stream", "check the URL"),
    ],
)
def test_open_failures_say_what_to_check(device: int | str, hint: str) -> None:
    assert hint in explain_open_failure(device)


def test_undecodable_file_is_named_as_such(tmp_path: Path) -> None:
    not_video = tmp_path / "notes.avi"
    not_video.write_text("not a video")
    assert "cannot decode" in explain_open_failure(str(not_video))
