"""Person masks for recorded pairs: where the person is, on the model's 96x128 grid.

Training masks the heatmap reconstruction loss with them, so a radiator or a laptop in the
thermal view does not teach the model to paint heat it should ignore. A real recording has no
ground truth, so the mask comes from one of:

- `ground-truth`: the `/pairs/mask` topic a simulated recording carries (RGB grid), aligned
  exactly like its RGB frame (`preprocess.align_mask`);
- `mediapipe`: MediaPipe's selfie segmentation of the RGB frame, aligned the same way; an
  optional extra, because its wheel drags in a second OpenCV;
- `thermal`: a temperature threshold on the full-resolution thermal frame (below). It needs
  nothing but the recording, and on the simulated rig it reaches a median IoU of about 0.96 with
  the true person mask; it fails where a heat source at skin or clothing temperature touches the
  person (a laptop against an arm, a sun-warmed window behind a shoulder), which it then includes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from thermal_driver.sources.rig.types import THERMAL_SHAPE
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.engine.preprocess import align_mask

MASK_METHODS = ("auto", "ground-truth", "mediapipe", "thermal", "none")
ROOM_PERCENTILE = 20.0
"""The room's temperature is read at this percentile of the frame: a person at a desk covers a
quarter to a half of the Lepton's view, so the coldest fifth is walls, furniture and air."""
PERSON_ABOVE_ROOM_C = 3.5
"""Clothed skin reads at least this much above the room (the simulated rig's clothing sits 4-10 K
above it; 3.5 gave the best IoU over 120 simulated frames, 3.0 and 4.0 were within 0.01)."""
SKIN_CEILING_C = 37.5
"""Skin surface never exceeds core temperature: anything hotter is a radiator, lamp or laptop."""
CLEANUP_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
"""Opening with this removes sensor-noise specks and the warm rims a blurred hot object leaves."""
SELFIE_THRESHOLD = 0.5
IDENTITY_AFFINE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""A thermal-grid mask needs no warp: the RGB is already aligned to the thermal view."""
SEGMENTATION_EXTRA_HINT = "pip install 'thermal_synth[segmentation]'"


class MissingExtraError(RuntimeError):
    """An optional dependency the user asked for is not installed; the message says how to get it."""


@dataclass(frozen=True)
class ThermalMaskRule:
    """How `thermal_person_mask` separates the person from the room.

    `threshold_c` fixes the lower bound in degrees Celsius for every frame (a cold room where
    clothing reads barely above the walls, or a hot one); by default it follows each frame's own
    room temperature, so a recording that starts in a cold room and warms up needs no tuning.
    """

    threshold_c: float | None = None

    def __post_init__(self) -> None:
        if self.threshold_c is not None and not (
            math.isfinite(self.threshold_c) and -40.0 <= self.threshold_c < SKIN_CEILING_C
        ):
            raise ValueError(
                f"mask threshold must be a temperature in -40..{SKIN_CEILING_C} degC, got {self.threshold_c}"
            )

    def lower_bound_c(self, celsius: np.ndarray) -> float:
        if self.threshold_c is not None:
            return self.threshold_c
        return float(np.percentile(celsius, ROOM_PERCENTILE)) + PERSON_ABOVE_ROOM_C

    def to_json(self) -> dict[str, Any]:
        lower = (
            {"fixed_c": self.threshold_c}
            if self.threshold_c is not None
            else {"per_frame": f"percentile {ROOM_PERCENTILE:g} of the frame + {PERSON_ABOVE_ROOM_C:g} degC"}
        )
        return {
            "lower_bound": lower,
            "upper_bound_c": SKIN_CEILING_C,
            "cleanup": "3x3 opening, largest 4-connected component, holes filled",
            "resampling": "thermal_synth.engine.preprocess.align_mask with the identity (majority per cell)",
        }


def thermal_person_mask(
    thermal_centikelvin: np.ndarray, rule: ThermalMaskRule = ThermalMaskRule()
) -> np.ndarray:
    """(120, 160) uint16 centi-Kelvin -> (120, 160) bool: the person, on the thermal grid.

    Band threshold (warmer than the room, not hotter than skin), an opening against noise, then
    the largest connected region, which is the person in a one-person recording: smaller warm
    things (a mug, a phone charger) go. Holes are filled because glasses and a cold fringe of hair
    are still the person, and the loss should count the heat around them.
    """
    celsius = centikelvin_to_celsius(thermal_centikelvin)
    band = (celsius > rule.lower_bound_c(celsius)) & (celsius < SKIN_CEILING_C)
    opened = cv2.morphologyEx(band.astype(np.uint8), cv2.MORPH_OPEN, CLEANUP_KERNEL)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    if count <= 1:
        return np.zeros(celsius.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return _fill_holes(labels == largest)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Everything the outside cannot reach (4-connected, from the border) belongs to the region."""
    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0])
    return ~outside if count > 1 else mask.copy()


def to_model_grid(thermal_mask: np.ndarray) -> np.ndarray:
    """(120, 160) bool -> (96, 128) bool, by the same majority rule as every RGB-grid mask."""
    if thermal_mask.shape != THERMAL_SHAPE:
        raise ValueError(f"thermal mask must be {THERMAL_SHAPE}, got {thermal_mask.shape}")
    return align_mask(thermal_mask, IDENTITY_AFFINE)


class SelfieSegmenter:
    """MediaPipe's selfie segmentation, imported only when asked for.

    mediapipe ships opencv-contrib-python, which shadows our opencv-python-headless in the same
    environment; keeping the import lazy means nobody pays for that unless they choose the extra.
    """

    def __init__(self) -> None:
        try:
            import mediapipe
        except ImportError:
            raise MissingExtraError(
                f"--mask mediapipe needs the optional MediaPipe extra: {SEGMENTATION_EXTRA_HINT}"
            ) from None
        # General model (256x256 input): recordings are 4:3 more often than the 16:9 of model 1.
        self._model = mediapipe.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) bool person mask on the RGB grid."""
        result = self._model.process(np.ascontiguousarray(rgb))
        if result.segmentation_mask is None:
            return np.zeros(rgb.shape[:2], dtype=bool)
        return np.asarray(result.segmentation_mask) > SELFIE_THRESHOLD

    def close(self) -> None:
        self._model.close()
