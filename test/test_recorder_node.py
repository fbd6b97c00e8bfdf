"""The pair recorder with real nodes: the sim driver or a scripted publisher in, rosbag2 files out."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import set_parameters, start_executable, stop, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

from thermal_msgs import topics
from thermal_msgs.image import array_to_image
from thermal_msgs.qos import STREAM_PUBLISHER_QOS
from thermal_synth.nodes.recorder import PairRecorderNode, new_bag_path
from thermal_synth.recording.bags import PairBagReader, repair_bag

MS = 1_000_000


class Rig(Node):
    """Plays the sensors (scripted stamps and pixels) and the operator (service, diagnostics)."""

    def __init__(self, context) -> None:
        super().__init__("recorder_rig", context=context)
        self.thermal = self.create_publisher(Image, topics.THERMAL_IMAGE_RAW, STREAM_PUBLISHER_QOS)
        self.rgb = self.create_publisher(Image, topics.CAMERA_IMAGE_RAW, STREAM_PUBLISHER_QOS)
        self.diagnostics: list[dict[str, str]] = []
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "pair_recorder" in status.name:
                self.diagnostics.append(
                    {kv.key: kv.value for kv in status.values} | {"_message": status.message}
                )

    def publish(self, publisher, array: np.ndarray, encoding: str, stamp_ns: int) -> None:
        msg = array_to_image(array, encoding, frame_id="rig")
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        publisher.publish(msg)

    def wait_for_recorder(self) -> None:
        wait_for(
            lambda: self.thermal.get_subscription_count() and self.rgb.get_subscription_count(),
            10.0,
            "the recorder's subscriptions",
        )

    def wait_for_pairs_written(self, count: int) -> None:
        wait_for(
            lambda: any(int(d.get("pairs_written", 0)) >= count for d in self.diagnostics),
            30.0,
            f"{count} pairs written",
        )

    def record(self, on: bool) -> SetBool.Response:
        client = self.create_client(SetBool, "/pair_recorder/record")
        assert client.wait_for_service(timeout_sec=10.0), "~/record never appeared"
        future = client.call_async(SetBool.Request(data=on))
        wait_for(future.done, 30.0, "~/record reply")
        return future.result()

    def set_parameter(self, name: str, value):
        (result,) = set_parameters(self, "pair_recorder", **{name: value})
        return result


@pytest.fixture
def rig(ros_context, spinner) -> Rig:
    return spinner.add(Rig(ros_context))


@pytest.fixture
def recorder(ros_context, spinner):
    nodes: list[PairRecorderNode] = []

    def build(**parameters) -> PairRecorderNode:
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        nodes.append(PairRecorderNode(context=ros_context, parameter_overrides=overrides))
        return spinner.add(nodes[-1])

    yield build
    spinner.shutdown()
    for node in nodes:
        node.destroy_node()


def thermal_frame(value: int) -> np.ndarray:
    return np.full((120, 160), 29315 + value, np.uint16)


def rgb_frame(value: int) -> np.ndarray:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 0] = value
    frame[..., 2] = 255 - value
    return frame


def read_topics(bag: Path) -> dict[str, list]:
    """Every message of the bag by topic, deserialised by rosbags: what `ros2 bag play` would send."""
    messages: dict[str, list] = {}
    with AnyReader([bag]) as reader:
        for connection, _timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(reader.deserialize(raw, connection.msgtype))
    return messages


def stamps(messages) -> list[int]:
    return [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in messages]


def test_scripted_streams_pair_nearest_within_slop_and_count_the_rest(rig, recorder, tmp_path):
    bag = tmp_path / "take"
    node = recorder(bag_path=str(bag), record_on_start=False, person="ada", outfit="red jumper", scene="desk")
    rig.wait_for_recorder()
    assert rig.record(True).success
    base = 1_700_000_000 * 1_000_000_000
    thermal_stamps = [base + k * 115 * MS for k in range(8)]
    # RGB 30 Hz-ish with a gap: frames near thermal 3 and 4 are missing entirely.
    rgb_stamps = [base + k * 33 * MS + 3 * MS for k in range(30) if not 10 <= k <= 15]
    events = [(s, "rgb", i) for i, s in enumerate(rgb_stamps)] + [
        (s + MS, "thermal", i) for i, s in enumerate(thermal_stamps)
    ]
    for _arrival, kind, index in sorted(events):
        if kind == "rgb":
            rig.publish(rig.rgb, rgb_frame(index * 8), "bgr8", rgb_stamps[index])
        else:
            rig.publish(rig.thermal, thermal_frame(index), "16UC1", thermal_stamps[index])
        time.sleep(0.01)
    wait_for(
        lambda: node.recording.stats.pairing.pairs + node.recording.stats.pairing.thermal_unmatched >= 6,
        10.0,
        "pairing",
    )
    response = rig.record(False)
    assert response.success
    assert "pairs" in response.message

    messages = read_topics(bag)
    thermal, rgb = messages[topics.PAIRS_THERMAL], messages[topics.PAIRS_RGB]
    assert stamps(thermal) == stamps(rgb)
    expected = {}
    for index, stamp in enumerate(thermal_stamps):
        nearest = min(range(len(rgb_stamps)), key=lambda i, s=stamp: abs(rgb_stamps[i] - s))
        if abs(rgb_stamps[nearest] - stamp) <= 50 * MS:
            expected[stamp] = (index, nearest)
    assert set(stamps(thermal)) == set(expected)
    assert len(expected) < len(thermal_stamps)
    for t_msg, r_msg in zip(thermal, rgb, strict=True):
        index, nearest = expected[stamps([t_msg])[0]]
        assert t_msg.encoding == "16UC1"
        assert r_msg.encoding == "bgr8"
        assert int(t_msg.data.view(np.uint16)[0]) == 29315 + index
        assert r_msg.data[0] == nearest * 8
        assert r_msg.data[2] == 255 - nearest * 8
    (session,) = messages[topics.PAIRS_SESSION]
    labels = json.loads(session.data)
    assert (labels["person"], labels["outfit"], labels["scene"]) == ("ada", "red jumper", "desk")
    unmatched = len(thermal_stamps) - len(expected)
    wait_for(lambda: rig.diagnostics and "last_recording" in rig.diagnostics[-1], 5.0, "diagnostics")
    assert f"unpaired thermal frames: {unmatched}" in node.last_summary


def test_wrong_thermal_encoding_is_dropped_and_counted(rig, recorder, tmp_path):
    node = recorder(bag_path=str(tmp_path / "bag"))
    rig.wait_for_recorder()
    rig.publish(rig.thermal, np.zeros((120, 160), np.float32), "32FC1", 1000)
    wait_for(lambda: node.frames_dropped_bad == 1, 10.0, "the bad frame to be counted")
    assert "16UC1" in node.last_problem
    wait_for(
        lambda: rig.diagnostics and rig.diagnostics[-1].get("frames_dropped_bad") == "1", 5.0, "diagnostics"
    )
    report = rig.diagnostics[-1]
    assert (report["rejected.encoding"], report["rejected.empty"]) == ("1", "0")
    assert any("rejected 1 malformed frames, none recorded" in d["_message"] for d in rig.diagnostics)


def test_stop_and_start_again_makes_a_second_bag_and_never_overwrites(rig, recorder, tmp_path):
    recorder(bag_path=str(tmp_path / "take"), record_on_start=False)
    rig.wait_for_recorder()
    for _ in range(2):
        assert rig.record(True).success
        assert rig.record(False).success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take", "take_2"]
    for bag in tmp_path.iterdir():
        assert (
            yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["version"] == 8
        )


def test_bad_parameters_are_refused_with_a_reason(rig, recorder, tmp_path):
    recorder(bag_path=str(tmp_path / "bag"), record_on_start=False)
    result = rig.set_parameter("storage", "zip")
    assert not result.successful
    assert "mcap" in result.reason
    assert not rig.set_parameter("slop_s", 0.0).successful


def test_unwritable_bag_path_fails_the_service_call_and_the_node_stays(rig, recorder, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    node = recorder(bag_path=str(blocker / "bag"), record_on_start=False)
    response = rig.record(True)
    assert not response.success
    assert str(blocker) in response.message
    assert node.recording is None


def test_missing_parent_directories_are_created(rig, recorder, tmp_path):
    node = recorder(bag_path=str(tmp_path / "bags" / "ada" / "take"))
    assert node.recording.path == tmp_path / "bags" / "ada" / "take"
    assert (tmp_path / "bags" / "ada" / "take").is_dir()


def test_new_bag_path_is_timestamped_when_empty_and_numbered_when_taken(tmp_path):
    assert new_bag_path("", now=0).name.startswith("pairs_19")
    (tmp_path / "x").mkdir()
    (tmp_path / "x_2").mkdir()
    assert new_bag_path(str(tmp_path / "x")) == tmp_path / "x_3"


def test_executable_with_an_unwritable_path_exits_2_with_one_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    process = start_executable("pair_recorder", "-p", f"bag_path:={blocker / 'bag'}")
    _stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert str(blocker) in errors[0]


def start_sim_rig_and_recorder(bag: Path, *extra: str):
    driver = start_executable(
        "thermal_driver",
        "-p",
        "source:=sim",
        "-p",
        "publish_raw:=true",
        "-p",
        "publish_rgb:=true",
        "-p",
        "rate_hz:=10.0",
    )
    recorder = start_executable(
        "pair_recorder", "-p", f"bag_path:={bag}", "-p", "person:=sim-person", "-p", "scene:=sim-desk", *extra
    )
    return driver, recorder


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sim_driver_and_recorder_make_a_bag_with_equal_paired_topics(rig, tmp_path, storage):
    bag = tmp_path / "session"
    driver, recorder_process = start_sim_rig_and_recorder(bag, "-p", f"storage:={storage}")
    try:
        rig.wait_for_pairs_written(15)
        code, _out, err = stop(recorder_process, timeout_s=20.0)
        assert code == 0, err
        assert "wrote" in err
        assert "Failed to publish" not in err
    finally:
        stop(driver)
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] == 8
    assert metadata["storage_identifier"] == storage
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in metadata["topics_with_message_count"]}
    assert counts[topics.PAIRS_THERMAL] == counts[topics.PAIRS_RGB] >= 15
    messages = read_topics(bag)
    thermal_stamps = stamps(messages[topics.PAIRS_THERMAL])
    assert thermal_stamps == stamps(messages[topics.PAIRS_RGB])
    # Pairs recorded before the mask subscription matched (discovery) have none, and a best-effort mask
    # a loaded machine delivers later than the writer waits is left out; a mask is always its pair's.
    mask_stamps = stamps(messages[topics.PAIRS_MASK])
    assert len(mask_stamps) >= len(thermal_stamps) // 2, f"{len(mask_stamps)} masks for {len(thermal_stamps)}"
    assert mask_stamps == sorted(set(mask_stamps))
    assert set(mask_stamps) <= set(thermal_stamps), "every mask is stored under its pair's stamp"
    assert {m.encoding for m in messages[topics.PAIRS_THERMAL]} == {"16UC1"}
    assert {m.encoding for m in messages[topics.PAIRS_RGB]} == {"rgb8"}
    assert {m.encoding for m in messages[topics.PAIRS_MASK]} == {"mono8"}
    reader = PairBagReader(bag)
    assert reader.labels.person == "sim-person"
    assert reader.labels.scene == "sim-desk"
    pairs = list(reader.pairs())
    assert len(pairs) == counts[topics.PAIRS_THERMAL]
    assert sum(p.person_mask is not None and p.person_mask.any() for p in pairs) == len(mask_stamps)
    assert pairs[0].thermal_centikelvin.shape == (120, 160)
    assert pairs[0].rgb.shape == (240, 320, 3)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_killed_recorder_loses_at_most_the_last_second_and_repair_recovers(rig, tmp_path, storage):
    bag = tmp_path / "killed"
    driver, recorder_process = start_sim_rig_and_recorder(bag, "-p", f"storage:={storage}")
    try:
        rig.wait_for_pairs_written(10)
        written_before = max(int(d.get("pairs_written", 0)) for d in rig.diagnostics)
        time.sleep(1.5)
        recorder_process.send_signal(signal.SIGKILL)
        recorder_process.communicate(timeout=10)
    finally:
        stop(driver)
    report = repair_bag(bag)
    assert not report.already_ok
    reader = PairBagReader(bag)
    assert not reader.salvaged
    assert len(list(reader.pairs())) >= written_before
    assert reader.labels.person == "sim-person"
