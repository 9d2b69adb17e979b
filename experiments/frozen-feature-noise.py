"""Control for experiments/feature-separability.py: class-wise noise optimized only to separate its
classes in FROZEN pretrained features (EfficientNet-Lite0, ImageNet, eval mode), whatever the image.

Each step pairs a batch of images with random classes c and lowers log(within / between) class
scatter of f(x + delta_c), under the victims' crop/flip and at 32 or 64 px in turn. The noise
lives on an 8x8 grid (4x4-pixel patches), eps * tanh(w), like BAIT's `cpu` preset. The result is
exported as a protected folder, to be measured with feature-separability.py and `unlearnable
evaluate`.

Two runs are not bit-identical on CPU (a nondeterminism not traced; the optimization amplifies
it), so their noise differs, while the separability ratios they reach agree to about 0.002.

Usage: UNLEARNABLE_DATA=... python experiments/frozen-feature-noise.py OUT [STEPS]
"""

import sys
import time

import torch
import torch.nn.functional as F

from unlearnable.attacks.base import build_surrogate, seed_everything
from unlearnable.attacks.common import perturbed_batch
from unlearnable.data import balanced_subset, load_dataset
from unlearnable.export import export_protected
from unlearnable.outputs import check_output, input_paths
from unlearnable.perturbation import Perturbation
from unlearnable.training import to_float

SIZES, GRID, LR, BATCH, EPS = (32, 64), 8, 0.3, 128, 8 / 255


def scatter_loss(f: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    onehot = F.one_hot(c, k).to(f.dtype)
    n = onehot.sum(0).clamp(min=1)
    means = onehot.T @ f / n[:, None]
    within = (f - means[c]).pow(2).sum(1).mean()
    between = (n[:, None] * (means - f.mean(0)).pow(2)).sum() / len(c)
    return within.log() - between.log()


def main(out: str, steps: int) -> None:
    gen = seed_everything(0)
    train = balanced_subset(load_dataset("cifar10", "train"), 500, seed=0)
    k, cpu = train.num_classes, torch.device("cpu")
    model = build_surrogate("efficientnet_lite0", "imagenet", k).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    w = torch.zeros(k, 3, GRID, GRID, requires_grad=True)
    opt = torch.optim.Adam([w], lr=LR)

    def delta():
        return EPS * torch.tanh(F.interpolate(w, size=train.images.shape[-2:], mode="nearest"))

    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(train.images), (BATCH,), generator=gen)
        x, c = to_float(train.images[idx], cpu), torch.randint(k, (BATCH,), generator=gen)
        model.input_size = SIZES[step % len(SIZES)]
        loss = scatter_loss(
            model.features(model.preprocess(perturbed_batch(x, delta().index_select(0, c), True, gen))), c, k
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step}: log(within/between) {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    d = delta().detach()
    print(f"mean |delta| {d.abs().mean().item() * 255:.2f}/255")
    p = Perturbation(d, EPS, "classwise", "frozen-feature-noise")
    out = check_output(out, input_paths("cifar10"), True, "protect")  # replaces only an earlier output
    export_protected(
        out, train, p.apply(train), p, {"method": "frozen-feature-noise", "steps": steps}, replace=True, progress=False
    )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400)
