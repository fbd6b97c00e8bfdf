"""Topic names, encodings and frame ids every node agrees on.

Names are relative so a namespace or remapping moves a whole rig (`/left/thermal/image`, ...).
"""

from typing import Final

THERMAL_IMAGE: Final = "thermal/image"
"""Privacy-safe heatmap: 32FC1, degrees Celsius, low resolution (12x16 by default)."""

THERMAL_IMAGE_RAW: Final = "thermal/image_raw"
"""Full sensor resolution, 16UC1 centi-Kelvin. Opt-in (`publish_raw`), for recording training data."""

THERMAL_IMAGE_COLOR: Final = "thermal/image_color"
"""False-colour preview of thermal/image for people (rqt_image_view, RViz): rgb8, inferno, upscaled
with square-edged cells so it shows nothing the heatmap does not. Opt-in (`publish_color`)."""

CAMERA_IMAGE_RAW: Final = "camera/image_raw"
"""RGB camera frames (rgb8); only exists while recording training pairs."""

CAMERA_PERSON_MASK: Final = "camera/person_mask"
"""Ground-truth person mask on the camera grid (mono8, 0 or 255, the RGB frame's stamp); sim only."""

PAIRS_THERMAL: Final = "/pairs/thermal"
PAIRS_RGB: Final = "/pairs/rgb"
PAIRS_MASK: Final = "/pairs/mask"
PAIRS_SESSION: Final = "/pairs/session"
"""Recorded pair bags: thermal (16UC1), RGB (as the camera sent it) and, when the rig knows it, the
person mask share one header stamp per pair; the session labels are one std_msgs/String (JSON)."""

SYNTH_IMAGE: Final = "synth/image"
"""Generated RGB frames (rgb8)."""

DIAGNOSTICS: Final = "/diagnostics"
"""Absolute on purpose: rqt_robot_monitor and the aggregator only listen there."""

THERMAL_ENCODING: Final = "32FC1"
THERMAL_RAW_ENCODING: Final = "16UC1"
RGB_ENCODING: Final = "rgb8"
MASK_ENCODING: Final = "mono8"
THERMAL_RAW_ENCODINGS: Final = (THERMAL_RAW_ENCODING, "mono16")
"""What a recorded full-resolution thermal frame may carry: our 16UC1, or mono16 from other drivers."""

THERMAL_FRAME_ID: Final = "thermal_optical_frame"
"""REP-103 optical frame: z forward, x right, y down."""

CAMERA_FRAME_ID: Final = "camera_optical_frame"

DEFAULT_OUTPUT_SIZE: Final = (12, 16)
"""Height x width of the privacy-safe heatmap, the PAIR-LRT-Human grid."""


def stream_topic(topic: str, stream: str) -> str:
    """One participant's copy of a topic for multi-stream synthesis: `thermal/image` of `alice` is
    `thermal/alice/image`. The empty name is the topic itself (the single-user graph)."""
    if not stream:
        return topic
    head, _, tail = topic.rpartition("/")
    return f"{head}/{stream}/{tail}" if head else f"{stream}/{tail}"
