"""The inference engine on a really (briefly) trained model: heatmaps in, RGB out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import TINY_CONFIG

from thermal_synth.dataset.shards import ShardReader
from thermal_synth.engine.inference import (
    AppearanceTransition,
    HeatmapError,
    SynthesisEngine,
    fit_heatmap,
    resize_output,
    select_device,
    select_precision,
    slerp,
)
from thermal_synth.model.bank import LatentBank, LatentCode
from thermal_synth.model.files import ModelBundle, TrainingRecord, load_trained_model
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Normalisation, Preprocessing


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> SynthesisEngine:
    return SynthesisEngine(load_trained_model(tiny_model), "cpu")


@pytest.fixture(scope="module")
def heatmaps(sim_dataset: Path) -> np.ndarray:
    return ShardReader(sim_dataset).load_split("test", ["heatmap"])["heatmap"][:6]


def test_render_paints_rgb_at_the_model_size(engine: SynthesisEngine, heatmaps: np.ndarray) -> None:
    name = engine.bundle.bank.names()[0]
    images = engine.render(heatmaps, name)
    assert images.shape == (6, 96, 128, 3)
    assert images.dtype == np.uint8
    assert images.std() > 1.0


def test_batched_and_single_frames_agree(engine: SynthesisEngine, heatmaps: np.ndarray) -> None:
    name = engine.bundle.bank.names()[0]
    batched = engine.render(heatmaps, name)
    single = np.concatenate([engine.render(heatmaps[i : i + 1], name) for i in range(len(heatmaps))])
    assert np.abs(batched.astype(int) - single).max() <= 1


def test_pose_and_code_both_change_the_picture(engine: SynthesisEngine, heatmaps: np.ndarray) -> None:
    first, second = engine.bundle.bank.names()[:2]
    a = engine.render(heatmaps[:2], first).astype(int)
    b = engine.render(heatmaps[:2], second).astype(int)
    assert np.abs(a - b).mean() > 0.0
    assert np.abs(a[0] - a[1]).mean() > 0.0


def test_cached_projection_equals_projecting_the_code(engine: SynthesisEngine, heatmaps: np.ndarray) -> None:
    name = engine.bundle.bank.names()[1]
    by_name = engine.render(heatmaps[:1], name)
    by_z = engine.render(heatmaps[:1], engine.bundle.bank.get(name).z)
    assert np.array_equal(by_name, by_z)


def test_render_is_deterministic(engine: SynthesisEngine, heatmaps: np.ndarray) -> None:
    name = engine.bundle.bank.names()[0]
    assert np.array_equal(engine.render(heatmaps, name), engine.render(heatmaps, name))


@pytest.fixture(scope="module")
def random_tiny_bundle() -> ModelBundle:
    """Random weights: bf16 rounding shows on any weights, and these need no training."""
    torch.manual_seed(0)
    bank = LatentBank(TINY_CONFIG.z_dim)
    bank.add(LatentCode("a", np.random.default_rng(0).standard_normal(TINY_CONFIG.z_dim).astype(np.float32)))
    networks = SpadeSRModel(TINY_CONFIG).eval()
    return ModelBundle(TINY_CONFIG, Preprocessing(), TrainingRecord(), networks, bank)


def test_bf16_paints_what_fp32_paints_to_within_a_grey_level(random_tiny_bundle: ModelBundle) -> None:
    heatmaps = np.random.default_rng(1).uniform(18.0, 36.0, (4, 12, 16)).astype(np.float32)
    fp32 = SynthesisEngine(random_tiny_bundle, "cpu").render(heatmaps, "a")
    bf16 = SynthesisEngine(random_tiny_bundle, "cpu", precision="bf16").render(heatmaps, "a")
    assert bf16.dtype == np.uint8
    assert bf16.shape == fp32.shape == (4, 96, 128, 3)
    assert fp32.std() > 1.0
    difference = np.abs(fp32.astype(int) - bf16.astype(int))
    assert difference.max() > 0  # bf16 really ran
    assert difference.mean() < 1.0


def test_unknown_precisions_are_refused(random_tiny_bundle: ModelBundle) -> None:
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; use auto, fp32 or bf16"):
        SynthesisEngine(random_tiny_bundle, "cpu", precision="fp16")
    resolved = SynthesisEngine(random_tiny_bundle, "cpu", precision="auto").precision
    assert resolved == select_precision("auto", torch.device("cpu"))


def test_painting_on_the_device_paints_what_reaches_the_host(random_tiny_bundle: ModelBundle) -> None:
    engine = SynthesisEngine(random_tiny_bundle, "cpu")
    heatmaps = engine.prepare(np.random.default_rng(2).uniform(18.0, 36.0, (2, 12, 16)).astype(np.float32))
    on_device = engine.paint_on_device(torch.from_numpy(heatmaps), engine.projection("a"))
    assert on_device.dtype == torch.uint8
    assert on_device.device == engine.device
    assert np.array_equal(on_device.numpy(), engine.paint(heatmaps, engine.projection("a")))


def test_encoder_codes_have_the_model_dimension(engine: SynthesisEngine, sim_dataset: Path) -> None:
    photos = ShardReader(sim_dataset).load_split("test", ["rgb"])["rgb"][:3]
    codes = engine.encode(photos)
    assert codes.shape == (3, 128)
    assert np.isfinite(codes).all()
    with pytest.raises(ValueError, match="images must be"):
        engine.encode(photos[:, :48])


def test_integral_heatmap_sizes_are_area_averaged() -> None:
    fine = np.arange(24 * 32, dtype=np.float32).reshape(24, 32)
    coarse = fit_heatmap(fine, (12, 16))
    assert coarse.shape == (12, 16)
    assert coarse[0, 0] == pytest.approx(fine[:2, :2].mean())
    assert fit_heatmap(coarse, (12, 16)) is coarse


@pytest.mark.parametrize("shape", [(12, 15), (18, 24), (6, 8)])
def test_other_heatmap_sizes_are_refused(shape: tuple[int, int]) -> None:
    with pytest.raises(HeatmapError, match=r"model takes 12x16"):
        fit_heatmap(np.zeros(shape, np.float32), (12, 16))


def test_non_finite_heatmaps_are_refused(engine: SynthesisEngine) -> None:
    bad = np.full((1, 12, 16), 30.0, np.float32)
    bad[0, 3, 3] = np.nan
    with pytest.raises(HeatmapError, match="NaN"):
        engine.render(bad, engine.bundle.bank.names()[0])


def test_normalisation_modes() -> None:
    celsius = np.array([[10.0, 25.0], [40.0, 55.0]], np.float32)
    assert Normalisation("fixed", 10.0, 40.0).apply(celsius).tolist() == [[-1.0, 0.0], [1.0, 1.0]]
    per_frame = Normalisation("frame").apply(celsius)
    assert per_frame.min() == -1.0
    assert per_frame.max() == 1.0
    assert Normalisation("frame").apply(np.full((2, 2), 30.0, np.float32)).tolist() == [[-1.0, -1.0]] * 2
    with pytest.raises(ValueError, match="mode"):
        Normalisation("log")


def test_resize_output_uses_the_requested_size() -> None:
    images = np.random.default_rng(0).integers(0, 255, (2, 96, 128, 3), dtype=np.uint8)
    assert resize_output(images, None) is images
    assert resize_output(images, (480, 640)).shape == (2, 480, 640, 3)
    assert resize_output(images, (48, 64)).shape == (2, 48, 64, 3)


def test_slerp_keeps_the_norm_of_gaussian_codes() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(128), rng.standard_normal(128)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    middle = slerp(a, b, 0.5)
    assert np.linalg.norm(middle) == pytest.approx(np.linalg.norm(a), rel=1e-6)
    assert np.linalg.norm((a + b) / 2) < 0.8 * np.linalg.norm(a)
    assert np.allclose(slerp(a, b, 0.0), a)
    assert np.allclose(slerp(a, b, 1.0), b)


def test_transition_blends_smoothly_and_restarts_from_where_it_is() -> None:
    a, b, c = np.eye(3, dtype=np.float32)
    transition = AppearanceTransition("a", a)
    assert not transition.blending(0.0)
    transition.switch("b", b, now_s=10.0, duration_s=2.0)
    assert np.allclose(transition.z_at(10.0), a)
    assert transition.blending(10.5)
    middle = transition.z_at(11.0)
    assert np.allclose(middle, slerp(a, b, 0.5))
    assert transition.fraction_at(10.2) < 0.1
    assert np.allclose(transition.z_at(12.0), b)
    transition.switch("c", c, now_s=11.0, duration_s=2.0)
    assert np.allclose(transition.z_at(11.0), middle)
    assert transition.target_name == "c"
    transition.switch("a", a, now_s=20.0, duration_s=0.0)
    assert np.array_equal(transition.z_at(20.0), a)


def test_device_selection() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"unknown device|unsupported device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            select_device("cuda")
