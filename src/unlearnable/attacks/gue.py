"""GUE: Game-Theoretic Unlearnable Example generator, Liu, Wang and Gao, AAAI 2024.

The data owner (a generator G, delta = eps * G(x)) and the learner (a classifier theta) play a
Stackelberg game: the owner picks G so that the classifier the learner fits on the perturbed data,
theta*(G) = argmin_theta g(G, theta) with g the cross-entropy on x + delta, does badly on clean
data, measured by an upper-bounded surrogate f(theta) = mean over images of the largest
cross-entropy towards a wrong class (bounded below, unlike the negated cross-entropy). The
bilevel problem is solved with BOME (Liu et al., NeurIPS 2022), a first-order method, once per
batch:

    theta_T    `inner_steps` Adam steps (lr `inner_lr`) of a copy of theta on g: theta*'s estimate
    q          g(G, theta) - g(G, theta_T)       (how far theta is from the learner's optimum)
    lambda     relu((eta |grad q|^2 - <grad_theta f, grad_theta q>) / |grad q|^2)
    G          <- G - attacker_lr * lambda grad_G q
    theta      <- theta - learner_lr * (grad_theta f + lambda grad_theta q)

Settings from the authors' code (hong-xian/gue): a UNet generator with tanh output, a CIFAR
ResNet-18 learner, batches of 256 without augmentation, eps 8/255, 50 epochs, eta 1.5, attacker
lr 0.1 and learner lr 0.01 (plain SGD), 10 inner Adam steps of lr 1e-4; a fresh inner optimizer
every batch. The noise is sample-wise: G's output for each image.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.dataset import ImageDataset
from ..options import option
from ..perturbation import Perturbation
from ..training import resident, to_float
from .base import FitState, IterativeAttack, build_surrogate, rebuilt, register_attack
from .generator import UNet


def wrong_class_bound(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f: the mean over images of max_{k != y} cross-entropy(logits, k), the owner's upper-level
    objective on clean images (small when every wrong class is about as likely as the others)."""
    logp = F.log_softmax(logits, 1)
    logp = logp.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("inf"))
    return -logp.min(1).values.mean()


@dataclass(kw_only=True)
class GUEState(FitState):
    learner: nn.Module
    G: UNet  # the owner's generator: delta = eps * G(x)
    learner_opt: torch.optim.Optimizer
    G_opt: torch.optim.Optimizer
    images: torch.Tensor = rebuilt()
    labels: torch.Tensor = rebuilt()


@dataclass(frozen=True)
class GUEOptions:
    surrogate: str = "resnet18"
    surrogate_init: Literal["imagenet", "scratch"] = "scratch"
    epochs: int = option(50, positive=True)
    batch_size: int = option(256, positive=True)
    eta: float = option(1.5, positive=True)
    attacker_lr: float = option(0.1, positive=True)
    learner_lr: float = option(0.01, positive=True)
    inner_lr: float = option(1e-4, positive=True)
    inner_steps: int = option(10, positive=True)
    unet_width: int = option(64, positive=True)


@register_attack
class GUE(IterativeAttack[GUEState]):
    name = "gue"
    summary = "game-theoretic unlearnable examples (Liu et al. 2024): a UNet generator trained by bilevel BOME"
    Options = GUEOptions
    options: GUEOptions
    PRESETS = {
        "paper": GUEOptions(),
        # CPU: a small learner and a narrow UNet, fewer epochs and inner steps
        "cpu": GUEOptions(surrogate="small_cnn", epochs=10, inner_steps=3, unet_width=16),
    }
    PRETRAINED = {"learner_lr": 0.001}  # gue*: a pretrained learner fine-tunes, 10x slower (as em*'s surrogate)

    def passes(self, n: int) -> float:
        return (
            self.options.epochs * n * (self.options.inner_steps + 4)
        )  # inner steps, f, q's two passes and its backward

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> GUEState:
        o = self.options
        dev = self.device
        learner = build_surrogate(o.surrogate, o.surrogate_init, train_set.num_classes).to(dev).train()
        G = UNet(o.unet_width).to(dev).train()
        return GUEState(
            gen=gen,
            learner=learner,
            G=G,
            learner_opt=torch.optim.SGD(learner.parameters(), lr=o.learner_lr),
            G_opt=torch.optim.SGD(G.parameters(), lr=o.attacker_lr),
            images=resident(train_set.images, dev),
            labels=train_set.labels,
        )

    def rounds(self, state: GUEState) -> int:
        return self.options.epochs

    def describe(self, state: GUEState) -> str:
        last = state.history[-1]
        return f"f {last['f']:.3f}, g {last['g']:.3f}"

    def step(self, state: GUEState) -> dict[str, Any] | None:
        n = len(state.images)
        bs = min(self.options.batch_size, n)
        order = torch.randperm(n, generator=state.gen)
        sums = {"f": 0.0, "g": 0.0, "lambda": 0.0}
        steps = 0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            x, y = to_float(state.images[idx], self.device), state.labels[idx].to(self.device)
            f, g, lam = self._bome_step(state.G, state.learner, state.G_opt, state.learner_opt, x, y)
            sums["f"], sums["g"], sums["lambda"] = sums["f"] + f, sums["g"] + g, sums["lambda"] + lam
            steps += 1
        return {"epoch": state.round + 1, **{k: v / steps for k, v in sums.items()}}

    def finish(self, state: GUEState) -> Perturbation:
        G, images = state.G.eval(), state.images
        bs = min(self.options.batch_size, len(images))
        delta = torch.empty(images.shape, dtype=torch.float32)
        with torch.no_grad():
            for i in range(0, len(images), bs):
                x = to_float(images[i : i + bs], self.device)
                delta[i : i + bs] = ((x + self.eps * G(x)).clamp(0, 1) - x).cpu()
        return self.perturbation(delta, "samplewise", history=state.history)

    def _poison_loss(self, G: UNet, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """g: the learner's cross-entropy on the perturbed images."""
        return F.cross_entropy(model((x + self.eps * G(x)).clamp(0, 1)), y)

    def _bome_step(
        self,
        G: UNet,
        learner: nn.Module,
        G_opt: torch.optim.Optimizer,
        learner_opt: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> tuple[float, float, float]:
        o = self.options
        inner = copy.deepcopy(learner)  # theta_T: the learner a few steps nearer its optimum
        inner_opt = torch.optim.Adam(inner.parameters(), lr=o.inner_lr)
        with torch.no_grad():  # G does not move during the inner steps: its images are made once
            poisoned = (x + self.eps * G(x)).clamp(0, 1)
        for _ in range(o.inner_steps):
            inner_opt.zero_grad(set_to_none=True)
            F.cross_entropy(inner(poisoned), y).backward()
            inner_opt.step()
        theta, a = list(learner.parameters()), list(G.parameters())
        f = wrong_class_bound(learner(x), y)
        grad_f = torch.autograd.grad(f, theta)
        g = self._poison_loss(G, learner, x, y)
        q = g - self._poison_loss(G, inner, x, y)
        grad_q_a = torch.autograd.grad(q, a, retain_graph=True)
        grad_q_theta = torch.autograd.grad(g, theta)  # theta_T is held fixed: only g depends on theta
        norm_q = reduce(operator.add, [(t**2).sum() for t in (*grad_q_theta, *grad_q_a)])  # summed in order
        inner_product = reduce(operator.add, [(u * v).sum() for u, v in zip(grad_f, grad_q_theta)])
        lam = F.relu((o.eta * norm_q - inner_product) / (norm_q + 1e-8))
        G_opt.zero_grad(set_to_none=True)
        for p, grad in zip(a, grad_q_a):
            p.grad = lam * grad
        G_opt.step()
        learner_opt.zero_grad(set_to_none=True)
        for p, gf, gq in zip(theta, grad_f, grad_q_theta):
            p.grad = gf + lam * gq
        learner_opt.step()
        return f.item(), g.item(), float(lam)
