"""The CPU recipe: a model that paints a person after a couple of hours on two CPU cores.

The paper's GAN recipe needs days of GPU time and, cut to a few hundred CPU steps, learns nothing
(docs/training.md). This one learns fast because most of its signal is supervised:

1. Reconstruction. The encoder reads a *reference* frame (another frame of the same session,
   exactly the product's situation: a photo at enrolment, the pose live) and the generator paints
   the target frame from that code and the target's heatmap. Losses: L1 and multi-scale L1,
   weighted `moved_weight` times where the person moved between reference and target (where a
   copy of the photo is wrong by construction, so copying cannot win), L1 between frozen ImageNet
   features (perceptual), and the paper's masked hinge-L1 between the target heatmap and the
   heatmap read back from the painted image by a small head on those features, trained on real
   frames in the same step.
2. Adversarial. The same, plus a projected discriminator (Sauer et al. 2021): small heads on the
   frozen features, conditioned on the heatmap, hinge loss, no R1; the reconstruction losses stay.

In both phases a share of each batch (`swap_fraction`) may be *swapped*: painted with the code of
another session's frame, as when a user switches to an appearance recorded elsewhere or a bank
entry meets a stranger's pose. No true frame exists for those, so they learn from the heatmap read
back, the discriminator and a colour loss: the person and the room keep the photo's colours.
Without them the painter only ever sees codes aligned with the pose and, given a stranger's pose,
paints the photo's person where the photo had them.

Everything a run needs to continue bit for bit is in `state_dict()`, as for the GAN recipe.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from thermal_synth.dataset.pairs import PairTensors
from thermal_synth.model.bank import LatentBank
from thermal_synth.model.config import ModelConfig
from thermal_synth.model.files import ModelBundle, TrainingRecord
from thermal_synth.model.networks import SLOPE, SpadeSRModel
from thermal_synth.model.recipe import Preprocessing
from thermal_synth.training.losses import discriminator_hinge, generator_hinge, heatmap_reconstruction
from thermal_synth.training.perceptual import (
    FEATURE_CHANNELS,
    ImageNetFeatures,
    load_imagenet_features,
)
from thermal_synth.training.trainer import CheckpointedTrainer, TrainConfig, update_ema

MOVED_DILATION = 5
"""Pixels: the moved region grows by this much so the edges of a moved arm count as moved."""
HEATMAP_FEATURE = 2
"""The 1/8-resolution features (the heatmap grid of a 12x16 model) feed the heatmap head."""
SILHOUETTE_FEATURES = (1, 2)
"""The 1/4- and 1/8-resolution features feed the silhouette head, which answers at 1/4 (24x32
for a 96x128 image): fine enough to tell a stranger's shoulders from the photo's."""
MULTISCALE_FACTORS = (2, 4)
HEATMAP_CHANGE = 0.1
"""Without person masks: a change of the normalised heatmap ([-1, 1]) above this counts as moved."""
UNCOVERED_MIN_PIXELS = 64
"""`uncovered_colour` counts a swapped row's term only where its region (the target's person on
the photo's room, or the band around the target's person) has this many pixels (64 of 96x128: an
arm's width over a few dozen rows)."""


@dataclass
class PairBatch:
    """Targets with the reference frames their codes come from."""

    images: Tensor
    heatmaps: Tensor
    cell_masks: Tensor | None
    references: Tensor
    moved: Tensor
    """(N, 1, H, W) float in [0, 1]: where the person is in one frame and not the other."""
    swapped: Tensor
    """(N,) bool: the reference comes from another session (no true frame for this row)."""
    image_masks: Tensor | None = None
    """(N, 1, H, W) bool person pixels of the targets, or None without person masks."""
    reference_masks: Tensor | None = None
    """The same for the references."""


class ReferenceSampler:
    """For each target frame, another frame of its session (a single-frame session uses itself).

    Of `candidates` frames drawn at random, the one where the person moved most against the target
    is taken: most pairs of a session show nearly the same pose, where copying the photo is right,
    and a painter trained on them learns to copy (measured: arms of the photo painted over the
    live pose). Harder pairs make the heatmap the only way to a low loss."""

    def __init__(self, pairs: PairTensors, candidates: int = 1, swap_fraction: float = 0.0) -> None:
        self.pairs = pairs
        self.candidates = candidates
        self.by_session = {int(s): np.flatnonzero(pairs.sessions == s) for s in np.unique(pairs.sessions)}
        self.swap_fraction = swap_fraction if len(self.by_session) > 1 else 0.0
        """One session has no other appearance to swap in."""

    def swap_count(self, batch_size: int) -> int:
        """Rows of a batch to swap: the last ones; at least one row always keeps its true frame."""
        return min(int(self.swap_fraction * batch_size), batch_size - 1)

    def strangers(self, indices: Tensor, rng: torch.Generator) -> Tensor:
        """For each target, a random frame of a random other session."""
        chosen = []
        for index in indices.tolist():
            others = np.flatnonzero(self.pairs.sessions != self.pairs.sessions[index])
            chosen.append(int(others[int(torch.randint(others.size, (1,), generator=rng))]))
        return torch.tensor(chosen, dtype=torch.long)

    def references(self, indices: Tensor, rng: torch.Generator) -> Tensor:
        chosen = []
        for index in indices.tolist():
            rows = self.by_session[int(self.pairs.sessions[index])]
            others = rows[rows != index] if rows.size > 1 else rows
            draws = torch.randint(others.size, (self.candidates,), generator=rng).numpy()
            options = torch.from_numpy(others[draws])
            moved = moved_area(self.pairs, torch.full_like(options, index), options)
            chosen.append(int(options[int(moved.argmax())]))
        return torch.tensor(chosen)

    def batch(self, indices: Tensor, rng: torch.Generator, device: torch.device) -> PairBatch:
        kept = len(indices) - self.swap_count(len(indices))
        references = torch.cat([self.references(indices[:kept], rng), self.strangers(indices[kept:], rng)])
        swapped = torch.arange(len(indices)) >= kept
        images, heatmaps, cells = self.pairs.batch(indices, device)
        moved = moved_region(self.pairs, indices, references).to(device)
        masks = self.pairs.image_masks
        return PairBatch(
            images,
            heatmaps,
            cells,
            self.pairs.images[references].to(device),
            moved,
            swapped.to(device),
            None if masks is None else masks[indices].to(device),
            None if masks is None else masks[references].to(device),
        )


def moved_region(pairs: PairTensors, targets: Tensor, references: Tensor) -> Tensor:
    """Where the person is in the target or the reference but not both, dilated.

    With image-resolution person masks this is exact; without (a user's own recording built
    without --mask) it is where the two heatmaps differ, upsampled."""
    return _grown(_differ(pairs, targets, references))


def _grown(masks: Tensor, pixels: int = MOVED_DILATION) -> Tensor:
    """(N, 1, H, W) float: the masks grown by `pixels` (0: unchanged)."""
    return functional.max_pool2d(masks.float(), 2 * pixels + 1, stride=1, padding=pixels)


def moved_area(pairs: PairTensors, targets: Tensor, references: Tensor) -> Tensor:
    """(N,) share of the frame where the person moved between each target and reference."""
    return _differ(pairs, targets, references).float().flatten(1).mean(1)


def _differ(pairs: PairTensors, targets: Tensor, references: Tensor) -> Tensor:
    if pairs.image_masks is not None:
        return pairs.image_masks[targets] ^ pairs.image_masks[references]
    size = pairs.images.shape[-2:]
    change = (pairs.heatmaps[targets] - pairs.heatmaps[references]).abs()
    return functional.interpolate(change, size=size, mode="bilinear", align_corners=False) > HEATMAP_CHANGE


def weighted_l1(fake: Tensor, real: Tensor, weight: Tensor) -> Tensor:
    return ((fake - real).abs() * weight).mean() / weight.mean()


def colour_retention(painted: Tensor, painted_masks: Tensor, photos: Tensor, photo_masks: Tensor) -> Tensor:
    """L1 between the mean colours of person and room in painted images and in their photos.

    Rows where a frame shows no person (or nothing but the person) count only for the part both
    frames show."""
    loss, parts = painted.new_zeros(()), painted.new_zeros(())
    for region, photo_region in ((painted_masks, photo_masks), (~painted_masks, ~photo_masks)):
        painted_mean, painted_area = _masked_mean(painted, region)
        photo_mean, photo_area = _masked_mean(photos, photo_region)
        valid = ((painted_area > 0) & (photo_area > 0)).float()
        loss = loss + ((painted_mean - photo_mean).abs().mean(1) * valid).sum()
        parts = parts + valid.sum()
    return loss / parts.clamp_min(1.0)


def uncovered_colour(
    painted: Tensor, painted_masks: Tensor, photos: Tensor, photo_masks: Tensor, margin: int = 0
) -> Tensor:
    """L1 between the photo's mean person colour and the painted mean where the target's person
    stands but the photo shows room; and L1 to the photo's own pixels in a band just outside the
    target's person where the photo shows room too. Both keep `margin` pixels off the target's
    silhouette edge, where a heatmap cannot say which side the painter is on.

    A painting that keeps the photo's layout shows room where the stranger stands, so unlike
    `colour_retention` no copy of the photo satisfies the first term; it asks for the outfit
    exactly where the painter must invent it. Alone it also pays a painter unsure of the
    silhouette to spread the outfit over every pixel that might be person; the band (the room
    there is the photo's, known pixel for pixel) charges that at the same scale. Rows with fewer
    than `UNCOVERED_MIN_PIXELS` in a region do not count there: a few pixels say little."""
    core = ~(_grown(~painted_masks, margin) > 0)
    reach = _grown(painted_masks, margin) > 0
    painted_mean, uncovered_area = _masked_mean(painted, core & ~photo_masks)
    photo_mean, photo_area = _masked_mean(photos, photo_masks)
    person = (painted_mean - photo_mean).abs().mean(1)
    person_valid = ((uncovered_area >= UNCOVERED_MIN_PIXELS) & (photo_area > 0)).float()
    band = (_grown(reach) > 0) & ~reach & ~photo_masks
    room, band_area = _masked_mean((painted - photos).abs(), band)
    room_valid = (band_area >= UNCOVERED_MIN_PIXELS).float()
    total = (person * person_valid).sum() + (room.mean(1) * room_valid).sum()
    return total / (person_valid.sum() + room_valid.sum()).clamp_min(1.0)


def _masked_mean(images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """(N, C) mean of each image over its mask and the (N,) mask areas."""
    weights = masks.float()
    area = weights.flatten(1).sum(1)
    total = (images * weights).flatten(2).sum(2)
    return total / area.clamp_min(1.0)[:, None], area


class ProjectedDiscriminator(nn.Module):
    """Heads on frozen ImageNet features at three scales, each told the heatmap (conditional)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels + 1, width, 3, padding=1),
                nn.LeakyReLU(SLOPE),
                nn.Conv2d(width, width, 4, stride=2, padding=1),
                nn.LeakyReLU(SLOPE),
                nn.Conv2d(width, 1, 3, padding=1),
            )
            for channels in FEATURE_CHANNELS[1:]
        )

    def forward(self, features: list[Tensor], heatmaps: Tensor) -> Tensor:
        """Mean realness per image over the scales' score maps: (N,)."""
        scores = []
        for head, feature in zip(self.heads, features[1:], strict=True):
            condition = functional.interpolate(heatmaps, size=feature.shape[-2:], mode="nearest")
            scores.append(head(torch.cat([feature, condition], 1)).flatten(1).mean(1))
        return torch.stack(scores, 0).sum(0)


class HeatmapHead(nn.Module):
    """Reads the heatmap back from an image's frozen features: the paper's heatmap loss, cheaply."""

    def __init__(self, grid: tuple[int, int], width: int = 64) -> None:
        super().__init__()
        self.grid = grid
        self.net = nn.Sequential(
            nn.Conv2d(FEATURE_CHANNELS[HEATMAP_FEATURE], width, 3, padding=1),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        feature = functional.adaptive_avg_pool2d(features[HEATMAP_FEATURE], self.grid)
        return torch.tanh(self.net(feature))


class SilhouetteHead(nn.Module):
    """Reads the person's silhouette (logits) back from an image's frozen features."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        channels = sum(FEATURE_CHANNELS[index] for index in SILHOUETTE_FEATURES)
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        fine, coarse = (features[index] for index in SILHOUETTE_FEATURES)
        coarse = functional.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.net(torch.cat([fine, coarse], 1))


def silhouette_loss(logits: Tensor, masks: Tensor) -> Tensor:
    """BCE between silhouette logits and the person masks averaged down to their grid."""
    target = functional.adaptive_avg_pool2d(masks.to(logits.dtype), logits.shape[-2:])
    return functional.binary_cross_entropy_with_logits(logits, target)


class CpuRecipeTrainer(CheckpointedTrainer):
    """Reconstruction steps, then adversarial steps; G and the encoder learn together."""

    STATEFUL = (
        "networks", "ema", "heatmap_head", "discriminator", "optimiser_g", "optimiser_h", "optimiser_d",
        "silhouette_head", "optimiser_s",
    )  # fmt: skip
    NEW_SINCE = ("silhouette_head", "optimiser_s")
    STEP_COUNTERS = ("reconstruction_steps", "gan_steps")

    def __init__(
        self,
        config: ModelConfig,
        preprocessing: Preprocessing,
        train_config: TrainConfig,
        device: torch.device | str = "cpu",
        features: ImageNetFeatures | None = None,
    ) -> None:
        super().__init__(config, preprocessing, train_config, device)
        self.networks = SpadeSRModel(config, with_discriminator=False).to(self.device)
        self.ema = copy.deepcopy(self.networks).eval().requires_grad_(False)
        self.features = (features or load_imagenet_features()).to(self.device)
        self.heatmap_head = HeatmapHead(config.heatmap_size).to(self.device)
        self.discriminator = ProjectedDiscriminator().to(self.device)
        betas = (train_config.beta1, train_config.beta2)
        painter = [*self.networks.generator.parameters(), *self.networks.encoder.parameters()]
        self.optimiser_g = torch.optim.Adam(painter, train_config.lr_generator, betas)
        critic_lr = train_config.lr_discriminator
        self.optimiser_h = torch.optim.Adam(self.heatmap_head.parameters(), critic_lr, betas)
        self.optimiser_d = torch.optim.Adam(self.discriminator.parameters(), critic_lr, betas)
        self.silhouette_head = SilhouetteHead().to(self.device)
        self.optimiser_s = torch.optim.Adam(self.silhouette_head.parameters(), critic_lr, betas)
        self.reconstruction_steps = 0
        self.gan_steps = 0
        self.inversion_steps = 0

    @property
    def steps_done(self) -> int:
        return self.reconstruction_steps + self.gan_steps

    def _noisy(self, heatmaps: Tensor) -> Tensor:
        noise = torch.randn(heatmaps.shape, generator=self.generator_rng).to(self.device)
        return (heatmaps + self.train_config.heatmap_noise * noise).clamp(-1.0, 1.0)

    def _paint(self, batch: PairBatch) -> Tensor:
        self.networks.train()
        codes = self.networks.encoder(batch.references)
        return self.networks.generator(codes, self._noisy(batch.heatmaps))

    def _reconstruction_losses(
        self, batch: PairBatch, fakes: Tensor, fake_features: list[Tensor], real_features: list[Tensor]
    ) -> dict[str, Tensor]:
        """Reconstruction losses on the rows with a true frame; the heatmap loss on every row;
        the colour loss on the swapped rows."""
        tc = self.train_config
        true = ~batch.swapped
        images, fakes_true = batch.images[true], fakes[true]
        weight = 1.0 + (tc.moved_weight - 1.0) * batch.moved[true]
        l1 = weighted_l1(fakes_true, images, weight)
        multiscale = sum(
            weighted_l1(
                functional.avg_pool2d(fakes_true, factor),
                functional.avg_pool2d(images, factor),
                functional.avg_pool2d(weight, factor),
            )
            for factor in MULTISCALE_FACTORS
        )
        perceptual = sum(
            (fake[true] - real[true]).abs().mean() / real[true].abs().mean().clamp_min(1e-6)
            for fake, real in zip(fake_features, real_features, strict=True)
        )
        heatmap = heatmap_reconstruction(batch.heatmaps, self.heatmap_head(fake_features), batch.cell_masks)
        total = l1 + tc.multiscale_weight * multiscale + tc.perceptual_weight * perceptual
        total = total + tc.heatmap_weight * heatmap
        losses = {"l1": l1, "multiscale": multiscale, "perceptual": perceptual, "heatmap": heatmap}
        if self._reads_silhouettes(batch):
            silhouette = silhouette_loss(self.silhouette_head(fake_features), batch.image_masks)
            total = total + tc.silhouette_weight * silhouette
            losses["silhouette"] = silhouette
        if batch.swapped.any() and batch.image_masks is not None and batch.reference_masks is not None:
            swapped = batch.swapped
            rows = (fakes[swapped], batch.image_masks[swapped])
            photos = (batch.references[swapped], batch.reference_masks[swapped])
            retention = colour_retention(*rows, *photos)
            total = total + tc.retention_weight * retention
            losses["retention"] = retention
            if tc.uncovered_colour_weight > 0.0:
                uncovered = uncovered_colour(*rows, *photos, margin=tc.uncovered_margin)
                total = total + tc.uncovered_colour_weight * uncovered
                losses["uncovered_colour"] = uncovered
        return losses | {"total": total}

    def _reads_silhouettes(self, batch: PairBatch) -> bool:
        return self.train_config.silhouette_weight > 0.0 and batch.image_masks is not None

    def _head_steps(self, batch: PairBatch, real_features: list[Tensor]) -> dict[str, float]:
        """The heads that read pose back from a painting learn it on the real frames first."""
        optimisers = [self.optimiser_h]
        with self._autocast():
            losses = {
                "h_real": heatmap_reconstruction(
                    batch.heatmaps, self.heatmap_head(real_features), batch.cell_masks
                )
            }
            if self._reads_silhouettes(batch):
                losses["s_real"] = silhouette_loss(self.silhouette_head(real_features), batch.image_masks)
                optimisers.append(self.optimiser_s)
        for optimiser in optimisers:
            optimiser.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        for optimiser in optimisers:
            optimiser.step()
        return {name: loss.item() for name, loss in losses.items()}

    def _set_critics_learning(self, learning: bool) -> None:
        """Off while the painter's losses run through them: G's step must not move its judges."""
        for critic in (self.discriminator, self.heatmap_head, self.silhouette_head):
            critic.requires_grad_(learning)

    def _recoloured(self, batch: PairBatch) -> PairBatch:
        """Each row's target and reference under one random colour gain per channel (`colour_jitter`):
        outfits and rooms the training set never showed, whose colours only the code can tell."""
        jitter = self.train_config.colour_jitter
        if jitter == 0.0:
            return batch
        draws = torch.rand((len(batch.images), 3, 1, 1), generator=self.generator_rng)
        gains = (1.0 + jitter * (2.0 * draws - 1.0)).to(self.device)

        def recolour(images: Tensor) -> Tensor:
            return ((images + 1.0) * gains - 1.0).clamp(-1.0, 1.0)

        return replace(batch, images=recolour(batch.images), references=recolour(batch.references))

    def _real_features(self, batch: PairBatch) -> list[Tensor]:
        with torch.no_grad(), self._autocast():
            return self.features(batch.images)

    def reconstruction_step(self, batch: PairBatch) -> dict[str, float]:
        batch = self._recoloured(batch)
        real_features = self._real_features(batch)
        head_losses = self._head_steps(batch, real_features)
        self._set_critics_learning(False)
        with self._autocast():
            fakes = self._paint(batch)
            losses = self._reconstruction_losses(batch, fakes, self.features(fakes), real_features)
        self._set_critics_learning(True)
        self._painter_step(losses["total"])
        self.reconstruction_steps += 1
        self._update_ema(self.reconstruction_steps)
        return {f"g_{name}": value.item() for name, value in losses.items()} | head_losses

    def adversarial_step(self, batch: PairBatch) -> dict[str, float]:
        batch = self._recoloured(batch)
        tc = self.train_config
        real_features = self._real_features(batch)
        head_losses = self._head_steps(batch, real_features)
        with self._autocast():
            fakes = self._paint(batch)
            fake_features = self.features(fakes)
            real_scores = self.discriminator(real_features, batch.heatmaps)
            fake_scores = self.discriminator([f.detach() for f in fake_features], batch.heatmaps)
            d_loss = discriminator_hinge(real_scores, fake_scores)
        self.optimiser_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimiser_d.step()
        self._set_critics_learning(False)
        with self._autocast():
            losses = self._reconstruction_losses(batch, fakes, fake_features, real_features)
            adversarial = generator_hinge(self.discriminator(fake_features, batch.heatmaps))
        total = tc.reconstruction_weight * losses["total"] + tc.adversarial_weight * adversarial
        self._set_critics_learning(True)
        self._painter_step(total)
        self.gan_steps += 1
        self._update_ema(self.steps_done)
        return (
            {f"g_{name}": value.item() for name, value in losses.items()}
            | head_losses
            | {
                "d_loss": d_loss.item(),
                "g_adv": adversarial.item(),
            }
        )

    def _painter_step(self, loss: Tensor) -> None:
        if self.steps_done < self.train_config.critic_warmup_steps:
            return
        self.optimiser_g.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser_g.step()

    def _update_ema(self, step: int) -> None:
        update_ema(self.ema.generator, self.networks.generator, self.train_config.ema_gan, step)
        update_ema(self.ema.encoder, self.networks.encoder, self.train_config.ema_gan, step)

    def bundle(self, bank: LatentBank, dataset: str = "", details: dict | None = None) -> ModelBundle:
        """The shippable model: EMA generator and encoder, nothing else."""
        exported = SpadeSRModel(self.config, with_discriminator=False)
        exported.generator.load_state_dict(self.ema.generator.state_dict())
        exported.encoder.load_state_dict(self.ema.encoder.state_dict())
        record_details = {
            "recipe": "cpu",
            "reconstruction_steps": self.reconstruction_steps,
            "adversarial_steps": self.gan_steps,
            **(details or {}),
        }
        record = TrainingRecord(self.steps_done, 0, dataset, record_details)
        return ModelBundle(self.config, self.preprocessing, record, exported.cpu().eval(), bank)
