"""`thermal-synth demo`: start the driver and the synthesis node as their own processes and show
what they publish.

It listens like any other consumer would (sensor-data QoS, from another process), so what it
prints is what a user's node would see. The synthesised frames go to a PNG beside the heatmaps
they were painted from (matched by header stamp), since a terminal cannot show them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from thermal_msgs import topics
from thermal_msgs.image import image_to_array
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_synth.contact_sheet import captioned_grid, check_png_path, encode_png
from thermal_synth.processes import node_process, spin_for, spin_until, use_private_domain

SHADES = " .:-=+*#%@"
STARTUP_TIMEOUT_S = 30.0
SHEET_PAIRS = 6


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="run the thermal driver and show what it publishes")
    parser.add_argument("--source", default="sim", help="driver source (default: sim, needs no hardware)")
    parser.add_argument("--seconds", type=_positive_float, default=5.0, help="how long to listen (default 5)")
    parser.add_argument(
        "--model", default="", help="model directory for the synthesis node (default: packaged)"
    )
    parser.add_argument(
        "--sheet", type=Path, default=Path("thermal_synth_demo.png"), help="PNG of heatmaps and frames"
    )
    parser.add_argument("--no-synth", action="store_true", help="run the driver only")
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
        self.frames: list[tuple[float, Image]] = []
        self.raw_frames = 0
        self.create_subscription(Image, topics.THERMAL_IMAGE, self._on_heatmap, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(Image, topics.THERMAL_IMAGE_RAW, self._on_raw, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(Image, topics.SYNTH_IMAGE, self._on_frame, STREAM_SUBSCRIBER_QOS)

    def _on_heatmap(self, msg: Image) -> None:
        self.heatmaps.append((time.monotonic(), msg))

    def _on_raw(self, _msg: Image) -> None:
        self.raw_frames += 1

    def _on_frame(self, msg: Image) -> None:
        self.frames.append((time.monotonic(), msg))


def run(args: argparse.Namespace) -> int:
    if not args.no_synth:
        try:
            check_png_path(args.sheet)
        except ValueError as error:
            print(f"thermal-synth demo: error: {error}", file=sys.stderr)
            return 2
    use_private_domain()
    rclpy.init()
    watcher = TopicWatcher()
    synth_log = ""
    try:
        with node_process("thermal_driver.node", {"source": args.source}) as driver:
            print(f"thermal_driver (source={args.source}) starting; waiting for /{topics.THERMAL_IMAGE}")
            # A Raspberry Pi (or a busy laptop) may need many seconds to import and open the sensor:
            # the listening window starts with the first heatmap, not with the process.
            if not spin_until(watcher, lambda: bool(watcher.heatmaps), STARTUP_TIMEOUT_S, driver):
                print(f"no thermal/image received; the driver said:\n{driver.stderr_text}", file=sys.stderr)
                return 1
            if args.no_synth:
                print(f"listening for {args.seconds:g} s")
                spin_for(watcher, args.seconds, driver)
            else:
                synth_log = _listen_with_synthesis(watcher, args)
    finally:
        watcher.destroy_node()
        rclpy.try_shutdown()
    print(summarise(watcher))
    if args.no_synth:
        return 0
    if not watcher.frames:
        print(f"no synth/image received; the synthesis node said:\n{synth_log}", file=sys.stderr)
        return 1
    print(summarise_frames(watcher, args.sheet))
    return 0


def _listen_with_synthesis(watcher: TopicWatcher, args: argparse.Namespace) -> str:
    """Starts thermal_synth and listens once its first frame arrives; returns what it logged."""
    parameters = {"model": args.model} if args.model else {}
    with node_process("thermal_synth.synth_node", parameters) as synth:
        print(
            f"thermal_synth (model: {args.model or 'packaged default'}) starting; "
            f"waiting for /{topics.SYNTH_IMAGE}"
        )
        if spin_until(watcher, lambda: bool(watcher.frames), STARTUP_TIMEOUT_S, synth):
            watcher.frames.clear()
            watcher.heatmaps.clear()
            print(f"listening for {args.seconds:g} s")
            spin_for(watcher, args.seconds, synth)
    return synth.stderr_text


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


def summarise_frames(watcher: TopicWatcher, sheet: Path) -> str:
    arrivals = [t for t, _ in watcher.frames]
    last = watcher.frames[-1][1]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    heatmaps = {_stamp(msg): msg for _, msg in watcher.heatmaps}
    pairs = [(heatmaps[_stamp(msg)], msg) for _, msg in watcher.frames if _stamp(msg) in heatmaps]
    chosen = (
        [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, min(SHEET_PAIRS, len(pairs)))] if pairs else []
    )
    tiles, captions = [], []
    for heatmap, frame in chosen:
        rgb = image_to_array(frame)
        seconds = (_stamp(heatmap) - _stamp(chosen[0][0])) / 1e9
        tiles += [heatmap_tile(image_to_array(heatmap), rgb.shape[:2]), rgb]
        captions += [[f"heatmap +{seconds:.1f} s"], ["synth/image"]]
    sheet.write_bytes(encode_png(captioned_grid(tiles, captions, columns=4, caption_lines=1)))
    return "\n".join(
        [
            f"/{topics.SYNTH_IMAGE}: {len(arrivals)} messages at {rate:.2f} Hz, {last.encoding} "
            f"{last.height}x{last.width}, frame_id '{last.header.frame_id}', "
            f"{len(pairs)} matched to their heatmap by stamp",
            f"wrote {sheet}: {len(chosen)} heatmaps (what leaves the driver) beside the frames "
            "painted from them",
        ]
    )


def heatmap_tile(celsius: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A heatmap as a person sees one: inferno colours, cells kept square-edged (nearest)."""
    low, high = float(celsius.min()), float(celsius.max())
    unit = np.clip((celsius - low) / max(high - low, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(unit, cv2.COLORMAP_INFERNO)[:, :, ::-1]
    return cv2.resize(coloured, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _stamp(msg: Image) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
