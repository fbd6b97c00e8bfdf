"""Many participants, one model: throughput of the synthesis node's multi-stream batching.

Two measurements:

* **forward passes** (no ROS): the node's own per-batch function (`engine.streams.paint_heatmaps`)
  paints the newest frame of N streams, each with its own appearance, in one forward pass, against
  the same N frames painted one by one, at the precision the node picks by default. From the
  batch latency follows how many participants the device keeps at the Lepton's 8.7 Hz: the
  largest N whose batch is painted within one input period. The packaged model
  (`fast_wide_thermal`) and random-weight `base`, on the CPU and on a GPU when there is one.
* **through ROS**: the `thermal_synth` node runs as its own process with `streams:=[s0, ...]` and
  the packaged model; this process plays N participants, each publishing its
  `thermal/<name>/image` at 8.7 Hz from its own random phase (people do not start their sensors
  in step), and receives every `synth/<name>/image`. Reported per N: painted fps in all and for the
  slowest stream, the share of heatmaps that were never painted (the node keeps only the newest
  frame per stream, so a slow pass drops frames rather than queueing them), stamp-to-receipt
  latency and the node's own frames per forward pass from /diagnostics.

Run: `python -m bench streams` (updates bench/results.json) or `python -m bench.bench_streams`.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from bench.bench_synth import celsius_heatmaps, random_bundle, synchronizer, time_calls
from bench.common import machine_info, spread, tail
from thermal_msgs import topics
from thermal_msgs.image import array_to_image
from thermal_msgs.qos import STREAM_PUBLISHER_QOS, STREAM_SUBSCRIBER_QOS
from thermal_msgs.units import stamp_ns
from thermal_synth.bringup.processes import node_process, spin_for, spin_until, use_private_domain
from thermal_synth.engine.inference import PRECISION_AUTO, SynthesisEngine
from thermal_synth.engine.streams import paint_heatmap, paint_heatmaps
from thermal_synth.model.config import NAMED_CONFIGS, config_name
from thermal_synth.model.files import load_trained_model

LEPTON_RATE_HZ = 8.7
PERIOD_MS = 1e3 / LEPTON_RATE_HZ
CPU_STREAMS = (1, 2, 4, 8, 16, 32)
GPU_STREAMS = (1, 4, 16, 64)
"""Up to MAX_STREAMS, the most one node subscribes to."""
ROS_STREAMS = (1, 2, 4, 8)
WINDOW_S = 10.0
QUICK_WINDOW_S = 2.0
STARTUP_TIMEOUT_S = 60.0


def engines() -> dict[str, SynthesisEngine]:
    """The packaged model and a random-weight `base` per device, at the precision the node picks
    there by default (speed does not depend on weight values)."""
    found = {}
    packaged = load_trained_model("")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for name, bundle in (
            (f"{config_name(packaged.config)} (packaged)", packaged),
            ("base", random_bundle(NAMED_CONFIGS["base"])),
        ):
            engine = SynthesisEngine(bundle, device, precision=PRECISION_AUTO)
            found[f"{name}, {device}, {engine.precision}"] = engine
    return found


def forward_passes(engine: SynthesisEngine, counts: tuple[int, ...], repeats: int) -> list[dict]:
    """Per stream count: ms per batched pass and per frame-by-frame round, frames/s of each."""
    sync = synchronizer(engine.device)
    z_dim = engine.bundle.config.z_dim
    rows = []
    for count in counts:
        heatmaps = list(celsius_heatmaps(count, engine.heatmap_size))
        codes = np.random.default_rng(count).standard_normal((count, z_dim)).astype(np.float32)
        projections = [engine.project(code) for code in codes]

        def batched_pass(heatmaps=heatmaps, projections=projections) -> None:
            paint_heatmaps(engine, heatmaps, projections, None)

        def one_by_one(heatmaps=heatmaps, projections=projections) -> None:
            for heatmap, projected in zip(heatmaps, projections, strict=True):
                paint_heatmap(engine, heatmap, projected, None)

        time_calls(batched_pass, 2, sync)
        batched = time_calls(batched_pass, repeats, sync)
        sequential = time_calls(one_by_one, repeats, sync)
        batched_ms, sequential_ms = np.median(batched), np.median(sequential)
        rows.append(
            {
                "streams": count,
                "batched_pass_ms": spread(batched),
                "one_by_one_ms": spread(sequential),
                "batched_frames_per_s": round(count / batched_ms * 1e3, 1),
                "one_by_one_frames_per_s": round(count / sequential_ms * 1e3, 1),
                "keeps_8_7_hz": bool(batched_ms <= PERIOD_MS),
            }
        )
    return rows


def most_streams_at_lepton_rate(rows: list[dict]) -> int:
    return max((row["streams"] for row in rows if row["keeps_8_7_hz"]), default=0)


class Participants(Node):
    """N people: each publishes heatmaps at 8.7 Hz from its own phase and receives its painted frames."""

    def __init__(self, names: list[str], seed: int = 0) -> None:
        super().__init__("bench_streams_participants")
        self.names = names
        self.heatmaps = celsius_heatmaps(16, (12, 16))
        self.sent = dict.fromkeys(names, 0)
        self.received: dict[str, list[tuple[int, int]]] = {name: [] for name in names}
        self.frames_per_pass = ""
        self._heatmap_publishers = {}
        phases = random.Random(seed)
        for name in names:
            self._heatmap_publishers[name] = self.create_publisher(
                Image, topics.stream_topic(topics.THERMAL_IMAGE, name), STREAM_PUBLISHER_QOS
            )
            self.create_subscription(
                Image,
                topics.stream_topic(topics.SYNTH_IMAGE, name),
                lambda msg, name=name: self._on_frame(name, msg),
                STREAM_SUBSCRIBER_QOS,
            )
            # A one-shot timer starts each participant's own 8.7 Hz timer at a random phase.
            self._start_later(name, phases.uniform(0.0, 1.0 / LEPTON_RATE_HZ))
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)

    def _start_later(self, name: str, delay_s: float) -> None:
        def start() -> None:
            starter.cancel()
            self.create_timer(1.0 / LEPTON_RATE_HZ, lambda: self._send(name))

        starter = self.create_timer(delay_s, start)

    def _send(self, name: str) -> None:
        heatmap = self.heatmaps[self.sent[name] % len(self.heatmaps)]
        msg = array_to_image(heatmap, topics.THERMAL_ENCODING, stamp=self.get_clock().now().to_msg())
        self._heatmap_publishers[name].publish(msg)
        self.sent[name] += 1

    def _on_frame(self, name: str, msg: Image) -> None:
        self.received[name].append((stamp_ns(msg.header.stamp), self.get_clock().now().nanoseconds))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "frames_per_forward_pass" in values:
                self.frames_per_pass = values["frames_per_forward_pass"]

    def restart(self) -> None:
        self.sent = dict.fromkeys(self.names, 0)
        for frames in self.received.values():
            frames.clear()


def through_ros(count: int, window_s: float) -> dict:
    names = [f"s{index}" for index in range(count)]
    participants = Participants(names)
    try:
        parameters = {"streams": "[" + ", ".join(names) + "]", "device": "auto"}
        with node_process("thermal_synth.nodes.synth", parameters) as node:
            if not spin_until(
                participants, lambda: all(participants.received.values()), STARTUP_TIMEOUT_S, node
            ):
                raise RuntimeError(f"the synthesis node never served all {count} streams: {node.poll()=}")
            spin_for(participants, 1.0, node)
            participants.restart()
            spin_for(participants, window_s, node)
    finally:
        participants.destroy_node()
    sent = sum(participants.sent.values())
    painted = {name: len(frames) for name, frames in participants.received.items()}
    latencies = [
        (receipt - stamp) / 1e6 for frames in participants.received.values() for stamp, receipt in frames
    ]
    return {
        "streams": count,
        "heatmaps_sent": sent,
        "frames_painted": sum(painted.values()),
        "painted_fps_all": round(sum(painted.values()) / window_s, 2),
        "painted_fps_slowest_stream": round(min(painted.values()) / window_s, 2),
        "never_painted_share": round(max(0.0, 1.0 - sum(painted.values()) / sent), 3) if sent else None,
        "stamp_to_receipt_ms": {**tail(latencies), "max": round(max(latencies), 2)} if latencies else None,
        "frames_per_forward_pass": participants.frames_per_pass,
    }


def run(window_s: float = WINDOW_S, *, quick: bool = False) -> dict:
    """`quick`: one engine, two stream counts, one ROS run of 2 s: for the smoke test."""
    started = time.perf_counter()
    found = engines()
    if quick:
        found = dict(list(found.items())[:1])
    passes = {}
    for name, engine in found.items():
        counts = GPU_STREAMS if engine.device.type == "cuda" else CPU_STREAMS
        rows = forward_passes(engine, counts[:2] if quick else counts, 2 if quick else 10)
        passes[name] = {
            "device": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else "cpu",
            "rows": rows,
            "most_streams_at_8_7_hz": most_streams_at_lepton_rate(rows),
        }
    use_private_domain()
    rclpy.init()
    try:
        ros = [
            through_ros(count, QUICK_WINDOW_S if quick else window_s)
            for count in ROS_STREAMS[: 1 if quick else None]
        ]
    finally:
        rclpy.try_shutdown()
    return {
        "benchmark": "multi_stream",
        "torch_threads": torch.get_num_threads(),
        "forward_passes": passes,
        "ros": {
            "graph": "thermal_synth (packaged model, streams:=[s0..]) in its own process; N participants "
            "publishing at 8.7 Hz from random phases and receiving in this process",
            "window_s": QUICK_WINDOW_S if quick else window_s,
            "results": ros,
        },
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="ROS window per stream count")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for the smoke test")
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine_info(), **run(args.seconds, quick=args.quick)}, indent=2))


if __name__ == "__main__":
    main()
