"""Is a protection's noise a shortcut? How well one linear map from the noise alone predicts the
label (Yu et al., KDD 2022: working availability poisons are linearly separable, noise that is
not gives a victim nothing faster to learn than the images).

For each exported folder: delta = exported 8-bit image - its clean source (what a victim sees),
a ridge least-squares map from delta (3,072 values) onto one-hot labels fitted on 80% of the
images, accuracy on the other 20%; the same for delta after a random crop (padding 4) and flip
per image, for the clean images and for the protected ones; and the share of delta's energy in
its class means and in each image's mean colour (the DC term of its spectrum).

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


def crop_flip(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The victims' augmentation, one draw per image: a 32x32 window of the 4-padded image, flipped half the time."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4))
    i, j = torch.randint(0, 9, (n,), generator=g), torch.randint(0, 9, (n,), generator=g)
    rows = (i[:, None] + torch.arange(h))[:, None, :, None].expand(n, 3, h, w + 8)
    out = padded.gather(2, rows)
    cols = (j[:, None] + torch.arange(w))[:, None, None, :].expand(n, 3, h, w)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def main(folders: list[str]) -> None:
    print(
        "| folder | noise alone | noise after crop/flip | clean images | protected images | "
        "class-mean share | DC share | mean abs noise (levels) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for folder in folders:
        made = load_dataset(folder, "train", cache=False)
        clean = clean_input(folder, made)
        assert torch.equal(made.labels, clean.labels), f"{folder}: labels differ from its clean source"
        delta = made.images.short() - clean.images.short()
        k = made.num_classes
        accs = [linear_accuracy(t, made.labels, k) for t in (delta, crop_flip(delta), clean.images, made.images)]
        d = delta.double()
        means = torch.stack([d[made.labels == c].mean(0) for c in range(k)])
        class_share = (means[made.labels] ** 2).sum() / (d**2).sum()
        spectrum = torch.fft.fft2(d).abs() ** 2
        dc_share = spectrum[..., 0, 0].sum() / spectrum.sum()
        print(
            f"| {folder} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + f" | {class_share:.2f} | "
            f"{dc_share:.2f} | {delta.abs().float().mean():.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
