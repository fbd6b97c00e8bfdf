"""Model directories: safetensors weights, JSON config + preprocessing recipe, JSON latent bank.

    model.json            format, version, config, preprocessing, training record, weights checksum
    weights.safetensors   generator./discriminator./encoder. tensors, float32 (+ BatchNorm counters)
    bank.json             the latent bank (see bank.py)

Nothing here can execute code from the files: safetensors is a JSON header plus raw tensor bytes,
and every tensor is checked against the network the config describes before it is loaded. A
model file from a stranger either loads exactly or fails with one message naming the problem.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from thermal_synth.common.json_files import check_format, file_sha256, read_json, write_text_atomic
from thermal_synth.model.bank import LatentBank, LatentBankError
from thermal_synth.model.config import ModelConfig, ModelConfigError
from thermal_synth.model.networks import SpadeSRModel
from thermal_synth.model.recipe import Preprocessing

FORMAT_NAME = "thermal_synth.model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"
BANK_FILE = "bank.json"
MAX_MODEL_JSON_BYTES = 1 << 20
PACKAGED_MODELS = Path(__file__).resolve().parents[1] / "data" / "models"
PACKAGED_MODEL_NAME = "default"
DEFAULT_MODEL = PACKAGED_MODELS / PACKAGED_MODEL_NAME
"""Where the package's trained default model lives once one ships (see the README's Models section)."""
HOW_TO_GET_A_MODEL = (
    "train one with `thermal-synth train --data DIR --out MODEL_DIR` on a dataset from "
    "`thermal-synth sim` or `thermal-synth dataset build`, then pass its directory"
)


class ModelFileError(ValueError):
    """A model directory that cannot be loaded; the message names the file and what is wrong."""


@dataclass(frozen=True)
class TrainingRecord:
    """What training produced these weights: the node refuses weights nobody trained."""

    gan_steps: int = 0
    inversion_steps: int = 0
    dataset: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.gan_steps > 0

    @property
    def encoder_trained(self) -> bool:
        """The gan recipe trains the encoder in its own phase; the cpu recipe trains it with G."""
        return self.inversion_steps > 0 or (self.details.get("recipe") == "cpu" and self.trained)

    def steps_text(self) -> str:
        """How the weights were trained, in the words of their recipe."""
        if self.details.get("recipe") == "cpu":
            return (
                f"cpu recipe: {self.details.get('reconstruction_steps', '?')} reconstruction + "
                f"{self.details.get('adversarial_steps', '?')} adversarial steps"
            )
        return f"{self.gan_steps} GAN + {self.inversion_steps} inversion steps"

    def to_json(self) -> dict[str, Any]:
        return {
            "gan_steps": self.gan_steps,
            "inversion_steps": self.inversion_steps,
            "dataset": self.dataset,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingRecord:
        steps = (data.get("gan_steps"), data.get("inversion_steps"))
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps):
            raise ValueError("gan_steps and inversion_steps must be non-negative integers")
        details = data.get("details", {})
        if not isinstance(details, dict):
            raise ValueError("details must be an object")
        return cls(steps[0], steps[1], str(data.get("dataset", "")), details)


@dataclass
class ModelBundle:
    """Everything one model directory holds, loaded and checked."""

    config: ModelConfig
    preprocessing: Preprocessing
    training: TrainingRecord
    networks: SpadeSRModel
    bank: LatentBank
    directory: Path | None = None

    @property
    def bank_path(self) -> Path:
        if self.directory is None:
            raise ModelFileError("this model was not loaded from a directory, so it has no bank file")
        return self.directory / BANK_FILE

    def reload_bank(self) -> LatentBank:
        """Re-reads bank.json (e.g. after `thermal-synth codes add`); the old bank stays on error."""
        self.bank = _load_bank(self.bank_path, self.config)
        return self.bank


def save_model(directory: Path, bundle: ModelBundle) -> Path:
    """Writes a complete model directory; an existing one is replaced only once the new one is whole."""
    directory = Path(directory)
    replacing_other = directory.exists() and not (directory / MODEL_JSON).is_file()
    if replacing_other and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not a model directory; refusing to overwrite it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        tensors = {
            name: tensor.detach().to("cpu").contiguous()
            for name, tensor in bundle.networks.state_dict().items()
        }
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        weights = staging / WEIGHTS_FILE
        description = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": bundle.config.to_json(),
            "preprocessing": bundle.preprocessing.to_json(),
            "training": bundle.training.to_json(),
            "weights": {
                "file": WEIGHTS_FILE,
                "bytes": weights.stat().st_size,
                "sha256": file_sha256(weights),
            },
            "bank": BANK_FILE,
        }
        write_text_atomic(staging / MODEL_JSON, json.dumps(description, indent=2) + "\n")
        bundle.bank.save(staging / BANK_FILE)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    bundle.directory = directory
    return directory


def resolve_model(path: str | Path | None) -> Path:
    """A model directory from a user's setting: empty means the packaged default model."""
    if path:
        return Path(path).expanduser()
    if (DEFAULT_MODEL / MODEL_JSON).is_file():
        return DEFAULT_MODEL
    raise ModelFileError(f"no model given and this installation ships no default model; {HOW_TO_GET_A_MODEL}")


def load_trained_model(path: str | Path | None) -> ModelBundle:
    """Loads a model for synthesis, refusing weights that no training run produced."""
    bundle = load_model(resolve_model(path))
    if not bundle.training.trained:
        raise ModelFileError(
            f"{bundle.directory}: these weights were never trained (0 GAN steps), so they would paint "
            f"noise; {HOW_TO_GET_A_MODEL}"
        )
    return bundle


def read_description(directory: Path) -> dict[str, Any]:
    """model.json, checked for format and version (cheap: no weights are read)."""
    path = Path(directory) / MODEL_JSON
    if not Path(directory).is_dir():
        raise ModelFileError(f"{directory}: no such model directory")
    description = read_json(
        path,
        ModelFileError,
        missing=f"missing; {directory} is not a thermal_synth model directory",
        max_bytes=MAX_MODEL_JSON_BYTES,
    )
    return check_format(description, FORMAT_NAME, FORMAT_VERSION, path, ModelFileError)


def load_model(directory: Path) -> ModelBundle:
    directory = Path(directory)
    description = read_description(directory)
    path = directory / MODEL_JSON
    try:
        config = ModelConfig.from_json(description["config"])
        preprocessing = Preprocessing.from_json(description["preprocessing"])
        training = TrainingRecord.from_json(description["training"])
        weights_entry = description["weights"]
        expected_bytes, expected_sha = int(weights_entry["bytes"]), str(weights_entry["sha256"])
    except ModelConfigError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: malformed ({type(error).__name__}: {error})") from None
    if preprocessing.heatmap.output_size != config.heatmap_size:
        raise ModelFileError(
            f"{path}: preprocessing makes {preprocessing.heatmap.output_size} heatmaps, "
            f"the network takes {config.heatmap_size}"
        )
    networks = SpadeSRModel(config, with_discriminator=training.details.get("recipe") != "cpu")
    networks.load_state_dict(_read_weights(directory / WEIGHTS_FILE, networks, expected_bytes, expected_sha))
    networks.eval()
    bank = _load_bank(directory / BANK_FILE, config)
    return ModelBundle(config, preprocessing, training, networks, bank, directory)


def _load_bank(path: Path, config: ModelConfig) -> LatentBank:
    try:
        return LatentBank.load(path, config.z_dim, photo_size=config.code_photo_size)
    except LatentBankError as error:
        raise ModelFileError(str(error)) from None


def _read_weights(
    path: Path, networks: SpadeSRModel, expected_bytes: int, expected_sha: str
) -> dict[str, torch.Tensor]:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing") from None
    if size != expected_bytes:
        raise ModelFileError(
            f"{path}: {size} bytes, model.json says {expected_bytes} (truncated or replaced)"
        )
    if file_sha256(path) != expected_sha:
        raise ModelFileError(f"{path}: sha256 does not match model.json (the file was modified)")
    expected = networks.state_dict()
    try:
        with safe_open(str(path), framework="pt") as weights:
            keys = set(weights.keys())
            missing, unexpected = sorted(set(expected) - keys), sorted(keys - set(expected))
            if missing or unexpected:
                raise ModelFileError(
                    f"{path}: tensors do not match the config: missing {missing[:5]}"
                    f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                    f"{' ...' if len(unexpected) > 5 else ''}"
                )
            tensors = {}
            for name, reference in expected.items():
                tensor = weights.get_tensor(name)
                if tensor.shape != reference.shape or tensor.dtype != reference.dtype:
                    raise ModelFileError(
                        f"{path}: tensor {name} is {tensor.dtype} {tuple(tensor.shape)}, "
                        f"the config needs {reference.dtype} {tuple(reference.shape)}"
                    )
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    raise ModelFileError(f"{path}: tensor {name} holds NaN or Inf")
                tensors[name] = tensor
    except SafetensorError as error:
        raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None
    return tensors
