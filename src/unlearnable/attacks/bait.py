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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from ..data.dataset import ImageDataset
from ..distributed import local_generator, rank_and_world, sum_all, wrap_ddp
from ..look import is_grey, shaped
from ..models import ImageClassifier, model_info
from ..options import option
from ..perturbation import Perturbation
from ..training import autocast, resident, to_float
from .base import FitState, IterativeAttack, build_surrogate, rebuilt, register_attack
from .class_patterns import DirectPattern, GeneratorPattern, direct_table, phases, shifted
from .common import perturbed_batch, sgd_step, surrogate_optimizer
from .eot import EOT, check_names

STAGE_NAMES = ("hard", "random", "least")
STAGE_WORDS = (  # the curriculum in plain words, for the progress line
    "pointing each class at the class it is most easily mistaken for",
    "pointing each photo at a random other class",
    "pointing each class at the class it is least like",
)


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


@dataclass(kw_only=True)
class BAITState(FitState):
    models: list[ImageClassifier]  # the surrogate, and an ensemble's other members
    opts: list[torch.optim.SGD]
    pattern: DirectPattern | GeneratorPattern
    pattern_opt: torch.optim.Optimizer
    buffer: torch.Tensor  # the latest class-wise delta (K, C, H, W), for the inner steps
    images: torch.Tensor = rebuilt()
    labels: torch.Tensor = rebuilt()
    look: tuple[torch.Tensor, torch.Tensor] | None = rebuilt()  # the budget map and grey images (look.py)
    eot: EOT | None = rebuilt()
    pattern_ddp: nn.Module = rebuilt()  # the pattern, under torchrun wrapped for DDP


@dataclass(frozen=True)
class BAITOptions:
    surrogate: str = "resnet18_imagenet"
    surrogate_init: Literal["imagenet", "scratch"] = "imagenet"
    parameterization: Literal["generator", "direct"] = "generator"
    stages: tuple[int, ...] = (30, 30, 30)  # outer epochs of the hard / random / least-likely target stages
    batch_size: int = option(512, positive=True)
    surrogate_lr: float = option(0.1, positive=True)
    lookahead_lr: float = option(0.1, positive=True)
    lookahead_steps: int = option(1, low=1)  # SGD steps of the look-ahead model (the reference takes 1)
    surrogate_steps: int = option(1, low=1)  # real surrogate steps per outer epoch (the reference takes 1)
    grad_clip: float | None = option(5.0, positive=True)
    generator_lr: float = option(1e-3, positive=True)
    generator_width: float = option(1.0, positive=True)
    direct_lr: float = option(0.05, positive=True)
    direct_size: int | None = option(
        None, positive=True
    )  # a coarser grid for the direct delta (8: 4x4 patches at 32 px)
    hypergradient: bool = False
    augment: bool = True
    images_per_epoch: int | None = option(None, positive=True)  # None: the whole training set every outer epoch
    input_sizes: tuple[int, ...] | None = None  # e.g. [32, 48, 64]: the surrogate sees each batch at one of these
    eot: tuple[str, ...] | None = None  # e.g. [grayscale, jpeg]: random transforms of the perturbed batches
    luma: float = option(0.0, low=0)  # share of the budget in a grey pattern shared by the three channels, < 1
    random_phase: bool = False  # every image its own circular shift of its class's zero-mean pattern
    surrogates: tuple[str, ...] | None = None  # more surrogate backbones (an ensemble), e.g. [efficientnet_lite1]
    smooth: bool = False  # direct grid drawn as a periodic cubic B-spline instead of constant patches (look.py)


@register_attack
class BAIT(IterativeAttack[BAITState]):
    name = "bait"
    summary = "BAIT (Li et al. 2026): class-wise noise bound to incorrect targets; holds against pretrained victims"
    Options = BAITOptions
    options: BAITOptions
    # CPU: direct class-wise delta on an 8x8 grid (4x4-pixel patches at 32 px), which survives the
    # trainer's crop/flip and a CNN's downsampling; full-resolution noise did not (see README).
    CPU = BAITOptions(
        surrogate="efficientnet_lite0",
        parameterization="direct",
        direct_size=8,
        images_per_epoch=3328,
        batch_size=128,
    )
    PRESETS = {
        "paper": BAITOptions(),
        "cpu": CPU,
        # The cpu preset hardened (docs/bait-robust.md): the look-ahead, the target loss and the
        # surrogate's steps see two batches in three through grayscale or JPEG. A grey share of the
        # budget (luma) and more transforms were measured and left out.
        "robust": replace(CPU, eot=("grayscale", "jpeg")),
    }
    PRETRAINED = {}  # the surrogate is pretrained already
    MIN_CLASSES, WHY_CLASSES = 2, "binds each class to another class"

    def validate(self) -> None:
        o = self.options
        if len(o.stages) != 3 or min(o.stages) < 0 or sum(o.stages) < 1:
            raise ValueError(
                f"bait: stages must be three non-negative epoch counts with a positive sum, got {o.stages}"
            )
        check_names(o.eot, "bait")
        if not o.luma < 1:
            raise ValueError(f"bait: luma must be in [0, 1), got {o.luma!r}")
        for m in o.surrogates or ():
            model_info(m)
        if o.input_sizes is not None and (not o.input_sizes or min(o.input_sizes) < 8):
            raise ValueError(
                f"bait: input_sizes must be a non-empty list of image sizes >= 8 (or null), got {o.input_sizes!r}"
            )

    def passes(self, n: int) -> float:
        o = self.options
        bs = min(o.batch_size, n)
        per = min(n, o.images_per_epoch or n)
        per = per // bs * bs + (per % bs if per % bs >= max(2, bs // 4) else 0)  # the tail batch fit skips
        steps = (o.lookahead_steps + o.surrogate_steps) * bs
        inner = per * (3 * o.lookahead_steps if o.hypergradient else 1)
        st = o.stages
        return sum(st) * (inner + steps) + per * (st[0] + st[2]) / 3  # + the no-grad target logits

    def _pick_size(self, model: ImageClassifier, gen: torch.Generator) -> None:
        """Input diversity: resize the surrogate's input to a size drawn from `input_sizes`, so that
        the perturbation does not depend on the one resolution a victim happens to train at."""
        o = self.options
        if o.input_sizes:
            model.input_size = o.input_sizes[int(torch.randint(len(o.input_sizes), (1,), generator=gen))]

    def stage_of(self, epoch: int) -> int:
        bounds = torch.tensor(self.options.stages).cumsum(0)
        return int((epoch >= bounds).sum().clamp(max=2))

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> BAITState:
        o = self.options
        dev, K = self.device, train_set.num_classes
        images = resident(train_set.images, dev)
        budget = train_set.budget
        models = [build_surrogate(m, o.surrogate_init, K).to(dev) for m in [o.surrogate, *(o.surrogates or [])]]
        opts = [surrogate_optimizer(m, o.surrogate_lr) for m in models]
        eot = EOT(o.eot) if o.eot else None
        shape = (K, *images.shape[1:])
        if o.parameterization == "generator":
            pattern: DirectPattern | GeneratorPattern = GeneratorPattern(
                shape, self.eps, o.generator_width, o.luma, o.random_phase
            )
            lr = o.generator_lr
        else:
            pattern = DirectPattern(
                shape,
                self.eps,
                o.direct_size,
                o.smooth,
                o.luma,
                o.random_phase,
            )
            lr = o.direct_lr
        pattern = pattern.to(dev)
        return BAITState(
            gen=gen,
            models=models,
            opts=opts,
            pattern=pattern,
            pattern_opt=torch.optim.Adam(pattern.parameters(), lr=lr),
            buffer=torch.zeros(shape, device=dev),
            images=images,
            labels=train_set.labels,
            look=None if budget is None else (budget.to(dev), is_grey(train_set.images).to(dev)),
            eot=eot,
            pattern_ddp=wrap_ddp(pattern),  # under torchrun its gradient is averaged over the processes
        )

    def rounds(self, state: BAITState) -> int:
        return sum(self.options.stages)

    def describe(self, state: BAITState) -> str:
        stage = self.stage_of(state.round - 1)
        return f"stage {stage + 1} of 3, {STAGE_WORDS[stage]}"

    def step(self, state: BAITState) -> dict[str, Any] | None:
        """One outer epoch: the look-ahead, a pass updating the pattern towards the targets, then
        the surrogate's real steps. Under torchrun every process takes its share of each batch;
        the surrogate, the look-ahead and the shared generator `gen` stay identical everywhere,
        and each process augments its own images with its own generator."""
        o = self.options
        dev, K, gen, epoch = self.device, len(state.buffer), state.gen, state.round
        images, labels, eot = state.images, state.labels, state.eot
        n, bs = len(images), min(o.batch_size, len(images))
        per_epoch = min(n, o.images_per_epoch or n)
        rank, world = rank_and_world()
        stage = self.stage_of(epoch)
        model, opt = state.models[epoch % len(state.models)], state.opts[epoch % len(state.models)]  # in turn
        names = [k for k, _ in model.named_parameters()]
        first = torch.randperm(n, generator=gen)[:bs]
        x0, y0 = to_float(images[first], dev), labels[first].to(dev)
        more = [torch.randperm(n, generator=gen)[:bs] for _ in range(max(o.lookahead_steps, o.surrogate_steps) - 1)]
        steps = [(x0, y0, first)] + [(to_float(images[b], dev), labels[b].to(dev), b) for b in more]
        self._pick_size(model, gen)
        fast = (
            {} if o.hypergradient else self._lookahead(model, names, steps, state.buffer, gen, False, eot, state.look)
        )
        order = torch.randperm(n, generator=gen)[:per_epoch]
        mine = local_generator(gen, self.seed, epoch)  # this process's augmentation draws
        model.train()
        hits: float = 0
        seen: float = 0
        loss_sum = 0.0
        for i in range(0, per_epoch, bs):
            batch = order[i : i + bs]
            if len(batch) < max(2 * world, bs // 4):
                continue  # a tiny tail batch gives noisy BatchNorm statistics
            idx = batch[rank::world]
            x, y = to_float(images[idx], dev), labels[idx].to(dev)
            table = state.pattern_ddp(x, y, state.buffer)
            self._pick_size(model, gen)
            if o.hypergradient:
                fast = self._lookahead(model, names, steps, table, gen, True, eot, state.look)
            logits = None
            if stage != 1:
                with torch.no_grad(), autocast(dev):
                    logits = functional_call(model, fast, (x,))
            if stage == 1 and world > 1:  # random targets drawn for the whole batch from the shared generator
                t = choose_targets(1, None, labels[batch].to(dev), K, gen)[rank::world]
            else:
                t = choose_targets(stage, logits, y, K, gen)
            with autocast(dev):
                xp = perturbed_batch(x, self._shaped(state.look, self._rows(table, t, mine), idx), o.augment, mine, eot)
                out = functional_call(model, fast, (xp,))
                loss = F.cross_entropy(out.float(), t)
            state.pattern_opt.zero_grad(set_to_none=True)
            loss.backward()
            state.pattern_opt.step()
            state.buffer = state.pattern.latest(table, x, y, state.buffer)
            hits += (out.argmax(1) == t).sum().item()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
        hits, seen, loss_sum = sum_all(hits, seen, loss_sum)
        self._pick_size(model, gen)
        for xs, ys, ix in steps[: o.surrogate_steps]:
            xp = perturbed_batch(
                xs, self._shaped(state.look, self._rows(state.buffer, ys, gen), ix), o.augment, gen, eot
            )
            sgd_step(model, opt, xp, ys, o.grad_clip)
        return {
            "epoch": epoch + 1,
            "stage": STAGE_NAMES[stage],
            "target_loss": loss_sum / max(1, seen),
            "target_acc": hits / max(1, seen),
        }

    def finish(self, state: BAITState) -> Perturbation:
        images, labels = state.images, state.labels
        delta = state.pattern.final(images, labels, min(self.options.batch_size, len(images)))
        if self.options.random_phase:  # every image its own shift, drawn once from the seed
            dy, dx = phases(len(images), delta.shape[2], delta.shape[3], torch.Generator().manual_seed(self.seed + 1))
            return self.perturbation(shifted(delta.cpu()[labels], dy, dx), "samplewise", history=state.history)
        return self.perturbation(delta, "classwise", history=state.history)

    def direct_delta(self, w: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """The direct parameterization's table of class deltas for the grid `w` (class_patterns)."""
        o = self.options
        return direct_table(w, shape, self.eps, o.smooth, o.luma, o.random_phase)

    def _shaped(
        self, look: tuple[torch.Tensor, torch.Tensor] | None, rows: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        """The deltas of a batch as its images will carry them: each image's budget map, grey on grey
        (look.py: `look` is the training set's budget map and grey images); unchanged without one."""
        if look is None:
            return rows
        budget, grey = look
        index = index.to(budget.device)
        return shaped(rows, budget[index], grey[index])

    def _rows(self, table: torch.Tensor, index: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The class-wise deltas of a batch, each at a random phase with `random_phase`."""
        rows = rows_of(table, index)
        if not self.options.random_phase:
            return rows
        return shifted(rows, *phases(len(index), table.shape[2], table.shape[3], gen))

    def _lookahead(
        self,
        model: nn.Module,
        names: list[str],
        steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        delta: torch.Tensor,
        gen: torch.Generator,
        differentiable: bool,
        eot: EOT | None = None,
        look: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """theta' after `lookahead_steps` SGD steps theta <- theta - lr * grad CE(f_theta(aug(x + delta[y])), y)
        on the batches `steps`, as a parameter dict (torch.func: no model copies)."""
        o = self.options
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        fast: dict[str, torch.Tensor] = {k: params[k] for k in names}
        for x0, y0, i0 in steps[: o.lookahead_steps]:
            rows = self._shaped(look, self._rows(delta if differentiable else delta.detach(), y0, gen), i0)
            xp = perturbed_batch(x0, rows, o.augment, gen, eot)
            with autocast(x0.device):
                loss = F.cross_entropy(functional_call(model, {**params, **fast, **buffers}, (xp,)).float(), y0)
            grads = torch.autograd.grad(loss, [fast[k] for k in names], create_graph=differentiable)
            fast = {k: same_layout(fast[k] - o.lookahead_lr * g, params[k]) for k, g in zip(names, grads)}
            if not differentiable:
                fast = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
        if not differentiable:
            fast = {k: v.detach() for k, v in fast.items()}
        return {**fast, **buffers}
