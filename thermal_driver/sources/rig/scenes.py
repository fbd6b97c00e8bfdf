"""The rooms: what is behind (and in front of) the person, and how it is lit and heated.

Items are placed in metres: wall items on the wall plane at `wall_depth_m`, desk items standing
on the desk at their own depth. Rendering them through each camera's model gives the two views
true parallax, which is what makes the RGB-thermal alignment depth-dependent as on a real rig.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thermal_driver.sources.rig.people import RGB

ItemKind = Literal[
    "window", "radiator", "shelf", "poster", "plant", "lamp", "door", "laptop", "mug", "desk_lamp"
]
WallTexture = Literal["plain", "brick", "tiles", "panels", "wallpaper"]
DESK_ITEMS = ("laptop", "mug", "desk_lamp")


@dataclass(frozen=True)
class SceneItem:
    """`temperature_c` is set for heat sources only; passive furniture sits near room temperature."""

    kind: ItemKind
    x_m: float
    y_m: float
    width_m: float
    height_m: float
    rgb: RGB
    temperature_c: float | None = None
    depth_m: float | None = None
    """Desk items only: their distance from the cameras (they stand on the desk, in front of the person)."""

    @property
    def heat_source(self) -> bool:
        return self.temperature_c is not None


@dataclass(frozen=True)
class Scene:
    name: str
    wall_rgb: RGB
    wall_texture: WallTexture
    wall_depth_m: float
    ambient_c: float
    vertical_gradient_c_per_m: float
    """Warm air collects under the ceiling: the wall is this much warmer per metre upwards."""
    horizontal_gradient_c_per_m: float
    brightness: float
    colour_temperature_k: float
    light_from: float
    """-1: light from the image's left, +1: from its right; sets shading and shadow direction."""
    vignetting: float
    shadow_strength: float
    camera_noise: float
    """RGB noise sigma in grey levels: dim rooms mean high gain and more noise."""
    desk_rgb: RGB
    desk_drop_m: float
    """The desk top lies this far below the cameras; large values keep it out of view."""
    desk_far_m: float
    items: tuple[SceneItem, ...]


SCENES: tuple[Scene, ...] = (
    Scene(
        name="winter study",
        wall_rgb=(214, 200, 172),
        wall_texture="plain",
        wall_depth_m=2.4,
        ambient_c=20.5,
        vertical_gradient_c_per_m=0.6,
        horizontal_gradient_c_per_m=0.2,
        brightness=0.95,
        colour_temperature_k=4800.0,
        light_from=-0.8,
        vignetting=0.3,
        shadow_strength=0.35,
        camera_noise=2.5,
        desk_rgb=(150, 108, 70),
        desk_drop_m=0.30,
        desk_far_m=0.72,
        items=(
            SceneItem("window", -1.0, -0.25, 0.9, 1.1, (205, 218, 232), temperature_c=12.0),
            SceneItem("radiator", -1.0, 0.72, 0.9, 0.45, (232, 232, 226), temperature_c=46.0),
            SceneItem("shelf", 1.0, -0.1, 0.7, 0.9, (120, 84, 52)),
            SceneItem("mug", 0.27, 0.0, 0.085, 0.10, (196, 58, 48), temperature_c=52.0, depth_m=0.55),
        ),
    ),
    Scene(
        name="sunny loft",
        wall_rgb=(228, 222, 212),
        wall_texture="brick",
        wall_depth_m=2.8,
        ambient_c=23.0,
        vertical_gradient_c_per_m=0.4,
        horizontal_gradient_c_per_m=-0.2,
        brightness=1.05,
        colour_temperature_k=5800.0,
        light_from=0.9,
        vignetting=0.25,
        shadow_strength=0.25,
        camera_noise=2.0,
        desk_rgb=(196, 160, 118),
        desk_drop_m=0.31,
        desk_far_m=0.70,
        items=(
            SceneItem("window", 1.05, -0.3, 0.8, 1.2, (252, 250, 238), temperature_c=28.5),
            SceneItem("plant", -1.0, 0.45, 0.45, 0.7, (60, 120, 56)),
            SceneItem("poster", -0.72, -0.55, 0.42, 0.58, (236, 196, 70)),
            SceneItem("laptop", -0.3, 0.0, 0.31, 0.21, (186, 188, 192), temperature_c=34.0, depth_m=0.6),
        ),
    ),
    Scene(
        name="night office",
        wall_rgb=(112, 124, 138),
        wall_texture="panels",
        wall_depth_m=2.2,
        ambient_c=21.5,
        vertical_gradient_c_per_m=0.8,
        horizontal_gradient_c_per_m=0.0,
        brightness=0.62,
        colour_temperature_k=3000.0,
        light_from=0.7,
        vignetting=0.45,
        shadow_strength=0.3,
        camera_noise=5.0,
        desk_rgb=(70, 54, 44),
        desk_drop_m=0.30,
        desk_far_m=0.70,
        items=(
            SceneItem("shelf", -0.95, -0.2, 0.6, 1.0, (60, 44, 34)),
            SceneItem("door", 1.0, 0.1, 0.8, 2.0, (176, 170, 160)),
            SceneItem("desk_lamp", 0.36, 0.0, 0.16, 0.30, (40, 40, 44), temperature_c=46.0, depth_m=0.6),
            SceneItem("laptop", -0.33, 0.0, 0.31, 0.21, (58, 60, 66), temperature_c=37.0, depth_m=0.62),
        ),
    ),
    Scene(
        name="blue bedroom",
        wall_rgb=(92, 122, 168),
        wall_texture="wallpaper",
        wall_depth_m=2.6,
        ambient_c=19.5,
        vertical_gradient_c_per_m=0.5,
        horizontal_gradient_c_per_m=0.3,
        brightness=0.75,
        colour_temperature_k=3500.0,
        light_from=-0.6,
        vignetting=0.35,
        shadow_strength=0.3,
        camera_noise=3.5,
        desk_rgb=(120, 90, 64),
        desk_drop_m=0.42,
        desk_far_m=0.72,
        items=(
            SceneItem("poster", 0.85, -0.45, 0.5, 0.65, (230, 230, 222)),
            SceneItem("lamp", -1.05, -0.35, 0.36, 0.34, (238, 222, 186), temperature_c=40.0),
            SceneItem("radiator", 0.95, 0.75, 0.7, 0.4, (236, 236, 232), temperature_c=42.0),
        ),
    ),
    Scene(
        name="kitchen",
        wall_rgb=(226, 230, 224),
        wall_texture="tiles",
        wall_depth_m=2.3,
        ambient_c=22.0,
        vertical_gradient_c_per_m=0.5,
        horizontal_gradient_c_per_m=-0.1,
        brightness=1.0,
        colour_temperature_k=5200.0,
        light_from=0.6,
        vignetting=0.25,
        shadow_strength=0.2,
        camera_noise=2.0,
        desk_rgb=(214, 210, 200),
        desk_drop_m=0.28,
        desk_far_m=0.68,
        items=(
            SceneItem("window", 0.9, -0.35, 0.75, 0.8, (200, 214, 230), temperature_c=14.0),
            SceneItem("plant", -0.95, 0.2, 0.35, 0.55, (52, 112, 60)),
            SceneItem("mug", -0.26, 0.0, 0.09, 0.105, (240, 240, 236), temperature_c=55.0, depth_m=0.5),
        ),
    ),
    Scene(
        name="library",
        wall_rgb=(132, 92, 60),
        wall_texture="panels",
        wall_depth_m=2.5,
        ambient_c=21.0,
        vertical_gradient_c_per_m=0.6,
        horizontal_gradient_c_per_m=0.1,
        brightness=0.8,
        colour_temperature_k=3200.0,
        light_from=0.3,
        vignetting=0.35,
        shadow_strength=0.3,
        camera_noise=3.0,
        desk_rgb=(96, 62, 40),
        desk_drop_m=0.32,
        desk_far_m=0.72,
        items=(
            SceneItem("shelf", -0.95, -0.1, 0.8, 1.4, (84, 56, 36)),
            SceneItem("shelf", 0.95, -0.1, 0.8, 1.4, (84, 56, 36)),
            SceneItem("lamp", 0.55, -0.78, 0.26, 0.22, (244, 214, 160), temperature_c=38.0),
            SceneItem("mug", 0.3, 0.0, 0.08, 0.095, (36, 72, 120), temperature_c=48.0, depth_m=0.58),
        ),
    ),
    Scene(
        name="plain wall",
        wall_rgb=(202, 200, 194),
        wall_texture="plain",
        wall_depth_m=2.2,
        ambient_c=21.5,
        vertical_gradient_c_per_m=0.5,
        horizontal_gradient_c_per_m=-0.3,
        brightness=0.9,
        colour_temperature_k=4600.0,
        light_from=-0.3,
        vignetting=0.25,
        shadow_strength=0.3,
        camera_noise=2.5,
        desk_rgb=(160, 140, 120),
        desk_drop_m=0.45,
        desk_far_m=0.72,
        items=(),
    ),
    Scene(
        name="green studio",
        wall_rgb=(150, 170, 140),
        wall_texture="plain",
        wall_depth_m=2.5,
        ambient_c=22.5,
        vertical_gradient_c_per_m=0.5,
        horizontal_gradient_c_per_m=0.2,
        brightness=0.92,
        colour_temperature_k=4800.0,
        light_from=0.2,
        vignetting=0.3,
        shadow_strength=0.3,
        camera_noise=2.5,
        desk_rgb=(226, 226, 222),
        desk_drop_m=0.30,
        desk_far_m=0.70,
        items=(
            SceneItem("poster", -0.85, -0.5, 0.4, 0.55, (40, 44, 70)),
            SceneItem("poster", 0.8, -0.55, 0.5, 0.4, (214, 90, 60)),
            SceneItem("radiator", -1.0, 0.7, 0.8, 0.45, (236, 236, 232), temperature_c=48.0),
            SceneItem("plant", 0.95, 0.35, 0.4, 0.8, (44, 104, 52)),
            SceneItem("laptop", 0.3, 0.0, 0.31, 0.21, (190, 192, 196), temperature_c=38.0, depth_m=0.6),
        ),
    ),
)
