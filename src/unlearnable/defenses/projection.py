"""Orthogonal projection (Sandoval-Segura et al., "What Can We Learn from Unlearnable Datasets?",
NeurIPS 2023).

Class-wise perturbations are, by construction, linearly separable: a linear classifier on raw
pixels finds them. Fit one on the protected training images, then remove the directions it
uses (the span of its weight rows) from every training image before training. What the
class-wise noise added lies mostly in that span; most of the image content does not. The
projected images are not clipped to [0, 1].

The clean test images stay as they are by default, as in the reference's runs. The trainer owns
its inference, though, and a network that never saw the removed directions meets them again in
every test image; `project_test=True` removes them from the test images too (the reference's
training script declares a `--project-test` flag but does not use it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.dataset import ImageDataset
from ..options import option
from .base import Defense, register_defense


def fit_linear(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
    progress: bool = False,
) -> torch.Tensor:
    """Multinomial logistic regression without bias on flattened [0, 1] pixels, plain SGD with the
    learning rate divided by 10 at 50% and 75% of the epochs; returns the weights (K, D).

    The weights start where the reference's ``nn.Linear`` starts, uniform in +-1/sqrt(D), not at
    zero. This matters: from zero, every weight row stays in the span of the training images, and
    their smooth content dominates it. On a 5,000-image clean CIFAR-10 subset, the span of
    zero-started rows holds 85% of a test image's energy (projecting it out leaves little of any
    image); the span of rows started as in the reference holds 6%."""
    x = images.flatten(1).float() / 255
    bound = x.shape[1] ** -0.5
    w: torch.Tensor = ((torch.rand((num_classes, x.shape[1]), generator=gen) * 2 - 1) * bound).requires_grad_(True)
    opt = torch.optim.SGD([w], lr=lr)
    for epoch in tqdm(range(epochs), desc="projection: fit linear model", disable=not progress, leave=False):
        opt.param_groups[0]["lr"] = lr * 0.1 ** ((epoch >= epochs // 2) + (epoch >= 3 * epochs // 4))
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss: torch.Tensor = F.cross_entropy(x[idx] @ w.T, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return w.detach()


def orthogonal_projector(weights: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis Q (D, r) of the span of the weight rows; images are projected by x - Q Q^T x."""
    rows = weights.double() / weights.double().norm(dim=1, keepdim=True).clamp(min=1e-12)
    q: torch.Tensor
    r: torch.Tensor
    q, r = torch.linalg.qr(rows.T)
    keep = r.diagonal().abs() > 1e-8 * r.diagonal().abs().max()  # drop dependent rows
    return q[:, keep].float()


def project_out(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove the basis directions from a float batch (N, C, H, W)."""
    flat = x.flatten(1)
    return (flat - (flat @ basis) @ basis.T).view_as(x)


@dataclass(frozen=True)
class ProjectionOptions:
    epochs: int = option(20, positive=True)
    lr: float = option(0.1, positive=True)
    batch_size: int = option(1024, positive=True)
    seed: int = option(0, low=0)
    project_test: bool = False  # project the test images too


@register_defense
class OrthogonalProjection(Defense):
    name = "projection"
    summary = "orthogonal projection (Sandoval-Segura et al. 2023): remove a pixel-space linear model's directions"
    Options = ProjectionOptions

    def prepare(
        self, train_set: ImageDataset, test_set: ImageDataset | None
    ) -> tuple[ImageDataset, ImageDataset | None]:
        gen = torch.Generator().manual_seed(self.options.seed)
        w = fit_linear(
            train_set.images,
            train_set.labels,
            train_set.num_classes,
            epochs=self.options.epochs,
            lr=self.options.lr,
            batch_size=self.options.batch_size,
            gen=gen,
        )
        self.basis = orthogonal_projector(w)
        self.linear_train_acc = float(
            ((train_set.images.flatten(1).float() / 255 @ w.T).argmax(1) == train_set.labels).float().mean()
        )
        return train_set, test_set

    def pre_augment(self, x: torch.Tensor) -> torch.Tensor:
        return project_out(x, self.basis.to(x.device))

    def pre_test(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_augment(x) if self.options.project_test else x
