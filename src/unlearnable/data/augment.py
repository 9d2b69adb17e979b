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


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's 'L' conversion
TO_YIQ = torch.tensor([LUMA, (0.596, -0.274, -0.322), (0.211, -0.523, 0.312)])
FROM_YIQ = torch.linalg.inv(TO_YIQ)


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luma of an RGB batch in [0, 1]."""
    return (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _factors(n: int, spread: float, generator: torch.Generator | None, device) -> torch.Tensor:
    """Per-image factors uniform in [1 - spread, 1 + spread] (never below 0), shaped to broadcast."""
    f = 1 + (torch.rand(n, generator=generator) * 2 - 1) * spread
    return f.clamp(min=0).view(n, 1, 1, 1).to(device)


def color_jitter(
    x: torch.Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ColorJitter as training pipelines use it (brightness, contrast, saturation, hue, each image
    its own draw), as differentiable tensor ops on a batch in [0, 1]. Brightness scales, contrast
    blends with the image's mean luma, saturation with its luma; hue rotates the chroma plane of
    YIQ by up to hue * 360 degrees (a linear stand-in for the HSV hue shift)."""
    n = x.shape[0]
    if brightness:
        x = (x * _factors(n, brightness, generator, x.device)).clamp(0, 1)
    if contrast:
        mean = luma(x).mean((2, 3), keepdim=True)
        c = _factors(n, contrast, generator, x.device)
        x = (c * x + (1 - c) * mean).clamp(0, 1)
    if saturation:
        s = _factors(n, saturation, generator, x.device)
        x = (s * x + (1 - s) * luma(x)).clamp(0, 1)
    if hue:
        angle = ((torch.rand(n, generator=generator) * 2 - 1) * hue * 2 * torch.pi).to(x.device, x.dtype)
        yiq = torch.einsum("ij,njhw->nihw", TO_YIQ.to(x), x)
        cos, sin = angle.cos().view(n, 1, 1), angle.sin().view(n, 1, 1)
        i, q = yiq[:, 1], yiq[:, 2]
        yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
        x = torch.einsum("ij,njhw->nihw", FROM_YIQ.to(x), yiq).clamp(0, 1)
    return x


def rescale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Shrink a batch by `factor` (area average, as an image viewer or a scraper's thumbnailer
    does) and enlarge it back to its size (bilinear): the detail a downscaled copy loses."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
