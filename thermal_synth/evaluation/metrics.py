"""The numbers of an evaluation as plain functions of arrays (no model, no files), and the
result that carries them with the pixels they were computed from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TARGETS = {
    "fid": ("<=", 9.6),
    "mae": ("<=", 0.027),
    "silhouette_iou": (">=", 0.85),
}
"""FID 9.6 is the video-conferencing paper's PAIR-LRT-Human figure, MAE the reference repo's
0.02733 (rounded down, so matching the reference is not quite enough), and the silhouette IoU
our own bar: below it the person is not where the heat is."""


def evenly_spread(count: int, limit: int) -> np.ndarray:
    """`min(count, limit)` distinct indices into `count` items, evenly spread and always the same.

    Consecutive frames of one session are near-copies, so the first `limit` would measure a few
    sessions; spreading the subset keeps every session in it.
    """
    if count <= 0 or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    if limit >= count:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(np.int64)


def target_met(metric: str, value: float | None) -> bool | None:
    """Whether `value` meets the metric's target; None when there is no value or no target."""
    if value is None or metric not in TARGETS:
        return None
    operator, bound = TARGETS[metric]
    return value <= bound if operator == "<=" else value >= bound


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a metric that could not be computed is null, never a bogus number."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def mean_person_colour(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 and (N, H, W) bool -> (3,) mean RGB on [0, 1] of the masked pixels
    (NaN when no pixel is masked)."""
    pixels = images[masks]
    if len(pixels) == 0:
        return np.full(3, np.nan)
    return pixels.astype(np.float64).mean(0) / 255.0


@dataclass(frozen=True)
class AppearanceRetention:
    """Does a code keep its appearance whatever pose it is painted in?

    For each grid cell (code c painted with the heatmap of frame j) the mean colour of the
    generated pixels inside frame j's true person mask is compared with every code's source
    colour (the mean person colour of the sessions the code was taken from).
    """

    distances: np.ndarray
    """(k, n, k): cell (c, j) -> RGB Euclidean distance on [0, 1] to source c'; NaN for cells
    whose heatmap frame has no person pixel."""

    @property
    def codes(self) -> int:
        return self.distances.shape[0]

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.distances).any(-1)

    def own_distance(self) -> float | None:
        own = np.einsum("cjc->cj", self.distances)[self.valid]
        return finite_or_none(float(own.mean())) if own.size else None

    def other_distance(self) -> float | None:
        if self.codes < 2:
            return None
        others = ~np.eye(self.codes, dtype=bool)[:, None, :].repeat(self.distances.shape[1], 1)
        cells = self.valid[..., None] & others
        return finite_or_none(float(self.distances[cells].mean())) if cells.any() else None

    def retention(self) -> float | None:
        """Fraction of cells whose nearest source is their own code's (chance: 1 / k)."""
        if self.codes < 2 or not self.valid.any():
            return None
        nearest = np.argmin(np.where(np.isnan(self.distances), np.inf, self.distances), axis=-1)
        own = np.arange(self.codes)[:, None].repeat(self.distances.shape[1], 1)
        return float((nearest == own)[self.valid].mean())


def appearance_retention(cell_colours: np.ndarray, source_colours: np.ndarray) -> AppearanceRetention:
    """(k, n, 3) cell colours and (k, 3) source colours, both mean RGB on [0, 1]."""
    if cell_colours.ndim != 3 or source_colours.shape != (cell_colours.shape[0], 3):
        raise ValueError(
            f"expected (k, n, 3) cells and (k, 3) sources, "
            f"got {cell_colours.shape} and {source_colours.shape}"
        )
    differences = cell_colours[:, :, None, :] - source_colours[None, None, :, :]
    return AppearanceRetention(np.sqrt((differences**2).sum(-1)))


@dataclass
class Disentanglement:
    """k codes x n heatmaps: row c paints code c in the pose of column j's frame."""

    code_names: list[str]
    code_frames: np.ndarray
    """(k, H, W, 3) uint8: a real frame of each code's appearance."""
    heatmap_labels: list[str]
    heatmap_frames: np.ndarray
    """(n, H, W, 3) uint8: the real frames whose heatmaps are used."""
    cells: np.ndarray
    """(k, n, H, W, 3) uint8 generated images."""
    retention: AppearanceRetention | None


@dataclass
class Evaluation:
    """The numbers (`metrics`, as written to metrics.json) and the pixels the figures show."""

    metrics: dict[str, Any]
    real: np.ndarray
    """(n, H, W, 3) uint8: the evaluated real frames."""
    reconstructions: np.ndarray
    """(n, H, W, 3) uint8: G(h, I(x))."""
    samples: np.ndarray
    """(n, H, W, 3) uint8: G(h, z), z ~ N(0, I)."""
    sample_mae: np.ndarray
    """(n,) per-frame reconstruction MAE on [0, 1]."""
    session_labels: list[str]
    """(n,) the session each frame comes from, for captions."""
    disentanglement: Disentanglement
    true_masks: np.ndarray | None = None
    real_masks: np.ndarray | None = None
    """Segmenter output on the real frames (the ceiling)."""
    generated_masks: np.ndarray | None = None
    silhouette_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Indices into the n frames whose session has a usable background estimate."""
