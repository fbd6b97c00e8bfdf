"""SPADE-SR training: the losses, the trainer's steps and the whole run to a model directory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BIN
from model_fixtures import TINY_CONFIG, TINY_PLAN

from thermal_synth.dataset.pairs import DatasetMismatchError, load_pairs, person_cells
from thermal_synth.dataset.shards import HeatmapRecipe, ShardReader, appearance_name
from thermal_synth.model.files import load_trained_model
from thermal_synth.model.recipe import Preprocessing
from thermal_synth.training.losses import (
    discriminator_hinge,
    generator_hinge,
    heatmap_reconstruction,
    r1_penalty,
)
from thermal_synth.training.run import TrainingPlan, train_model
from thermal_synth.training.trainer import SpadeSRTrainer, TrainConfig


def test_hinge_losses() -> None:
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.0])
    assert discriminator_hinge(real, fake).item() == pytest.approx(0.25 + 0.5)
    assert generator_hinge(fake).item() == pytest.approx(1.0)


def test_reconstruction_is_free_below_eps_and_masked_to_the_person() -> None:
    target = torch.zeros(1, 1, 2, 2)
    close = torch.full((1, 1, 2, 2), 0.04)
    assert heatmap_reconstruction(target, close).item() == 0.0
    off = torch.tensor([[[[0.55, 0.0], [0.0, 1.05]]]])
    assert heatmap_reconstruction(target, off).item() == pytest.approx((0.5 + 1.0) / 4)
    person = torch.tensor([[[[True, False], [False, False]]]])
    assert heatmap_reconstruction(target, off, person).item() == pytest.approx(0.5)
    radiator_only = torch.tensor([[[[False, False], [False, True]]]])
    assert heatmap_reconstruction(target, off, radiator_only).item() == pytest.approx(1.0)


def test_r1_is_half_the_squared_gradient_norm() -> None:
    images = torch.ones(2, 3, 4, 4, requires_grad=True)
    scores = (3.0 * images).flatten(1).sum(1)
    assert r1_penalty(scores, images).item() == pytest.approx(0.5 * 9.0 * 48)


def test_person_cells_mark_every_cell_the_person_touches() -> None:
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    mask[0, 0, 8:16, 8:16] = True
    cells = person_cells(mask, (2, 2))
    assert cells[0, 0].tolist() == [[True, False], [False, True]]


def test_pairs_load_normalised_with_masks(sim_dataset: Path) -> None:
    reader = ShardReader(sim_dataset)
    pairs = load_pairs(reader, "train", Preprocessing(reader.recipe))
    assert pairs.images.shape[1:] == (3, 96, 128)
    assert pairs.heatmaps.shape[1:] == (1, 12, 16)
    assert pairs.images.min() >= -1.0
    assert pairs.images.max() <= 1.0
    assert pairs.heatmaps.min() >= -1.0
    assert pairs.heatmaps.max() <= 1.0
    assert pairs.masks is not None
    assert 0.02 < pairs.masks.float().mean().item() < 0.8
    with pytest.raises(DatasetMismatchError, match=r"heatmaps were made as 12x16, .* rebuild the dataset"):
        load_pairs(reader, "train", Preprocessing(HeatmapRecipe(blur_sigma=0.5)))
    quantised = HeatmapRecipe(quantisation_c=2.0, relative_temperature=True)
    with pytest.raises(
        DatasetMismatchError, match=r"model reads 12x16 rel q2; .* --relative-temperature --quantisation-c 2"
    ):
        load_pairs(reader, "train", Preprocessing(quantised))
    made_from_thermal = load_pairs(reader, "train", Preprocessing(quantised), published=quantised)
    assert made_from_thermal.heatmaps.shape == pairs.heatmaps.shape


def _batch(sim_dataset: Path, count: int = 4):
    reader = ShardReader(sim_dataset)
    pairs = load_pairs(reader, "train", Preprocessing(reader.recipe))
    return pairs.batch(torch.arange(count), "cpu")


def test_training_steps_are_reproducible_for_a_seed(sim_dataset: Path) -> None:
    batch = _batch(sim_dataset)

    def losses(seed: int) -> list[dict]:
        trainer = SpadeSRTrainer(TINY_CONFIG, Preprocessing(), TrainConfig(batch_size=4, seed=seed))
        return [trainer.gan_step(*batch), trainer.inversion_step(*batch)]

    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


def test_steps_move_the_weights_and_the_ema_follows(sim_dataset: Path) -> None:
    batch = _batch(sim_dataset)
    trainer = SpadeSRTrainer(TINY_CONFIG, Preprocessing(), TrainConfig(batch_size=4))
    before = trainer.ema.generator.to_rgb.weight.clone()
    live_before = trainer.networks.generator.to_rgb.weight.clone()
    encoder_before = trainer.ema.encoder.to_code.weight.clone()
    metrics = trainer.gan_step(*batch)
    assert {"d_loss", "d_adv", "d_rec", "r1", "g_loss", "g_rec"} <= metrics.keys()
    assert all(np.isfinite(v) for v in metrics.values())
    live = trainer.networks.generator.to_rgb.weight
    averaged = trainer.ema.generator.to_rgb.weight
    assert not torch.equal(live, live_before)
    assert not torch.equal(averaged, before)
    # One step with warm-up decay 2/11: the average sits between the start and the live weights.
    torch.testing.assert_close(averaged, before + (1 - 2 / 11) * (live - before))
    trainer.inversion_step(*batch)
    assert not torch.equal(trainer.ema.encoder.to_code.weight, encoder_before)
    assert (trainer.gan_steps, trainer.inversion_steps) == (1, 1)


def test_inversion_leaves_the_generator_frozen(sim_dataset: Path) -> None:
    batch = _batch(sim_dataset)
    trainer = SpadeSRTrainer(TINY_CONFIG, Preprocessing(), TrainConfig(batch_size=4))
    trainer.gan_step(*batch)
    frozen = {k: v.clone() for k, v in trainer.ema.generator.state_dict().items()}
    live = {k: v.clone() for k, v in trainer.networks.generator.state_dict().items()}
    trainer.inversion_step(*batch)
    for name, tensor in trainer.ema.generator.state_dict().items():
        assert torch.equal(tensor, frozen[name]), name
    for name, tensor in trainer.networks.generator.state_dict().items():
        assert torch.equal(tensor, live[name]), name


def test_the_tiny_model_is_a_complete_trained_model(tiny_model: Path, sim_dataset: Path) -> None:
    bundle = load_trained_model(tiny_model)
    reader = ShardReader(sim_dataset)
    trained_on = {appearance_name(s) for s in reader.sessions if s.split == "train"}
    assert bundle.training.gan_steps == TINY_PLAN.gan_steps
    assert bundle.training.inversion_steps == TINY_PLAN.inversion_steps
    assert set(bundle.bank.names()) == trained_on
    assert all(code.thumbnail is not None for code in bundle.bank)
    codes = np.stack([code.z for code in bundle.bank])
    assert np.abs(codes[0] - codes[1]).max() > 0
    assert bundle.preprocessing.heatmap == reader.recipe


def test_training_refuses_a_dataset_of_another_heatmap_size(sim_dataset: Path, tmp_path: Path) -> None:
    plan = TrainingPlan(TINY_CONFIG.with_heatmap_size((6, 8)), 1, 0)
    with pytest.raises(DatasetMismatchError, match=r"heatmaps are \(12, 16\)"):
        train_model(sim_dataset, tmp_path / "model", plan, progress=False)
    assert not (tmp_path / "model").exists()


def test_train_command_writes_a_loadable_model_that_carries_its_evaluation(
    sim_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    result = subprocess.run(
        [str(BIN / "thermal-synth"), "train", "--data", str(sim_dataset), "--out", str(out),
         "--gan-steps", "1", "--inversion-steps", "1", "--batch-size", "2", "--device", "cpu",
         "--eval-samples", "6"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 GAN + 1 inversion steps" in result.stdout
    description = json.loads((out / "model.json").read_text())
    assert description["config"]["generator_channels"] == [128, 96, 48, 24]
    assert load_trained_model(out).training.gan_steps == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 6
    assert metrics["split"] == "test"
    assert np.isfinite(metrics["fid"])
    assert 0.0 < metrics["mae"] < 1.0
    assert (tmp_path / "model.run" / "eval" / "report.md").is_file()


def test_train_command_errors_are_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "thermal-synth"), "train", "--data", str(tmp_path), "--out", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "manifest.json: missing" in result.stderr
