"""A tiny SPADE-SR model trained for a few steps on simulated pairs, for tests that need real weights.

Trained once per test session (a few seconds on two cores): tests that change the model
directory must work on a copy (`copy_model`).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from thermal_synth.model.config import ModelConfig
from thermal_synth.model.recipe import HeatmapRecipe
from thermal_synth.sim.simulate import SimConfig, generate
from thermal_synth.training.run import TrainingPlan, train_model
from thermal_synth.training.trainer import TrainConfig

TINY_CONFIG = ModelConfig(
    thermal_channels=8,
    generator_channels=(32, 16, 16, 8),
    discriminator_channels=(8, 16, 16),
    encoder_channels=(8, 8, 16, 16),
)
TINY_PLAN = TrainingPlan(TINY_CONFIG, gan_steps=8, inversion_steps=4, train=TrainConfig(batch_size=8, seed=5))


def make_sim_dataset(
    out: Path, pairs: int = 120, seed: int = 11, recipe: HeatmapRecipe | None = None
) -> Path:
    config = SimConfig(pairs=pairs, seed=seed, frames_per_session=12)
    generate(config if recipe is None else replace(config, recipe=recipe), out, progress=False)
    return out


def make_tiny_model(data: Path, out: Path) -> Path:
    train_model(data, out, TINY_PLAN, progress=False)
    return out


def copy_model(model: Path, destination: Path) -> Path:
    shutil.copytree(model, destination)
    return destination
