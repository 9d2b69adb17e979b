"""Pieces shared by the optimization-based attacks: class means, surrogate steps, checkpoints."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import crop_flip
from ..distributed import all_reduce_sum_, barrier, is_main
from ..perturbation import add_float
from ..training import save_checkpoint


def class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int,
                across_processes: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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


def perturbed_batch(x: torch.Tensor, delta: torch.Tensor, augment: bool, gen: torch.Generator | None) -> torch.Tensor:
    """Noise first, then the victim's augmentation: the order every victim sees."""
    xp = add_float(x, delta)
    return crop_flip(xp, max(1, x.shape[-1] // 8), gen) if augment else xp


def surrogate_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             grad_clip: float | None = 5.0) -> tuple[float, float]:
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


class AttackCheckpoint:
    """Atomic per-round checkpoint of an attack's whole state, loaded with weights_only=True.
    It also carries the seconds spent before it was saved, so that a resumed run reports the
    time of the whole attack (`resumed_seconds`: the part done before this process started)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.resumed_seconds = 0.0
        self._t0 = time.perf_counter()

    def load(self) -> dict | None:
        if self.path and self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            torch.set_rng_state(state.pop("torch_rng"))
            self.resumed_seconds = float(state.pop("elapsed", 0.0))
            return state
        return None

    def save(self, state: dict) -> None:
        if self.path and is_main():  # under torchrun the state is identical everywhere; rank 0 writes it
            elapsed = self.resumed_seconds + time.perf_counter() - self._t0
            save_checkpoint(self.path, {**state, "torch_rng": torch.get_rng_state(), "elapsed": elapsed})

    def remove(self) -> None:
        barrier()  # no process may still be reading it
        if self.path and self.path.exists() and is_main():
            self.path.unlink()
