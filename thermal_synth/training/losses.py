"""The SPADE-SR losses, as the spade-sr notes give them, on [-1, 1] images and heatmaps."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

RECONSTRUCTION_EPS = 0.05


def discriminator_hinge(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    return functional.relu(1.0 - real_scores).mean() + functional.relu(1.0 + fake_scores).mean()


def generator_hinge(fake_scores: Tensor) -> Tensor:
    return -fake_scores.mean()


def heatmap_reconstruction(
    target: Tensor, reconstructed: Tensor, mask: Tensor | None = None, eps: float = RECONSTRUCTION_EPS
) -> Tensor:
    """Hinge-L1: errors below `eps` are free, so D need not reproduce sensor noise exactly.

    With a person mask (on the heatmap grid) only the person's cells count: a radiator in the
    background is not something the picture must show. The mean runs over the masked cells.
    """
    error = functional.relu((target - reconstructed).abs() - eps)
    if mask is None:
        return error.mean()
    mask = mask.to(error.dtype)
    return (error * mask).sum() / mask.sum().clamp_min(1.0)


def r1_penalty(real_scores: Tensor, real_images: Tensor) -> Tensor:
    """0.5 * mean over the batch of ||grad_x D(x)||^2 on real images (`real_images` needs grad)."""
    (gradient,) = torch.autograd.grad(real_scores.sum(), real_images, create_graph=True)
    return 0.5 * gradient.pow(2).flatten(1).sum(1).mean()
