"""Linearly separable synthetic perturbations (LSP), Yu et al., "Availability Attacks Create
Shortcuts", KDD 2022.

No model at all: each class gets a Gaussian in a low-dimensional patch space (one value per
colour channel of each `patch` x `patch` block), with its mean on a far-apart hypercube vertex
and its own random covariance, so the classes are linearly separable by construction. Every
image draws its own sample from its class's Gaussian, upsampled to constant-colour patches and
scaled to a fixed L2 norm. Sample-wise storage (one delta per image), class-conditional content.
The default budget, L2 = sqrt(3 * 32 * 32) * 6/255 = 1.30, is the paper's "eps 6" at 32 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.dataset import ImageDataset
from ..options import option
from ..perturbation import Perturbation
from .base import Attack, register_attack, seed_everything


def lsp_codes(labels: torch.Tensor, num_classes: int, dim: int, class_sep: float, gen: torch.Generator) -> torch.Tensor:
    """One `dim`-vector per label: class c draws z @ A_c + m_c with z ~ N(0, I), A_c ~ U[-1, 1]
    and m_c a random vertex of the hypercube [-class_sep, class_sep]^dim (distinct per class)."""
    means = torch.empty(0, dim)
    while len(means) < num_classes:  # distinct vertices, so no two classes share a mean
        cand = (torch.randint(0, 2, (1, dim), generator=gen) * 2 - 1).float() * class_sep
        if not (means == cand).all(1).any():
            means = torch.cat([means, cand])
    mix = torch.rand((num_classes, dim, dim), generator=gen) * 2 - 1
    z = torch.randn((len(labels), dim), generator=gen)
    return torch.bmm(z[:, None, :], mix[labels]).squeeze(1) + means[labels]


@dataclass(frozen=True)
class LSPOptions:
    patch: int = option(8, positive=True)  # side of the constant patches, in pixels
    class_sep: float = option(10.0, positive=True)


@register_attack
class LSP(Attack):
    name = "lsp"
    summary = "linearly separable synthetic patches (Yu et al. 2022): class-wise Gaussians, per-image samples, no model"
    Options = LSPOptions
    options: LSPOptions

    norm = "l2"
    default_eps = math.sqrt(3 * 32 * 32) * 6 / 255

    def fit(self, train_set: ImageDataset) -> Perturbation:
        o = self.options
        gen = seed_everything(self.seed)
        n, c, h, w = train_set.images.shape
        if not 1 <= o.patch <= min(h, w):
            raise ValueError(f"lsp: patch must be between 1 and the image size {min(h, w)}, got {o.patch}")
        gh, gw = math.ceil(h / o.patch), math.ceil(w / o.patch)
        codes = lsp_codes(train_set.labels, train_set.num_classes, c * gh * gw, o.class_sep, gen)
        grid = codes.view(n, c, gh, gw)
        delta = F.interpolate(grid, scale_factor=o.patch, mode="nearest")[:, :, :h, :w]
        delta = delta * (self.eps / delta.flatten(1).norm(dim=1).clamp(min=1e-12)).view(n, 1, 1, 1)
        return self.perturbation(delta, "samplewise")
