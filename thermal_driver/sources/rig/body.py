"""A 2D articulated upper body, described once in metres and drawn into each camera's label map.

The person is a flat cut-out at one depth (their shoulder plane). That keeps the RGB-to-thermal
mapping of the person an exact affine, and lets each camera draw the same shapes through its own
`PlaneView`. Head turns are faked in 2.5D: facial features are points on an ellipsoid rotated by
yaw and pitch, which is enough at 120x160 and reads as a turned head at 240x320.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from thermal_driver.sources.rig.camera import PlaneView
from thermal_driver.sources.rig.people import Identity, Outfit


class Part(IntEnum):
    """Label-map values; the renderers shade by looking these up, so they must stay below 32."""

    BACKGROUND = 0
    FACE = 1
    CHEEK = 2
    NOSE = 3
    EYE_WHITE = 4
    IRIS = 5
    EYEBROW = 6
    MOUTH = 7
    EAR = 8
    NECK = 9
    ARM_SKIN = 10
    HAND = 11
    HAIR = 12
    BEARD = 13
    GARMENT = 14
    SLEEVE = 15
    COLLAR = 16
    HOOD = 17
    HOOD_RIM = 18
    STRING = 19
    LENS = 20
    FRAME = 21
    LENS_EYE_WHITE = 22
    LENS_IRIS = 23
    """Eyes seen through glasses: visible in RGB, but glass is opaque to LWIR."""


SKIN_PARTS = (Part.FACE, Part.CHEEK, Part.NOSE, Part.EAR, Part.NECK, Part.ARM_SKIN, Part.HAND)
FABRIC_PARTS = (Part.GARMENT, Part.SLEEVE, Part.COLLAR, Part.HOOD, Part.HOOD_RIM, Part.STRING)

_ELLIPSE, _CAPSULE, _POLYGON, _LINE = range(4)
_SHIFT = 4
_ONE = 1 << _SHIFT
"""cv2's fixed-point drawing: 1/16 pixel precision, so slow motion moves edges smoothly."""

UPPER_ARM_M, FOREARM_M, HAND_M = 0.29, 0.25, 0.17
NECK_LENGTH_M = 0.075
PIVOT_BELOW_SHOULDERS_M = 0.55
Point = tuple[float, float]
ToBody = Callable[[float, float], Point]
"""Leaning rotates the upper body about the hips, this far below the shoulder line."""


@dataclass(frozen=True)
class PersonShapes:
    """One frame's person: primitives in metres plus the points textures are pinned to."""

    primitives: list[tuple]
    torso_anchor: tuple[float, float]
    head_anchor: tuple[float, float]


def build_person(identity: Identity, outfit: Outfit, pose: dict[str, float]) -> PersonShapes:
    """Back-to-front primitive list; later shapes occlude earlier ones, as a painter would."""
    prims: list[tuple] = []
    thick_fabric = outfit.kind in ("sweater", "hoodie")
    bulk = 0.012 if thick_fabric else 0.004
    breath = pose["breath"]
    x0 = pose["x_offset_m"]
    y0 = identity.shoulder_drop_m + pose["height_offset_m"]
    lean = math.radians(pose["lean_deg"])
    cos_l, sin_l = math.cos(lean), math.sin(lean)
    pivot_y = y0 + PIVOT_BELOW_SHOULDERS_M

    def body(u: float, v: float) -> tuple[float, float]:
        dy = y0 + v - pivot_y
        return x0 + u * cos_l - dy * sin_l, pivot_y + u * sin_l + dy * cos_l

    def turn(u: float, v: float) -> tuple[float, float]:
        return u * cos_l - v * sin_l, u * sin_l + v * cos_l

    lean_deg = pose["lean_deg"]
    half_shoulders = identity.shoulder_half_width_m + 0.0015 * breath
    raise_right = pose["shoulder_raise_right_m"] + 0.004 * breath
    raise_left = pose["shoulder_raise_left_m"] + 0.004 * breath
    neck_half = identity.neck_width_m / 2

    head = _Head(identity, pose, body(0.0, -NECK_LENGTH_M))
    hood_up = outfit.kind == "hoodie" and outfit.hood_up
    if identity.hair_style in ("long", "bob") and not hood_up:
        hair_end = 0.16 if identity.hair_style == "long" else -0.03
        prims.append(head.ellipse(Part.HAIR, (0.0, -0.02, 0.0), (1.1, 1.05)))
        prims.append(
            (
                _POLYGON,
                Part.HAIR,
                (
                    head.point(-1.1 * head.a, -0.3 * head.b, 0.0)[:2],
                    head.point(1.1 * head.a, -0.3 * head.b, 0.0)[:2],
                    body(head.a * 1.25, hair_end),
                    body(-head.a * 1.25, hair_end),
                ),
            )
        )
    if outfit.kind == "hoodie" and not hood_up:
        prims.append(
            (_ELLIPSE, Part.HOOD, *body(0.0, -0.012), neck_half + 0.055, 0.05, lean_deg, 0, 360, 0.0)
        )
    prims.append((_CAPSULE, Part.NECK, *body(0.0, 0.01), neck_half, *head.neck_top, neck_half * 0.95))

    torso_outline = (
        (-neck_half * 1.15, -0.03 - 0.3 * raise_right),
        (-half_shoulders + 0.035, -0.028 - raise_right),
        (-half_shoulders - 0.03 - bulk, 0.02 - raise_right),
        (-half_shoulders + 0.02 - bulk, 0.15),
        (-half_shoulders * 0.82 - bulk, 0.75),
        (half_shoulders * 0.82 + bulk, 0.75),
        (half_shoulders - 0.02 + bulk, 0.15),
        (half_shoulders + 0.03 + bulk, 0.02 - raise_left),
        (half_shoulders - 0.035, -0.028 - raise_left),
        (neck_half * 1.15, -0.03 - 0.3 * raise_left),
    )
    prims.append((_POLYGON, Part.GARMENT, tuple(body(u, v) for u, v in torso_outline)))
    prims.extend(_neckline(outfit, body, neck_half, lean_deg))

    if hood_up:
        prims.append(head.ellipse(Part.HOOD, (0.0, 0.04, 0.0), (1.42, 1.22)))
        prims.append(
            (
                _POLYGON,
                Part.HOOD,
                (
                    head.point(-1.38 * head.a, 0.1 * head.b, 0.0)[:2],
                    head.point(1.38 * head.a, 0.1 * head.b, 0.0)[:2],
                    body(neck_half + 0.07, 0.01),
                    body(-neck_half - 0.07, 0.01),
                ),
            )
        )
    prims.extend(head.shapes(hood_up))
    for side, prefix in ((-1.0, "right"), (1.0, "left")):
        raise_m = raise_right if side < 0 else raise_left
        shoulder = body(side * (half_shoulders - 0.01), 0.03 - raise_m)
        prims.extend(
            _arm(
                pose, prefix, side, shoulder=shoulder, turn=turn, long_sleeves=outfit.long_sleeves, bulk=bulk
            )
        )
    return PersonShapes(prims, body(0.0, 0.0), head.centre)


class _Head:
    """Head-local frame: origin at the head's centre, x right, y down, z towards the camera."""

    def __init__(self, identity: Identity, pose: dict[str, float], neck_top: tuple[float, float]) -> None:
        self.identity = identity
        self.a = identity.head_width_m / 2
        self.b = identity.head_height_m / 2
        yaw, pitch = math.radians(pose["head_yaw_deg"]), math.radians(pose["head_pitch_deg"])
        self.cos_yaw, self.sin_yaw = math.cos(yaw), math.sin(yaw)
        self.cos_pitch, self.sin_pitch = math.cos(pitch), math.sin(pitch)
        self.angle_deg = pose["head_roll_deg"] + pose["lean_deg"]
        roll = math.radians(self.angle_deg)
        self.cos_roll, self.sin_roll = math.cos(roll), math.sin(roll)
        self.neck_top = neck_top
        rise = -0.72 * self.b + 0.12 * self.b * self.sin_pitch
        self.centre = (neck_top[0] - rise * self.sin_roll, neck_top[1] + rise * self.cos_roll)
        self.feature_width = max(0.3, self.cos_yaw)

    def point(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """Image-plane position (metres) and remaining depth of a head-local 3D point."""
        xr = x * self.cos_yaw + z * self.sin_yaw
        zr = -x * self.sin_yaw + z * self.cos_yaw
        yr = y * self.cos_pitch + zr * self.sin_pitch
        depth = -y * self.sin_pitch + zr * self.cos_pitch
        return (
            self.centre[0] + xr * self.cos_roll - yr * self.sin_roll,
            self.centre[1] + xr * self.sin_roll + yr * self.cos_roll,
            depth,
        )

    def ellipse(
        self,
        part: Part,
        at: tuple[float, float, float],
        axes: tuple[float, float],
        arc: tuple[int, int] = (0, 360),
    ) -> tuple:
        """Ellipse at head-local (x*a, y*b, z*a), semi-axes (ax*a, ay*b); it turns with the head."""
        px, py, _ = self.point(at[0] * self.a, at[1] * self.b, at[2] * self.a)
        return (_ELLIPSE, part, px, py, axes[0] * self.a, axes[1] * self.b, self.angle_deg, *arc, 0.0)

    def shapes(self, hood_up: bool) -> list[tuple]:
        a, b, style = self.a, self.b, self.identity.hair_style
        prims: list[tuple] = []
        ears = [] if hood_up else [self.point(side * 0.97 * a, 0.05 * b, -0.1 * a) for side in (-1.0, 1.0)]
        ear_width = 0.17 + 0.25 * abs(self.sin_yaw)
        for ex, ey, depth in ears:
            if depth < 0.15 * a:
                prims.append(
                    (_ELLIPSE, Part.EAR, ex, ey, ear_width * a, 0.27 * b, self.angle_deg, 0, 360, 0.0)
                )
        turn_narrowing = 1.0 - 0.35 * abs(self.sin_yaw)
        if hood_up:
            face_w, face_h = 0.95 * turn_narrowing, 0.9
            prims.append(self.ellipse(Part.FACE, (0.0, 0.12, 0.62), (face_w, face_h)))
            rim = (
                *self.point(0.0, 0.12 * b, 0.62 * a)[:2],
                face_w * a + 0.009,
                face_h * b + 0.009,
            )
            prims.append((_ELLIPSE, Part.HOOD_RIM, *rim, self.angle_deg, 0, 360, 0.018))
        else:
            if style == "bun":
                prims.append(self.ellipse(Part.HAIR, (-0.1 * self.sin_yaw, -1.05, -0.3), (0.38, 0.26)))
            prims.append(self.ellipse(Part.FACE, (0.0, 0.0, 0.0), (1.0, 1.0)))
            if style != "bald":
                volume = {"curly": 1.16, "bob": 1.06, "long": 1.04}.get(style, 1.02)
                prims.append(self.ellipse(Part.HAIR, (0.0, 0.02, 0.0), (volume, volume), (180, 360)))
                if style == "curly":
                    for angle in range(190, 360, 24):
                        rad = math.radians(angle)
                        bump = self.ellipse(
                            Part.HAIR, (1.08 * math.cos(rad), 1.02 * math.sin(rad), 0.0), (0.3, 0.22)
                        )
                        prims.append(bump)
            prims.append(self.ellipse(Part.FACE, (0.0, 0.2, 0.62), (0.86 * turn_narrowing, 0.8)))
        for ex, ey, depth in ears:
            if depth >= 0.15 * a:
                prims.append(
                    (_ELLIPSE, Part.EAR, ex, ey, ear_width * a, 0.27 * b, self.angle_deg, 0, 360, 0.0)
                )
        prims.extend(self._features())
        if style in ("long", "bob") and not hood_up:
            for side in (-1.0, 1.0):
                lock = tuple(
                    self.point(side * x * a, y * b, 0.2 * a)[:2]
                    for x, y in (
                        (1.05, -0.45),
                        (0.84, -0.25),
                        (0.8, 0.5),
                        (0.86, 0.95),
                        (1.12, 0.9),
                        (1.12, 0.2),
                    )
                )
                prims.append((_POLYGON, Part.HAIR, lock))
        return prims

    def _features(self) -> list[tuple]:
        a, b, w = self.a, self.b, self.feature_width
        prims: list[tuple] = []
        visible = 0.05 * a

        def place(
            part: Part, at: tuple[float, float, float], axes: tuple[float, float], arc=(0, 360)
        ) -> None:
            """Features on the far side of the head are hidden by it."""
            px, py, depth = self.point(*at)
            if depth > visible:
                prims.append((_ELLIPSE, part, px, py, *axes, self.angle_deg, *arc, 0.0))

        for side in (-1.0, 1.0):
            place(Part.CHEEK, (side * 0.5 * a, 0.25 * b, 0.7 * a), (0.24 * a * w, 0.2 * b))
        if self.identity.beard:
            place(Part.BEARD, (0.0, 0.3 * b, 0.6 * a), (0.9 * a * w, 0.68 * b), (0, 180))
            place(Part.BEARD, (0.0, 0.42 * b, 0.9 * a), (0.36 * a * w, 0.08 * b))
        glasses = self.identity.glasses
        lenses = []
        for side in (-1.0, 1.0):
            inner = self.point(side * 0.16 * a, -0.3 * b, 0.9 * a)
            outer = self.point(side * 0.62 * a, -0.33 * b, 0.72 * a)
            if min(inner[2], outer[2]) > visible:
                prims.append((_LINE, Part.EYEBROW, inner[0], inner[1], outer[0], outer[1], 0.011))
            if glasses:
                px, py, depth = self.point(side * 0.38 * a, -0.08 * b, 0.95 * a)
                if depth > visible:
                    lenses.append((px, py, 0.29 * a * w, 0.21 * a, self.angle_deg, 0, 360))
                    prims.append((_ELLIPSE, Part.LENS, *lenses[-1], 0.0))
            eye_white, iris = (
                (Part.LENS_EYE_WHITE, Part.LENS_IRIS) if glasses else (Part.EYE_WHITE, Part.IRIS)
            )
            place(eye_white, (side * 0.38 * a, -0.1 * b, 0.82 * a), (0.2 * a * w, 0.085 * a))
            place(iris, (side * 0.38 * a, -0.1 * b, 0.86 * a), (0.08 * a * w, 0.08 * a))
        for lens in lenses:
            prims.append((_ELLIPSE, Part.FRAME, *lens, 0.004))
        if len(lenses) == 2:
            (x0, y0, _), (x1, y1, _) = (self.point(side * 0.1 * a, -0.1 * b, 1.0 * a) for side in (-1.0, 1.0))
            prims.append((_LINE, Part.FRAME, x0, y0, x1, y1, 0.004))
        place(Part.NOSE, (0.0, 0.16 * b, 1.0 * a), (0.14 * a, 0.24 * b))
        place(Part.MOUTH, (0.0, 0.52 * b, 0.85 * a), (0.3 * a * w, 0.065 * b))
        return prims


def _neckline(outfit: Outfit, body: ToBody, neck_half: float, lean_deg: float) -> list[tuple]:
    centre = body(0.0, -0.03)
    if outfit.kind == "collar_shirt":
        prims = [(_POLYGON, Part.NECK, (body(-neck_half, -0.035), body(neck_half, -0.035), body(0.0, 0.09)))]
        for side in (-1.0, 1.0):
            flap = (
                body(side * neck_half * 1.25, -0.05),
                body(side * neck_half * 0.7, -0.045),
                body(side * 0.008, 0.085),
                body(side * neck_half * 1.35, 0.055),
            )
            prims.append((_POLYGON, Part.COLLAR, flap))
        prims.append((_LINE, Part.COLLAR, *body(0.0, 0.09), *body(0.0, 0.75), 0.01))
        return prims
    if outfit.kind == "sweater":
        return [(_ELLIPSE, Part.COLLAR, *body(0.0, -0.04), neck_half * 1.1, 0.03, lean_deg, 0, 180, 0.016)]
    depth = 0.045 if outfit.kind == "tshirt" else 0.03
    prims = [
        (_ELLIPSE, Part.NECK, *centre, neck_half * 1.05, depth, lean_deg, 0, 180, 0.0),
        (_ELLIPSE, Part.COLLAR, *centre, neck_half * 1.05, depth, lean_deg, 0, 180, 0.01),
    ]
    if outfit.kind == "hoodie" and outfit.strings:
        for side in (-1.0, 1.0):
            prims.append((_LINE, Part.STRING, *body(side * 0.03, 0.0), *body(side * 0.036, 0.21), 0.008))
            prims.append(
                (_CAPSULE, Part.STRING, *body(side * 0.036, 0.2), 0.007, *body(side * 0.037, 0.235), 0.007)
            )
    elif outfit.kind == "hoodie":
        prims.append((_LINE, Part.COLLAR, *body(0.0, 0.0), *body(0.0, 0.75), 0.007))
    return prims


def _arm(
    pose: dict[str, float],
    prefix: str,
    side: float,
    *,
    shoulder: Point,
    turn: ToBody,
    long_sleeves: bool,
    bulk: float,
) -> list[tuple]:
    """Shoulder-elbow-wrist chain; angles are relative to the (leaning) torso."""
    abduction = math.radians(pose[f"{prefix}_upper_arm_deg"])
    forearm_angle = abduction + math.radians(pose[f"{prefix}_elbow_deg"])
    ux, uy = turn(side * math.sin(abduction), math.cos(abduction))
    fx, fy = turn(side * math.sin(forearm_angle), math.cos(forearm_angle))
    upper = UPPER_ARM_M * pose[f"{prefix}_upper_arm_scale"]
    fore_scale = pose[f"{prefix}_forearm_scale"]
    forearm = FOREARM_M * fore_scale
    sx, sy = shoulder
    ex, ey = sx + ux * upper, sy + uy * upper
    wx, wy = ex + fx * forearm, ey + fy * forearm
    hand = HAND_M * (0.45 + 0.55 * fore_scale)
    hand_centre = (wx + fx * hand * 0.42, wy + fy * hand * 0.42)
    hand_angle = math.degrees(math.atan2(fy, fx))
    prims: list[tuple] = []
    if long_sleeves:
        prims.append((_CAPSULE, Part.SLEEVE, sx, sy, 0.05 + bulk, ex, ey, 0.045 + bulk))
        prims.append(
            (_CAPSULE, Part.SLEEVE, ex, ey, 0.045 + bulk, wx - fx * 0.01, wy - fy * 0.01, 0.035 + bulk)
        )
        cuff = (
            wx - fx * 0.035,
            wy - fy * 0.035,
            0.037 + bulk,
            wx - fx * 0.005,
            wy - fy * 0.005,
            0.036 + bulk,
        )
        prims.append((_CAPSULE, Part.COLLAR, *cuff))
    else:
        prims.append((_CAPSULE, Part.ARM_SKIN, sx, sy, 0.045, ex, ey, 0.04))
        prims.append((_CAPSULE, Part.ARM_SKIN, ex, ey, 0.04, wx, wy, 0.028))
        mid = (sx + ux * upper * 0.5, sy + uy * upper * 0.5)
        prims.append((_CAPSULE, Part.SLEEVE, sx, sy, 0.058 + bulk, *mid, 0.054 + bulk))
    prims.append((_ELLIPSE, Part.HAND, *hand_centre, hand * 0.5, 0.045, hand_angle, 0, 360, 0.0))
    return prims


def draw_labels(primitives: list[tuple], view: PlaneView, canvas: np.ndarray) -> np.ndarray:
    """Rasterise without antialiasing: a label map must never blend two labels into a third."""
    s = view.scale * _ONE
    ox, oy = view.offset_x * _ONE, view.offset_y * _ONE
    line = cv2.LINE_8
    for prim in primitives:
        kind, label = prim[0], int(prim[1])
        if kind == _ELLIPSE:
            _, _, cx, cy, ax, ay, angle, start, end, thickness_m = prim
            centre = (round(cx * s + ox), round(cy * s + oy))
            axes = (max(round(ax * s), 1), max(round(ay * s), 1))
            thickness = -1 if thickness_m <= 0 else max(1, round(thickness_m * view.scale))
            cv2.ellipse(canvas, centre, axes, angle, start, end, label, thickness, line, _SHIFT)
        elif kind == _CAPSULE:
            _, _, x0, y0, r0, x1, y1, r1 = prim
            x0, y0, x1, y1 = x0 * s + ox, y0 * s + oy, x1 * s + ox, y1 * s + oy
            r0, r1 = r0 * s, r1 * s
            length = math.hypot(x1 - x0, y1 - y0)
            if length > 1e-3:
                nx, ny = (y0 - y1) / length, (x1 - x0) / length
                quad = (
                    np.array(
                        [
                            (x0 + nx * r0, y0 + ny * r0),
                            (x1 + nx * r1, y1 + ny * r1),
                            (x1 - nx * r1, y1 - ny * r1),
                            (x0 - nx * r0, y0 - ny * r0),
                        ]
                    )
                    .round()
                    .astype(np.int32)
                )
                cv2.fillConvexPoly(canvas, quad, label, line, _SHIFT)
            cv2.circle(canvas, (round(x0), round(y0)), round(r0), label, -1, line, _SHIFT)
            cv2.circle(canvas, (round(x1), round(y1)), round(r1), label, -1, line, _SHIFT)
        elif kind == _POLYGON:
            points = np.array(prim[2]) * s + (ox, oy)
            cv2.fillPoly(canvas, [points.round().astype(np.int32)], label, line, _SHIFT)
        else:
            _, _, x0, y0, x1, y1, width_m = prim
            start = (round(x0 * s + ox), round(y0 * s + oy))
            stop = (round(x1 * s + ox), round(y1 * s + oy))
            cv2.line(canvas, start, stop, label, max(1, round(width_m * view.scale)), line, _SHIFT)
    return canvas
