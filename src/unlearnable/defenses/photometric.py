"""Colour changes a trainer's pipeline makes to every image: colour jitter (the brightness,
contrast, saturation and hue augmentation of common training recipes) and per-image
standardization (each image's channels brought to one mean and spread, at training and at
inference). Both act on float batches, as tensor ops."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..data.augment import color_jitter
from ..options import option
from .base import Defense, register_defense


@dataclass(frozen=True)
class JitterOptions:
    brightness: float = option(0.4, low=0, high=1)
    contrast: float = option(0.4, low=0, high=1)
    saturation: float = option(0.4, low=0, high=1)
    hue: float = option(0.1, low=0, high=0.5)


@register_defense
class ColorJitter(Defense):
    name = "color_jitter"
    summary = "colour jitter augmentation: random brightness, contrast, saturation (0.4) and hue (0.1) per image"
    Options = JitterOptions

    def batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.options
        return color_jitter(x, o.brightness, o.contrast, o.saturation, o.hue, gen), y


def standardize(x: torch.Tensor, mean: float = 0.5, std: float = 0.25) -> torch.Tensor:
    """Every image's every channel shifted and scaled to `mean` and `std` (kept in the [0, 1]
    scale the victims' own normalization expects)."""
    mu = x.mean((2, 3), keepdim=True)
    sd = x.std((2, 3), keepdim=True).clamp(min=1 / 255)
    return (x - mu) / sd * std + mean


@register_defense
class Standardize(Defense):
    name = "standardize"
    summary = "per-image, per-channel mean and std normalization, of training and test images alike"

    def pre_augment(self, x: torch.Tensor) -> torch.Tensor:
        return standardize(x)

    def pre_test(self, x: torch.Tensor) -> torch.Tensor:
        return standardize(x)
