"""The class-wise pattern BAIT learns, in its two parameterizations, and the shaping its hardening
options add. A pattern is a module whose forward gives the differentiable table of class deltas
(K, C, H, W) a batch is perturbed with, so that torchrun can average its gradient with DDP.

  DirectPattern     delta^c = eps * tanh(w_c), w optimized directly, optionally on a coarser grid
                    drawn as constant patches or as a periodic cubic B-spline (`smooth`);
  GeneratorPattern  delta^c = eps * mean over the batch's class-c images of G(x), G the
                    AdvGAN-style network (the authors' method).

  luma          a share of the budget in a grey pattern, the same in the three channels (what a
                grey copy keeps);
  random_phase  each image carries its class's pattern shifted by its own circular offset, the
                pattern's mean removed (`centred`): no single pixel direction per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import luma as luma_of
from ..distributed import all_reduce_sum_, rank_and_world
from ..look import periodic_spline
from ..training import to_float
from .common import class_means
from .generator import PerturbationGenerator


def phases(n: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(h, (n,), generator=gen), torch.randint(w, (n,), generator=gen)


def shifted(delta: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image's delta circularly shifted by its own (dy, dx) pixels: two gathers, each target
    taking exactly one source value, so the gradient is a permutation (no summation order)."""
    n, c, h, w = delta.shape
    rows = (torch.arange(h, device=delta.device)[None] - dy.to(delta.device)[:, None]) % h  # (n, h)
    cols = (torch.arange(w, device=delta.device)[None] - dx.to(delta.device)[:, None]) % w
    out = delta.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def centred(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Each class's pattern minus its mean per channel, scaled (not clipped) into the budget, so the
    mean stays 0: what circular shifts average to is that mean, the one part a linear model could
    still find."""
    c = delta - delta.mean((2, 3), keepdim=True)
    peak = c.abs().amax((1, 2, 3), keepdim=True).clamp(min=1e-12)
    return c * (eps / peak).clamp(max=1)


def mix_luma(u: torch.Tensor, luma: float) -> torch.Tensor:
    """A generator's output with a share `luma` of its budget in its own luma, replicated to every
    channel: |result| <= 1 still, and a grey copy keeps at least that share."""
    return u if luma <= 0 else (1 - luma) * u + luma * luma_of(u).expand_as(u)


def direct_table(
    w: torch.Tensor,
    shape: Sequence[int],
    eps: float,
    smooth: bool = False,
    luma: float = 0.0,
    random_phase: bool = False,
) -> torch.Tensor:
    """eps * tanh(w) at the pattern's size `shape` (K, C, H, W): nearest upsampling (constant
    patches) from a coarser grid, or with `smooth` a periodic cubic B-spline of tanh(w), whose
    weights are non-negative and sum to 1, so the budget holds; with `luma`, w's last channel is
    the grey pattern."""
    if smooth and tuple(w.shape[2:]) != tuple(shape[2:]):
        ay = periodic_spline(shape[2], w.shape[2]).to(w.device)
        ax = periodic_spline(shape[3], w.shape[3]).to(w.device)
        u = torch.einsum("hy,kcyx,wx->kchw", ay, torch.tanh(w), ax)
    else:
        if tuple(w.shape[2:]) != tuple(shape[2:]):
            w = F.interpolate(w, size=tuple(shape[2:]), mode="nearest")
        u = torch.tanh(w)
    if luma > 0:
        c = shape[1]
        u = (1 - luma) * u[:, :c] + luma * u[:, c:]
    return centred(eps * u, eps) if random_phase else eps * u


class DirectPattern(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int, int],
        eps: float,
        size: int | None,
        smooth: bool,
        luma: float,
        random_phase: bool,
    ) -> None:
        super().__init__()
        k, c, h, w = shape
        self.shape, self.eps, self.smooth, self.luma, self.random_phase = shape, eps, smooth, luma, random_phase
        self.w = nn.Parameter(torch.zeros(k, c + (1 if luma > 0 else 0), size or h, size or w))

    def forward(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, last: torch.Tensor | None = None
    ) -> torch.Tensor:
        return direct_table(self.w, self.shape, self.eps, self.smooth, self.luma, self.random_phase)

    @torch.no_grad()
    def latest(self, table: torch.Tensor, x: torch.Tensor, y: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The table after an optimizer step, for the inner steps."""
        return self.forward().detach()

    @torch.no_grad()
    def final(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
        return self.forward().detach()


class GeneratorPattern(nn.Module):
    def __init__(
        self, shape: tuple[int, int, int, int], eps: float, width: float, luma: float, random_phase: bool
    ) -> None:
        super().__init__()
        self.shape, self.eps, self.luma, self.random_phase = shape, eps, luma, random_phase
        self.net = PerturbationGenerator(width)

    def _centred(self, delta: torch.Tensor) -> torch.Tensor:
        return centred(delta, self.eps) if self.random_phase else delta

    def forward(self, x: torch.Tensor, y: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The class means of this batch's G(x); a class absent from it keeps its `last` value."""
        k = self.shape[0]
        means, counts = class_means(self.eps * mix_luma(self.net(x), self.luma), y, k)
        return torch.where((counts > 0).view(k, 1, 1, 1), self._centred(means), last)

    @torch.no_grad()
    def latest(self, table: torch.Tensor, x: torch.Tensor, y: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """This batch's table, the same in every process: under torchrun the class means over the
        whole (all processes') batch; classes absent keep their last value."""
        if rank_and_world()[1] == 1:
            return table.detach()
        k = self.shape[0]
        counts = torch.bincount(y, minlength=k).to(table.dtype)
        sums = all_reduce_sum_(table.detach() * counts.view(k, 1, 1, 1))
        counts = all_reduce_sum_(counts)
        return torch.where((counts > 0).view(k, 1, 1, 1), sums / counts.clamp(min=1).view(k, 1, 1, 1), last)

    @torch.no_grad()
    def final(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Class means over ALL training images, with the generator in the same (training-mode)
        normalization it was optimized in, instead of switching to eval mode at export."""
        dev = next(self.parameters()).device
        k = self.shape[0]
        sums = torch.zeros(self.shape, device=dev)
        rank, world = rank_and_world()
        for i in range(rank * batch_size, len(images), batch_size * world):  # under torchrun: every world-th batch
            x = to_float(images[i : i + batch_size], dev)
            sums.index_add_(0, labels[i : i + batch_size].to(dev), self.eps * mix_luma(self.net(x).float(), self.luma))
        all_reduce_sum_(sums)
        counts = torch.bincount(labels, minlength=k).clamp(min=1).to(dev).view(k, 1, 1, 1)
        return self._centred(sums / counts)
