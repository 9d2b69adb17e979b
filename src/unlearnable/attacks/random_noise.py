"""Uniform random noise in [-eps, eps]: the control every learned protection must beat."""

from __future__ import annotations

import torch

from .base import Attack, register_attack, seed_everything


@register_attack
class RandomNoise(Attack):
    name = "random"
    summary = "uniform noise in [-eps, eps], one pattern per class (or per image)"
    DEFAULTS = {"kind": "classwise"}
    CHOICES = {"kind": ("classwise", "samplewise")}

    def fit(self, train_set):
        gen = seed_everything(self.seed)
        rows = train_set.num_classes if self.kind == "classwise" else len(train_set)
        delta = (torch.rand((rows, *train_set.images.shape[1:]), generator=gen) * 2 - 1) * self.eps
        return self.perturbation(delta, self.kind)
