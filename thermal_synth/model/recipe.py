"""The preprocessing recipe a model was trained with, stored in its model file.

A model only works on heatmaps made the way its training heatmaps were: the same privacy
downsampling and transforms (`HeatmapRecipe`) and the same mapping of degrees Celsius onto the
generator's [-1, 1] input. Keeping both in the model file means the node, the CLI and training
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from thermal_msgs.privacy import PrivacySettings
from thermal_msgs.units import centikelvin_to_celsius

NORMALISATION_MODES = ("fixed", "frame")

_DESCRIPTION = {
    "function": "thermal_msgs.privacy.PrivacySettings.apply",
    "input": "thermal centi-Kelvin converted to degrees Celsius",
    "unit": "celsius",
}
"""Written beside the settings for a reader of the file; ignored on reading (older files name
`privacy_downsample`, which the settings' defaults are)."""


@dataclass(frozen=True)
class HeatmapRecipe(PrivacySettings):
    """The privacy settings the stored heatmaps were made with, applied to stored thermal frames.

    The defaults are the driver's live defaults, so a model trained on these heatmaps sees the
    same thing at call time. It is the driver's `PrivacySettings` (same fields, validation and
    JSON) so that the two cannot drift apart; only `apply` takes the raw centi-Kelvin frames the
    datasets store, and refuses anything else, since degrees C passed here would be read as cK.
    """

    @property
    def privacy(self) -> PrivacySettings:
        """The same settings as a plain `PrivacySettings`, whose `apply` takes degrees C."""
        return PrivacySettings(**{f.name: getattr(self, f.name) for f in fields(PrivacySettings)})

    def apply(self, thermal_centikelvin: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(120, 160) or (N, 120, 160) uint16 centi-Kelvin -> float32 degrees Celsius heatmap(s)."""
        centikelvin = np.asarray(thermal_centikelvin)
        if not np.issubdtype(centikelvin.dtype, np.integer):
            raise ValueError(
                f"HeatmapRecipe.apply takes integer centi-Kelvin frames, got {centikelvin.dtype}; "
                "for degrees C use PrivacySettings.apply (recipe.privacy)"
            )
        return super().apply(centikelvin_to_celsius(centikelvin), rng)

    def to_json(self) -> dict[str, Any]:
        return {**_DESCRIPTION, **super().to_json()}

    @classmethod
    def from_json(cls, recipe: Mapping[str, Any]) -> HeatmapRecipe:
        if not isinstance(recipe, Mapping):
            raise ValueError(f"heatmap recipe must be a JSON object, got {type(recipe).__name__}")
        return super().from_json({key: value for key, value in recipe.items() if key not in _DESCRIPTION})


@dataclass(frozen=True)
class Normalisation:
    """Degrees Celsius -> [-1, 1].

    `fixed` maps [low_c, high_c] linearly and clips: a radiometric sensor (Lepton 3.5 with
    TLinear, the simulated rig) gives absolute temperatures, so the person stays the same shade
    whatever else is in the room. `frame` is the per-frame min-max of the paper's live demo, for
    sensors without absolute temperatures; a radiator then darkens the person.
    """

    mode: str = "fixed"
    low_c: float = 10.0
    high_c: float = 40.0

    def __post_init__(self) -> None:
        if self.mode not in NORMALISATION_MODES:
            raise ValueError(f"normalisation mode must be one of {NORMALISATION_MODES}, got {self.mode!r}")
        if not (np.isfinite(self.low_c) and np.isfinite(self.high_c) and self.low_c < self.high_c):
            raise ValueError(f"normalisation needs finite low_c < high_c, got {self.low_c}, {self.high_c}")

    def apply(self, celsius: np.ndarray) -> np.ndarray:
        """(..., rows, cols) degrees Celsius -> float32 in [-1, 1]."""
        celsius = np.asarray(celsius, dtype=np.float32)
        if self.mode == "fixed":
            low, high = np.float32(self.low_c), np.float32(self.high_c)
        else:
            low = celsius.min(axis=(-2, -1), keepdims=True)
            high = np.maximum(celsius.max(axis=(-2, -1), keepdims=True), low + np.float32(1e-3))
        unit = (celsius - low) / (high - low)
        return np.clip(unit * np.float32(2.0) - np.float32(1.0), -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Preprocessing:
    heatmap: HeatmapRecipe = field(default_factory=HeatmapRecipe)
    normalisation: Normalisation = field(default_factory=Normalisation)

    def to_json(self) -> dict[str, Any]:
        return {
            "heatmap": self.heatmap.to_json(),
            "normalisation": {
                "mode": self.normalisation.mode,
                "low_c": self.normalisation.low_c,
                "high_c": self.normalisation.high_c,
            },
            "image": {"range": [-1.0, 1.0], "downsampling": "pixel averaging (cv2.INTER_AREA)"},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preprocessing:
        normalisation = data["normalisation"]
        return cls(
            HeatmapRecipe.from_json(data["heatmap"]),
            Normalisation(
                str(normalisation["mode"]), float(normalisation["low_c"]), float(normalisation["high_c"])
            ),
        )
