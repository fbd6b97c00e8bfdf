"""Training runs: checkpoints without pickle, exact resume, logs and samples, NaN stops, settings,
the command line, and two processes under torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import BIN
from model_fixtures import TINY_PLAN
from safetensors.torch import load_file

from thermal_synth.engine.inference import select_precision
from thermal_synth.model.config import NAMED_CONFIGS
from thermal_synth.model.files import load_trained_model
from thermal_synth.model.recipe import Preprocessing
from thermal_synth.training.checkpoints import (
    STATE_FILE,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from thermal_synth.training.cli import make_plan
from thermal_synth.training.run import (
    CHECKPOINTS_DIRECTORY,
    Schedule,
    TrainingDiverged,
    train_model,
)
from thermal_synth.training.run_log import COLUMNS, RunLog, plot_series
from thermal_synth.training.settings import (
    SettingsError,
    TrainSettings,
    available_settings,
    load_settings,
    settings_from_mapping,
)
from thermal_synth.training.trainer import SpadeSRTrainer, TrainConfig

RESUME_PLAN = replace(
    TINY_PLAN,
    gan_steps=4,
    inversion_steps=2,
    schedule=Schedule(log_every=1, sample_every=2, checkpoint_every=2, keep_checkpoints=2),
)


def _weights(model: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model / "weights.safetensors"))


def test_checkpoint_state_round_trips_without_pickle(tmp_path: Path) -> None:
    state = {
        "optimiser": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2, 2)}},
            "betas": (0.0, 0.9),
        },
        "rng": [torch.arange(5, dtype=torch.uint8)],
        "steps": 7,
        "nothing": None,
        "name": "run",
    }  # fmt: skip
    directory = save_checkpoint(tmp_path, 7, state, keep=2)
    loaded = load_checkpoint(directory)
    assert loaded["optimiser"]["state"][0]["step"].item() == 3.0
    assert torch.equal(loaded["optimiser"]["state"][0]["exp_avg"], torch.ones(2, 2))
    assert loaded["optimiser"]["betas"] == (0.0, 0.9)
    assert torch.equal(loaded["rng"][0], torch.arange(5, dtype=torch.uint8))
    assert (loaded["steps"], loaded["nothing"], loaded["name"]) == (7, None, "run")
    assert b"\x80" not in (directory / STATE_FILE).read_bytes()[:2]  # JSON, not a pickle stream
    for step in (8, 9):
        save_checkpoint(tmp_path, step, state, keep=2)
    assert [c.step for c in list_checkpoints(tmp_path)] == [8, 9]


def test_a_damaged_checkpoint_is_named(tmp_path: Path) -> None:
    directory = save_checkpoint(tmp_path, 1, {"weights": torch.ones(3)}, keep=1)
    document = json.loads((directory / STATE_FILE).read_text())
    document["state"]["dict"]["weights"] = {"tensor": "state/elsewhere"}
    (directory / STATE_FILE).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=r"state/elsewhere.*missing"):
        load_checkpoint(directory)
    document["state"] = {"pickle": "cos\nsystem"}
    (directory / STATE_FILE).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="malformed entry of kind 'pickle'"):
        load_checkpoint(directory)


def test_resumed_pieces_give_the_weights_of_one_uninterrupted_run(sim_dataset: Path, tmp_path: Path) -> None:
    whole = train_model(
        sim_dataset, tmp_path / "whole", RESUME_PLAN, run_directory=tmp_path / "whole.run", progress=False
    )
    assert whole.bundle is not None
    # A budget that runs out after every step: six pieces, across the GAN -> inversion boundary.
    pieces_plan = replace(RESUME_PLAN, schedule=replace(RESUME_PLAN.schedule, max_seconds=1e-9))
    run, pieces, outcome = tmp_path / "pieces.run", 0, None
    while outcome is None or outcome.bundle is None:
        outcome = train_model(
            sim_dataset,
            tmp_path / "pieces",
            pieces_plan,
            run_directory=run,
            resume=pieces > 0,
            progress=False,
        )
        pieces += 1
    assert pieces == RESUME_PLAN.gan_steps + RESUME_PLAN.inversion_steps
    expected, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "pieces")
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name
    assert (tmp_path / "whole" / "bank.json").read_text() == (tmp_path / "pieces" / "bank.json").read_text()
    assert [r["step"] for r in RunLog(run).records()] == [1, 2, 3, 4, 5, 6]
    assert RunLog(run).records() != []
    whole_losses = [r["d_loss"] for r in RunLog(tmp_path / "whole.run").records()]
    assert [r["d_loss"] for r in RunLog(run).records()] == whole_losses


def test_a_run_leaves_logs_curves_samples_and_checkpoints(sim_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_model(sim_dataset, tmp_path / "model", RESUME_PLAN, run_directory=run, progress=False)
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(COLUMNS)
    assert len(csv_lines) == 1 + 6
    records = RunLog(run).records()
    assert {r["phase"] for r in records} == {"gan", "inversion"}
    assert all(r["steps_per_s"] > 0 for r in records)
    assert "e_l1" in records[-1]
    assert "g_loss" in records[0]
    curves = cv2.imread(str(run / "curves.png"))
    assert curves is not None
    assert curves.shape[0] > 300
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["gan_0000002.png", "gan_0000004.png", "inversion_0000006.png"]
    grid = cv2.imread(str(run / "samples" / "inversion_0000006.png"))
    assert grid.shape[1] > 4 * 128  # one column per sample frame
    assert [c.step for c in list_checkpoints(run / CHECKPOINTS_DIRECTORY)] == [4, 6]


def test_a_series_of_one_record_is_drawn_visibly() -> None:
    """A run paused at its first log step has one record per loss; its curves must not be empty."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    def coloured_pixels(steps: list[int], values: list[float]) -> int:
        figure, axis = pyplot.subplots(figsize=(3, 2), dpi=90)
        plot_series(axis, steps, values, "g_total")
        axis.set_xlim(0, 20)
        axis.set_ylim(0, 2)
        figure.canvas.draw()
        pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)
        pyplot.close(figure)
        blue = np.array([0x1F, 0x77, 0xB4])
        return int((np.abs(pixels - blue).sum(-1) < 60).sum())

    assert coloured_pixels([10], [1.0]) > 10
    assert coloured_pixels([5, 15], [0.5, 1.5]) > 10


def test_records_average_the_steps_between_them_so_lazy_r1_is_logged(sim_dataset: Path, tmp_path: Path):
    """R1 every 3rd D step and a record every 2nd step: the last step's values alone would show
    R1 in only some records; each record's loss is the mean over its steps."""
    lazy = replace(RESUME_PLAN.train, r1_interval=3)
    every_step = replace(RESUME_PLAN, gan_steps=6, inversion_steps=0, train=lazy)
    train_model(sim_dataset, tmp_path / "a", every_step, run_directory=tmp_path / "a.run", progress=False)
    paired = replace(every_step, schedule=replace(every_step.schedule, log_every=2))
    train_model(sim_dataset, tmp_path / "b", paired, run_directory=tmp_path / "b.run", progress=False)
    steps = RunLog(tmp_path / "a.run").records()
    records = RunLog(tmp_path / "b.run").records()
    assert [r["step"] for r in records] == [2, 4, 6]
    assert [("r1" in r) for r in steps] == [True, False, False, True, False, False]
    assert [("r1" in r) for r in records] == [True, True, False]
    for record, first, second in zip(records, steps[0::2], steps[1::2], strict=True):
        assert record["d_loss"] == pytest.approx((first["d_loss"] + second["d_loss"]) / 2)
    assert records[0]["r1"] == pytest.approx(steps[0]["r1"])


def test_a_checkpoint_of_other_settings_or_data_is_refused(sim_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    paused = replace(RESUME_PLAN, schedule=replace(RESUME_PLAN.schedule, max_seconds=1e-9))
    train_model(sim_dataset, tmp_path / "m", paused, run_directory=run, progress=False)
    other = replace(paused, train=replace(paused.train, lr_generator=1e-3))
    with pytest.raises(CheckpointError, match=r"other settings: train\.lr_generator"):
        train_model(sim_dataset, tmp_path / "m", other, run_directory=run, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train_model(sim_dataset, tmp_path / "m", paused, run_directory=run, progress=False)
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        train_model(
            sim_dataset, tmp_path / "m", paused, run_directory=tmp_path / "empty", resume=True, progress=False
        )


def test_a_checkpoint_older_than_a_training_setting_resumes_with_that_setting_at_its_default(
    sim_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    paused = replace(RESUME_PLAN, schedule=replace(RESUME_PLAN.schedule, max_seconds=1e-9))
    train_model(sim_dataset, tmp_path / "m", paused, run_directory=run, progress=False)
    (checkpoint,) = list_checkpoints(run / CHECKPOINTS_DIRECTORY)
    state_file = checkpoint.directory / STATE_FILE
    document = json.loads(state_file.read_text())
    train = document["state"]["dict"]["identity"]["dict"]["plan"]["dict"]["train"]["dict"]
    del train["silhouette_weight"]
    state_file.write_text(json.dumps(document))

    later = replace(paused, train=replace(paused.train, silhouette_weight=1.0))
    with pytest.raises(CheckpointError, match=r"other settings: train\.silhouette_weight"):
        train_model(sim_dataset, tmp_path / "m", later, run_directory=run, resume=True, progress=False)
    train_model(sim_dataset, tmp_path / "m", paused, run_directory=run, resume=True, progress=False)
    assert list_checkpoints(run / CHECKPOINTS_DIRECTORY)[-1].step > checkpoint.step


def test_non_finite_losses_stop_the_run_and_keep_the_last_good_checkpoint(
    sim_dataset: Path, tmp_path: Path
) -> None:
    exploding = replace(
        RESUME_PLAN,
        gan_steps=20,
        train=replace(RESUME_PLAN.train, lr_generator=1e30),
        schedule=replace(RESUME_PLAN.schedule, checkpoint_every=1, keep_checkpoints=5),
    )
    with pytest.raises(
        TrainingDiverged, match=r"non-finite losses .*last good checkpoint is kept at .*step_"
    ) as caught:
        train_model(
            sim_dataset, tmp_path / "model", exploding, run_directory=tmp_path / "run", progress=False
        )
    kept = list_checkpoints(tmp_path / "run" / CHECKPOINTS_DIRECTORY)
    assert kept
    assert f"step_{kept[-1].step:07d}" in str(caught.value)
    assert not (tmp_path / "model").exists()


def test_bf16_autocast_steps_are_finite(sim_dataset: Path) -> None:
    from thermal_synth.dataset.pairs import load_pairs
    from thermal_synth.dataset.shards import ShardReader

    reader = ShardReader(sim_dataset)
    batch = load_pairs(reader, "train", Preprocessing(reader.recipe)).batch(torch.arange(4), "cpu")
    trainer = SpadeSRTrainer(TINY_PLAN.model, Preprocessing(), TrainConfig(batch_size=4, precision="bf16"))
    losses = {**trainer.gan_step(*batch), **trainer.inversion_step(*batch)}
    assert all(np.isfinite(v) for v in losses.values())
    assert trainer.networks.generator.to_rgb.weight.dtype == torch.float32


def test_lazy_r1_runs_every_nth_discriminator_step(sim_dataset: Path) -> None:
    from thermal_synth.dataset.pairs import load_pairs
    from thermal_synth.dataset.shards import ShardReader

    reader = ShardReader(sim_dataset)
    batch = load_pairs(reader, "train", Preprocessing(reader.recipe)).batch(torch.arange(4), "cpu")
    trainer = SpadeSRTrainer(TINY_PLAN.model, Preprocessing(), TrainConfig(batch_size=4, r1_interval=3))
    with_r1 = ["r1" in trainer.gan_step(*batch) for _ in range(6)]
    assert with_r1 == [True, False, False, True, False, False]


def test_every_shipped_training_config_loads_and_flags_validate(tmp_path: Path) -> None:
    assert {"fast", "base", "paper", "sim_cpu"} <= set(available_settings())
    for name in available_settings():
        assert load_settings(name).model in NAMED_CONFIGS
    assert load_settings("base").model == "base"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: fast\nlearning_rate: 0.1\n")
    with pytest.raises(SettingsError, match=r"unknown settings \['learning_rate'\]"):
        load_settings(str(bad))
    with pytest.raises(SettingsError, match="batch_size must be int"):
        settings_from_mapping({"batch_size": "64"}, "flags")
    with pytest.raises(SettingsError, match="ema_gan must be in"):
        TrainSettings(ema_gan=1.5)
    with pytest.raises(SettingsError, match="not found; named configs"):
        load_settings("huge")


def test_auto_precision_trains_in_the_precision_the_node_paints_in() -> None:
    """A CPU recipe config must not hard-code bf16: emulated on a CPU without AMX or AVX512-BF16,
    it is slower than fp32 there."""
    cpu = torch.device("cpu")
    for name in ("sim_cpu", "sim_cpu_swaps", "sim_cpu_q2", "sim_cpu_room"):
        settings = load_settings(name)
        assert settings.precision == "auto", name
        assert make_plan(settings, (12, 16), math.inf).train.precision == select_precision("auto", cpu)
    pinned = replace(load_settings("sim_cpu"), precision="fp32")
    assert make_plan(pinned, (12, 16), math.inf).train.precision == "fp32"


def _train_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "thermal-synth"), "train", *arguments],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip


CLI_SMALL = (
    "--config", "fast", "--batch-size", "2", "--eval-samples", "0", "--log-every", "1", "--r1-interval", "8",
    "--device", "cpu",
)  # fmt: skip


def test_train_command_pauses_with_a_checkpoint_and_resumes(sim_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    common = ("--data", str(sim_dataset), "--out", str(out), *CLI_SMALL)
    paused = _train_cli(*common, "--gan-steps", "2", "--inversion-steps", "1", "--max-minutes", "0.00001")
    assert paused.returncode == 0, paused.stderr
    assert f"training in {select_precision('auto', torch.device('cpu'))} on cpu" in paused.stdout
    assert "paused at step 1" in paused.stdout
    assert "--resume" in paused.stdout
    assert not out.exists()
    changed = _train_cli(*common, "--resume", "--batch-size", "4")
    assert changed.returncode == 2
    assert "cannot change ['batch_size']" in changed.stderr
    resumed = _train_cli(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 GAN + 1 inversion steps" in resumed.stdout
    assert load_trained_model(out).training.inversion_steps == 1
    settings = json.loads((tmp_path / "model.run" / "settings.json").read_text())
    assert settings["batch_size"] == 2
    assert settings["r1_interval"] == 8
    again = _train_cli(*common)
    assert again.returncode == 2
    assert "is not empty; pass --resume" in again.stderr


def test_train_command_reports_divergence_and_bad_settings(sim_dataset: Path, tmp_path: Path) -> None:
    common = ("--data", str(sim_dataset), "--out", str(tmp_path / "m"), *CLI_SMALL)
    diverged = _train_cli(
        *common,
        "--gan-steps",
        "30",
        "--lr-generator",
        "1e30",
        "--lr-discriminator",
        "1e30",
        "--checkpoint-every",
        "1",
    )
    assert diverged.returncode == 3, diverged.stderr
    last_line = diverged.stderr.strip().splitlines()[-1]
    assert last_line.startswith("thermal-synth train: error: gan step ")
    assert "non-finite losses" in last_line
    bad = _train_cli(
        "--data", str(sim_dataset), "--out", str(tmp_path / "n"), "--config", "sim_cpu", "--precision", "fp8"
    )
    assert bad.returncode == 2
    assert "precision must be" in bad.stderr


def test_two_processes_under_torchrun_stay_in_sync(sim_dataset: Path, tmp_path: Path) -> None:
    out, run = tmp_path / "model", tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(29500 + os.getpid() % 1000), "-m", "thermal_synth.cli", "train",
         "--data", str(sim_dataset), "--out", str(out), "--run-dir", str(run), *CLI_SMALL,
         "--batch-size", "4", "--gan-steps", "2", "--inversion-steps", "1", "--device", "cpu",
         "--checkpoint-every", "1"],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1  # rank 0 reports, rank 1 does not
    assert load_trained_model(out).training.gan_steps == 2
    state = load_checkpoint(list_checkpoints(run / CHECKPOINTS_DIRECTORY)[-1].directory)
    generator_states = state["rng"]["generator"]
    assert len(generator_states) == 2
    assert not torch.equal(generator_states[0], generator_states[1])
    assert state["identity"]["world_size"] == 2
