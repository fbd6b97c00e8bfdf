"""What a running conference graph looks like, for a terminal and a file: the runner's `--preview`.

It listens like any other consumer would (sensor-data QoS, its own node), so what it reports is
what a user's node sees. A terminal cannot show images, so the painted frames go to a PNG beside
the heatmaps they were painted from (matched by header stamp) and to an MP4 at the rate they
arrived.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image

from thermal_msgs import topics
from thermal_msgs.false_colour import false_colour
from thermal_msgs.image import image_to_array
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_msgs.units import stamp_ns
from thermal_synth.bringup.runner import Observer
from thermal_synth.common.contact_sheet import captioned_grid, encode_png

SHADES = " .:-=+*#%@"
SHEET_PAIRS = 6
VIDEO_CODEC = "mp4v"
"""Written by every OpenCV build (no H.264 encoder in the pip wheels); VLC, mpv and ffplay play it."""


def render_heatmap(celsius: np.ndarray) -> str:
    """Two characters per cell keep the 4:3 aspect of the sensor in a terminal."""
    low, high = float(celsius.min()), float(celsius.max())
    levels = np.clip((celsius - low) / max(high - low, 1e-6) * (len(SHADES) - 1), 0, len(SHADES) - 1)
    rows = ("".join(SHADES[int(v)] * 2 for v in row) for row in np.rint(levels).astype(int))
    return "\n".join(f"  |{row}|" for row in rows) + f"\n  {low:.1f} C ' ' .. '@' {high:.1f} C"


class Preview(Observer):
    def __init__(self, context: Context) -> None:
        self.node = Node("thermal_synth_preview", context=context)
        self.heatmaps: list[tuple[float, Image]] = []
        self.frames: list[tuple[float, Image]] = []
        self.raw_frames = 0
        subscribe = self.node.create_subscription
        subscribe(Image, topics.THERMAL_IMAGE, self._on_heatmap, STREAM_SUBSCRIBER_QOS)
        subscribe(Image, topics.THERMAL_IMAGE_RAW, self._on_raw, STREAM_SUBSCRIBER_QOS)
        subscribe(Image, topics.SYNTH_IMAGE, self._on_frame, STREAM_SUBSCRIBER_QOS)

    def ready(self) -> bool:
        return bool(self.frames)

    def restart(self) -> None:
        """Keeps the two newest heatmaps: the next frames are painted from them (or their blend)."""
        del self.heatmaps[:-2]
        self.frames.clear()

    def _on_heatmap(self, msg: Image) -> None:
        self.heatmaps.append((time.monotonic(), msg))

    def _on_raw(self, _msg: Image) -> None:
        self.raw_frames += 1

    def _on_frame(self, msg: Image) -> None:
        self.frames.append((time.monotonic(), msg))

    def matched_frames(self) -> int:
        """Frames carrying a heatmap's stamp: painted from it. The rest (output_rate_hz > 0) were
        painted from a blend of two heatmaps and carry a stamp between theirs."""
        heatmap_stamps = {stamp_ns(msg.header.stamp) for _, msg in self.heatmaps}
        return sum(stamp_ns(msg.header.stamp) in heatmap_stamps for _, msg in self.frames)

    def summary(self) -> str:
        lines = []
        if self.heatmaps:
            last = self.heatmaps[-1][1]
            celsius = image_to_array(last)
            lines += [
                f"/{topics.THERMAL_IMAGE}: {len(self.heatmaps)} messages at {_rate(self.heatmaps):.2f} Hz, "
                f"{last.encoding} {last.height}x{last.width}, frame_id '{last.header.frame_id}', "
                f"{celsius.min():.1f}..{celsius.max():.1f} degC",
                f"/{topics.THERMAL_IMAGE_RAW}: {self.raw_frames} messages (off unless publish_raw:=true)",
                "latest heatmap (all that leaves the driver: the person and any warm objects in the room):",
                render_heatmap(celsius),
            ]
        if self.frames:
            last = self.frames[-1][1]
            matched = self.matched_frames()
            lines.append(
                f"/{topics.SYNTH_IMAGE}: {len(self.frames)} messages at {_rate(self.frames):.2f} Hz, "
                f"{last.encoding} {last.height}x{last.width}, frame_id '{last.header.frame_id}', "
                f"{matched} matched to their heatmap by stamp"
                + (
                    f", {len(self.frames) - matched} between heatmap stamps (output_rate_hz > 0)"
                    if matched < len(self.frames)
                    else ""
                )
            )
        return "\n".join(lines)

    def frames_with_heatmaps(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(stamp, heatmap, frame), each frame beside the newest heatmap at or before its stamp:
        its own heatmap, or for an interpolated in-between frame the one it was blended from."""
        heatmaps = sorted(
            ((stamp_ns(msg.header.stamp), msg) for _, msg in self.heatmaps), key=lambda item: item[0]
        )
        stamps = [stamp for stamp, _ in heatmaps]
        pairs = []
        for _, frame in self.frames:
            index = int(np.searchsorted(stamps, stamp_ns(frame.header.stamp), side="right")) - 1
            if index >= 0:
                pairs.append(
                    (stamp_ns(frame.header.stamp), image_to_array(heatmaps[index][1]), image_to_array(frame))
                )
        return pairs

    def write(self, sheet: Path) -> list[Path]:
        """The PNG contact sheet and, beside it, the MP4 of every frame; returns what was written."""
        pairs = self.frames_with_heatmaps()
        if not pairs:
            raise ValueError(f"no {topics.SYNTH_IMAGE} frame arrived after a heatmap: nothing to preview")
        chosen = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, min(SHEET_PAIRS, len(pairs)))]
        tiles, captions = [], []
        for stamp, heatmap, rgb in chosen:
            tiles += [false_colour(heatmap, rgb.shape[:2]), rgb]
            captions += [[f"heatmap +{(stamp - chosen[0][0]) / 1e9:.1f} s"], ["synth/image"]]
        sheet.write_bytes(encode_png(captioned_grid(tiles, captions, columns=4, caption_lines=1)))
        video = sheet.with_suffix(".mp4")
        rows, cols = pairs[0][2].shape[:2]
        writer = cv2.VideoWriter(
            str(video), cv2.VideoWriter_fourcc(*VIDEO_CODEC), max(_rate(self.frames), 1.0), (2 * cols, rows)
        )
        try:
            for _, heatmap, rgb in pairs:
                side_by_side = np.hstack([false_colour(heatmap, (rows, cols)), cv2.resize(rgb, (cols, rows))])
                writer.write(cv2.cvtColor(side_by_side, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        return [sheet, video]


def _rate(arrivals: list[tuple[float, Image]]) -> float:
    if len(arrivals) < 2:
        return 0.0
    return (len(arrivals) - 1) / (arrivals[-1][0] - arrivals[0][0])
