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

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.augment import crop_flip
from ..distributed import local_generator, merge_rows_, rank_and_world, sum_all
from ..perturbation import quantize
from ..training import accuracy, resident, to_float
from .base import Attack, build_surrogate, register_attack, seed_everything
from .common import class_means, perturbed_batch, sgd_step, surrogate_optimizer

# Per-kind values of the options left at None: Huang et al.'s settings, and the cpu preset's
# (a sample-wise round sweeps every image, so the CPU does fewer steps and rounds).
KIND_DEFAULTS = {
    ("paper", "classwise"): {"attack_steps": 1, "attack_fraction": 0.2, "augment": True, "max_rounds": 100},
    ("paper", "samplewise"): {"attack_steps": 20, "attack_fraction": 1.0, "augment": False, "max_rounds": 100},
    ("cpu", "classwise"): {"attack_steps": 1, "attack_fraction": 0.2, "augment": True, "max_rounds": 30},
    ("cpu", "samplewise"): {"attack_steps": 10, "attack_fraction": 1.0, "augment": False, "max_rounds": 15},
}


@register_attack
class EM(Attack):
    name = "em"
    summary = "error-minimizing noise (Huang et al. 2021): min-min over surrogate and delta; classwise or samplewise"
    DEFAULTS = {
        "kind": "classwise",
        "surrogate": "resnet18",
        "surrogate_init": "scratch",
        "surrogate_lr": 0.1,
        "batch_size": 128,
        "train_steps": 10,  # surrogate steps per round
        "attack_fraction": None,  # share of the training set swept per round (classwise 0.2, samplewise 1.0)
        "attack_steps": None,  # signed steps per batch (classwise 1, samplewise 20)
        "step_size": 0.8 / 255,
        "stop_acc": 0.99,
        "max_rounds": None,  # the step cap: rounds of (train_steps + one sweep); paper 100, cpu 30 / 15
        "augment": None,  # crop/flip while generating (classwise True; samplewise False, as in the paper's code)
    }
    PRESETS = {
        "paper": {},
        "cpu": {"surrogate": "small_cnn", "batch_size": 256},
    }

    TYPES = {"attack_fraction": float, "attack_steps": int, "max_rounds": int, "augment": bool}
    POSITIVE = (
        "surrogate_lr",
        "batch_size",
        "train_steps",
        "attack_fraction",
        "attack_steps",
        "step_size",
        "max_rounds",
        "stop_acc",
    )
    CHOICES = {"kind": ("classwise", "samplewise")}

    def validate(self):
        for key, value in KIND_DEFAULTS[self.preset, self.kind].items():  # the per-kind values of None options
            if self.options[key] is None:
                self.options[key] = value
        if not 0 < self.attack_fraction <= 1:
            raise ValueError(f"em: attack_fraction must be in (0, 1], got {self.attack_fraction}")

    def fit(self, train_set):
        gen = seed_everything(self.seed)
        dev, K = self.device, train_set.num_classes
        model = build_surrogate(self.surrogate, self.surrogate_init, K).to(dev)
        opt = surrogate_optimizer(model, self.surrogate_lr)
        images, labels = resident(train_set.images, self.device), train_set.labels
        n, bs = len(images), min(self.batch_size, len(images))
        classwise = self.kind == "classwise"
        delta = torch.zeros((K if classwise else n, *images.shape[1:]), device=dev)

        def rows(y, idx):  # class-wise noise is indexed by label, sample-wise by image index
            return y if classwise else idx.to(dev)

        check = torch.randperm(n, generator=gen)[:2000]  # drawn before a resume restores the generator
        ckpt, start, history = self.open_checkpoint(train_set), 0, []
        if (state := ckpt.load()) is not None:
            model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
            delta, start, history = state["delta"].to(dev), state["round"], state["history"]
            gen.set_state(state["generator"])
        bar = tqdm(
            range(start, self.max_rounds),
            initial=start,
            total=self.max_rounds,
            desc=f"em {self.kind}",
            disable=not self.progress,
            unit="round",
        )
        stop_acc = history[-1]["acc"] if history else 0.0
        for rnd in bar:
            if stop_acc > self.stop_acc:
                break
            for _ in range(self.train_steps):
                idx = torch.randint(0, n, (bs,), generator=gen)
                x, y = to_float(images[idx], dev), labels[idx].to(dev)
                sgd_step(model, opt, perturbed_batch(x, delta[rows(y, idx)], self.augment, gen), y)
            order = torch.randperm(n, generator=gen)[: max(bs, int(self.attack_fraction * n))]
            # under torchrun each process sweeps its share of every batch (its own augmentation
            # draws); class-wise steps are averaged over all processes' images, sample-wise rows
            # are merged after the sweep; the surrogate steps above are the same everywhere
            rank, world = rank_and_world()
            mine = local_generator(gen, self.seed, rnd)
            mine_rows = []
            model.eval()
            loss_sum = 0.0
            for i in range(0, len(order), bs):
                idx = order[i : i + bs][rank::world]
                mine_rows.append(idx)
                x, y = to_float(images[idx], dev), labels[idx].to(dev)
                r = rows(y, idx)
                for _ in range(self.attack_steps):
                    # the gradient w.r.t. each perturbed image gives per-image signed steps
                    xp = (x + delta[r]).detach().requires_grad_(True)
                    view = xp.clamp(0, 1)
                    view = crop_flip(view, max(1, x.shape[-1] // 8), mine) if self.augment else view
                    loss = F.cross_entropy(model(view), y)
                    (grad,) = torch.autograd.grad(loss, xp)
                    step = -self.step_size * grad.sign()
                    if classwise:  # the class means over every process's images
                        step, _ = class_means(step, y, K, across_processes=True)
                        delta = (delta + step).clamp_(-self.eps, self.eps)
                    else:  # keep x + delta a valid image as well as within the budget
                        new = (delta[r] + step).clamp_(-self.eps, self.eps)
                        delta[r] = (x + new).clamp_(0, 1) - x
                loss_sum += loss.item() * len(idx)
            if world > 1 and not classwise:  # only this process's rows changed: share them
                mine_rows = torch.cat(mine_rows).to(dev)
                merge_rows_(delta, mine_rows, delta[mine_rows])
            (loss_sum,) = sum_all(loss_sum)
            probe = train_set.subset(check)
            protected = quantize(probe.images, delta.cpu()[probe.labels if classwise else check], self.eps)
            stop_acc = accuracy(model, protected, probe.labels, device=dev)
            history.append({"round": rnd + 1, "acc": stop_acc, "loss": loss_sum / len(order)})
            bar.set_postfix(acc=f"{stop_acc:.3f}", loss=f"{history[-1]['loss']:.3f}")
            ckpt.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "delta": delta.cpu(),
                    "round": rnd + 1,
                    "history": history,
                    "generator": gen.get_state(),
                }
            )
        return self.perturbation(
            delta, self.kind, history=history, rounds=len(history), stopped_early=bool(stop_acc > self.stop_acc)
        )
