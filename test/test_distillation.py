"""Distillation: a smaller student trained against a trained teacher's images and codes.

The teacher is the session's tiny trained model; students are narrower networks of the same
z_dim, heatmap size and upsampling. Everything runs on real model files and real training steps.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from model_fixtures import TINY_CONFIG, TINY_PLAN, copy_model
from torch.nn import functional

from thermal_synth.cli import main
from thermal_synth.dataset.pairs import PairTensors, load_pairs
from thermal_synth.dataset.shards import HeatmapRecipe, ShardReader
from thermal_synth.model.bank import LatentBank
from thermal_synth.model.config import ModelConfig, named_config
from thermal_synth.model.files import (
    ModelBundle,
    ModelFileError,
    TrainingRecord,
    load_model,
    load_trained_model,
    read_description,
    save_model,
)
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Normalisation, Preprocessing
from thermal_synth.training.checkpoints import CheckpointError
from thermal_synth.training.cli import make_plan
from thermal_synth.training.distillation import DistillationConfig, Teacher, TeacherError
from thermal_synth.training.run import Schedule, train_model
from thermal_synth.training.run_log import RunLog
from thermal_synth.training.settings import (
    RESUMABLE_CHANGES,
    SettingsError,
    TrainSettings,
    load_settings,
    named_settings_file,
)
from thermal_synth.training.trainer import SpadeSRTrainer, TrainConfig

STUDENT = ModelConfig(
    thermal_channels=4,
    generator_channels=(16, 8, 8, 8),
    discriminator_channels=(8, 8, 16),
    encoder_channels=(8, 8, 8, 16),
)
"""Narrower than TINY_CONFIG (the teacher) in every network; same z_dim, heatmap and upsampling."""
TRAINED = TrainingRecord(gan_steps=1, inversion_steps=1)
STUDENT_PLAN = replace(
    TINY_PLAN,
    model=STUDENT,
    gan_steps=2,
    inversion_steps=1,
    schedule=Schedule(log_every=1, sample_every=10, checkpoint_every=10),
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _preprocessing(sim_dataset: Path) -> Preprocessing:
    return Preprocessing(ShardReader(sim_dataset).recipe)


def _pairs(sim_dataset: Path, split: str) -> PairTensors:
    return load_pairs(ShardReader(sim_dataset), split, _preprocessing(sim_dataset))


def _teacher(tiny_model: Path, sim_dataset: Path, **weights: float) -> Teacher:
    config = DistillationConfig(tiny_model, **{"encoder_distil_weight": 1.0, **weights})
    return Teacher.load(config, STUDENT, _preprocessing(sim_dataset), "cpu")


def _saved_model(
    directory: Path,
    config: ModelConfig,
    preprocessing: Preprocessing,
    record: TrainingRecord = TRAINED,
) -> Path:
    """A real model directory with random weights and the training `record` it claims."""
    bundle = ModelBundle(config, preprocessing, record, SpadeSRModel(config).eval(), LatentBank(config.z_dim))
    return save_model(directory, bundle)


def _other_teacher(tiny_model: Path, directory: Path) -> Path:
    """The tiny model with one weight nudged: the same shapes, another checksum."""
    bundle = load_model(tiny_model)
    with torch.no_grad():
        bundle.networks.generator.to_rgb.bias.add_(0.01)
    return save_model(directory, bundle)


def _gap(generator: torch.nn.Module, teacher: Teacher, z: torch.Tensor, heatmaps: torch.Tensor) -> float:
    with torch.no_grad():
        return functional.l1_loss(generator.eval()(z, heatmaps), teacher.images(z, heatmaps)).item()


def test_distillation_brings_the_student_closer_to_the_teacher_than_plain_training(
    tiny_model: Path, sim_dataset: Path
) -> None:
    teacher = _teacher(tiny_model, sim_dataset, distil_weight=10.0, distil_bank_share=0.5)
    train, held_out = _pairs(sim_dataset, "train"), _pairs(sim_dataset, "test")
    random_codes = torch.randn(len(held_out), STUDENT.z_dim, generator=torch.Generator().manual_seed(3))
    bank = torch.from_numpy(np.stack([code.z for code in teacher.bank]))
    bank_codes = bank[torch.arange(len(held_out)) % len(bank)]
    # ema_gan 0: the shipped (EMA) generator is the live one, so 8 steps show; R1 once, for speed.
    config = TrainConfig(batch_size=8, seed=1, lr_generator=2e-3, ema_gan=0.0, r1_interval=1000)
    gaps = {}
    for name, with_teacher in (("distilled", teacher), ("plain", None)):
        trainer = SpadeSRTrainer(STUDENT, _preprocessing(sim_dataset), config, teacher=with_teacher)
        start = _gap(trainer.ema.generator, teacher, random_codes, held_out.heatmaps)
        order = torch.Generator().manual_seed(2)
        for _ in range(8):
            losses = trainer.gan_step(*train.batch(torch.randint(len(train), (8,), generator=order), "cpu"))
            assert ("g_distil" in losses) is (with_teacher is not None)
        gaps[name] = (
            start,
            _gap(trainer.ema.generator, teacher, random_codes, held_out.heatmaps),
            _gap(trainer.ema.generator, teacher, bank_codes, held_out.heatmaps),
        )
    (start, distilled, distilled_bank), (plain_start, plain, plain_bank) = gaps["distilled"], gaps["plain"]
    assert start == plain_start  # the same initial student
    assert distilled < 0.85 * start
    assert distilled < 0.85 * plain
    assert distilled_bank < 0.7 * plain_bank


def test_the_teacher_is_frozen_and_runs_at_the_student_precision(tiny_model: Path, sim_dataset: Path) -> None:
    teacher = _teacher(tiny_model, sim_dataset)
    before = {name: tensor.clone() for name, tensor in teacher.networks.state_dict().items()}
    batch = _pairs(sim_dataset, "train").batch(torch.arange(4), "cpu")
    trainer = SpadeSRTrainer(
        STUDENT, _preprocessing(sim_dataset), TrainConfig(batch_size=4, precision="bf16"), teacher=teacher
    )
    losses = {**trainer.gan_step(*batch), **trainer.inversion_step(*batch)}
    assert {"g_distil", "e_distil"} <= losses.keys()
    assert all(math.isfinite(value) for value in losses.values())
    assert not teacher.networks.training
    assert not any(parameter.requires_grad for parameter in teacher.networks.parameters())
    for name, tensor in teacher.networks.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_bank_codes_replace_their_share_of_the_batch(tiny_model: Path, sim_dataset: Path) -> None:
    teacher = _teacher(tiny_model, sim_dataset, distil_bank_share=0.5)
    z = torch.randn(8, STUDENT.z_dim)
    mixed = teacher.with_bank_codes(z, torch.Generator().manual_seed(0))
    bank = torch.from_numpy(np.stack([code.z for code in teacher.bank]))
    assert torch.equal(mixed[4:], z[4:])
    for row in mixed[:4]:
        assert (bank == row).all(dim=1).any()


def test_a_distilled_model_ships_the_teacher_bank_and_names_its_teacher(
    tiny_model: Path, sim_dataset: Path, tmp_path: Path
) -> None:
    plan = replace(STUDENT_PLAN, distillation=DistillationConfig(tiny_model, 1.0, 1.0, 0.5))
    outcome = train_model(
        sim_dataset, tmp_path / "student", plan, run_directory=tmp_path / "run", progress=False
    )
    assert outcome.bundle is not None
    student, teacher = load_trained_model(tmp_path / "student"), load_trained_model(tiny_model)
    assert student.config == STUDENT
    assert student.bank.names() == teacher.bank.names()
    for code in teacher.bank:
        np.testing.assert_array_equal(student.bank.get(code.name).z, code.z)
    record = student.training.details["distillation"]
    assert record["teacher"] == str(tiny_model)
    assert record["teacher_sha256"] == read_description(tiny_model)["weights"]["sha256"]
    assert (record["distil_weight"], record["encoder_distil_weight"], record["distil_bank_share"]) == (
        1.0,
        1.0,
        0.5,
    )
    records = RunLog(tmp_path / "run").records()
    assert all(r["g_distil"] > 0 for r in records if r["phase"] == "gan")
    assert all(r["e_distil"] > 0 for r in records if r["phase"] == "inversion")


@pytest.mark.parametrize(
    ("config", "preprocessing", "message"),
    [
        (replace(TINY_CONFIG, z_dim=64), Preprocessing(), "z_dim is 64, the student's is 128"),
        (
            TINY_CONFIG.with_heatmap_size((6, 8)),
            Preprocessing(HeatmapRecipe(output_size=(6, 8))),
            r"heatmap_size is \(6, 8\), the student's is \(12, 16\)",
        ),
        (
            replace(
                TINY_CONFIG,
                upsampling=4,
                generator_channels=(16, 8, 8),
                discriminator_channels=(8, 8),
                encoder_channels=(8, 8, 8),
            ),
            Preprocessing(),
            "upsampling is 4, the student's is 8",
        ),
        (
            TINY_CONFIG,
            Preprocessing(normalisation=Normalisation(low_c=15.0)),
            "preprocessing.normalisation.low_c is 15.0, the student's is 10.0",
        ),
        (
            TINY_CONFIG,
            Preprocessing(normalisation=Normalisation(mode="frame")),
            "preprocessing.normalisation.mode is 'frame', the student's is 'fixed'",
        ),
    ],
    ids=["z_dim", "heatmap_size", "upsampling", "normalisation_low_c", "normalisation_mode"],
)
def test_a_teacher_of_other_shapes_or_preprocessing_is_refused_naming_the_field(
    config: ModelConfig,
    preprocessing: Preprocessing,
    message: str,
    sim_dataset: Path,
    tmp_path: Path,
) -> None:
    teacher = _saved_model(tmp_path / "teacher", config, preprocessing)
    with pytest.raises(TeacherError, match=rf"teacher {re.escape(str(tmp_path))}/teacher: {message}"):
        Teacher.load(DistillationConfig(teacher), STUDENT, _preprocessing(sim_dataset), "cpu")


def test_a_run_with_an_unfit_teacher_stops_before_writing_anything(sim_dataset: Path, tmp_path: Path) -> None:
    teacher = _saved_model(tmp_path / "teacher", replace(TINY_CONFIG, z_dim=64), Preprocessing())
    plan = replace(STUDENT_PLAN, distillation=DistillationConfig(teacher))
    with pytest.raises(TeacherError, match="z_dim is 64"):
        train_model(sim_dataset, tmp_path / "student", plan, run_directory=tmp_path / "run", progress=False)
    assert not (tmp_path / "student").exists()
    assert not (tmp_path / "run").exists()


def test_a_missing_damaged_or_untrained_teacher_is_refused(
    tiny_model: Path, sim_dataset: Path, tmp_path: Path
) -> None:
    def load(path: Path, **weights: float) -> Teacher:
        return Teacher.load(DistillationConfig(path, **weights), STUDENT, _preprocessing(sim_dataset), "cpu")

    with pytest.raises(ModelFileError, match=rf"^teacher {tmp_path / 'absent'}: no such model directory"):
        load(tmp_path / "absent")
    damaged = copy_model(tiny_model, tmp_path / "damaged")
    (damaged / "weights.safetensors").write_bytes(b"\x80\x04not weights")
    with pytest.raises(ModelFileError, match=r"^teacher .*damaged/weights\.safetensors: .*bytes"):
        load(damaged)
    untrained = _saved_model(
        tmp_path / "untrained", TINY_CONFIG, _preprocessing(sim_dataset), TrainingRecord()
    )
    with pytest.raises(ModelFileError, match=r"^teacher .*never trained"):
        load(untrained)
    no_encoder = _saved_model(
        tmp_path / "gan", TINY_CONFIG, _preprocessing(sim_dataset), TrainingRecord(1, 0)
    )
    assert load(no_encoder).weights_sha256 == read_description(no_encoder)["weights"]["sha256"]
    with pytest.raises(TeacherError, match=r"encoder was never trained \(0 inversion steps\)"):
        load(no_encoder, encoder_distil_weight=1.0)
    bankless = _saved_model(tmp_path / "bankless", TINY_CONFIG, _preprocessing(sim_dataset))
    with pytest.raises(TeacherError, match="latent bank is empty; set distil_bank_share to 0"):
        load(bankless, distil_bank_share=0.5)


def test_resuming_with_another_teacher_is_refused(
    tiny_model: Path, sim_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    plan = replace(
        STUDENT_PLAN,
        distillation=DistillationConfig(tiny_model),
        schedule=replace(STUDENT_PLAN.schedule, max_seconds=1e-9),
    )
    paused = train_model(sim_dataset, tmp_path / "student", plan, run_directory=run, progress=False)
    assert (paused.step, paused.bundle) == (1, None)

    def resume(distillation: DistillationConfig | None):
        return train_model(
            sim_dataset,
            tmp_path / "student",
            replace(plan, distillation=distillation),
            run_directory=run,
            resume=True,
            progress=False,
        )

    other = _other_teacher(tiny_model, tmp_path / "other")
    with pytest.raises(
        CheckpointError, match=r"distilled from another teacher \(the teacher's weights sha256"
    ):
        resume(DistillationConfig(other))
    with pytest.raises(CheckpointError, match="was distilled from a teacher, this run has none"):
        resume(None)
    with pytest.raises(CheckpointError, match=r"other settings: distillation\.distil_weight"):
        resume(DistillationConfig(tiny_model, distil_weight=2.0))
    # The same teacher under another path (the run moved to another machine) continues.
    moved = copy_model(tiny_model, tmp_path / "moved")
    assert resume(DistillationConfig(moved)).step == 2


def test_the_distil_fast_config_needs_a_teacher_and_the_command_distils(
    sim_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `fast` has spatial codes: its teacher must paint from codes of the same shape.
    spatial = replace(TINY_CONFIG, code_channels=4, z_dim=named_config("fast_whole_frame").z_dim)
    teacher_plan = replace(TINY_PLAN, model=spatial, gan_steps=1, inversion_steps=1)
    tiny_model = train_model(sim_dataset, tmp_path / "teacher", teacher_plan, progress=False).bundle.directory
    written = yaml.safe_load(named_settings_file("distil_fast").read_text())
    assert set(written) <= {item.name for item in fields(TrainSettings)}
    settings = load_settings("distil_fast")
    assert (settings.model, settings.teacher) == ("fast_whole_frame", "")
    assert settings.distil_weight > 0
    with pytest.raises(SettingsError, match="but no teacher: pass --teacher MODEL_DIR"):
        make_plan(settings, (12, 16), math.inf)
    plan = make_plan(replace(settings, teacher=str(tiny_model), device="cpu"), (12, 16), math.inf)
    assert plan.distillation == DistillationConfig(tiny_model, 10.0, 1.0, 0.25)
    assert plan.fingerprint()["distillation"] == {
        "distil_weight": 10.0,
        "encoder_distil_weight": 1.0,
        "distil_bank_share": 0.25,
    }
    assert "distillation" not in STUDENT_PLAN.fingerprint()  # checkpoints of ordinary runs still resume
    assert "teacher" in RESUMABLE_CHANGES
    with pytest.raises(SettingsError, match="distil_weight must be > 0 with a teacher"):
        TrainSettings(teacher="models/base")
    with pytest.raises(SettingsError, match=r"distil_bank_share must be in \[0, 1\]"):
        TrainSettings(teacher="models/base", distil_weight=1.0, distil_bank_share=1.5)

    out, run = tmp_path / "fast", tmp_path / "fast.run"
    common = ["train", "--config", "distil_fast", "--data", str(sim_dataset), "--out", str(out)]
    small = ["--batch-size", "2", "--gan-steps", "1", "--inversion-steps", "1", "--eval-samples", "0"]
    assert main([*common, *small, "--device", "cpu"]) == 2
    assert "set but no teacher: pass --teacher" in capsys.readouterr().err
    assert not run.exists()
    paused = main([*common, *small, "--device", "cpu", "--teacher", str(tiny_model), "--max-minutes", "1e-9"])
    assert paused == 0
    assert "paused at step 1" in capsys.readouterr().out
    other = _other_teacher(tiny_model, tmp_path / "other")
    assert main([*common, "--resume", "--teacher", str(other)]) == 2
    assert "distilled from another teacher" in capsys.readouterr().err
    moved = shutil.copytree(tiny_model, tmp_path / "moved")
    assert main([*common, "--resume", "--teacher", str(moved)]) == 0
    assert f"distilled from {moved}, 1 GAN + 1 inversion steps" in capsys.readouterr().out
    assert load_trained_model(out).training.details["distillation"]["teacher"] == str(moved)
