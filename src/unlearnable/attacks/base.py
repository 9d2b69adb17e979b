"""The attack interface: every protection method is one class, created by name.

    attack = create_attack("bait", eps=8/255, preset="cpu", seed=0)
    perturbation = attack.fit(train_set)

A method's options are a frozen dataclass (its `Options`); a preset (PRESETS["cpu"],
PRESETS["paper"], ...) is one value of it, and keyword arguments given by the caller replace
its fields. Every field is checked against its type and bounds when the method is built.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import ImageDataset
from ..distributed import is_main, parse_device
from ..models import ImageClassifier, create_model
from ..options import NoOptions, check_seed, options_of
from ..perturbation import Perturbation, check_eps
from ..training import Checkpoint, TrainConfig, run_identity, train_classifier

ATTACKS: dict[str, type[Attack]] = {}
A = TypeVar("A", bound="type[Attack]")


def register_attack(cls: A) -> A:
    ATTACKS[cls.name] = cls
    return cls


def list_attacks() -> list[str]:
    return sorted(ATTACKS)


# The ImageNet-pretrained surrogate that a starred name (EM*, TAP*, REM*) selects, per preset.
PRETRAINED_SURROGATES = {"cpu": "efficientnet_lite0", "paper": "resnet18_imagenet"}


def create_attack(name: str, **kwargs: Any) -> Attack:
    """A method by name; `name*` (e.g. "em*") is the method with an ImageNet-pretrained surrogate,
    the variants the BAIT paper compares against. Explicit keyword options win over both."""
    key = name.lower().replace("-", "_")
    star = key.endswith("*")
    key = key.rstrip("*")
    if key not in ATTACKS:
        raise ValueError(
            f"unknown method {name!r}; available: {', '.join(list_attacks())} "
            "(add * for a pretrained surrogate, e.g. em*)"
        )
    cls = ATTACKS[key]
    if star:
        if "surrogate" not in cls.option_names():
            raise ValueError(f"{name!r}: {key} trains no surrogate, so it has no pretrained variant")
        preset = kwargs.get("preset", "cpu")
        pretrained = {
            "surrogate": PRETRAINED_SURROGATES.get(preset, "resnet18_imagenet"),
            "surrogate_init": "imagenet",
            **cls.PRETRAINED,
        }
        kwargs = {**pretrained, **kwargs}
    return cls(**kwargs)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Attack:
    name = ""
    summary = ""
    norm = "linf"  # how `eps` is measured (linf | l2 | l0), see unlearnable.perturbation
    default_eps = 8 / 255
    Options: ClassVar[type[Any]] = NoOptions  # the method's options, a frozen dataclass checked when built
    PRESETS: ClassVar[dict[str, Any]] = {}  # preset name -> its Options (default: cpu and paper, the defaults)
    PRETRAINED: ClassVar[dict[str, Any]] = {"surrogate_lr": 0.01}  # what else a pretrained surrogate changes (name*)
    # The square size a folder of photos is fitted at, per preset (photos.py draws the result onto
    # every photo at its own size); a photo smaller than this is fitted at its own short side.
    WORKING_SIZE = {"cpu": 64, "paper": 224}
    MIN_CLASSES = 1  # classes the method needs, and why (checked before any work: check_classes)
    WHY_CLASSES = ""
    CHECKPOINT_PARTS: tuple[str, ...] = ()  # suffixes of checkpoints a part of the fit keeps (TAP's surrogate)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inherited = cls.PRESETS  # a subclass of a method keeps its presets; a new method without any gets the defaults
        if "PRESETS" not in cls.__dict__ and not (
            inherited and all(isinstance(v, cls.Options) for v in inherited.values())
        ):
            cls.PRESETS = {"cpu": cls.Options(), "paper": cls.Options()}

    def __init__(
        self,
        eps: float | None = None,
        *,
        seed: int = 0,
        preset: str = "cpu",
        device: str | torch.device | None = None,
        progress: bool = True,
        checkpoint: str | Path | None = None,
        **options: Any,
    ) -> None:
        eps = check_eps(self.default_eps if eps is None else eps, self.norm)
        if preset not in self.PRESETS:
            raise ValueError(f"unknown preset {preset!r} for {self.name}; choose from {sorted(self.PRESETS)}")
        self.eps, self.seed, self.preset = eps, check_seed(seed), preset
        self.progress = progress and is_main()  # under torchrun one progress bar, rank 0's
        self.device = parse_device(device)  # default: this process's GPU under torchrun, else cuda or cpu
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.options = options_of(self.Options, options, self.name, base=self.PRESETS[preset])
        levels = eps * 255
        if self.norm in ("linf", "l2") and levels < 1 - 1e-6:
            raise ValueError(
                f"--eps {eps:.4g} is below one 8-bit level (1/255 = {1 / 255:.4f}): no exported pixel "
                f"could change, so nothing would be protected; use at least 1/255 (default "
                f"{self.default_eps:.4g})"
            )
        self.validate()

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls.Options)]

    def validate(self) -> None:
        """Checks that involve several options, or the budget (a method's own)."""

    def check_classes(self, classes: list[str]) -> None:
        """Refuse, before any work, a training set with fewer classes than the method needs."""
        if len(classes) < self.MIN_CLASSES:
            raise ValueError(
                f"{self.name} {self.WHY_CLASSES}: it needs at least {self.MIN_CLASSES} classes, got {len(classes)} "
                f"({', '.join(map(str, classes))}); put the photos into one sub-folder per subject, or group them "
                "with --labels clusters"
            )

    def working_size(self) -> int:
        return self.WORKING_SIZE.get(self.preset, 64)

    def passes(self, n: int) -> float | None:
        """About how many forward and backward passes of one image through the surrogate a fit on
        n images takes (the work behind a time estimate), or None when it cannot be said."""
        return None

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "eps": self.eps,
            "norm": self.norm,
            "seed": self.seed,
            "preset": self.preset,
            **asdict(self.options),
        }

    def fit(self, train_set: ImageDataset) -> Perturbation:
        raise NotImplementedError

    def open_checkpoint(self, train_set: ImageDataset) -> Checkpoint:
        """This fit's checkpoint (a no-op without a `checkpoint` path), remembered for
        `resumed_seconds`. It belongs to this method, its settings and seed, and `train_set`: a
        checkpoint of any other run is refused. A fit never removes its checkpoint (the protect
        pipeline does, once the output is in place), so fitting again returns the same result."""
        identity = (
            run_identity(run="attack", format=CHECKPOINT_FORMAT, settings=self.settings(), data=train_set.digests())
            if self.checkpoint
            else None
        )
        self._checkpoint = Checkpoint(self.checkpoint, identity)
        return self._checkpoint

    def remove_checkpoint(self) -> None:
        """Remove this method's checkpoint and its parts (e.g. TAP's surrogate training), once the
        output made from it is in place."""
        if self.checkpoint is not None:
            Checkpoint(self.checkpoint).remove()
            for part in self.CHECKPOINT_PARTS:
                Checkpoint(self.part_path(part)).remove()

    def part_path(self, part: str) -> Path | None:
        """Where a part of this fit with its own checkpoint (CHECKPOINT_PARTS) keeps it."""
        return self.checkpoint.with_name(self.checkpoint.name + part) if self.checkpoint else None

    @property
    def resumed_seconds(self) -> float:
        """Seconds the last fit had spent before it was interrupted and resumed from its
        checkpoint (0 for a fit that ran in one go): add them to this run's time."""
        ckpt = self.__dict__.get("_checkpoint")
        return ckpt.resumed_seconds if ckpt is not None else 0.0

    def perturbation(self, delta: torch.Tensor, kind: str, **meta: Any) -> Perturbation:
        return Perturbation(delta, self.eps, kind, self.name, {**self.settings(), **meta}, self.norm)


SURROGATE_PART = ".surrogate"  # the checkpoint of a surrogate trained on clean data before the first round
CHECKPOINT_FORMAT = 2  # of an attack's checkpoint: one of another format belongs to another run, and is refused


def rebuilt(default: Any = None) -> Any:
    """A field of a FitState that is not saved: the data and constants that `start` rebuilds."""
    return field(default=default, metadata={"saved": False})


@dataclass(kw_only=True)
class FitState:
    """What an iterative fit carries from one round to the next. Every field is saved in the
    checkpoint after a round and put back on resume, by its kind: a module or an optimizer (or a
    list of them) by its state_dict, a random generator by its state, a tensor on the CPU (and
    back on its device), anything else as it is; fields made with `rebuilt()` are not saved."""

    gen: torch.Generator  # the fit's one random generator, seeded from the method's seed
    round: int = 0  # rounds done
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per round that returns one

    def saved(self) -> dict[str, Any]:
        return {f.name: _dump(getattr(self, f.name)) for f in fields(self) if f.metadata.get("saved", True)}

    def restore(self, saved: dict[str, Any]) -> None:
        for f in fields(self):
            if f.metadata.get("saved", True):
                setattr(self, f.name, _load(getattr(self, f.name), saved[f.name]))


def _dump(value: Any) -> Any:
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        return value.state_dict()
    if isinstance(value, torch.Generator):
        return value.get_state()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list) and value and isinstance(value[0], (torch.nn.Module, torch.optim.Optimizer)):
        return [v.state_dict() for v in value]
    return value


def _load(current: Any, saved: Any) -> Any:
    if isinstance(current, (torch.nn.Module, torch.optim.Optimizer)):
        current.load_state_dict(saved)
        return current
    if isinstance(current, torch.Generator):
        current.set_state(saved)
        return current
    if isinstance(current, torch.Tensor):
        if current.requires_grad:  # a leaf being optimized: the optimizer holds this very tensor
            with torch.no_grad():
                current.copy_(saved)
            return current
        return saved.to(current.device)
    if isinstance(current, list) and current and isinstance(current[0], (torch.nn.Module, torch.optim.Optimizer)):
        for c, s in zip(current, saved, strict=True):
            c.load_state_dict(s)
        return current
    return saved


S = TypeVar("S", bound=FitState)


class IterativeAttack(Attack, Generic[S]):
    """A method that learns its perturbation in rounds. This class owns the plumbing: seeding,
    the state (FitState) and its resume from the checkpoint, one progress bar in the toolkit's
    words, a checkpoint after every `SAVE_EVERY` rounds, and the `on_round` hooks (called after
    every round and its checkpoint with the attack and the state: what tests and benchmarks
    watch a fit by). A method holds its algorithm: `start` (its state), `step` (one round),
    `finish` (the result)."""

    UNIT: ClassVar[str] = "round"  # what one round is, in the progress line
    SAVE_EVERY: ClassVar[int] = 1  # rounds between two checkpoints (and always after the last)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_round: list[Callable[[IterativeAttack[S], S], None]] = []

    def start(self, train_set: ImageDataset, gen: torch.Generator) -> S:
        """The state before the first round (models, optimizers, the perturbation)."""
        raise NotImplementedError

    def warm_up(self, state: S) -> bool:
        """Work before the first round of a fit that does not resume (TAP's surrogate training);
        True when it did some, which a checkpoint then keeps."""
        return False

    def train_on_clean(self, model: torch.nn.Module, train_set: ImageDataset, cfg: TrainConfig, desc: str) -> float:
        """Train a surrogate on the clean training set in `warm_up`, resumable on its own (the
        checkpoint's SURROGATE_PART, which the method lists in CHECKPOINT_PARTS); returns its
        final training accuracy."""
        result = train_classifier(
            model,
            train_set,
            cfg,
            seed=self.seed,
            device=self.device,
            progress=self.progress,
            desc=desc,
            checkpoint=self.part_path(SURROGATE_PART),
        )
        return float(result["final_train_acc"])

    def rounds(self, state: S) -> int:
        raise NotImplementedError

    def step(self, state: S) -> dict[str, Any] | None:
        """Round `state.round`; a record for the history, or None."""
        raise NotImplementedError

    def stopped(self, state: S) -> bool:
        """Whether the fit is done before its last round (an early stop)."""
        return False

    def describe(self, state: S) -> str:
        """What the progress line says after a round."""
        return ""

    def finish(self, state: S) -> Perturbation:
        raise NotImplementedError

    def fit(self, train_set: ImageDataset) -> Perturbation:
        self.check_classes(train_set.classes)
        state = self.start(train_set, seed_everything(self.seed))
        ckpt = self.open_checkpoint(train_set)
        if (saved := ckpt.load()) is not None:
            state.restore(saved)
        elif self.warm_up(state):
            ckpt.save(state.saved())
        total = self.rounds(state)
        bar = tqdm(
            total=total,
            initial=state.round,
            desc=f"{self.name}: learning the protection",
            unit=self.UNIT,
            disable=not self.progress,
            bar_format="{desc}: " + self.UNIT + " {n_fmt} of {total_fmt}, {remaining} left{postfix}",
        )
        while state.round < total and not self.stopped(state):
            record = self.step(state)
            state.round += 1
            if record is not None:
                state.history.append(record)
            bar.update(1)
            if words := self.describe(state):
                bar.set_postfix_str(words)
            if state.round % self.SAVE_EVERY == 0 or state.round == total or self.stopped(state):
                ckpt.save(state.saved())
            for hook in self.on_round:
                hook(self, state)
        bar.close()
        return self.finish(state)


def build_surrogate(name: str, init: str, num_classes: int, input_size: int | None = None) -> ImageClassifier:
    if init not in ("imagenet", "scratch"):
        raise ValueError(f"surrogate init must be imagenet or scratch, got {init!r}")
    return create_model(name, num_classes, pretrained=init == "imagenet", input_size=input_size)
