"""Uniform random noise in [-eps, eps]: the control every learned protection must beat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..data.dataset import ImageDataset
from ..perturbation import Perturbation
from .base import Attack, register_attack, seed_everything


@dataclass(frozen=True)
class RandomOptions:
    kind: Literal["classwise", "samplewise"] = "classwise"


@register_attack
class RandomNoise(Attack):
    name = "random"
    summary = "uniform noise in [-eps, eps], one pattern per class (or per image)"
    Options = RandomOptions
    options: RandomOptions

    def fit(self, train_set: ImageDataset) -> Perturbation:
        gen = seed_everything(self.seed)
        rows = train_set.num_classes if self.options.kind == "classwise" else len(train_set)
        delta = (torch.rand((rows, *train_set.images.shape[1:]), generator=gen) * 2 - 1) * self.eps
        return self.perturbation(delta, self.options.kind)
