"""How visible are class-wise perturbations in frozen ImageNet features, next to the image content?

A gentle fine-tune starts from the pretrained features and mostly trains a head on them, so it
learns first whatever separates the classes best in those features. For each class-wise
perturbation given, this prints Fisher separability ratios (between-class over within-class
scatter, traces) of frozen pretrained features:

  content      clean images grouped by their label (what the victim can learn from the images);
  perturbation x + delta_c for images x paired with a random class c, grouped by c (the
               perturbation alone: content carries no information about c);
  protected    x + delta_y grouped by y (the training set as the victim sees it).

Usage: python experiments/feature-separability.py FOLDER [FOLDER ...]
  (exported folders of class-wise methods, e.g. runs/demo/protected/em runs/demo/protected/bait)
Environment: UNLEARNABLE_DATA (the clean training data the folders were made from),
TRAIN_PER_CLASS (default 500) and SEED (default 0) as used for the folders, and BACKBONES
(comma-separated model names; default efficientnet_lite0,efficientnet_lite1) and SIZES (default 32,64).
"""

import os
import sys
from pathlib import Path

import torch

from unlearnable.attacks.common import class_means
from unlearnable.data import balanced_subset, load_dataset
from unlearnable.models import create_model
from unlearnable.perturbation import Perturbation, add_float
from unlearnable.training import to_float

BACKBONES = tuple(os.environ.get("BACKBONES", "efficientnet_lite0,efficientnet_lite1").split(","))
SIZES = tuple(int(s) for s in os.environ.get("SIZES", "32,64").split(","))


def fisher_ratio(feats: torch.Tensor, groups: torch.Tensor, k: int) -> float:
    """trace(between-class scatter) / trace(within-class scatter), per image."""
    means, n = class_means(feats, groups, k)
    within = (feats - means[groups]).pow(2).sum() / len(feats)
    between = (n[:, None] * (means - feats.mean(0)).pow(2)).sum() / len(feats)
    return (between / within).item()


@torch.no_grad()
def features(model, images: torch.Tensor, bs: int = 250) -> torch.Tensor:
    return torch.cat([model.features(model.preprocess(images[i : i + bs])) for i in range(0, len(images), bs)])


def main(folders: list[str]) -> None:
    torch.manual_seed(0)
    train = balanced_subset(
        load_dataset("cifar10", "train"),
        int(os.environ.get("TRAIN_PER_CLASS", 500)),
        seed=int(os.environ.get("SEED", 0)),
    )
    k, cpu = train.num_classes, torch.device("cpu")
    x = to_float(train.images, cpu)
    y = train.labels
    c = torch.randint(k, y.shape)  # random pairing: the perturbation's class, independent of content
    deltas = {Path(f).name: Perturbation.load(Path(f) / "perturbation.safetensors") for f in folders}
    for name, p in deltas.items():
        if p.kind != "classwise":
            sys.exit(f"{name}: a {p.kind} perturbation; this measure is for class-wise ones")
    print(
        "| backbone | input px | content | " + " | ".join(f"{n}: perturbation | {n}: protected" for n in deltas) + " |"
    )
    print("|---|---|---|" + "---|---|" * len(deltas))
    for backbone in BACKBONES:
        for size in SIZES:
            model = create_model(backbone, k, pretrained=True, input_size=size).eval()
            row = [backbone, str(size), f"{fisher_ratio(features(model, x), y, k):.3f}"]
            for p in deltas.values():
                d = p.delta
                row.append(f"{fisher_ratio(features(model, add_float(x, d[c])), c, k):.3f}")
                row.append(f"{fisher_ratio(features(model, add_float(x, d[y])), y, k):.3f}")
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
