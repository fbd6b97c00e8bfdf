"""Periodic sample grids: the same heatmaps and codes at every step, so progress is visible.

Columns are fixed frames (from the test split when there is one, else train); the first row is
the real frame, then G(z, h) for a few fixed random codes (the EMA generator, as shipped), and
in the inversion phase G(I(x), h), the reconstruction a latent-bank code will give. A model with
spatial codes has no prior to draw codes from: its rows are the session's first frame (the
"photo") and what the model paints from that photo's code and each column's heatmap, the
product's situation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from thermal_synth.common.contact_sheet import captioned_grid, encode_png
from thermal_synth.dataset.pairs import PairTensors
from thermal_synth.engine.inference import to_uint8
from thermal_synth.model.config import ModelConfig
from thermal_synth.model.networks import SpadeSRModel

SAMPLE_FRAMES = 8
SAMPLE_CODES = 3
SAMPLES_DIRECTORY = "samples"


@dataclass
class SampleInputs:
    images: Tensor
    heatmaps: Tensor
    codes: Tensor
    photos: Tensor | None = None
    """Spatial-code models: each column's session's first frame, the photo its code comes from."""

    @classmethod
    def pick(cls, pairs: PairTensors, config: ModelConfig, seed: int) -> SampleInputs:
        """Evenly spread frames (different sessions and poses) and fixed N(0, I) codes."""
        rows = np.linspace(0, len(pairs) - 1, min(SAMPLE_FRAMES, len(pairs))).round().astype(int)
        indices = torch.from_numpy(np.unique(rows))
        if config.spatial_code:
            firsts = [int(np.flatnonzero(pairs.sessions == pairs.sessions[i])[0]) for i in indices]
            photos = pairs.images[torch.tensor(firsts)]
            return cls(pairs.images[indices], pairs.heatmaps[indices], torch.empty(0, config.z_dim), photos)
        codes = torch.randn(SAMPLE_CODES, config.z_dim, generator=torch.Generator().manual_seed(seed))
        return cls(pairs.images[indices], pairs.heatmaps[indices], codes)


@torch.inference_mode()
def sample_grid(networks: SpadeSRModel, inputs: SampleInputs, *, with_reconstruction: bool) -> np.ndarray:
    device = next(networks.parameters()).device
    networks.eval()
    heatmaps = inputs.heatmaps.to(device)
    count = heatmaps.shape[0]
    rows: list[tuple[str, np.ndarray]] = [("real", to_uint8(inputs.images))]
    for index, z in enumerate(inputs.codes):
        painted = networks.generator(z.to(device).expand(count, -1), heatmaps)
        rows.append((f"z{index}", to_uint8(painted)))
    if inputs.photos is not None:
        painted = networks.generator(networks.encoder(inputs.photos.to(device)), heatmaps)
        rows += [("photo", to_uint8(inputs.photos)), ("from photo", to_uint8(painted))]
    if with_reconstruction:
        codes = networks.encoder(inputs.images.to(device))
        rows.append(("G(I(x))", to_uint8(networks.generator(codes, heatmaps))))
    tiles = [tile for _, images in rows for tile in images]
    captions = [[f"{label} #{column}"] for label, images in rows for column in range(len(images))]
    return captioned_grid(tiles, captions, columns=count, caption_lines=1)


def write_sample_grid(
    run_directory: Path, phase: str, step: int, networks: SpadeSRModel, inputs: SampleInputs
) -> Path:
    grid = sample_grid(networks, inputs, with_reconstruction=phase == "inversion")
    path = run_directory / SAMPLES_DIRECTORY / f"{phase}_{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(grid))
    return path
