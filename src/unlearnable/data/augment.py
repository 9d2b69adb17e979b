"""Batched data augmentation as tensor ops (no per-image Python loop).

The standard CIFAR recipe: random crop with zero padding, then horizontal flip. Noise is
always added to the uint8 images before augmentation (Perturbation.apply), so a victim sees
protected images augmented exactly like clean ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop every image of the batch at its own random offset from the zero-padded batch."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    return random_flip(random_crop(x, padding, generator), generator)
