"""One-pixel shortcut (OPS), Wu et al., "One-Pixel Shortcut", ICLR 2023.

No model: for each class, search every pixel position and every corner colour of the RGB cube
for the (position, colour) where the class's images are, on average, furthest from that colour
relative to how much they vary there (mean / std of |colour - pixel| over the class's images and
channels). That pixel is then SET to the colour in every image of the class: a change a network
picks up at once and that the class's own images almost never show. L0 budget: one pixel.
Stored sample-wise (the change depends on each image's own pixel value).
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.dataset import ImageDataset
from ..perturbation import Perturbation
from .base import Attack, register_attack, seed_everything

CORNERS = torch.tensor([[(v >> 2) & 1, (v >> 1) & 1, v & 1] for v in range(8)], dtype=torch.float32)


def ops_scores(images: torch.Tensor) -> torch.Tensor:
    """(8 colours, H*W) score of each corner colour at each pixel for one class's uint8 images."""
    x = images.float().div(255).flatten(2)  # (n, 3, HW)
    dev = (CORNERS[:, None, :, None] - x[None]).abs()  # (8, n, 3, HW)
    dev = dev.transpose(1, 2).flatten(1, 2)  # (8, n*3, HW): statistics over images and channels together
    mean, std = dev.mean(1), dev.std(1)
    return torch.where(std > 1e-6, mean / std.clamp(min=1e-6), torch.zeros_like(mean))  # no 0/0 picks


@register_attack
class OPS(Attack):
    name = "ops"
    summary = "one-pixel shortcut (Wu et al. 2023): per class, one pixel set to the colour the class lacks most"
    norm = "l0"
    default_eps = 1

    def fit(self, train_set: ImageDataset) -> Perturbation:
        seed_everything(self.seed)  # the search is deterministic; kept for a uniform interface
        images, labels = train_set.images, train_set.labels
        n, c, h, w = images.shape
        if c != 3:
            raise ValueError(f"ops: needs RGB images, got {c} channels")
        k = int(self.eps)
        delta = torch.zeros(images.shape)
        used: set[tuple[int, int]] = set()  # (position, colour) pairs already taken by a class
        picks: list[list[dict[str, Any]]] = []  # per class, the pixels it set
        for cls in range(train_set.num_classes):
            members = (labels == cls).nonzero().flatten()
            if len(members) == 0:
                picks.append([])
                continue
            scores = ops_scores(images[members]).flatten()  # index = colour * HW + position
            chosen = []
            for i in scores.argsort(descending=True).tolist():
                colour, pos = divmod(i, h * w)
                if (pos, colour) not in used:
                    used.add((pos, colour))
                    chosen.append((pos, colour))
                    if len(chosen) == k:
                        break
            for pos, colour in chosen:
                r, col = divmod(pos, w)
                x = images[members][:, :, r, col].float() / 255
                delta[members, :, r, col] = CORNERS[colour] - x
            picks.append(
                [
                    {"row": divmod(p, w)[0], "col": divmod(p, w)[1], "colour": CORNERS[co].int().tolist()}
                    for p, co in chosen
                ]
            )
        return self.perturbation(delta, "samplewise", pixels=picks)
