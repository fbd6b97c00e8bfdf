"""Training settings: defaults < a YAML file under config/ < command-line flags.

One flat dataclass lists every knob once. The YAML files (`config/train_<name>.yaml`) and the
`thermal-synth train` flags are both derived from it, so a setting cannot exist in one and be
missing in the other, and a typo in a YAML file is an error naming the key rather than a
silently ignored line.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from thermal_synth.bringup.graph import config_dir
from thermal_synth.engine.inference import DEVICE_AUTO, PRECISIONS
from thermal_synth.model.config import NAMED_CONFIGS, ModelConfig, named_config
from thermal_synth.model.recipe import NORMALISATION_MODES, Normalisation
from thermal_synth.training.distillation import DistillationConfig
from thermal_synth.training.trainer import TrainConfig

MAX_SETTINGS_BYTES = 64 << 10
RESUMABLE_CHANGES = frozenset(
    {"gan_steps", "inversion_steps", "reconstruction_steps", "device", "log_every", "sample_every",
     "checkpoint_every", "keep_checkpoints", "eval_samples", "teacher"}
)  # fmt: skip
"""What a resumed run may change: how long and where it runs, not what it computes. The teacher's
path may move with the run to another machine; the checkpoint refuses a teacher with other weights."""
RECIPES = ("gan", "cpu")
MAX_UNCOVERED_MARGIN = 16
"""Two heatmap cells of a 96x128 image: a wider margin leaves a child's arm no pixels at all."""
DISTILLATION_SETTINGS = ("distil_weight", "encoder_distil_weight", "distil_bank_share")


class SettingsError(ValueError):
    """A settings file or flag that cannot describe a run; the message names the key."""


@dataclass(frozen=True)
class TrainSettings:
    model: str = "fast_whole_frame"
    """Model size: paper, base, fast_whole_frame, or fast (which takes the room from the photo and
    needs the cpu recipe); see docs/model.md."""
    recipe: str = "gan"
    """gan: the paper's recipe (GAN steps, then inversion steps). cpu: reconstruction steps, then
    `gan_steps` adversarial steps, G and encoder together (cpu_recipe.py; inversion_steps 0)."""
    reconstruction_steps: int = 0
    """cpu recipe: supervised steps before the adversarial ones."""
    gan_steps: int = 2000
    inversion_steps: int = 500
    batch_size: int = TrainConfig.batch_size
    """Across all GPUs of a torchrun job; each takes batch_size / world size."""
    lr_discriminator: float = TrainConfig.lr_discriminator
    lr_generator: float = TrainConfig.lr_generator
    lr_encoder: float = TrainConfig.lr_encoder
    beta1: float = TrainConfig.beta1
    beta2: float = TrainConfig.beta2
    reconstruction_weight: float = TrainConfig.reconstruction_weight
    r1_weight: float = TrainConfig.r1_weight
    r1_interval: int = TrainConfig.r1_interval
    ema_gan: float = TrainConfig.ema_gan
    ema_inversion: float = TrainConfig.ema_inversion
    inversion_l1_weight: float = TrainConfig.inversion_l1_weight
    inversion_adversarial_weight: float = TrainConfig.inversion_adversarial_weight
    reference_candidates: int = TrainConfig.reference_candidates
    moved_weight: float = TrainConfig.moved_weight
    multiscale_weight: float = TrainConfig.multiscale_weight
    perceptual_weight: float = TrainConfig.perceptual_weight
    heatmap_weight: float = TrainConfig.heatmap_weight
    adversarial_weight: float = TrainConfig.adversarial_weight
    swap_fraction: float = TrainConfig.swap_fraction
    retention_weight: float = TrainConfig.retention_weight
    uncovered_colour_weight: float = TrainConfig.uncovered_colour_weight
    uncovered_margin: int = TrainConfig.uncovered_margin
    silhouette_weight: float = TrainConfig.silhouette_weight
    colour_jitter: float = TrainConfig.colour_jitter
    critic_warmup_steps: int = TrainConfig.critic_warmup_steps
    heatmap_noise: float = TrainConfig.heatmap_noise
    seed: int = TrainConfig.seed
    normalisation: str = Normalisation.mode
    low_c: float = Normalisation.low_c
    high_c: float = Normalisation.high_c
    device: str = DEVICE_AUTO
    precision: str = "auto"
    """auto: `select_precision`, as the synthesis node paints: bf16 where the device computes it
    natively (a GPU with bf16, a CPU with AMX or AVX512-BF16), fp32 elsewhere."""
    compile: bool = False
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    eval_samples: int = 500
    """Held-out samples for the evaluation that ends a run (0 = no evaluation)."""
    teacher: str = ""
    """A trained model directory to distil from (empty: ordinary training); see distillation.py."""
    distil_weight: float = 0.0
    """L1 of the student's image against the teacher's for the same (z, h); > 0 with a teacher."""
    encoder_distil_weight: float = 0.0
    """L1 of the student encoder's code against the teacher encoder's for the same photo."""
    distil_bank_share: float = 0.0
    """Share of each GAN batch's codes taken from the teacher's latent bank instead of N(0, I)."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            expected = type(item.default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, item.name, float(value))
            elif type(value) is not expected:
                raise SettingsError(f"{item.name} must be {expected.__name__}, got {value!r}")
            if expected is float and not math.isfinite(getattr(self, item.name)):
                raise SettingsError(f"{item.name} must be finite, got {value!r}")
        if self.model not in NAMED_CONFIGS:
            raise SettingsError(f"model must be one of {sorted(NAMED_CONFIGS)}, got {self.model!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise SettingsError(f"precision must be auto, {' or '.join(PRECISIONS)}, got {self.precision!r}")
        if self.normalisation not in NORMALISATION_MODES:
            raise SettingsError(f"normalisation must be one of {NORMALISATION_MODES}")
        positive = (
            "batch_size", "r1_interval", "log_every", "sample_every", "checkpoint_every",
            "reference_candidates",
        )  # fmt: skip
        for name in (*positive, "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.recipe not in RECIPES:
            raise SettingsError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        for name in (
            "gan_steps", "inversion_steps", "reconstruction_steps", "eval_samples", "seed",
            "critic_warmup_steps",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_discriminator", "lr_generator", "lr_encoder"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2", "ema_gan", "ema_inversion"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SettingsError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.recipe == "gan" and self.gan_steps == 0:
            raise SettingsError("gan_steps must be >= 1: an untrained generator paints noise")
        if self.recipe == "gan" and named_config(self.model).room_from_photo:
            raise SettingsError(
                f"model {self.model!r} takes the room from a photo, which the gan recipe's random codes "
                "do not hold: use the cpu recipe, or a model that paints the whole frame"
            )
        if self.recipe == "cpu":
            self._check_cpu_recipe()
        try:
            self.normalisation_recipe()
        except ValueError as error:
            raise SettingsError(str(error)) from None
        if self.teacher:
            self.distillation()

    def _check_cpu_recipe(self) -> None:
        if self.reconstruction_steps + self.gan_steps == 0:
            raise SettingsError("the cpu recipe needs reconstruction_steps or gan_steps >= 1")
        if self.inversion_steps:
            raise SettingsError("the cpu recipe trains the encoder with G: set inversion_steps to 0")
        if self.teacher:
            raise SettingsError("distillation (teacher) belongs to the gan recipe")
        if not named_config(self.model).spatial_code:
            raise SettingsError(
                f"the cpu recipe needs a model with a spatial code; {self.model!r} has a vector"
            )
        if self.moved_weight < 1.0:
            raise SettingsError(f"moved_weight must be >= 1, got {self.moved_weight}")
        if not 0.0 <= self.swap_fraction < 1.0:
            raise SettingsError(f"swap_fraction must be in [0, 1), got {self.swap_fraction}")
        for name in ("retention_weight", "uncovered_colour_weight", "silhouette_weight"):
            if getattr(self, name) < 0.0:
                raise SettingsError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.uncovered_margin <= MAX_UNCOVERED_MARGIN:
            raise SettingsError(
                f"uncovered_margin must be in [0, {MAX_UNCOVERED_MARGIN}] pixels, got {self.uncovered_margin}"
            )
        if not 0.0 <= self.colour_jitter < 1.0:
            raise SettingsError(f"colour_jitter must be in [0, 1), got {self.colour_jitter}")

    def model_config(self, heatmap_size: tuple[int, int]) -> ModelConfig:
        return named_config(self.model, heatmap_size)

    def normalisation_recipe(self) -> Normalisation:
        return Normalisation(self.normalisation, self.low_c, self.high_c)

    def distillation(self) -> DistillationConfig | None:
        """None for ordinary training.

        Distillation weights without a teacher are refused here, when a run is planned, rather
        than when the settings are built: config/train_distil_fast.yaml sets the weights and
        leaves the teacher to a `--teacher` flag, which is applied after the file is read.
        """
        if not self.teacher:
            orphans = [name for name in DISTILLATION_SETTINGS if getattr(self, name) != 0]
            if orphans:
                raise SettingsError(
                    f"{', '.join(orphans)} set but no teacher: pass --teacher MODEL_DIR "
                    "(a trained model directory, e.g. models/base)"
                )
            return None
        try:
            return DistillationConfig(
                Path(self.teacher).expanduser(),
                **{name: getattr(self, name) for name in DISTILLATION_SETTINGS},
            )
        except ValueError as error:
            raise SettingsError(str(error)) from None

    def train_config(self, precision: str) -> TrainConfig:
        names = {item.name for item in fields(TrainConfig)} - {"precision"}
        return TrainConfig(**{name: getattr(self, name) for name in names}, precision=precision)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def changes_from(self, other: TrainSettings) -> list[str]:
        return [item.name for item in fields(self) if getattr(self, item.name) != getattr(other, item.name)]


def settings_from_mapping(data: Any, where: str) -> TrainSettings:
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    known = {item.name for item in fields(TrainSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{where}: unknown settings {unknown}; known: {sorted(known)}")
    try:
        return TrainSettings(**data)
    except SettingsError as error:
        raise SettingsError(f"{where}: {error}") from None


def named_settings_file(name_or_path: str) -> Path:
    """`fast` -> config/train_fast.yaml; anything with a slash or .yaml suffix is a path."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path).expanduser()
    return config_dir() / f"train_{name_or_path}.yaml"


def available_settings() -> list[str]:
    return sorted(path.stem.removeprefix("train_") for path in config_dir().glob("train_*.yaml"))


def load_settings(name_or_path: str) -> TrainSettings:
    path = named_settings_file(name_or_path)
    if not path.is_file():
        raise SettingsError(
            f"training config {name_or_path!r}: {path} not found; named configs: {available_settings()}"
        )
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise SettingsError(f"{path}: larger than {MAX_SETTINGS_BYTES} bytes; not a settings file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML ({error})") from None
    return settings_from_mapping(data, str(path))


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One `--name-with-dashes` flag per setting, defaulting to None (= keep the file's value)."""
    group = parser.add_argument_group("settings (override the --config file)")
    for item in fields(TrainSettings):
        flag = "--" + item.name.replace("_", "-")
        if isinstance(item.default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = type(item.default)
            group.add_argument(flag, type=kind, default=None, metavar=kind.__name__.upper())


def with_flags(settings: TrainSettings, args: argparse.Namespace) -> TrainSettings:
    changes = {
        item.name: getattr(args, item.name)
        for item in fields(TrainSettings)
        if getattr(args, item.name, None) is not None
    }
    return replace(settings, **changes) if changes else settings
