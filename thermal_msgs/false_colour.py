"""False-colour rendering of a heatmap, so people can look at what the driver publishes.

A 32FC1 grid of degrees Celsius shows as black or noise in image viewers; the preview must show the
same heatmap, nothing more, so this is the only place that turns one into colours.
"""

from __future__ import annotations

import cv2
import numpy as np

from thermal_msgs.image import validate_size

MAX_COLOR_SIZE = (1080, 1440)
"""Largest preview, [rows, cols]: a forgotten 1080x1440 rgb8 preview already costs ~40 MB/s at 8.7 Hz."""


def validate_color_size(color_size: tuple[int, int] | list[int]) -> tuple[int, int]:
    """Returns (rows, cols) or raises ValueError with the reason, for parameter callbacks."""
    return validate_size("color_size", color_size, MAX_COLOR_SIZE)


def false_colour(celsius: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) heatmap as C-contiguous rgb8 (rows, cols, 3), inferno from coldest to hottest cell.

    Each frame is stretched over the whole colour map, because a person a few degrees above the room
    should stand out whatever the room's temperature; a uniform frame comes out uniformly dark instead
    of dividing by zero. Upscaling is nearest-neighbour: every heatmap cell stays a square-edged block,
    so the preview never looks sharper than what actually leaves the driver.
    """
    low, high = float(celsius.min()), float(celsius.max())
    unit = np.clip((celsius - low) / max(high - low, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(unit, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
