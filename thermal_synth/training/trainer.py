"""One SPADE-SR training run as a plain object: GAN steps, then inversion steps, then a model bundle.

The recipe follows the spade-sr notes (hinge loss, masked hinge-L1 heatmap reconstruction, R1 on
reals, Adam (0, 0.999), EMA weights shipped). Loops, logging, checkpoints and the command line
live around this object, so tests can train a tiny model in seconds with the same code.

Everything a run needs to continue bit for bit (networks, EMA, optimisers, random generators,
step counters) is in `state_dict()`; `training/checkpoints.py` stores it without pickle.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from thermal_synth.engine.inference import PRECISIONS
from thermal_synth.model.bank import LatentBank
from thermal_synth.model.config import ModelConfig
from thermal_synth.model.files import ModelBundle, TrainingRecord
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Preprocessing
from thermal_synth.training.distillation import Teacher
from thermal_synth.training.losses import (
    discriminator_hinge,
    generator_hinge,
    heatmap_reconstruction,
    r1_penalty,
)

EMA_WARMUP_STEPS = 10
GradientSync = Callable[[nn.Module], None]
"""Called on a network after its backward pass and before its optimiser step (multi-GPU averaging)."""


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    lr_discriminator: float = 2e-4
    lr_generator: float = 5e-5
    lr_encoder: float = 5e-5
    beta1: float = 0.0
    beta2: float = 0.999
    reconstruction_weight: float = 2.0
    r1_weight: float = 5.0
    ema_gan: float = 0.999
    ema_inversion: float = 0.99
    inversion_l1_weight: float = 1.0
    inversion_adversarial_weight: float = 0.1
    heatmap_noise: float = 0.02
    """Std of Gaussian noise added to the normalised training heatmaps (the paper adds sensor noise)."""
    r1_interval: int = 1
    """R1 every this many D steps, weighted by the interval (lazy regularisation, as in StyleGAN2).
    1 is the reference recipe; on a CPU, 8-16 roughly halves a step's cost: R1's double backward
    through D at full image resolution is the most expensive part of a step."""
    precision: str = "fp32"
    """bf16 runs the forward passes under autocast (GPUs with bf16; weights and optimisers stay fp32)."""
    compile: bool = False
    """torch.compile the generator; D is left eager because R1 needs a double backward."""
    seed: int = 0
    reference_candidates: int = 3
    """CPU recipe: frames drawn per target, the one where the person moved most is the reference."""
    moved_weight: float = 5.0
    """CPU recipe: L1 weight where the person moved between the reference and the target frame."""
    multiscale_weight: float = 1.0
    """CPU recipe: weight of the L1 at 1/2 and 1/4 resolution."""
    perceptual_weight: float = 0.5
    """CPU recipe: weight of the L1 between frozen ImageNet features of painted and real frames."""
    heatmap_weight: float = 1.0
    """CPU recipe: weight of the masked hinge-L1 heatmap loss on the painted frame."""
    adversarial_weight: float = 0.1
    """CPU recipe, adversarial phase: weight of the projected discriminator's hinge loss (the
    reconstruction losses keep `reconstruction_weight`)."""
    swap_fraction: float = 0.0
    """CPU recipe: share of each batch painted with the code of *another* session's frame (an
    appearance switch: a stranger's pose in this outfit and room). Those rows have no true frame;
    they learn from the heatmap read back, the discriminator and `retention_weight`."""
    retention_weight: float = 1.0
    """CPU recipe: L1 between the mean colours of person and room painted in a swapped row and
    those of the photo its code came from (needs person masks; 0 without)."""
    uncovered_colour_weight: float = 0.0
    """CPU recipe: L1 between the photo's mean person colour and the colour painted in a swapped
    row where the stranger's person stands on the photo's room, and to the photo's room in a band
    around the stranger's person (needs person masks). Unlike `retention_weight` a painting that
    keeps the photo's layout cannot satisfy it."""
    uncovered_margin: int = 0
    """CPU recipe: pixels of the stranger's silhouette edge `uncovered_colour` leaves alone on
    both sides. A heatmap cell spans 8 pixels of the image: within a few pixels of the edge the
    painter cannot know whether it paints person or room. Measured at 4 (docs/training.md), it
    did not give back the pose following the loss costs."""
    colour_jitter: float = 0.0
    """CPU recipe: each row's target and reference frames get one random gain per colour channel
    in [1 - jitter, 1 + jitter]: outfits and rooms the simulated rig's few dozen never showed, so
    the painter must read colours from the code rather than recognise an outfit it has seen."""
    silhouette_weight: float = 0.0
    """CPU recipe: BCE between the target's person mask and the silhouette read back from the
    painted frame, on every row (needs person masks). The heatmap loss sees the pose on the 12x16
    grid only; a swapped row painted with the photo's narrower person, the room filling the rest
    of a stranger's silhouette, passes it and keeps the wrong colours there."""
    critic_warmup_steps: int = 0
    """CPU recipe: while fewer steps than this are done, only the critics and heads learn (the
    painter is held). For a run started from a trained model (`--init-from MODEL_DIR`), whose
    critics and heads start untrained: their first judgements would only push the painter about."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1 or self.r1_interval < 1:
            raise ValueError("batch_size and r1_interval must be >= 1")


class CheckpointedTrainer:
    """`state_dict()` holds everything a resumed run needs to take the same next step as an
    uninterrupted one: the state of each of `STATEFUL` (networks, EMA, optimisers, critics), the
    random generator and the step counters, under the same keys in every checkpoint."""

    STATEFUL: tuple[str, ...] = ()
    NEW_SINCE: tuple[str, ...] = ()
    """Of `STATEFUL`, critics that learn from real frames alone and were added after runs that a
    new run may start from (`--init-from`); `--resume` still needs every part."""
    STEP_COUNTERS: tuple[str, ...] = ()

    def __init__(
        self,
        config: ModelConfig,
        preprocessing: Preprocessing,
        train_config: TrainConfig,
        device: torch.device | str,
        rng_offset: int = 0,
    ) -> None:
        self.config = config
        self.preprocessing = preprocessing
        self.train_config = train_config
        self.device = torch.device(device)
        torch.manual_seed(train_config.seed)
        self.generator_rng = torch.Generator(device="cpu").manual_seed(train_config.seed + 1 + rng_offset)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name).state_dict() for name in self.STATEFUL}
        state["generator_rng"] = self.generator_rng.get_state()
        return state | {name: getattr(self, name) for name in self.STEP_COUNTERS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.STATEFUL:
            getattr(self, name).load_state_dict(state[name])
        self.generator_rng.set_state(state["generator_rng"])
        for name in self.STEP_COUNTERS:
            setattr(self, name, int(state[name]))

    def adopt_state_dict(self, state: dict[str, Any]) -> None:
        """Another run's weights, optimiser moments and step counts under this run's settings:
        its learning rates and betas, and its own noise generator (fine-tuning). Parts in
        `NEW_SINCE` that the other run's checkpoint predates start fresh."""
        state = state | {
            name: getattr(self, name).state_dict() for name in self.NEW_SINCE if name not in state
        }
        own_rng = self.generator_rng.get_state()
        optimisers = [getattr(self, name) for name in self.STATEFUL if name.startswith("optimiser")]
        settings = [[(group["lr"], group["betas"]) for group in o.param_groups] for o in optimisers]
        self.load_state_dict(state)
        self.generator_rng.set_state(own_rng)
        for optimiser, groups in zip(optimisers, settings, strict=True):
            for group, (lr, betas) in zip(optimiser.param_groups, groups, strict=True):
                group["lr"], group["betas"] = lr, betas

    def _autocast(self) -> contextlib.AbstractContextManager:
        """Forward passes in bf16 when asked: on a GPU, or a CPU with AMX or AVX512-BF16, whose
        convolutions then run about 1.6 times faster; weights, optimiser moments and backward
        accumulation stay fp32."""
        enabled = self.train_config.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def adopt_painter(self, painter: SpadeSRModel) -> None:
        """A trained model's generator and encoder (the shipped EMA weights) as both the live and
        the averaged networks; critics, heads, optimiser moments and step counts start fresh. What
        a model file holds is all a new run can take from it. A model without a room from the photo
        may start one with it: its compositing head is the one thing that starts untrained."""
        adds_room = self.config.room_from_photo and not painter.config.room_from_photo
        for networks in (self.networks, self.ema):
            missing, _ = networks.generator.load_state_dict(
                painter.generator.state_dict(), strict=not adds_room
            )
            if any(not key.startswith("composite.") for key in missing):
                raise ValueError(f"the model's generator lacks {missing}")
            networks.encoder.load_state_dict(painter.encoder.state_dict())


class SpadeSRTrainer(CheckpointedTrainer):
    STATEFUL = ("networks", "ema", "optimiser_d", "optimiser_g", "optimiser_e")
    STEP_COUNTERS = ("gan_steps", "inversion_steps")

    def __init__(
        self,
        config: ModelConfig,
        preprocessing: Preprocessing,
        train_config: TrainConfig = TrainConfig(),
        device: torch.device | str = "cpu",
        *,
        rank: int = 0,
        gradient_sync: GradientSync | None = None,
        teacher: Teacher | None = None,
    ) -> None:
        # Every rank starts from the same weights but draws its own z and noise.
        super().__init__(config, preprocessing, train_config, device, rng_offset=7919 * rank)
        self._sync = gradient_sync or (lambda _network: None)
        self.teacher = teacher
        self.networks = SpadeSRModel(config).to(self.device)
        generator = self.networks.generator
        self._generate = torch.compile(generator) if train_config.compile else generator
        self.ema = copy.deepcopy(self.networks).eval().requires_grad_(False)
        betas = (train_config.beta1, train_config.beta2)
        networks = self.networks
        self.optimiser_d = torch.optim.Adam(
            networks.discriminator.parameters(), train_config.lr_discriminator, betas
        )
        self.optimiser_g = torch.optim.Adam(networks.generator.parameters(), train_config.lr_generator, betas)
        self.optimiser_e = torch.optim.Adam(networks.encoder.parameters(), train_config.lr_encoder, betas)
        self.gan_steps = 0
        self.inversion_steps = 0

    def _step(self, optimiser: torch.optim.Optimizer, network: nn.Module, loss: Tensor) -> None:
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self._sync(network)
        optimiser.step()

    def sample_z(self, count: int) -> Tensor:
        return torch.randn(count, self.config.z_dim, generator=self.generator_rng).to(self.device)

    def _noisy(self, heatmaps: Tensor) -> Tensor:
        if self.train_config.heatmap_noise <= 0:
            return heatmaps
        noise = torch.randn(heatmaps.shape, generator=self.generator_rng).to(self.device)
        return (heatmaps + self.train_config.heatmap_noise * noise).clamp(-1.0, 1.0)

    def _discriminator_step(
        self, images: Tensor, heatmaps: Tensor, masks: Tensor | None, fakes: Tensor
    ) -> dict:
        tc = self.train_config
        discriminator = self.networks.discriminator
        with_r1 = (self.gan_steps + self.inversion_steps) % tc.r1_interval == 0
        reals = images.detach().requires_grad_(with_r1)
        with self._autocast():
            real_scores, real_heatmaps = discriminator(reals)
            fake_scores, fake_heatmaps = discriminator(fakes.detach())
            adversarial = discriminator_hinge(real_scores, fake_scores)
            reconstruction = 0.5 * (
                heatmap_reconstruction(heatmaps, real_heatmaps, masks)
                + heatmap_reconstruction(heatmaps, fake_heatmaps, masks)
            )
        loss = adversarial + tc.reconstruction_weight * reconstruction
        metrics = {"d_adv": adversarial.item(), "d_rec": reconstruction.item()}
        if with_r1:
            r1 = r1_penalty(real_scores.float(), reals)
            loss = loss + tc.r1_weight * tc.r1_interval * r1
            metrics["r1"] = r1.item()
        self._step(self.optimiser_d, discriminator, loss)
        return {"d_loss": loss.item(), **metrics}

    def gan_step(self, images: Tensor, heatmaps: Tensor, masks: Tensor | None = None) -> dict[str, float]:
        """One D step and one G step on a batch of real pairs; returns the losses.

        When distilling, G's loss also holds the L1 to the teacher's image for the same codes and
        the same (noisy) heatmaps the fakes were painted from."""
        self.networks.generator.train()
        self.networks.discriminator.train()
        conditioning = self._noisy(heatmaps)
        generator = self.networks.generator
        z = self.sample_z(images.shape[0])
        if self.teacher is not None:
            z = self.teacher.with_bank_codes(z, self.generator_rng)
        with self._autocast():
            fakes = self._generate(z, conditioning)
        metrics = self._discriminator_step(images, heatmaps, masks, fakes)
        self.networks.discriminator.requires_grad_(False)
        with self._autocast():
            fake_scores, fake_heatmaps = self.networks.discriminator(fakes)
            reconstruction = heatmap_reconstruction(heatmaps, fake_heatmaps, masks)
            loss = generator_hinge(fake_scores) + self.train_config.reconstruction_weight * reconstruction
            if self.teacher is not None:
                distil = functional.l1_loss(fakes.float(), self.teacher.images(z, conditioning).float())
                loss = loss + self.teacher.config.distil_weight * distil
                metrics["g_distil"] = distil.item()
        self._step(self.optimiser_g, generator, loss)
        self.networks.discriminator.requires_grad_(True)
        self.gan_steps += 1
        update_ema(self.ema.generator, generator, self.train_config.ema_gan, self.gan_steps)
        return {**metrics, "g_loss": loss.item(), "g_rec": reconstruction.item()}

    def inversion_step(
        self, images: Tensor, heatmaps: Tensor, masks: Tensor | None = None
    ) -> dict[str, float]:
        """One D step and one encoder step; the (EMA) generator is frozen, as it will be shipped.

        When distilling with an encoder_distil_weight, the encoder's loss also holds the L1 to
        the teacher encoder's code for the same photo."""
        tc = self.train_config
        encoder = self.networks.encoder.train()
        self.networks.discriminator.train()
        frozen = self.ema.generator.eval()
        with self._autocast():
            codes = encoder(images)
            reconstructions = frozen(codes, heatmaps)
        metrics = self._discriminator_step(images, heatmaps, masks, reconstructions)
        self.networks.discriminator.requires_grad_(False)
        with self._autocast():
            scores, _ = self.networks.discriminator(reconstructions)
            l1 = functional.l1_loss(reconstructions.float(), images)
            loss = tc.inversion_l1_weight * l1 + tc.inversion_adversarial_weight * generator_hinge(scores)
            teacher = self.teacher
            if teacher is not None and teacher.config.encoder_distil_weight > 0:
                distil = functional.l1_loss(codes.float(), teacher.codes(images).float())
                loss = loss + teacher.config.encoder_distil_weight * distil
                metrics["e_distil"] = distil.item()
        self._step(self.optimiser_e, encoder, loss)
        self.networks.discriminator.requires_grad_(True)
        self.inversion_steps += 1
        update_ema(self.ema.encoder, encoder, tc.ema_inversion, self.inversion_steps)
        return {**metrics, "e_loss": loss.item(), "e_l1": l1.item()}

    def bundle(self, bank: LatentBank, dataset: str = "", details: dict | None = None) -> ModelBundle:
        """The shippable model: EMA generator and encoder, live discriminator (for `codes add --refine`)."""
        exported = SpadeSRModel(self.config)
        exported.generator.load_state_dict(self.ema.generator.state_dict())
        exported.encoder.load_state_dict(self.ema.encoder.state_dict())
        exported.discriminator.load_state_dict(self.networks.discriminator.state_dict())
        record = TrainingRecord(self.gan_steps, self.inversion_steps, dataset, details or {})
        return ModelBundle(self.config, self.preprocessing, record, exported.cpu().eval(), bank)


def update_ema(average: nn.Module, live: nn.Module, decay: float, step: int) -> None:
    """EMA of parameters with a warm-up (decay grows as (1 + step) / (10 + step) up to `decay`),
    so a short run is not dominated by the random initialisation; buffers are copied as they are."""
    decay = min(decay, (1.0 + step) / (EMA_WARMUP_STEPS + step))
    with torch.no_grad():
        for averaged, current in zip(average.parameters(), live.parameters(), strict=True):
            averaged.lerp_(current, 1.0 - decay)
        for averaged, current in zip(average.buffers(), live.buffers(), strict=True):
            averaged.copy_(current)
