"""TUE: Transferable Unlearnable Examples, Ren et al., ICLR 2023.

Sample-wise noise from a self-supervised min-min: a SimCLR encoder (the surrogate's trunk and a
projection head) is trained on the perturbed images, and the noise is moved by signed steps that
lower, for each batch,

    ssl_weight * NT-Xent(two augmented views of x + delta) + csd_weight * CSD(delta, labels)

where CSD, the class-wise separability discriminant, is a Davies-Bouldin index of the noise
vectors themselves: the mean over pairs of classes of (spread_i + spread_j) / |centre_i - centre_j|
(spread: the mean distance of a class's noise to its centre). Lowering it makes the noise
linearly separable by class, which is what transfers to supervised victims.

Settings from the authors' code (renjie3/TUE, SimCLR): eps 8/255, 20 signed steps of 0.8/255 per
batch from a uniform start, CSD weight 0.1, temperature 0.5, a 128-d projection, Adam lr 1e-3;
every epoch alternates `train_steps` (20) encoder batches with a sweep of noise steps over the
whole training set. Their argparse default is ssl_weight 1 (used here); their SimCLR example
command sets it to 0, which leaves CSD alone in the noise's objective (`--set ssl_weight=0`).
Two facts of that code kept: the spread terms of CSD carry no gradient (only the centres'
distances do), and one augmented view per step (EOT size 1). One changed: the noise is added
before augmentation, as everywhere in this toolkit (the reference adds it to the augmented views).
`tue*` starts the encoder from an ImageNet backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import color_jitter, luma, random_flip, random_resized_crop
from ..data.dataset import ImageDataset
from ..models import ImageClassifier
from ..options import option
from ..perturbation import Perturbation
from ..training import resident, to_float
from .base import FitState, IterativeAttack, build_surrogate, rebuilt, register_attack
from .common import class_means


def csd(delta: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class-wise separability discriminant of the noise `delta` (N, ...): a Davies-Bouldin
    index over the classes present, lower when each class's noise is tight and far from the
    others'. The spreads are detached, as in the reference code."""
    flat = delta.flatten(1)
    centres, counts = class_means(flat, labels, num_classes)
    present = counts > 0
    if int(present.sum()) < 2:
        return flat.sum() * 0
    spread_sum = flat.new_zeros(num_classes).index_add(0, labels, (flat - centres[labels]).norm(dim=1))
    spread = (spread_sum / counts.clamp(min=1)).detach()[present]
    c = centres[present]
    dist = torch.cdist(c, c)
    off = ~torch.eye(len(c), dtype=torch.bool, device=c.device)
    pairs = spread[:, None] + spread[None, :]
    return ((pairs[off] + 1e-5) / (dist[off] + 1e-5)).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner among the other 2N - 1 embeddings."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def simclr_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SimCLR's augmentation for a batch: RandomResizedCrop, flip, colour jitter (0.4, 0.4, 0.4,
    0.1) with probability 0.8, grayscale with probability 0.2."""
    v = random_flip(random_resized_crop(x, gen), gen)
    jit = torch.rand(len(x), generator=gen) < 0.8
    v = torch.where(jit.to(x.device)[:, None, None, None], color_jitter(v, 0.4, 0.4, 0.4, 0.1, gen), v)
    grey = torch.rand(len(x), generator=gen) < 0.2
    return torch.where(grey.to(x.device)[:, None, None, None], luma(v).expand_as(v), v)


class SimCLR(nn.Module):
    """An encoder (the surrogate's trunk) and SimCLR's projection head (512 hidden units)."""

    def __init__(self, backbone: ImageClassifier, feature_dim: int):
        super().__init__()
        self.backbone = backbone
        width = backbone.num_features
        self.head = nn.Sequential(
            nn.Linear(width, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(True), nn.Linear(512, feature_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.backbone.forward_features(x))
        return out


@dataclass(kw_only=True)
class TUEState(FitState):
    model: SimCLR
    opt: torch.optim.Optimizer
    delta: torch.Tensor  # (N, C, H, W), where the fit runs
    images: torch.Tensor = rebuilt()
    labels: torch.Tensor = rebuilt()
    num_classes: int = rebuilt(0)


@dataclass(frozen=True)
class TUEOptions:
    surrogate: str = "resnet18"
    surrogate_init: Literal["imagenet", "scratch"] = "scratch"
    epochs: int = option(40, positive=True)
    batch_size: int = option(512, positive=True)
    train_steps: int = option(20, positive=True)  # encoder batches between two sweeps of noise steps
    steps: int = option(20, positive=True)  # signed noise steps per batch of a sweep
    step_size: float = option(0.8 / 255, positive=True)
    csd_weight: float = option(0.1, low=0)
    ssl_weight: float = option(1.0, low=0)
    temperature: float = option(0.5, positive=True)
    feature_dim: int = option(128, positive=True)
    ssl_lr: float = option(1e-3, positive=True)


@register_attack
class TUE(IterativeAttack[TUEState]):
    name = "tue"
    summary = "transferable unlearnable examples (Ren et al. 2023): SimCLR min-min noise made class-separable (CSD)"
    Options = TUEOptions
    options: TUEOptions
    PRESETS = {
        "paper": TUEOptions(),
        "cpu": TUEOptions(surrogate="small_cnn", epochs=10, batch_size=256, steps=10),
    }
    PRETRAINED = {"ssl_lr": 1e-4}  # tue*: the pretrained encoder fine-tunes, 10x slower

    def validate(self) -> None:
        o = self.options
        if o.csd_weight < 0 or o.ssl_weight < 0 or o.csd_weight + o.ssl_weight == 0:
            raise ValueError("tue: csd_weight and ssl_weight must be >= 0 and not both 0")

    def sweeps(self, n: int) -> int:
        batches = -(-n // min(self.options.batch_size, n))
        return -(-batches // self.options.train_steps)

    def passes(self, n: int) -> float:
        o = self.options
        views = 2 if o.ssl_weight > 0 else 0
        return o.epochs * (self.sweeps(n) * n * o.steps * views + 2 * n)

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> TUEState:
        o = self.options
        dev = self.device
        model = SimCLR(
            build_surrogate(o.surrogate, o.surrogate_init, train_set.num_classes),
            o.feature_dim,
        )
        model = model.to(dev)
        images = resident(train_set.images, dev)
        x_all = images.float().div(255)  # the reference's random start, kept inside [0, 1]
        delta = (torch.rand(images.shape, generator=gen).to(dev) * 2 - 1) * self.eps
        return TUEState(
            gen=gen,
            model=model,
            opt=torch.optim.Adam(model.parameters(), lr=o.ssl_lr, weight_decay=1e-6),
            delta=(x_all + delta).clamp(0, 1) - x_all,
            images=images,
            labels=train_set.labels,
            num_classes=train_set.num_classes,
        )

    def rounds(self, state: TUEState) -> int:
        return self.options.epochs

    def describe(self, state: TUEState) -> str:
        return f"noise loss {state.history[-1]['noise_loss']:.3f}"

    def step(self, state: TUEState) -> dict[str, Any] | None:
        o = self.options
        dev, gen, model, opt = self.device, state.gen, state.model, state.opt
        images, delta = state.images, state.delta
        n = len(images)
        bs = min(o.batch_size, n)
        order = torch.randperm(n, generator=gen)
        batches = [order[i : i + bs] for i in range(0, n, bs)]
        ssl_sum = noise_sum = 0.0
        for s in range(0, len(batches), o.train_steps):
            if o.ssl_weight > 0:  # the encoder learns the perturbed images
                model.train()
                for idx in batches[s : s + o.train_steps]:
                    xp = (to_float(images[idx], dev) + delta[idx]).clamp(0, 1)
                    loss = nt_xent(model(simclr_view(xp, gen)), model(simclr_view(xp, gen)), o.temperature)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    ssl_sum += loss.item()
            noise_sum += self._sweep(model, images, state.labels, delta, bs, state.num_classes, gen)
        return {"epoch": state.round + 1, "ssl_loss": ssl_sum / len(batches), "noise_loss": noise_sum / self.sweeps(n)}

    def finish(self, state: TUEState) -> Perturbation:
        return self.perturbation(state.delta.cpu(), "samplewise", history=state.history)

    def _sweep(
        self,
        model: SimCLR,
        images: torch.Tensor,
        labels: torch.Tensor,
        delta: torch.Tensor,
        bs: int,
        K: int,
        gen: torch.Generator,
    ) -> float:
        """Signed steps on every image's noise, batch by batch in a new random order; returns the
        objective at the batches' last steps, averaged. The encoder stays in training mode (batch statistics), as in the
        reference."""
        o = self.options
        for p in model.parameters():
            p.requires_grad_(False)
        n, dev = len(images), delta.device
        total, count = 0.0, 0
        for idx in torch.randperm(n, generator=gen).split(bs):
            x, y = to_float(images[idx], dev), labels[idx].to(dev)
            d = delta[idx]
            for _ in range(o.steps):
                d = d.detach().requires_grad_(True)
                loss = o.csd_weight * csd(d, y, K)
                if o.ssl_weight > 0:
                    xp = (x + d).clamp(0, 1)
                    z1, z2 = model(simclr_view(xp, gen)), model(simclr_view(xp, gen))
                    loss = loss + o.ssl_weight * nt_xent(z1, z2, o.temperature)
                (grad,) = torch.autograd.grad(loss, d)
                d = ((x + d - o.step_size * grad.sign()).clamp(0, 1) - x).clamp(-self.eps, self.eps)
            delta[idx] = d.detach()
            total, count = total + loss.item(), count + 1
        for p in model.parameters():
            p.requires_grad_(True)
        return total / max(1, count)
