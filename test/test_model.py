"""The SPADE-SR networks, model directories and the latent bank, on real tensors and real files."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from thermal_synth.dataset.shards import HeatmapRecipe
from thermal_synth.model.bank import (
    THUMBNAIL_SHAPE,
    LatentBank,
    LatentBankError,
    LatentCode,
    make_thumbnail,
)
from thermal_synth.model.config import NAMED_CONFIGS, ModelConfig, ModelConfigError, named_config
from thermal_synth.model.files import (
    BANK_FILE,
    MODEL_JSON,
    WEIGHTS_FILE,
    ModelBundle,
    ModelFileError,
    TrainingRecord,
    load_model,
    load_trained_model,
    save_model,
)
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Normalisation, Preprocessing

SMALL = ModelConfig(
    thermal_channels=4,
    generator_channels=(16, 8, 8, 4),
    discriminator_channels=(4, 8, 8),
    encoder_channels=(4, 4, 8, 8),
)
GRID_EYE = SMALL.with_heatmap_size((5, 8))


def _bundle(config: ModelConfig = SMALL, steps: int = 3, codes: int = 2) -> ModelBundle:
    torch.manual_seed(0)
    networks = SpadeSRModel(config).eval()
    bank = LatentBank(config.z_dim)
    rng = np.random.default_rng(0)
    for index in range(codes):
        thumbnail = rng.integers(0, 255, (*THUMBNAIL_SHAPE, 3), dtype=np.uint8)
        bank.add(LatentCode(f"look-{index}", rng.standard_normal(config.z_dim), thumbnail, "test"))
    preprocessing = Preprocessing(HeatmapRecipe(config.heatmap_size), Normalisation())
    return ModelBundle(config, preprocessing, TrainingRecord(steps, steps), networks, bank)


@pytest.mark.parametrize("name", sorted(NAMED_CONFIGS))
def test_named_configs_build_networks_of_the_right_shapes(name: str) -> None:
    config = named_config(name)
    networks = SpadeSRModel(config)
    # Spatial codes (and the photo a room code holds) lie in [-1, 1], as the encoder makes them.
    z = torch.rand(2, config.z_dim) * 2 - 1 if config.spatial_code else torch.randn(2, config.z_dim)
    heatmap = torch.rand(2, 1, *config.heatmap_size) * 2 - 1
    with torch.no_grad():
        image = networks.generator(z, heatmap)
        score, reconstructed = networks.discriminator(image)
        code = networks.encoder(image)
    assert config.image_size == (96, 128)
    assert image.shape == (2, 3, 96, 128)
    assert image.abs().max() <= 1.0
    assert score.shape == (2,)
    assert reconstructed.shape == (2, 1, 12, 16)
    assert code.shape == (2, config.z_dim)


def test_paper_config_keeps_the_reference_widths() -> None:
    paper = NAMED_CONFIGS["paper"]
    assert paper.generator_channels == (512, 512, 256, 128)
    assert paper.thermal_channels == 64
    assert paper.discriminator_channels == (128, 256, 512)
    assert paper.encoder_channels == (64, 128, 256, 512)
    assert paper.z_dim == 128


def test_named_configs_shrink_in_order() -> None:
    def size(name: str) -> int:
        return sum(p.numel() for p in SpadeSRModel(named_config(name)).generator.parameters())

    assert size("fast") < size("base") < size("paper")


@pytest.mark.parametrize(
    "config",
    [*NAMED_CONFIGS.values(), SMALL, GRID_EYE, named_config("fast", (5, 8))],
    ids=[*NAMED_CONFIGS, "small-12x16", "small-5x8", "fast-5x8"],
)
def test_every_network_gets_gradients(config: ModelConfig) -> None:
    torch.manual_seed(0)
    networks = SpadeSRModel(config).train()
    z = torch.randn(2, config.z_dim)
    heatmap = torch.rand(2, 1, *config.heatmap_size) * 2 - 1
    # Two passes with a step between: the warp's flow starts at exactly zero (the photo as it is),
    # so the layer before its zero-initialised output learns from the second step on.
    optimiser = torch.optim.SGD(networks.parameters(), lr=1e-4)
    for _ in range(2):
        optimiser.step()
        optimiser.zero_grad()
        image = networks.generator(z, heatmap)
        score, reconstructed = networks.discriminator(image)
        code = networks.encoder(image.detach())
        (score.sum() + reconstructed.sum() + code.pow(2).sum()).backward()
    assert image.shape[-2:] == config.image_size
    assert reconstructed.shape[-2:] == config.heatmap_size
    for name, parameter in networks.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_grid_eye_config_paints_40x64() -> None:
    assert GRID_EYE.image_size == (40, 64)
    with torch.no_grad():
        image = SpadeSRModel(GRID_EYE).eval().generator(torch.randn(1, 128), torch.zeros(1, 1, 5, 8))
    assert image.shape == (1, 3, 40, 64)


def test_projection_is_linear_so_blends_can_be_cached() -> None:
    generator = SpadeSRModel(SMALL).generator
    a, b = torch.randn(1, 128), torch.randn(1, 128)
    with torch.no_grad():
        blended = generator.project(0.3 * a + 0.7 * b)
        mixed = 0.3 * generator.project(a) + 0.7 * generator.project(b)
    torch.testing.assert_close(blended, mixed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"upsampling": 6}, "upsampling"),
        ({"generator_channels": (8, 8)}, "generator_channels"),
        ({"discriminator_channels": (8, 8, 0)}, "discriminator_channels"),
        ({"heatmap_size": (48, 64)}, "heatmap_size"),
        ({"z_dim": 0}, "z_dim"),
        ({"encoder_channels": (8, 8, "x", 8)}, "encoder_channels"),
    ],
)
def test_bad_configs_name_the_field(changes: dict, field: str) -> None:
    data = {**SMALL.to_json(), **changes}
    with pytest.raises(ModelConfigError, match=field):
        ModelConfig.from_json(data)


def test_config_json_round_trip_and_unknown_fields() -> None:
    assert ModelConfig.from_json(json.loads(json.dumps(GRID_EYE.to_json()))) == GRID_EYE
    with pytest.raises(ModelConfigError, match="unknown"):
        ModelConfig.from_json({**SMALL.to_json(), "exec": "rm -rf /"})
    with pytest.raises(ModelConfigError, match="unknown model config"):
        named_config("huge")


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    bundle = _bundle()
    save_model(tmp_path / "model", bundle)
    loaded = load_model(tmp_path / "model")
    original, restored = bundle.networks.state_dict(), loaded.networks.state_dict()
    assert original.keys() == restored.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor, restored[name]), name
    assert loaded.config == bundle.config
    assert loaded.preprocessing == bundle.preprocessing
    assert loaded.training == bundle.training
    assert loaded.bank.names() == bundle.bank.names()
    for code in bundle.bank:
        assert np.array_equal(loaded.bank.get(code.name).z, code.z)
        assert np.array_equal(loaded.bank.get(code.name).thumbnail, code.thumbnail)
    expected = sorted([MODEL_JSON, WEIGHTS_FILE, BANK_FILE])
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == expected


def test_saving_again_replaces_and_refuses_foreign_directories(tmp_path: Path) -> None:
    save_model(tmp_path / "model", _bundle(steps=1))
    save_model(tmp_path / "model", _bundle(steps=7))
    assert load_model(tmp_path / "model").training.gan_steps == 7
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not a model directory"):
        save_model(foreign, _bundle())
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_model(tmp_path / "model", _bundle())


def _rewrite_description(model: Path, **changes) -> None:
    description = json.loads((model / MODEL_JSON).read_text())
    description.update(changes)
    (model / MODEL_JSON).write_text(json.dumps(description))


class _Payload:
    """Unpickling this would create a file: the proof that a loader ran a stranger's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_disguised_as_weights_is_refused_without_running_it(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"generator.projection.weight": _Payload(marker)})
    (saved / WEIGHTS_FILE).write_bytes(payload)
    _rewrite_description(
        saved, weights={"file": WEIGHTS_FILE, "bytes": len(payload), "sha256": _sha256(payload)}
    )
    with pytest.raises(ModelFileError, match="safetensors"):
        load_model(saved)
    assert not marker.exists()


def test_truncated_weights_are_named(saved: Path) -> None:
    weights = saved / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"weights\.safetensors.*truncated"):
        load_model(saved)


def test_modified_weights_fail_the_checksum(saved: Path) -> None:
    weights = saved / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(saved)


def test_weights_of_another_config_are_a_mismatch(tmp_path: Path) -> None:
    save_model(tmp_path / "small", _bundle(SMALL))
    save_model(tmp_path / "wide", _bundle(replace(SMALL, thermal_channels=6)))
    description = json.loads((tmp_path / "wide" / MODEL_JSON).read_text())
    _rewrite_description(tmp_path / "small", weights=description["weights"])
    (tmp_path / "small" / WEIGHTS_FILE).write_bytes((tmp_path / "wide" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ModelFileError, match=r"tensor .* is torch.float32 .*config needs"):
        load_model(tmp_path / "small")


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    bundle = _bundle()
    with torch.no_grad():
        bundle.networks.generator.to_rgb.weight[0, 0, 0, 0] = float("nan")
    save_model(tmp_path / "model", bundle)
    with pytest.raises(ModelFileError, match="NaN"):
        load_model(tmp_path / "model")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: (m / MODEL_JSON).unlink(), "model.json: missing"),
        (lambda m: (m / MODEL_JSON).write_text("{not json"), "not valid JSON"),
        (lambda m: _rewrite_description(m, format="keras"), "format is 'keras'"),
        (lambda m: _rewrite_description(m, version=99), "version 99"),
        (lambda m: (m / WEIGHTS_FILE).unlink(), "weights.safetensors: missing"),
        (lambda m: (m / BANK_FILE).unlink(), "bank.json: missing"),
        (lambda m: _rewrite_description(m, config={"heatmap_size": [12, 16]}), "lacks"),
        (lambda m: _rewrite_description(m, training={"gan_steps": -1, "inversion_steps": 0}), "non-negative"),
    ],
    ids=["no-json", "bad-json", "format", "version", "no-weights", "no-bank", "config", "training"],
)
def test_broken_model_directories_give_one_clear_error(saved: Path, damage, message: str) -> None:
    damage(saved)
    with pytest.raises(ModelFileError, match=message):
        load_model(saved)


def test_preprocessing_must_match_the_network(saved: Path) -> None:
    description = json.loads((saved / MODEL_JSON).read_text())
    description["preprocessing"]["heatmap"]["output_size"] = [24, 32]
    (saved / MODEL_JSON).write_text(json.dumps(description))
    with pytest.raises(ModelFileError, match="preprocessing makes"):
        load_model(saved)


def test_untrained_weights_are_refused_for_synthesis(tmp_path: Path) -> None:
    save_model(tmp_path / "untrained", _bundle(steps=0))
    assert load_model(tmp_path / "untrained").training.trained is False
    with pytest.raises(ModelFileError, match=r"never trained.*thermal-synth train"):
        load_trained_model(tmp_path / "untrained")
    with pytest.raises(ModelFileError, match="no such model directory"):
        load_trained_model(tmp_path / "nowhere")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# The latent bank ---------------------------------------------------------------------------------


def test_bank_add_rename_remove_keeps_order_and_rejects_bad_requests() -> None:
    bank = LatentBank(4)
    for name in ("office", "garden", "studio"):
        bank.add(LatentCode(name, np.arange(4, dtype=np.float32)))
    bank.rename("garden", "patio")
    assert bank.names() == ["office", "patio", "studio"]
    bank.remove("office")
    assert bank.names() == ["patio", "studio"]
    with pytest.raises(LatentBankError, match="already exists"):
        bank.add(LatentCode("patio", np.zeros(4)))
    with pytest.raises(LatentBankError, match=r"no code named 'office'; available: patio, studio"):
        bank.get("office")
    with pytest.raises(LatentBankError, match="4"):
        bank.add(LatentCode("wide", np.zeros(5)))
    with pytest.raises(LatentBankError, match="invalid code name"):
        bank.rename("patio", "../evil")
    with pytest.raises(LatentBankError, match="finite"):
        LatentCode("nan", np.array([0.0, np.nan, 0.0, 0.0]))


def test_bank_file_round_trip_and_thumbnail(tmp_path: Path) -> None:
    photo = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    bank = LatentBank(3)
    bank.add(LatentCode("me", np.array([0.5, -1.0, 2.0]), make_thumbnail(photo), "me.jpg"))
    bank.save(tmp_path / "bank.json")
    loaded = LatentBank.load(tmp_path / "bank.json", 3)
    code = loaded.get("me")
    assert code.thumbnail.shape == (*THUMBNAIL_SHAPE, 3)
    assert np.array_equal(code.thumbnail, make_thumbnail(photo))
    assert np.array_equal(code.z, np.array([0.5, -1.0, 2.0], dtype=np.float32))
    assert code.source == "me.jpg"


def _bank_json(**code) -> dict:
    entry = {"name": "me", "z": [0.0, 1.0], "source": "", "thumbnail_png": None, **code}
    return {"format": "thermal_synth.latent_bank", "version": 1, "z_dim": 2, "codes": [entry]}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ({"z": [0.0]}, "list of 2 finite numbers"),
        ({"z": [0.0, "1"]}, "list of 2 finite numbers"),
        ({"z": [0.0, float("inf")]}, "list of 2 finite numbers"),
        ({"name": "a b"}, "invalid code name"),
        ({"thumbnail_png": "not base64!"}, "base64"),
        ({"thumbnail_png": "aGVsbG8="}, "not a PNG"),
    ],
)
def test_hostile_bank_entries_are_refused(tmp_path: Path, code: dict, message: str) -> None:
    (tmp_path / "bank.json").write_text(json.dumps(_bank_json(**code)))
    with pytest.raises(LatentBankError, match=message):
        LatentBank.load(tmp_path / "bank.json", 2)


def test_thumbnail_declaring_a_huge_size_is_refused_before_decoding(tmp_path: Path) -> None:
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    (tmp_path / "bank.json").write_text(json.dumps(_bank_json(thumbnail_png=base64.b64encode(png).decode())))
    with pytest.raises(LatentBankError, match="100000x100000"):
        LatentBank.load(tmp_path / "bank.json", 2)


def test_bank_of_the_wrong_dimension_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bank.json").write_text(json.dumps(_bank_json()))
    with pytest.raises(LatentBankError, match="2 dimensions, the model uses 128"):
        LatentBank.load(tmp_path / "bank.json", 128)
