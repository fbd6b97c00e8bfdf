"""The Lepton frame: surface temperatures from a label map, then the sensor's imperfections.

Surface temperatures follow a steady-state heat balance: skin at 33-35.5 C (warmest at the neck
and inner eyes, coolest at nose, ears and hands), and anything covering skin (hair, fabric,
glasses) settles between skin and room air according to its thermal resistance. Fabric is seen
at its emissivity, reflecting a little room. The sensor adds Gaussian optical blur, vignetting,
fixed-pattern noise, temporal noise and the offset steps of flat-field corrections.
"""

from __future__ import annotations

import cv2
import numpy as np

from thermal_driver.sources.rig.backdrop import ThermalBackdrop
from thermal_driver.sources.rig.body import FABRIC_PARTS, Part
from thermal_driver.sources.rig.people import Identity, Outfit
from thermal_driver.sources.rig.scenes import Scene
from thermal_msgs.units import ZERO_CELSIUS_CK

SKIN_RANGE_C = (33.0, 35.5)
STILL_AIR_CLO = 0.4
"""Thermal resistance of the air film and radiation at a clothed surface, in clo."""
OPTICAL_BLUR_PX = 1.0
GRAZING_EMISSIVITY_LOSS = 0.3
TEMPORAL_NOISE_CK = 5.0
"""Lepton 3.5 NETD is about 50 mK."""
_NOISE_MARGIN = 32
_HAIR_COVER = {"short": 0.72, "bob": 0.64, "long": 0.62, "bun": 0.64, "curly": 0.56, "bald": 1.0}
"""Fraction of the skin-to-air temperature difference left at the hair's outer surface."""
_REFERENCE_PX_PER_M = 160.0
_SKIN_OFFSETS_C = {
    Part.FACE: 0.3,
    Part.CHEEK: -0.5,
    Part.NOSE: -0.9,
    Part.EYE_WHITE: 0.9,
    Part.IRIS: 0.9,
    Part.MOUTH: 0.4,
    Part.EAR: -0.8,
    Part.NECK: 0.7,
    Part.ARM_SKIN: -0.5,
    Part.HAND: -0.9,
}
"""Inner eye corners and the neck run warmest; protruding nose and ears, and the extremities, cooler."""


def surface_temperatures(identity: Identity, outfit: Outfit, scene: Scene) -> np.ndarray:
    """(256,) float32 true surface temperature (C) per label; the background entry is unused."""
    air = scene.ambient_c
    skin = 34.2 + identity.skin_offset_c
    torso_skin = 34.5 + identity.skin_offset_c

    def covered(fraction: float, under: float = skin) -> float:
        return air + (under - air) * fraction

    fabric_fraction = STILL_AIR_CLO / (STILL_AIR_CLO + outfit.insulation_clo)
    fabric = outfit.emissivity * covered(fabric_fraction, torso_skin) + (1.0 - outfit.emissivity) * air
    lut = np.zeros(256, np.float32)
    for part, offset in _SKIN_OFFSETS_C.items():
        lut[part] = np.clip(skin + offset, *SKIN_RANGE_C)
    lut[Part.EYEBROW] = skin - 0.6
    lut[Part.HAIR] = covered(_HAIR_COVER[identity.hair_style])
    lut[Part.BEARD] = covered(0.78)
    lut[Part.GARMENT] = fabric
    lut[Part.SLEEVE] = fabric - 0.3
    lut[Part.COLLAR] = fabric + 0.5
    lut[Part.HOOD] = fabric + 0.4 if outfit.hood_up else fabric - 0.6
    lut[Part.HOOD_RIM] = fabric + 1.5
    lut[Part.STRING] = air + (fabric - air) * 0.6
    lut[Part.LENS] = covered(0.3)
    lut[Part.FRAME] = covered(0.55)
    lut[Part.LENS_EYE_WHITE] = lut[Part.LENS_IRIS] = lut[Part.LENS]
    return lut


def _fold_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(2H, 2W) fabric temperature offsets pinned to the neck base at the centre: fabric touches
    the body at the shoulders (warmer) and hangs away from it lower down, with folds."""
    height, width = shape[0] * 2, shape[1] * 2
    below_shoulders_m = (np.arange(height, dtype=np.float32) - shape[0]) / _REFERENCE_PX_PER_M
    contact = np.clip(0.2 - 3.0 * below_shoulders_m, -0.8, 0.2)[:, None]
    folds = cv2.resize(
        rng.normal(0, 1, (10, 30)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    creases = cv2.resize(
        rng.normal(0, 1, (24, 60)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    return (contact + 0.45 * folds + 0.25 * creases).astype(np.float32)


class ThermalShader:
    def __init__(
        self, identity: Identity, outfit: Outfit, scene: Scene, backdrop: ThermalBackdrop, seed: int
    ) -> None:
        rng = np.random.default_rng([seed, 0x7E3A])
        self.shape = backdrop.temperature_c.shape
        height, width = self.shape
        self._backdrop = backdrop
        self._surface = surface_temperatures(identity, outfit, scene).reshape(256, 1)
        self._ambient_c = scene.ambient_c
        fabric = np.zeros(256, np.float32)
        fabric[list(FABRIC_PARTS)] = 1.0
        self._fabric_weight = fabric.reshape(256, 1)
        self._folds = _fold_texture(self.shape, rng)
        v, u = np.mgrid[0:height, 0:width].astype(np.float32)
        radius2 = ((u - (width - 1) / 2) / (width / 2)) ** 2 + ((v - (height - 1) / 2) / (height / 2)) ** 2
        vignetting = -12.0 * radius2
        columns = rng.normal(0.0, 3.0, (1, width))
        rows = rng.normal(0.0, 2.0, (height, 1))
        pixels = rng.normal(0.0, 3.0, (height, width))
        self._static_ck = (ZERO_CELSIUS_CK + vignetting + columns + rows + pixels).astype(np.float32)
        margin = (height + _NOISE_MARGIN, width + _NOISE_MARGIN)
        self._noise_ck = rng.normal(0.0, TEMPORAL_NOISE_CK, margin).astype(np.float32)

    def true_temperature(
        self, labels: np.ndarray, torso_px: tuple[float, float], breath: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Surface temperature (C) and person mask; `labels` is clipped by the foreground in place.

        Exhaled air warms the nostrils, so the nose follows the breathing cycle."""
        height, width = self.shape
        cv2.bitwise_and(labels, self._backdrop.keep, dst=labels)
        mask = cv2.compare(labels, 0, cv2.CMP_GT)
        surface = self._surface.copy()
        surface[Part.NOSE] += 0.25 * max(breath, 0.0)
        person = cv2.LUT(labels, surface)
        ox = min(max(width - round(torso_px[0]), 0), width)
        oy = min(max(height - round(torso_px[1]), 0), height)
        folds = self._folds[oy : oy + height, ox : ox + width]
        person += cv2.LUT(labels, self._fabric_weight) * folds
        temperature = cv2.copyTo(person, mask, self._backdrop.temperature_c.copy())
        return temperature, mask > 0

    def apparent(self, temperature_c: np.ndarray, person: np.ndarray) -> np.ndarray:
        """What the sensor sees: near the silhouette surfaces are viewed at grazing angles, where
        emissivity drops and the cooler room is reflected, so bodies darken towards their outline."""
        mask = person.view(np.uint8) * np.uint8(255)
        outline = cv2.subtract(mask, cv2.blur(mask, (5, 5))).astype(np.float32) * (
            GRAZING_EMISSIVITY_LOSS / 255.0
        )
        return temperature_c - outline * (temperature_c - self._ambient_c)

    def sense(self, temperature_c: np.ndarray, offset_ck: float, noise_offset: tuple[int, int]) -> np.ndarray:
        """Radiometric (TLinear) centi-kelvin as the Lepton reports it."""
        height, width = self.shape
        oy, ox = noise_offset
        blurred = cv2.GaussianBlur(temperature_c, (7, 7), OPTICAL_BLUR_PX)
        counts = blurred * 100.0 + self._static_ck
        counts += self._noise_ck[oy : oy + height, ox : ox + width]
        counts += offset_ck
        return np.clip(counts + 0.5, 0, 65535).astype(np.uint16)
