"""Victim training: how well does a model trained on (protected) data do on clean test data?

A victim is a model name x init (scratch | imagenet) x protocol (finetune | linear) x recipe.
Recipes come from presets: `paper` is the BAIT paper's protocol, `cpu` is sized to show the
same effect on a 2-core machine in minutes. Every run returns one JSON-able record with the
per-epoch history and both the final and the best test accuracy.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, fields

import numpy as np
import torch

from . import __version__
from .data.official import dataset_preset
from .distributed import parse_device
from .training import TrainConfig, train_classifier

# Victim recipes. Keys: (preset, init). "model" and "input_size" pick the default victim.
VICTIM_PRESETS: dict[tuple[str, str], dict] = {
    # The paper: ImageNet ResNet-18 fine-tuned end to end at 32 px, SGD 1e-3, cosine, 60 epochs;
    # from scratch: CIFAR ResNet-18 at lr 0.1.
    ("paper", "imagenet"): {
        "model": "resnet18_imagenet",
        "input_size": None,
        "epochs": 60,
        "batch_size": 128,
        "lr": 0.001,
        "schedule": "cosine",
        "grad_clip": 5.0,
        "weight_decay": 5e-4,
    },
    ("paper", "scratch"): {
        "model": "resnet18",
        "input_size": None,
        "epochs": 60,
        "batch_size": 128,
        "lr": 0.1,
        "schedule": "cosine",
        "grad_clip": 5.0,
        "weight_decay": 5e-4,
    },
    # CPU: EfficientNet-Lite0 (ImageNet) fine-tuned at 64 px; a small CNN from scratch.
    ("cpu", "imagenet"): {
        "model": "efficientnet_lite0",
        "input_size": 64,
        "epochs": 8,
        "batch_size": 64,
        "lr": 0.02,
        "schedule": "onecycle",
        "grad_clip": 5.0,
        "weight_decay": 5e-4,
        "head_lr_scale": 5.0,
    },
    ("cpu", "scratch"): {
        "model": "small_cnn",
        "input_size": None,
        "epochs": 15,
        "batch_size": 128,
        "lr": 0.05,
        "schedule": "onecycle",
        "grad_clip": 5.0,
        "weight_decay": 5e-4,
    },
}
LINEAR_LR = {"paper": 0.01, "cpu": 0.05}


def victim_recipe(
    preset: str, init: str, protocol: str = "finetune", dataset: str | None = None, **overrides
) -> tuple[str, int | None, TrainConfig]:
    """(model name, input size, training config) for a preset, with explicit overrides applied;
    with preset="paper" and a dataset name, the paper's epochs and weight decay for that dataset."""
    if (preset, init) not in VICTIM_PRESETS:
        raise ValueError(
            f"no victim preset for preset={preset!r} init={init!r}; presets: cpu, paper; inits: scratch, imagenet"
        )
    recipe = dict(VICTIM_PRESETS[preset, init])
    if protocol == "linear":
        recipe["lr"] = LINEAR_LR[preset]
    data_preset = dataset_preset(dataset)
    if preset == "paper" and data_preset:
        recipe["epochs"] = data_preset["paper_epochs"]
        recipe["weight_decay"] = data_preset.get("paper_weight_decay", recipe["weight_decay"])
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    model = recipe.pop("model")
    input_size = recipe.pop("input_size")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(recipe) - known
    if unknown:
        raise ValueError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(known)}")
    return model, input_size, TrainConfig(**recipe)


def victim_input_size(model: str, preset_size: int | None, image_size: int) -> int | None:
    """The size a victim reads images at when --input-size is not given: the preset's (small
    images are enlarged to it, e.g. CIFAR-10 to 64 px for a pretrained CPU victim), but larger
    images are never shrunk below their own size, up to the model's natural resolution (a
    224 px photo reaches an ImageNet model at 224 px)."""
    from .models import model_info

    if preset_size is None or image_size <= preset_size:
        return preset_size
    return max(preset_size, min(image_size, model_info(model)["natural_input_size"]))


def check_victim(
    *,
    victim: str | None = None,
    init: str = "imagenet",
    protocol: str = "finetune",
    preset: str = "cpu",
    dataset: str | None = None,
    defense=None,
    **overrides,
) -> tuple[str, str, int | None, TrainConfig]:
    """(model name, protocol, preset input size, training config) of a victim, every option checked
    (init, protocol, the model's name, the recipe's values) before any data is read; a defense
    that imposes a protocol (the linear probe) sets it."""
    from .models import model_info

    if defense is not None and defense.protocol:
        protocol = defense.protocol
    if init not in ("scratch", "imagenet"):
        raise ValueError(f"--init must be scratch or imagenet, got {init!r}")
    if protocol not in ("finetune", "linear"):
        raise ValueError(f"--protocol must be finetune or linear, got {protocol!r}")
    if protocol == "linear" and init == "scratch":
        raise ValueError("a linear probe needs a pretrained backbone: use --init imagenet")
    name, preset_size, cfg = victim_recipe(preset, init, protocol, dataset=dataset, **overrides)
    name = victim or name
    model_info(name)  # an unknown model name fails here
    return name, protocol, preset_size, cfg


def partly_protected(protected, clean, *, fraction: float | None = None, classes=None, seed: int = 0):
    """A training set in which only part of the images are protected: an owner's photos are usually
    a part of what a trainer collects. `protected` and `clean` hold the same images in the same
    order; `classes` (names) limits protection to those classes, `fraction` to that part of every
    class's images (drawn with `seed`). Returns (the mixed set, the boolean mask of protected images)."""
    if len(protected) != len(clean) or not torch.equal(protected.labels, clean.labels):
        raise ValueError("the protected and clean sets must hold the same images in the same order")
    mask = torch.ones(len(clean), dtype=torch.bool)
    if classes:
        unknown = [c for c in classes if c not in clean.classes]
        if unknown:
            raise ValueError(f"--protected-classes: no class {unknown[0]!r}; classes: {', '.join(clean.classes)}")
        mask &= torch.isin(clean.labels, torch.tensor([clean.classes.index(c) for c in classes]))
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"--protected-fraction must be in (0, 1], got {fraction}")
        gen = torch.Generator().manual_seed(seed)
        chosen = torch.zeros_like(mask)
        for c in range(clean.num_classes):
            idx = (clean.labels == c).nonzero().flatten()
            chosen[idx[torch.randperm(len(idx), generator=gen)[: round(fraction * len(idx))]]] = True
        mask &= chosen
    images = torch.where(mask.view(-1, 1, 1, 1), protected.images, clean.images)
    return clean.with_images(images), mask


def class_split_accuracy(record: dict, classes: list[str], protected_classes) -> dict:
    """Final-epoch test accuracy on the protected classes and on the others (means over classes)."""
    per = record["history"][-1].get("test_class_acc")
    if not per or not protected_classes:
        return {}
    inside = [per[classes.index(c)] for c in protected_classes]
    outside = [a for c, a in zip(classes, per) if c not in protected_classes]
    return {
        "protected_classes_acc": sum(inside) / len(inside),
        "other_classes_acc": sum(outside) / len(outside) if outside else None,
    }


def versions() -> dict:
    return {
        "unlearnable": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def run(
    train_set,
    test_set,
    *,
    victim: str | None = None,
    init: str = "imagenet",
    protocol: str = "finetune",
    preset: str = "cpu",
    seed: int = 0,
    input_size: int | None = None,
    device=None,
    progress: bool = True,
    checkpoint=None,
    defense=None,
    dataset: str | None = None,
    predictions: bool = False,
    **overrides,
) -> dict:
    """Train a victim on `train_set`, test on the clean `test_set` after every epoch (with
    `predictions`, keeping every test image's predicted label: training.train_classifier).

    `dataset`: the name of a benchmark dataset (cifar10, cifar100, svhn, fashion-mnist, ...) whose
    preset applies: its normalization for scratch models, and with preset="paper" the paper's
    epochs and weight decay for it.
    `defense`: None, a name (see unlearnable.defenses) or a Defense object, applied by the
    trainer (its data preparation, batch transforms or loss; a linear probe sets the protocol).
    """
    from .defenses import Defense, create_defense
    from .models import create_model

    if not isinstance(defense, Defense):
        defense = create_defense(defense)
    name, protocol, preset_size, cfg = check_victim(
        victim=victim, init=init, protocol=protocol, preset=preset, dataset=dataset, defense=defense, **overrides
    )
    device = parse_device(device)
    if train_set.num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes; the training data has {train_set.classes}")
    try:
        test_set = test_set.with_class_order(train_set.classes)
    except ValueError:
        raise ValueError(f"train and test classes differ: {train_set.classes} vs {test_set.classes}") from None
    data_preset = dataset_preset(dataset)
    if defense is not None:
        train_set, test_set = defense.prepare(train_set, test_set)
    input_size = input_size or victim_input_size(name, preset_size, train_set.image_size)
    torch.manual_seed(seed)
    model = create_model(name, train_set.num_classes, pretrained=init == "imagenet", input_size=input_size)
    if init == "scratch" and data_preset:  # a scratch model normalizes with its training set's statistics
        model.mean.copy_(torch.tensor(data_preset["mean"]).view_as(model.mean))
        model.std.copy_(torch.tensor(data_preset["std"]).view_as(model.std))
    result = train_classifier(
        model,
        train_set,
        cfg,
        test_set=test_set,
        protocol=protocol,
        seed=seed,
        device=device,
        checkpoint=checkpoint,
        progress=progress,
        desc=f"{name}/{init}",
        defense=defense,
        about={"victim": name, "init": init, "input_size": input_size, "dataset": dataset},
        predictions=predictions,
    )
    result.update(
        {
            "victim": name,
            "init": init,
            "input_size": input_size,
            "preset": preset,
            "defense": defense.settings() if defense is not None else None,
            "n_train": len(train_set),
            "n_test": len(test_set),
            "device": str(device),
            "versions": versions(),
        }
    )
    result["config"] = asdict(cfg)
    return result
