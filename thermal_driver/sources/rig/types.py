"""What the simulated rig produces: one thermal/RGB pair with the ground truth real data never has.

The renderer, the driver's `sim` source, the dataset generator and the evaluators all meet here,
so these types are the contract between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THERMAL_SHAPE = (120, 160)
"""Lepton 3.5 resolution (rows, cols)."""
DEFAULT_RGB_SHAPE = (240, 320)
THERMAL_FOV_DIAGONAL_DEG = 71.0
"""Lepton 3.5: 57 deg horizontal, 71 deg diagonal."""


@dataclass(frozen=True)
class RigConfig:
    """Sizes and the physical rig; everything a session does not choose."""

    rgb_shape: tuple[int, int] = DEFAULT_RGB_SHAPE
    rate_hz: float = 8.7
    ffc_interval_s: float = 180.0
    """Mean time between flat-field corrections (the Lepton's default is every 3 minutes)."""


@dataclass(frozen=True)
class Session:
    """One recording: one person in one outfit in one room, moving along one seeded motion track."""

    identity: int
    outfit: int
    scene: int
    seed: int

    @property
    def name(self) -> str:
        return f"id{self.identity:02d}-outfit{self.outfit}-scene{self.scene:02d}-seed{self.seed}"


@dataclass
class SimPair:
    """A thermal frame and the RGB frame taken at the same instant, with ground truth.

    `rgb_to_thermal` is the 2x3 affine mapping RGB pixel coordinates (x, y) onto thermal pixel
    coordinates: what a real rig's alignment step must estimate, known exactly here.
    """

    time_s: float
    thermal_centikelvin: np.ndarray
    """(120, 160) uint16, sensor effects included."""
    rgb: np.ndarray
    """(H, W, 3) uint8 at RigConfig.rgb_shape, camera noise included."""
    person_mask_rgb: np.ndarray
    """(H, W) bool on the RGB grid."""
    person_mask_thermal: np.ndarray
    """(120, 160) bool on the thermal grid."""
    heat_source_mask: np.ndarray
    """(120, 160) bool: warm or cold objects that are NOT the person (laptop, radiator, mug, window...)."""
    rgb_to_thermal: np.ndarray
    """(2, 3) float64 affine."""
    session: Session
    identity_name: str
    outfit_name: str
    scene_name: str
    pose: dict[str, float] = field(default_factory=dict)
    """Named pose parameters (head yaw/pitch/roll, arm angles, lean, position...), stable key order."""
    ffc_event: bool = False
    """True on frames where an FFC offset step happened."""
