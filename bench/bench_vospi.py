"""VoSpiAssembler on a synthetic Lepton stream: is pure Python fast enough on the target, and does a
faulty SPI link ever make it emit a frame that is not exactly one the module sent?

A Lepton 3.x sends about 106 segments/s, i.e. 6,360 video packets/s (6,466 with telemetry),
plus discard packets; the assembler must handle them with room to spare for the rest of the node.
Run it on the target (e.g. a Raspberry Pi): `python -m bench.bench_vospi`; `--faults N` runs the
fault injection instead (`python -m bench vospi_faults` records it in the report).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics
import time
from collections import Counter

import numpy as np

from bench.common import machine_info, spread
from thermal_driver.sources.lepton.source import RESYNC_IDLE_S
from thermal_driver.sources.lepton.vospi import (
    FRAME_COLS,
    FRAME_ROWS,
    INVALID_FRAMES_PER_UNIQUE_FRAME,
    PACKET_BYTES,
    SEGMENT_PACKET_NUMBER,
    Telemetry,
    TelemetryMode,
    VoSpiAssembler,
)
from thermal_driver.sources.lepton.vospi_encoder import DISCARD_PACKET, encode_frame, encode_stream

SEGMENTS_PER_S = 106
CENTIKELVIN_RANGE = (29_000, 31_500)
FAULT_KINDS = ("discards", "ttt_zero", "crc_flip", "lost_packets")
"""Discard packets inside a frame (harmless: its frame must come out), a valid segment marked invalid
(TTT=0), one flipped byte (a CRC error: the datasheet asks for a resync), a run of lost packets."""
POOL_FRAMES = 64
"""Distinct random frames the stream cycles through: a torn frame (segments of two of them) matches none."""
DISCARDS_BETWEEN_SEGMENTS = 2
RESYNC_IDLE_SEGMENTS = math.ceil(RESYNC_IDLE_S * SEGMENTS_PER_S)
"""Whole segments the module sends while the driver idles /CS for a resync (after the rest of the one
in flight); reading resumes at the next segment start, as the module does."""


def build_packets(n_frames: int, telemetry: TelemetryMode, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    frames = [
        rng.integers(*CENTIKELVIN_RANGE, size=(FRAME_ROWS, FRAME_COLS), dtype=np.uint16)
        for _ in range(n_frames)
    ]
    telemetries = None
    if telemetry is not TelemetryMode.DISABLED:
        telemetries = [
            Telemetry(i, 301.5, "complete", False, False, False, True, 0.01) for i in range(n_frames)
        ]
    return encode_stream(frames, telemetry, telemetries).packets


def time_one_pass(
    packets: list[bytes], telemetry: TelemetryMode, check_crc: bool, expected_frames: int
) -> float:
    assembler = VoSpiAssembler(telemetry, check_crc=check_crc)
    push = assembler.push
    start = time.perf_counter()
    for packet in packets:
        push(packet)
    elapsed = time.perf_counter() - start
    if assembler.stats.frames != expected_frames:
        raise RuntimeError(f"assembled {assembler.stats.frames} frames, expected {expected_frames}")
    return elapsed


def measure(
    packets: list[bytes], n_frames: int, telemetry: TelemetryMode, check_crc: bool, repeats: int
) -> dict:
    times = [time_one_pass(packets, telemetry, check_crc, n_frames) for _ in range(repeats)]
    packet_rates = [len(packets) / t for t in times]
    required = SEGMENTS_PER_S * telemetry.packets_per_segment
    return {
        "check_crc": check_crc,
        "packets_per_s": spread(packet_rates, digits=0),
        "unique_frames_per_s": spread([n_frames / t for t in times]),
        "cpu_share_at_lepton_rate": round(required / statistics.median(packet_rates), 4),
    }


def run(frames: int = 30, repeats: int = 5, telemetry: TelemetryMode = TelemetryMode.FOOTER) -> dict:
    packets = build_packets(frames, telemetry)
    return {
        "benchmark": "vospi_assembler",
        "stream": {"packets": len(packets), "unique_frames": frames, "telemetry": telemetry.value},
        "required_packets_per_s": SEGMENTS_PER_S * telemetry.packets_per_segment,
        "results": [measure(packets, frames, telemetry, check, repeats) for check in (True, False)],
    }


class _FaultyStream:
    """A packet stream of frame slots, every even slot with one injected fault and every odd one clean,
    and which slot each packet belongs to, so every frame the assembler emits can be traced back."""

    def __init__(self, faults: int, telemetry: TelemetryMode, rng: np.random.Generator) -> None:
        self.pool = [
            rng.integers(*CENTIKELVIN_RANGE, size=(FRAME_ROWS, FRAME_COLS), dtype=np.uint16)
            for _ in range(POOL_FRAMES)
        ]
        records = [
            Telemetry(i, 301.5, "complete", False, False, False, True, 0.01) for i in range(POOL_FRAMES)
        ]
        if telemetry is TelemetryMode.DISABLED:
            records = [None] * POOL_FRAMES
        self._valid = [encode_frame(f, telemetry, t) for f, t in zip(self.pool, records, strict=True)]
        self._invalid = [
            encode_frame(np.invert(f), telemetry, t, valid=False)
            for f, t in zip(self.pool, records, strict=True)
        ]
        self.kinds = [FAULT_KINDS[i % len(FAULT_KINDS)] for i in rng.permutation(faults)]
        self.slots = 2 * faults
        self.destroyed = np.zeros(self.slots, bool)
        """Slots whose frame a fault destroyed: their frame must never come out."""
        self.packets: list[bytes] = []
        owners: list[int] = []
        self.segment_starts: list[int] = []
        for slot in range(self.slots):
            segments = [list(segment) for segment in self._valid[slot % POOL_FRAMES]]
            if slot % 2 == 0:
                self.destroyed[slot] = self._inject(self.kinds[slot // 2], segments, rng)
            self._append(segments, slot, owners)
            for _ in range(INVALID_FRAMES_PER_UNIQUE_FRAME):
                self._append(self._invalid[slot % POOL_FRAMES], -1, owners)
        self.owners = np.array(owners, np.int32)

    @staticmethod
    def _inject(kind: str, segments: list[list[bytes]], rng: np.random.Generator) -> bool:
        """Applies one fault to a frame's valid segments; True when the frame cannot survive it."""
        segment = segments[int(rng.integers(len(segments)))]
        if kind == "discards":
            at = int(rng.integers(len(segment) + 1))
            segment[at:at] = [DISCARD_PACKET] * int(rng.integers(1, 5))
            return False
        if kind == "ttt_zero":
            packet = bytearray(segment[SEGMENT_PACKET_NUMBER])
            packet[0] &= 0x8F
            segment[SEGMENT_PACKET_NUMBER] = bytes(packet)
            return True
        if kind == "crc_flip":
            at = int(rng.integers(len(segment)))
            packet = bytearray(segment[at])
            # Byte 0's top nibble (the TTT bits) is outside the CRC, so the flip starts at byte 1.
            packet[int(rng.integers(1, PACKET_BYTES))] ^= int(rng.integers(1, 256))
            segment[at] = bytes(packet)
            return True
        first = int(rng.integers(len(segment)))
        del segment[first : first + int(rng.integers(1, 60))]
        return True

    def _append(self, segments: list[list[bytes]], owner: int, owners: list[int]) -> None:
        for segment in segments:
            self.segment_starts.append(len(self.packets))
            self.packets += segment
            self.packets += [DISCARD_PACKET] * DISCARDS_BETWEEN_SEGMENTS
            owners += [owner] * len(segment) + [-1] * DISCARDS_BETWEEN_SEGMENTS


def fault_injection(
    faults: int = 10_000, seed: int = 0, telemetry: TelemetryMode = TelemetryMode.FOOTER
) -> dict:
    """Injects `faults` faults, each into its own frame and each followed by a clean frame, and reads the
    stream the way the driver does: CRC checked, and after `needs_resync` a reset once the /CS idle
    (`RESYNC_IDLE_S`, during which the module's packets are lost) is over.

    Every emitted frame is traced to the frame slot its last packet came from: it must be exactly
    that slot's frame (else it is torn) and that slot must not have been destroyed by a fault.
    A frame that no fault destroyed comes out unless the resync idle swallowed some of its packets.
    """
    rng = np.random.default_rng(seed)
    stream = _FaultyStream(faults, telemetry, rng)
    packets, owners = stream.packets, stream.owners
    assembler = VoSpiAssembler(telemetry)
    push = assembler.push
    emitted = np.zeros(stream.slots, bool)
    torn = destroyed_emitted = resyncs = 0
    idle = np.zeros(stream.slots, bool)
    index, count = 0, len(packets)
    start = time.perf_counter()
    while index < count:
        frame = push(packets[index])
        if frame is not None:
            slot = int(owners[index])
            if slot < 0 or not np.array_equal(frame, stream.pool[slot % POOL_FRAMES]):
                torn += 1
            elif stream.destroyed[slot]:
                destroyed_emitted += 1
            else:
                emitted[slot] = True
        if assembler.needs_resync:
            resyncs += 1
            assembler.reset()
            resume = bisect.bisect_right(stream.segment_starts, index) + RESYNC_IDLE_SEGMENTS
            resume_at = stream.segment_starts[resume] if resume < len(stream.segment_starts) else count
            lost = owners[index + 1 : resume_at]
            idle[np.unique(lost[lost >= 0])] = True
            index = resume_at
            continue
        index += 1
    elapsed = time.perf_counter() - start
    intact = ~stream.destroyed
    clean = np.arange(stream.slots) % 2 == 1
    discarded = intact & ~clean
    stats = assembler.stats
    return {
        "benchmark": "vospi_fault_injection",
        "seed": seed,
        "telemetry": telemetry.value,
        "faults": dict(Counter(stream.kinds)),
        "packets": count,
        "unique_frames": stream.slots,
        "resync_idle_segments": RESYNC_IDLE_SEGMENTS,
        "clean_frames": {
            "sent": int(clean.sum()),
            "recovered": int((emitted & clean).sum()),
            "lost_in_resync_idle": int((idle & clean & ~emitted).sum()),
            "missed": int((clean & ~emitted & ~idle).sum()),
        },
        "frames_with_injected_discards": {
            "sent": int(discarded.sum()),
            "recovered": int((emitted & discarded).sum()),
            "lost_in_resync_idle": int((idle & discarded & ~emitted).sum()),
            "missed": int((discarded & ~emitted & ~idle).sum()),
        },
        "destroyed_frames_emitted": destroyed_emitted,
        "torn_frames_emitted": torn,
        "resyncs": resyncs,
        "assembler": {
            "frames": stats.frames,
            "crc_errors": stats.crc_errors,
            "lost_packets": stats.lost_packets,
            "invalid_segments": stats.invalid_segments,
            "broken_frames": stats.broken_frames,
        },
        "seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="unique frames in the synthetic stream")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--telemetry", choices=[mode.value for mode in TelemetryMode], default="footer")
    parser.add_argument("--faults", type=int, help="run the fault injection with this many faults instead")
    args = parser.parse_args(argv)
    telemetry = TelemetryMode(args.telemetry)
    if args.faults:
        measured = fault_injection(args.faults, telemetry=telemetry)
    else:
        measured = run(args.frames, args.repeats, telemetry)
    print(json.dumps({"machine": machine_info(), **measured}, indent=2))


if __name__ == "__main__":
    main()
