"""The defense interface: what a model trainer might do to get around a protection.

A defense acts at any of these points of the one training loop:
  prepare(train, test)      once, on the uint8 datasets before training (ISS squeezing; the
                            projection fits its linear model here): returns the datasets to use;
  pre_augment(x)            every float batch before the standard crop/flip (the projection);
  batch(model, x, y, gen)   every batch after crop/flip (cutout, cutmix, mixup, adversarial
                            training): returns the inputs and the targets, either class
                            indices or per-class probabilities (mixing defenses);
  loss(model, x, y, gen)    the training loss itself, when a defense needs more than new inputs
                            (UEraser: the worst of several augmented copies per image).
A defense may also change the protocol (linear probe) through `protocol`.

    defense = create_defense("jpeg", quality=10)

A defense's options are a frozen dataclass (its `Options`), checked against their types and
bounds when the defense is built.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.dataset import ImageDataset
from ..options import NoOptions, options_of

DEFENSES: dict[str, type[Defense]] = {}


def register_defense(cls: type[Defense]) -> type[Defense]:
    DEFENSES[cls.name] = cls
    return cls


def list_defenses() -> list[str]:
    return sorted(DEFENSES)


def create_defense(name: str | None, **options: Any) -> Defense | None:
    """A defense by name with its options; None or "none" gives no defense."""
    if name is None or name == "none":
        if options:
            raise ValueError(f"options {sorted(options)} given without a defense")
        return None
    key = name.lower().replace("-", "_")
    if key not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; available: {', '.join(list_defenses())}")
    return DEFENSES[key](**options)


class Defense:
    name = ""
    summary = ""
    Options: ClassVar[type[Any]] = NoOptions  # the defense's options, a frozen dataclass checked when built
    protocol: str | None = None  # a protocol this defense imposes (the linear probe)

    def __init__(self, **options: Any) -> None:
        self.options = options_of(self.Options, options, f"defense {self.name}")
        self.validate()

    def validate(self) -> None:
        """Checks that involve several options (a defense's own)."""

    def settings(self) -> dict[str, Any]:
        return {"defense": self.name, **asdict(self.options)}

    def prepare(
        self, train_set: ImageDataset, test_set: ImageDataset | None
    ) -> tuple[ImageDataset, ImageDataset | None]:
        return train_set, test_set

    def pre_augment(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def pre_test(self, x: torch.Tensor) -> torch.Tensor:
        """What the trainer does to a float batch of test images at inference; most defenses
        change only the training and leave test images as they are."""
        return x

    def batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, logits whose argmax is scored against y for the train accuracy)."""
        x, target = self.batch(model, x, y, gen)
        out: torch.Tensor = model(x)
        return F.cross_entropy(out, target, label_smoothing=label_smoothing), out
