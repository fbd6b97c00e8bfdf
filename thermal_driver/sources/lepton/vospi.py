"""Lepton 3.x VoSPI frame assembly, free of hardware so every sync rule can be tested on a laptop.

The assembler is strict on purpose: the classic Lepton driver bugs are torn frames (segments of
two different frames glued together) and silent hangs, so any doubt about a frame drops it, and
the caller is told when only a resync can help.
"""

from __future__ import annotations

import enum
from binascii import crc_hqx
from dataclasses import dataclass

import numpy as np

PACKET_BYTES = 164
PACKET_HEADER_BYTES = 4
PAYLOAD_WORDS = 80
PACKETS_PER_SEGMENT = 60
PACKETS_PER_SEGMENT_WITH_TELEMETRY = 61
SEGMENTS_PER_FRAME = 4
FRAME_ROWS = 120
FRAME_COLS = 160
VIDEO_PACKETS_PER_FRAME = FRAME_ROWS * FRAME_COLS // PAYLOAD_WORDS
TELEMETRY_PACKETS = 4
SEGMENT_PACKET_NUMBER = 20
"""Only packet 20 of a segment carries the segment number (TTT bits); elsewhere they mean nothing."""

_DISCARD_MASK = 0x0F
_PACKET_NUMBER_HIGH_MASK = 0x0F

INVALID_FRAMES_PER_UNIQUE_FRAME = 2
STALL_FRAMES = 3
"""Frames' worth of packets with no finished segment after which sync is presumed lost."""
MAX_SEGMENTS_WITHOUT_FRAME = STALL_FRAMES * (1 + INVALID_FRAMES_PER_UNIQUE_FRAME) * SEGMENTS_PER_FRAME
"""A healthy stream completes a frame every 12 segments (4 valid, 8 invalid); 3 times that is not healthy.

This also catches segments that "finish" but never add up to a frame, e.g. a telemetry setting
that disagrees with the module's, which no other rule would report.
"""

# The CRC covers the header with the top 4 ID bits and the CRC field zeroed, so the header's
# contribution depends only on the 12-bit packet number: precomputing it leaves one C call per packet.
_HEADER_CRC = [crc_hqx(bytes((number >> 8, number & 0xFF, 0, 0)), 0) for number in range(4096)]


def packet_crc(packet: bytes) -> int:
    """CRC-16/XMODEM as VoSPI defines it (top 4 ID bits and the CRC field read as zero)."""
    return crc_hqx(packet[PACKET_HEADER_BYTES:], _HEADER_CRC[((packet[0] & 0x0F) << 8) | packet[1]])


class TelemetryMode(enum.Enum):
    """Where the Lepton puts its 4 telemetry packets; it changes the segment length (60 or 61)."""

    DISABLED = "disabled"
    HEADER = "header"
    FOOTER = "footer"

    @property
    def packets_per_segment(self) -> int:
        return PACKETS_PER_SEGMENT if self is TelemetryMode.DISABLED else PACKETS_PER_SEGMENT_WITH_TELEMETRY


FFC_STATES = ("never", "imminent", "in_progress", "complete")
"""Telemetry status bits 4-5, in the datasheet's order (Table 3)."""

STATUS_FFC_DESIRED_BIT = 3
STATUS_FFC_STATE_SHIFT = 4
STATUS_AGC_BIT = 12
STATUS_OVERTEMP_BIT = 20
ROW_A_STATUS_WORD = 3
ROW_A_FRAME_COUNTER_WORD = 20
ROW_A_FPA_TEMPERATURE_WORD = 24
ROW_C_TLINEAR_ENABLE_WORD = 48
ROW_C_TLINEAR_RESOLUTION_WORD = 49
TLINEAR_RESOLUTIONS_K = (0.1, 0.01)
"""Row C word 49 (and the RAD enum): 0 means 0.1 K per count, 1 means 0.01 K per count."""


def read_u32(words: np.ndarray, index: int) -> int:
    """32-bit telemetry fields are least-significant word first.

    Source: themainframe/leptonic `include/api/telemetry.h`, whose LEPTON_DWORD(buf, i) puts the
    word at byte offset i+2 in the high half, and which reads the status bits at byte offset 6
    (word 3) and the frame counter at offset 40 (word 20) that way. It agrees with the datasheet's
    Table 3, where the FFC bits (3-5) and AGC (12) sit in word 3 and overtemp (20) in word 4, and
    with the CCI's own LSW-first rule for 32-bit values.
    """
    return int(words[index]) | (int(words[index + 1]) << 16)


@dataclass(frozen=True)
class Telemetry:
    """The telemetry fields the driver acts on or reports; the rest of rows A-C is ignored."""

    frame_counter: int
    fpa_temperature_k: float
    ffc_state: str
    ffc_desired: bool
    agc_enabled: bool
    overtemp: bool
    tlinear_enabled: bool
    tlinear_resolution_k: float

    @classmethod
    def from_rows(cls, words: np.ndarray) -> Telemetry:
        """Parse rows A, B, C (and the reserved one) as an (n >= 3, 80) array of native 16-bit words."""
        if words.ndim != 2 or words.shape[0] < 3 or words.shape[1] != PAYLOAD_WORDS:
            raise ValueError(f"telemetry needs rows A-C of {PAYLOAD_WORDS} words, got shape {words.shape}")
        row_a, row_c = words[0], words[2]
        status = read_u32(row_a, ROW_A_STATUS_WORD)
        resolution_code = int(row_c[ROW_C_TLINEAR_RESOLUTION_WORD])
        return cls(
            frame_counter=read_u32(row_a, ROW_A_FRAME_COUNTER_WORD),
            fpa_temperature_k=int(row_a[ROW_A_FPA_TEMPERATURE_WORD]) / 100.0,
            ffc_state=FFC_STATES[(status >> STATUS_FFC_STATE_SHIFT) & 0x3],
            ffc_desired=bool(status >> STATUS_FFC_DESIRED_BIT & 1),
            agc_enabled=bool(status >> STATUS_AGC_BIT & 1),
            overtemp=bool(status >> STATUS_OVERTEMP_BIT & 1),
            tlinear_enabled=bool(row_c[ROW_C_TLINEAR_ENABLE_WORD]),
            tlinear_resolution_k=TLINEAR_RESOLUTIONS_K[1] if resolution_code else TLINEAR_RESOLUTIONS_K[0],
        )


@dataclass
class VoSpiStats:
    """Cumulative counters; `reset()` keeps them so diagnostics survive resyncs."""

    packets: int = 0
    discard_packets: int = 0
    crc_errors: int = 0
    lost_packets: int = 0
    noise_packets: int = 0
    """All-zero packets: what a floating MISO reads. Their CRC is valid (XMODEM of zeros is 0) and
    their number is 0, so only their content tells them from a segment's first packet."""
    invalid_segments: int = 0
    broken_frames: int = 0
    frames: int = 0


_HUNTING = -1
"""`_next_packet` value while waiting for a packet 0 after a fault."""


class VoSpiAssembler:
    """Turns a stream of 164-byte VoSPI packets into whole frames, never a torn one.

    A frame is only emitted when segments 1, 2, 3, 4 arrive in that order with every packet
    number in sequence and every CRC correct. Any fault drops the segment and the frame in
    progress; the assembler then waits for the next packet 0 on its own, and raises
    `needs_resync` when the datasheet says only a /CS resync helps (CRC error, or no progress).
    """

    def __init__(self, telemetry: TelemetryMode = TelemetryMode.DISABLED, check_crc: bool = True) -> None:
        self.telemetry = telemetry
        self.check_crc = check_crc
        self.stats = VoSpiStats()
        self.last_telemetry: Telemetry | None = None
        self._last_packet_number = telemetry.packets_per_segment - 1
        self._stall_packet_limit = STALL_FRAMES * SEGMENTS_PER_FRAME * telemetry.packets_per_segment
        self.reset()

    def reset(self) -> None:
        """Forget everything in flight; the caller does this right after a /CS resync."""
        self.needs_resync = False
        self._next_packet = _HUNTING
        self._segment: list[bytes] = []
        self._segment_number = 0
        self._frame_segments: list[list[bytes]] = []
        self._packets_since_segment = 0
        self._segments_since_frame = 0

    def push(self, packet: bytes) -> np.ndarray | None:
        """Feed exactly one packet; returns the (120, 160) uint16 frame it completes, if any.

        The frame is a fresh array the caller owns; its telemetry (when enabled) is then in
        `last_telemetry`, so the common case stays a plain array.

        The assembler keeps slices of the packets until their frame is done, so pass immutable
        bytes (or memoryviews of immutable bytes), not a buffer that will be overwritten.
        """
        if len(packet) != PACKET_BYTES:
            raise ValueError(f"a VoSPI packet is {PACKET_BYTES} bytes, got {len(packet)}")
        stats = self.stats
        stats.packets += 1
        self._packets_since_segment += 1
        if self._packets_since_segment > self._stall_packet_limit:
            self.needs_resync = True
        id_high = packet[0]
        if id_high & _DISCARD_MASK == _DISCARD_MASK:
            stats.discard_packets += 1
            return None
        number = ((id_high & _PACKET_NUMBER_HIGH_MASK) << 8) | packet[1]
        # `packet_crc` inlined: the packet number is already decoded, and the extra call would
        # cost about a third of the per-packet time on a Raspberry Pi.
        if self.check_crc and crc_hqx(packet[PACKET_HEADER_BYTES:], _HEADER_CRC[number]) != (
            (packet[2] << 8) | packet[3]
        ):
            stats.crc_errors += 1
            self.needs_resync = True
            self._abandon_segment()
            return None
        if number == 0 and not any(packet):
            # Taken as packet 0 it would start a segment with a row of zeros (a torn frame) when
            # it follows a real packet 0; it breaks the segment in progress instead.
            stats.noise_packets += 1
            self._abandon_segment()
            return None
        if number != self._next_packet:
            if number != 0:
                if self._next_packet != _HUNTING:
                    stats.lost_packets += 1
                    self._abandon_segment()
                return None
            if self._next_packet > 0:
                # A new segment began before this one was complete: packets went missing.
                stats.lost_packets += 1
                self._drop_frame()
        if number == 0:
            self._segment = []
            self._segment_number = 0
        self._segment.append(packet[PACKET_HEADER_BYTES:])
        if number == SEGMENT_PACKET_NUMBER:
            self._segment_number = (id_high >> 4) & 0x7
        if number == self._last_packet_number:
            return self._finish_segment()
        self._next_packet = number + 1
        return None

    def _abandon_segment(self) -> None:
        self._next_packet = _HUNTING
        self._drop_frame()

    def _drop_frame(self) -> None:
        if self._frame_segments:
            self.stats.broken_frames += 1
            self._frame_segments = []

    def _finish_segment(self) -> np.ndarray | None:
        self._next_packet = 0
        self._packets_since_segment = 0
        self._segments_since_frame += 1
        if self._segments_since_frame > MAX_SEGMENTS_WITHOUT_FRAME:
            self.needs_resync = True
        segment_number = self._segment_number
        if segment_number == 0:
            self.stats.invalid_segments += 1
            self._drop_frame()
            return None
        if segment_number == 1:
            self._drop_frame()
        elif segment_number != len(self._frame_segments) + 1:
            self._drop_frame()
            return None
        self._frame_segments.append(self._segment)
        if len(self._frame_segments) < SEGMENTS_PER_FRAME:
            return None
        frame = self._assemble()
        self._frame_segments = []
        self._segments_since_frame = 0
        self.stats.frames += 1
        return frame

    def _assemble(self) -> np.ndarray:
        payloads = [payload for segment in self._frame_segments for payload in segment]
        words = np.frombuffer(b"".join(payloads), dtype=">u2").reshape(len(payloads), PAYLOAD_WORDS)
        telemetry_rows = None
        if self.telemetry is TelemetryMode.HEADER:
            telemetry_rows, video = words[:TELEMETRY_PACKETS], words[TELEMETRY_PACKETS:]
        elif self.telemetry is TelemetryMode.FOOTER:
            video, telemetry_rows = words[:VIDEO_PACKETS_PER_FRAME], words[VIDEO_PACKETS_PER_FRAME:]
        else:
            video = words
        if telemetry_rows is not None:
            self.last_telemetry = Telemetry.from_rows(telemetry_rows.astype(np.uint16))
        return video.astype(np.uint16).reshape(FRAME_ROWS, FRAME_COLS)
