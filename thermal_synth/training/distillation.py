"""Distillation: a small student learns to paint what a trained teacher paints for the same (z, h).

`fast` runs in real time on a laptop CPU but learns less than `base` from the same data in the
same steps. Because both take the same inputs, the teacher's image for the student's own (z, h)
is an exact per-pixel target, a much denser signal than a discriminator's score; the adversarial
and heatmap terms stay, so the student still learns from the real photos and is not limited to
copying the teacher's mistakes. In the inversion phase the student's encoder is pulled towards
the teacher's codes for the same photo, so a code a user adds with the student's encoder means
what the teacher's would.

The teacher is frozen (eval mode, no gradients) and runs on the student's device under the
student's autocast precision; it is read like any model file (no pickle, checksums verified).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thermal_synth.model.bank import LatentBank
from thermal_synth.model.config import ModelConfig
from thermal_synth.model.files import ModelFileError, load_trained_model, read_description
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Preprocessing

SHARED_SHAPE_FIELDS = ("z_dim", "heatmap_size", "upsampling")
"""What the teacher must share with the student to take the same (z, h); widths may differ."""


class TeacherError(ValueError):
    """A teacher model that cannot teach this student; the message names the model and the field."""


@dataclass(frozen=True)
class DistillationConfig:
    teacher: Path
    """A trained model directory; identified in a run by its weights' sha256, not by this path."""
    distil_weight: float = 1.0
    """L1 of the student's image against the teacher's for the same (z, h), in the GAN phase."""
    encoder_distil_weight: float = 0.0
    """L1 of the student encoder's code against the teacher encoder's for the same photo."""
    distil_bank_share: float = 0.0
    """Share of each GAN batch's codes taken from the teacher's latent bank instead of N(0, I).

    The bank's codes are the appearances a user picks during a call, and as means of encoder
    codes they can lie well inside the N(0, I) shell that random codes almost never visit, so
    without them the student would be taught everywhere except where it is used."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "teacher", Path(self.teacher))
        for name in ("distil_weight", "encoder_distil_weight", "distil_bank_share"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.distil_weight == 0:
            raise ValueError(
                "distil_weight must be > 0 with a teacher: the L1 to the teacher's image is the distillation"
            )
        if self.distil_bank_share > 1:
            raise ValueError(f"distil_bank_share must be in [0, 1], got {self.distil_bank_share}")

    def fingerprint(self) -> dict[str, float]:
        """The weights; the teacher itself is checked by checksum, since a run that moves to
        another machine may find the same teacher under another path (as it does the dataset)."""
        return {key: value for key, value in asdict(self).items() if key != "teacher"}


class Teacher:
    """A trained model whose images and codes are the student's targets."""

    def __init__(
        self, config: DistillationConfig, networks: SpadeSRModel, bank: LatentBank, weights_sha256: str
    ) -> None:
        self.config = config
        self.networks = networks.eval().requires_grad_(False)
        self.bank = bank
        self.weights_sha256 = weights_sha256
        device = next(networks.parameters()).device
        codes = [code.z for code in bank]
        self._bank_codes = torch.from_numpy(np.stack(codes)).to(device) if codes else None

    @classmethod
    def load(
        cls,
        config: DistillationConfig,
        student: ModelConfig,
        preprocessing: Preprocessing,
        device: torch.device | str,
    ) -> Teacher:
        """The teacher of `config`, checked against the student's shapes and preprocessing."""
        try:
            bundle = load_trained_model(config.teacher)
        except ModelFileError as error:
            raise ModelFileError(f"teacher {error}") from None
        differences = [
            f"{name} is {getattr(bundle.config, name)}, the student's is {getattr(student, name)}"
            for name in SHARED_SHAPE_FIELDS
            if getattr(bundle.config, name) != getattr(student, name)
        ]
        differences += [
            f"preprocessing.{key} is {theirs!r}, the student's is {ours!r}"
            for key, theirs, ours in _differences(bundle.preprocessing.to_json(), preprocessing.to_json())
        ]
        if differences:
            raise TeacherError(
                f"teacher {config.teacher}: {'; '.join(differences)}. A teacher must take the student's "
                f"(z, h): the same {', '.join(SHARED_SHAPE_FIELDS)} and preprocessing"
            )
        if config.encoder_distil_weight > 0 and bundle.training.inversion_steps == 0:
            raise TeacherError(
                f"teacher {config.teacher}: its encoder was never trained (0 inversion steps); "
                "set encoder_distil_weight to 0"
            )
        if config.distil_bank_share > 0 and len(bundle.bank) == 0:
            raise TeacherError(
                f"teacher {config.teacher}: its latent bank is empty; set distil_bank_share to 0"
            )
        sha256 = str(read_description(config.teacher)["weights"]["sha256"])
        return cls(config, bundle.networks.to(device), bundle.bank, sha256)

    @torch.no_grad()
    def images(self, z: Tensor, heatmaps: Tensor) -> Tensor:
        return self.networks.generator(z, heatmaps)

    @torch.no_grad()
    def codes(self, images: Tensor) -> Tensor:
        return self.networks.encoder(images)

    def with_bank_codes(self, z: Tensor, rng: torch.Generator) -> Tensor:
        """`z` with its first `distil_bank_share` of rows replaced by bank codes drawn from `rng`."""
        count = round(self.config.distil_bank_share * z.shape[0])
        if count == 0 or self._bank_codes is None:
            return z
        picks = torch.randint(self._bank_codes.shape[0], (count,), generator=rng).to(z.device)
        return torch.cat([self._bank_codes[picks], z[count:]])

    def record(self) -> dict[str, Any]:
        """For the student's training record: what it was distilled from and how."""
        return {
            "teacher": str(self.config.teacher),
            "teacher_sha256": self.weights_sha256,
            **self.config.fingerprint(),
        }


def _differences(theirs: Any, ours: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, their value, our value) for every leaf where two JSON objects differ."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return [
            difference
            for key in sorted(set(theirs) | set(ours))
            for difference in _differences(theirs.get(key), ours.get(key), f"{prefix}{key}.")
        ]
    return [] if theirs == ours else [(prefix.rstrip("."), theirs, ours)]
