"""Hostile images in, nothing malformed out: the shared validation alone, then every subscriber of
every node under a seeded flood, with the recorder's bag read back byte by byte.

The hostile messages are what a broken driver, a misconfigured camera or a stranger on the network
sends: no pixels, sizes with a zero in them, encodings the topic does not carry or nobody knows,
data cut short or padded, rows whose step contradicts their width, NaN and Inf heatmaps, frames of
another size and fields of pure noise. Each is built from a seeded numpy Generator, so a failure
names a message that can be made again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import wait_for
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from thermal_msgs import topics
from thermal_msgs.image import ENCODINGS, array_to_image
from thermal_msgs.qos import STREAM_PUBLISHER_QOS
from thermal_msgs.validation import (
    DATA_LENGTH,
    EMPTY,
    ENCODING,
    NON_FINITE,
    REASONS,
    SIZE_CHANGED,
    STEP,
    ImageValidator,
    Rejection,
    RejectionTally,
    validate_image,
)
from thermal_synth.engine.webcam import VirtualCameraConfig
from thermal_synth.nodes.recorder import PairRecorderNode
from thermal_synth.nodes.synth import ThermalSynthNode
from thermal_synth.nodes.virtual_camera import VirtualCameraNode
from thermal_synth.recording.bags import PairBagReader, salvage_messages

SEED = 21
MS = 1_000_000


@dataclass(frozen=True)
class Stream:
    """What valid input on one topic looks like; hostile messages are built around it."""

    topic: str
    encoding: str
    rows: int
    cols: int

    @property
    def float_pixels(self) -> bool:
        return ENCODINGS[self.encoding].dtype.kind == "f"

    def frame(self, value: float) -> np.ndarray:
        spec = ENCODINGS[self.encoding]
        shape = (self.rows, self.cols) if spec.channels == 1 else (self.rows, self.cols, spec.channels)
        return np.full(shape, value, spec.dtype)


HEATMAP = Stream(topics.THERMAL_IMAGE, "32FC1", 12, 16)
THERMAL_RAW = Stream(topics.THERMAL_IMAGE_RAW, "16UC1", 120, 160)
CAMERA = Stream(topics.CAMERA_IMAGE_RAW, "rgb8", 60, 80)
MASK = Stream(topics.CAMERA_PERSON_MASK, "mono8", 60, 80)
SYNTH = Stream(topics.SYNTH_IMAGE, "rgb8", 96, 128)
"""The tiny model's native output, so the fuzzer's frames and the synthesis node's share one size."""
STREAMS = (HEATMAP, THERMAL_RAW, CAMERA, MASK, SYNTH)

EXPECTED_REASON = {
    "empty_data": EMPTY,
    "zero_size": EMPTY,
    "zero_width": EMPTY,
    "zero_height": EMPTY,
    "wrong_encoding": ENCODING,
    "unknown_encoding": ENCODING,
    "bad_byte_order": ENCODING,
    "truncated": DATA_LENGTH,
    "padded": DATA_LENGTH,
    "short_step": STEP,
    "long_step": DATA_LENGTH,
    "other_size": SIZE_CHANGED,
    "non_finite": NON_FINITE,
    "random_fields": None,
}
"""Hostile kind -> the reason the validation must give; None: any reason (pure noise)."""
UNKNOWN_ENCODINGS = ("jpeg", "bayer_rggb8", "RGB8", "16uc1", "", "32FC3", "8UC3")


def kinds_for(stream: Stream) -> list[str]:
    """NaN and Inf only exist in float pixels; every other kind applies to every stream."""
    return [kind for kind in EXPECTED_REASON if kind != "non_finite" or stream.float_pixels]


def message(
    height: int, width: int, encoding: str, step: int, data: bytes, *, is_bigendian: int = 0
) -> Image:
    """An rclpy Image with exactly these fields, consistent or not: the bytes go in as one block, as
    `array_to_image` does, not through the setter's element-by-element check."""
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=is_bigendian)
    msg.data.frombytes(data)
    return msg


def hostile(rng: np.random.Generator, stream: Stream, kind: str) -> Image:
    valid = array_to_image(stream.frame(22.0), stream.encoding)
    data = bytes(valid.data)
    spec = ENCODINGS[stream.encoding]
    row_bytes = stream.cols * spec.bytes_per_pixel
    if kind == "empty_data":
        return message(stream.rows, stream.cols, stream.encoding, valid.step, b"")
    if kind == "zero_size":
        return message(0, 0, stream.encoding, 0, b"")
    if kind == "zero_width":
        return message(stream.rows, 0, stream.encoding, 0, b"")
    if kind == "zero_height":
        return message(0, stream.cols, stream.encoding, valid.step, data[: valid.step])
    if kind == "wrong_encoding":
        other = str(rng.choice([e for e in ENCODINGS if e not in topics.IMAGE_ENCODINGS[stream.topic]]))
        other_spec = ENCODINGS[other]
        step = stream.cols * other_spec.bytes_per_pixel
        return message(stream.rows, stream.cols, other, step, bytes(stream.rows * step))
    if kind == "unknown_encoding":
        return message(stream.rows, stream.cols, str(rng.choice(UNKNOWN_ENCODINGS)), valid.step, data)
    if kind == "bad_byte_order":
        order = int(rng.integers(2, 256))
        return message(stream.rows, stream.cols, stream.encoding, valid.step, data, is_bigendian=order)
    if kind == "truncated":
        cut = data[: rng.integers(1, len(data))]
        return message(stream.rows, stream.cols, stream.encoding, valid.step, cut)
    if kind == "padded":
        extra = rng.bytes(int(rng.integers(1, 4 * row_bytes)))
        return message(stream.rows, stream.cols, stream.encoding, valid.step, data + extra)
    if kind == "short_step":
        return message(stream.rows, stream.cols, stream.encoding, int(rng.integers(0, row_bytes)), data)
    if kind == "long_step":
        step = row_bytes + spec.dtype.itemsize * int(rng.integers(1, 16))
        return message(stream.rows, stream.cols, stream.encoding, step, data)
    if kind == "other_size":
        rows, cols = stream.rows + int(rng.integers(1, 9)), stream.cols - int(rng.integers(1, 9))
        return array_to_image(Stream(stream.topic, stream.encoding, rows, cols).frame(22.0), stream.encoding)
    if kind == "non_finite":
        frame = stream.frame(22.0)
        cells = rng.choice(frame.size, size=int(rng.integers(1, 5)), replace=False)
        frame.flat[cells] = rng.choice([np.nan, np.inf, -np.inf], size=cells.size)
        return array_to_image(frame, stream.encoding)
    assert kind == "random_fields", kind
    encoding = str(rng.choice([*ENCODINGS, *UNKNOWN_ENCODINGS]))
    height, width, step = (int(v) for v in rng.integers(0, 41, size=3))
    return message(
        height,
        width,
        encoding,
        step * 3,
        rng.bytes(int(rng.integers(0, 4000))),
        is_bigendian=int(rng.integers(0, 2)),
    )


def hostile_batch(rng: np.random.Generator, stream: Stream, count: int) -> list[tuple[str, Image]]:
    """`count` hostile messages for `stream`, every kind about equally often, in a seeded order."""
    kinds = kinds_for(stream)
    order = [kinds[i % len(kinds)] for i in rng.permutation(count)]
    return [(kind, hostile(rng, stream, kind)) for kind in order]


def locked_validator(stream: Stream, follow_after: int | None = None) -> ImageValidator:
    """A subscriber's validator that has already seen the stream's valid size."""
    validator = ImageValidator(stream.topic, follow_after=follow_after)
    assert not isinstance(validator.check(array_to_image(stream.frame(1.0), stream.encoding)), Rejection)
    return validator


# --- the validation alone ---------------------------------------------------------------------------


def test_every_topic_allows_only_encodings_the_conversion_knows():
    for topic, encodings in topics.IMAGE_ENCODINGS.items():
        assert encodings, topic
        assert set(encodings) <= set(ENCODINGS), topic
    for topic in (topics.THERMAL_IMAGE_RAW, topics.CAMERA_IMAGE_RAW, topics.PAIRS_THERMAL, topics.PAIRS_RGB):
        assert "32FC1" not in topics.IMAGE_ENCODINGS[topic], f"{topic} would take heatmap floats"
    assert topics.IMAGE_ENCODINGS[topics.THERMAL_IMAGE] == ("32FC1",)
    assert topics.IMAGE_ENCODINGS[topics.SYNTH_IMAGE] == ("rgb8",)


@pytest.mark.parametrize("topic", list(topics.IMAGE_ENCODINGS))
def test_valid_images_of_every_allowed_encoding_pass_as_the_exact_pixels(topic):
    rng = np.random.default_rng(SEED)
    for encoding in topics.IMAGE_ENCODINGS[topic]:
        spec = ENCODINGS[encoding]
        shape = (4, 6) if spec.channels == 1 else (4, 6, spec.channels)
        bits = rng.integers(0, 2 ** (8 * spec.dtype.itemsize), size=shape, dtype=f"u{spec.dtype.itemsize}")
        pixels = rng.normal(30.0, 5.0, shape).astype(spec.dtype) if spec.dtype.kind == "f" else bits
        result = validate_image(array_to_image(pixels.astype(spec.dtype), encoding), topic)
        assert not isinstance(result, Rejection), f"{encoding} on {topic}: {result}"
        np.testing.assert_array_equal(result, pixels)


@pytest.mark.parametrize("stream", STREAMS, ids=[s.topic for s in STREAMS])
def test_each_hostile_kind_is_refused_with_its_reason(stream):
    rng = np.random.default_rng(SEED)
    for kind in kinds_for(stream):
        for _ in range(8):
            validator = locked_validator(stream)
            result = validator.check(hostile(rng, stream, kind))
            assert isinstance(result, Rejection), f"{kind} on {stream.topic} passed"
            assert result.reason in REASONS
            assert EXPECTED_REASON[kind] in (None, result.reason), f"{kind} on {stream.topic}: {result}"
            assert validator.size == (stream.rows, stream.cols), "a refused image moved the size"


def test_rejections_name_the_problem_for_people():
    heatmap = HEATMAP.frame(22.0)
    heatmap[5, 5] = np.nan
    truncated = array_to_image(HEATMAP.frame(22.0), "32FC1")
    truncated.data = truncated.data[:10]
    cases = [
        (array_to_image(HEATMAP.frame(22.0), "32FC1"), None),
        (message(12, 0, "32FC1", 0, b""), "empty: the image is empty: 12x0"),
        (array_to_image(np.zeros((12, 16), np.uint16), "16UC1"), "'16UC1'"),
        (array_to_image(heatmap, "32FC1"), "NaN or Inf values in 1 of 192 pixels"),
        (truncated, "10 data bytes, expected height x step = 12 x 64 = 768"),
    ]
    for msg, fragment in cases:
        result = validate_image(msg, topics.THERMAL_IMAGE)
        if fragment is None:
            assert not isinstance(result, Rejection)
        else:
            assert fragment in str(result)
    assert str(validate_image(message(0, 0, "32FC1", 0, b""), topics.THERMAL_IMAGE)).startswith("empty: ")
    refused = validate_image(array_to_image(np.zeros((2, 2), np.float32), "32FC1"), topics.PAIRS_THERMAL)
    assert str(refused) == "encoding: /pairs/thermal must be 16UC1 or mono16, got '32FC1'"


def test_a_recording_keeps_its_first_size_and_a_followed_stream_moves_after_frames_in_a_row():
    bigger = array_to_image(np.zeros((24, 32), np.float32), "32FC1")
    strict = locked_validator(HEATMAP)
    for _ in range(10):
        refused = strict.check(bigger)
        assert isinstance(refused, Rejection)
        assert refused.reason == SIZE_CHANGED
    assert "24x32, but thermal/image has been sending 12x16; start a new recording" in refused.detail

    following = locked_validator(HEATMAP, follow_after=3)
    usual = array_to_image(HEATMAP.frame(1.0), "32FC1")
    assert isinstance(following.check(bigger), Rejection)
    assert not isinstance(following.check(usual), Rejection), "the usual size still passes"
    assert isinstance(following.check(bigger), Rejection), "a frame of the usual size restarts the count"
    assert isinstance(following.check(bigger), Rejection)
    assert not isinstance(following.check(bigger), Rejection), "three in a row: the new size"
    assert following.size == (24, 32)
    assert following.check(usual).reason == SIZE_CHANGED
    with pytest.raises(ValueError, match="follow_after"):
        ImageValidator(topics.THERMAL_IMAGE, follow_after=0)


def test_the_tally_counts_every_reason_and_logs_each_at_most_once_a_period():
    now = [100.0]
    tally = RejectionTally(log_period_s=5.0, clock=lambda: now[0])
    empty, step = Rejection(EMPTY, "0x0"), Rejection(STEP, "short")
    assert tally.add(empty)
    assert not tally.add(empty)
    assert tally.add(step), "another reason is not hidden behind the first"
    now[0] += 4.9
    assert not tally.add(empty)
    now[0] += 0.2
    assert tally.add(empty)
    assert tally.total == 5
    assert tally.diagnostic_values() == {
        "rejected.encoding": "0",
        "rejected.empty": "4",
        "rejected.step": "1",
        "rejected.data_length": "0",
        "rejected.size_changed": "0",
        "rejected.non_finite": "0",
    }


def test_the_generator_is_seeded_and_covers_every_kind():
    first = hostile_batch(np.random.default_rng(SEED), HEATMAP, 64)
    again = hostile_batch(np.random.default_rng(SEED), HEATMAP, 64)
    assert [(k, bytes(m.data), m.encoding, m.step) for k, m in first] == [
        (k, bytes(m.data), m.encoding, m.step) for k, m in again
    ]
    assert set(Counter(kind for kind, _ in first)) == set(kinds_for(HEATMAP))


# --- every subscriber of every node ----------------------------------------------------------------

HOSTILE_PER_TOPIC = 96
ROUNDS = 16
"""Rounds of valid input during the attack: one valid frame per topic, then the hostile ones."""
PACE_S = 0.003
"""Between two published messages: a flood. The recorder's reliable subscription (depth 10) loses
none of the valid frames because each round sends it at most 7 per topic and the next round waits
until it has taken them all: a loaded CI machine may slow its executor, never make it drop."""
ROUND_NS = 100 * MS


class CountingSink:
    """A loopback device that keeps the last frame and refuses what pyvirtualcam would refuse."""

    device = "/dev/video10"

    def __init__(self, config: VirtualCameraConfig) -> None:
        self.shape = (config.height, config.width, 3)
        self.sent = 0
        self.last: np.ndarray | None = None

    def send(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.shape != self.shape or not frame.flags.c_contiguous:
            raise ValueError(f"the camera cannot take a {frame.dtype} {frame.shape} frame")
        self.last = frame.copy()
        self.sent += 1

    def close(self) -> None:
        pass

    def shows(self, value: int) -> bool:
        return self.last is not None and bool((self.last == value).all())


class Fuzzer(Node):
    """Plays every sensor and the synthesis output at once: valid frames, and hostile ones among them."""

    def __init__(self, context) -> None:
        super().__init__("fuzzer", context=context)
        self.publishers_by_topic = {
            s.topic: self.create_publisher(Image, s.topic, STREAM_PUBLISHER_QOS) for s in STREAMS
        }
        self.sent: Counter[str] = Counter()
        self.valid_sent: Counter[str] = Counter()

    def wait_for_subscribers(self) -> None:
        for topic, publisher in self.publishers_by_topic.items():
            wait_for(lambda p=publisher: p.get_subscription_count() > 0, 10.0, f"a subscriber of {topic}")

    def publish(self, topic: str, msg: Image, stamp_ns: int) -> None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = "fuzz"
        self.publishers_by_topic[topic].publish(msg)
        time.sleep(PACE_S)

    def valid_round(self, index: int, stamp_ns: int, streams: tuple[Stream, ...] = STREAMS) -> None:
        """One valid frame per stream, its pixels telling the round: 29315 + index cK, colour index."""
        values = {HEATMAP: 22.0 + index % 10, THERMAL_RAW: 29315 + index, MASK: 255}
        for stream in streams:
            frame = stream.frame(values.get(stream, index % 256))
            self.publish(stream.topic, array_to_image(frame, stream.encoding), stamp_ns)
            self.valid_sent[stream.topic] += 1


@pytest.fixture
def graph(ros_context, spinner, tiny_model, tmp_path):
    """The synthesis node, the pair recorder and the virtual camera, and a fuzzer beside them."""
    sinks: list[CountingSink] = []

    def open_sink(config: VirtualCameraConfig) -> CountingSink:
        sinks.append(CountingSink(config))
        return sinks[-1]

    def overrides(**values) -> list[Parameter]:
        return [Parameter(name, value=value) for name, value in values.items()]

    synth = ThermalSynthNode(
        context=ros_context,
        parameter_overrides=overrides(model=str(tiny_model), device="cpu", precision="fp32"),
    )
    recorder = PairRecorderNode(
        context=ros_context, parameter_overrides=overrides(bag_path=str(tmp_path / "bag"))
    )
    camera = VirtualCameraNode(
        context=ros_context, parameter_overrides=overrides(width=320, height=240), sink_factory=open_sink
    )
    fuzzer = Fuzzer(ros_context)
    for node in (synth, recorder, camera, fuzzer):
        spinner.add(node)
    yield synth, recorder, camera, sinks[0], fuzzer
    spinner.shutdown()
    for node in (synth, recorder, camera, fuzzer):
        node.destroy_node()


def malformed(topic: str, msg: Image, stream: Stream, round_of_stamp: dict[int, int]) -> list[str]:
    """Everything wrong with one recorded message, checked from the raw fields, not by the code under
    test: the stream's encoding and size, packed rows, exactly height x step bytes, and the pixels
    of the valid frame published under its stamp (no hostile frame of the right shape got in)."""
    problems = []
    bytes_per_pixel = {"16UC1": 2, "rgb8": 3, "mono8": 1}[stream.encoding]
    if msg.encoding != stream.encoding:
        problems.append(f"encoding {msg.encoding!r}")
    if (msg.height, msg.width) != (stream.rows, stream.cols):
        problems.append(f"size {msg.height}x{msg.width}")
    if msg.is_bigendian != 0 or msg.step != msg.width * bytes_per_pixel:
        problems.append(f"step {msg.step}, is_bigendian {msg.is_bigendian}")
    if len(msg.data) != msg.height * msg.step or not msg.data:
        problems.append(f"{len(msg.data)} data bytes for {msg.height} x {msg.step}")
    stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    if stamp not in round_of_stamp:
        problems.append(f"stamp {stamp} of no valid frame")
    elif not problems:
        pixels = np.frombuffer(bytes(msg.data), np.uint16 if stream.encoding == "16UC1" else np.uint8)
        index = round_of_stamp[stamp]
        expected = {THERMAL_RAW: 29315 + index, MASK: 255}.get(stream, index % 256)
        if not (pixels == expected).all():
            problems.append("pixels of no valid frame")
    return [f"{topic} stamp {stamp}: {problem}" for problem in problems]


@pytest.mark.ros
def test_a_flood_of_hostile_images_reaches_no_bag_and_stops_no_node(graph):
    synth, recorder, camera, sink, fuzzer = graph
    assert synth.engine.image_size == (SYNTH.rows, SYNTH.cols)
    fuzzer.wait_for_subscribers()
    bag = recorder.recording.path
    rng = np.random.default_rng(SEED)
    base_ns = time.time_ns() // MS * MS
    round_of_stamp: dict[int, int] = {}
    index = 0

    def next_round(streams: tuple[Stream, ...] = STREAMS) -> int:
        nonlocal index
        stamp = base_ns + index * ROUND_NS
        round_of_stamp[stamp] = index
        fuzzer.valid_round(index, stamp, streams)
        index += 1
        return stamp

    def recorder_backlog() -> int:
        """Frames sent to the recorder that it has not taken yet (valid masks are counted by neither)."""
        pairing = recorder.recording.stats.pairing
        taken = recorder.rejected.total + pairing.thermal_frames + pairing.rgb_frames
        sent = sum(fuzzer.sent[s.topic] for s in (THERMAL_RAW, CAMERA, MASK))
        return sent + fuzzer.valid_sent[THERMAL_RAW.topic] + fuzzer.valid_sent[CAMERA.topic] - taken

    def until(done, what: str, streams: tuple[Stream, ...] = STREAMS) -> None:
        deadline = time.monotonic() + 20.0
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            next_round(streams)
            time.sleep(0.05)

    # Valid input first: every subscriber learns the size its stream sends.
    until(lambda: synth.frames_published and recorder.recording.stats.pairs_written, "the first output")
    published_before, written_before = synth.frames_published, recorder.recording.stats.pairs_written
    wait_for(lambda: recorder_backlog() == 0, 10.0, "the recorder to take the frames sent before the attack")

    batches = {stream: hostile_batch(rng, stream, HOSTILE_PER_TOPIC) for stream in STREAMS}
    per_round = HOSTILE_PER_TOPIC // ROUNDS
    attack_stamps = []
    for attack_round in range(ROUNDS):
        stamp = next_round()
        attack_stamps.append(stamp)
        for stream, batch in batches.items():
            for offset, (_kind, msg) in enumerate(
                batch[attack_round * per_round : (attack_round + 1) * per_round]
            ):
                # Stamped beside the valid frames: accepted, they would pair with them.
                fuzzer.publish(stream.topic, msg, stamp + (offset + 1) * MS)
                fuzzer.sent[stream.topic] += 1
        wait_for(lambda: recorder_backlog() == 0, 10.0, f"the recorder to take attack round {attack_round}")

    # Then valid input again: every node must still turn it into output.
    until(
        lambda: (
            synth.frames_published >= published_before + ROUNDS + 3
            and recorder.recording.stats.pairs_written >= written_before + ROUNDS + 3
        ),
        "output after the attack",
    )
    refused, first_shown = camera.frames_dropped_bad, index
    until(
        lambda: any(sink.shows(value % 256) for value in range(first_shown, index)),
        "the camera to show a frame sent after the attack",
        (SYNTH,),
    )
    assert camera.frames_dropped_bad == refused, "a valid frame was refused"

    assert synth.failure is None
    assert camera.failure is None
    assert recorder.recording.active
    sent = {
        "thermal_synth": fuzzer.sent[topics.THERMAL_IMAGE],
        "virtual_camera": fuzzer.sent[topics.SYNTH_IMAGE],
        "pair_recorder": sum(fuzzer.sent[s.topic] for s in (THERMAL_RAW, CAMERA, MASK)),
    }
    tallies = {
        "thermal_synth": synth.rejected,
        "virtual_camera": camera.rejected,
        "pair_recorder": recorder.rejected,
    }
    for name, tally in tallies.items():
        # Best effort may lose a few; every reason must still have been seen and counted.
        assert sent[name] // 2 <= tally.total <= sent[name], (name, tally.counts)
        missing = {ENCODING, EMPTY, STEP, DATA_LENGTH, SIZE_CHANGED} - {
            r for r, n in tally.counts.items() if n
        }
        assert not missing, f"{name} never counted {missing}"
    assert synth.rejected.counts[NON_FINITE] > 0

    recorder.stop()
    problems: list[str] = []
    recorded: Counter[str] = Counter()
    by_pair_topic = {topics.PAIRS_THERMAL: THERMAL_RAW, topics.PAIRS_RGB: CAMERA, topics.PAIRS_MASK: MASK}
    for raw in salvage_messages(bag, problems):
        if raw.topic in by_pair_topic:
            recorded[raw.topic] += 1
            msg = deserialize_message(raw.data, Image)
            problems += malformed(raw.topic, msg, by_pair_topic[raw.topic], round_of_stamp)
    assert problems == []
    assert recorded[topics.PAIRS_THERMAL] == recorded[topics.PAIRS_RGB] >= written_before + ROUNDS + 3

    reader = PairBagReader(bag)
    pairs = list(reader.pairs())
    assert (len(pairs), reader.skipped, reader.problems) == (recorded[topics.PAIRS_THERMAL], Counter(), [])
    assert set(attack_stamps) <= {pair.stamp_ns for pair in pairs}, (
        "a valid pair sent during the attack is missing"
    )
    print(
        "\nfuzz: hostile messages sent / rejected: "
        + ", ".join(f"{name} {sent[name]} / {tallies[name].total}" for name in sent)
        + f"; malformed images in the bag: {len(problems)} of {sum(recorded.values())} recorded"
        + "; rejections by reason: "
        + "; ".join(f"{name} {dict(t.counts)}" for name, t in tallies.items())
    )
