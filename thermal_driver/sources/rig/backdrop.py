"""The static part of every frame, rendered once per session and camera: room, furniture, desk.

Each item becomes a list of paint operations in metres, each carrying both its visible colour and
its temperature; the RGB and thermal backdrops project the same list through their own cameras.
Desk items and the desk stand between the cameras and the person, so they are kept apart as the
foreground that later hides the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from thermal_driver.sources.rig.camera import PinholeCamera
from thermal_driver.sources.rig.people import RGB
from thermal_driver.sources.rig.scenes import DESK_ITEMS, Scene, SceneItem

LIGHT_UNIT = 160
"""Light-map value for unit gain; the headroom above it lets lamps and windows brighten the room."""
_SHIFT = 4
_ONE = 1 << _SHIFT
_DESK_NEAR_M = 0.25

Shape = tuple
"""("poly", points) | ("ellipse", centre, (ax, ay), angle_deg, thickness_m) | ("line", p0, p1, width_m),
points (x, y, z) in metres, thickness 0 for filled."""


@dataclass(frozen=True)
class PaintOp:
    shape: Shape
    rgb: RGB
    temperature_c: float
    heat_source: bool = False
    front: bool = False


@dataclass(frozen=True)
class RgbBackdrop:
    image: np.ndarray
    """(H, W, 3) uint8 under unit light, colour temperature applied."""
    light: np.ndarray
    """(H, W) uint8 gain map (LIGHT_UNIT = 1): brightness, direction, vignetting, lamp glow."""
    keep: np.ndarray
    """(H, W) uint8: 0 where the desk or a desk item hides the person, 255 elsewhere."""


@dataclass(frozen=True)
class ThermalBackdrop:
    temperature_c: np.ndarray
    """(H, W) float32 true surface temperature, before optics and sensor."""
    keep: np.ndarray
    heat_behind: np.ndarray
    """Heat sources the person can stand in front of."""
    heat_front: np.ndarray


def _rect(x0: float, y0: float, x1: float, y1: float, z: float) -> Shape:
    return ("poly", ((x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)))


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(int(min(255.0, max(0.0, c * factor))) for c in rgb)


def _window(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, glass_c = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, item.temperature_c
    frame_c = scene.ambient_c + 0.6 * (glass_c - scene.ambient_c)
    frame_rgb = (236, 236, 232)
    horizon = y + h * 0.35
    ops = [
        PaintOp(_rect(x - w, y - h, x + w, y + h, z), frame_rgb, frame_c, True),
        PaintOp(_rect(x - w + 0.05, y - h + 0.05, x + w - 0.05, y + h - 0.05, z), item.rgb, glass_c, True),
        PaintOp(
            _rect(x - w + 0.05, horizon, x + w - 0.05, y + h - 0.05, z), _shade(item.rgb, 0.55), glass_c, True
        ),
    ]
    treeline = [(x - w + 0.05, horizon, z)]
    for k in range(9):
        treeline.append((x - w + 0.05 + (2 * w - 0.1) * k / 8, horizon - rng.uniform(0.02, 0.12), z))
    treeline.append((x + w - 0.05, horizon, z))
    ops.append(PaintOp(("poly", tuple(treeline)), _shade(item.rgb, 0.62), glass_c, True))
    ops.append(PaintOp(("line", (x, y - h, z), (x, y + h, z), 0.045), frame_rgb, frame_c, True))
    ops.append(
        PaintOp(("line", (x - w, y - 0.1 * h, z), (x + w, y - 0.1 * h, z), 0.045), frame_rgb, frame_c, True)
    )
    sill_c = scene.ambient_c + 0.15 * (glass_c - scene.ambient_c)
    ops.append(PaintOp(_rect(x - w - 0.05, y + h, x + w + 0.05, y + h + 0.04, z), (244, 244, 240), sill_c))
    return ops


def _radiator(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, hot = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, item.temperature_c
    ops = [PaintOp(_rect(x - w, y - h, x + w, y + h, z), item.rgb, hot, True)]
    fin = x - w + 0.03
    while fin < x + w - 0.02:
        ops.append(
            PaintOp(
                ("line", (fin, y - h + 0.02, z), (fin, y + h - 0.02, z), 0.008),
                _shade(item.rgb, 0.85),
                hot,
                True,
            )
        )
        fin += 0.055
    ops.append(
        PaintOp(_rect(x + w, y - h + 0.03, x + w + 0.04, y - h + 0.08, z), (200, 200, 204), hot - 5.0, True)
    )
    return ops


_BOOK_COLOURS = (
    (150, 40, 40),
    (40, 70, 130),
    (200, 180, 120),
    (40, 100, 70),
    (220, 220, 210),
    (90, 60, 110),
    (200, 120, 50),
)


def _shelf(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, amb = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, scene.ambient_c
    board = 0.025
    ops = [
        PaintOp(_rect(x - w, y - h, x + w, y + h, z), _shade(item.rgb, 0.6), amb - 0.2),
    ]
    levels = max(2, round(item.height_m / 0.33))
    level_h = item.height_m / levels
    for level in range(levels):
        bottom = y - h + (level + 1) * level_h
        left = x - w + board
        while left < x + w - board - 0.03:
            width = rng.uniform(0.018, 0.05)
            if rng.uniform() < 0.08:
                left += width
                continue
            top = bottom - level_h * rng.uniform(0.55, 0.88)
            colour = _shade(_BOOK_COLOURS[rng.integers(len(_BOOK_COLOURS))], rng.uniform(0.7, 1.1))
            right = min(left + width, x + w - board)
            ops.append(PaintOp(_rect(left, top, right, bottom, z), colour, amb + rng.uniform(-0.3, 0.2)))
            left = right + 0.002
        ops.append(
            PaintOp(_rect(x - w, bottom - board / 2, x + w, bottom + board / 2, z), item.rgb, amb - 0.2)
        )
    ops.append(PaintOp(_rect(x - w, y - h, x + w, y - h + board, z), item.rgb, amb - 0.2))
    ops.append(PaintOp(_rect(x - w, y - h, x - w + board, y + h, z), item.rgb, amb - 0.2))
    ops.append(PaintOp(_rect(x + w - board, y - h, x + w, y + h, z), item.rgb, amb - 0.2))
    return ops


_POSTER_INKS = ((30, 30, 36), (220, 60, 50), (250, 240, 220), (40, 110, 170), (240, 180, 40))


def _poster(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, paper_c = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, scene.ambient_c + 0.1
    ops = [
        PaintOp(_rect(x - w - 0.015, y - h - 0.015, x + w + 0.015, y + h + 0.015, z), (34, 32, 30), paper_c),
        PaintOp(_rect(x - w, y - h, x + w, y + h, z), item.rgb, paper_c),
    ]
    for _ in range(3):
        ink = _POSTER_INKS[rng.integers(len(_POSTER_INKS))]
        cx, cy = x + rng.uniform(-0.5, 0.5) * w, y + rng.uniform(-0.5, 0.5) * h
        size = rng.uniform(0.2, 0.45) * min(w, h)
        if rng.uniform() < 0.5:
            ops.append(PaintOp(("ellipse", (cx, cy, z), (size, size), 0.0, 0.0), ink, paper_c))
        else:
            ops.append(
                PaintOp(_rect(cx - size, cy - size * 0.4, cx + size, cy + size * 0.4, z), ink, paper_c)
            )
    return ops


def _plant(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, amb = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, scene.ambient_c
    pot_top = y + h * 0.2
    pot = (
        "poly",
        (
            (x - 0.6 * w, pot_top, z),
            (x + 0.6 * w, pot_top, z),
            (x + 0.45 * w, y + h, z),
            (x - 0.45 * w, y + h, z),
        ),
    )
    ops = []
    for _ in range(12):
        angle = rng.uniform(-70.0, 70.0)
        length = rng.uniform(0.25, 0.55) * h
        rad = np.radians(angle)
        cx, cy = x + np.sin(rad) * length * 0.6, pot_top - np.cos(rad) * length * 0.6
        colour = _shade(item.rgb, rng.uniform(0.7, 1.3))
        ops.append(
            PaintOp(("ellipse", (cx, cy, z), (length * 0.5, w * 0.16), angle - 90.0, 0.0), colour, amb - 1.2)
        )
    ops.append(PaintOp(pot, (178, 92, 62), amb - 0.2))
    return ops


def _lamp(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, hot = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, item.temperature_c
    shade = (
        "poly",
        ((x - 0.65 * w, y - h, z), (x + 0.65 * w, y - h, z), (x + w, y + h, z), (x - w, y + h, z)),
    )
    return [
        PaintOp(("line", (x, y + h, z), (x, y + 1.6, z), 0.025), (50, 48, 46), scene.ambient_c + 0.8),
        PaintOp(("ellipse", (x, y + h, z), (0.7 * w, 0.03), 0.0, 0.0), (255, 248, 214), hot + 8.0, True),
        PaintOp(shade, item.rgb, hot, True),
    ]


def _door(item: SceneItem, scene: Scene, z: float, rng: np.random.Generator) -> list[PaintOp]:
    x, y, w, h, cool = item.x_m, item.y_m, item.width_m / 2, item.height_m / 2, scene.ambient_c - 0.4
    ops = [PaintOp(_rect(x - w - 0.04, y - h - 0.04, x + w + 0.04, y + h, z), (226, 224, 218), cool + 0.2)]
    ops.append(PaintOp(_rect(x - w, y - h, x + w, y + h, z), item.rgb, cool))
    for top in (y - h + 0.1, y + 0.05):
        ops.append(
            PaintOp(
                _rect(x - w + 0.1, top, x + w - 0.1, top + h - 0.2, z), _shade(item.rgb, 0.92), cool, False
            )
        )
    ops.append(
        PaintOp(
            ("ellipse", (x - w + 0.08, y + 0.02, z), (0.025, 0.025), 0.0, 0.0), (190, 170, 110), cool - 0.4
        )
    )
    return ops


def _laptop(
    item: SceneItem, scene: Scene, z: float, desk_y: float, rng: np.random.Generator
) -> list[PaintOp]:
    x, w, h, warm = item.x_m, item.width_m / 2, item.height_m, item.temperature_c
    lid_bottom = desk_y - 0.014
    return [
        PaintOp(_rect(x - w, lid_bottom - h, x + w, lid_bottom, z), item.rgb, warm, True, True),
        PaintOp(
            ("ellipse", (x, lid_bottom - h / 2, z), (0.02, 0.02), 0.0, 0.0),
            _shade(item.rgb, 1.25),
            warm - 1.0,
            True,
            True,
        ),
        PaintOp(
            _rect(x - w * 1.04, lid_bottom, x + w * 1.04, desk_y, z),
            _shade(item.rgb, 0.7),
            warm + 4.0,
            True,
            True,
        ),
    ]


def _mug(item: SceneItem, scene: Scene, z: float, desk_y: float, rng: np.random.Generator) -> list[PaintOp]:
    x, w, h, hot = item.x_m, item.width_m / 2, item.height_m, item.temperature_c
    top = desk_y - h
    return [
        PaintOp(
            ("ellipse", (x + w + 0.012, top + h * 0.45, z), (0.024, 0.03), 0.0, 0.011),
            item.rgb,
            hot - 10.0,
            True,
            True,
        ),
        PaintOp(_rect(x - w, top, x + w, desk_y, z), item.rgb, hot, True, True),
        PaintOp(("ellipse", (x, desk_y, z), (w, w * 0.15), 0.0, 0.0), _shade(item.rgb, 0.8), hot, True, True),
        PaintOp(("ellipse", (x, top, z), (w, w * 0.22), 0.0, 0.0), _shade(item.rgb, 1.1), hot, True, True),
        PaintOp(
            ("ellipse", (x, top, z), (w * 0.85, w * 0.16), 0.0, 0.0), (92, 52, 30), hot + 4.0, True, True
        ),
    ]


def _desk_lamp(
    item: SceneItem, scene: Scene, z: float, desk_y: float, rng: np.random.Generator
) -> list[PaintOp]:
    x, w, h, hot, amb = item.x_m, item.width_m / 2, item.height_m, item.temperature_c, scene.ambient_c
    head_x, head_y = x - 0.06, desk_y - h
    shade = (
        "poly",
        (
            (head_x - 0.03, head_y - 0.03, z),
            (head_x + 0.05, head_y - 0.03, z),
            (head_x + 0.09, head_y + 0.06, z),
            (head_x - 0.08, head_y + 0.06, z),
        ),
    )
    return [
        PaintOp(
            ("line", (x, desk_y - 0.01, z), (x + 0.02, desk_y - h * 0.55, z), 0.015),
            item.rgb,
            amb + 3.0,
            False,
            True,
        ),
        PaintOp(
            ("line", (x + 0.02, desk_y - h * 0.55, z), (head_x, head_y, z), 0.015),
            item.rgb,
            amb + 3.0,
            False,
            True,
        ),
        PaintOp(("ellipse", (x, desk_y - 0.01, z), (w, 0.02), 0.0, 0.0), item.rgb, amb + 1.0, False, True),
        PaintOp(
            ("ellipse", (head_x + 0.005, head_y + 0.06, z), (0.06, 0.018), 0.0, 0.0),
            (255, 244, 200),
            hot + 15.0,
            True,
            True,
        ),
        PaintOp(shade, item.rgb, hot, True, True),
    ]


_WALL_ITEMS = {
    "window": _window,
    "radiator": _radiator,
    "shelf": _shelf,
    "poster": _poster,
    "plant": _plant,
    "lamp": _lamp,
    "door": _door,
}
_DESK_ITEM_PAINTERS = {"laptop": _laptop, "mug": _mug, "desk_lamp": _desk_lamp}


def scene_paint_ops(scene: Scene, scene_seed: int) -> list[PaintOp]:
    """Seeded by the scene alone: a room looks the same in every session recorded in it."""
    rng = np.random.default_rng([scene_seed, 0xB00C])
    ops: list[PaintOp] = []
    for item in scene.items:
        if item.kind not in DESK_ITEMS:
            ops.extend(_WALL_ITEMS[item.kind](item, scene, scene.wall_depth_m, rng))
    desk_y, far = scene.desk_drop_m, scene.desk_far_m
    desk_c = scene.ambient_c - 0.6
    desk = (
        "poly",
        ((-4.0, desk_y, far), (4.0, desk_y, far), (4.0, desk_y, _DESK_NEAR_M), (-4.0, desk_y, _DESK_NEAR_M)),
    )
    ops.append(PaintOp(desk, scene.desk_rgb, desk_c, False, True))
    ops.append(
        PaintOp(
            ("line", (-4.0, desk_y, far), (4.0, desk_y, far), 0.006),
            _shade(scene.desk_rgb, 1.2),
            desk_c,
            False,
            True,
        )
    )
    for item in scene.items:
        if item.kind in DESK_ITEMS:
            ops.extend(_DESK_ITEM_PAINTERS[item.kind](item, scene, item.depth_m, desk_y, rng))
    return ops


def _paint(canvas: np.ndarray, camera: PinholeCamera, shape: Shape, value, line_type: int) -> None:
    kind = shape[0]
    if kind == "poly":
        points = np.array([camera.project(*p) for p in shape[1]]) * _ONE
        cv2.fillPoly(canvas, [points.round().astype(np.int32)], value, line_type, _SHIFT)
    elif kind == "ellipse":
        _, centre, (ax, ay), angle, thickness_m = shape
        scale = camera.focal_px / centre[2]
        cx, cy = camera.project(*centre)
        thickness = -1 if thickness_m <= 0 else max(1, round(thickness_m * scale))
        axes = (max(1, round(ax * scale * _ONE)), max(1, round(ay * scale * _ONE)))
        cv2.ellipse(
            canvas,
            (round(cx * _ONE), round(cy * _ONE)),
            axes,
            angle,
            0,
            360,
            value,
            thickness,
            line_type,
            _SHIFT,
        )
    else:
        _, p0, p1, width_m = shape
        scale = camera.focal_px / p0[2]
        a, b = camera.project(*p0), camera.project(*p1)
        start, stop = (round(a[0] * _ONE), round(a[1] * _ONE)), (round(b[0] * _ONE), round(b[1] * _ONE))
        cv2.line(canvas, start, stop, value, max(1, round(width_m * scale)), line_type, _SHIFT)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Roughly unit-variance noise with `cells` blobs per axis: stand-in for plaster, stains, fabric."""
    small = rng.normal(0.0, 1.0, cells).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def colour_temperature_gains(kelvin: float) -> np.ndarray:
    """Light colour that auto white balance only partly corrects: warm lamps stay orange on webcams."""
    kelvins = (2700.0, 3500.0, 4500.0, 5500.0, 6500.0)
    table = np.array(
        [(1.0, 0.80, 0.58), (1.0, 0.87, 0.72), (1.0, 0.94, 0.87), (1.0, 1.0, 1.0), (0.94, 0.98, 1.06)]
    )
    raw = np.array([np.interp(kelvin, kelvins, table[:, c]) for c in range(3)])
    return 0.4 + 0.6 * raw / raw.max()


def _wall_texture(image: np.ndarray, scene: Scene, camera: PinholeCamera, rng: np.random.Generator) -> None:
    z, base = scene.wall_depth_m, scene.wall_rgb
    height, width = camera.shape
    view = camera.plane_view(z)
    x_lo, x_hi = (-2.0 - view.offset_x) / view.scale, (width + 2.0 - view.offset_x) / view.scale
    y_lo, y_hi = (-2.0 - view.offset_y) / view.scale, (height + 2.0 - view.offset_y) / view.scale
    line = cv2.LINE_AA
    if scene.wall_texture == "brick":
        image[:] = _shade(base, 1.06)
        row, y = 0, np.floor(y_lo / 0.075) * 0.075
        while y < y_hi:
            x = np.floor(x_lo / 0.23) * 0.23 - (0.115 if row % 2 else 0.0)
            while x < x_hi:
                _paint(
                    image,
                    camera,
                    _rect(x + 0.005, y + 0.005, x + 0.225, y + 0.07, z),
                    _shade(base, rng.uniform(0.88, 0.98)),
                    line,
                )
                x += 0.23
            y, row = y + 0.075, row + 1
    elif scene.wall_texture == "tiles":
        image[:] = _shade(base, 0.82)
        for y in np.arange(np.floor(y_lo / 0.15) * 0.15, y_hi, 0.15):
            for x in np.arange(np.floor(x_lo / 0.15) * 0.15, x_hi, 0.15):
                _paint(
                    image,
                    camera,
                    _rect(x + 0.003, y + 0.003, x + 0.147, y + 0.147, z),
                    _shade(base, rng.uniform(0.97, 1.02)),
                    line,
                )
    elif scene.wall_texture == "panels":
        image[:] = _shade(base, 0.6)
        for x in np.arange(np.floor(x_lo / 0.14) * 0.14, x_hi, 0.14):
            _paint(
                image,
                camera,
                _rect(x + 0.004, y_lo, x + 0.136, y_hi, z),
                _shade(base, rng.uniform(0.9, 1.08)),
                line,
            )
    elif scene.wall_texture == "wallpaper":
        image[:] = base
        for x in np.arange(np.floor(x_lo / 0.1) * 0.1, x_hi, 0.1):
            _paint(image, camera, _rect(x, y_lo, x + 0.05, y_hi, z), _shade(base, 0.9), line)
            for y in np.arange(np.floor(y_lo / 0.12) * 0.12, y_hi, 0.12):
                _paint(
                    image,
                    camera,
                    ("ellipse", (x + 0.075, y, z), (0.008, 0.008), 0.0, 0.0),
                    _shade(base, 1.15),
                    line,
                )
    else:
        image[:] = base


def render_rgb_backdrop(
    scene: Scene, ops: list[PaintOp], camera: PinholeCamera, scene_seed: int
) -> RgbBackdrop:
    rng = np.random.default_rng([scene_seed, 0xC0105])
    height, width = camera.shape
    image = np.zeros((height, width, 3), np.uint8)
    _wall_texture(image, scene, camera, rng)
    blotches = _smooth_noise(rng, (height, width), (6, 8))[..., None]
    grain = rng.normal(0.0, 2.0, (height, width, 1)).astype(np.float32)
    image = np.clip(image * (1.0 + 0.035 * blotches) + grain, 0, 255).astype(np.uint8)
    keep = np.full((height, width), 255, np.uint8)
    for op in ops:
        _paint(image, camera, op.shape, op.rgb, cv2.LINE_AA)
        if op.front:
            _paint(keep, camera, op.shape, 0, cv2.LINE_8)
    image = np.clip(image * colour_temperature_gains(scene.colour_temperature_k), 0, 255).astype(np.uint8)
    return RgbBackdrop(image, _light_map(scene, camera), keep)


def _light_map(scene: Scene, camera: PinholeCamera) -> np.ndarray:
    height, width = camera.shape
    cx, cy = camera.centre
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    xn, yn = (u - cx) / cx, (v - cy) / cy
    gain = (
        scene.brightness
        * (1.0 + 0.18 * scene.light_from * xn)
        * (1.0 - scene.vignetting * (xn**2 + yn**2) / 2)
    )
    for item in scene.items:
        if item.kind in ("lamp", "desk_lamp", "window"):
            z = item.depth_m or scene.wall_depth_m
            y = scene.desk_drop_m - item.height_m if item.kind == "desk_lamp" else item.y_m
            px, py = camera.project(item.x_m, y, z)
            sigma = (0.2 if item.kind == "window" else 0.14) * width
            strength = 0.25 if item.kind == "window" else 0.45
            gain += strength * np.exp(-((u - px) ** 2 + (v - py) ** 2) / (2 * sigma**2))
    return np.clip(gain * LIGHT_UNIT, 0, 255).astype(np.uint8)


def render_thermal_backdrop(
    scene: Scene, ops: list[PaintOp], camera: PinholeCamera, scene_seed: int
) -> ThermalBackdrop:
    """Wall: room air stratification and a little structure; heat sources: warm or cool their
    surroundings (radiators push a warm plume up the wall); everything clipped to a room's range."""
    rng = np.random.default_rng([scene_seed, 0x7E4A])
    height, width = camera.shape
    view = camera.plane_view(scene.wall_depth_m)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    x_m, y_m = (u - view.offset_x) / view.scale, (v - view.offset_y) / view.scale
    wall = (
        scene.ambient_c
        - scene.vertical_gradient_c_per_m * y_m
        + scene.horizontal_gradient_c_per_m * x_m
        + 0.12 * _smooth_noise(rng, (height, width), (4, 5))
    )
    excess = np.zeros((height, width), np.float32)
    for op in ops:
        if op.heat_source and not op.front:
            _paint(excess, camera, op.shape, op.temperature_c - scene.ambient_c, cv2.LINE_8)
    halo = cv2.GaussianBlur(excess, (0, 0), 7.0)
    plume = np.zeros_like(halo)
    plume[:-8] = halo[8:]
    temperature = np.clip(wall + 0.2 * halo + 0.12 * np.maximum(plume, 0.0), 19.2, 24.8).astype(np.float32)
    keep = np.full((height, width), 255, np.uint8)
    heat_behind = np.zeros((height, width), np.uint8)
    heat_front = np.zeros((height, width), np.uint8)
    for op in ops:
        _paint(temperature, camera, op.shape, op.temperature_c, cv2.LINE_8)
        if op.front:
            _paint(keep, camera, op.shape, 0, cv2.LINE_8)
        if op.heat_source:
            _paint(heat_front if op.front else heat_behind, camera, op.shape, 255, cv2.LINE_8)
        elif op.front:
            _paint(heat_front, camera, op.shape, 0, cv2.LINE_8)
        else:
            _paint(heat_behind, camera, op.shape, 0, cv2.LINE_8)
    return ThermalBackdrop(temperature, keep, (heat_behind > 0) & (keep > 0), heat_front > 0)
