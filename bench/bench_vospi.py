"""VoSpiAssembler throughput on a synthetic Lepton stream: is pure Python fast enough on the target?

A Lepton 3.x sends about 106 segments/s, i.e. 6,360 video packets/s (6,466 with telemetry),
plus discard packets; the assembler must handle them with room to spare for the rest of the node.
Run it on the target (e.g. a Raspberry Pi): `python -m bench.bench_vospi`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from bench.common import machine_info, spread
from thermal_driver.sources.lepton.vospi import (
    FRAME_COLS,
    FRAME_ROWS,
    Telemetry,
    TelemetryMode,
    VoSpiAssembler,
)
from thermal_driver.sources.lepton.vospi_encoder import encode_stream

SEGMENTS_PER_S = 106
CENTIKELVIN_RANGE = (29_000, 31_500)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="unique frames in the synthetic stream")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--telemetry", choices=[mode.value for mode in TelemetryMode], default="footer")
    args = parser.parse_args(argv)
    report = {"machine": machine_info(), **run(args.frames, args.repeats, TelemetryMode(args.telemetry))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
