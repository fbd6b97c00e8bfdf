"""The RGB side of training preprocessing: bring a camera frame into the thermal camera's view.

The generator learns to paint what the thermal sensor sees, so every RGB training image must
cover exactly the thermal field of view, at the model's resolution (96x128, 8x the 12x16
heatmap), pixel-averaged as in the paper. The simulated rig and the dataset builder for real
recordings both go through these functions, so a model cannot tell which one made its data
from the alignment step.

Coordinates follow OpenCV: pixel (x, y) = (column, row), integers at pixel centres. The 2x3
`rgb_to_thermal` affine maps RGB pixel coordinates onto thermal pixel coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

from thermal_driver.sources.rig.types import THERMAL_SHAPE

MODEL_IMAGE_SHAPE = (96, 128)
"""(rows, cols) of the generator's output: 8x the 12x16 heatmap."""
WARP_SUPERSAMPLING = 2
"""The warp renders at this multiple of the thermal grid before area averaging (see `_warp_supersampled`)."""
MASK_AREA_THRESHOLD = 0.5


def align_rgb(
    rgb: np.ndarray,
    rgb_to_thermal: np.ndarray,
    out_shape: tuple[int, int] = MODEL_IMAGE_SHAPE,
    thermal_shape: tuple[int, int] = THERMAL_SHAPE,
) -> np.ndarray:
    """(H, W, 3) uint8 camera frame -> (out_h, out_w, 3) uint8 covering the thermal field of view.

    Parts of the thermal view the RGB camera does not see come out black: a rig whose RGB camera
    is narrower than the Lepton shows it in the data instead of hiding it behind stretched edges.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    warped = _warp_supersampled(rgb, rgb_to_thermal, thermal_shape)
    return _area_resize(warped, out_shape)


def align_mask(
    mask: np.ndarray,
    rgb_to_thermal: np.ndarray,
    out_shape: tuple[int, int] = MODEL_IMAGE_SHAPE,
    thermal_shape: tuple[int, int] = THERMAL_SHAPE,
) -> np.ndarray:
    """(H, W) bool mask on the RGB grid -> (out_h, out_w) bool, set where it covers >= half a cell.

    Same geometry as `align_rgb`, so a mask stays registered with its image; a majority vote
    over the cell keeps thin outlines from growing or vanishing under the 2.5x reduction.
    """
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(f"mask must be (H, W) bool, got {mask.shape} {mask.dtype}")
    warped = _warp_supersampled(mask.astype(np.float32), rgb_to_thermal, thermal_shape)
    return _area_resize(warped, out_shape) >= MASK_AREA_THRESHOLD


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], the range the generator's tanh output lives in."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8, got {image.dtype}")
    return image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _warp_supersampled(
    image: np.ndarray, rgb_to_thermal: np.ndarray, thermal_shape: tuple[int, int]
) -> np.ndarray:
    """Warp onto a grid WARP_SUPERSAMPLING times finer than the thermal one, bilinearly.

    warpAffine samples the source at one point per output pixel (it has no area mode), so
    warping straight to 96x128 would skip most RGB pixels and alias edges and textures. At twice
    the thermal grid (240x320) the samples are at least as dense as a typical rig's RGB pixels
    within the thermal view, bilinear interpolation loses almost nothing, and the following
    INTER_AREA resize does the actual pixel averaging. The geometry is applied once, in floating
    point, so no second interpolation blurs the result.
    """
    affine = np.asarray(rgb_to_thermal, dtype=np.float64)
    if affine.shape != (2, 3):
        raise ValueError(f"rgb_to_thermal must be a 2x3 affine, got shape {affine.shape}")
    scale = WARP_SUPERSAMPLING
    # A fine pixel u covers thermal coordinate (u + 0.5) / scale - 0.5 (both grids centre-sampled),
    # so thermal x maps to fine scale * x + (scale - 1) / 2.
    to_fine = affine * scale
    to_fine[:, 2] += (scale - 1) / 2
    rows, cols = thermal_shape
    return cv2.warpAffine(
        image,
        to_fine,
        (cols * scale, rows * scale),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _area_resize(image: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    rows, cols = out_shape
    return cv2.resize(image, (cols, rows), interpolation=cv2.INTER_AREA)
