"""Error-minimizing noise (EM), Huang et al., "Unlearnable Examples", ICLR 2021.

Min-min bi-level optimization: alternate a few SGD steps of a surrogate on perturbed data with
signed-gradient steps that DEcrease the surrogate's loss on x + delta, until the surrogate
fits the perturbed training set (accuracy above `stop_acc`) or `max_rounds` is reached.
Class-wise: each step moves delta[c] by the mean of the per-image signed steps of class c.
EM* (the BAIT paper's baseline) is the same method with an ImageNet-pretrained surrogate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.augment import crop_flip
from ..perturbation import quantize
from ..training import accuracy, to_float
from .base import Attack, build_surrogate, register_attack, seed_everything
from .common import AttackCheckpoint, class_means, perturbed_batch, sgd_step, surrogate_optimizer


@register_attack
class EM(Attack):
    name = "em"
    summary = "error-minimizing noise (Huang et al. 2021): min-min over surrogate and class-wise delta"
    DEFAULTS = {
        "surrogate": "resnet18",
        "surrogate_init": "scratch",
        "surrogate_lr": 0.1,
        "batch_size": 128,
        "train_steps": 10,  # surrogate steps per round
        "attack_fraction": 0.2,  # share of the training set swept per round
        "attack_steps": 1,  # signed steps per batch
        "step_size": 0.8 / 255,
        "stop_acc": 0.99,
        "max_rounds": 100,
        "augment": True,
    }
    PRESETS = {
        "paper": {},
        "cpu": {"surrogate": "small_cnn", "batch_size": 256, "max_rounds": 30},
    }

    def fit(self, train_set):
        gen = seed_everything(self.seed)
        dev, K = self.device, train_set.num_classes
        model = build_surrogate(self.surrogate, self.surrogate_init, K).to(dev)
        opt = surrogate_optimizer(model, self.surrogate_lr)
        images, labels = train_set.images, train_set.labels
        n, bs = len(images), min(self.batch_size, len(images))
        delta = torch.zeros((K, *images.shape[1:]), device=dev)
        ckpt, start, history = AttackCheckpoint(self.checkpoint), 0, []
        if (state := ckpt.load()) is not None:
            model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
            delta, start, history = state["delta"].to(dev), state["round"], state["history"]
            gen.set_state(state["generator"])
        check = torch.randperm(n, generator=gen)[:2000]
        bar = tqdm(range(start, self.max_rounds), desc="em", disable=not self.progress, unit="round")
        stop_acc = history[-1]["acc"] if history else 0.0
        for rnd in bar:
            if stop_acc > self.stop_acc:
                break
            for _ in range(self.train_steps):
                idx = torch.randint(0, n, (bs,), generator=gen)
                x, y = to_float(images[idx], dev), labels[idx].to(dev)
                sgd_step(model, opt, perturbed_batch(x, delta[y], self.augment, gen), y)
            order = torch.randperm(n, generator=gen)[: max(bs, int(self.attack_fraction * n))]
            model.eval()
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                x, y = to_float(images[idx], dev), labels[idx].to(dev)
                for _ in range(self.attack_steps):
                    # the gradient w.r.t. each perturbed image gives per-image signed steps
                    xp = (x + delta[y]).detach().requires_grad_(True)
                    view = xp.clamp(0, 1)
                    view = crop_flip(view, max(1, x.shape[-1] // 8), gen) if self.augment else view
                    loss = F.cross_entropy(model(view), y)
                    (grad,) = torch.autograd.grad(loss, xp)
                    step, _ = class_means(-self.step_size * grad.sign(), y, K)
                    delta = (delta + step).clamp_(-self.eps, self.eps)
            probe = train_set.subset(check)
            protected = quantize(probe.images, delta.cpu()[probe.labels], self.eps)
            stop_acc = accuracy(model, protected, probe.labels, device=dev)
            history.append({"round": rnd + 1, "acc": stop_acc, "loss": loss.item()})
            bar.set_postfix(acc=f"{stop_acc:.3f}", loss=f"{loss.item():.3f}")
            ckpt.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "delta": delta.cpu(),
                       "round": rnd + 1, "history": history, "generator": gen.get_state()})
        ckpt.remove()
        return self.perturbation(delta, "classwise", history=history, rounds=len(history))
