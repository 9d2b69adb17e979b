"""Strong augmentations a trainer might add: Cutout (DeVries & Taylor 2017), CutMix (Yun et al.
2019), Mixup (Zhang et al. 2018). Applied per batch after the standard crop/flip, as tensor ops.
The mixing ones return soft targets (per-class probabilities)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..options import option
from .base import Defense, register_defense


def box_masks(
    n: int, h: int, w: int, size_h: torch.Tensor, size_w: torch.Tensor, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(n, 1, h, w) boolean masks of one box per image, centred uniformly (clipped at the border)."""
    cy = torch.randint(0, h, (n,), generator=gen)
    cx = torch.randint(0, w, (n,), generator=gen)
    y0, y1 = (cy - size_h // 2).clamp(0, h), (cy + (size_h + 1) // 2).clamp(0, h)
    x0, x1 = (cx - size_w // 2).clamp(0, w), (cx + (size_w + 1) // 2).clamp(0, w)
    rows, cols = torch.arange(h), torch.arange(w)
    inside = (
        (rows[None, :, None] >= y0[:, None, None])
        & (rows[None, :, None] < y1[:, None, None])
        & (cols[None, None, :] >= x0[:, None, None])
        & (cols[None, None, :] < x1[:, None, None])
    )
    return inside[:, None].to(device)


def beta(alpha: float, gen: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw from the seeded generator (ratio of Gamma draws)."""
    g = torch._standard_gamma(torch.full((2,), float(alpha)), generator=gen)
    return float(g[0] / g.sum())


@dataclass(frozen=True)
class CutoutOptions:
    size: float = option(0.5, positive=True, high=1)  # side of the square as a fraction of the image side


@dataclass(frozen=True)
class MixingOptions:  # ISS's evaluation settings
    alpha: float = option(1.0, positive=True)
    prob: float = option(0.5, low=0, high=1)


@register_defense
class Cutout(Defense):
    name = "cutout"
    summary = "Cutout (DeVries & Taylor 2017): zero one random square per image (half the image side)"
    Options = CutoutOptions

    def batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        side = torch.full((n,), max(1, round(self.options.size * h)))
        return x.masked_fill(box_masks(n, h, w, side, side, gen, x.device), 0.0), y


class _Mixing(Defense):
    """With probability `prob`, mix every image with a partner from the same batch (a random
    permutation); a share lambda ~ Beta(alpha, alpha) of the result is the image's own, and its
    target is the labels mixed by the share actually taken from each."""

    Options = MixingOptions

    def mix(
        self, x: torch.Tensor, partner: torch.Tensor, lam: float, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed images, per-image share (N, 1) taken from the partner)."""
        raise NotImplementedError

    def batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = model_classes(model, y)
        if float(torch.rand((), generator=gen)) >= self.options.prob:
            return x, y
        lam = beta(self.options.alpha, gen)
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        mixed, share = self.mix(x, x[perm], lam, gen)
        return mixed, (1 - share) * F.one_hot(y, k).float() + share * F.one_hot(y[perm], k).float()


@register_defense
class CutMix(_Mixing):
    name = "cutmix"
    summary = "CutMix (Yun et al. 2019): paste a box from another image, mix labels by area"

    def mix(
        self, x: torch.Tensor, partner: torch.Tensor, lam: float, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        cut = (1 - lam) ** 0.5
        sh, sw = torch.full((n,), round(h * cut)), torch.full((n,), round(w * cut))
        mask = box_masks(n, h, w, sh, sw, gen, x.device)
        return torch.where(mask, partner, x), mask.flatten(1).float().mean(1, keepdim=True)  # the real pasted area


@register_defense
class Mixup(_Mixing):
    name = "mixup"
    summary = "Mixup (Zhang et al. 2018): convex combinations of image pairs and their labels"

    def mix(
        self, x: torch.Tensor, partner: torch.Tensor, lam: float, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return lam * x + (1 - lam) * partner, torch.full((len(x), 1), 1 - lam, device=x.device)


def model_classes(model: nn.Module, y: torch.Tensor) -> int:
    """Number of classes of a classifier (its head's outputs), for one-hot targets."""
    model = getattr(model, "module", model)  # the replica inside a DistributedDataParallel wrapper
    head = getattr(model, "head", None)
    if head is not None and hasattr(head, "out_features"):
        return int(head.out_features)
    return int(getattr(model, "num_classes", int(y.max()) + 1))
