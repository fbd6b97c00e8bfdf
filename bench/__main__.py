"""`python -m bench` (or `make bench`): every benchmark, one JSON report, one table for the README."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import bench_driver, bench_sim, bench_vospi
from bench.common import machine_info

DEFAULT_OUT = Path(__file__).with_name("results.json")


def table(report: dict) -> str:
    vospi = {r["check_crc"]: r for r in report["vospi"]["results"]}
    driver = report["driver"]
    sim = report["sim"]
    ros = driver["ros_sim_8_7_hz"]
    rows = [
        ("VoSPI assembly, CRC on (packets/s)", f"{vospi[True]['packets_per_s']['median']:,.0f}"),
        ("VoSPI assembly, CRC off (packets/s)", f"{vospi[False]['packets_per_s']['median']:,.0f}"),
        (
            "CPU share of VoSPI assembly at the Lepton's rate",
            f"{vospi[True]['cpu_share_at_lepton_rate']:.2%}",
        ),
        ("privacy downsampling + Image per frame (µs)", f"{driver['per_frame_cost_us']['median']}"),
        ("driver rate, sim at 8.7 Hz through ROS (Hz)", f"{ros['achieved_rate_hz']}"),
        (
            "inter-arrival p50 / p99 (ms)",
            f"{ros['interarrival_ms']['p50']} / {ros['interarrival_ms']['p99']}",
        ),
        (
            "stamp to receipt p50 / p99 (ms)",
            f"{ros['stamp_to_receipt_ms']['p50']} / {ros['stamp_to_receipt_ms']['p99']}",
        ),
        ("simulated rig, render only, one core (pairs/s)", f"{sim['render_pairs_per_s']['median']}"),
        (
            "simulated rig, render + shards, one core (pairs/s)",
            f"{sim['render_and_write_pairs_per_s']['median']}",
        ),
    ]
    return "\n".join(
        ["| measurement | result |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--seconds", type=float, default=10.0, help="ROS measurement length")
    args = parser.parse_args(argv)
    report = {
        "machine": machine_info(),
        "vospi": bench_vospi.run(),
        "driver": bench_driver.run(seconds=args.seconds),
        "sim": bench_sim.run(),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nfull report: {args.out}")


if __name__ == "__main__":
    main()
