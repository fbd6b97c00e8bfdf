"""The inference engine every consumer of a model uses: the synthesis node, the CLI and the benchmarks.

Per frame only the thermal branch and the painting run; the appearance's projection is cached
per latent code. Frames in a batch are painted together (one call per batch), the generator runs
channels-last under `torch.inference_mode`, optionally in bfloat16, and the device is picked
automatically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from thermal_synth.engine.preprocess import to_unit_range
from thermal_synth.model.files import ModelBundle
from thermal_synth.model.networks import Generator

DEVICE_AUTO = "auto"
PRECISIONS = ("fp32", "bf16")
PRECISION_AUTO = "auto"
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""x86 instructions with which oneDNN runs bf16 convolutions faster than fp32 (`fast` x1.39 and
`base` x1.78 on the development machine's EPYC); without them autocast emulates bf16, slower."""


class HeatmapError(ValueError):
    """A heatmap the model cannot take; the message says what is wrong with it."""


def select_device(name: str = DEVICE_AUTO) -> torch.device:
    """`auto` takes the GPU when there is one; asking for a GPU that is not there is an error."""
    if name == DEVICE_AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but this machine has no CUDA GPU (use auto or cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def check_precision(name: str) -> None:
    if name != PRECISION_AUTO and name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; use {PRECISION_AUTO}, {' or '.join(PRECISIONS)}")


def select_precision(name: str, device: torch.device) -> str:
    """`auto` paints in bf16 where the device computes it natively and in fp32 elsewhere."""
    check_precision(name)
    if name != PRECISION_AUTO:
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32" if emulates_bf16(device) else "bf16"


def emulates_bf16(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """True on a CPU without AMX or AVX512-BF16, where bf16 autocast runs but slower than fp32."""
    if device.type != "cpu":
        return False
    return not (cpu_flags() if flags is None else flags) & NATIVE_BF16_CPU_FLAGS


def paint_projected(generator: Generator, projected: Tensor, heatmaps: Tensor, precision: str) -> Tensor:
    """G's painting of normalised heatmaps for projected codes, in `precision`; (N, 3, H, W) fp32.

    The projection stays outside: it depends on the code alone, so the node computes it once per
    code in fp32, and evaluation (`paint_codes`) must measure the same picture the node paints.
    """
    with torch.autocast(heatmaps.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return generator.paint(projected, generator.thermal_features(heatmaps)).float()


def paint_codes(generator: Generator, codes: Tensor, heatmaps: Tensor, precision: str) -> Tensor:
    """G(z, h) as the synthesis node paints it: the projection in fp32, the painting in `precision`."""
    return paint_projected(generator, generator.project(codes), heatmaps, precision)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's feature flags (Linux); none elsewhere, which keeps `auto` at fp32."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def fit_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (rows, cols) heatmap of any integral multiple of `size` -> `size` by area averaging.

    A driver configured for a finer grid (24x32) still feeds a 12x16 model; anything else would
    distort the person's shape, so it is refused.
    """
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise HeatmapError(f"heatmap must be a non-empty 2-D array, got shape {heatmap.shape}")
    rows, cols = heatmap.shape
    target_rows, target_cols = size
    if (rows, cols) == (target_rows, target_cols):
        return heatmap
    factor_rows, factor_cols = rows // target_rows, cols // target_cols
    if rows % target_rows or cols % target_cols or factor_rows < 1 or factor_cols < 1:
        raise HeatmapError(
            f"heatmap is {rows}x{cols} but the model takes {target_rows}x{target_cols}; only integral "
            f"multiples can be resampled (set the driver's output_size to {target_rows}x{target_cols})"
        )
    blocks = heatmap.reshape(target_rows, factor_rows, target_cols, factor_cols)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def check_heatmap(heatmap: np.ndarray) -> None:
    if heatmap.size == 0:
        raise HeatmapError("heatmap is empty")
    if not np.all(np.isfinite(heatmap)):
        raise HeatmapError("heatmap holds NaN or Inf values")


def resize_output(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(N, rows, cols, 3) uint8 -> (N, *size, 3): Lanczos up (sharp, no blocks), area down (no aliasing)."""
    if size is None or images.shape[1:3] == tuple(size):
        return images
    rows, cols = size
    enlarging = rows * cols > images.shape[1] * images.shape[2]
    interpolation = cv2.INTER_LANCZOS4 if enlarging else cv2.INTER_AREA
    return np.stack([cv2.resize(image, (cols, rows), interpolation=interpolation) for image in images])


def slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation: a straight line between two Gaussian codes passes through codes
    of unusually small norm, which the generator renders washed out; the arc does not."""
    start_norm, end_norm = float(np.linalg.norm(start)), float(np.linalg.norm(end))
    if start_norm == 0.0 or end_norm == 0.0:
        return (1.0 - fraction) * start + fraction * end
    cosine = float(np.clip(np.dot(start, end) / (start_norm * end_norm), -1.0, 1.0))
    angle = math.acos(cosine)
    if angle < 1e-4:
        return (1.0 - fraction) * start + fraction * end
    return (math.sin((1.0 - fraction) * angle) * start + math.sin(fraction * angle) * end) / math.sin(angle)


def blend_codes(start: np.ndarray, end: np.ndarray, fraction: float, *, spherical: bool) -> np.ndarray:
    """Spherical for Gaussian vector codes (see `slerp`); linear for spatial codes, which are maps
    bounded to [-1, 1]: the arc would push a blend of two maps outside the range G was trained on,
    while the straight line is a cross-fade of two appearances that stays inside it."""
    if spherical:
        return slerp(start, end, fraction)
    return (1.0 - fraction) * start + fraction * end


@dataclass
class AppearanceTransition:
    """The current appearance as a function of time: a smooth (smoothstep) blend towards the target.

    A new target mid-transition starts from wherever the blend is at that moment, so the picture
    never jumps. `spherical` picks the blend (`blend_codes`): False for spatial-code models.
    """

    target_name: str
    target_z: np.ndarray
    start_z: np.ndarray | None = None
    started_s: float = 0.0
    duration_s: float = 0.0
    spherical: bool = True

    def switch(self, name: str, z: np.ndarray, now_s: float, duration_s: float) -> None:
        current = self.z_at(now_s)
        self.target_name, self.target_z = name, z
        self.start_z, self.started_s, self.duration_s = current, now_s, max(0.0, duration_s)
        if self.duration_s == 0.0:
            self.start_z = None

    def fraction_at(self, now_s: float) -> float:
        if self.start_z is None or self.duration_s == 0.0:
            return 1.0
        linear = min(1.0, max(0.0, (now_s - self.started_s) / self.duration_s))
        return linear * linear * (3.0 - 2.0 * linear)

    def blending(self, now_s: float) -> bool:
        return self.fraction_at(now_s) < 1.0

    def z_at(self, now_s: float) -> np.ndarray:
        fraction = self.fraction_at(now_s)
        if fraction >= 1.0 or self.start_z is None:
            return self.target_z
        return blend_codes(self.start_z, self.target_z, fraction, spherical=self.spherical).astype(np.float32)


class SynthesisEngine:
    """Paints frames of one model on one device.

    `precision` "bf16" runs the generator under bfloat16 autocast: on a GPU with bf16 tensor
    cores that is where batched throughput comes from, and the packaged model's picture moves by
    a third of a grey level on average. "fp32" stays the default: it is what the model was
    evaluated in, and whether bf16 pays on a CPU depends on its instructions (bench_synth's
    `eager_bf16` measures it). The cached projections stay fp32: they are computed once per code.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        device: str = DEVICE_AUTO,
        *,
        channels_last: bool = True,
        precision: str = "fp32",
    ) -> None:
        self.bundle = bundle
        self.device = select_device(device)
        self.precision = select_precision(precision, self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.generator = bundle.networks.generator.to(self.device, memory_format=self.memory_format).eval()
        self.heatmap_size = bundle.config.heatmap_size
        self.image_size = bundle.config.image_size
        self._projections: dict[str, Tensor] = {}

    def forget_codes(self) -> None:
        """Drops cached projections, e.g. after the bank was reloaded and a name now means another z."""
        self._projections.clear()

    @torch.inference_mode()
    def project(self, z: np.ndarray) -> Tensor:
        """(z_dim,) or (N, z_dim) codes -> the generator's appearance input, on the engine's device."""
        codes = torch.as_tensor(np.atleast_2d(z), dtype=torch.float32, device=self.device)
        return self.generator.project(codes).contiguous(memory_format=self.memory_format)

    def projection(self, name: str) -> Tensor:
        """The cached projection of a code of the bank."""
        if name not in self._projections:
            self._projections[name] = self.project(self.bundle.bank.get(name).z)
        return self._projections[name]

    def prepare(self, heatmaps_celsius: np.ndarray) -> np.ndarray:
        """(N, rows, cols) Celsius, any integral multiple of the model grid -> (N, 1, h, w) in [-1, 1]."""
        fitted = []
        for heatmap in heatmaps_celsius:
            check_heatmap(heatmap)
            fitted.append(fit_heatmap(np.asarray(heatmap, dtype=np.float32), self.heatmap_size))
        normalised = self.bundle.preprocessing.normalisation.apply(np.stack(fitted))
        return normalised[:, None]

    def paint(self, heatmaps: np.ndarray, projected: Tensor) -> np.ndarray:
        """(N, 1, h, w) normalised heatmaps, (N or 1, ...) projections -> (N, H, W, 3) uint8 RGB."""
        return self.paint_on_device(torch.as_tensor(heatmaps), projected).cpu().numpy()

    @torch.inference_mode()
    def paint_on_device(self, heatmaps: Tensor, projected: Tensor) -> Tensor:
        """As `paint`, but the uint8 images stay on the engine's device: a GPU's batched throughput
        is then measured (or used) without the copy to the host."""
        batch = heatmaps.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)
        if projected.shape[0] != batch.shape[0]:
            projected = projected.expand(batch.shape[0], *projected.shape[1:])
        return uint8_images(paint_projected(self.generator, projected, batch, self.precision))

    def render(self, heatmaps_celsius: np.ndarray, code: str | np.ndarray) -> np.ndarray:
        """Celsius heatmaps and a code (a bank name or a z) -> (N, H, W, 3) uint8 RGB."""
        projected = self.projection(code) if isinstance(code, str) else self.project(code)
        return self.paint(self.prepare(heatmaps_celsius), projected)

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB at the model's image size -> (N, z_dim) codes via the inversion encoder."""
        if images.ndim != 4 or images.shape[1:] != (*self.image_size, 3):
            raise ValueError(
                f"images must be (N, {self.image_size[0]}, {self.image_size[1]}, 3), got {images.shape}"
            )
        encoder = self.bundle.networks.encoder.to(self.device).eval()
        batch = to_tensor_images(images, self.device)
        return encoder(batch).cpu().numpy().astype(np.float32)


def to_tensor_images(images: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(to_unit_range(np.ascontiguousarray(images))).permute(0, 3, 1, 2).to(device)


def uint8_images(images: Tensor) -> Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8 on the same device, rounded rather than truncated."""
    scaled = ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).contiguous()


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8 on the host."""
    return uint8_images(images).cpu().numpy()
