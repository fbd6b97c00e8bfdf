"""ReplaySource on real rosbag2 recordings (MCAP and sqlite3, written with rosbags) and .npy folders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from conftest import LEPTON_FRAME
from fake_clock import FakeClock
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from thermal_driver.sources.base import SensorUnavailable
from thermal_driver.sources.replay import ReplayFinished, ReplaySource
from thermal_msgs.image import image_fields

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
IMAGE = "sensor_msgs/msg/Image"
Image = TYPESTORE.types[IMAGE]
Header = TYPESTORE.types["std_msgs/msg/Header"]
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
String = TYPESTORE.types["std_msgs/msg/String"]

FRAME_SPACING_NS = 115_000_000
FIRST_STAMP_NS = 1_700_000_000 * 10**9 + 950_000_000
"""Close to a second boundary, so the stamps cross it and `sec` and `nanosec` both matter."""


def image_message(frame: np.ndarray, encoding: str, stamp_ns: int) -> object:
    fields = image_fields(frame, encoding)
    stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return Image(header=Header(stamp=stamp, frame_id="thermal"), data=fields.data, **fields.layout())


def write_bag(
    path: Path,
    messages: Iterable[tuple[str, str, object, int]],
    storage: StoragePlugin = StoragePlugin.MCAP,
) -> Path:
    """messages: (topic, msgtype, message, log time ns), written in the given order."""
    with Writer(path, version=8, storage_plugin=storage) as writer:
        connections = {}
        for topic, msgtype, message, log_time_ns in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            writer.write(connections[topic], log_time_ns, TYPESTORE.serialize_cdr(message, msgtype))
    return path


def random_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Every uint16 bit pattern is possible, so a byte swap or a lossy step cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 65536, (120, 160), dtype=np.uint16) for _ in range(count)]


def thermal_bag(
    path: Path,
    frames: list[np.ndarray],
    topic: str = "/thermal/image_raw",
    storage: StoragePlugin = StoragePlugin.MCAP,
    encoding: str = "16UC1",
) -> Path:
    """Header stamps exactly 115 ms apart; log times jittered, so pacing must come from the stamps."""
    jitter_ns = [3_000_000, 41_000_000, 0, 17_000_000, 9_000_000]
    return write_bag(
        path,
        (
            (
                topic,
                IMAGE,
                image_message(frame, encoding, FIRST_STAMP_NS + i * FRAME_SPACING_NS),
                FIRST_STAMP_NS + i * FRAME_SPACING_NS + jitter_ns[i % len(jitter_ns)],
            )
            for i, frame in enumerate(frames)
        ),
        storage,
    )


def replay(path: Path, clock: FakeClock, **options: object) -> ReplaySource:
    source = ReplaySource(str(path), clock=clock.monotonic, sleep=clock.sleep, **options)
    source.open()
    return source


def read_all(source: ReplaySource) -> list[np.ndarray]:
    frames = []
    while True:
        try:
            frames.append(source.read().centikelvin)
        except ReplayFinished:
            return frames


def assert_same_frames(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == np.uint16
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"])
def test_bag_frames_come_back_bit_exact_in_order_paced_by_header_stamps(
    tmp_path: Path, clock: FakeClock, storage: StoragePlugin
) -> None:
    frames = random_frames(5)
    source = replay(thermal_bag(tmp_path / "bag", frames, storage=storage), clock)
    assert_same_frames(read_all(source), frames)
    np.testing.assert_allclose(clock.sleeps, [0.115] * 4, atol=1e-9)
    assert source.diagnostics()["frames_played"] == "5"


def test_finished_replay_keeps_raising_replay_finished(tmp_path: Path, clock: FakeClock) -> None:
    source = replay(thermal_bag(tmp_path / "bag", random_frames(2)), clock, loop=False)
    source.read()
    source.read()
    with pytest.raises(ReplayFinished, match="finished after 2 frames"):
        source.read()
    with pytest.raises(ReplayFinished):
        source.read()


def test_loop_starts_over_one_frame_period_after_the_last_frame(tmp_path: Path, clock: FakeClock) -> None:
    frames = random_frames(3)
    source = replay(thermal_bag(tmp_path / "bag", frames), clock, loop=True, rate_hz=8.0)
    played = [source.read().centikelvin for _ in range(7)]
    assert_same_frames(played, frames + frames + frames[:1])
    gap = 1 / 8.0
    np.testing.assert_allclose(clock.sleeps, [0.115, 0.115, gap, 0.115, 0.115, gap], atol=1e-9)
    assert source.diagnostics()["passes"] == "3"


def test_a_stalled_consumer_resumes_at_the_recorded_pace_instead_of_bursting(
    tmp_path: Path, clock: FakeClock
) -> None:
    source = replay(thermal_bag(tmp_path / "bag", random_frames(5)), clock)
    source.read()
    source.read()
    clock.advance(5.0)
    source.read()  # late: played at once, and the schedule is re-anchored here
    source.read()
    source.read()
    np.testing.assert_allclose(clock.sleeps, [0.115, 0.115, 0.115], atol=1e-9)


def test_recorder_pairs_topic_is_found_and_the_driver_topic_preferred(
    tmp_path: Path, clock: FakeClock
) -> None:
    frames = random_frames(2)
    pairs_only = thermal_bag(tmp_path / "pairs", frames, topic="/pairs/thermal")
    assert_same_frames(read_all(replay(pairs_only, clock)), frames)

    raw, paired = random_frames(1, seed=1), random_frames(1, seed=2)
    both = write_bag(
        tmp_path / "both",
        [
            ("/pairs/thermal", IMAGE, image_message(paired[0], "16UC1", FIRST_STAMP_NS), FIRST_STAMP_NS),
            ("/thermal/image_raw", IMAGE, image_message(raw[0], "16UC1", FIRST_STAMP_NS), FIRST_STAMP_NS + 1),
        ],
    )
    assert_same_frames(read_all(replay(both, clock)), raw)


def test_an_explicit_topic_overrides_the_defaults(tmp_path: Path, clock: FakeClock) -> None:
    frames = random_frames(2)
    bag = thermal_bag(tmp_path / "bag", frames, topic="/lab/lepton/raw")
    assert_same_frames(read_all(replay(bag, clock, topic="/lab/lepton/raw")), frames)


def test_bag_without_a_thermal_topic_is_refused_listing_its_image_topics(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    bag = write_bag(
        tmp_path / "bag",
        [
            ("/camera/image_raw", IMAGE, image_message(rgb, "rgb8", FIRST_STAMP_NS), FIRST_STAMP_NS),
            ("/chatter", "std_msgs/msg/String", String(data="hello"), FIRST_STAMP_NS + 1),
        ],
    )
    wanted = r"\['/thermal/image_raw', '/pairs/thermal'\]"
    with pytest.raises(
        SensorUnavailable, match=rf"no thermal topic {wanted}; image topics: \['/camera/image_raw'\]"
    ):
        ReplaySource(str(bag)).open()


def test_thermal_topic_with_a_colour_encoding_is_refused_naming_it(tmp_path: Path) -> None:
    rgb = np.zeros((120, 160, 3), np.uint8)
    bag = write_bag(
        tmp_path / "bag",
        [("/thermal/image_raw", IMAGE, image_message(rgb, "rgb8", FIRST_STAMP_NS), FIRST_STAMP_NS)],
    )
    with pytest.raises(SensorUnavailable, match=r"16UC1 or mono16 centi-Kelvin, got encoding 'rgb8'"):
        ReplaySource(str(bag)).open()


def test_mono16_frames_are_accepted(tmp_path: Path, clock: FakeClock) -> None:
    frames = random_frames(2)
    bag = thermal_bag(tmp_path / "bag", frames, encoding="mono16")
    assert_same_frames(read_all(replay(bag, clock)), frames)


def test_looping_a_bag_without_thermal_frames_fails_instead_of_spinning(tmp_path: Path) -> None:
    """A bag recorded while the driver was silent has the topic but no messages."""
    bag = tmp_path / "bag"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/thermal/image_raw", IMAGE, typestore=TYPESTORE)
    with pytest.raises(ReplayFinished, match="after 0 frames"):
        replay(bag, FakeClock(), loop=False).read()
    with pytest.raises(SensorUnavailable, match="no thermal frames to loop over"):
        replay(bag, FakeClock(), loop=True).read()


def test_npy_folder_plays_in_name_order_at_rate_hz(tmp_path: Path, clock: FakeClock) -> None:
    frames = random_frames(3)
    for index in (2, 0, 1):  # written out of order: the name decides
        np.save(tmp_path / f"frame_{index:03d}.npy", frames[index])
    source = replay(tmp_path, clock, rate_hz=5.0)
    assert_same_frames(read_all(source), frames)
    np.testing.assert_allclose(clock.sleeps, [0.2, 0.2], atol=1e-9)


def test_real_lepton_frame_with_a_channel_axis_replays_as_a_2d_frame(
    tmp_path: Path, clock: FakeClock
) -> None:
    lepton = np.load(LEPTON_FRAME)
    np.save(tmp_path / "lepton.npy", lepton)
    assert_same_frames(read_all(replay(tmp_path, clock)), [lepton[..., 0]])


def test_pickled_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(
        tmp_path / "evil.npy", np.array([{"payload": "would run on load"}], dtype=object), allow_pickle=True
    )
    with pytest.raises(SensorUnavailable, match=r"evil\.npy: not a plain numpy array"):
        ReplaySource(str(tmp_path)).open()


def test_float_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "celsius.npy", np.full((120, 160), 21.5, np.float32))
    with pytest.raises(SensorUnavailable, match=r"expected a 2-D uint16 centi-Kelvin frame, got float32"):
        ReplaySource(str(tmp_path)).open()


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SensorUnavailable, match=r"replay path .*nowhere does not exist"):
        ReplaySource(str(tmp_path / "nowhere")).open()


def test_folder_without_bag_or_frames_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a recording")
    with pytest.raises(SensorUnavailable, match="neither a rosbag2 directory"):
        ReplaySource(str(tmp_path)).open()
