"""Batched data augmentation as tensor ops (no per-image Python loop).

The standard CIFAR recipe: random crop with zero padding, then horizontal flip. Noise is
always added to the uint8 images before augmentation (Perturbation.apply), so a victim sees
protected images augmented exactly like clean ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _windows(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, padding: int) -> torch.Tensor:
    """Image i's h x w window at offset (oy[i], ox[i]) of the zero-padded batch: two strided views
    (unfold) and one gather per axis, which copies whole rows instead of indexing every pixel."""
    n, c, h, w = x.shape
    i = torch.arange(n, device=x.device)
    rows = F.pad(x, (padding,) * 4).unfold(2, h, 1)[i, :, oy]  # (n, c, w + 2p, h)
    return rows.transpose(2, 3).unfold(3, w, 1)[i, :, :, ox].contiguous()  # (n, c, h, w)


class _Crop(torch.autograd.Function):
    """A crop is a translation with zero fill, so its gradient is the opposite translation: one more
    crop at offset 2p - o (itself differentiable, for gradients through the look-ahead step)."""

    @staticmethod
    def forward(ctx, x, oy, ox, padding):
        ctx.save_for_backward(oy, ox)
        ctx.padding = padding
        return _windows(x, oy, ox, padding)

    @staticmethod
    def backward(ctx, grad):
        oy, ox = ctx.saved_tensors
        p = ctx.padding
        return _Crop.apply(grad, 2 * p - oy, 2 * p - ox, p), None, None, None


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop every image of the batch at its own random offset from the zero-padded batch."""
    if padding <= 0:
        return x
    n = x.shape[0]
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(x.device)
    return _Crop.apply(x, oy, ox, padding)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    return random_flip(random_crop(x, padding, generator), generator)
