"""The common wrapper every model in the toolkit is built from.

Convention: a model receives float images in [0, 1] with shape (N, 3, H, W).
Input normalization (and, when requested, a resize to a fixed input size) is part
of the model's ``forward``, so attacks can optimise perturbations directly in pixel
space and every victim sees the same data regardless of its preprocessing.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ImageClassifier", "CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN", "IMAGENET_STD"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _channel_stats(values: float | Sequence[float], what: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.repeat(3)
    if t.numel() != 3:
        raise ValueError(f"{what} must have 1 or 3 values, got {t.numel()}")
    return t.view(3, 1, 1)


class ImageClassifier(nn.Module):
    """``features`` maps normalized images to a pooled (N, D) vector; ``head`` maps it to logits.

    Args:
        features: module returning an (N, num_features) tensor (global pooling and
            flattening included).
        num_features: D, the width of the pooled feature vector.
        num_classes: number of output logits.
        mean, std: per-channel normalization applied to the [0, 1] input (buffers).
        input_size: when set, inputs whose height or width differs from it are
            bilinearly resized (align_corners=False, antialias=False) to
            input_size x input_size before normalization. ``None`` runs the model at
            the size of the data.
        name: registry name, for logs and reports.
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(
        self,
        features: nn.Module,
        num_features: int,
        num_classes: int,
        *,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        input_size: int | None = None,
        name: str = "",
    ) -> None:
        super().__init__()
        num_classes = _check_num_classes(num_classes)
        if input_size is not None and (not isinstance(input_size, int) or input_size <= 0):
            raise ValueError(f"input_size must be a positive int or None, got {input_size!r}")
        std_t = _channel_stats(std, "std")
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be positive, got {tuple(std_t.flatten().tolist())}")
        self.register_buffer("mean", _channel_stats(mean, "mean"))
        self.register_buffer("std", std_t)
        self.features = features
        self.num_features = int(num_features)
        self.num_classes = int(num_classes)
        self.input_size = input_size
        self.name = name
        self.head = nn.Linear(self.num_features, self.num_classes)

    # ------------------------------------------------------------------ forward
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (if ``input_size`` is set and differs) and normalize a [0, 1] batch."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
        if self.input_size is not None and (x.shape[-2] != self.input_size or x.shape[-1] != self.input_size):
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=False,
            )
        return (x - self.mean) / self.std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled (N, D) features of a [0, 1] image batch."""
        return self.features(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    # --------------------------------------------------------------------- head
    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised ``nn.Linear`` with K outputs."""
        num_classes = _check_num_classes(num_classes)
        ref = self.head.weight
        self.head = nn.Linear(self.num_features, num_classes).to(device=ref.device, dtype=ref.dtype)
        self.num_classes = int(num_classes)

    @property
    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the linear classifier (what a linear probe trains)."""
        return self.head.parameters()

    @property
    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter outside the head (what a linear probe freezes)."""
        return self.features.parameters()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_size={self.input_size}, num_features={self.num_features}"


def _check_num_classes(num_classes: int) -> int:
    try:
        k = operator.index(num_classes)
    except TypeError:
        k = None
    if isinstance(num_classes, bool) or k is None or k <= 0:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return k
