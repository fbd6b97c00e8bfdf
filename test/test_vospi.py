"""VoSPI assembly against datasheet-built streams: exact frames, never a torn one, faults counted."""

from __future__ import annotations

import functools
from binascii import crc_hqx
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lepton_fakes import FaultInjector, LeptonStream, LeptonStreamBuilder

from thermal_driver.sources.lepton.vospi import (
    PACKET_BYTES,
    Telemetry,
    TelemetryMode,
    VoSpiAssembler,
    packet_crc,
)
from thermal_driver.sources.lepton.vospi_encoder import (
    DISCARD_PACKET,
    encode_frame,
    encode_packet,
    encode_telemetry,
)

N_FRAMES = 5
INVALID_SEGMENTS_PER_FRAME = 8
ALL_MODES = list(TelemetryMode)


@functools.cache
def clean_stream(mode: TelemetryMode, n_frames: int = N_FRAMES) -> LeptonStream:
    return LeptonStreamBuilder(n_frames=n_frames, telemetry=mode, seed=7).build()


class Assembled(NamedTuple):
    pixels: np.ndarray
    telemetry: Telemetry | None


def assemble(packets, mode: TelemetryMode, check_crc: bool = True) -> tuple[list[Assembled], VoSpiAssembler]:
    """Every frame `push` returns, with the telemetry the assembler holds right after it."""
    assembler = VoSpiAssembler(mode, check_crc=check_crc)
    frames = [
        Assembled(pixels, assembler.last_telemetry)
        for packet in packets
        if (pixels := assembler.push(packet)) is not None
    ]
    return frames, assembler


def source_indices(frames: list[Assembled], stream: LeptonStream) -> list[int]:
    """Which source frame each output is, failing on any frame that matches none (torn or garbage)."""
    by_bytes = {source.tobytes(): index for index, source in enumerate(stream.frames)}
    indices = []
    for frame in frames:
        assert frame.pixels.tobytes() in by_bytes, "emitted a frame that is not one of the source frames"
        index = by_bytes[frame.pixels.tobytes()]
        expected_telemetry = stream.telemetries[index] if stream.telemetries else None
        assert frame.telemetry == expected_telemetry
        indices.append(index)
    return indices


def xmodem_bitwise(data: bytes) -> int:
    """Independent oracle: CRC-16 poly 0x1021, init 0, no reflection, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_is_xmodem_over_the_masked_header():
    assert crc_hqx(b"123456789", 0) == 0x31C3
    # Top ID nibble and CRC field must read as zero; leading zero bytes leave XMODEM unchanged.
    assert packet_crc(bytes([0xF0, 0x00, 0xAB, 0xCD]) + b"123456789") == 0x31C3


def test_crc_matches_bitwise_reference_on_real_packets():
    rng = np.random.default_rng(3)
    for number in (0, 20, 59, 60):
        payload = rng.integers(0, 256, PACKET_BYTES - 4, dtype=np.uint8).tobytes()
        packet = encode_packet(number, payload, segment_number=3 if number == 20 else 0)
        masked = bytes([packet[0] & 0x0F, packet[1], 0, 0]) + packet[4:]
        assert packet_crc(packet) == xmodem_bitwise(masked) == int.from_bytes(packet[2:4], "big")


@pytest.mark.parametrize("mode", ALL_MODES)
def test_clean_stream_recovers_every_frame_exactly(mode):
    stream = clean_stream(mode)
    frames, assembler = assemble(stream.packets, mode)
    assert source_indices(frames, stream) == list(range(N_FRAMES))
    stats = assembler.stats
    assert stats.frames == N_FRAMES
    assert (stats.crc_errors, stats.lost_packets, stats.broken_frames) == (0, 0, 0)
    assert stats.invalid_segments == INVALID_SEGMENTS_PER_FRAME * N_FRAMES
    assert stats.discard_packets == sum(packet[0] & 0x0F == 0x0F for packet in stream.packets) > 0
    assert stats.packets == len(stream.packets)
    assert not assembler.needs_resync


@pytest.mark.parametrize("mode", [TelemetryMode.HEADER, TelemetryMode.FOOTER])
def test_telemetry_is_parsed_from_its_configured_location(mode):
    frames, _ = assemble(clean_stream(mode).packets, mode)
    states = [frame.telemetry.ffc_state for frame in frames]
    assert states == ["never", "imminent", "in_progress", "complete", "never"]
    assert [frame.telemetry.frame_counter for frame in frames] == [70_000 + i for i in range(N_FRAMES)]
    assert all(frame.telemetry.tlinear_resolution_k == 0.01 for frame in frames)


def test_telemetry_status_words_are_least_significant_first():
    rows = np.zeros((4, 80), dtype=np.uint16)
    # status = overtemp (bit 20) | AGC (bit 12) | FFC in progress (bits 4-5 = 2) | FFC desired (bit 3)
    rows[0, 3], rows[0, 4] = 0x1028, 0x0010
    rows[0, 20], rows[0, 21] = 0x0002, 0x0001
    rows[0, 24] = 30_215
    rows[2, 48], rows[2, 49] = 1, 0
    telemetry = Telemetry.from_rows(rows)
    assert telemetry == Telemetry(
        frame_counter=0x0001_0002,
        fpa_temperature_k=302.15,
        ffc_state="in_progress",
        ffc_desired=True,
        agc_enabled=True,
        overtemp=True,
        tlinear_enabled=True,
        tlinear_resolution_k=0.1,
    )
    assert Telemetry.from_rows(encode_telemetry(telemetry)) == telemetry


def test_telemetry_rejects_rows_of_the_wrong_shape():
    with pytest.raises(ValueError, match="rows A-C"):
        Telemetry.from_rows(np.zeros((2, 80), dtype=np.uint16))


@pytest.mark.parametrize("length", [0, 163, 165, 244])
def test_push_rejects_anything_but_one_packet(length):
    with pytest.raises(ValueError, match="164 bytes"):
        VoSpiAssembler().push(bytes(length))


def test_frames_are_fresh_native_arrays_and_memoryviews_work():
    stream = clean_stream(TelemetryMode.FOOTER)
    frames, _ = assemble([memoryview(packet) for packet in stream.packets], TelemetryMode.FOOTER)
    assert len(frames) == N_FRAMES
    first = frames[0].pixels
    assert (first.dtype, first.dtype.isnative, first.shape) == (np.uint16, True, (120, 160))
    assert (first.flags.writeable, first.flags.c_contiguous) == (True, True)
    first[:] = 0
    assert np.array_equal(frames[1].pixels, stream.frames[1])


def segments_of(stream: LeptonStream, frame_index: int) -> list[list[bytes]]:
    mode = TelemetryMode.DISABLED
    return encode_frame(stream.frames[frame_index], mode)


def test_segment_order_rules_prevent_torn_frames_the_packet_numbers_cannot_see():
    """Whole segments missing leave packet numbers in sequence; only TTT order can catch it."""
    stream = clean_stream(TelemetryMode.DISABLED)
    a, b = segments_of(stream, 0), segments_of(stream, 1)
    cases = {
        "A1 A2 | B1 B2 B3 B4": ([a[0], a[1], b[0], b[1], b[2], b[3]], [1], 1),
        "A1 A3 A4": ([a[0], a[2], a[3]], [], 1),
        "A2 A3 A4 B1-4": ([a[1], a[2], a[3], *b], [1], 0),
        "A1 A2 A3 B2 B3 B4": ([a[0], a[1], a[2], b[1], b[2], b[3]], [], 1),
    }
    for name, (segments, expected, broken) in cases.items():
        packets = [packet for segment in segments for packet in segment]
        frames, assembler = assemble(packets, TelemetryMode.DISABLED)
        assert source_indices(frames, stream) == expected, name
        assert assembler.stats.broken_frames == broken, name


@pytest.mark.parametrize("mode", ALL_MODES)
def test_crc_error_drops_its_frame_and_asks_for_resync(mode):
    stream = clean_stream(mode)
    injector = FaultInjector(stream)
    segment_3_of_frame_1 = [s for s in stream.segment_starts if stream.frame_of_packet[s] == 1][2]
    injector.corrupt_byte(segment_3_of_frame_1 + 10, offset=100)
    assembler = VoSpiAssembler(mode)
    outputs = []
    for packet in injector.packets():
        frame = assembler.push(packet)
        if assembler.needs_resync:
            outputs.append("resync")
            assembler.reset()
        if frame is not None:
            outputs.append(source_indices([Assembled(frame, assembler.last_telemetry)], stream)[0])
    assert outputs == [0, "resync", 2, 3, 4]
    assert (assembler.stats.crc_errors, assembler.stats.broken_frames) == (1, 1)


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("where", ["mid-segment", "segment tail"])
def test_lost_packets_drop_the_frame_and_are_counted(mode, where):
    stream = clean_stream(mode)
    injector = FaultInjector(stream)
    segment_2 = [s for s in stream.segment_starts if stream.frame_of_packet[s] == 2][1]
    first_lost = segment_2 + (17 if where == "mid-segment" else mode.packets_per_segment - 5)
    injector.drop(first_lost, 5)
    frames, assembler = assemble(injector.packets(), mode)
    assert source_indices(frames, stream) == [0, 1, 3, 4]
    assert (assembler.stats.lost_packets, assembler.stats.broken_frames) == (1, 1)
    assert assembler.stats.crc_errors == 0


@pytest.mark.parametrize("segment", [1, 2, 3, 4])
def test_invalid_segment_inside_a_frame_drops_that_frame(segment):
    stream = clean_stream(TelemetryMode.FOOTER)
    injector = FaultInjector(stream)
    injector.zero_segment_number(1, segment)
    frames, assembler = assemble(injector.packets(), TelemetryMode.FOOTER)
    assert source_indices(frames, stream) == [0, 2, 3, 4]
    assert assembler.stats.invalid_segments == INVALID_SEGMENTS_PER_FRAME * N_FRAMES + 1
    assert assembler.stats.broken_frames == (0 if segment == 1 else 1)


def test_discards_in_the_middle_of_segments_are_skipped():
    stream = clean_stream(TelemetryMode.HEADER)
    injector = FaultInjector(stream)
    for before in range(30, len(stream.packets), 97):
        injector.insert_discards(before, 3)
    frames, assembler = assemble(injector.packets(), TelemetryMode.HEADER)
    assert source_indices(frames, stream) == list(range(N_FRAMES))
    assert assembler.stats.crc_errors == assembler.stats.lost_packets == 0


@pytest.mark.parametrize("mode", ALL_MODES)
def test_an_all_zero_packet_breaks_the_frame_it_lands_in_and_spares_the_next(mode):
    """A floating MISO reads zeros: a packet 0 by number and CRC. Right after a real packet 0 it
    used to restart the segment with a row of zeros and emit a torn frame."""
    stream = clean_stream(mode)
    injector = FaultInjector(stream)
    first_packet_0 = stream.segment_starts[0]
    injector.insert_garbage(first_packet_0 + 1, zeros=True)  # between packets 0 and 1 of frame 0
    frame_2 = stream.frame_span(2).start
    injector.insert_garbage(frame_2, zeros=True)  # between frames 1 and 2
    frames, assembler = assemble(injector.packets(), mode)
    assert source_indices(frames, stream) == [1, 2, 3, 4]
    assert assembler.stats.noise_packets == 2
    assert (assembler.stats.crc_errors, assembler.stats.broken_frames) == (0, 0)


def test_without_crc_check_a_corrupted_pixel_goes_through():
    """Documents what `check_crc=False` trades away; the driver keeps it on."""
    stream = clean_stream(TelemetryMode.DISABLED)
    injector = FaultInjector(stream)
    injector.corrupt_byte(stream.frame_span(0).start + 1, offset=50)
    frames, assembler = assemble(injector.packets(), TelemetryMode.DISABLED, check_crc=False)
    assert (len(frames), assembler.stats.crc_errors) == (N_FRAMES, 0)
    assert not np.array_equal(frames[0].pixels, stream.frames[0])


def test_a_stream_of_discards_asks_for_resync_after_three_frames_worth():
    assembler = VoSpiAssembler(TelemetryMode.DISABLED)
    limit = 3 * 4 * 60
    for _ in range(limit):
        assembler.push(DISCARD_PACKET)
    assert not assembler.needs_resync
    assembler.push(DISCARD_PACKET)
    assert assembler.needs_resync
    assembler.reset()
    assert not assembler.needs_resync
    assert assembler.stats.discard_packets == limit + 1


def test_endless_invalid_segments_ask_for_resync():
    stream = clean_stream(TelemetryMode.DISABLED)
    invalid_frame = encode_frame(stream.frames[0], TelemetryMode.DISABLED, valid=False)
    assembler = VoSpiAssembler(TelemetryMode.DISABLED)
    three_unique_frame_periods = [packet for segment in invalid_frame for packet in segment] * 9
    for packet in three_unique_frame_periods:
        assert assembler.push(packet) is None
    assert not assembler.needs_resync
    for packet in invalid_frame[0]:
        assembler.push(packet)
    assert assembler.needs_resync
    assert assembler.stats.invalid_segments == 37


@pytest.mark.parametrize(
    ("configured", "sent"),
    [(TelemetryMode.DISABLED, TelemetryMode.FOOTER), (TelemetryMode.HEADER, TelemetryMode.DISABLED)],
)
def test_segment_length_mismatch_yields_no_frame_and_asks_for_resync(configured, sent):
    """Telemetry set differently on the module and the reader: shifted rows must never come out."""
    frames, assembler = assemble(clean_stream(sent).packets * 2, configured)
    assert frames == []
    assert assembler.needs_resync


def fault_plans(stream: LeptonStream):
    n = len(stream.packets)
    index = st.integers(0, n - 1)
    return st.lists(
        st.one_of(
            st.tuples(st.just("corrupt"), index, st.integers(1, PACKET_BYTES - 1), st.integers(1, 255)),
            st.tuples(st.just("drop"), index, st.integers(1, 59)),
            st.tuples(st.just("garbage"), st.integers(0, n), st.booleans()),
            st.tuples(st.just("discards"), st.integers(0, n), st.integers(1, 4)),
            st.tuples(st.just("zero_ttt"), st.integers(0, N_FRAMES - 1), st.integers(1, 4)),
        ),
        min_size=1,
        max_size=6,
    )


def apply_plan(stream: LeptonStream, plan) -> FaultInjector:
    injector = FaultInjector(stream, seed=len(plan))
    for kind, *args in plan:
        {
            "corrupt": injector.corrupt_byte,
            "drop": injector.drop,
            "garbage": injector.insert_garbage,
            "discards": injector.insert_discards,
            "zero_ttt": injector.zero_segment_number,
        }[kind](*args)
    return injector


@pytest.mark.parametrize("mode", ALL_MODES)
def test_faults_never_tear_a_frame_and_spare_untouched_frames(mode):
    stream = clean_stream(mode)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plan=fault_plans(stream))
    def check(plan):
        injector = apply_plan(stream, plan)
        frames, assembler = assemble(injector.packets(), mode)
        untouched = sorted(set(range(N_FRAMES)) - injector.touched_frames)
        assert source_indices(frames, stream) == untouched
        assert assembler.stats.frames == len(untouched)
        assert assembler.stats.crc_errors == injector.expected_crc_errors
        if assembler.stats.crc_errors:
            assert assembler.needs_resync

    check()
