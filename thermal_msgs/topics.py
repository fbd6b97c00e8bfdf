"""Topic names, encodings and frame ids every node agrees on.

Names are relative so a namespace or remapping moves a whole rig (`/left/thermal/image`, ...).
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

THERMAL_IMAGE: Final = "thermal/image"
"""Privacy-safe heatmap: 32FC1, degrees Celsius, low resolution (12x16 by default)."""

THERMAL_IMAGE_RAW: Final = "thermal/image_raw"
"""Full sensor resolution, 16UC1 centi-Kelvin. Opt-in (`publish_raw`), for recording training data."""

THERMAL_IMAGE_COLOR: Final = "thermal/image_color"
"""False-colour preview of thermal/image for people (rqt_image_view, RViz): rgb8, inferno, upscaled
with square-edged cells so it shows nothing the heatmap does not. Opt-in (`publish_color`)."""

CAMERA_IMAGE_RAW: Final = "camera/image_raw"
"""RGB camera frames (rgb8 from our camera and the sim driver; other colour encodings from other drivers,
see `IMAGE_ENCODINGS`); only exists while recording training pairs."""

CAMERA_PERSON_MASK: Final = "camera/person_mask"
"""Ground-truth person mask on the camera grid (mono8, 0 or 255, the RGB frame's stamp); sim only."""

PAIRS_THERMAL: Final = "/pairs/thermal"
PAIRS_RGB: Final = "/pairs/rgb"
PAIRS_MASK: Final = "/pairs/mask"
PAIRS_SESSION: Final = "/pairs/session"
"""Recorded pair bags: thermal (16UC1), RGB (in the camera's colour encoding) and, when the rig knows it,
the person mask share one header stamp per pair; the session labels are one std_msgs/String (JSON)."""

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
CAMERA_ENCODINGS: Final = (RGB_ENCODING, "bgr8", "rgba8", "bgra8", "yuv422_yuy2", "mono8")
"""What an RGB camera may send for recording: every colour or grey encoding the bag reader renders as
RGB (`thermal_msgs.image.to_rgb8`), as other camera drivers may send them. Never 16-bit or float: a
thermal frame on the camera topic would be trained on as a photo."""

IMAGE_ENCODINGS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        THERMAL_IMAGE: (THERMAL_ENCODING,),
        THERMAL_IMAGE_RAW: THERMAL_RAW_ENCODINGS,
        CAMERA_IMAGE_RAW: CAMERA_ENCODINGS,
        CAMERA_PERSON_MASK: (MASK_ENCODING,),
        SYNTH_IMAGE: (RGB_ENCODING,),
        PAIRS_THERMAL: THERMAL_RAW_ENCODINGS,
        PAIRS_RGB: CAMERA_ENCODINGS,
        PAIRS_MASK: (MASK_ENCODING,),
    }
)
"""The encodings each image topic may carry, live or in a bag: every subscriber and the bag reader
refuse anything else (`thermal_msgs.validation`). A participant's copy of a topic
(`stream_topic`) carries what the topic itself does."""

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
