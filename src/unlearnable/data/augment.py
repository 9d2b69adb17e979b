"""Batched data augmentation as tensor ops (no per-image Python loop).

The standard CIFAR recipe: random crop with zero padding, then horizontal flip; and the ImageNet
recipe's RandomResizedCrop (then the same flip). Noise is
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


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """RandomResizedCrop as ImageNet recipes use it, for a whole batch at once: each image's crop
    covers a random fraction `scale` of its area with a log-uniform aspect `ratio` (clipped to the
    image), resized bilinearly back to the batch's size with one grid_sample."""
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(*scale, generator=generator)
    logr = torch.empty(n).uniform_(
        torch.log(torch.tensor(ratio[0])).item(), torch.log(torch.tensor(ratio[1])).item(), generator=generator
    )
    aspect = torch.exp(logr)
    cw = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width and height as fractions of the image's
    ch = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - cw)  # centre, in grid_sample's [-1, 1] coordinates
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - ch)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = cw, cx, ch, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
