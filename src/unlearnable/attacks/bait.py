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
             on a coarser grid upsampled to constant patches (`direct_size`), or with `smooth` to a
             periodic cubic B-spline of the grid (no block edges: what a photo's look asks for).

A training set with a budget map (a look, look.py) is fitted through it: every perturbed batch
carries its images' own share of the budget, and grey images a grey change, as they are drawn.
With `hypergradient=True` the look-ahead step is recomputed inside every batch with delta in
the graph, giving the exact gradient through the inner step (the reference drops it).

Hardening against what a trainer does to the images (the `robust` preset; docs/bait-robust.md):
  eot           the look-ahead, the target loss and the surrogate's real steps see the perturbed
                images through a random transform of attacks.eot (grayscale, JPEG, resize, blur,
                colour jitter) or none;
  luma          a share of the budget in a grey pattern, the same in the three channels, that a
                grey copy keeps (the colour part is what grayscale removes);
  random_phase  each image carries its class's pattern circularly shifted by its own random
                offset, with the pattern's mean removed: no single pixel direction per class
                captures it (the orthogonal projection's assumption), a convolution still finds it;
  surrogates    more backbones (an ensemble): outer epochs take the surrogates in turn, each with
                its own look-ahead and its own real steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from ..data.augment import luma as luma_of
from ..distributed import all_reduce_sum_, local_generator, rank_and_world, sum_all, wrap_ddp
from ..look import is_grey, periodic_spline, shaped
from ..training import autocast, resident, to_float
from .base import Attack, build_surrogate, register_attack, seed_everything
from .common import class_means, perturbed_batch, sgd_step, surrogate_optimizer
from .eot import EOT, check_names
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


def shifted(delta: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image's delta circularly shifted by its own (dy, dx) pixels: two gathers, each target
    taking exactly one source value, so the gradient is a permutation (no summation order)."""
    n, c, h, w = delta.shape
    rows = (torch.arange(h, device=delta.device)[None] - dy.to(delta.device)[:, None]) % h  # (n, h)
    cols = (torch.arange(w, device=delta.device)[None] - dx.to(delta.device)[:, None]) % w
    out = delta.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def phases(n: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(h, (n,), generator=gen), torch.randint(w, (n,), generator=gen)


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
        "eot": None,  # e.g. [grayscale, jpeg]: random transforms of the perturbed batches (attacks.eot)
        "luma": 0.0,  # share of the budget in a grey pattern shared by the three channels, in [0, 1)
        "random_phase": False,  # every image its own circular shift of its class's zero-mean pattern
        "surrogates": None,  # more surrogate backbones (an ensemble), e.g. [efficientnet_lite1]; same init
        "smooth": False,  # direct grid drawn as a periodic cubic B-spline instead of constant patches (look.py)
    }
    PRETRAINED = {}  # the surrogate is pretrained already
    MIN_CLASSES, WHY_CLASSES = 2, "binds each class to another class"
    _look: tuple[torch.Tensor, torch.Tensor] | None = None  # the training set's budget map and grey images, in fit
    # CPU: direct class-wise delta on an 8x8 grid (4x4-pixel patches at 32 px), which survives the
    # trainer's crop/flip and a CNN's downsampling; full-resolution noise did not (see README).
    CPU = {
        "surrogate": "efficientnet_lite0",
        "parameterization": "direct",
        "direct_size": 8,
        "stages": [30, 30, 30],
        "images_per_epoch": 3328,
        "batch_size": 128,
    }
    PRESETS = {
        "paper": {},
        "cpu": CPU,
        # The cpu preset hardened (docs/bait-robust.md): the look-ahead, the target loss and the
        # surrogate's steps see two batches in three through grayscale or JPEG. A grey share of the
        # budget (luma) and more transforms were measured and left out.
        "robust": {**CPU, "eot": ["grayscale", "jpeg"]},
    }

    TYPES = {"direct_size": int, "images_per_epoch": int, "input_sizes": list, "eot": list, "surrogates": list}
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
        check_names(self.eot, "bait")
        if not 0 <= self.luma < 1:
            raise ValueError(f"bait: luma must be in [0, 1), got {self.luma!r}")
        if self.surrogates is not None:
            from ..models import model_info

            if not isinstance(self.surrogates, (list, tuple)) or not all(isinstance(m, str) for m in self.surrogates):
                raise ValueError(f"bait: surrogates must be a list of model names, got {self.surrogates!r}")
            for m in self.surrogates:
                model_info(m)
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
        self.check_classes(train_set.classes)
        gen = seed_everything(self.seed)
        dev, K = self.device, train_set.num_classes
        images, labels = resident(train_set.images, self.device), train_set.labels
        budget = train_set.budget
        self._look = None if budget is None else (budget.to(dev), is_grey(train_set.images).to(dev))
        n, bs = len(images), min(self.batch_size, len(images))
        per_epoch = min(n, self.images_per_epoch or n)
        # Under torchrun every process takes its share of each batch; the surrogate, the look-ahead
        # and the shared generator `gen` stay identical everywhere, the perturbation's gradient is
        # averaged by DDP, and each process augments its own images with its own generator.
        rank, world = rank_and_world()
        models = [
            build_surrogate(m, self.surrogate_init, K).to(dev) for m in [self.surrogate, *(self.surrogates or [])]
        ]
        opts = [surrogate_optimizer(m, self.surrogate_lr) for m in models]
        model, opt = models[0], opts[0]
        eot = EOT(self.eot) if self.eot else None
        shape = (K, *images.shape[1:])
        if self.parameterization == "generator":
            net = PerturbationGenerator(self.generator_width).to(dev)
            params = list(net.parameters())
            lr = self.generator_lr
            gnet = wrap_ddp(net)
        else:
            net = None
            grey = 1 if self.luma > 0 else 0  # the grey pattern lives in one more channel of w
            grid = (K, shape[1] + grey, self.direct_size or shape[2], self.direct_size or shape[3])
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
            means, counts = class_means(self.eps * self._mix_luma(gnet(x)), y, K)
            present = (counts > 0).view(K, 1, 1, 1)
            return torch.where(present, self._centred(means), buffer)

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
            for m, o, ms, os_ in zip(models[1:], opts[1:], state.get("ensemble", []), state.get("ensemble_opt", [])):
                m.load_state_dict(ms), o.load_state_dict(os_)
            gopt.load_state_dict(state["gopt"]), gen.set_state(state["generator"])
            buffer, start, history = state["buffer"].to(dev), state["epoch"], state["history"]
            if net is None:
                with torch.no_grad():
                    w.copy_(state["w"])
            else:
                net.load_state_dict(state["net"])
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
            model, opt = models[epoch % len(models)], opts[epoch % len(models)]  # an ensemble's members in turn
            names = [k for k, _ in model.named_parameters()]
            first = torch.randperm(n, generator=gen)[:bs]
            x0, y0 = to_float(images[first], dev), labels[first].to(dev)
            more = [
                torch.randperm(n, generator=gen)[:bs]
                for _ in range(max(self.lookahead_steps, self.surrogate_steps) - 1)
            ]
            steps = [(x0, y0, first)] + [(to_float(images[b], dev), labels[b].to(dev), b) for b in more]
            self._pick_size(model, gen)
            fast = None if self.hypergradient else self._lookahead(model, names, steps, buffer, gen, False, eot)
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
                    fast = self._lookahead(model, names, steps, cand, gen, True, eot)
                logits = None
                if stage != 1:
                    with torch.no_grad(), autocast(dev):
                        logits = functional_call(model, fast, (x,))
                if stage == 1 and world > 1:  # random targets drawn for the whole batch from the shared generator
                    t = choose_targets(1, None, labels[batch].to(dev), K, gen)[rank::world]
                else:
                    t = choose_targets(stage, logits, y, K, gen)
                with autocast(dev):
                    xp = perturbed_batch(x, self._shaped(self._rows(cand, t, mine), idx), self.augment, mine, eot)
                    out = functional_call(model, fast, (xp,))
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
            for xs, ys, ix in steps[: self.surrogate_steps]:
                xp = perturbed_batch(xs, self._shaped(self._rows(buffer, ys, gen), ix), self.augment, gen, eot)
                sgd_step(model, opt, xp, ys, self.grad_clip)
            record = {
                "epoch": epoch + 1,
                "stage": STAGE_NAMES[stage],
                "target_loss": loss_sum / max(1, seen),
                "target_acc": hits / max(1, seen),
            }
            history.append(record)
            bar.set_postfix_str(f"stage {stage + 1} of 3, {STAGE_WORDS[stage]}")
            state = {
                "model": models[0].state_dict(),
                "optimizer": opts[0].state_dict(),
                "gopt": gopt.state_dict(),
                "generator": gen.get_state(),
                "buffer": buffer.cpu(),
                "epoch": epoch + 1,
                "history": history,
            }
            state.update({"w": w.detach().cpu()} if net is None else {"net": net.state_dict()})
            if len(models) > 1:
                state["ensemble"] = [m.state_dict() for m in models[1:]]
                state["ensemble_opt"] = [o.state_dict() for o in opts[1:]]
            ckpt.save(state)
        delta = self._final_delta(net, w if net is None else None, images, labels, K, bs)
        if self.random_phase:  # every image its own shift, drawn once from the seed
            dy, dx = phases(n, shape[2], shape[3], torch.Generator().manual_seed(self.seed + 1))
            delta = shifted(delta.cpu()[labels], dy, dx)
            return self.perturbation(delta, "samplewise", history=history)
        return self.perturbation(delta, "classwise", history=history)

    def direct_delta(self, w: torch.Tensor, shape) -> torch.Tensor:
        """eps * tanh(w), upsampled when w lives on a coarser grid (nearest: constant patches; with
        `smooth`, a periodic cubic B-spline of tanh(w), whose weights are non-negative and sum to 1,
        so the budget holds); with `luma`, w's last channel is the grey pattern (see _mix_luma)."""
        if self.smooth and tuple(w.shape[2:]) != tuple(shape[2:]):
            ay = periodic_spline(shape[2], w.shape[2]).to(w.device)
            ax = periodic_spline(shape[3], w.shape[3]).to(w.device)
            u = torch.einsum("hy,kcyx,wx->kchw", ay, torch.tanh(w), ax)
        else:
            if tuple(w.shape[2:]) != tuple(shape[2:]):
                w = F.interpolate(w, size=tuple(shape[2:]), mode="nearest")
            u = torch.tanh(w)
        if self.luma > 0:
            c = shape[1]
            u = (1 - self.luma) * u[:, :c] + self.luma * u[:, c:]
        return self._centred(self.eps * u)

    def _mix_luma(self, u: torch.Tensor) -> torch.Tensor:
        """A generator's output with a share `luma` of its budget in its own luma, replicated to every
        channel: |result| <= 1 still, and a grey copy keeps at least that share."""
        if self.luma <= 0:
            return u
        return (1 - self.luma) * u + self.luma * luma_of(u).expand_as(u)

    def _centred(self, delta: torch.Tensor) -> torch.Tensor:
        """With random phases, each class's pattern minus its mean per channel (scaled into the budget):
        what circular shifts average to is that mean, the one part a linear model could still find."""
        if not self.random_phase:
            return delta
        centred = delta - delta.mean((2, 3), keepdim=True)
        peak = centred.abs().amax((1, 2, 3), keepdim=True).clamp(min=1e-12)
        return centred * (self.eps / peak).clamp(max=1)  # scaled, not clipped, into the budget: the mean stays 0

    def _shaped(self, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The deltas of a batch as its images will carry them: each image's budget map, grey on grey
        (look.py); unchanged without a look."""
        if self._look is None:
            return rows
        budget, grey = self._look
        index = index.to(budget.device)
        return shaped(rows, budget[index], grey[index])

    def _rows(self, table: torch.Tensor, index: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The class-wise deltas of a batch, each at a random phase with `random_phase`."""
        rows = rows_of(table, index)
        if not self.random_phase:
            return rows
        return shifted(rows, *phases(len(index), table.shape[2], table.shape[3], gen))

    def _lookahead(self, model, names, steps, delta, gen, differentiable: bool, eot=None) -> dict:
        """theta' after `lookahead_steps` SGD steps theta <- theta - lr * grad CE(f_theta(aug(x + delta[y])), y)
        on the batches `steps`, as a parameter dict (torch.func: no model copies)."""
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        fast = {k: params[k] for k in names}
        for x0, y0, i0 in steps[: self.lookahead_steps]:
            rows = self._shaped(self._rows(delta if differentiable else delta.detach(), y0, gen), i0)
            xp = perturbed_batch(x0, rows, self.augment, gen, eot)
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
            sums.index_add_(0, labels[i : i + bs].to(self.device), self.eps * self._mix_luma(net(x).float()))
        all_reduce_sum_(sums)
        counts = torch.bincount(labels, minlength=K).clamp(min=1).to(self.device).view(K, 1, 1, 1)
        return self._centred(sums / counts)
