"""SPADE-SR: the generator G(z, h), the discriminator D(x) -> (realness, h_hat), the encoder I(x) -> z.

Written from the facts in the project's spade-sr notes; deviations from the reference design are
listed in docs/model.md. Every network takes and returns NCHW tensors in [-1, 1].

The generator is split where a video call needs it split: `project(z)` is the only part that
depends on the appearance, so the inference engine runs it once per latent code, while
`thermal_features(h)` and `paint(x0, features)` run for every frame. Because the projection has
no bias, a blend of two codes' projections is exactly the projection of the blended code.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional

from thermal_synth.model.config import ModelConfig

THERMAL_SLOPE = 0.01
"""LeakyReLU slope of the thermal branch, as in the reference."""
SLOPE = 0.2
"""LeakyReLU slope everywhere else (the notes leave it open; 0.2 is the usual GAN choice)."""
PHOTO_CELL_CHANNELS = 3 * 2 * 2
"""A photo carried at half its resolution: 2x2 RGB pixels per cell (`room_from_photo`)."""


def _conv3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


def _up(x: Tensor, scale: int) -> Tensor:
    return x if scale == 1 else functional.interpolate(x, scale_factor=scale, mode="nearest")


class ThermalUpBlock(nn.Module):
    """Residual block of the self-resampling thermal branch: no normalisation, nearest upsampling."""

    def __init__(self, in_channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.skip = nn.Conv2d(in_channels, out_channels, 1)
        self.conv1 = _conv3(in_channels, out_channels)
        self.conv2 = _conv3(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(_up(x, self.scale))
        y = self.conv1(_up(functional.leaky_relu(x, THERMAL_SLOPE), self.scale))
        y = self.conv2(functional.leaky_relu(y, THERMAL_SLOPE))
        return y + skip


class SpadeSR(nn.Module):
    """Parameter-free BatchNorm, then x * (1 + gamma(t)) + beta(t) from same-size thermal features.

    gamma and beta are one 3x3 conv each in the reference; here they are the two halves of one
    conv with twice the outputs, which is the same function with one kernel launch instead of two.
    """

    def __init__(self, channels: int, thermal_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.modulation = _conv3(thermal_channels, 2 * channels)

    def forward(self, x: Tensor, thermal: Tensor) -> Tensor:
        gamma, beta = self.modulation(functional.leaky_relu(thermal, SLOPE)).chunk(2, dim=1)
        return torch.addcmul(beta, self.norm(x), 1 + gamma)


class SpadeUpBlock(nn.Module):
    """Main-branch residual x2 up-block modulated by the thermal features before and after the up."""

    def __init__(self, in_channels: int, out_channels: int, thermal_channels: int) -> None:
        super().__init__()
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.norm1 = SpadeSR(in_channels, thermal_channels)
        self.conv1 = _conv3(in_channels, out_channels)
        self.norm2 = SpadeSR(out_channels, thermal_channels)
        self.conv2 = _conv3(out_channels, out_channels)

    def forward(self, x: Tensor, thermal_in: Tensor, thermal_out: Tensor) -> Tensor:
        skip = self.skip(_up(x, 2))
        y = functional.leaky_relu(self.norm1(x, thermal_in), SLOPE)
        y = self.conv1(_up(y, 2))
        y = functional.leaky_relu(self.norm2(y, thermal_out), SLOPE)
        return self.conv2(y) + skip


class AppearanceWarp(nn.Module):
    """Moves the photo's appearance map to the live pose, then mixes it into the painting.

    The flow comes from the painting so far (which knows the heatmap) beside the appearance (which
    knows where the person stood in the photo), at the coarsest warp; finer warps reuse it,
    upsampled. It starts at zero, i.e. the photo as it is (so its first layer learns from the
    second step on), and training moves it where the person moved: that is how a spatial code
    can carry a person's detail without the painter copying the photo's pose.
    """

    FLOW_CHANNELS = 32

    def __init__(self, channels: int, appearance_channels: int, *, predicts_flow: bool) -> None:
        super().__init__()
        if predicts_flow:
            self.flow = nn.Sequential(
                _conv3(channels + appearance_channels, self.FLOW_CHANNELS),
                nn.LeakyReLU(SLOPE),
                _conv3(self.FLOW_CHANNELS, 2),
            )
            nn.init.zeros_(self.flow[-1].weight)
            nn.init.zeros_(self.flow[-1].bias)
        self.mix = _conv3(channels + appearance_channels, channels)

    def forward(self, x: Tensor, appearance: Tensor, flow: Tensor | None) -> tuple[Tensor, Tensor]:
        """x and appearance at one scale; `flow` (N, 2, h, w) in grid units from the coarser warp,
        or None for the first warp, which predicts it."""
        flow = self.flow(torch.cat([x, appearance], 1)) if flow is None else flow_at(flow, x.shape[-2:])
        warped = warp(appearance, flow)
        return x + self.mix(functional.leaky_relu(torch.cat([x, warped], 1), SLOPE)), flow


def flow_at(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """The same flow on another grid: it is in grid units, so it moves a finer map or the photo
    itself exactly as it moved the map it was predicted on, and resizing is all it takes."""
    return functional.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Samples `image` at identity + flow; flow is (N, 2, h, w) in [-1, 1] grid units (x, y)."""
    rows, cols = image.shape[-2:]
    ys = torch.linspace(-1.0, 1.0, rows, device=image.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, cols, device=image.device, dtype=flow.dtype)
    identity = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)
    grid = identity.unsqueeze(0) + flow.permute(0, 2, 3, 1)
    return functional.grid_sample(image, grid.to(image.dtype), padding_mode="border", align_corners=True)


class Generator(nn.Module):
    COMPOSITE_CHANNELS = 16
    COMPOSITE_START_LOGIT = 3.0

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.generator_channels
        thermal = config.thermal_channels
        rows, cols = config.heatmap_size
        self.thermal_blocks = nn.ModuleList(
            [ThermalUpBlock(1, thermal, 1)] + [ThermalUpBlock(thermal, thermal, 2) for _ in widths[1:]]
        )
        if config.spatial_code:
            appearance = widths[-2]
            self.appearance = nn.Sequential(
                _conv3(config.code_channels, appearance), nn.LeakyReLU(SLOPE), _conv3(appearance, appearance)
            )
            self.start = _conv3(appearance + thermal, widths[0])
            # One warp per resolution from the first up-block up to the code's own (half the image).
            self.warps = nn.ModuleList(
                AppearanceWarp(w, appearance, predicts_flow=index == 0)
                for index, w in enumerate(widths[1:-1])
            )
        else:
            self.projection = nn.Linear(config.z_dim, widths[0] * rows * cols, bias=False)
        self.up_blocks = nn.ModuleList(
            SpadeUpBlock(w_in, w_out, thermal) for w_in, w_out in itertools.pairwise(widths)
        )
        self.out_norm = SpadeSR(widths[-1], thermal)
        self.to_rgb = _conv3(widths[-1], 3)
        if config.room_from_photo:
            # Where the painting covers the photo: it sees the last features (the live pose and the
            # warped appearance) beside the photo's pixels (where its person stood) and, with
            # `photo_warp`, the photo moved to the live pose; then a second logit says where that
            # moved photo stands in for the painting.
            sources = 2 if config.photo_warp else 1
            self.composite = nn.Sequential(
                _conv3(widths[-1] + 3 * sources, self.COMPOSITE_CHANNELS),
                nn.LeakyReLU(SLOPE),
                _conv3(self.COMPOSITE_CHANNELS, sources),
            )
            # At first the painting covers 95 % of the photo everywhere, and the moved photo stands
            # in for 5 % of it: a painter trained without the photo (--init-from such a model)
            # starts out painting as it did.
            starts = (self.COMPOSITE_START_LOGIT, -self.COMPOSITE_START_LOGIT)[:sources]
            with torch.no_grad():
                self.composite[-1].bias.copy_(torch.tensor(starts))

    def project(self, z: Tensor) -> Tensor:
        """Everything that depends on the appearance alone, computed once per code by the engine.

        Vector codes: (N, z_dim) -> (N, C0, rows, cols). Spatial codes: (N, z_dim) -> appearance
        features at the code's grid. Both are linear in z up to the spatial code's activations,
        and blends of codes are made on z, never on this."""
        if self.config.spatial_code:
            code, room = z.split([z.shape[1] - self.config.room_size, self.config.room_size], 1)
            appearance = self.appearance(
                code.reshape(z.shape[0], self.config.code_channels, *self.config.code_grid)
            )
            if not self.config.room_from_photo:
                return appearance
            # The photo rides along at the code's grid, 2x2 pixels per cell, so that one tensor
            # still carries everything the engine caches per code.
            photo = room.reshape(z.shape[0], 3, *self.config.image_size)
            return torch.cat([appearance, functional.pixel_unshuffle(photo, 2)], 1)
        rows, cols = self.config.heatmap_size
        return self.projection(z).view(z.shape[0], self.config.generator_channels[0], rows, cols)

    def thermal_features(self, heatmap: Tensor) -> list[Tensor]:
        """(N, 1, rows, cols) -> features at 1x, 2x, 4x, ... the heatmap grid."""
        features = []
        x = heatmap
        for block in self.thermal_blocks:
            x = block(x)
            features.append(x)
        return features

    def paint(self, projected: Tensor, features: list[Tensor]) -> Tensor:
        if self.config.spatial_code:
            return self._paint_from_map(projected, features)
        x = projected
        for index, block in enumerate(self.up_blocks):
            x = block(x, features[index], features[index + 1])
        return self._to_image(x, features)

    def _paint_from_map(self, projected: Tensor, features: list[Tensor]) -> Tensor:
        appearance, photo = projected, None
        if self.config.room_from_photo:
            appearance, cells = projected.split(
                [projected.shape[1] - PHOTO_CELL_CHANNELS, PHOTO_CELL_CHANNELS], 1
            )
            photo = functional.pixel_shuffle(cells, 2)
        pyramid = [appearance]
        while pyramid[0].shape[-2:] != features[0].shape[-2:]:
            pyramid.insert(0, functional.avg_pool2d(pyramid[0], 2))
        x = self.start(torch.cat([pyramid[0], features[0]], 1))
        flow = None
        for index, block in enumerate(self.up_blocks):
            x = block(x, features[index], features[index + 1])
            if index < len(self.warps):
                x, flow = self.warps[index](x, pyramid[index + 1], flow)
        return self._to_image(x, features, photo, flow)

    def _to_image(
        self, x: Tensor, features: list[Tensor], photo: Tensor | None = None, flow: Tensor | None = None
    ) -> Tensor:
        x = functional.leaky_relu(self.out_norm(x, features[-1]), SLOPE)
        painted = torch.tanh(self.to_rgb(x))
        if photo is None:
            return painted
        if not self.config.photo_warp:
            cover = torch.sigmoid(self.composite(torch.cat([x, photo], 1)))
            # Not torch.lerp: under bf16 autocast the cover and the photo differ in dtype.
            return photo + cover * (painted - photo)
        moved = warp(photo, flow_at(flow, photo.shape[-2:]))
        cover, stand_in = torch.sigmoid(self.composite(torch.cat([x, photo, moved], 1))).chunk(2, dim=1)
        painted = painted + stand_in * (moved - painted)
        return photo + cover * (painted - photo)

    def forward(self, z: Tensor, heatmap: Tensor) -> Tensor:
        return self.paint(self.project(z), self.thermal_features(heatmap))


class DownBlock(nn.Module):
    """Residual block with optional x2 average-pool down-sampling and optional BatchNorm."""

    def __init__(
        self, in_channels: int, out_channels: int, *, down: bool, batch_norm: bool, first: bool = False
    ) -> None:
        super().__init__()
        self.down = down
        self.first = first
        self.skip = nn.Conv2d(in_channels, out_channels, 1)
        self.norm1 = nn.BatchNorm2d(in_channels) if batch_norm and not first else nn.Identity()
        self.conv1 = _conv3(in_channels, out_channels)
        self.norm2 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.conv2 = _conv3(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(x)
        # The image itself is the first block's input: activating raw pixels would clip them.
        y = x if self.first else functional.leaky_relu(self.norm1(x), SLOPE)
        y = self.conv1(y)
        y = self.conv2(functional.leaky_relu(self.norm2(y), SLOPE))
        y = y + skip
        return functional.avg_pool2d(y, 2) if self.down else y


class Discriminator(nn.Module):
    """Realness score plus the heatmap read back from the image (AC-GAN style)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.discriminator_channels
        rows, cols = config.heatmap_size
        self.blocks = nn.Sequential(
            *(
                DownBlock(w_in, w_out, down=True, batch_norm=False, first=index == 0)
                for index, (w_in, w_out) in enumerate(zip((3, *widths), widths, strict=False))
            )
        )
        self.realness = nn.Linear(widths[-1] * rows * cols, 1)
        self.heatmap_block = DownBlock(widths[-1], widths[-1], down=False, batch_norm=False)
        self.to_heatmap = _conv3(widths[-1], 1)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, H, W) -> realness (N,) and heatmap (N, 1, rows, cols) in [-1, 1]."""
        features = self.blocks(image)
        score = self.realness(functional.leaky_relu(features, SLOPE).flatten(1)).squeeze(1)
        heatmap = self.to_heatmap(functional.leaky_relu(self.heatmap_block(features), SLOPE))
        return score, torch.tanh(heatmap)


class InversionEncoder(nn.Module):
    """Photo -> latent code, so a user's own photos become appearances in the latent bank.

    The reference halves the image once per block (four times). The last block here halves only
    when the heatmap grid is even, so 12x16 models match the reference (6x8 at the end) while 5x8
    models, whose 40x64 images do not divide by 16, still build.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.encoder_channels
        rows, cols = config.heatmap_size
        last_down = rows % 2 == 0 and cols % 2 == 0
        blocks = []
        for index, (w_in, w_out) in enumerate(zip((3, *widths), widths, strict=False)):
            down = index < config.up_stages or last_down
            blocks.append(DownBlock(w_in, w_out, down=down, batch_norm=True, first=index == 0))
        self.blocks = nn.Sequential(*blocks)
        self.out_norm = nn.BatchNorm2d(widths[-1])
        cells = (rows // 2) * (cols // 2) if last_down else rows * cols
        self.to_code = nn.Linear(widths[-1] * cells, config.z_dim, bias=False)
        # No affine: codes keep the N(0, I) statistics of the generator's prior.
        self.code_norm = nn.BatchNorm1d(config.z_dim, affine=False)

    def forward(self, image: Tensor) -> Tensor:
        features = functional.leaky_relu(self.out_norm(self.blocks(image)), SLOPE)
        return self.code_norm(self.to_code(features.flatten(1)))


class SpatialEncoder(nn.Module):
    """Photo -> spatial code: a map at half the image resolution, bounded to [-1, 1].

    A full-resolution stem, one stride-2 step, residual convolutions, and a coarse branch at an
    eighth of the image so every cell knows where the person stands in the photo. The widths are
    the encoder config's first two entries.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        stem, width = config.encoder_channels[:2]
        self.stem = _conv3(3, stem)
        self.down = nn.Conv2d(stem, width, 4, stride=2, padding=1)
        self.local = nn.Sequential(_conv3(width, width), nn.LeakyReLU(SLOPE), _conv3(width, width))
        self.context = nn.Sequential(_conv3(width, width), nn.LeakyReLU(SLOPE), _conv3(width, width))
        self.to_code = _conv3(width, config.code_channels)

    def forward(self, image: Tensor) -> Tensor:
        x = functional.leaky_relu(self.down(functional.leaky_relu(self.stem(image), SLOPE)), SLOPE)
        x = x + self.local(x)
        coarse = self.context(functional.avg_pool2d(x, 4))
        x = x + functional.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        code = torch.tanh(self.to_code(functional.leaky_relu(x, SLOPE))).flatten(1)
        return torch.cat([code, image.flatten(1)], 1) if self.config.room_from_photo else code


class SpadeSRModel(nn.Module):
    """The networks of one model, under the state-dict prefixes the model file uses.

    `with_discriminator` False leaves D out: the CPU recipe's critics work on frozen ImageNet
    features and stay in its checkpoints, so its model files hold only what inference needs.
    """

    def __init__(self, config: ModelConfig, *, with_discriminator: bool = True) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        if with_discriminator:
            self.discriminator = Discriminator(config)
        self.encoder = SpatialEncoder(config) if config.spatial_code else InversionEncoder(config)
