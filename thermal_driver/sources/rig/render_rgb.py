"""Shading the webcam frame from a part label map, at a few cv2 calls per frame.

Everything costly is per session: the palette (skin, hair, garment colours under the room's
light), garment patterns and hair strands as bit-textures, the camera-noise bank. Per frame a
texture window pinned to the torso or head ORs pattern bits into the labels, one lookup paints
the person, and one multiply applies light: the room's light map, the person's soft shadow on the
wall, and darkening towards the silhouette and along part boundaries, which makes flat cut-outs
read as rounded bodies and limbs.
"""

from __future__ import annotations

import cv2
import numpy as np

from thermal_driver.sources.rig.backdrop import LIGHT_UNIT, RgbBackdrop, colour_temperature_gains
from thermal_driver.sources.rig.body import Part
from thermal_driver.sources.rig.people import Identity, Outfit
from thermal_driver.sources.rig.scenes import Scene

LABEL_BITS = 31
SLEEVE_PATTERN_BIT = 32
"""Sleeves take their pattern out of phase with the torso's, so an arm at the side stays visible."""
PATTERN_BIT = 64
"""Second colour of a pattern (stripe, check, hair strand highlight)."""
CREASE_BIT = 128
"""Fabric fold in shadow."""
_NOISE_MARGIN = 32
_REFERENCE_DEPTH_M = 0.9
_GROUPS = {
    Part.NECK: 2,
    Part.ARM_SKIN: 3,
    Part.HAND: 3,
    Part.SLEEVE: 3,
    Part.GARMENT: 4,
    Part.COLLAR: 4,
    Part.STRING: 4,
    Part.HOOD: 5,
    Part.HOOD_RIM: 5,
}
"""Coarse parts whose boundaries get shaded; the head's own features stay unshaded."""


def _group_lut() -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for part in Part:
        if part != Part.BACKGROUND:
            lut[part] = _GROUPS.get(part, 1)
    return lut


def _mix(a: np.ndarray, b: tuple[int, int, int], weight: float) -> np.ndarray:
    return a * (1.0 - weight) + np.asarray(b, np.float64) * weight


def person_palette(identity: Identity, outfit: Outfit, scene: Scene) -> np.ndarray:
    """(256, 1, 3) uint8 RGB for every label with its pattern and crease bits."""
    skin = np.asarray(identity.skin_rgb, np.float64)
    hair = np.asarray(identity.hair_rgb, np.float64)
    main = np.asarray(outfit.main_rgb, np.float64)
    accent = np.asarray(outfit.accent_rgb, np.float64)
    base = np.zeros((LABEL_BITS + 1, 3))
    base[Part.FACE] = skin
    base[Part.CHEEK] = skin * (1.03, 0.94, 0.94)
    base[Part.NOSE] = skin * 1.06 + 4
    base[Part.EYE_WHITE] = (200, 196, 190)
    base[Part.IRIS] = (38, 30, 26)
    base[Part.EYEBROW] = _mix(hair, identity.skin_rgb, 0.25) * 0.85
    base[Part.MOUTH] = skin * (0.86, 0.62, 0.62)
    base[Part.EAR] = skin * 0.92
    base[Part.NECK] = skin * 0.86
    base[Part.ARM_SKIN] = skin * 0.97
    base[Part.HAND] = skin * 0.99
    base[Part.HAIR] = hair
    base[Part.BEARD] = _mix(hair, identity.skin_rgb, 0.3)
    base[Part.GARMENT] = main
    base[Part.SLEEVE] = main * 0.96
    rib = 1.06 if outfit.kind == "collar_shirt" else 0.84
    base[Part.COLLAR] = np.clip(main * rib + (8 if outfit.kind == "collar_shirt" else 0), 0, 255)
    base[Part.HOOD] = main * 0.9
    base[Part.HOOD_RIM] = main * 0.7
    base[Part.STRING] = accent
    base[Part.LENS] = _mix(skin * 0.6, (205, 215, 225), 0.35)
    base[Part.FRAME] = (32, 30, 34)
    base[Part.LENS_EYE_WHITE] = _mix(base[Part.EYE_WHITE], (205, 215, 225), 0.3)
    base[Part.LENS_IRIS] = _mix(base[Part.IRIS], (205, 215, 225), 0.3)
    patterned = base.copy()
    if outfit.pattern != "plain":
        patterned[[Part.GARMENT, Part.HOOD]] = accent
        patterned[Part.SLEEVE] = accent * 0.96
    patterned[Part.HAIR] = hair * 1.35 + 14
    patterned[Part.BEARD] = base[Part.BEARD] * 1.2 + 8
    index = np.arange(256)
    palette = np.where(
        ((index & (SLEEVE_PATTERN_BIT | PATTERN_BIT)) > 0)[:, None],
        patterned[index & LABEL_BITS],
        base[index & LABEL_BITS],
    )
    palette[index & CREASE_BIT > 0] *= 0.78
    palette *= colour_temperature_gains(scene.colour_temperature_k)
    return np.clip(palette, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _pattern_texture(
    outfit: Outfit, shape: tuple[int, int], px_per_m: float, rng: np.random.Generator
) -> np.ndarray:
    """(2H, 2W) bits: the pattern's second colour (torso and sleeve phases) and fold creases, in
    torso-pinned pixel space."""
    height, width = shape[0] * 2, shape[1] * 2
    period = max(4.0, (0.035 if outfit.pattern == "stripes" else 0.024) * px_per_m)

    def bands(length: int, phase: float) -> np.ndarray:
        return ((np.arange(length) + phase) % period) < period * 0.45

    def pattern(phase: float) -> np.ndarray:
        # Stripes and checks are separable: 1-D bands broadcast to the texture, not a 2-D modulo.
        rows = np.broadcast_to(bands(height, phase)[:, None], (height, width))
        if outfit.pattern == "stripes":
            return rows
        if outfit.pattern == "checks":
            return rows ^ bands(width, phase)[None, :]
        return np.zeros((height, width), bool)

    folds = cv2.resize(
        rng.normal(0, 1, (12, 40)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    creases = np.abs(folds) < 0.06
    bits = pattern(0.0) * PATTERN_BIT + pattern(period * 0.5) * SLEEVE_PATTERN_BIT + creases * CREASE_BIT
    return bits.astype(np.uint8)


def _hair_texture(identity: Identity, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = shape[0] * 2, shape[1] * 2
    cells = (height // 3, width // 3) if identity.hair_style == "curly" else (height // 16, width // 2)
    strands = cv2.resize(
        rng.normal(0, 1, cells).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
    )
    return ((strands > 0.9) * PATTERN_BIT).astype(np.uint8)


def _window(texture: np.ndarray, shape: tuple[int, int], anchor_px: tuple[float, float]) -> np.ndarray:
    """The (H, W) slice of a (2H, 2W) texture whose centre lands on `anchor_px`."""
    height, width = shape
    ox = min(max(width - round(anchor_px[0]), 0), width)
    oy = min(max(height - round(anchor_px[1]), 0), height)
    return texture[oy : oy + height, ox : ox + width]


class RgbShader:
    def __init__(
        self,
        identity: Identity,
        outfit: Outfit,
        scene: Scene,
        backdrop: RgbBackdrop,
        *,
        focal_px: float,
        seed: int,
    ) -> None:
        rng = np.random.default_rng([seed, 0x2C0B])
        self.shape = backdrop.image.shape[:2]
        height, width = self.shape
        self._backdrop = backdrop
        self._palette = person_palette(identity, outfit, scene)
        fabric = np.zeros(256, np.uint8)
        fabric[[Part.GARMENT, Part.HOOD]] = PATTERN_BIT | CREASE_BIT
        fabric[Part.SLEEVE] = SLEEVE_PATTERN_BIT | CREASE_BIT
        fabric[Part.COLLAR] = CREASE_BIT
        self._fabric_bits = fabric
        hair = np.zeros(256, np.uint8)
        hair[[Part.HAIR, Part.BEARD]] = PATTERN_BIT
        self._hair_bits = hair
        self._groups = _group_lut()
        px_per_m = focal_px / _REFERENCE_DEPTH_M
        self._pattern = _pattern_texture(outfit, self.shape, px_per_m, rng)
        self._hair = _hair_texture(identity, self.shape, rng)
        scale = width / 320.0
        self._edge_kernel = max(3, round(5 * scale) | 1)
        self._body_kernel = max(5, round(21 * scale) | 1)
        self._shadow_kernel = max(5, round(25 * scale) | 1)
        self._shadow_shift = (round(-scene.light_from * 0.05 * width), round(0.03 * height))
        self._shadow_weight = -scene.shadow_strength * LIGHT_UNIT / 255.0
        noise = rng.normal(0.0, scene.camera_noise, (height + _NOISE_MARGIN, width + _NOISE_MARGIN, 3))
        noise += rng.normal(0.0, scene.camera_noise, (height + _NOISE_MARGIN, width + _NOISE_MARGIN, 1))
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)

    def shade(
        self,
        labels: np.ndarray,
        torso_px: tuple[float, float],
        head_px: tuple[float, float],
        exposure: float,
        noise_offset: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns the frame and the person mask; `labels` is clipped by the foreground in place."""
        height, width = self.shape
        cv2.bitwise_and(labels, self._backdrop.keep, dst=labels)
        mask = cv2.compare(labels, 0, cv2.CMP_GT)
        groups = cv2.LUT(labels, self._groups)
        edges = cv2.compare(cv2.morphologyEx(groups, cv2.MORPH_GRADIENT, None), 0, cv2.CMP_GT)
        rounding = cv2.blur(edges, (self._edge_kernel, self._edge_kernel))
        bits = cv2.bitwise_and(
            cv2.LUT(labels, self._fabric_bits), _window(self._pattern, self.shape, torso_px)
        )
        hair = cv2.bitwise_and(cv2.LUT(labels, self._hair_bits), _window(self._hair, self.shape, head_px))
        cv2.bitwise_or(labels, cv2.bitwise_or(bits, hair), dst=labels)
        person = cv2.LUT(cv2.merge((labels, labels, labels)), self._palette)

        dx, dy = self._shadow_shift
        shadow = np.zeros_like(mask)
        shadow[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = mask[
            max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
        ]
        shadow = cv2.blur(shadow, (self._shadow_kernel, self._shadow_kernel))
        light = cv2.addWeighted(self._backdrop.light, 1.0, shadow, self._shadow_weight, 0.0)
        outside = cv2.bitwise_not(cv2.blur(mask, (self._body_kernel, self._body_kernel)))
        darkening = cv2.addWeighted(
            rounding, 0.8 * LIGHT_UNIT / 255.0, outside, 0.35 * LIGHT_UNIT / 255.0, 0.0
        )
        person_light = cv2.subtract(self._backdrop.light, darkening)
        cv2.copyTo(person_light, mask, light)
        frame = cv2.copyTo(person, mask, self._backdrop.image.copy())
        frame = cv2.multiply(frame, cv2.cvtColor(light, cv2.COLOR_GRAY2RGB), scale=exposure / LIGHT_UNIT)
        frame = cv2.GaussianBlur(frame, (3, 3), 0.7)
        oy, ox = noise_offset
        cv2.add(frame, self._noise_up[oy : oy + height, ox : ox + width], dst=frame)
        cv2.subtract(frame, self._noise_down[oy : oy + height, ox : ox + width], dst=frame)
        return frame, mask > 0
