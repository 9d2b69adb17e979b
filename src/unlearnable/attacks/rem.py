"""Robust error-minimizing noise (REM), Fu et al., "Robust Unlearnable Examples: Protecting Data
Against Adversarial Learning", ICLR 2022.

min_theta min_{delta_u} E_t max_{delta_a} CE(f_theta(t(x + delta_u) + delta_a), y):
EM whose noise must keep the loss low even after an adversary adds its own perturbation
delta_a (radius `adv_eps` < eps) to the augmented image, so that adversarial training by the
victim does not wash the shortcut out. Per training step, on one batch:
  1. delta_u of the batch: `steps` signed steps from a uniform start, each summing the
     gradient over `eot` augmentation samples, each sample with its own inner PGD delta_a
     (the gradient through delta_a is dropped, as in the reference: Danskin's theorem);
  2. the surrogate takes one SGD step on t(x + delta_u) + delta_a (adversarial training).
After the last step, one pass recomputes delta_u for EVERY image with the final surrogate
(the reference's loader drops the last partial batch there; here no image is left out).
Sample-wise, Linf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import crop_flip
from ..data.dataset import ImageDataset
from ..distributed import local_generator, merge_rows_, rank_and_world
from ..options import option
from ..perturbation import Perturbation
from ..training import resident, to_float
from .base import FitState, IterativeAttack, build_surrogate, rebuilt, register_attack
from .common import surrogate_optimizer


@dataclass(kw_only=True)
class REMState(FitState):
    model: nn.Module
    opt: torch.optim.Optimizer
    delta: torch.Tensor  # (N, C, H, W), on the CPU
    order: torch.Tensor  # this epoch's order of the training batches
    images: torch.Tensor = rebuilt()
    labels: torch.Tensor = rebuilt()


@dataclass(frozen=True)
class REMOptions:
    surrogate: str = "resnet18"
    surrogate_init: Literal["imagenet", "scratch"] = "scratch"
    surrogate_lr: float = option(0.1, positive=True)
    lr_decay_every: int = option(2000, positive=True)  # surrogate lr x0.1 every this many steps
    train_steps: int = option(5000, positive=True)
    batch_size: int = option(128, positive=True)
    steps: int = option(10, positive=True)  # delta_u steps per batch
    step_size: float = option(1.6 / 255, positive=True)
    eot: int = option(5, positive=True)  # augmentation samples per delta_u step
    adv_eps: float = option(4 / 255, low=0)  # the adversary's Linf radius (must stay below eps)
    adv_steps: int = option(10, positive=True)
    adv_step_size: float = option(0.8 / 255, positive=True)
    grad_clip: float | None = option(None, positive=True)


@register_attack
class REM(IterativeAttack[REMState]):
    name = "rem"
    UNIT, SAVE_EVERY = "batch", 10
    summary = "robust error-minimizing noise (Fu et al. 2022): EM that survives adversarial training"
    Options = REMOptions
    options: REMOptions
    PRESETS = {
        "paper": REMOptions(),
        "cpu": REMOptions(
            surrogate="small_cnn",
            surrogate_lr=0.05,
            train_steps=100,
            lr_decay_every=70,
            batch_size=128,
            steps=5,
            eot=2,
            adv_steps=2,
            adv_step_size=2 / 255,
        ),
    }

    def validate(self) -> None:
        if not 0 <= self.options.adv_eps < self.eps:
            raise ValueError(f"rem: adv_eps must be in [0, eps={self.eps:.4f}), got {self.options.adv_eps}")

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> REMState:
        o = self.options
        model = build_surrogate(o.surrogate, o.surrogate_init, train_set.num_classes).to(self.device)
        images = resident(train_set.images, self.device)
        return REMState(
            gen=gen,
            model=model,
            opt=surrogate_optimizer(model, o.surrogate_lr),
            delta=torch.zeros(images.shape),
            order=torch.randperm(len(images), generator=gen),
            images=images,
            labels=train_set.labels,
        )

    def rounds(self, state: REMState) -> int:  # the training steps, then one pass over every image
        n = len(state.images)
        bs = min(self.options.batch_size, n)
        return self.options.train_steps + (n + bs - 1) // bs

    def step(self, state: REMState) -> dict[str, Any] | None:
        o = self.options
        dev, gen, step = self.device, state.gen, state.round
        n = len(state.images)
        bs = min(o.batch_size, n)
        per_epoch = max(1, n // bs)  # training batches drop the tail, like a drop_last loader
        if step < o.train_steps:
            b = step % per_epoch
            if b == 0 and step > 0:
                state.order = torch.randperm(n, generator=gen)
            idx = state.order[b * bs : (b + 1) * bs]
        else:  # final pass: every image, in index order
            b = step - o.train_steps
            idx = torch.arange(b * bs, min(n, (b + 1) * bs))
        x, y = to_float(state.images[idx], dev), state.labels[idx].to(dev)
        # under torchrun each process defends its share of the batch with its own draws; the
        # merged batch then trains the (identical) surrogate the same way everywhere
        rank, world = rank_and_world()
        part = slice(rank, None, world)
        mine = local_generator(gen, self.seed, step)
        merge_rows_(state.delta, idx[part], self._defend(state.model, x[part], y[part], mine).cpu())
        if step < o.train_steps:
            self._train_step(state.model, state.opt, x, state.delta[idx].to(dev), y, step, gen)
        return None

    def finish(self, state: REMState) -> Perturbation:
        return self.perturbation(state.delta, "samplewise")

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return crop_flip(x, max(1, x.shape[-1] // 8), gen)

    def _adversary(self, model: nn.Module, view: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Inner max: PGD from a uniform start within adv_eps, the view itself held fixed."""
        o = self.options
        if o.adv_eps == 0 or o.adv_steps == 0:
            return torch.zeros_like(view)
        a = ((torch.rand(view.shape, generator=gen) * 2 - 1) * o.adv_eps).to(view.device)
        for _ in range(o.adv_steps):
            a.requires_grad_(True)
            loss = F.cross_entropy(model((view + a).clamp(0, 1)), y)
            (g,) = torch.autograd.grad(loss, a)
            a = (a.detach() + o.adv_step_size * g.sign()).clamp(-o.adv_eps, o.adv_eps)
        return a.detach()

    def _defend(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """delta_u of one batch: min over delta_u of E_t max_a CE, from a uniform start."""
        o = self.options
        model.eval()
        d = ((torch.rand(x.shape, generator=gen) * 2 - 1) * self.eps).to(x.device)
        for _ in range(o.steps):
            grad = torch.zeros_like(x)
            for _ in range(o.eot):
                d.requires_grad_(True)
                view = self._augment((x + d).clamp(0, 1), gen)
                a = self._adversary(model, view.detach(), y, gen)
                loss = F.cross_entropy(model((view + a).clamp(0, 1)), y)
                grad += torch.autograd.grad(loss, d)[0]
                d = d.detach()
            d = (d - o.step_size * grad.sign()).clamp(-self.eps, self.eps)
            d = (x + d).clamp(0, 1) - x
        return d

    def _train_step(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        x: torch.Tensor,
        d: torch.Tensor,
        y: torch.Tensor,
        step: int,
        gen: torch.Generator,
    ) -> None:
        """Adversarial training of the surrogate on the augmented protected batch."""
        o = self.options
        model.eval()
        view = self._augment((x + d).clamp(0, 1), gen)
        a = self._adversary(model, view, y, gen)
        model.train()
        for g in opt.param_groups:
            g["lr"] = o.surrogate_lr * 0.1 ** (step // o.lr_decay_every)
        loss = F.cross_entropy(model((view + a).clamp(0, 1)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
