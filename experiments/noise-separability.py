"""Is a protection's noise a shortcut? How well one linear map from the noise alone predicts the
label (Yu et al., KDD 2022: working availability poisons are linearly separable, noise that is
not gives a victim nothing faster to learn than the images).

For each exported folder: delta = exported 8-bit image - its clean source (what a victim sees),
a ridge least-squares map from delta (3,072 values) onto one-hot labels fitted on 80% of the
images, accuracy on the other 20%; the same for the clean images and for the protected ones.

    UNLEARNABLE_DATA=../shared/data python experiments/noise-separability.py FOLDER [FOLDER ...]
"""

import sys

import torch

from unlearnable.data import load_dataset
from unlearnable.protect import clean_input


def linear_accuracy(x: torch.Tensor, y: torch.Tensor, k: int, seed: int = 0, ridge: float = 1.0) -> float:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    cut = int(0.8 * len(x))
    fit, held = order[:cut], order[cut:]
    x = x.flatten(1).double()
    x = (x - x[fit].mean(0)) / (x[fit].std(0) + 1e-8)
    xf = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    targets = torch.nn.functional.one_hot(y, k).double()
    a = xf[fit].T @ xf[fit] + ridge * torch.eye(xf.shape[1], dtype=x.dtype)
    w = torch.linalg.solve(a, xf[fit].T @ targets[fit])
    return ((xf[held] @ w).argmax(1) == y[held]).double().mean().item()


def main(folders: list[str]) -> None:
    print("| folder | noise alone | clean images | protected images | mean abs noise (levels) |")
    print("|---|---|---|---|---|")
    for folder in folders:
        made = load_dataset(folder, "train", cache=False)
        clean = clean_input(folder, made)
        assert torch.equal(made.labels, clean.labels), f"{folder}: labels differ from its clean source"
        delta = made.images.short() - clean.images.short()
        k = made.num_classes
        accs = [linear_accuracy(t, made.labels, k) for t in (delta, clean.images, made.images)]
        print(
            f"| {folder} | {100 * accs[0]:.1f} | {100 * accs[1]:.1f} | {100 * accs[2]:.1f} | "
            f"{delta.abs().float().mean():.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
