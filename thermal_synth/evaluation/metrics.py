"""The numbers of an evaluation as plain functions of arrays (no model, no files), and the
result that carries them with the pixels they were computed from."""

from __future__ import annotations

import math
from collections import Counter
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


STRANGER_MIN_DIFFERENCE = 0.05
"""RGB distance on [0, 1] under which two photos' person colours count as one: such a pair cannot
say whose colours a painting kept."""


def stranger_colour_kept(
    photo_colours: np.ndarray, painted_colours: np.ndarray, min_difference: float = STRANGER_MIN_DIFFERENCE
) -> tuple[float | None, int]:
    """Does an appearance keep its colours on a stranger's body? (share, pairs counted)

    photo_colours (S, 3): each session's photo, mean colour of the person; painted_colours
    (S, S, 3): session a's code painted in a frame of session b, mean colour inside b's true person
    mask (NaN where b's frame shows no person). Of the ordered pairs a != b whose photos differ by
    `min_difference` or more, the share whose painting is nearer a's photo than b's (chance 0.5).
    The grid's appearance retention asks this of 4 codes x 6 poses, 24 cells; this asks it of every
    pair of sessions, against the colour a wrong painting would take: the stranger's own.
    """
    count = len(photo_colours)
    if photo_colours.shape != (count, 3) or painted_colours.shape != (count, count, 3):
        raise ValueError(
            f"expected (S, 3) photo and (S, S, 3) painted colours, "
            f"got {photo_colours.shape} and {painted_colours.shape}"
        )
    own = np.linalg.norm(painted_colours - photo_colours[:, None, :], axis=-1)
    stranger = np.linalg.norm(painted_colours - photo_colours[None, :, :], axis=-1)
    apart = np.linalg.norm(photo_colours[:, None, :] - photo_colours[None, :, :], axis=-1)
    counted = (
        (apart >= min_difference) & ~np.eye(count, dtype=bool) & np.isfinite(own) & np.isfinite(stranger)
    )
    if not counted.any():
        return None, 0
    return float((own < stranger)[counted].mean()), int(counted.sum())


BLEND_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Steps of an appearance switch the blends figure paints."""


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
    blends: np.ndarray
    """(pairs, fractions, H, W, 3) uint8: code 2i blended into code 2i + 1, one heatmap."""


@dataclass
class Evaluation:
    """The numbers (`metrics`, as written to metrics.json) and the pixels the figures show."""

    metrics: dict[str, Any]
    real: np.ndarray
    """(n, H, W, 3) uint8: the evaluated real frames."""
    reconstructions: np.ndarray
    """(n, H, W, 3) uint8: G(h, I(x))."""
    samples: np.ndarray
    """(n, H, W, 3) uint8: G(h, z), z ~ N(0, I) (spatial codes: another session's photo's code)."""
    sample_mae: np.ndarray
    """(n,) per-frame reconstruction MAE on [0, 1]."""
    session_labels: list[str]
    """(n,) the session each frame comes from, for captions."""
    disentanglement: Disentanglement
    product_path: ProductPathFrames
    product: np.ndarray
    """(n, H, W, 3) uint8: G(h, I(photo)), the code of the session's first frame (the product)."""
    true_masks: np.ndarray | None = None
    real_masks: np.ndarray | None = None
    """Segmenter output on the real frames (the ceiling)."""
    generated_masks: np.ndarray | None = None
    silhouette_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Indices into the n frames whose session has a usable background estimate."""


PRODUCT_PATH_CHUNK = 64
"""Frames compared at a time: the int16 differences of a whole long session would take gigabytes."""
NO_MASKS_REASON = "the dataset has no person_mask field to say which pixels are the person"
PERSON_KEYS = ("person_mae", "still_photo_person_mae", "pose_gain")
FLICKER_KEYS = ("flicker_painted", "flicker_real", "flicker_ratio")


@dataclass(frozen=True)
class ProductPath:
    """The product as a user meets it: one photo of a session turned into a code, every other frame
    of the session painted from its heatmap with that code, against the real frames.

    The baseline is the photo itself pasted for every frame: it has the right person and room, so
    only a model that also puts the person in the heatmap's pose beats it. Errors are MAE on [0, 1]
    pixels pooled over all frames of all sessions (sums over pixels divided by pixel counts), so a
    session whose masks are empty weighs nothing instead of making a mean of ratios NaN.
    """

    sessions: int
    """Sessions with at least one painted frame."""
    frames: int
    """Painted frames (the photos themselves are not painted)."""
    product_mae: float | None
    still_photo_mae: float | None
    person_mae: float | None
    """Inside each frame's true person mask."""
    still_photo_person_mae: float | None
    pose_gain: float | None
    """1 - person_mae / still_photo_person_mae: high only if the person is sharp and in the right
    place (a blurred person, or one left in the photo's pose, scores near 0 or below)."""
    motion_gain: float | None
    """The same ratio over the pixels the person entered or left since the photo (frame mask XOR
    photo mask), where the still photo is wrong by construction."""
    flicker_painted: float | None
    """Mean |painted[t] - painted[t - 1]| over consecutive painted frames of a session."""
    flicker_real: float | None
    flicker_ratio: float | None
    """flicker_painted / flicker_real: 1 moves as much as the real video, 0 is a still picture."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Why each null value is null."""

    def values(self) -> dict[str, Any]:
        """The numbers, as metrics.json's `product_path` section (the reasons go elsewhere)."""
        return {name: value for name, value in vars(self).items() if name != "unavailable"}


def previous_in_session(sessions: np.ndarray) -> np.ndarray:
    """(N,) session of each frame -> (N,) index of the same session's frame before it, -1 for its
    first; frames of different sessions may interleave."""
    order = np.argsort(sessions, kind="stable")
    same = sessions[order][1:] == sessions[order][:-1]
    previous = np.full(len(sessions), -1, np.int64)
    previous[order[1:][same]] = order[:-1][same]
    return previous


def product_path_metrics(
    photos: np.ndarray,
    frames: np.ndarray,
    painted: np.ndarray,
    sessions: np.ndarray,
    *,
    masks: np.ndarray | None = None,
    photo_masks: np.ndarray | None = None,
) -> ProductPath:
    """Product-path errors of painted frames against the real ones (see `ProductPath`).

    photos: (S, H, W, 3) uint8, one per session; frames, painted: (N, H, W, 3) uint8, each
    session's frames in their order; sessions: (N,) index into `photos` of each frame's session;
    masks, photo_masks: (N, H, W) and (S, H, W) bool true person masks, or both None. Pixel
    errors are summed as integers, so a perfect painting gives exactly 0.
    """
    _check_product_path_inputs(photos, frames, painted, sessions)
    _check_masks(masks, photo_masks, frames, photos)
    sums: Counter[str] = Counter()
    previous = previous_in_session(sessions)
    channels, frame_values = frames.shape[-1], int(np.prod(frames.shape[1:]))
    for start in range(0, len(frames), PRODUCT_PATH_CHUNK):
        chunk = slice(start, start + PRODUCT_PATH_CHUNK)
        real = frames[chunk].astype(np.int16)
        painted_error = np.abs(painted[chunk].astype(np.int16) - real)
        still_error = np.abs(photos[sessions[chunk]].astype(np.int16) - real)
        sums["painted"] += int(painted_error.sum(dtype=np.int64))
        sums["still"] += int(still_error.sum(dtype=np.int64))
        sums["values"] += real.size
        if masks is not None and photo_masks is not None:  # both or neither, as checked
            person = masks[chunk]
            regions = {"person": person, "motion": person ^ photo_masks[sessions[chunk]]}
            for region, selected in regions.items():
                sums[f"{region}_painted"] += int(painted_error[selected].sum(dtype=np.int64))
                sums[f"{region}_still"] += int(still_error[selected].sum(dtype=np.int64))
                sums[f"{region}_values"] += int(selected.sum()) * channels
        rows = start + np.flatnonzero(previous[chunk] >= 0)
        before = previous[rows]
        sums["flicker_painted"] += _absolute_difference_sum(painted[rows], painted[before])
        sums["flicker_real"] += _absolute_difference_sum(frames[rows], frames[before])
        sums["flicker_values"] += len(rows) * frame_values
    return _product_path(sums, len(np.unique(sessions)), len(frames), has_masks=masks is not None)


def _check_product_path_inputs(
    photos: np.ndarray, frames: np.ndarray, painted: np.ndarray, sessions: np.ndarray
) -> None:
    for name, images in (("photos", photos), ("frames", frames), ("painted", painted)):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"{name} must be (N, H, W, C) uint8, got {images.shape} {images.dtype}")
    if painted.shape != frames.shape or photos.shape[1:] != frames.shape[1:]:
        raise ValueError(
            f"photos {photos.shape}, frames {frames.shape} and painted {painted.shape} must be "
            "images of one size, one painted per frame"
        )
    if sessions.shape != (len(frames),) or not np.issubdtype(sessions.dtype, np.integer):
        raise ValueError(f"sessions must be ({len(frames)},) integers, got {sessions.shape} {sessions.dtype}")
    if len(sessions) and (sessions.min() < 0 or sessions.max() >= len(photos)):
        raise ValueError(f"sessions must index the {len(photos)} photos")


def _check_masks(
    masks: np.ndarray | None, photo_masks: np.ndarray | None, frames: np.ndarray, photos: np.ndarray
) -> None:
    if (masks is None) != (photo_masks is None):
        raise ValueError("masks and photo_masks go together: give both or neither")
    if masks is not None and photo_masks is not None:
        if masks.shape != frames.shape[:-1] or photo_masks.shape != photos.shape[:-1]:
            raise ValueError(
                f"masks {masks.shape} and photo_masks {photo_masks.shape} must match frames "
                f"{frames.shape[:-1]} and photos {photos.shape[:-1]}"
            )
        if masks.dtype != bool or photo_masks.dtype != bool:
            raise ValueError("masks must be bool")


def _absolute_difference_sum(first: np.ndarray, second: np.ndarray) -> int:
    return int(np.abs(first.astype(np.int16) - second).sum(dtype=np.int64))


def _mae(error_sum: int, values: int) -> float | None:
    """Summed absolute uint8 differences -> MAE on [0, 1]; None over no pixel at all."""
    return error_sum / (values * 255.0) if values else None


def _gain(painted_sum: int, still_sum: int) -> float | None:
    return 1.0 - painted_sum / still_sum if still_sum else None


def _product_path(sums: Counter[str], sessions: int, frames: int, *, has_masks: bool) -> ProductPath:
    unavailable: dict[str, str] = {}
    values: dict[str, float | None] = {
        "product_mae": _mae(sums["painted"], sums["values"]),
        "still_photo_mae": _mae(sums["still"], sums["values"]),
        "flicker_painted": _mae(sums["flicker_painted"], sums["flicker_values"]),
        "flicker_real": _mae(sums["flicker_real"], sums["flicker_values"]),
        "flicker_ratio": sums["flicker_painted"] / sums["flicker_real"] if sums["flicker_real"] else None,
        **dict.fromkeys((*PERSON_KEYS, "motion_gain")),
    }
    if has_masks:
        values |= {
            "person_mae": _mae(sums["person_painted"], sums["person_values"]),
            "still_photo_person_mae": _mae(sums["person_still"], sums["person_values"]),
            "pose_gain": _gain(sums["person_painted"], sums["person_still"]),
            "motion_gain": _gain(sums["motion_painted"], sums["motion_still"]),
        }
    if frames == 0:
        unavailable = dict.fromkeys(
            values, "every session of the split has one frame, its photo: none to paint"
        )
    else:
        if not has_masks:
            unavailable |= dict.fromkeys((*PERSON_KEYS, "motion_gain"), NO_MASKS_REASON)
        elif sums["person_values"] == 0:
            reason = "no painted frame shows the person (every true person mask is empty)"
            unavailable |= dict.fromkeys(PERSON_KEYS, reason)
        elif sums["person_still"] == 0:
            unavailable["pose_gain"] = "the still photo is exact inside every person mask: nothing to gain"
        if has_masks and sums["motion_values"] == 0:
            unavailable["motion_gain"] = "the person never moved since the photo (their masks are equal)"
        elif has_masks and sums["motion_still"] == 0:
            unavailable["motion_gain"] = "the still photo is exact wherever the person moved"
        if sums["flicker_values"] == 0:
            unavailable |= dict.fromkeys(FLICKER_KEYS, "no session has two painted frames to compare")
        elif sums["flicker_real"] == 0:
            unavailable["flicker_ratio"] = "the real frames never change from one to the next"
    return ProductPath(sessions, frames, **values, unavailable=unavailable)


@dataclass
class ProductPathFrames:
    """What the product-path figure shows of a few sessions: the photo, then some of the frames
    painted from its code beside the real ones."""

    session_labels: list[str]
    photos: np.ndarray
    """(k, H, W, 3) uint8."""
    positions: list[np.ndarray]
    """Per session: (c,) how many frames after the photo each shown frame is."""
    real: list[np.ndarray]
    """Per session: (c, H, W, 3) uint8."""
    painted: list[np.ndarray]
    """Per session: (c, H, W, 3) uint8, painted from the photo's code and the real frame's heatmap."""
