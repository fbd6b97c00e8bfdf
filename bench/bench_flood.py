"""The synthesis node flooded: heatmaps arrive far faster than it can paint them.

The node runs as its own process with its defaults (the packaged model, precision auto, half the
cores), as `thermal-synth conference` starts it; this process publishes `thermal/image` at
`FLOOD_HZ`, twenty times the Lepton's rate, and counts `synth/image`. The node keeps only the newest
heatmap, so most are skipped by design; what matters is how many frames a second it paints,
against what its own engine paints single-stream in this process at the same precision and thread
count: the ROS wiring around the painting (subscription, input check, mailbox, publishing) should
cost little of it.

Run: `python -m bench flood` (updates bench/results.json) or `python -m bench.bench_flood`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import rclpy
import torch
from rclpy.node import Node
from sensor_msgs.msg import Image

from bench.bench_synth import celsius_heatmaps, frame_by_frame, synchronizer, time_calls
from bench.common import machine_info, tail
from thermal_msgs import topics
from thermal_msgs.image import array_to_image
from thermal_msgs.qos import STREAM_PUBLISHER_QOS, STREAM_SUBSCRIBER_QOS
from thermal_synth.bringup.processes import node_process, spin_until, use_private_domain
from thermal_synth.engine.inference import PRECISION_AUTO, SynthesisEngine
from thermal_synth.engine.streams import paint_heatmap
from thermal_synth.model.files import DEFAULT_MODEL, load_trained_model
from thermal_synth.nodes.synth_parameters import parse_cpu_threads

FLOOD_HZ = 174.0
"""Twenty times the Lepton's 8.7 Hz: always a newer heatmap waiting, without this process taking a
whole core to publish."""
WINDOW_S = 20.0
QUICK_WINDOW_S = 2.0
WARMUP_S = 3.0
STARTUP_TIMEOUT_S = 90.0
ENGINE_ITERATIONS = 200


def engine_fps(iterations: int) -> dict:
    """The node's own per-frame function in this process, at the node's default precision and threads."""
    threads = parse_cpu_threads(0)
    torch.set_num_threads(threads)
    engine = SynthesisEngine(load_trained_model(DEFAULT_MODEL), "cpu", precision=PRECISION_AUTO)
    projected = engine.projection(engine.bundle.bank.names()[0])
    sync = synchronizer(engine.device)
    paint = frame_by_frame(lambda one: paint_heatmap(engine, one[0], projected, None), engine.heatmap_size)
    time_calls(paint, 10, sync)
    samples_ms = time_calls(paint, iterations, sync)
    return {
        "fps": round(1000.0 / float(np.median(samples_ms)), 1),
        "latency_ms": tail(samples_ms),
        "precision": engine.precision,
        "torch_threads": threads,
    }


class Flood:
    """Publishes heatmaps on a clock of its own and notes when each painted frame arrives."""

    def __init__(self, heatmap_size: tuple[int, int]) -> None:
        self.node = Node("bench_flood")
        self.publisher = self.node.create_publisher(Image, topics.THERMAL_IMAGE, STREAM_PUBLISHER_QOS)
        self.node.create_subscription(Image, topics.SYNTH_IMAGE, self._on_frame, STREAM_SUBSCRIBER_QOS)
        self.node.create_timer(1.0 / FLOOD_HZ, self._publish)
        self.heatmaps = celsius_heatmaps(16, heatmap_size)
        self.published = 0
        self.arrivals: list[float] = []

    def _publish(self) -> None:
        heatmap = self.heatmaps[self.published % len(self.heatmaps)]
        stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(array_to_image(heatmap, topics.THERMAL_ENCODING, stamp=stamp))
        self.published += 1

    def _on_frame(self, _msg: Image) -> None:
        self.arrivals.append(time.monotonic())

    def window(self, seconds: float) -> tuple[int, list[float]]:
        """(heatmaps published, frame arrivals) during `seconds` of spinning."""
        published, self.arrivals = self.published, []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.005)
        return self.published - published, list(self.arrivals)


def node_fps(window_s: float) -> dict:
    heatmap_size = load_trained_model(DEFAULT_MODEL).config.heatmap_size
    rclpy.init(args=[])
    flood = Flood(heatmap_size)
    try:
        with node_process("thermal_synth.nodes.synth", {}) as process:
            started = spin_until(flood.node, lambda: bool(flood.arrivals), STARTUP_TIMEOUT_S, process)
            if started:
                flood.window(WARMUP_S)
                published, arrivals = flood.window(window_s)
                alive = process.poll() is None
    finally:
        flood.node.destroy_node()
        rclpy.try_shutdown()
    if not started:
        raise RuntimeError(f"the synthesis node painted nothing:\n{process.stderr_text[-2000:]}")
    intervals_ms = np.diff(arrivals) * 1e3
    return {
        "heatmaps_published": published,
        "frames_painted": len(arrivals),
        "fps": round((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), 1) if len(arrivals) > 1 else 0.0,
        "interval_ms": tail(intervals_ms.tolist()) if intervals_ms.size else {},
        "node_alive_after": alive,
    }


def run(window_s: float = WINDOW_S, *, quick: bool = False) -> dict:
    use_private_domain()
    window_s = QUICK_WINDOW_S if quick else window_s
    started = time.perf_counter()
    engine = engine_fps(20 if quick else ENGINE_ITERATIONS)
    node = node_fps(window_s)
    return {
        "benchmark": "flooded_synthesis_node",
        "flood_hz": FLOOD_HZ,
        "window_s": window_s,
        "quick": quick,
        "engine_single_stream": engine,
        "node": node,
        "node_to_engine_fps": round(node["fps"] / engine["fps"], 2),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="timed window")
    parser.add_argument("--quick", action="store_true", help="a 2 s window")
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine_info(), **run(args.seconds, quick=args.quick)}, indent=2))


if __name__ == "__main__":
    main()
