"""Perturbation-Induced Linearization (PIL), "Constructing Unlearnable Data with Solely Linear
Classifiers", ICLR 2026 (arXiv 2601.19967).

The surrogate is a linear classifier on the pixels (two bias-free linear layers, D -> K -> K),
trained on the CLEAN images; then every image's noise n (Linf eps, from a uniform start) takes
signed steps that lower

    balance * CE(f(n), y) + (1 - balance) * KL(uniform || softmax(f(x - n)))

so that the noise alone carries the class for a linear model while the image it leaves is
uninformative to it; the protected image is x - n. A network trained on it learns the linear
shortcut. No network surrogate: a fraction of the time of EM or TAP.

Settings from the authors' code (jinlinll/pil): the linear model trained 30 epochs with SGD (lr
0.003, momentum 0.9, no weight decay, cosine, batches of 512, no augmentation); 30 steps of
eps / 10, balance 0.9, batches of 512 in index order. Changed: the cosine schedule steps per
batch (the reference steps it per epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.dataset import ImageDataset
from ..options import option
from ..perturbation import Perturbation
from ..training import TrainConfig, resident, to_float
from .base import SURROGATE_PART, FitState, IterativeAttack, rebuilt, register_attack


class LinearSurrogate(nn.Module):
    """A linear map of the flattened pixels to class scores, factorized as the reference's."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, num_classes, bias=False)
        self.fc2 = nn.Linear(num_classes, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.fc1(x.flatten(1)))
        return out


@dataclass(frozen=True)
class PILOptions:
    surrogate_epochs: int = option(30, positive=True)  # the linear model's training on clean data
    surrogate_lr: float = option(0.003, positive=True)
    surrogate_batch_size: int = option(512, positive=True)
    steps: int = option(30, positive=True)  # signed steps per image
    step_size: float | None = option(None, positive=True)  # None: eps / 10
    balance: float = option(0.9, low=0, high=1)  # the weight of the noise's own cross-entropy
    batch_size: int = option(512, positive=True)


@dataclass(kw_only=True)
class PILState(FitState):
    model: LinearSurrogate
    noise: torch.Tensor  # (N, C, H, W) on the CPU: the protected image is x - noise
    surrogate_train_acc: float | None = None  # the linear model's accuracy on the clean training images
    train_set: ImageDataset = rebuilt()


@register_attack
class PIL(IterativeAttack[PILState]):
    name = "pil"
    summary = "perturbation-induced linearization (2026): noise a clean-trained linear model reads as the class"
    Options = PILOptions
    options: PILOptions
    UNIT, SAVE_EVERY = "batch", 10
    CHECKPOINT_PARTS = (SURROGATE_PART,)

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> PILState:
        train_set = replace(train_set, images=resident(train_set.images, self.device))  # once, for both parts
        n, c, h, w = train_set.images.shape
        return PILState(
            gen=gen,
            model=LinearSurrogate(c * h * w, train_set.num_classes).to(self.device),
            noise=(torch.rand((n, c, h, w), generator=gen) * 2 - 1) * self.eps,
            train_set=train_set,
        )

    def warm_up(self, state: PILState) -> bool:
        o = self.options
        cfg = TrainConfig(
            epochs=o.surrogate_epochs,
            batch_size=o.surrogate_batch_size,
            lr=o.surrogate_lr,
            weight_decay=0.0,
            schedule="cosine",
            grad_clip=None,
            augment=False,
        )
        state.surrogate_train_acc = self.train_on_clean(state.model, state.train_set, cfg, "pil linear model")
        return True

    def rounds(self, state: PILState) -> int:
        return math.ceil(len(state.noise) / self.options.batch_size)

    def step(self, state: PILState) -> dict[str, Any] | None:
        o, model = self.options, state.model.eval()
        bs, k = o.batch_size, state.train_set.num_classes
        idx = torch.arange(state.round * bs, min(len(state.noise), (state.round + 1) * bs))
        x = to_float(state.train_set.images[idx], self.device)
        y = state.train_set.labels[idx].to(self.device)
        noise = state.noise[idx].to(self.device)
        step = o.step_size or self.eps / 10
        for p in model.parameters():
            p.requires_grad_(False)
        for _ in range(o.steps):
            noise.requires_grad_(True)
            shortcut = F.cross_entropy(model(noise), y)
            left = F.log_softmax(model(x - noise), 1)
            kl = (-math.log(k) - left.mean(1)).mean()  # KL(uniform || softmax), per image, averaged
            (grad,) = torch.autograd.grad(o.balance * shortcut + (1 - o.balance) * kl, noise)
            noise = (noise.detach() - step * grad.sign()).clamp(-self.eps, self.eps)
        state.noise[idx] = noise.cpu()
        return None

    def finish(self, state: PILState) -> Perturbation:
        x = state.train_set.images.float().div(255).cpu()
        delta = (x - state.noise).clamp(0, 1) - x
        return self.perturbation(delta, "samplewise", surrogate_train_acc=state.surrogate_train_acc)
