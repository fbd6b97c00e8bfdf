"""`thermal-synth demo`: start the driver as its own process and show what it publishes.

It listens like any other consumer would (sensor-data QoS, from another process), so what it
prints is what a user's node would see.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from thermal_msgs import topics
from thermal_msgs.image import image_to_array
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_synth.processes import node_process, spin_for, spin_until, use_private_domain

SHADES = " .:-=+*#%@"
STARTUP_TIMEOUT_S = 30.0


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="run the thermal driver and show what it publishes")
    parser.add_argument("--source", default="sim", help="driver source (default: sim, needs no hardware)")
    parser.add_argument("--seconds", type=_positive_float, default=5.0, help="how long to listen (default 5)")
    parser.set_defaults(run=run)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def render_heatmap(celsius: np.ndarray) -> str:
    """Two characters per cell keep the 4:3 aspect of the sensor in a terminal."""
    low, high = float(celsius.min()), float(celsius.max())
    levels = np.clip((celsius - low) / max(high - low, 1e-6) * (len(SHADES) - 1), 0, len(SHADES) - 1)
    rows = ("".join(SHADES[int(v)] * 2 for v in row) for row in np.rint(levels).astype(int))
    return "\n".join(f"  |{row}|" for row in rows) + f"\n  {low:.1f} C ' ' .. '@' {high:.1f} C"


class TopicWatcher(Node):
    def __init__(self) -> None:
        super().__init__("thermal_synth_demo")
        self.heatmaps: list[tuple[float, Image]] = []
        self.raw_frames = 0
        self.create_subscription(Image, topics.THERMAL_IMAGE, self._on_heatmap, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(Image, topics.THERMAL_IMAGE_RAW, self._on_raw, STREAM_SUBSCRIBER_QOS)

    def _on_heatmap(self, msg: Image) -> None:
        self.heatmaps.append((time.monotonic(), msg))

    def _on_raw(self, _msg: Image) -> None:
        self.raw_frames += 1


def run(args: argparse.Namespace) -> int:
    use_private_domain()
    rclpy.init()
    watcher = TopicWatcher()
    try:
        with node_process("thermal_driver.node", {"source": args.source}) as driver:
            print(f"thermal_driver (source={args.source}) starting; waiting for /{topics.THERMAL_IMAGE}")
            # A Raspberry Pi (or a busy laptop) may need many seconds to import and open the sensor:
            # the listening window starts with the first heatmap, not with the process.
            if spin_until(watcher, lambda: bool(watcher.heatmaps), STARTUP_TIMEOUT_S, driver):
                print(f"listening for {args.seconds:g} s")
                spin_for(watcher, args.seconds, driver)
    finally:
        watcher.destroy_node()
        rclpy.try_shutdown()
    if not watcher.heatmaps:
        print(f"no thermal/image received; the driver said:\n{driver.stderr_text}", file=sys.stderr)
        return 1
    print(summarise(watcher))
    return 0


def summarise(watcher: TopicWatcher) -> str:
    arrivals = [t for t, _ in watcher.heatmaps]
    last = watcher.heatmaps[-1][1]
    celsius = image_to_array(last)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return "\n".join(
        [
            f"/{topics.THERMAL_IMAGE}: {len(arrivals)} messages at {rate:.2f} Hz, "
            f"{last.encoding} {last.height}x{last.width}, frame_id '{last.header.frame_id}', "
            f"{celsius.min():.1f}..{celsius.max():.1f} degC",
            f"/{topics.THERMAL_IMAGE_RAW}: {watcher.raw_frames} messages (off unless publish_raw:=true)",
            "latest heatmap (all that leaves the driver: the person and any warm objects in the room):",
            render_heatmap(celsius),
        ]
    )
