"""The two sensors of the rig: a Lepton 3.5 and a webcam a few centimetres beside it.

Both are distortion-free pinholes with parallel optical axes (+Z forward, +Y down, metres, the
Lepton at the origin). A fronto-parallel plane then maps into each image by a scale and a shift,
so the RGB-to-thermal mapping of such a plane is an exact affine: the person is drawn as one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thermal_driver.sources.rig.types import THERMAL_SHAPE

LEPTON_HFOV_DEG = 57.0
"""The focal length follows the horizontal FOV; an ideal pinhole then spans 68 of the 71 diagonal
degrees the datasheet quotes, the remainder being the real lens's barrel distortion."""
WEBCAM_HFOV_DEG = 62.0
WEBCAM_POSITION_M = (0.045, -0.012)
"""Beside and slightly above the Lepton, as when both sit on a monitor bezel."""


@dataclass(frozen=True)
class PlaneView:
    """Pixel = scale * metres + offset, for the plane at one depth seen by one camera."""

    scale: float
    offset_x: float
    offset_y: float


@dataclass(frozen=True)
class PinholeCamera:
    shape: tuple[int, int]
    focal_px: float
    position_m: tuple[float, float]

    @classmethod
    def from_horizontal_fov(
        cls, shape: tuple[int, int], hfov_deg: float, position_m: tuple[float, float] = (0.0, 0.0)
    ) -> PinholeCamera:
        focal = (shape[1] / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(shape, focal, position_m)

    @property
    def centre(self) -> tuple[float, float]:
        """Pixel centres sit on integer coordinates, as cv2's drawing functions assume."""
        return (self.shape[1] - 1) / 2.0, (self.shape[0] - 1) / 2.0

    def plane_view(self, depth_m: float) -> PlaneView:
        scale = self.focal_px / depth_m
        cx, cy = self.centre
        return PlaneView(scale, cx - scale * self.position_m[0], cy - scale * self.position_m[1])

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        cx, cy = self.centre
        return (
            cx + self.focal_px * (x - self.position_m[0]) / z,
            cy + self.focal_px * (y - self.position_m[1]) / z,
        )


def lepton_camera() -> PinholeCamera:
    return PinholeCamera.from_horizontal_fov(THERMAL_SHAPE, LEPTON_HFOV_DEG)


def webcam_camera(shape: tuple[int, int]) -> PinholeCamera:
    return PinholeCamera.from_horizontal_fov(shape, WEBCAM_HFOV_DEG, WEBCAM_POSITION_M)


def plane_affine(source: PlaneView, target: PlaneView) -> np.ndarray:
    """2x3 affine taking source pixels to target pixels for points on the shared plane."""
    ratio = target.scale / source.scale
    return np.array(
        [
            [ratio, 0.0, target.offset_x - ratio * source.offset_x],
            [0.0, ratio, target.offset_y - ratio * source.offset_y],
        ]
    )
