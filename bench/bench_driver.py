"""The driver's per-frame cost and its real output through ROS: rate, jitter and stamp-to-receipt latency.

The ROS part runs `thermal_driver` (sim source) as its own process and listens from this one,
exactly as a consumer on the same machine would.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from bench.common import machine_info, spread, tail
from thermal_driver.sources.rig.rig import SimRig, sessions
from thermal_msgs import topics
from thermal_msgs.image import array_to_image
from thermal_msgs.privacy import privacy_downsample
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.bringup.processes import node_process, spin_for, use_private_domain


def per_frame_cost_us(repeats: int, frames_per_repeat: int = 500) -> dict:
    """Celsius conversion + privacy downsampling + Image building for one 120x160 Lepton frame."""
    centikelvin = SimRig(sessions(1, seed=0)[0]).render(0.0).thermal_centikelvin
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(frames_per_repeat):
            heatmap = privacy_downsample(centikelvin_to_celsius(centikelvin), (12, 16), 1.0)
            array_to_image(heatmap, topics.THERMAL_ENCODING)
        samples.append((time.perf_counter() - start) / frames_per_repeat * 1e6)
    return spread(samples)


class Receiver(Node):
    def __init__(self) -> None:
        super().__init__("bench_driver_receiver")
        self.arrivals: list[float] = []
        self.latencies_ms: list[float] = []
        self.create_subscription(Image, topics.THERMAL_IMAGE, self._on_image, STREAM_SUBSCRIBER_QOS)

    def _on_image(self, msg: Image) -> None:
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.arrivals.append(time.monotonic())
        self.latencies_ms.append((now_ns - stamp_ns) / 1e6)


def through_ros(seconds: float, rate_hz: float = 8.7) -> dict:
    use_private_domain()
    rclpy.init()
    receiver = Receiver()
    try:
        with node_process("thermal_driver.node", {"source": "sim", "rate_hz": rate_hz}) as driver:
            spin_for(receiver, 2.0, driver)
            receiver.arrivals.clear()
            receiver.latencies_ms.clear()
            spin_for(receiver, seconds, driver)
    finally:
        receiver.destroy_node()
        rclpy.try_shutdown()
    arrivals = receiver.arrivals
    gaps_ms = list(np.diff(arrivals) * 1e3)
    expected = seconds * rate_hz
    return {
        "nominal_rate_hz": rate_hz,
        "seconds": seconds,
        "messages": len(arrivals),
        "achieved_rate_hz": round((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), 3),
        "missing_vs_nominal": max(0, round(expected - len(arrivals))),
        "interarrival_ms": tail(gaps_ms),
        "stamp_to_receipt_ms": tail(receiver.latencies_ms),
    }


def run(seconds: float = 10.0, repeats: int = 5) -> dict:
    return {
        "benchmark": "thermal_driver",
        "per_frame_cost_us": per_frame_cost_us(repeats),
        "ros_sim_8_7_hz": through_ros(seconds),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine_info(), **run(args.seconds, args.repeats)}, indent=2))


if __name__ == "__main__":
    main()
