"""Adversarial training (Madry et al., ICLR 2018): train on the worst-case Linf perturbation of
every batch within `eps`, found by PGD. Protections whose noise is smaller than the adversary's
budget can be undone this way (REM is built to survive it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..options import option
from .base import Defense, register_defense


def pgd_linf(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step_size: float, gen: torch.Generator
) -> torch.Tensor:
    """Untargeted PGD from a uniform random start; returns x + delta in [0, 1], |delta| <= eps."""
    model = getattr(model, "module", model)  # attack the plain replica, not its DistributedDataParallel wrapper
    modes = [m.training for m in model.modules()]
    model.eval()  # the attack sees fixed BatchNorm statistics, as in the usual PGD-AT recipes
    d = ((torch.rand(x.shape, generator=gen) * 2 - 1) * eps).to(x.device)
    d = (x + d).clamp(0, 1) - x
    for _ in range(steps):
        d.requires_grad_(True)
        loss = F.cross_entropy(model(x + d), y)
        (g,) = torch.autograd.grad(loss, d)
        d = (d.detach() + step_size * g.sign()).clamp(-eps, eps)
        d = (x + d).clamp(0, 1) - x
    for m, mode in zip(model.modules(), modes):
        m.training = mode
    return (x + d).detach()


@dataclass(frozen=True)
class PGDOptions:
    eps: float = option(8 / 255, positive=True, high=1)
    steps: int = option(10, positive=True)
    step_size: float = option(2 / 255, positive=True)


@register_defense
class AdversarialTraining(Defense):
    name = "pgd_at"
    summary = "PGD adversarial training (Madry et al. 2018): train on Linf-PGD examples (8/255, 10 steps)"
    Options = PGDOptions

    def batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return pgd_linf(model, x, y, self.options.eps, self.options.steps, self.options.step_size, gen), y
