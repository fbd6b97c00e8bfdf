"""Training tensors from a shard dataset: images, normalised heatmaps and heatmap-grid person masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from thermal_synth.dataset.shards import ShardReader
from thermal_synth.engine.inference import to_tensor_images
from thermal_synth.model.recipe import Preprocessing


class DatasetMismatchError(ValueError):
    """A dataset that cannot train or evaluate this model; the message says why."""


@dataclass
class PairTensors:
    """One split in memory: the sim and user datasets are small enough (a few thousand pairs)."""

    images: Tensor
    """(N, 3, H, W) float32 in [-1, 1]."""
    heatmaps: Tensor
    """(N, 1, h, w) float32 in [-1, 1], normalised with the model's recipe."""
    masks: Tensor | None
    """(N, 1, h, w) bool: heatmap cells the person touches, or None without person masks."""
    sessions: np.ndarray
    image_masks: Tensor | None = None
    """(N, 1, H, W) bool: the person's pixels, or None without person masks."""

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, indices: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor | None]:
        masks = None if self.masks is None else self.masks[indices].to(device)
        return self.images[indices].to(device), self.heatmaps[indices].to(device), masks


def load_pairs(reader: ShardReader, split: str, preprocessing: Preprocessing) -> PairTensors:
    if reader.recipe != preprocessing.heatmap:
        raise DatasetMismatchError(
            f"{reader.directory}: heatmaps were made with {reader.recipe}, the model expects "
            f"{preprocessing.heatmap}; rebuild the dataset or choose a matching model config"
        )
    fields = ["rgb", "heatmap", "session"] + (["person_mask"] if "person_mask" in reader.fields else [])
    arrays = reader.load_split(split, fields)
    images = to_tensor_images(arrays["rgb"])
    heatmaps = torch.from_numpy(preprocessing.normalisation.apply(arrays["heatmap"]))[:, None]
    masks = image_masks = None
    if "person_mask" in arrays:
        image_masks = torch.from_numpy(arrays["person_mask"])[:, None]
        masks = person_cells(image_masks, heatmaps.shape[-2:])
    return PairTensors(images, heatmaps, masks, arrays["session"], image_masks)


def person_cells(mask: Tensor, grid: tuple[int, int] | torch.Size) -> Tensor:
    """(N, 1, H, W) bool image-grid masks -> (N, 1, h, w) bool: cells any person pixel falls in.

    Max rather than majority pooling: a cell half covered by an arm still carries the arm's heat.
    """
    return functional.adaptive_max_pool2d(mask.float(), tuple(grid)) > 0
