"""Pieces shared by the optimization-based attacks: class means and surrogate steps."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import crop_flip
from ..distributed import all_reduce_sum_
from ..perturbation import add_float


def class_means(
    values: torch.Tensor, labels: torch.Tensor, num_classes: int, across_processes: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean of `values` (N, ...) by `labels` with one index_add; also the counts.

    Classes absent from the batch get a zero mean and count 0. With `across_processes`, sums and
    counts are summed over all torchrun processes first (no gradient flows through them).
    """
    sums = values.new_zeros((num_classes, *values.shape[1:])).index_add(0, labels, values)
    counts = torch.bincount(labels, minlength=num_classes).to(values.dtype)
    if across_processes:
        all_reduce_sum_(sums)
        all_reduce_sum_(counts)
    shape = (num_classes,) + (1,) * (values.dim() - 1)
    return sums / counts.clamp(min=1).view(shape), counts


def perturbed_batch(
    x: torch.Tensor,
    delta: torch.Tensor,
    augment: bool,
    gen: torch.Generator | None,
    transform: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Noise first, then what the trainer does to its stored images (`transform(x, gen)`, e.g. a
    random EOT transform), then the victim's augmentation: the order every victim sees."""
    xp = add_float(x, delta)
    if transform is not None:
        xp = transform(xp, gen)
    return crop_flip(xp, max(1, x.shape[-1] // 8), gen) if augment else xp


def surrogate_optimizer(
    model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4
) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def sgd_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float | None = 5.0
) -> tuple[float, float]:
    """One real training step of a surrogate; returns (loss, accuracy) of the batch."""
    model.train()
    out = model(x)
    loss = F.cross_entropy(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item(), (out.argmax(1) == y).float().mean().item()
