"""Colour changes a trainer's pipeline makes to every image: colour jitter (the brightness,
contrast, saturation and hue augmentation of common training recipes) and per-image
standardization (each image's channels brought to one mean and spread, at training and at
inference). Both act on float batches, as tensor ops."""

from __future__ import annotations

import torch

from ..data.augment import color_jitter
from .base import Defense, register_defense


@register_defense
class ColorJitter(Defense):
    name = "color_jitter"
    summary = "colour jitter augmentation: random brightness, contrast, saturation (0.4) and hue (0.1) per image"
    DEFAULTS = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}

    def validate(self):
        for key in ("brightness", "contrast", "saturation"):
            if not 0 <= self.options[key] <= 1:
                raise ValueError(f"color_jitter: {key} must be in [0, 1], got {self.options[key]}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"color_jitter: hue must be in [0, 0.5], got {self.hue}")

    def batch(self, model, x, y, gen):
        return color_jitter(x, self.brightness, self.contrast, self.saturation, self.hue, gen), y


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

    def pre_augment(self, x):
        return standardize(x)

    def pre_test(self, x):
        return standardize(x)
