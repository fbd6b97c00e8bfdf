"""Where the RGB camera's frame lies in the thermal camera's view: the `rgb_to_thermal` affine.

Training pairs must show the same scene in both halves (`preprocess.align_rgb`), and a user's
webcam sits a few centimetres beside the Lepton with its own lens, so its frame is shifted and
scaled against the thermal one. `thermal-synth dataset align` estimates that mapping from a few
recorded pairs; `dataset build` applies it. Without an estimate the builder assumes co-located
cameras with equal fields of view (`full_frame_alignment`).

How the estimate works, and why:
- Only the person's outline is compared. A thermal image and a photo share little (the photo's
  wallpaper, shirt pattern and bookshelf are invisible in thermal), but the outline of a warm
  person against a cooler room is an edge in both. It is also the plane that matters: the
  cameras sit side by side, so the background (further away) has a different parallax than the
  person, and aligning the background would misplace the person by several pixels.
- Edges are compared by direction, not strength (normalised gradient fields): the thermal and
  the RGB contrast of an edge are unrelated, even of opposite sign, but edges of the same object
  run the same way. Score = mean over the outline band of cos^2(angle between the gradients),
  each gradient damped by the image's median gradient so flat noise counts for nothing.
- Search: exhaustive at half the thermal resolution over scale (0.6-2.4x the equal-field-of-view
  scale, 41 steps) and every shift up to 30 % of the frame; the three best distinct peaks are
  refined by a pattern search on the full grid and the winner down to 0.05 px. Scale and shift
  only (square pixels, parallel cameras): half a degree of residual rotation moves the frame's
  corners by under a pixel; a rig turned further needs a rotation term this does not estimate.
- Several pairs, preferably from several recordings, are scored together: one pose can fit
  two alignments almost equally well (the person's shoulders are nearly straight lines), many
  poses cannot. On the simulated rig, 4 sessions x 12 pairs land a median 1.0 thermal pixel from
  the true mapping at the frame's corners (90th percentile 1.8, worst 2.6 over 30 sets), where
  the full-frame default is 18 pixels off.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from thermal_driver.sources.rig.types import THERMAL_SHAPE
from thermal_msgs.topics import PAIRS_RGB, PAIRS_THERMAL
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.common.json_files import check_format, read_json, write_text_atomic
from thermal_synth.dataset.masks import ThermalMaskRule, thermal_person_mask
from thermal_synth.engine.preprocess import align_rgb
from thermal_synth.recording.bags import BagReadError, PairBagReader

ALIGNMENT_FORMAT = "thermal_synth.alignment"
ALIGNMENT_VERSION = 1
FULL_FRAME_METHOD = "full-frame default: RGB frame scaled onto the thermal frame (assumes co-located cameras)"
ESTIMATED_METHOD = "person-outline gradient-direction match (scale + shift)"
MIN_PERSON_FRACTION = 0.03
MAX_PERSON_FRACTION = 0.8
"""A pair helps only if a person is in view and not so close that the outline leaves the frame."""
LOW_SCORE = 0.5
"""Simulated recordings score 0.62-0.84 at the estimate (30 sets of 4 x 12 pairs), and 0.34-0.42
when every RGB frame is paired with another recording's thermal frame: below 0.5 it is suspect."""
LOW_MARGIN = 0.1
"""How far the best other peak (corners moved >= AMBIGUITY_RADIUS_PX) stays below the winner,
relatively: 0.23-0.46 on simulated recordings, under 0.06 with mismatched frames. Below 0.1 the
pairs do not pin the mapping down: more pairs, from recordings where the person moves, help."""
AMBIGUITY_RADIUS_PX = 4.0
MAX_RGB_SIDE = 10_000
MAX_METHOD_CHARS = 200
NGF_BLUR_SIGMA = 1.0
OUTLINE_BAND_PX = 3
SUBPIXEL_STEP_PX = 0.05
PEAK_COMPARISON_STEP_PX = 0.5
REFINED_PEAKS = 3


class AlignmentError(ValueError):
    """An alignment file that cannot be used, or pairs an alignment cannot be estimated from."""


@dataclass(frozen=True)
class Alignment:
    """The 2x3 `rgb_to_thermal` affine for one RGB frame size, and where it came from."""

    rgb_size: tuple[int, int]
    """(rows, cols) of the RGB frames this mapping is for."""
    rgb_to_thermal: tuple[tuple[float, float, float], tuple[float, float, float]]
    method: str
    score: float | None = None
    """Outline agreement at the estimate (0..1); None for the assumed default."""
    margin: float | None = None
    """How much better than the best clearly different alignment (relative); None for the default."""
    pairs_used: int = 0

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.rgb_to_thermal, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ALIGNMENT_FORMAT,
            "version": ALIGNMENT_VERSION,
            "coordinates": "pixel centres at integers, x = column, y = row; sizes are [rows, cols]",
            "rgb_size": list(self.rgb_size),
            "thermal_size": list(THERMAL_SHAPE),
            "rgb_to_thermal": [list(row) for row in self.rgb_to_thermal],
            "score": self.score,
            "margin": self.margin,
            "method": self.method,
            "pairs_used": self.pairs_used,
        }


def full_frame_alignment(rgb_size: tuple[int, int]) -> Alignment:
    """The RGB frame's edges on the thermal frame's edges, per axis (pixel centres kept centred)."""
    rows, cols = rgb_size
    scale_x, scale_y = THERMAL_SHAPE[1] / cols, THERMAL_SHAPE[0] / rows
    return Alignment(
        rgb_size=(rows, cols),
        rgb_to_thermal=(
            (scale_x, 0.0, 0.5 * scale_x - 0.5),
            (0.0, scale_y, 0.5 * scale_y - 0.5),
        ),
        method=FULL_FRAME_METHOD,
    )


def load_alignment(path: Path) -> Alignment:
    """An alignment file, checked field by field: it may come from another machine or person."""
    data = check_format(
        read_json(Path(path), AlignmentError), ALIGNMENT_FORMAT, ALIGNMENT_VERSION, path, AlignmentError
    )
    try:
        rgb_size = _size(data["rgb_size"], "rgb_size")
        thermal_size = _size(data["thermal_size"], "thermal_size")
        rows = data["rgb_to_thermal"]
        if not (
            isinstance(rows, list)
            and len(rows) == 2
            and all(isinstance(r, list) and len(r) == 3 for r in rows)
        ):
            raise AlignmentError("rgb_to_thermal must be a 2x3 list of numbers")
        affine = tuple(tuple(_finite(value, "rgb_to_thermal") for value in row) for row in rows)
        method = data["method"]
        if not isinstance(method, str) or len(method) > MAX_METHOD_CHARS:
            raise AlignmentError(f"method must be a string of at most {MAX_METHOD_CHARS} characters")
        score = _optional_finite(data.get("score"), "score")
        margin = _optional_finite(data.get("margin"), "margin")
        pairs_used = data.get("pairs_used", 0)
        if not isinstance(pairs_used, int) or isinstance(pairs_used, bool) or pairs_used < 0:
            raise AlignmentError("pairs_used must be a non-negative integer")
    except KeyError as missing:
        raise AlignmentError(f"{path}: missing field {missing}") from None
    except AlignmentError as problem:
        raise AlignmentError(f"{path}: {problem}") from None
    if thermal_size != THERMAL_SHAPE:
        raise AlignmentError(
            f"{path}: made for a {thermal_size} thermal frame; this build needs {THERMAL_SHAPE}"
        )
    _check_plausible(np.array(affine), rgb_size, path)
    return Alignment(rgb_size, affine, method, score, margin, pairs_used)  # type: ignore[arg-type]


def _size(value: Any, name: str) -> tuple[int, int]:
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_RGB_SIDE for v in value)
    ):
        raise AlignmentError(f"{name} must be [rows, cols], two integers in 1..{MAX_RGB_SIDE}")
    return value[0], value[1]


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AlignmentError(f"{name} holds {value!r}, not a finite number")
    return float(value)


def _optional_finite(value: Any, name: str) -> float | None:
    return None if value is None else _finite(value, name)


def _check_plausible(affine: np.ndarray, rgb_size: tuple[int, int], where: object) -> None:
    """A mapping that mirrors, shears or misses the thermal view is a broken file, not a rig."""
    linear = affine[:, :2]
    scales = np.linalg.svd(linear, compute_uv=False)
    if np.linalg.det(linear) <= 0 or scales.min() < 1e-3 or scales.max() / scales.min() > 4:
        raise AlignmentError(f"{where}: rgb_to_thermal {affine.tolist()} is not a plausible camera mapping")
    rows, cols = rgb_size
    corners = np.array([[-0.5, -0.5], [cols - 0.5, -0.5], [-0.5, rows - 0.5], [cols - 0.5, rows - 0.5]])
    mapped = corners @ linear.T + affine[:, 2]
    low, high = mapped.min(axis=0), mapped.max(axis=0)
    if (
        high[0] <= -0.5
        or high[1] <= -0.5
        or low[0] >= THERMAL_SHAPE[1] - 0.5
        or low[1] >= THERMAL_SHAPE[0] - 0.5
    ):
        raise AlignmentError(f"{where}: rgb_to_thermal puts the RGB frame entirely outside the thermal view")


def write_alignment(path: Path, alignment: Alignment) -> None:
    write_text_atomic(Path(path), json.dumps(alignment.to_json(), indent=2) + "\n")


# --- estimation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignmentSearch:
    """The search space; the defaults cover common webcams beside a Lepton 3.5 (57 deg)."""

    scale_range: tuple[float, float] = (0.6, 2.4)
    """Relative to equal fields of view: an RGB lens of about 36 to 100 deg horizontal."""
    scale_steps: int = 41
    max_shift: float = 0.3
    """Largest offset of the RGB view's centre, as a fraction of the thermal frame per axis."""
    coarse_level: float = 0.5


@dataclass(frozen=True)
class AlignmentEstimate:
    alignment: Alignment
    warnings: tuple[str, ...]


@dataclass
class _Pair:
    """One pair, prepared once: thermal outline weights and edge directions, RGB luminance."""

    weights: np.ndarray
    thermal_fields: np.ndarray
    gray: np.ndarray

    @cached_property
    def weighted_fields(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Thermal fields times outline weights, with the sqrt(2) of the cross term squared in."""
        weighted = self.thermal_fields * self.weights[..., None]
        return weighted[..., 0], np.float32(math.sqrt(2)) * weighted[..., 1], weighted[..., 2]

    @cached_property
    def total_weight(self) -> float:
        return float(self.weights.sum())


def shows_a_person(thermal_centikelvin: np.ndarray) -> bool:
    fraction = float(thermal_person_mask(thermal_centikelvin).mean())
    return MIN_PERSON_FRACTION <= fraction <= MAX_PERSON_FRACTION


def estimate_alignment(
    thermal_frames: Sequence[np.ndarray],
    rgb_frames: Sequence[np.ndarray],
    search: AlignmentSearch = AlignmentSearch(),
) -> AlignmentEstimate:
    """The `rgb_to_thermal` that best lays each RGB frame's edges on its thermal person outline."""
    if len(thermal_frames) != len(rgb_frames):
        raise ValueError(f"{len(thermal_frames)} thermal frames but {len(rgb_frames)} RGB frames")
    if not thermal_frames:
        raise AlignmentError("no pair shows a warm person, so there is nothing to align on")
    sizes = {rgb.shape[:2] for rgb in rgb_frames}
    if len(sizes) != 1:
        raise AlignmentError(
            f"RGB frames come in several sizes {sorted(sizes)}; align one camera setting at a time"
        )
    rgb_size = next(iter(sizes))
    pairs = [_prepare(thermal, rgb) for thermal, rgb in zip(thermal_frames, rgb_frames, strict=True)]
    peaks = _coarse_search(pairs, rgb_size, search)
    margin = (peaks[0][0] - peaks[1][0]) / peaks[0][0] if len(peaks) > 1 and peaks[0][0] > 0 else 1.0
    scale_step = (search.scale_range[1] / search.scale_range[0]) ** (1 / max(search.scale_steps - 1, 1))
    score, (scale, shift_x, shift_y) = _refine(pairs, peaks, scale_step, 1.0 / search.coarse_level)
    alignment = Alignment(
        rgb_size=rgb_size,
        rgb_to_thermal=((scale, 0.0, shift_x), (0.0, scale, shift_y)),
        method=ESTIMATED_METHOD,
        score=round(score, 4),
        margin=round(margin, 4),
        pairs_used=len(pairs),
    )
    warnings = []
    if score < LOW_SCORE:
        warnings.append(
            f"low outline agreement {score:.2f} (good recordings reach 0.6-0.9): check the preview; "
            "are the thermal and RGB frames really of the same moment and scene?"
        )
    if margin < LOW_MARGIN:
        warnings.append(
            f"ambiguous: a clearly different alignment scores within {100 * margin:.1f} % of the best; "
            "use more pairs, from recordings where the person moves"
        )
    return AlignmentEstimate(alignment, tuple(warnings))


def _prepare(thermal_centikelvin: np.ndarray, rgb: np.ndarray) -> _Pair:
    celsius = centikelvin_to_celsius(thermal_centikelvin)
    outline = cv2.morphologyEx(
        thermal_person_mask(thermal_centikelvin, ThermalMaskRule()).astype(np.uint8),
        cv2.MORPH_GRADIENT,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * OUTLINE_BAND_PX + 1,) * 2),
    ).astype(np.float32)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return _Pair(outline, _direction_fields(celsius), gray)


def _direction_fields(image: np.ndarray, damping: float | None = None) -> np.ndarray:
    """(rows, cols, 3): gx^2, sqrt(2) gx gy, gy^2 of the damped unit gradient.

    The dot product of two such fields is cos^2 of the angle between the gradients (times how
    much each stands out of the noise), so sliding correlation (cv2.matchTemplate) scores every
    shift at once. `damping` (a squared gradient) defaults to the image's median one.
    """
    gx, gy = _gradients(image)
    squared = gx * gx + gy * gy
    norm = squared + np.float32(_damping(squared) if damping is None else damping)
    return np.dstack([gx * gx / norm, np.float32(math.sqrt(2)) * gx * gy / norm, gy * gy / norm])


def _gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blurred = cv2.GaussianBlur(np.asarray(image, dtype=np.float32), (0, 0), NGF_BLUR_SIGMA)
    return cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)


def _damping(squared_gradient: np.ndarray) -> float:
    return float(np.median(squared_gradient)) + 1e-6


def _coarse_search(
    pairs: Sequence[_Pair], rgb_size: tuple[int, int], search: AlignmentSearch
) -> list[tuple[float, np.ndarray]]:
    """The best distinct peaks (score, [scale, x shift, y shift]) of the coarse grid, best first.

    Distinct: their thermal-frame corners lie more than AMBIGUITY_RADIUS_PX apart, and each is a
    peak of its own (points on the slope of a better peak are not alternatives).
    """
    level = search.coarse_level
    rows, cols = round(THERMAL_SHAPE[0] * level), round(THERMAL_SHAPE[1] * level)
    pad_rows, pad_cols = round(rows * search.max_shift), round(cols * search.max_shift)
    templates = []
    for pair in pairs:
        weights = cv2.resize(pair.weights, (cols, rows), interpolation=cv2.INTER_AREA)
        thermal = cv2.resize(pair.thermal_fields, (cols, rows), interpolation=cv2.INTER_AREA)
        templates.append(thermal * weights[..., None])
    total_weight = float(sum(pair.weights.sum() for pair in pairs)) * level * level
    if total_weight <= 0:
        raise AlignmentError("no pair shows a person's outline, so there is nothing to align on")
    equal_fov = THERMAL_SHAPE[1] / rgb_size[1]
    low, high = search.scale_range
    candidates = []
    for relative in np.geomspace(low, high, search.scale_steps):
        scale = equal_fov * relative * level
        small_size = (max(1, round(rgb_size[1] * scale)), max(1, round(rgb_size[0] * scale)))
        canvas_shape = (rows + 2 * pad_rows, cols + 2 * pad_cols)
        top = (canvas_shape[0] - small_size[1]) // 2
        left = (canvas_shape[1] - small_size[0]) // 2
        response = np.zeros((2 * pad_rows + 1, 2 * pad_cols + 1), np.float32)
        for pair, template in zip(pairs, templates, strict=True):
            small = cv2.resize(pair.gray, small_size, interpolation=cv2.INTER_AREA)
            canvas = _place(_direction_fields(small), canvas_shape, top, left)
            response += cv2.matchTemplate(canvas, template, cv2.TM_CCORR)
        kx, ky = small_size[0] / rgb_size[1], small_size[1] / rgb_size[0]
        # Template at (ix, iy): coarse thermal pixel u sees canvas pixel u + ix, which is RGB pixel
        # x with (x + 0.5) kx - 0.5 + left = u + ix; full thermal pixel is (u + 0.5) / level - 0.5.
        shift_x = (0.5 * kx + left - np.arange(response.shape[1])) / level - 0.5
        shift_y = (0.5 * ky + top - np.arange(response.shape[0])) / level - 0.5
        candidates.append((response / total_weight, (kx + ky) / (2 * level), shift_x, shift_y))
    volume = np.stack([response for response, *_ in candidates])
    is_peak = _local_maxima(volume)
    locations = np.argwhere(is_peak)
    peaks: list[tuple[float, np.ndarray]] = []
    for index in np.argsort(volume[is_peak], kind="stable")[::-1]:
        layer, row, column = (int(v) for v in locations[index])
        _, scale, shift_x, shift_y = candidates[layer]
        params = np.array([scale, shift_x[column], shift_y[row]])
        if all(_corner_distance(params, kept) > AMBIGUITY_RADIUS_PX for _, kept in peaks):
            peaks.append((float(volume[layer, row, column]), params))
        if len(peaks) == REFINED_PEAKS:
            break
    return peaks


def _local_maxima(volume: np.ndarray) -> np.ndarray:
    """(scales, rows, cols) bool: no neighbour in scale or shift scores higher. A competitor must
    be a peak of its own: points on the slope of the winning peak are not alternatives."""
    kernel = np.ones((3, 3), np.uint8)
    spread = np.stack([cv2.dilate(layer, kernel) for layer in volume])
    neighbourhood = spread.copy()
    neighbourhood[1:] = np.maximum(neighbourhood[1:], spread[:-1])
    neighbourhood[:-1] = np.maximum(neighbourhood[:-1], spread[1:])
    return volume >= neighbourhood


def _place(image: np.ndarray, shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    """`image` on a zero canvas with its corner at (top, left), cropped where it sticks out."""
    canvas = np.zeros((*shape, image.shape[2]), np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + image.shape[0], shape[0]), min(left + image.shape[1], shape[1])
    canvas[y0:y1, x0:x1] = image[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


def _corner_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart (thermal px) two [scale, x shift, y shift] mappings put the thermal frame's
    corners, seen from the RGB frame: the worst misregistration one would cause if the other is true."""
    corners = _thermal_corners()
    rgb_points = (corners - a[1:]) / a[0]
    return float(np.linalg.norm(rgb_points * b[0] + b[1:] - corners, axis=1).max())


def _thermal_corners() -> np.ndarray:
    rows, cols = THERMAL_SHAPE
    return np.array([[-0.5, -0.5], [cols - 0.5, -0.5], [-0.5, rows - 0.5], [cols - 0.5, rows - 0.5]])


def _refine(
    pairs: Sequence[_Pair], peaks: Sequence[tuple[float, np.ndarray]], scale_step: float, shift_step: float
) -> tuple[float, np.ndarray]:
    """Pattern search on the full thermal grid from each coarse peak; the best one is finished.

    The coarse grid's ranking is not the full grid's: half-resolution edges can favour a wrong
    peak by a hair. So every distinct peak is refined to half a pixel and compared there, and
    only the winner goes on to SUBPIXEL_STEP_PX. The RGB is blurred, and its damping fixed, once
    (for the best coarse scale), so all trials compare like with like.
    """
    start = peaks[0][1]
    blurred = [cv2.GaussianBlur(pair.gray, (0, 0), 0.5 / start[0]) for pair in pairs]
    dampings = []
    for gray in blurred:
        gx, gy = _gradients(_warp(gray, start))
        dampings.append(_damping(gx * gx + gy * gy))
    first_steps = np.array([start[0] * (scale_step - 1.0), shift_step, shift_step])
    searched = [
        _pattern_search(pairs, blurred, dampings, params, first_steps, stop_px=PEAK_COMPARISON_STEP_PX)
        for _, params in peaks
    ]
    _, params, steps = max(searched, key=lambda result: result[0])
    score, params, _ = _pattern_search(pairs, blurred, dampings, params, steps, stop_px=SUBPIXEL_STEP_PX)
    return score, params


def _pattern_search(
    pairs: Sequence[_Pair],
    blurred: Sequence[np.ndarray],
    dampings: Sequence[float],
    start: np.ndarray,
    steps: np.ndarray,
    *,
    stop_px: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Try +-step on each parameter, take any gain, halve the steps when none; (score, params, steps).

    It searches over the scale and where the RGB frame's centre lands, not the affine's own shift:
    a scale step then zooms about the middle of the picture, where the person is, instead of about
    the RGB frame's top-left corner, which would drag the person sideways with every step and
    strand the search in a diagonal valley short of the best fit.
    """
    rgb_centre = (np.array(blurred[0].shape[::-1], dtype=np.float64) - 1.0) / 2.0

    def affine_params(centred: np.ndarray) -> np.ndarray:
        return np.array([centred[0], *(centred[1:] - centred[0] * rgb_centre)])

    best = np.array([start[0], *(start[1:] + start[0] * rgb_centre)])
    best_score, steps = _fine_score(pairs, blurred, dampings, start), steps.copy()
    while steps[1] >= stop_px:
        improved = False
        for axis in range(3):
            for sign in (1.0, -1.0):
                trial = best.copy()
                trial[axis] += sign * steps[axis]
                score = _fine_score(pairs, blurred, dampings, affine_params(trial))
                if score > best_score:
                    best_score, best, improved = score, trial, True
        if not improved:
            steps = steps / 2
    return best_score, affine_params(best), steps


def _fine_score(
    pairs: Sequence[_Pair], blurred: Sequence[np.ndarray], dampings: Sequence[float], params: np.ndarray
) -> float:
    """`_direction_fields` of the warped RGB dotted with the weighted thermal ones, written out
    (gx^2 a + 2 gx gy b + gy^2 c) / norm so a trial is a few whole-image products per pair."""
    total = weight = 0.0
    for pair, gray, damping in zip(pairs, blurred, dampings, strict=True):
        gx, gy = _gradients(_warp(gray, params))
        gxx, gxy, gyy = gx * gx, gx * gy, gy * gy
        xx, xy, yy = pair.weighted_fields
        agreement = (gxx * xx + gxy * xy + gyy * yy) / (gxx + gyy + np.float32(damping))
        total += float(np.vdot(agreement, _seen(params, gray.shape)))
        weight += pair.total_weight
    return total / weight if weight > 0 else 0.0


def _warp(gray: np.ndarray, params: np.ndarray) -> np.ndarray:
    """RGB luminance on the thermal grid; the border repeats, so the frame's edge is no false edge."""
    scale, shift_x, shift_y = params
    affine = np.array([[scale, 0.0, shift_x], [0.0, scale, shift_y]])
    size = (THERMAL_SHAPE[1], THERMAL_SHAPE[0])
    return cv2.warpAffine(gray, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _seen(params: np.ndarray, rgb_shape: tuple[int, ...]) -> np.ndarray:
    """Thermal pixels whose centre the RGB camera sees; elsewhere no edge can agree."""
    scale, shift_x, shift_y = params
    columns = (np.arange(THERMAL_SHAPE[1]) - shift_x) / scale
    rows = (np.arange(THERMAL_SHAPE[0]) - shift_y) / scale
    inside_x = (columns >= -0.5) & (columns <= rgb_shape[1] - 0.5)
    inside_y = (rows >= -0.5) & (rows <= rgb_shape[0] - 0.5)
    return (inside_y[:, None] & inside_x[None, :]).astype(np.float32)


# --- a picture for a human ------------------------------------------------------------------------


PREVIEW_SCALE = 2
EDGE_COLOUR = (0, 255, 0)


def alignment_preview(
    thermal_frames: Sequence[np.ndarray], rgb_frames: Sequence[np.ndarray], alignment: Alignment
) -> tuple[list[np.ndarray], list[list[str]]]:
    """Per pair a tile: the RGB warped into the thermal view with the thermal edges drawn on top,
    beside a half-and-half blend. A good alignment puts the green lines on the person's outline."""
    tiles, captions = [], []
    rows, cols = THERMAL_SHAPE[0] * PREVIEW_SCALE, THERMAL_SHAPE[1] * PREVIEW_SCALE
    for index, (thermal, rgb) in enumerate(zip(thermal_frames, rgb_frames, strict=True)):
        warped = align_rgb(rgb, alignment.matrix, out_shape=(rows, cols))
        thermal_rgb = _false_colour(thermal, (rows, cols))
        edges = _thermal_edges(thermal, (rows, cols))
        outlined = warped.copy()
        outlined[edges] = EDGE_COLOUR
        blend = cv2.addWeighted(warped, 0.5, thermal_rgb, 0.5, 0.0)
        tiles.append(np.hstack([outlined, blend]))
        captions.append([f"pair {index + 1}: RGB + thermal edges | 50/50 blend"])
    return tiles, captions


def _false_colour(thermal_centikelvin: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    celsius = centikelvin_to_celsius(thermal_centikelvin)
    low, high = np.percentile(celsius, [1, 99])
    levels = np.clip((celsius - low) / max(high - low, 1e-3) * 255, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(
        cv2.resize(levels, shape[::-1], interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_INFERNO
    )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _thermal_edges(thermal_centikelvin: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The person's outline and every strong temperature step, one pixel wide at preview size."""
    celsius = centikelvin_to_celsius(thermal_centikelvin)
    low, high = np.percentile(celsius, [1, 99])
    levels = np.clip((celsius - low) / max(high - low, 1e-3) * 255, 0, 255).astype(np.uint8)
    enlarged = cv2.resize(levels, shape[::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.Canny(cv2.GaussianBlur(enlarged, (0, 0), 1.5), 40, 100) > 0


# --- pairs from bags ------------------------------------------------------------------------------


@dataclass
class AlignmentPairs:
    thermal: list[np.ndarray]
    rgb: list[np.ndarray]
    bags_used: int


def pairs_for_alignment(bags: Sequence[Path], count: int, warn: Callable[[str], None]) -> AlignmentPairs:
    """Up to `count` pairs showing a warm person, spread over the bags and over each recording.

    Pairs far apart in time show different poses, which is what pins the mapping down; so each
    bag is sampled at a stride over its whole length (a few candidates per wanted pair) and the
    wanted number is taken evenly from the candidates that show a person.
    """
    quota = -(-count // max(len(bags), 1))
    thermal: list[np.ndarray] = []
    rgb: list[np.ndarray] = []
    used = 0
    for path in bags:
        try:
            reader = PairBagReader(path)
            counts = reader.topic_counts()
            stride = max(1, min(counts.get(PAIRS_THERMAL, 0), counts.get(PAIRS_RGB, 0)) // (3 * quota))
            candidates = [
                pair
                for index, pair in enumerate(reader.pairs())
                if index % stride == 0
                and pair.thermal_centikelvin.shape == THERMAL_SHAPE
                and shows_a_person(pair.thermal_centikelvin)
            ]
        except (BagReadError, OSError) as problem:
            warn(f"skipping {path}: {problem}")
            continue
        if not candidates:
            warn(f"{path}: no {THERMAL_SHAPE[0]}x{THERMAL_SHAPE[1]} pair shows a warm person; not used")
            continue
        used += 1
        for index in _evenly(len(candidates), quota):
            thermal.append(candidates[index].thermal_centikelvin)
            rgb.append(candidates[index].rgb)
    keep = _evenly(len(thermal), count)
    return AlignmentPairs([thermal[i] for i in keep], [rgb[i] for i in keep], used)


def _evenly(available: int, wanted: int) -> list[int]:
    if available <= wanted:
        return list(range(available))
    return sorted(set(np.linspace(0, available - 1, wanted).round().astype(int).tolist()))
