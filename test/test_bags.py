"""Pair bags: round trips, splits, crashes, damage and repair, on real files and real processes.

Nothing here mocks rosbags or the file system: crashes are real SIGKILLs of a writer process, a full
disk is a real file-size limit (EFBIG), damage is real bytes cut or overwritten in a real file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BIN, REPO
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from thermal_msgs.image import to_rgb8
from thermal_msgs.topics import PAIRS_MASK, PAIRS_RGB, PAIRS_SESSION, PAIRS_THERMAL
from thermal_synth.cli import main as cli_main
from thermal_synth.recording import bags
from thermal_synth.recording.bags import (
    STORAGES,
    BagOptions,
    BagReadError,
    BagWriteError,
    PairBagReader,
    PairBagWriter,
    SessionLabels,
    image_cdr,
    inspect_bag,
    repair_bag,
    salvage_messages,
)
from thermal_synth.recording.bags.labels import _typestore

BASE_NS = 1_700_000_000 * 1_000_000_000
PERIOD_NS = 100_000_000
LABELS = SessionLabels(person="ada", outfit="red jumper", scene="desk", notes="first take\nwindow open")


def stamp(i: int) -> int:
    return BASE_NS + i * PERIOD_NS


def thermal(i: int, shape: tuple[int, int] = (12, 16)) -> np.ndarray:
    return ((np.arange(shape[0] * shape[1]).reshape(shape) * 7 + i * 101) % 65536).astype(np.uint16)


def rgb(i: int, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (*shape, 3), dtype=np.uint8)


def pair_cdr(i: int, frame_id: str = "camera") -> tuple[int, bytes, bytes]:
    s = stamp(i)
    return s, image_cdr(thermal(i), "16UC1", s, "thermal"), image_cdr(rgb(i), "rgb8", s, frame_id)


def write_bag(path: Path, pairs: int, options: BagOptions | None = None) -> bags.BagSummary:
    with PairBagWriter(path, LABELS, options or BagOptions()) as writer:
        for i in range(pairs):
            writer.write_pair(*pair_cdr(i))
    return writer.close()


def metadata(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def read_all(bag: Path) -> tuple[PairBagReader, list[bags.RecordedPair]]:
    reader = PairBagReader(bag)
    return reader, list(reader.pairs())


def anyreader_count(bag: Path) -> int:
    with AnyReader([bag]) as reader:
        return sum(1 for _ in reader.messages())


# ------------------------------------------------------------------------------------------------
# Labels and options


def test_labels_validate_and_ignore_unknown_keys():
    assert SessionLabels.from_json({"person": "ada", "future_field": 3}) == SessionLabels(person="ada")
    for bad, words in [
        ({"person": 7}, "person must be a string"),
        ({"scene": "x" * 101}, "at most 100"),
        ({"outfit": "red\njumper"}, "control character"),
        ({"notes": "tab\there"}, "control character"),
    ]:
        with pytest.raises(ValueError, match=words):
            SessionLabels.from_json(bad)
    with pytest.raises(ValueError, match="JSON object"):
        SessionLabels.from_json(["ada"])
    assert SessionLabels(notes="two\nlines").notes == "two\nlines"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"storage": "rosbag1"}, "storage"),
        ({"max_bag_size_mb": -1}, "max_bag_size_mb"),
        ({"max_bag_duration_s": float("nan")}, "max_bag_duration_s"),
        ({"flush_interval_s": "1"}, "flush_interval_s"),
    ],
)
def test_options_name_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"BagOptions.{field}"):
        BagOptions(**kwargs)


def test_image_cdr_and_rclpy_serialisation_read_each_other():
    """Compared field by field, not byte by byte: rclpy leaves CDR alignment padding uninitialised."""
    serialization = pytest.importorskip("rclpy.serialization")
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image

    from thermal_msgs.image import array_to_image, image_to_array

    frame = rgb(3)
    ours = image_cdr(frame, "rgb8", 5 * 10**9 + 7, "camera")
    theirs = serialization.serialize_message(
        array_to_image(frame, "rgb8", stamp=Time(sec=5, nanosec=7), frame_id="camera")
    )
    assert len(ours) == len(theirs)
    for msg in (
        serialization.deserialize_message(ours, Image),
        _typestore().deserialize_cdr(theirs, "sensor_msgs/msg/Image"),
    ):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (5, 7, "camera")
        assert (msg.encoding, msg.is_bigendian, msg.step) == ("rgb8", 0, 32 * 3)
        np.testing.assert_array_equal(image_to_array(msg), frame)


# ------------------------------------------------------------------------------------------------
# Round trips


RGB_SOURCES = {
    "rgb8": rgb(1),
    "bgr8": rgb(2),
    "mono8": rgb(3)[..., 0].copy(),
    "yuv422_yuy2": rgb(4)[..., :2].copy(),
}


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip_keeps_arrays_stamps_and_labels(tmp_path, storage):
    bag = tmp_path / "take"
    encodings = list(RGB_SOURCES)
    expected = []
    with PairBagWriter(bag, LABELS, BagOptions(storage=storage)) as writer:
        for i in range(8):
            s, encoding = stamp(i), encodings[i % 4]
            mask = (rgb(i)[..., 1] > 128).astype(np.uint8) * 255 if i % 2 else None
            writer.write_pair(
                s,
                image_cdr(thermal(i), "16UC1", s, "thermal"),
                image_cdr(RGB_SOURCES[encoding], encoding, s, "camera"),
                None if mask is None else image_cdr(mask, "mono8", s, "camera"),
            )
            expected.append((s, to_rgb8(RGB_SOURCES[encoding], encoding), mask))
    summary = writer.close()
    assert summary.pairs == 8
    assert summary.topic_counts == {PAIRS_SESSION: 1, PAIRS_THERMAL: 8, PAIRS_RGB: 8, PAIRS_MASK: 4}
    assert writer.close() is summary

    reader, pairs = read_all(bag)
    assert not reader.salvaged
    assert reader.problems == []
    assert reader.labels == LABELS
    assert reader.topic_counts() == summary.topic_counts
    assert [p.stamp_ns for p in pairs] == [s for s, _, _ in expected]
    for pair, (_, want_rgb, mask), i in zip(pairs, expected, range(8), strict=True):
        np.testing.assert_array_equal(pair.thermal_centikelvin, thermal(i))
        assert pair.thermal_centikelvin.dtype == np.uint16
        np.testing.assert_array_equal(pair.rgb, want_rgb)
        assert pair.rgb.shape == (24, 32, 3)
        assert pair.rgb.dtype == np.uint8
        if mask is None:
            assert pair.person_mask is None
        else:
            np.testing.assert_array_equal(pair.person_mask, mask > 0)

    info = metadata(bag)
    assert info["version"] == 8
    assert info["storage_identifier"] == storage
    assert info["custom_data"] == {f"thermal_synth.{k}": v for k, v in LABELS.to_json().items()}
    # Every topic's log time is the header stamp; the session message opens the file at the first stamp.
    with AnyReader([bag]) as any_reader:
        for connection, timestamp, raw in any_reader.messages():
            msg = any_reader.deserialize(raw, connection.msgtype)
            if connection.topic == PAIRS_SESSION:
                assert timestamp == stamp(0)
            else:
                assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == timestamp


def test_labels_fall_back_to_custom_data_for_a_bag_without_session_message(tmp_path):
    bag = tmp_path / "foreign"
    store = _typestore()
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        for key, value in SessionLabels(person="bob").custom_data().items():
            writer.set_custom_data(key, value)
        connections = {
            topic: writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=store)
            for topic in (PAIRS_THERMAL, PAIRS_RGB)
        }
        s, thermal_cdr, rgb_cdr = pair_cdr(0)
        writer.write(connections[PAIRS_THERMAL], s, thermal_cdr)
        writer.write(connections[PAIRS_RGB], s, rgb_cdr)
    reader, pairs = read_all(bag)
    assert reader.labels == SessionLabels(person="bob")
    assert len(pairs) == 1


def test_a_pair_must_share_one_header_stamp(tmp_path):
    with PairBagWriter(tmp_path / "take", LABELS) as writer:
        s, thermal_cdr, _ = pair_cdr(0)
        _, _, other_rgb = pair_cdr(1)
        with pytest.raises(ValueError, match="differs from the pair's stamp"):
            writer.write_pair(s, thermal_cdr, other_rgb)
        writer.write_pair(*pair_cdr(0))
    assert writer.close().pairs == 1


# ------------------------------------------------------------------------------------------------
# Splits


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("limit", ["size", "duration"])
def test_split_files_share_one_metadata_and_read_back(tmp_path, storage, limit):
    bag = tmp_path / "split"
    pair_bytes = len(pair_cdr(0)[1]) + len(pair_cdr(0)[2])
    options = (
        BagOptions(storage=storage, max_bag_size_mb=4.5 * pair_bytes / 1e6)
        if limit == "size"
        else BagOptions(storage=storage, max_bag_duration_s=0.45)
    )
    summary = write_bag(bag, 23, options)
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert [f.name for f in summary.files] == [f"split_{i}{suffix}" for i in range(5)]
    assert sorted(p.name for p in bag.iterdir()) == sorted(
        ["metadata.yaml", *(f.name for f in summary.files)]
    )

    info = metadata(bag)
    assert info["relative_file_paths"] == [f.name for f in summary.files]
    assert [f["message_count"] for f in info["files"]] == [11, 11, 11, 11, 7]
    assert sum(f["message_count"] for f in info["files"]) == info["message_count"] == 51
    topic_counts = {
        t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]
    }
    assert topic_counts == {PAIRS_SESSION: 5, PAIRS_THERMAL: 23, PAIRS_RGB: 23}
    assert info["starting_time"]["nanoseconds_since_epoch"] == stamp(0)
    assert info["duration"]["nanoseconds"] == stamp(22) - stamp(0)
    assert info["files"][1]["starting_time"]["nanoseconds_since_epoch"] == stamp(5)

    # Each file opens with the labels, so every split (or what a crash leaves of it) says whom it shows.
    for file in summary.files:
        assert next(iter(salvage_messages(file))).topic == PAIRS_SESSION
    with Reader(bag) as reader:
        assert reader.message_count == 51
    assert anyreader_count(bag) == 51
    reader, pairs = read_all(bag)
    assert [p.stamp_ns for p in pairs] == [stamp(i) for i in range(23)]
    assert reader.problems == []


# ------------------------------------------------------------------------------------------------
# Flushing: the rosbags internals this module relies on


@pytest.mark.parametrize("storage", STORAGES)
def test_flush_reaches_the_file_while_the_writer_is_open(tmp_path, storage):
    """Pins the two rosbags internals (_flush_mcap, _flush_sqlite3): what was written is in the file
    after a flush, with the writer still open, and not before (so the test would notice a no-op)."""
    now = [0.0]
    writer = PairBagWriter(tmp_path / "open", LABELS, BagOptions(storage=storage), clock=lambda: now[0])

    def on_disk() -> int:
        return sum(1 for _ in salvage_messages(writer.files[-1]))

    writer.write_pair(*pair_cdr(0))
    writer.write_pair(*pair_cdr(1))
    assert on_disk() == 0
    now[0] = 1.0
    writer.write_pair(*pair_cdr(2))  # a second has passed: write_pair flushes by itself
    assert on_disk() == 7
    writer.write_pair(*pair_cdr(3))
    assert on_disk() == 7
    writer.flush()
    assert on_disk() == 9
    assert writer.close().pairs == 4


# ------------------------------------------------------------------------------------------------
# Crashes


CHILD = r"""
import os, resource, signal, sys, time
import numpy as np
from thermal_synth.recording.bags import BagOptions, BagWriteError, PairBagWriter, SessionLabels, image_cdr

mode, path, storage = sys.argv[1:4]
thermal = np.zeros((120, 160), np.uint16)
# Killed writers get small frames: ~50 kB pairs fill rosbags' 1 MiB MCAP chunk only every ~20 pairs,
# so what survives is what flush() wrote, not what a full chunk happened to push out.
rgb = np.zeros((60, 80, 3) if mode == "kill" else (240, 320, 3), np.uint8)

def pair(i):
    stamp = 1_700_000_000_000_000_000 + i * 100_000_000
    return stamp, image_cdr(thermal + i, "16UC1", stamp, "thermal"), image_cdr(rgb, "rgb8", stamp, "camera")

labels = SessionLabels(person="crash test")
if mode == "kill":
    writer = PairBagWriter(path, labels, BagOptions(storage=storage, flush_interval_s=1.0))
    for i in range(100_000):
        writer.write_pair(*pair(i))
        print(i + 1, flush=True)
        time.sleep(0.1)
elif mode == "full":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    writer = PairBagWriter(path, labels, BagOptions(storage=storage, flush_interval_s=3600))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, resource.RLIM_INFINITY))
    try:
        for i in range(100):
            writer.write_pair(*pair(i))
            if i % 2:
                writer.flush()
                print("flushed", i + 1, flush=True)
    except BagWriteError as exc:
        print("error", exc, flush=True)
    try:
        print("closed", writer.close().pairs, flush=True)
    except BagWriteError as exc:
        print("close failed", exc, flush=True)
elif mode == "abandon":
    split_mb = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    writer = PairBagWriter(path, labels, BagOptions(storage=storage, max_bag_size_mb=split_mb))
    for i in range(int(sys.argv[4])):
        writer.write_pair(*pair(i))
    writer.flush()
    os._exit(0)
"""


def child(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def record_then_kill(bag: Path, storage: str, kill_after: int) -> tuple[float, list[tuple[float, int]]]:
    """(kill time, [(time reported, pairs written)]) of a writer process killed with SIGKILL."""
    process = child("kill", str(bag), storage)
    watchdog = threading.Timer(30.0, process.kill)
    watchdog.start()
    reports: list[tuple[float, int]] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            reports.append((time.monotonic(), int(line)))
            if reports[-1][1] >= kill_after:
                break
        killed_at = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        watchdog.cancel()
    assert process.returncode == -signal.SIGKILL, process.stderr
    return killed_at, reports


def test_sigkill_loses_at_most_the_last_second_and_repair_recovers(tmp_path):
    margin_s = 0.5
    with ThreadPoolExecutor(len(STORAGES)) as pool:
        runs = dict(
            zip(STORAGES, pool.map(lambda s: record_then_kill(tmp_path / s, s, 28), STORAGES), strict=True)
        )
    for storage, (killed_at, reports) in runs.items():
        bag = tmp_path / storage
        safe = max((n for t, n in reports if t <= killed_at - 1.0 - margin_s), default=0)
        assert safe >= 10, f"{storage}: the writer was too slow to test anything ({reports})"

        reader, salvaged_pairs = read_all(bag)
        assert reader.salvaged
        assert len(salvaged_pairs) >= safe, storage

        report = repair_bag(bag)
        assert not report.already_ok
        assert report.backup is not None
        assert report.backup.is_dir()
        reader, pairs = read_all(bag)
        assert not reader.salvaged, reader.problems
        assert safe <= len(pairs) == report.recovered_pairs <= reports[-1][1] + 1, storage
        assert reader.labels == SessionLabels(person="crash test")
        assert [p.stamp_ns for p in pairs] == [stamp(i) for i in range(len(pairs))]
        np.testing.assert_array_equal(pairs[-1].thermal_centikelvin, len(pairs) - 1)
        assert anyreader_count(bag) == report.recovered_messages
        assert inspect_bag(bag).intact


@pytest.mark.parametrize("storage", STORAGES)
def test_full_disk_is_one_clear_error_and_flushed_pairs_survive(tmp_path, storage):
    """RLIMIT_FSIZE makes the kernel refuse writes past 1.5 MB with EFBIG, as a full disk refuses
    them with ENOSPC: the same code path, without needing root to mount a tiny file system."""
    bag = tmp_path / "full"
    process = child("full", str(bag), storage)
    stdout, stderr = process.communicate(timeout=60)
    lines = stdout.splitlines()
    flushed = max((int(line.split()[1]) for line in lines if line.startswith("flushed")), default=0)
    errors = [line for line in lines if line.startswith("error")]
    assert flushed >= 2, (stdout, stderr)
    assert len(errors) == 1, (stdout, stderr)
    assert str(bag) in errors[0]
    assert "file size limit" in errors[0] or "SQLite" in errors[0]
    assert "thermal-synth bag repair" in errors[0]
    # close() after the error salvages what was flushed when the limit leaves room for it, else says so.
    assert any(line.startswith(("closed", "close failed")) for line in lines), stdout

    repair_bag(bag)  # a no-op when close() could already salvage within the limit
    reader, pairs = read_all(bag)
    assert not reader.salvaged
    assert len(pairs) >= flushed
    assert [p.stamp_ns for p in pairs] == [stamp(i) for i in range(len(pairs))]


def test_truncated_mcap_keeps_every_complete_chunk(tmp_path):
    bag = tmp_path / "cut"
    pairs_written = 20
    # flush_interval 0: one chunk per pair, so the cut position says how many pairs must survive.
    summary = write_bag(bag, pairs_written, BagOptions(flush_interval_s=0))
    (file,) = summary.files
    per_pair = file.stat().st_size / pairs_written
    cut = int(file.stat().st_size * 0.55) + 17
    with file.open("r+b") as stream:
        stream.truncate(cut)

    reader, pairs = read_all(bag)
    assert reader.salvaged
    assert any("cut off" in p for p in reader.problems)
    assert any("thermal-synth bag repair" in p for p in reader.problems)
    assert int(cut / per_pair) - 1 <= len(pairs) <= int(cut / per_pair) + 1
    for i, pair in enumerate(pairs):
        assert pair.stamp_ns == stamp(i)
        np.testing.assert_array_equal(pair.rgb, rgb(i))

    report = repair_bag(bag)
    assert report.files_repaired == (file.name,)
    assert 0 < report.dropped_bytes < per_pair * 1.5
    assert report.recovered_pairs == len(pairs)
    assert report.backup is not None
    assert (report.backup / file.name).stat().st_size == cut  # the damaged original, untouched
    repaired, again = read_all(bag)
    assert not repaired.salvaged
    assert [p.stamp_ns for p in again] == [p.stamp_ns for p in pairs]
    assert repaired.labels == LABELS
    assert anyreader_count(bag) == report.recovered_messages


@pytest.mark.parametrize("storage", STORAGES)
def test_repair_keeps_finished_splits_and_rebuilds_the_interrupted_one(tmp_path, storage):
    bag = tmp_path / "long"
    # ~0.27 MB pairs, 0.6 MB splits: long_0 and long_1 finish with 3 pairs each, long_2 is cut short.
    abandoned = child("abandon", str(bag), storage, "7", "0.6")
    assert abandoned.wait(timeout=30) == 0, abandoned.communicate()[1]
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert metadata(bag)["relative_file_paths"] == [f"long_0{suffix}", f"long_1{suffix}"]
    layout = inspect_bag(bag)
    assert [f.name for f in layout.files] == [f"long_{i}{suffix}" for i in range(3)]
    assert any("still being written" in p for p in layout.problems)

    reader, pairs = read_all(bag)
    assert reader.salvaged
    assert [p.stamp_ns for p in pairs] == [stamp(i) for i in range(7)]

    report = repair_bag(bag)
    assert report.files_repaired == (f"long_2{suffix}",)
    assert report.recovered_pairs == 7
    assert report.backup is not None
    for name in (f"long_0{suffix}", f"long_1{suffix}"):  # kept as they were: hard links, not copies
        assert (bag / name).stat().st_ino == (report.backup / name).stat().st_ino
    info = metadata(bag)
    assert info["relative_file_paths"] == [f"long_{i}{suffix}" for i in range(3)]
    assert [f["message_count"] for f in info["files"]] == [7, 7, 3]
    assert info["custom_data"]["thermal_synth.person"] == "crash test"
    reader, pairs = read_all(bag)
    assert not reader.salvaged
    assert [p.stamp_ns for p in pairs] == [stamp(i) for i in range(7)]
    assert anyreader_count(bag) == 17


@pytest.mark.parametrize("storage", STORAGES)
def test_damaged_messages_are_skipped_and_reported(tmp_path, storage):
    bag = tmp_path / "damaged"
    with PairBagWriter(bag, LABELS, BagOptions(storage=storage)) as writer:
        for i in range(10):
            s, thermal_cdr, rgb_cdr = pair_cdr(i, frame_id="corrupt-me" if i == 4 else "camera")
            if i == 6:
                thermal_cdr = thermal_cdr[:40]  # header intact, pixels gone: does not deserialise
            if i == 8:
                thermal_cdr = image_cdr(rgb(i), "rgb8", s, "thermal")  # decodes, but is no thermal frame
            writer.write_pair(s, thermal_cdr, rgb_cdr)
    file = writer.close().files[0]
    data = bytearray(file.read_bytes())
    marker = data.index(b"corrupt-me")
    assert data.count(b"corrupt-me") == 1
    data[marker - 4 : marker] = (0xFFFFFF00).to_bytes(4, "little")  # frame_id length far past the end
    file.write_bytes(bytes(data))

    reader, pairs = read_all(bag)
    assert [p.stamp_ns for p in pairs] == [stamp(i) for i in (0, 1, 2, 3, 5, 7, 9)]
    text = "\n".join(reader.problems)
    assert f"{PAIRS_RGB}: skipped" in text
    assert "undecodable CDR" in text
    assert "thermal must be 16UC1 or mono16" in text
    assert "RGB frames without a partner of the same stamp: 2" in text
    assert "thermal frames without a partner of the same stamp: 1" in text


# ------------------------------------------------------------------------------------------------
# Refusals


def test_unwritable_places_are_one_clear_error(tmp_path):
    regular_file = tmp_path / "file"
    regular_file.write_text("")
    with pytest.raises(BagWriteError, match="is not a directory"):
        PairBagWriter(regular_file / "take", LABELS)
    with pytest.raises(BagWriteError, match="does not exist"):
        PairBagWriter(tmp_path / "missing" / "take", LABELS)
    if os.geteuid() != 0:  # root ignores permissions; the regular-file parent above is the real failure then
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(BagWriteError, match="permission denied"):
            PairBagWriter(locked / "take", LABELS)


def test_an_existing_path_is_never_touched(tmp_path):
    existing = tmp_path / "take"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    with pytest.raises(BagWriteError, match="already exists"):
        PairBagWriter(existing, LABELS)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_a_directory_that_is_not_a_bag_is_refused(tmp_path):
    with pytest.raises(BagReadError, match="not a rosbag2 bag"):
        PairBagReader(tmp_path)
    with pytest.raises(BagReadError, match="does not exist"):
        PairBagReader(tmp_path / "nothing")


@pytest.mark.parametrize("storage", STORAGES)
def test_repair_of_an_intact_bag_changes_nothing(tmp_path, storage):
    bag = tmp_path / "fine"
    write_bag(bag, 3, BagOptions(storage=storage))
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in bag.iterdir()}
    report = repair_bag(bag)
    assert report.already_ok
    assert report.backup is None
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in bag.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fine"]


# ------------------------------------------------------------------------------------------------
# Command line


def thermal_synth(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "thermal-synth"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_cli_info_and_repair(tmp_path):
    intact, crashed, to_repair = tmp_path / "intact", tmp_path / "crashed", tmp_path / "to_repair"
    write_bag(intact, 5, BagOptions(storage="sqlite3"))
    abandoned = child("abandon", str(crashed), "mcap", "4")
    assert abandoned.wait(timeout=30) == 0, abandoned.communicate()[1]
    shutil.copytree(crashed, to_repair)

    # Concurrently: each start pays for importing the whole CLI (torch included).
    info_intact = thermal_synth("bag", "info", str(intact))
    info_crashed = thermal_synth("bag", "info", str(crashed))
    repair = thermal_synth("bag", "repair", "--no-backup", str(to_repair))

    out, err = info_intact.communicate(timeout=60)
    assert info_intact.returncode == 0, err
    for expected in [
        "intact_0.db3",
        "Storage id:        sqlite3",
        "Messages:          11",
        "Topic: /pairs/thermal | Type: sensor_msgs/msg/Image | Count: 5 | Serialization Format: cdr",
        "Topic: /pairs/rgb | Type: sensor_msgs/msg/Image | Count: 5",
        "Topic: /pairs/session | Type: std_msgs/msg/String | Count: 1",
        "Person:            ada",
        "Complete pairs:    5",
        "Duration:          0.400000000s",
    ]:
        assert expected in out, out

    out, err = info_crashed.communicate(timeout=60)
    assert info_crashed.returncode == 1, err
    assert "metadata.yaml is missing" in out
    assert f"thermal-synth bag repair {crashed}" in out

    out, err = repair.communicate(timeout=60)
    assert repair.returncode == 0, err
    assert "Complete pairs:    4" in out
    assert "crashed_0.mcap" in out  # a renamed bag keeps its files' names; metadata.yaml lists them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crashed", "intact", "to_repair"]
    assert bags.bag_info(to_repair).complete_pairs == 4


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for action in ("info", "repair"):
        for target, words in (("missing", "does not exist"), ("empty", "not a rosbag2 bag")):
            with pytest.raises(SystemExit) as exited:
                cli_main(["bag", action, str(tmp_path / target)])
            assert exited.value.code == 2
            assert words in capsys.readouterr().err
