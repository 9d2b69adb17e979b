"""BAIT: Binding Artificial perturbations to Incorrect Targets (Li et al., ICLR 2026).

Bi-level objective over class-wise perturbations delta^c (||delta^c||_inf <= eps):
  inner:  theta' = one SGD step of the surrogate on (x + delta^{y}, y)      (simulates the victim)
  outer:  min_delta CE(f_theta'(x + delta^{t}), t)  for an incorrect target t != y
so that each class's perturbation overrides the image content for a model trained on it,
which is what keeps a pretrained victim from falling back on its prior.

One outer epoch follows the authors' schedule: a look-ahead step on one batch (torch.func,
no model copies), a pass over the training set updating the perturbation towards the targets,
then one real SGD step of the surrogate. Targets follow a three-stage curriculum chosen from
the look-ahead model's logits on clean images: hardest negative, random, least likely.

Two parameterizations:
  generator  delta^c = eps * mean over class-c images of G(x), G the AdvGAN-style network
             (the authors' method; the class means are one index_add per batch);
  direct     delta^c = eps * tanh(w_c), optimized directly (no generator; far cheaper), optionally
             on a coarser grid upsampled to constant patches (`direct_size`).
With `hypergradient=True` the look-ahead step is recomputed inside every batch with delta in
the graph, giving the exact gradient through the inner step (the reference drops it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from ..distributed import all_reduce_sum_, local_generator, rank_and_world, sum_all, wrap_ddp
from ..training import autocast, resident, to_float
from .base import Attack, build_surrogate, register_attack, seed_everything
from .common import class_means, perturbed_batch, sgd_step, surrogate_optimizer
from .generator import PerturbationGenerator

STAGE_NAMES = ("hard", "random", "least")
STAGE_WORDS = (  # the curriculum in plain words, for the progress line
    "pointing each class at the class it is most easily mistaken for",
    "pointing each photo at a random other class",
    "pointing each class at the class it is least like",
)


class DirectDelta(torch.nn.Module):
    """The direct parameterization as a module, so that torchrun can average its gradient with DDP."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self):
        return self.w


def choose_targets(
    stage: int, logits: torch.Tensor | None, y: torch.Tensor, num_classes: int, gen: torch.Generator
) -> torch.Tensor:
    """Incorrect target per sample: 0 hardest negative, 1 uniform random, 2 least likely."""
    if stage == 1:
        shift = torch.randint(1, num_classes, y.shape, generator=gen).to(y.device)
        return (y + shift) % num_classes
    assert logits is not None, "stages 0 and 2 rank the surrogate's logits"
    masked = logits.float().scatter(1, y[:, None], float("-inf") if stage == 0 else float("inf"))
    return masked.argmax(1) if stage == 0 else masked.argmin(1)


def rows_of(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a differentiable class-wise table. index_select's gradient sums each row's
    contributions in a fixed order; advanced indexing's accumulates them from parallel threads on
    CPU, in whatever order they finish, so two runs with the same seed drifted apart."""
    return table.index_select(0, index)


def same_layout(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value` in `like`'s memory layout. Arithmetic returns the default layout, while a model may
    keep its weights channels_last: EfficientNet-Lite0's 5x5 depthwise convolutions run about 3x
    slower on CPU with the same weights in the default layout."""
    if value.stride() == like.stride():
        return value
    return torch.empty_like(like, requires_grad=False).copy_(value)


@register_attack
class BAIT(Attack):
    name = "bait"
    summary = "BAIT (Li et al. 2026): class-wise noise bound to incorrect targets; holds against pretrained victims"
    DEFAULTS = {
        "surrogate": "resnet18_imagenet",
        "surrogate_init": "imagenet",
        "parameterization": "generator",  # generator | direct
        "stages": [30, 30, 30],  # outer epochs of the hard / random / least-likely target stages
        "batch_size": 512,
        "surrogate_lr": 0.1,
        "lookahead_lr": 0.1,
        "lookahead_steps": 1,  # SGD steps of the look-ahead model (the reference takes 1)
        "surrogate_steps": 1,  # real surrogate steps per outer epoch (the reference takes 1)
        "grad_clip": 5.0,
        "generator_lr": 1e-3,
        "generator_width": 1.0,
        "direct_lr": 0.05,
        "direct_size": None,  # optimize the direct delta on a coarser grid (e.g. 8: 4x4-pixel patches at 32 px)
        "hypergradient": False,
        "augment": True,
        "images_per_epoch": None,  # None: the whole training set every outer epoch
        "input_sizes": None,  # e.g. [32, 48, 64]: the surrogate sees each batch resized to one of these
    }
    PRETRAINED = {}  # the surrogate is pretrained already
    PRESETS = {
        "paper": {},
        # CPU: direct class-wise delta on an 8x8 grid (4x4-pixel patches at 32 px), which survives the
        # trainer's crop/flip and a CNN's downsampling; full-resolution noise did not (see README).
        "cpu": {
            "surrogate": "efficientnet_lite0",
            "parameterization": "direct",
            "direct_size": 8,
            "stages": [30, 30, 30],
            "images_per_epoch": 3328,
            "batch_size": 128,
        },
    }

    TYPES = {"direct_size": int, "images_per_epoch": int, "input_sizes": list}
    POSITIVE = (
        "batch_size",
        "surrogate_lr",
        "lookahead_lr",
        "generator_lr",
        "generator_width",
        "direct_lr",
        "direct_size",
        "images_per_epoch",
        "grad_clip",
    )
    CHOICES = {"parameterization": ("generator", "direct")}

    def validate(self):
        st = list(self.stages)
        for key in ("lookahead_steps", "surrogate_steps"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"bait: {key} must be a whole number >= 1, got {v!r}")
        if len(st) != 3 or any(int(s) != s or s < 0 for s in st) or sum(st) < 1:
            raise ValueError(f"bait: stages must be three non-negative epoch counts with a positive sum, got {st}")
        sizes = self.input_sizes
        if sizes is not None and (
            not isinstance(sizes, (list, tuple))
            or not sizes
            or any(not isinstance(s, int) or isinstance(s, bool) or s < 8 for s in sizes)
        ):
            raise ValueError(f"bait: input_sizes must be a non-empty list of image sizes >= 8 (or null), got {sizes!r}")

    def passes(self, n: int) -> float:
        bs = min(self.batch_size, n)
        per = min(n, self.images_per_epoch or n)
        per = per // bs * bs + (per % bs if per % bs >= max(2, bs // 4) else 0)  # the tail batch fit skips
        steps = (self.lookahead_steps + self.surrogate_steps) * bs
        inner = per * (3 * self.lookahead_steps if self.hypergradient else 1)
        st = self.stages
        return sum(st) * (inner + steps) + per * (st[0] + st[2]) / 3  # + the no-grad target logits

    def _pick_size(self, model, gen: torch.Generator):
        """Input diversity: resize the surrogate's input to a size drawn from `input_sizes`, so that
        the perturbation does not depend on the one resolution a victim happens to train at."""
        if self.input_sizes:
            model.input_size = self.input_sizes[int(torch.randint(len(self.input_sizes), (1,), generator=gen))]

    def stage_of(self, epoch: int) -> int:
        bounds = torch.tensor(self.stages).cumsum(0)
        return int((epoch >= bounds).sum().clamp(max=2))

    def fit(self, train_set):
        if train_set.num_classes < 2:
            raise ValueError(
                f"bait binds each class to another class: it needs at least 2 classes, got "
                f"{train_set.num_classes} ({train_set.classes})"
            )
        gen = seed_everything(self.seed)
        dev, K = self.device, train_set.num_classes
        images, labels = resident(train_set.images, self.device), train_set.labels
        n, bs = len(images), min(self.batch_size, len(images))
        per_epoch = min(n, self.images_per_epoch or n)
        # Under torchrun every process takes its share of each batch; the surrogate, the look-ahead
        # and the shared generator `gen` stay identical everywhere, the perturbation's gradient is
        # averaged by DDP, and each process augments its own images with its own generator.
        rank, world = rank_and_world()
        model = build_surrogate(self.surrogate, self.surrogate_init, K).to(dev)
        opt = surrogate_optimizer(model, self.surrogate_lr)
        shape = (K, *images.shape[1:])
        if self.parameterization == "generator":
            net = PerturbationGenerator(self.generator_width).to(dev)
            params = list(net.parameters())
            lr = self.generator_lr
            gnet = wrap_ddp(net)
        else:
            net = None
            grid = (K, shape[1], self.direct_size or shape[2], self.direct_size or shape[3])
            w = torch.zeros(grid, device=dev, requires_grad=True)
            holder = None
            if world > 1:
                holder = wrap_ddp(DirectDelta(w.detach()))
                w = holder.module.w
            params, lr = [w], self.direct_lr
        gopt = torch.optim.Adam(params, lr=lr)
        buffer = torch.zeros(shape, device=dev)  # latest class-wise delta, used for the inner steps

        def candidates(x, y):
            """Differentiable class-wise delta (K, C, H, W) from this batch."""
            if net is None:
                return self.direct_delta(w if holder is None else holder(), shape)
            means, counts = class_means(self.eps * gnet(x), y, K)
            present = (counts > 0).view(K, 1, 1, 1)
            return torch.where(present, means, buffer)

        def synced_buffer(cand, y):
            """The latest class-wise delta, the same in every process: the generator's class
            means over the whole (all processes') batch; classes absent keep their last value."""
            if net is None or world == 1:
                return cand.detach()
            counts = torch.bincount(y, minlength=K).to(cand.dtype)
            sums = all_reduce_sum_(cand.detach() * counts.view(K, 1, 1, 1))
            counts = all_reduce_sum_(counts)
            return torch.where((counts > 0).view(K, 1, 1, 1), sums / counts.clamp(min=1).view(K, 1, 1, 1), buffer)

        total = sum(self.stages)
        ckpt, start, history = self.open_checkpoint(train_set), 0, []
        if (state := ckpt.load()) is not None:
            model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
            gopt.load_state_dict(state["gopt"]), gen.set_state(state["generator"])
            buffer, start, history = state["buffer"].to(dev), state["epoch"], state["history"]
            if net is None:
                with torch.no_grad():
                    w.copy_(state["w"])
            else:
                net.load_state_dict(state["net"])
        names = [k for k, _ in model.named_parameters()]
        bar = tqdm(
            range(start, total),
            initial=start,
            total=total,
            desc="bait: learning the protection",
            disable=not self.progress,
            unit="round",
            bar_format="{desc}: round {n_fmt} of {total_fmt}, {remaining} left{postfix}",
        )
        for epoch in bar:
            stage = self.stage_of(epoch)
            first = torch.randperm(n, generator=gen)[:bs]
            x0, y0 = to_float(images[first], dev), labels[first].to(dev)
            more = [
                torch.randperm(n, generator=gen)[:bs]
                for _ in range(max(self.lookahead_steps, self.surrogate_steps) - 1)
            ]
            steps = [(x0, y0)] + [(to_float(images[b], dev), labels[b].to(dev)) for b in more]
            self._pick_size(model, gen)
            fast = None if self.hypergradient else self._lookahead(model, names, steps, buffer, gen, False)
            order = torch.randperm(n, generator=gen)[:per_epoch]
            mine = local_generator(gen, self.seed, epoch)  # this process's augmentation draws
            model.train()
            hits = seen = 0
            loss_sum = 0.0
            for i in range(0, per_epoch, bs):
                batch = order[i : i + bs]
                if len(batch) < max(2 * world, bs // 4):
                    continue  # a tiny tail batch gives noisy BatchNorm statistics
                idx = batch[rank::world]
                x, y = to_float(images[idx], dev), labels[idx].to(dev)
                cand = candidates(x, y)
                self._pick_size(model, gen)
                if self.hypergradient:
                    fast = self._lookahead(model, names, steps, cand, gen, True)
                logits = None
                if stage != 1:
                    with torch.no_grad(), autocast(dev):
                        logits = functional_call(model, fast, (x,))
                if stage == 1 and world > 1:  # random targets drawn for the whole batch from the shared generator
                    t = choose_targets(1, None, labels[batch].to(dev), K, gen)[rank::world]
                else:
                    t = choose_targets(stage, logits, y, K, gen)
                with autocast(dev):
                    out = functional_call(model, fast, (perturbed_batch(x, rows_of(cand, t), self.augment, mine),))
                    loss = F.cross_entropy(out.float(), t)
                gopt.zero_grad(set_to_none=True)
                loss.backward()
                gopt.step()
                with torch.no_grad():
                    buffer = candidates(x, y).detach() if net is None else synced_buffer(cand, y)
                hits += (out.argmax(1) == t).sum().item()
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
            hits, seen, loss_sum = sum_all(hits, seen, loss_sum)
            self._pick_size(model, gen)
            for xs, ys in steps[: self.surrogate_steps]:
                sgd_step(model, opt, perturbed_batch(xs, buffer[ys], self.augment, gen), ys, self.grad_clip)
            record = {
                "epoch": epoch + 1,
                "stage": STAGE_NAMES[stage],
                "target_loss": loss_sum / max(1, seen),
                "target_acc": hits / max(1, seen),
            }
            history.append(record)
            bar.set_postfix_str(f"stage {stage + 1} of 3, {STAGE_WORDS[stage]}")
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "gopt": gopt.state_dict(),
                "generator": gen.get_state(),
                "buffer": buffer.cpu(),
                "epoch": epoch + 1,
                "history": history,
            }
            state.update({"w": w.detach().cpu()} if net is None else {"net": net.state_dict()})
            ckpt.save(state)
        delta = self._final_delta(net, w if net is None else None, images, labels, K, bs)
        return self.perturbation(delta, "classwise", history=history)

    def direct_delta(self, w: torch.Tensor, shape) -> torch.Tensor:
        """eps * tanh(w), upsampled (nearest: constant patches) when w lives on a coarser grid."""
        if tuple(w.shape[2:]) != tuple(shape[2:]):
            w = F.interpolate(w, size=tuple(shape[2:]), mode="nearest")
        return self.eps * torch.tanh(w)

    def _lookahead(self, model, names, steps, delta, gen, differentiable: bool) -> dict:
        """theta' after `lookahead_steps` SGD steps theta <- theta - lr * grad CE(f_theta(aug(x + delta[y])), y)
        on the batches `steps`, as a parameter dict (torch.func: no model copies)."""
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        fast = {k: params[k] for k in names}
        for x0, y0 in steps[: self.lookahead_steps]:
            xp = perturbed_batch(x0, rows_of(delta if differentiable else delta.detach(), y0), self.augment, gen)
            with autocast(x0.device):
                loss = F.cross_entropy(functional_call(model, {**params, **fast, **buffers}, (xp,)).float(), y0)
            grads = torch.autograd.grad(loss, [fast[k] for k in names], create_graph=differentiable)
            fast = {k: same_layout(fast[k] - self.lookahead_lr * g, params[k]) for k, g in zip(names, grads)}
            if not differentiable:
                fast = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
        if not differentiable:
            fast = {k: v.detach() for k, v in fast.items()}
        return {**fast, **buffers}

    @torch.no_grad()
    def _final_delta(self, net, w, images, labels, K, bs):
        if net is None:
            return self.direct_delta(w, (K, *images.shape[1:])).detach()
        # Class means over ALL training images, with the generator in the same (training-mode)
        # normalization it was optimized in, instead of switching to eval mode at export.
        sums = torch.zeros((K, *images.shape[1:]), device=self.device)
        rank, world = rank_and_world()
        for i in range(rank * bs, len(images), bs * world):  # under torchrun: every world-th batch, then summed
            x = to_float(images[i : i + bs], self.device)
            sums.index_add_(0, labels[i : i + bs].to(self.device), self.eps * net(x).float())
        all_reduce_sum_(sums)
        counts = torch.bincount(labels, minlength=K).clamp(min=1).to(self.device).view(K, 1, 1, 1)
        return sums / counts
