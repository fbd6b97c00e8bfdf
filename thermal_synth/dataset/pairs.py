"""Training tensors from a shard dataset: images, normalised heatmaps and heatmap-grid person masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from thermal_msgs.privacy import GRID_TRANSFORMS
from thermal_synth.common.cli_args import transform_flag
from thermal_synth.dataset.shards import ShardReader
from thermal_synth.engine.inference import to_tensor_images
from thermal_synth.model.recipe import HeatmapRecipe, Preprocessing


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


def load_pairs(
    reader: ShardReader,
    split: str,
    preprocessing: Preprocessing,
    published: HeatmapRecipe | None = None,
    seed: int = 0,
) -> PairTensors:
    """`published`: heatmaps made anew from the stored thermal frames with these settings (the
    driver's transforms, which a model trained without them meets live); they must keep the
    model's grid and blur, the input format it was built for. Noise is drawn from `seed`."""
    if published is None and reader.recipe != preprocessing.heatmap:
        raise DatasetMismatchError(
            f"{reader.directory}: heatmaps were made as {reader.recipe.label}, the model reads "
            f"{preprocessing.heatmap.label}; {_how_to_match(preprocessing.heatmap, reader.recipe)}"
        )
    source = "heatmap" if published is None else "thermal"
    fields = ["rgb", source, "session"] + (["person_mask"] if "person_mask" in reader.fields else [])
    arrays = reader.load_split(split, fields)
    images = to_tensor_images(arrays["rgb"])
    if published is None:
        celsius = arrays["heatmap"]
    else:
        if published.grid != preprocessing.heatmap.grid:
            raise DatasetMismatchError(
                f"published heatmaps {published.label} do not keep the model's input format "
                f"({preprocessing.heatmap.label}): only the transforms on its grid can be evaluated"
            )
        celsius = published.apply(arrays["thermal"], np.random.default_rng(seed))
    heatmaps = torch.from_numpy(preprocessing.normalisation.apply(celsius))[:, None]
    masks = image_masks = None
    if "person_mask" in arrays:
        image_masks = torch.from_numpy(arrays["person_mask"])[:, None]
        masks = person_cells(image_masks, heatmaps.shape[-2:])
    return PairTensors(images, heatmaps, masks, arrays["session"], image_masks)


def _how_to_match(model: HeatmapRecipe, stored: HeatmapRecipe) -> str:
    if model.grid != stored.grid:
        return "rebuild the dataset or choose a matching model config"
    flags = [
        transform_flag(name, getattr(model, name))
        for name in GRID_TRANSFORMS
        if getattr(model, name) != getattr(stored, name)
    ]
    return (
        "make the dataset with the model's transforms (thermal-synth sim / dataset build "
        f"{' '.join(flags)}), or evaluate on heatmaps made from the stored thermal frames "
        "(thermal-synth eval with the same options)"
    )


def person_cells(mask: Tensor, grid: tuple[int, int] | torch.Size) -> Tensor:
    """(N, 1, H, W) bool image-grid masks -> (N, 1, h, w) bool: cells any person pixel falls in.

    Max rather than majority pooling: a cell half covered by an arm still carries the arm's heat.
    """
    return functional.adaptive_max_pool2d(mask.float(), tuple(grid)) > 0
