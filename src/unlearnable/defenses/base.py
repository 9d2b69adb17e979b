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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFENSES: dict[str, type[Defense]] = {}


def register_defense(cls):
    DEFENSES[cls.name] = cls
    return cls


def list_defenses() -> list[str]:
    return sorted(DEFENSES)


def create_defense(name: str | None, **options) -> Defense | None:
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
    DEFAULTS: dict = {}
    protocol: str | None = None  # a protocol this defense imposes (the linear probe)

    def __init__(self, **options):
        unknown = set(options) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(
                f"defense {self.name} has no option {', '.join(sorted(unknown))}; "
                f"its options are {', '.join(sorted(self.DEFAULTS))}"
            )
        self.options = {**self.DEFAULTS, **options}
        self.validate()

    def __getattr__(self, key):
        options = self.__dict__.get("options", {})
        if key in options:
            return options[key]
        raise AttributeError(key)

    def validate(self) -> None:
        pass

    def settings(self) -> dict:
        return {"defense": self.name, **self.options}

    def prepare(self, train_set, test_set):
        return train_set, test_set

    def pre_augment(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def pre_test(self, x: torch.Tensor) -> torch.Tensor:
        """What the trainer does to a float batch of test images at inference; most defenses
        change only the training and leave test images as they are."""
        return x

    def batch(self, model, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        return x, y

    def loss(
        self, model, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, logits whose argmax is scored against y for the train accuracy)."""
        x, target = self.batch(model, x, y, gen)
        out = model(x)
        return F.cross_entropy(out, target, label_smoothing=label_smoothing), out
