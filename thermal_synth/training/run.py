"""A whole training run from a shard dataset to a model directory (the loop around the trainer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from thermal_synth.inference import DEVICE_AUTO, select_device
from thermal_synth.model.bank import LatentBank
from thermal_synth.model.config import ModelConfig
from thermal_synth.model.files import ModelBundle, save_model
from thermal_synth.model.recipe import Normalisation, Preprocessing
from thermal_synth.shards import ShardReader
from thermal_synth.training.data import DatasetMismatchError, load_pairs
from thermal_synth.training.trainer import SpadeSRTrainer, TrainConfig, bank_from_sessions


@dataclass(frozen=True)
class TrainingPlan:
    model: ModelConfig
    gan_steps: int
    inversion_steps: int
    train: TrainConfig = field(default_factory=TrainConfig)
    normalisation: Normalisation = field(default_factory=Normalisation)
    device: str = DEVICE_AUTO


def train_model(data: Path, out: Path, plan: TrainingPlan, *, progress: bool = True) -> ModelBundle:
    reader = ShardReader(Path(data))
    if reader.recipe.output_size != plan.model.heatmap_size:
        raise DatasetMismatchError(
            f"{data}: heatmaps are {reader.recipe.output_size}, "
            f"the model config takes {plan.model.heatmap_size}"
        )
    preprocessing = Preprocessing(reader.recipe, plan.normalisation)
    pairs = load_pairs(reader, "train", preprocessing)
    if len(pairs) == 0:
        raise DatasetMismatchError(f"{data}: the train split is empty")
    trainer = SpadeSRTrainer(plan.model, preprocessing, plan.train, select_device(plan.device))
    batch_size = min(plan.train.batch_size, len(pairs))
    order = torch.Generator().manual_seed(plan.train.seed)
    phases = (
        ("gan", plan.gan_steps, trainer.gan_step),
        ("inversion", plan.inversion_steps, trainer.inversion_step),
    )
    for phase, steps, step in phases:
        bar = tqdm(range(steps), desc=phase, unit="step", disable=not progress)
        for _ in bar:
            indices = torch.randint(len(pairs), (batch_size,), generator=order)
            losses = step(*pairs.batch(indices, trainer.device))
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
    bundle = trainer.bundle(LatentBank(plan.model.z_dim), dataset=str(data))
    bundle.bank = bank_from_sessions(bundle, pairs, reader.sessions)
    save_model(out, bundle)
    return bundle
