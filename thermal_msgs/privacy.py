"""The privacy downsampling: the one path that decides what a thermal image may reveal.

The driver applies it to every live frame and the dataset builder to every training frame, so
the model is trained on exactly what it sees live. `privacy_downsample` is a Gaussian blur
followed by pixel (area) averaging to the output grid, both expressed as small matrices:
`M_h @ frame @ M_w.T`. That is exact, deterministic, cheap (a 12x120 and a 160x16 matrix for a
Lepton frame) and works unchanged on batches. `PrivacySettings` adds the optional transforms on
the downsampled heatmap (relative temperature, temporal noise, quantisation), each of which
hides something the grid alone does not.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from thermal_msgs.image import validate_size
from thermal_msgs.topics import DEFAULT_OUTPUT_SIZE

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


BACKGROUND_RANGE_C = (-50.0, 100.0)
"""Any room a sensor can see lies far inside; a Kelvin or centi-Kelvin value typed by mistake does not."""

MIN_QUANTISATION_C = 1e-3
"""A tenth of the centi-Kelvin resolution of the raw frames: a finer step hides nothing, and the floor
keeps `cell / step` finite."""

MAX_TRANSFORM_C = 100.0
"""Largest quantisation step or noise std: beyond the whole scene's range it leaves nothing of the
person (who is ~10 C above the room), so a larger value is a mistake (and noise near float32's range
would publish inf)."""


def _number(name: str, value: object, allowed: str, accept: Callable[[float], bool]) -> float:
    """`value` as a float, or a ValueError naming the parameter and `allowed`; also for JSON, where a
    string or a boolean can turn up."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not accept(float(value))
    ):
        shown = value if isinstance(value, numbers.Real) else repr(value)
        raise ValueError(f"{name} must be {allowed}, got {shown}")
    return float(value)


def validate_blur_sigma(blur_sigma: float) -> float:
    return _number("blur_sigma", blur_sigma, "a finite number >= 0 (output cells)", lambda v: v >= 0)


def validate_background_c(background_c: float) -> float:
    low, high = BACKGROUND_RANGE_C
    return _number(
        "background_c",
        background_c,
        f"a finite number in [{low:g}, {high:g}] (degrees C)",
        lambda v: low <= v <= high,
    )


def validate_quantisation_c(quantisation_c: float) -> float:
    return _number(
        "quantisation_c",
        quantisation_c,
        f"0 (off) or a finite number in [{MIN_QUANTISATION_C:g}, {MAX_TRANSFORM_C:g}] (degrees C)",
        lambda v: v == 0 or MIN_QUANTISATION_C <= v <= MAX_TRANSFORM_C,
    )


def validate_noise_c(noise_c: float) -> float:
    return _number(
        "noise_c",
        noise_c,
        f"a finite number in [0, {MAX_TRANSFORM_C:g}] (degrees C)",
        lambda v: 0 <= v <= MAX_TRANSFORM_C,
    )


def validate_relative_temperature(relative_temperature: bool) -> bool:
    if not isinstance(relative_temperature, bool | np.bool_):
        raise ValueError(f"relative_temperature must be true or false, got {relative_temperature!r}")
    return bool(relative_temperature)


GRID_TRANSFORMS = ("relative_temperature", "background_c", "quantisation_c", "noise_c")
"""The transforms on the downsampled grid: they keep a model's input format (its grid and blur),
so a model's heatmaps can be made with them, and a model evaluated on them, without a new model."""

_Settings = TypeVar("_Settings", bound="PrivacySettings")


@dataclass(frozen=True)
class PrivacySettings:
    """Everything that turns a thermal frame into the published heatmap, in the order applied.

    Blur and area averaging hide shape (a face, glasses); the relative shift hides absolute
    temperatures (skin temperature and fever, how warm the home is kept); quantisation hides
    differences finer than its step; noise, drawn fresh for each frame, hides fine differences
    within any single frame. The defaults are `privacy_downsample` alone, bit for bit what the
    driver published before the transforms existed.
    """

    output_size: tuple[int, int] = DEFAULT_OUTPUT_SIZE
    blur_sigma: float = 1.0
    relative_temperature: bool = False
    background_c: float = 22.0
    """What the heatmap's background estimate (the median of its cells) reads with
    `relative_temperature`: an absolute-looking value keeps the heatmap inside the model's fixed
    10-40 C normalisation."""
    quantisation_c: float = 0.0
    """Every cell is rounded to a multiple of this step in degrees C; 0 = off."""
    noise_c: float = 0.0
    """Std of zero-mean Gaussian noise (degrees C) added to every cell before quantisation, which
    dithers it: a cell no longer sticks to one step, so over frames the heatmap follows changes
    finer than the step instead of jumping between steps. An eavesdropper averaging a still scene
    gains the same; 0 = off."""

    def __post_init__(self) -> None:
        validated = {
            "output_size": validate_output_size(self.output_size),
            "blur_sigma": validate_blur_sigma(self.blur_sigma),
            "relative_temperature": validate_relative_temperature(self.relative_temperature),
            "background_c": validate_background_c(self.background_c),
            "quantisation_c": validate_quantisation_c(self.quantisation_c),
            "noise_c": validate_noise_c(self.noise_c),
        }
        for name, value in validated.items():
            object.__setattr__(self, name, value)

    @property
    def grid(self) -> tuple[tuple[int, int], float]:
        """(output_size, blur_sigma): a model's input format. Settings that differ only in the
        GRID_TRANSFORMS make heatmaps the same model can read."""
        return self.output_size, self.blur_sigma

    @property
    def label(self) -> str:
        """Names the grid and only the transforms that differ from the defaults, e.g.
        "12x16 blur2 rel q0.5 n0.2", for tables and plots of a sweep."""
        defaults = PrivacySettings()
        parts = ["x".join(map(str, self.output_size))]
        if self.blur_sigma != defaults.blur_sigma:
            parts.append(f"blur{_short(self.blur_sigma)}")
        if self.relative_temperature:
            shifted_to = "" if self.background_c == defaults.background_c else _short(self.background_c)
            parts.append(f"rel{shifted_to}")
        if self.quantisation_c:
            parts.append(f"q{_short(self.quantisation_c)}")
        if self.noise_c:
            parts.append(f"n{_short(self.noise_c)}")
        return " ".join(parts)

    def apply(self, celsius: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(H, W) or (N, H, W) degrees C -> float32 heatmap(s) in degrees C.

        `rng` draws the noise and is required iff `noise_c` > 0: a caller that forgot it must not
        get noise-free heatmaps it believes are dithered.
        """
        if self.noise_c > 0 and rng is None:
            raise ValueError(f"noise_c={self.noise_c:g} needs a numpy Generator (rng) to draw the noise")
        # float64 between the steps, one rounding to float32 at the end: with no transform on, the
        # result is privacy_downsample's bit for bit.
        cells = privacy_downsample(celsius, self.output_size, self.blur_sigma).astype(np.float64)
        if self.relative_temperature:
            cells += self.background_c - np.median(cells, axis=(-2, -1), keepdims=True)
        if self.noise_c > 0:
            cells += rng.normal(0.0, self.noise_c, cells.shape)
        if self.quantisation_c > 0:
            cells = np.round(cells / self.quantisation_c) * self.quantisation_c
        return cells.astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "output_size": list(self.output_size)}

    @classmethod
    def from_json(cls: type[_Settings], data: Mapping[str, Any]) -> _Settings:
        """Files written before the transforms existed hold only output_size and blur_sigma: the
        transforms are then off. An unknown key is refused, not ignored: a misspelt transform
        would otherwise be silently off."""
        if not isinstance(data, Mapping):
            raise ValueError(f"privacy settings must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown privacy settings {sorted(unknown)}; known: {sorted(known)}")
        missing = {"output_size", "blur_sigma"} - set(data)
        if missing:
            raise ValueError(f"privacy settings lack {sorted(missing)}")
        return cls(**data)


def _short(value: float) -> str:
    """The shortest text that reads back as `value`, without a trailing ".0"."""
    text = repr(value)
    return text.removesuffix(".0")


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


DRIVER_DEFAULTS = PrivacySettings(quantisation_c=2.0)
"""What the driver publishes when no parameter says otherwise, and what `thermal-synth sim` and
`dataset build` make by default so that a model trained on their heatmaps reads the driver's.
2 C steps are the knee of the privacy-utility sweep (docs/privacy.md): over three attacker seeds
they cut the strongest re-identification from 0.253 to 0.199 and keep 96 % of the silhouette IoU
a heatmap gives. `PrivacySettings()` itself stays the plain grid: files written before the
transforms existed read back as that."""
