"""The model the package ships: complete, trained, evaluated on held-out identities, what an empty
`model` parameter loads, and a painter that follows the heatmap of a person it never saw."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from thermal_synth.dataset.shards import ShardReader
from thermal_synth.engine.inference import SynthesisEngine
from thermal_synth.evaluation.metrics import product_path_metrics
from thermal_synth.model.files import DEFAULT_MODEL, load_trained_model, resolve_model
from thermal_synth.sim.simulate import SimConfig, generate

TRAINING_SEED = 0
"""The simulated dataset the default model was trained on (README, Default model); its held-out
identities follow from the seed alone, so a small dataset of the same seed holds them out too."""


def test_an_empty_model_setting_loads_the_packaged_trained_model() -> None:
    assert resolve_model("") == DEFAULT_MODEL
    bundle = load_trained_model("")
    assert bundle.config.heatmap_size == (12, 16)
    assert bundle.training.trained
    assert bundle.training.encoder_trained
    assert len(bundle.bank) >= 4
    assert all(code.thumbnail is not None for code in bundle.bank)


def test_the_packaged_model_carries_its_held_out_evaluation() -> None:
    metrics = json.loads((DEFAULT_MODEL / "metrics.json").read_text())
    assert metrics["split"] == "heldout"
    assert metrics["n_samples"] >= 100
    for key in ("fid", "fid_reconstruction", "fid_product", "mae", "silhouette_iou"):
        assert np.isfinite(metrics[key]), key
    assert 0.0 < metrics["mae"] < 0.5
    assert metrics["model_training"]["gan_steps"] == load_trained_model("").training.gan_steps
    product = metrics["product_path"]
    assert product["sessions"] >= 4
    assert product["pose_gain"] > 0.0  # better than pasting the enrolment photo
    assert product["motion_gain"] > 0.0


def test_the_packaged_model_paints_different_appearances_for_different_codes() -> None:
    bundle = load_trained_model("")
    engine = SynthesisEngine(bundle, "cpu")
    heatmap = np.full((1, 12, 16), 21.0, np.float32)
    heatmap[0, 4:12, 6:10] = 33.0
    first, second = bundle.bank.names()[:2]
    painted_first, painted_second = engine.render(heatmap, first), engine.render(heatmap, second)
    assert painted_first.shape == (1, 96, 128, 3)
    assert np.abs(painted_first.astype(int) - painted_second.astype(int)).mean() > 3.0


@pytest.fixture(scope="module")
def held_out_sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("heldout") / "sim"
    generate(SimConfig(pairs=240, seed=TRAINING_SEED, frames_per_session=24), out, progress=False)
    return out


def test_people_it_never_saw_are_painted_in_their_live_pose_better_than_a_still_photo(
    held_out_sessions: Path,
) -> None:
    """The product path on fresh held-out sessions: one frame is the photo, its code is made as
    `codes add` makes it, every other frame is painted from its heatmap."""
    bundle = load_trained_model("")
    engine = SynthesisEngine(bundle, "cpu", precision="fp32")
    reader = ShardReader(held_out_sessions)
    data = reader.load_split("heldout", ["rgb", "heatmap", "person_mask", "session"])
    trained_on = {s.identity for s in reader.sessions if s.split != "heldout"}
    assert not {reader.sessions[s].identity for s in data["session"]} & trained_on
    photos, frames, painted, masks, photo_masks, sessions = [], [], [], [], [], []
    for number, session in enumerate(np.unique(data["session"])):
        rows = np.flatnonzero(data["session"] == session)
        photo, rest = rows[0], rows[1:]
        code = engine.encode(data["rgb"][photo][None])[0]
        painted.append(engine.render(data["heatmap"][rest], code))
        photos.append(data["rgb"][photo])
        photo_masks.append(data["person_mask"][photo])
        frames.append(data["rgb"][rest])
        masks.append(data["person_mask"][rest])
        sessions.append(np.full(len(rest), number))
    result = product_path_metrics(
        np.stack(photos),
        np.concatenate(frames),
        np.concatenate(painted),
        np.concatenate(sessions),
        masks=np.concatenate(masks),
        photo_masks=np.stack(photo_masks),
    )
    assert result.values()["motion_gain"] > 0.2
    assert result.values()["pose_gain"] > 0.0
    assert result.values()["product_mae"] < 0.08


@pytest.mark.parametrize("page", ["README.md", "docs/synthesis.md"])
def test_the_documented_appearance_switch_names_a_code_of_the_shipped_bank(page: str) -> None:
    names = re.findall(r"ros2 param set /thermal_synth latent_code (\S+)", (REPO / page).read_text())
    assert names, f"{page} shows no appearance switch"
    bank = load_trained_model(DEFAULT_MODEL).bank
    assert all(name in bank for name in names), f"{names} not all in {bank.names()}"
