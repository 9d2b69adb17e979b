"""Targeted adversarial poisoning (TAP), Fowl et al., "Adversarial Examples Make Strong
Poisons", NeurIPS 2021.

Train a surrogate on the CLEAN training set, then move every image towards another class with
targeted PGD (target (y + shift) mod K) through differentiable crop/flip, so that the features a
victim learns from the poisons point the wrong way on clean images. Sample-wise, Linf.
TAP* is the same with an ImageNet-pretrained surrogate (fine-tuned on the clean data first).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import crop_flip
from ..data.dataset import ImageDataset
from ..distributed import local_generator, merge_rows_, rank_and_world
from ..options import option
from ..perturbation import Perturbation
from ..training import TrainConfig, resident, to_float
from .base import SURROGATE_PART, FitState, IterativeAttack, build_surrogate, rebuilt, register_attack


@dataclass(kw_only=True)
class TAPState(FitState):
    model: nn.Module  # the surrogate, trained on the clean set before the first round
    delta: torch.Tensor  # (N, C, H, W), on the CPU
    surrogate_train_acc: float | None = None
    train_set: ImageDataset = rebuilt()  # its images where the fit runs


@dataclass(frozen=True)
class TAPOptions:
    surrogate: str = "resnet18"
    surrogate_init: Literal["imagenet", "scratch"] = "scratch"
    surrogate_epochs: int = option(40, positive=True)  # training on clean data before crafting
    surrogate_lr: float = option(0.1, positive=True)
    surrogate_batch_size: int = option(128, positive=True)
    steps: int = option(250, positive=True)  # PGD steps per image
    step_size: float | None = option(None, positive=True)  # None: eps / 20 (0.4/255 at 8/255, the reference's tau)
    restarts: int = option(1, positive=True)  # random restarts (the reference allows 8, advises 1); lowest loss kept
    target_shift: int = option(1, positive=True)  # target = (y + shift) mod K
    batch_size: int = option(128, positive=True)
    augment: bool = True  # differentiable crop/flip inside the PGD loop


@register_attack
class TAP(IterativeAttack[TAPState]):
    name = "tap"
    UNIT, SAVE_EVERY = "batch", 5
    CHECKPOINT_PARTS = (SURROGATE_PART,)  # the surrogate's training, resumable on its own
    summary = (
        "targeted adversarial poisoning (Fowl et al. 2021): PGD towards class (y+1) mod K on a clean-trained model"
    )
    Options = TAPOptions
    options: TAPOptions
    PRESETS = {
        "paper": TAPOptions(),
        "cpu": TAPOptions(
            surrogate="small_cnn", surrogate_epochs=15, surrogate_lr=0.05, steps=40, step_size=1 / 255, batch_size=256
        ),
    }

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> TAPState:
        o = self.options
        dev, K = self.device, train_set.num_classes
        if not 1 <= o.target_shift < K:
            raise ValueError(f"tap: target_shift must be in [1, {K - 1}], got {o.target_shift}")
        train_set = replace(train_set, images=resident(train_set.images, dev))  # once, for the surrogate too
        return TAPState(
            gen=gen,
            model=build_surrogate(o.surrogate, o.surrogate_init, K).to(dev),
            delta=torch.zeros(train_set.images.shape),
            train_set=train_set,
        )

    def warm_up(self, state: TAPState) -> bool:
        """The surrogate learns the clean training set (its own checkpoint, per epoch)."""
        o = self.options
        cfg = TrainConfig(
            epochs=o.surrogate_epochs,
            batch_size=o.surrogate_batch_size,
            lr=o.surrogate_lr,
            schedule="onecycle",
        )
        state.surrogate_train_acc = self.train_on_clean(state.model, state.train_set, cfg, "tap surrogate")
        return True

    def rounds(self, state: TAPState) -> int:  # under torchrun a round is a group of `world` batches, one per process
        n = len(state.train_set.images)
        bs, world = min(self.options.batch_size, n), rank_and_world()[1]
        return -(-n // (bs * world))

    def step(self, state: TAPState) -> dict[str, Any] | None:
        o = self.options
        dev, K = self.device, state.train_set.num_classes
        images, labels, model = state.train_set.images, state.train_set.labels, state.model
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        n = len(images)
        bs = min(o.batch_size, n)
        rank, world = rank_and_world()  # the processes craft a batch each and merge them
        g = state.round * bs * world
        idx = torch.arange(g + rank * bs, min(n, g + (rank + 1) * bs))
        mine = local_generator(state.gen, self.seed, g)
        x, y = to_float(images[idx], dev), labels[idx].to(dev)
        step = o.step_size or self.eps / 20
        crafted = self._craft(model, x, (y + o.target_shift) % K, step, mine).cpu() if len(idx) else state.delta[idx]
        merge_rows_(state.delta, idx, crafted)
        return None

    def finish(self, state: TAPState) -> Perturbation:
        return self.perturbation(state.delta, "samplewise", surrogate_train_acc=state.surrogate_train_acc)

    def _craft(
        self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, step: float, gen: torch.Generator
    ) -> torch.Tensor:
        """Targeted PGD from random starts; per image, the delta with the lowest target loss."""
        o = self.options
        best = torch.zeros_like(x)
        best_loss = torch.full((len(x),), float("inf"), device=x.device)
        pad = max(1, x.shape[-1] // 8)
        for _ in range(o.restarts):
            d = (torch.randn(x.shape, generator=gen) * self.eps).clamp(-self.eps, self.eps).to(x.device)
            d = (x + d).clamp(0, 1) - x
            for _ in range(o.steps):
                d.requires_grad_(True)
                view = (x + d).clamp(0, 1)
                view = crop_flip(view, pad, gen) if o.augment else view
                loss = F.cross_entropy(model(view), target)
                (grad,) = torch.autograd.grad(loss, d)
                with torch.no_grad():
                    d = (d - step * grad.sign()).clamp(-self.eps, self.eps)
                    d = (x + d).clamp(0, 1) - x
            with torch.no_grad():
                per = F.cross_entropy(model((x + d).clamp(0, 1)), target, reduction="none")
                better = per < best_loss
                best[better], best_loss[better] = d[better], per[better]
        return best
