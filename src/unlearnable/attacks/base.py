"""The attack interface: every protection method is one class, created by name.

    attack = create_attack("bait", eps=8/255, preset="cpu", seed=0)
    perturbation = attack.fit(train_set)

Options resolve in three layers: the class's DEFAULTS, then the chosen preset
(PRESETS["cpu"] or PRESETS["paper"]), then keyword arguments given by the caller.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..perturbation import Perturbation, check_eps
from ..training import Checkpoint

ATTACKS: dict[str, type["Attack"]] = {}


def register_attack(cls):
    ATTACKS[cls.name] = cls
    return cls


def list_attacks() -> list[str]:
    return sorted(ATTACKS)


# The ImageNet-pretrained surrogate that a starred name (EM*, TAP*, REM*) selects, per preset.
PRETRAINED_SURROGATES = {"cpu": "efficientnet_lite0", "paper": "resnet18_imagenet"}


def create_attack(name: str, **kwargs) -> "Attack":
    """A method by name; `name*` (e.g. "em*") is the method with an ImageNet-pretrained surrogate,
    the variants the BAIT paper compares against. Explicit keyword options win over both."""
    key = name.lower().replace("-", "_")
    star = key.endswith("*")
    key = key.rstrip("*")
    if key not in ATTACKS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(list_attacks())} "
                         "(add * for a pretrained surrogate, e.g. em*)")
    cls = ATTACKS[key]
    if star:
        if "surrogate" not in cls.DEFAULTS:
            raise ValueError(f"{name!r}: {key} trains no surrogate, so it has no pretrained variant")
        preset = kwargs.get("preset", "cpu")
        pretrained = {"surrogate": PRETRAINED_SURROGATES.get(preset, "resnet18_imagenet"),
                      "surrogate_init": "imagenet", **cls.PRETRAINED}
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
    DEFAULTS: dict = {}
    PRESETS: dict[str, dict] = {"cpu": {}, "paper": {}}
    PRETRAINED: dict = {"surrogate_lr": 0.01}  # what else a pretrained surrogate changes (name*)

    def __init__(self, eps: float | None = None, *, seed: int = 0, preset: str = "cpu", device=None,
                 progress: bool = True, checkpoint: str | Path | None = None, **options):
        eps = check_eps(self.default_eps if eps is None else eps, self.norm)
        if preset not in self.PRESETS:
            raise ValueError(f"unknown preset {preset!r} for {self.name}; choose from {sorted(self.PRESETS)}")
        unknown = set(options) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(f"{self.name} has no option(s) {sorted(unknown)}; options: {sorted(self.DEFAULTS)}")
        from ..distributed import is_main, local_device

        self.eps, self.seed, self.preset = eps, seed, preset
        self.progress = progress and is_main()  # under torchrun one progress bar, rank 0's
        self.device = torch.device(device) if device else local_device()  # under torchrun: this process's GPU
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.options = {**self.DEFAULTS, **self.PRESETS[preset], **options}

    def __getattr__(self, key):
        options = self.__dict__.get("options", {})
        if key in options:
            return options[key]
        raise AttributeError(key)

    def settings(self) -> dict:
        return {"method": self.name, "eps": self.eps, "norm": self.norm, "seed": self.seed, "preset": self.preset, **self.options}

    def fit(self, train_set) -> Perturbation:
        raise NotImplementedError

    def open_checkpoint(self):
        """This fit's checkpoint (a no-op without a `checkpoint` path), remembered for
        `resumed_seconds`."""
        self._checkpoint = Checkpoint(self.checkpoint)
        return self._checkpoint

    @property
    def resumed_seconds(self) -> float:
        """Seconds the last fit had spent before it was interrupted and resumed from its
        checkpoint (0 for a fit that ran in one go): add them to this run's time."""
        ckpt = self.__dict__.get("_checkpoint")
        return ckpt.resumed_seconds if ckpt is not None else 0.0

    def perturbation(self, delta: torch.Tensor, kind: str, **meta) -> Perturbation:
        return Perturbation(delta, self.eps, kind, self.name, {**self.settings(), **meta}, self.norm)


def build_surrogate(name: str, init: str, num_classes: int, input_size: int | None = None):
    from ..models import create_model

    if init not in ("imagenet", "scratch"):
        raise ValueError(f"surrogate init must be imagenet or scratch, got {init!r}")
    return create_model(name, num_classes, pretrained=init == "imagenet", input_size=input_size)
