"""Model sizes: one dataclass fixes every shape, so a model file's JSON rebuilds the exact network.

The widths are the only thing that separates the reference design from one that runs in real
time on a laptop CPU; the block structure is the same for every config (see docs/model.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MAX_HEATMAP_CELLS = 24 * 32
"""Matches the driver's largest privacy grid: anything bigger is not a privacy-safe heatmap."""
MAX_CHANNELS = 1024
MAX_Z_DIM = 1024
"""For vector codes; a spatial code's size follows from its map (see `code_channels`)."""
MAX_CODE_CHANNELS = 16


class ModelConfigError(ValueError):
    """A config that cannot describe one of our networks; the message names the field."""


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the generator, discriminator and inversion encoder.

    `generator_channels` has one entry per resolution of the main branch: the first is the width
    of the dense projection at the heatmap grid, each following one the width after one x2
    up-block, so its length is log2(upsampling) + 1. The discriminator has one down-block per x2
    and the encoder one more, as in the reference design.
    """

    heatmap_size: tuple[int, int] = (12, 16)
    upsampling: int = 8
    z_dim: int = 128
    thermal_channels: int = 64
    generator_channels: tuple[int, ...] = (512, 512, 256, 128)
    discriminator_channels: tuple[int, ...] = (128, 256, 512)
    encoder_channels: tuple[int, ...] = (64, 128, 256, 512)
    code_channels: int = 0
    """0: the appearance is one vector of z_dim numbers (the reference design). N > 0: it is a map
    of N channels at half the image resolution, flattened into z (z_dim = N x its cells), which the
    photo's encoder fills and the generator warps to the live pose: one vector cannot carry a
    person's detail (stripes, glasses), a map can (docs/training.md)."""
    room_from_photo: bool = False
    """Spatial codes only. True: the code also holds the photo itself at the image resolution
    (z_dim grows by 3 x its pixels), and the generator lays its painting over that photo through a
    mask it predicts, so the room keeps the photo's sharpness and the painter paints only what
    moved. A camera on a desk sees the same room all call; a painted room is a blurred one."""
    photo_warp: bool = False
    """With `room_from_photo` only. True: the photo itself, moved to the live pose by the flow that
    moves the appearance map, is a third thing the compositing head may show beside the photo as
    it is and the painting: where the person only leaned, the photo's own pixels at their new place
    are sharper than anything painted from a 48x64 map. Measured, it lifts every product-path
    number a little (docs/training.md); the packaged default model (`fast_wide_thermal`) has it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "heatmap_size", _int_tuple("heatmap_size", self.heatmap_size))
        for name in ("generator_channels", "discriminator_channels", "encoder_channels"):
            object.__setattr__(self, name, _int_tuple(name, getattr(self, name)))
        rows, cols = self.heatmap_size
        if len(self.heatmap_size) != 2 or rows < 2 or cols < 2 or rows * cols > MAX_HEATMAP_CELLS:
            raise ModelConfigError(
                f"heatmap_size must be (rows, cols), each >= 2 and at most {MAX_HEATMAP_CELLS} cells; "
                f"got {self.heatmap_size}"
            )
        if (
            not isinstance(self.upsampling, int)
            or self.upsampling < 2
            or self.upsampling & (self.upsampling - 1)
        ):
            raise ModelConfigError(f"upsampling must be a power of two >= 2, got {self.upsampling!r}")
        if not isinstance(self.code_channels, int) or not 0 <= self.code_channels <= MAX_CODE_CHANNELS:
            raise ModelConfigError(
                f"code_channels must be an integer in 0..{MAX_CODE_CHANNELS}, got {self.code_channels!r}"
            )
        if not isinstance(self.room_from_photo, bool):
            raise ModelConfigError(f"room_from_photo must be true or false, got {self.room_from_photo!r}")
        if self.room_from_photo and not self.spatial_code:
            raise ModelConfigError("room_from_photo needs a spatial code (code_channels > 0)")
        if not isinstance(self.photo_warp, bool):
            raise ModelConfigError(f"photo_warp must be true or false, got {self.photo_warp!r}")
        if self.photo_warp and not self.room_from_photo:
            raise ModelConfigError("photo_warp needs room_from_photo (the code must hold the photo)")
        if self.spatial_code:
            if self.z_dim != self.spatial_z_dim(self.code_channels):
                rows, cols = self.image_size
                photo = (
                    (" + 3 x image (the photo)", f" + 3 x {rows} x {cols}")
                    if self.room_from_photo
                    else ("", "")
                )
                raise ModelConfigError(
                    f"z_dim must be code_channels x code grid{photo[0]} = {self.code_channels} x "
                    f"{self.code_grid[0]} x {self.code_grid[1]}{photo[1]} = "
                    f"{self.spatial_z_dim(self.code_channels)}, got {self.z_dim!r}"
                )
        elif not isinstance(self.z_dim, int) or not 1 <= self.z_dim <= MAX_Z_DIM:
            raise ModelConfigError(f"z_dim must be an integer in 1..{MAX_Z_DIM}, got {self.z_dim!r}")
        _check_width("thermal_channels", self.thermal_channels)
        stages = self.up_stages
        for name, expected in (
            ("generator_channels", stages + 1),
            ("discriminator_channels", stages),
            ("encoder_channels", stages + 1),
        ):
            widths = getattr(self, name)
            if len(widths) != expected:
                raise ModelConfigError(
                    f"{name} needs {expected} entries for upsampling {self.upsampling}, got {len(widths)}"
                )
            for width in widths:
                _check_width(name, width)

    @property
    def up_stages(self) -> int:
        return int(math.log2(self.upsampling))

    @property
    def image_size(self) -> tuple[int, int]:
        rows, cols = self.heatmap_size
        return rows * self.upsampling, cols * self.upsampling

    @property
    def spatial_code(self) -> bool:
        return self.code_channels > 0

    @property
    def code_grid(self) -> tuple[int, int]:
        """(rows, cols) of a spatial code: half the image, where a person's texture still shows."""
        rows, cols = self.image_size
        return rows // 2, cols // 2

    @property
    def code_photo_size(self) -> tuple[int, int] | None:
        """(rows, cols) of the photo a code ends with, or None (no `room_from_photo`)."""
        return self.image_size if self.room_from_photo else None

    @property
    def room_size(self) -> int:
        """Numbers of the photo at the end of a spatial code (0 without `room_from_photo`)."""
        return _spatial_z_dim(self.image_size, 0, self.room_from_photo)

    def spatial_z_dim(self, code_channels: int) -> int:
        return _spatial_z_dim(self.image_size, code_channels, self.room_from_photo)

    def to_json(self) -> dict[str, Any]:
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelConfig:
        if not isinstance(data, Mapping):
            raise ModelConfigError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        # Model files written before spatial codes (or rooms or warps of the photo) existed lack them.
        data = {"code_channels": 0, "room_from_photo": False, "photo_warp": False, **data}
        unknown = set(data) - known
        if unknown:
            raise ModelConfigError(f"unknown model config fields {sorted(unknown)}; known: {sorted(known)}")
        missing = known - set(data)
        if missing:
            raise ModelConfigError(f"model config lacks {sorted(missing)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ModelConfigError(f"model config: {error}") from None

    def with_heatmap_size(self, heatmap_size: tuple[int, int]) -> ModelConfig:
        if not self.spatial_code:
            return replace(self, heatmap_size=heatmap_size)
        image_size = (heatmap_size[0] * self.upsampling, heatmap_size[1] * self.upsampling)
        z_dim = _spatial_z_dim(image_size, self.code_channels, self.room_from_photo)
        return replace(self, heatmap_size=heatmap_size, z_dim=z_dim)


def without_room(config: ModelConfig) -> ModelConfig:
    """The same networks with the appearance painted whole, as models were before `room_from_photo`
    (and so without `photo_warp`, which needs the photo)."""
    if not config.room_from_photo:
        return config
    return replace(config, room_from_photo=False, photo_warp=False, z_dim=config.z_dim - config.room_size)


def _spatial_z_dim(image_size: tuple[int, int], code_channels: int, room_from_photo: bool) -> int:
    """A map of `code_channels` at half the image resolution, then the photo if the code holds it."""
    rows, cols = image_size
    return code_channels * (rows // 2) * (cols // 2) + (3 * rows * cols if room_from_photo else 0)


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ModelConfigError(f"{name} must be a list of integers, got {value!r}")
    return tuple(value)


def _check_width(name: str, width: Any) -> None:
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= MAX_CHANNELS:
        raise ModelConfigError(f"{name}: channel widths must be integers in 1..{MAX_CHANNELS}, got {width!r}")


NAMED_CONFIGS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "base": ModelConfig(
        thermal_channels=32,
        generator_channels=(256, 192, 96, 48),
        discriminator_channels=(64, 128, 256),
        encoder_channels=(32, 64, 128, 256),
    ),
    "fast": ModelConfig(
        thermal_channels=16,
        generator_channels=(128, 96, 48, 24),
        discriminator_channels=(48, 96, 192),
        encoder_channels=(24, 48, 96, 192),
        z_dim=4 * 48 * 64 + 3 * 96 * 128,
        code_channels=4,
        room_from_photo=True,
    ),
}
"""`paper` keeps the reference widths; `base` and `fast` are sized by bench/bench_synth.py."""
NAMED_CONFIGS["fast_photo_warp"] = replace(NAMED_CONFIGS["fast"], photo_warp=True)
"""`fast` with the photo moved to the live pose beside the painting (docs/training.md measures it)."""
NAMED_CONFIGS["fast_whole_frame"] = without_room(NAMED_CONFIGS["fast"])
"""`fast` painting the whole frame, room included: the first stages of the model shipped before
the default (docs/training.md), which a `fast` run then taught to take the room from the photo."""
NAMED_CONFIGS["fast_wide_thermal"] = replace(NAMED_CONFIGS["fast_photo_warp"], thermal_channels=32)
"""`fast_photo_warp` reading the heatmap with twice the thermal features: the packaged default
model's config, whose recipe (the `sim_cpu` training configs) meets every target of the
default-model issue on held-out people (docs/training.md)."""
NAMED_CONFIGS["fast_wide_thermal_whole_frame"] = without_room(NAMED_CONFIGS["fast_wide_thermal"])
"""The first stages of a `fast_wide_thermal` run (`sim_cpu`, `sim_cpu_swaps`)."""


def config_name(config: ModelConfig) -> str | None:
    """The name under which NAMED_CONFIGS holds this config, if any: model files store the config
    itself, so a name is found by comparing, and one renamed config still finds its models."""
    return next((name for name, named in NAMED_CONFIGS.items() if named == config), None)


def named_config(name: str, heatmap_size: tuple[int, int] | None = None) -> ModelConfig:
    try:
        config = NAMED_CONFIGS[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown model config {name!r}; choose from {sorted(NAMED_CONFIGS)}"
        ) from None
    return config if heatmap_size is None else config.with_heatmap_size(heatmap_size)
