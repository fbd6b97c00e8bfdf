"""The attackers: small CNNs trained on exactly what an eavesdropper records.

An off-the-shelf detector failing on a 12x16 heatmap (the paper's Table II) says little: the
detector was never shown one. An attacker who records the stream can train on it, so the audit
trains one per question and resolution. Every attacker reads temperatures on a fixed scale, never
normalised per frame: a radiometric sensor publishes absolute values, and 34 C skin against a 21 C
wall is exactly what makes a person stand out. (Re-identification reads the excess over the empty
room, in kelvin; see `foreground_input`.)

One design serves every resolution: a stem that patchifies large frames down to about 15x20
cells and keeps small ones whole, then a few 3x3 convolutions. A learned 8x8-pixel patch of the
raw frame is still finer than a 12x16 heatmap cell (10x10 pixels under a 10-pixel blur), so the
raw attacker keeps the advantage of its finer view, at a CPU cost close to the heatmaps'.
Training is plain Adam with cosine decay for a fixed number of steps, seeded, so a run is
reproducible and its cost known in advance. The same loop trains the temporal re-identifier (on
the mean of consecutive frames: noise drawn fresh per frame averages out, so a single-frame
attacker overstates what noise hides from a patient eavesdropper) and the sweep's silhouette
regressor, the utility side of the privacy-utility curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from thermal_synth.engine.preprocess import MODEL_IMAGE_SHAPE

TEMPERATURE_CENTRE_C = 25.0
TEMPERATURE_SCALE_C = 10.0
"""Celsius -> network input; fixed, so 34 C skin is 0.9 in every frame and every session."""
STEM_TARGET_ROWS = 15
POOLED_GRID = (3, 4)
"""Classifiers keep a coarse layout (where the warm blob is, how tall it is) rather than a single
global average, which would throw away the person's height and build."""
SILHOUETTE_GRID = (24, 32)
"""The silhouette regressor's output grid: the 96x128 person mask in 4x4 blocks."""
DECODER_GRID = (12, 16)
"""The reconstructor paints 96x128 RGB from features on this grid, 8x up, like the generator."""
EVAL_BATCH = 256
BatchLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(input batch already flipped, sample rows, which were flipped) -> scalar loss."""


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "cpu"


def thermal_input(celsius: np.ndarray) -> Tensor:
    """(N, H, W) degrees Celsius -> (N, 1, H, W) network input on the fixed absolute scale."""
    scaled = (np.asarray(celsius, np.float32) - TEMPERATURE_CENTRE_C) / TEMPERATURE_SCALE_C
    return torch.from_numpy(scaled).unsqueeze(1)


def foreground_input(celsius: np.ndarray, background_celsius: np.ndarray) -> Tensor:
    """(N, H, W) frames and their rooms' empty frames, both Celsius -> (N, 1, H, W) temperature
    excess over the room, for re-identification.

    Every session of a person is in another room, and a classifier fed whole frames learns the
    rooms: on an unseen session it names someone who was filmed in that room, never the person
    (below chance on simulated data). Subtracting the empty room, the classic background model of
    a fixed thermal sensor, leaves the person; heatmaps are subtracted at their own resolution, as
    an eavesdropper of the downsampled stream would.
    """
    excess = (
        np.asarray(celsius, np.float32) - np.asarray(background_celsius, np.float32)
    ) / TEMPERATURE_SCALE_C
    return torch.from_numpy(excess).unsqueeze(1)


def _conv(channels_in: int, channels_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    padding = 1 if kernel == 3 else 0
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class ThermalEncoder(nn.Module):
    """(N, 1, H, W) -> (N, out_channels, h, w): 15x20 for the raw frame, heatmaps at their size."""

    def __init__(self, shape: tuple[int, int], width: int = 16) -> None:
        super().__init__()
        rows = shape[0]
        patch = max(1, min(shape) // STEM_TARGET_ROWS)
        layers = [_conv(1, width, patch, patch) if patch > 1 else _conv(1, width)]
        rows //= patch
        if rows >= 2 * DECODER_GRID[0]:
            layers.append(_conv(width, 2 * width, stride=2))
            width *= 2
        layers.append(_conv(width, 2 * width))
        self.layers = nn.Sequential(*layers)
        self.out_channels = 2 * width

    def forward(self, thermal: Tensor) -> Tensor:
        return self.layers(thermal)


class Classifier(nn.Module):
    """Thermal frame -> class logits (person present or not; which identity)."""

    def __init__(self, shape: tuple[int, int], classes: int, width: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = ThermalEncoder(shape, width)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(POOLED_GRID),
            nn.Flatten(),
            nn.Linear(self.encoder.out_channels * POOLED_GRID[0] * POOLED_GRID[1], hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(hidden, classes),
        )

    def forward(self, thermal: Tensor) -> Tensor:
        return self.head(self.encoder(thermal))


class Reconstructor(nn.Module):
    """Thermal frame -> (N, 3, 96, 128) RGB in [0, 1]: features resampled onto the 12x16 grid, two
    2x up-steps by sub-pixel convolution (a 3x3 convolution, then pixel shuffle), RGB at 48x64 and
    a bilinear 2x to 96x128. On a CPU that costs a fraction of convolving at full size, and the
    last bilinear step smooths the checkerboard a pixel shuffle leaves; an L1-trained guess from
    thermal has no detail at that scale to lose."""

    def __init__(self, shape: tuple[int, int], width: int = 16, channels: tuple[int, ...] = (32, 8)) -> None:
        super().__init__()
        self.encoder = ThermalEncoder(shape, width)
        layers: list[nn.Module] = []
        channels_in = self.encoder.out_channels
        for channels_out in channels:
            layers += [_conv(channels_in, 4 * channels_out), nn.PixelShuffle(2)]
            channels_in = channels_out
        layers.append(nn.Conv2d(channels_in, 3, 3, padding=1))
        self.decoder = nn.Sequential(*layers)

    def forward(self, thermal: Tensor) -> Tensor:
        features = functional.interpolate(
            self.encoder(thermal), size=DECODER_GRID, mode="bilinear", align_corners=False
        )
        rgb = functional.interpolate(
            self.decoder(features), scale_factor=2, mode="bilinear", align_corners=False
        )
        return torch.sigmoid(rgb)


class SilhouetteRegressor(nn.Module):
    """Heatmap -> (N, 1, 24, 32) person-mask logits: the encoder's features resampled onto the
    mask grid and one 3x3 convolution. Deliberately as small as the attackers: it measures how much
    of the silhouette a setting leaves in the heatmap, not how well a big painter could guess it."""

    def __init__(self, shape: tuple[int, int], width: int = 16) -> None:
        super().__init__()
        self.encoder = ThermalEncoder(shape, width)
        self.refine = nn.Sequential(
            _conv(self.encoder.out_channels, width), nn.Conv2d(width, 1, 3, padding=1)
        )

    def forward(self, thermal: Tensor) -> Tensor:
        features = functional.interpolate(
            self.encoder(thermal), size=SILHOUETTE_GRID, mode="bilinear", align_corners=False
        )
        return self.refine(features)


def silhouette_target(person_mask: np.ndarray) -> Tensor:
    """(N, 96, 128) bool -> (N, 1, 24, 32) float32: the share of each 4x4 block covered by the
    person. The product's 96x128 mask is 16x finer than a 12x16 heatmap; at 24x32 the regressor
    trains 16x cheaper and the target is still twice as fine as the finest grid audited."""
    rows, cols = SILHOUETTE_GRID
    mask = np.asarray(person_mask, np.float32)
    if mask.shape[1:] != MODEL_IMAGE_SHAPE:
        raise ValueError(f"person masks must be {MODEL_IMAGE_SHAPE}, got {mask.shape[1:]}")
    blocks = mask.reshape(len(mask), rows, mask.shape[1] // rows, cols, mask.shape[2] // cols)
    return torch.from_numpy(blocks.mean(axis=(2, 4))).unsqueeze(1)


def silhouette_iou(predicted: Tensor, target: Tensor) -> float:
    """Intersection over union of person cells (share >= 0.5; logits > 0), pooled over all frames:
    a frame where the person covers few cells weighs as little as it says about the silhouette."""
    person = target >= 0.5
    guessed = predicted > 0
    union = int((person | guessed).sum())
    return int((person & guessed).sum()) / union if union else 1.0


def train_silhouette(inputs: Tensor, target: Tensor, settings: TrainSettings) -> SilhouetteRegressor:
    """Binary cross-entropy to the covered share of every mask cell; input and target flipped together."""
    torch.manual_seed(settings.seed)
    model = SilhouetteRegressor(tuple(inputs.shape[-2:])).to(settings.device)

    def loss(batch: Tensor, rows: Tensor, flipped: Tensor) -> Tensor:
        wanted = target[rows].to(settings.device)
        wanted = torch.where(flipped.view(-1, 1, 1, 1), wanted.flip(-1), wanted)
        return functional.binary_cross_entropy_with_logits(model(batch), wanted)

    _fit(model, inputs, loss, settings)
    return model.eval()


def train_classifier(inputs: Tensor, labels: np.ndarray, classes: int, settings: TrainSettings) -> Classifier:
    """Cross-entropy on mini-batches drawn with replacement; frames are flipped left-right at random
    (a person is the same person mirrored), which stretches a few sessions further."""
    torch.manual_seed(settings.seed)
    model = Classifier(tuple(inputs.shape[-2:]), classes).to(settings.device)
    targets = torch.as_tensor(labels, dtype=torch.long)

    def loss(batch: Tensor, rows: Tensor, _flipped: Tensor) -> Tensor:
        return functional.cross_entropy(model(batch), targets[rows].to(settings.device))

    _fit(model, inputs, loss, settings)
    return model.eval()


def train_reconstructor(inputs: Tensor, rgb: np.ndarray, settings: TrainSettings) -> Reconstructor:
    """L1 to the real frame on [0, 1], the reported metric; input and target flipped together."""
    torch.manual_seed(settings.seed)
    model = Reconstructor(tuple(inputs.shape[-2:])).to(settings.device)

    def loss(batch: Tensor, rows: Tensor, flipped: Tensor) -> Tensor:
        target = rgb_target(rgb[rows.numpy()]).to(settings.device)
        target = torch.where(flipped.view(-1, 1, 1, 1), target.flip(-1), target)
        return functional.l1_loss(model(batch), target)

    _fit(model, inputs, loss, settings)
    return model.eval()


def rgb_target(rgb: np.ndarray) -> Tensor:
    """(N, 96, 128, 3) uint8 -> (N, 3, 96, 128) float32 on [0, 1]."""
    if rgb.shape[1:3] != MODEL_IMAGE_SHAPE:
        raise ValueError(f"rgb frames must be {MODEL_IMAGE_SHAPE}, got {rgb.shape[1:3]}")
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(255.0)


def _fit(model: nn.Module, inputs: Tensor, loss: BatchLoss, settings: TrainSettings) -> None:
    optimiser = torch.optim.Adam(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / settings.steps))
    )
    generator = torch.Generator().manual_seed(settings.seed)
    model.train()
    for _ in range(settings.steps):
        rows = torch.randint(len(inputs), (min(settings.batch_size, len(inputs)),), generator=generator)
        flipped = torch.rand(len(rows), generator=generator) < 0.5
        batch = inputs[rows]
        batch = torch.where(flipped.view(-1, 1, 1, 1), batch.flip(-1), batch).to(settings.device)
        value = loss(batch, rows, flipped.to(settings.device))
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()
        schedule.step()


@torch.inference_mode()
def predict(model: nn.Module, inputs: Tensor, device: str) -> Tensor:
    """Outputs for every input, in batches, on the CPU."""
    return torch.cat([model(batch.to(device)).cpu() for batch in inputs.split(EVAL_BATCH)])


@torch.inference_mode()
def reconstruct(
    model: Reconstructor, inputs: Tensor, real: np.ndarray, device: str
) -> tuple[np.ndarray, float]:
    """(N, 96, 128, 3) uint8 reconstructions and their mean absolute error on [0, 1] against the
    real uint8 frames, batch by batch: a float copy of every frame would be 0.3 GB per 2000."""
    images, total = [], 0.0
    for start in range(0, len(inputs), EVAL_BATCH):
        output = model(inputs[start : start + EVAL_BATCH].to(device)).cpu()
        total += float((output - rgb_target(real[start : start + EVAL_BATCH])).abs().sum())
        images.append(to_uint8(output))
    return np.concatenate(images), total / (real.size if len(real) else 1)


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) on [0, 1] -> (N, H, W, 3) uint8, rounded."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
