"""UEraser (Qin et al., "Learning the Unlearnable: Adversarial Augmentations Suppress Unlearnable
Example Attacks", 2023): make several strongly augmented copies of every image (plasma
brightness, plasma contrast, channel shuffle, each with probability 0.5) and train on the copy
with the HIGHEST loss, so the model is pushed away from anything the augmentations do not
preserve, such as a perturbation's exact colours and amplitudes. Five copies for every epoch
(the reference's max mode; it also adds TrivialAugment, which is not reproduced here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..options import option
from .base import Defense, register_defense


def plasma(n: int, h: int, w: int, gen: torch.Generator, device: torch.device, octaves: int = 4) -> torch.Tensor:
    """Smooth fractal fields (n, 1, h, w) in [0, 1]: random grids at doubling resolutions, each
    upsampled bicubically and weighted by half the previous one."""
    field = torch.zeros((n, 1, h, w))
    weight, total = 1.0, 0.0
    for o in range(octaves):
        size = 2 ** (o + 1)
        grid = torch.rand((n, 1, size + 1, size + 1), generator=gen)
        field += weight * F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)
        total += weight
        weight /= 2
    field = field / total
    lo = field.flatten(1).amin(1).view(n, 1, 1, 1)
    hi = field.flatten(1).amax(1).view(n, 1, 1, 1)
    return ((field - lo) / (hi - lo).clamp(min=1e-6)).to(device)


def strong_augment(
    x: torch.Tensor, gen: torch.Generator, *, brightness: float, contrast: float, p: float
) -> torch.Tensor:
    """Each of the three augmentations applied to each image with probability p."""
    n, c, h, w = x.shape

    def chosen() -> torch.Tensor:
        return (torch.rand(n, generator=gen) < p).to(x.device).view(n, 1, 1, 1)

    # plasma brightness: add a smooth field in [-brightness, brightness]
    x = torch.where(chosen(), x + (plasma(n, h, w, gen, x.device) * 2 - 1) * brightness, x)
    # plasma contrast: scale deviations from each image's mean by a smooth field in [1 - contrast, 1 + contrast]
    mean = x.mean((1, 2, 3), keepdim=True)
    x = torch.where(chosen(), (x - mean) * (1 + (plasma(n, h, w, gen, x.device) * 2 - 1) * contrast) + mean, x)
    # channel shuffle, per image with probability p
    perm = torch.stack([torch.randperm(c, generator=gen) for _ in range(n)]).to(x.device)
    keep = (torch.rand(n, generator=gen) >= p).to(x.device)
    perm = torch.where(keep[:, None], torch.arange(c, device=x.device).expand(n, c), perm)
    x = x.gather(1, perm[:, :, None, None].expand(n, c, h, w))
    return x.clamp(0, 1)


@dataclass(frozen=True)
class UEraserOptions:
    repeats: int = option(5, low=1)
    brightness: float = option(0.5, low=0)
    contrast: float = option(0.5, low=0)
    p: float = option(0.5, low=0, high=1)


@register_defense
class UEraser(Defense):
    name = "ueraser"
    summary = "UEraser (Qin et al. 2023): train on the worst of several strongly augmented copies of each image"
    Options = UEraserOptions

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.options
        k, n = o.repeats, len(x)
        copies = torch.cat(
            [strong_augment(x, gen, brightness=o.brightness, contrast=o.contrast, p=o.p) for _ in range(k)]
        )
        out = model(copies)
        per = F.cross_entropy(out, y.repeat(k), reduction="none", label_smoothing=label_smoothing).view(k, n)
        worst = per.argmax(0)
        return per.max(0).values.mean(), out.view(k, n, -1)[worst, torch.arange(n)]
