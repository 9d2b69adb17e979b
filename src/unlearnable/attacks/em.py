"""Error-minimizing noise (EM), Huang et al., "Unlearnable Examples", ICLR 2021.

Min-min bi-level optimization: alternate a few SGD steps of a surrogate on perturbed data with
signed-gradient steps that DEcrease the surrogate's loss on x + delta, until the surrogate
fits the perturbed training set (accuracy above `stop_acc`) or `max_rounds` is reached.
  class-wise   each step moves delta[c] by the mean of the per-image signed steps of class c;
               one step per batch over a 20% share of the data per round (the paper's setting);
  sample-wise  every image has its own delta, indexed by its position in the training set;
               20 PGD steps per batch over the whole set per round.
EM* (the BAIT paper's baseline) is the same method with an ImageNet-pretrained surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import crop_flip
from ..data.dataset import ImageDataset
from ..distributed import local_generator, merge_rows_, rank_and_world, sum_all
from ..options import option
from ..perturbation import Perturbation, quantize
from ..training import accuracy, resident, to_float
from .base import FitState, IterativeAttack, build_surrogate, rebuilt, register_attack
from .common import class_means, perturbed_batch, sgd_step, surrogate_optimizer

# Per-kind values of the options left at None: Huang et al.'s settings, and the cpu preset's
# (a sample-wise round sweeps every image, so the CPU does fewer steps and rounds).
KIND_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("paper", "classwise"): {"attack_steps": 1, "attack_fraction": 0.2, "augment": True, "max_rounds": 100},
    ("paper", "samplewise"): {"attack_steps": 20, "attack_fraction": 1.0, "augment": False, "max_rounds": 100},
    ("cpu", "classwise"): {"attack_steps": 1, "attack_fraction": 0.2, "augment": True, "max_rounds": 30},
    ("cpu", "samplewise"): {"attack_steps": 10, "attack_fraction": 1.0, "augment": False, "max_rounds": 15},
}


@dataclass(kw_only=True)
class EMState(FitState):
    model: nn.Module
    opt: torch.optim.Optimizer
    delta: torch.Tensor  # (K or N, C, H, W)
    train_set: ImageDataset = rebuilt()
    images: torch.Tensor = rebuilt()  # the training images, where the fit runs
    check: torch.Tensor = rebuilt()  # the images whose accuracy decides the early stop


@dataclass(frozen=True)
class EMOptions:
    kind: Literal["classwise", "samplewise"] = "classwise"
    surrogate: str = "resnet18"
    surrogate_init: Literal["imagenet", "scratch"] = "scratch"
    surrogate_lr: float = option(0.1, positive=True)
    batch_size: int = option(128, positive=True)
    train_steps: int = option(10, positive=True)  # surrogate steps per round
    attack_fraction: float | None = option(None, positive=True, high=1)  # share swept per round (0.2 / 1.0)
    attack_steps: int | None = option(None, positive=True)  # signed steps per batch (classwise 1, samplewise 20)
    step_size: float = option(0.8 / 255, positive=True)
    stop_acc: float = option(0.99, positive=True)
    max_rounds: int | None = option(None, positive=True)  # rounds of (train_steps + one sweep): paper 100, cpu 30 / 15
    augment: bool | None = None  # crop/flip while generating (classwise True; samplewise False, as in the paper's code)


@register_attack
class EM(IterativeAttack[EMState]):
    name = "em"
    summary = "error-minimizing noise (Huang et al. 2021): min-min over surrogate and delta; classwise or samplewise"
    Options = EMOptions
    options: EMOptions
    PRESETS = {"paper": EMOptions(), "cpu": EMOptions(surrogate="small_cnn", batch_size=256)}

    def validate(self) -> None:
        resolved = KIND_DEFAULTS[self.preset, self.options.kind]  # the per-kind values of the None options
        self.options = replace(self.options, **{k: v for k, v in resolved.items() if getattr(self.options, k) is None})

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> EMState:
        o = self.options
        dev, K = self.device, train_set.num_classes
        model = build_surrogate(o.surrogate, o.surrogate_init, K).to(dev)
        images = resident(train_set.images, dev)
        n = len(images)
        return EMState(
            gen=gen,
            model=model,
            opt=surrogate_optimizer(model, o.surrogate_lr),
            delta=torch.zeros((K if o.kind == "classwise" else n, *images.shape[1:]), device=dev),
            train_set=train_set,
            images=images,
            check=torch.randperm(n, generator=gen)[:2000],  # drawn before a resume restores the generator
        )

    def per_kind(self) -> tuple[int, float, bool, int]:
        """attack_steps, attack_fraction, augment and max_rounds, each set (validate fills the Nones)."""
        o = self.options
        assert o.attack_steps and o.attack_fraction and o.augment is not None and o.max_rounds
        return o.attack_steps, o.attack_fraction, o.augment, o.max_rounds

    def rounds(self, state: EMState) -> int:
        return self.per_kind()[3]

    def stopped(self, state: EMState) -> bool:
        return bool(state.history) and state.history[-1]["acc"] > self.options.stop_acc

    def describe(self, state: EMState) -> str:
        last = state.history[-1]
        return f"surrogate accuracy {last['acc']:.3f}, loss {last['loss']:.3f}"

    def step(self, state: EMState) -> dict[str, Any] | None:
        o = self.options
        dev, K, gen = self.device, state.train_set.num_classes, state.gen
        images, labels, model, opt = state.images, state.train_set.labels, state.model, state.opt
        n, bs = len(images), min(o.batch_size, len(images))
        classwise = o.kind == "classwise"
        attack_steps, attack_fraction, augment, _ = self.per_kind()

        def rows(
            y: torch.Tensor, idx: torch.Tensor
        ) -> torch.Tensor:  # class-wise noise is indexed by label, sample-wise by image index
            return y if classwise else idx.to(dev)

        for _ in range(o.train_steps):
            idx = torch.randint(0, n, (bs,), generator=gen)
            x, y = to_float(images[idx], dev), labels[idx].to(dev)
            sgd_step(model, opt, perturbed_batch(x, state.delta[rows(y, idx)], augment, gen), y)
        order = torch.randperm(n, generator=gen)[: max(bs, int(attack_fraction * n))]
        # under torchrun each process sweeps its share of every batch (its own augmentation
        # draws); class-wise steps are averaged over all processes' images, sample-wise rows
        # are merged after the sweep; the surrogate steps above are the same everywhere
        rank, world = rank_and_world()
        mine = local_generator(gen, self.seed, state.round)
        mine_rows: list[torch.Tensor] = []
        model.eval()
        loss_sum = 0.0
        delta = state.delta
        for i in range(0, len(order), bs):
            idx = order[i : i + bs][rank::world]
            mine_rows.append(idx)
            x, y = to_float(images[idx], dev), labels[idx].to(dev)
            r = rows(y, idx)
            for _ in range(attack_steps):
                # the gradient w.r.t. each perturbed image gives per-image signed steps
                xp = (x + delta[r]).detach().requires_grad_(True)
                view = xp.clamp(0, 1)
                view = crop_flip(view, max(1, x.shape[-1] // 8), mine) if augment else view
                loss = F.cross_entropy(model(view), y)
                (grad,) = torch.autograd.grad(loss, xp)
                step = -o.step_size * grad.sign()
                if classwise:  # the class means over every process's images
                    step, _ = class_means(step, y, K, across_processes=True)
                    delta = (delta + step).clamp_(-self.eps, self.eps)
                else:  # keep x + delta a valid image as well as within the budget
                    new = (delta[r] + step).clamp_(-self.eps, self.eps)
                    delta[r] = (x + new).clamp_(0, 1) - x
            loss_sum += loss.item() * len(idx)
        if world > 1 and not classwise:  # only this process's rows changed: share them
            changed = torch.cat(mine_rows).to(dev)
            merge_rows_(delta, changed, delta[changed])
        state.delta = delta
        (loss_sum,) = sum_all(loss_sum)
        probe = state.train_set.subset(state.check)
        protected = quantize(probe.images, delta.cpu()[probe.labels if classwise else state.check], self.eps)
        acc = accuracy(model, protected, probe.labels, device=dev)
        return {"round": state.round + 1, "acc": acc, "loss": loss_sum / len(order)}

    def finish(self, state: EMState) -> Perturbation:
        return self.perturbation(
            state.delta,
            self.options.kind,
            history=state.history,
            rounds=len(state.history),
            stopped_early=self.stopped(state),
        )
