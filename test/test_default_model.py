"""The model the package ships: complete, trained, evaluated on held-out data, and what an empty
`model` parameter loads."""

from __future__ import annotations

import json

import numpy as np

from thermal_synth.inference import SynthesisEngine
from thermal_synth.model.files import DEFAULT_MODEL, load_trained_model, resolve_model


def test_an_empty_model_setting_loads_the_packaged_trained_model() -> None:
    assert resolve_model("") == DEFAULT_MODEL
    bundle = load_trained_model("")
    assert bundle.config.heatmap_size == (12, 16)
    assert bundle.training.gan_steps > 0
    assert bundle.training.inversion_steps > 0
    assert len(bundle.bank) >= 4
    assert all(code.thumbnail is not None for code in bundle.bank)


def test_the_packaged_model_carries_its_held_out_evaluation() -> None:
    metrics = json.loads((DEFAULT_MODEL / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert metrics["n_samples"] >= 100
    for key in ("fid", "mae", "silhouette_iou"):
        assert np.isfinite(metrics[key]), key
    assert 0.0 < metrics["mae"] < 0.5
    assert metrics["model_training"]["gan_steps"] == load_trained_model("").training.gan_steps


def test_the_packaged_model_paints_different_appearances_for_different_codes() -> None:
    bundle = load_trained_model("")
    engine = SynthesisEngine(bundle, "cpu")
    heatmap = np.full((1, 12, 16), 21.0, np.float32)
    heatmap[0, 4:12, 6:10] = 33.0
    first, second = bundle.bank.names()[:2]
    painted_first, painted_second = engine.render(heatmap, first), engine.render(heatmap, second)
    assert painted_first.shape == (1, 96, 128, 3)
    assert np.abs(painted_first.astype(int) - painted_second.astype(int)).mean() > 3.0
