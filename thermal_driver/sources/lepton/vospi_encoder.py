"""VoSPI packet streams built by the datasheet's rules, the inverse of `vospi.VoSpiAssembler`.

Tests, the benchmark and a simulated Lepton all need byte streams that look like the real
module's output (discard packets, TTT only in packet 20, two invalid frames after each unique
one, telemetry rows in the header or footer, correct CRCs), so they are generated in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thermal_driver.sources.lepton.vospi import (
    FFC_STATES,
    FRAME_COLS,
    FRAME_ROWS,
    INVALID_FRAMES_PER_UNIQUE_FRAME,
    PACKET_BYTES,
    PACKET_HEADER_BYTES,
    PAYLOAD_WORDS,
    ROW_A_FPA_TEMPERATURE_WORD,
    ROW_A_FRAME_COUNTER_WORD,
    ROW_A_STATUS_WORD,
    ROW_C_TLINEAR_ENABLE_WORD,
    ROW_C_TLINEAR_RESOLUTION_WORD,
    SEGMENT_PACKET_NUMBER,
    SEGMENTS_PER_FRAME,
    STATUS_AGC_BIT,
    STATUS_FFC_DESIRED_BIT,
    STATUS_FFC_STATE_SHIFT,
    STATUS_OVERTEMP_BIT,
    TELEMETRY_PACKETS,
    TLINEAR_RESOLUTIONS_K,
    Telemetry,
    TelemetryMode,
    packet_crc,
)

PAYLOAD_BYTES = PACKET_BYTES - PACKET_HEADER_BYTES
DISCARD_ID = 0x0FFF


def encode_packet(packet_number: int, payload: bytes, segment_number: int = 0) -> bytes:
    """One video or telemetry packet with its CRC; `segment_number` is the TTT field (0-7)."""
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"payload must be {PAYLOAD_BYTES} bytes, got {len(payload)}")
    if not 0 <= segment_number <= 7:
        raise ValueError(f"TTT is 3 bits, got {segment_number}")
    ident = ((segment_number << 12) | packet_number).to_bytes(2, "big")
    crc = packet_crc(ident + b"\0\0" + payload)
    return ident + crc.to_bytes(2, "big") + payload


def _make_discard_packet() -> bytes:
    # The CRC field deliberately does not match: a reader that CRC-checks discard packets
    # (which the datasheet does not ask for) would then report errors on a clean stream.
    ident = DISCARD_ID.to_bytes(2, "big")
    payload = bytes(range(PAYLOAD_BYTES))
    crc = packet_crc(ident + b"\0\0" + payload) ^ 0xFFFF
    return ident + crc.to_bytes(2, "big") + payload


DISCARD_PACKET = _make_discard_packet()


def encode_telemetry(telemetry: Telemetry) -> np.ndarray:
    """Rows A, B, C and the reserved row as a (4, 80) uint16 array, the inverse of `Telemetry.from_rows`."""
    rows = np.zeros((TELEMETRY_PACKETS, PAYLOAD_WORDS), dtype=np.uint16)
    status = (
        FFC_STATES.index(telemetry.ffc_state) << STATUS_FFC_STATE_SHIFT
        | int(telemetry.ffc_desired) << STATUS_FFC_DESIRED_BIT
        | int(telemetry.agc_enabled) << STATUS_AGC_BIT
        | int(telemetry.overtemp) << STATUS_OVERTEMP_BIT
    )
    _write_u32(rows[0], ROW_A_STATUS_WORD, status)
    _write_u32(rows[0], ROW_A_FRAME_COUNTER_WORD, telemetry.frame_counter)
    rows[0, ROW_A_FPA_TEMPERATURE_WORD] = round(telemetry.fpa_temperature_k * 100)
    rows[2, ROW_C_TLINEAR_ENABLE_WORD] = int(telemetry.tlinear_enabled)
    rows[2, ROW_C_TLINEAR_RESOLUTION_WORD] = TLINEAR_RESOLUTIONS_K.index(telemetry.tlinear_resolution_k)
    return rows


def _write_u32(row: np.ndarray, index: int, value: int) -> None:
    row[index] = value & 0xFFFF
    row[index + 1] = value >> 16


def encode_frame(
    pixels: np.ndarray,
    telemetry_mode: TelemetryMode = TelemetryMode.DISABLED,
    telemetry: Telemetry | None = None,
    valid: bool = True,
) -> list[list[bytes]]:
    """The 4 segments of one frame; `valid=False` gives the TTT=0 segments of an invalid frame."""
    if pixels.shape != (FRAME_ROWS, FRAME_COLS):
        raise ValueError(f"pixels must be {FRAME_ROWS}x{FRAME_COLS}, got {pixels.shape}")
    rows = pixels.astype(np.uint16).reshape(-1, PAYLOAD_WORDS)
    if telemetry_mode is not TelemetryMode.DISABLED:
        if telemetry is None:
            raise ValueError(f"telemetry mode {telemetry_mode.value} needs a Telemetry record")
        telemetry_rows = encode_telemetry(telemetry)
        parts = (telemetry_rows, rows) if telemetry_mode is TelemetryMode.HEADER else (rows, telemetry_rows)
        rows = np.concatenate(parts)
    payload_bytes = rows.astype(">u2").tobytes()
    per_segment = telemetry_mode.packets_per_segment
    segments = []
    for segment_index in range(SEGMENTS_PER_FRAME):
        segment_number = segment_index + 1 if valid else 0
        segment = []
        for number in range(per_segment):
            start = (segment_index * per_segment + number) * PAYLOAD_BYTES
            ttt = segment_number if number == SEGMENT_PACKET_NUMBER else 0
            segment.append(encode_packet(number, payload_bytes[start : start + PAYLOAD_BYTES], ttt))
        segments.append(segment)
    return segments


@dataclass
class EncodedStream:
    """A packet stream plus what a test needs to know about where each packet came from."""

    packets: list[bytes]
    frame_of_packet: list[int]
    """Index of the unique frame a packet belongs to (its 4 valid segments), else -1."""
    segment_starts: list[int]
    """Index of packet 0 of every segment, valid or invalid: where a real module resumes after a resync."""

    def frame_span(self, frame_index: int) -> range:
        """Stream indices from the frame's first packet to its last, discards between included."""
        first = self.frame_of_packet.index(frame_index)
        last = len(self.frame_of_packet) - 1 - self.frame_of_packet[::-1].index(frame_index)
        return range(first, last + 1)


def encode_stream(
    frames: Sequence[np.ndarray],
    telemetry_mode: TelemetryMode = TelemetryMode.DISABLED,
    telemetries: Sequence[Telemetry] | None = None,
    *,
    discards_before_sync: int = 5,
    discards_between_segments: int = 2,
    invalid_frames_per_frame: int = INVALID_FRAMES_PER_UNIQUE_FRAME,
) -> EncodedStream:
    """What the module sends for `frames`: each unique frame followed by its invalid repeats.

    The invalid frames carry the bitwise inverse of the pixels, so a reader that wrongly keeps
    them produces frames that match no source frame.
    """
    if telemetries is not None and len(telemetries) != len(frames):
        raise ValueError(f"{len(telemetries)} telemetry records for {len(frames)} frames")
    stream = EncodedStream(
        packets=[DISCARD_PACKET] * discards_before_sync,
        frame_of_packet=[-1] * discards_before_sync,
        segment_starts=[],
    )
    for frame_index, pixels in enumerate(frames):
        telemetry = telemetries[frame_index] if telemetries is not None else None
        _append_frame(
            stream, encode_frame(pixels, telemetry_mode, telemetry), frame_index, discards_between_segments
        )
        invalid = encode_frame(np.invert(pixels), telemetry_mode, telemetry, valid=False)
        for _ in range(invalid_frames_per_frame):
            _append_frame(stream, invalid, -1, discards_between_segments)
    return stream


def _append_frame(stream: EncodedStream, segments: list[list[bytes]], owner: int, discards: int) -> None:
    for segment in segments:
        stream.segment_starts.append(len(stream.packets))
        stream.packets.extend(segment)
        stream.frame_of_packet.extend([owner] * len(segment))
        stream.packets.extend([DISCARD_PACKET] * discards)
        stream.frame_of_packet.extend([-1] * discards)
