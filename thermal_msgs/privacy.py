"""The privacy downsampling: the one function that decides what a thermal image may reveal.

The driver applies it to every live frame and the dataset builder to every training frame, so
the model is trained on exactly what it sees live. It is a Gaussian blur followed by pixel
(area) averaging to the output grid, both expressed as small matrices: `M_h @ frame @ M_w.T`.
That is exact, deterministic, cheap (a 12x120 and a 160x16 matrix for a Lepton frame) and
works unchanged on batches.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from thermal_msgs.image import validate_size

MAX_OUTPUT_SIZE = (24, 32)
"""Largest grid we call privacy-safe: twice the default 12x16 per axis. Person detectors fail
completely at 16x12 (PAIR-LRT-Human, Table II) yet reach 80 % at 160x120; full resolution is what
`publish_raw` is for, deliberately opt-in."""


MIN_BLUR_SIGMA_PX = 1e-3
"""Below this a Gaussian is the identity to float64 precision (and squaring 1/sigma would overflow)."""


def validate_output_size(output_size: tuple[int, int] | list[int]) -> tuple[int, int]:
    """Returns (height, width) or raises ValueError with the reason, for parameter callbacks."""
    return validate_size(
        "output_size",
        output_size,
        MAX_OUTPUT_SIZE,
        beyond=" (larger grids are not privacy-safe); use publish_raw for full-resolution recording",
    )


def validate_blur_sigma(blur_sigma: float) -> float:
    if not math.isfinite(blur_sigma) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be a finite number >= 0 (output cells), got {blur_sigma}")
    return float(blur_sigma)


def privacy_downsample(
    frame: np.ndarray, output_size: tuple[int, int], blur_sigma: float = 1.0
) -> np.ndarray:
    """Blur then area-average `frame` (H, W) or a batch (N, H, W) to `output_size`, as float32.

    `blur_sigma` is in output cells, so one value means the same thing for a 120x160 Lepton
    (1.0 = 10 px, the authors' live-demo setting) and an 8x8 Grid-EYE. Units are preserved:
    pass degrees Celsius, get degrees Celsius.
    """
    if frame.ndim not in (2, 3):
        raise ValueError(f"frame must be (H, W) or (N, H, W), got shape {frame.shape}")
    out_h, out_w = validate_output_size(output_size)
    sigma = validate_blur_sigma(blur_sigma)
    in_h, in_w = frame.shape[-2:]
    rows = _resampling_matrix(in_h, out_h, sigma)
    cols = _resampling_matrix(in_w, out_w, sigma)
    # float64 inside: a uniform scene then comes out exactly uniform and never leaves the input range.
    return (rows @ frame.astype(np.float64, copy=False) @ cols.T).astype(np.float32)


@lru_cache(maxsize=32)
def _resampling_matrix(size_in: int, size_out: int, sigma_cells: float) -> np.ndarray:
    """(size_out, size_in) matrix = area averaging @ Gaussian blur along one axis."""
    scale = size_in / size_out
    matrix = _area_matrix(size_in, size_out) @ _blur_matrix(size_in, sigma_cells * scale)
    matrix.setflags(write=False)
    return matrix


def _area_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Each output cell is the mean of the input span it covers, fractional pixels weighted by overlap."""
    edges = np.linspace(0.0, size_in, size_out + 1)
    pixel_starts = np.arange(size_in, dtype=np.float64)
    overlap = np.clip(
        np.minimum(edges[1:, None], pixel_starts + 1) - np.maximum(edges[:-1, None], pixel_starts), 0, None
    )
    return overlap / overlap.sum(axis=1, keepdims=True)


def _blur_matrix(size: int, sigma_px: float) -> np.ndarray:
    """Gaussian blur with mirrored edges (d c b a | a b c d), so a uniform scene stays uniform."""
    if sigma_px < MIN_BLUR_SIGMA_PX:
        return np.eye(size)
    radius = math.ceil(3 * sigma_px)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel /= kernel.sum()
    source = np.arange(size)[:, None] + offsets[None, :]
    period = source % (2 * size)
    mirrored = np.where(period >= size, 2 * size - 1 - period, period)
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.repeat(np.arange(size), offsets.size), mirrored.ravel()), np.tile(kernel, size))
    return matrix
