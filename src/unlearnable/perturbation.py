"""The Perturbation: what every attack returns, and the one way it is applied to images.

A perturbation is stored in float on the [0, 1] image scale, either one tensor per class
(class-wise, indexed by label) or one per image (sample-wise, indexed by position in the
training set). Applying it always goes through `quantize`, so every exported pixel obeys
|protected - clean| <= budget on the 0-255 scale, rounded (not truncated) with its sign kept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

KINDS = ("classwise", "samplewise")


def budget_levels(eps: float) -> int:
    """Largest allowed |change| of an 8-bit pixel for an Linf budget eps on the [0, 1] scale."""
    return int(math.floor(eps * 255 + 1e-6))


def quantize(images: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """uint8 images + float delta -> uint8 protected images within the budget.

    The change is rounded to the nearest 8-bit level (so small negative entries stay
    negative instead of being truncated towards zero), capped at the budget, and the
    result clipped to the valid range.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    levels = budget_levels(eps)
    change = torch.round(delta.float() * 255).clamp_(-levels, levels)
    return (images.float() + change).clamp_(0, 255).to(torch.uint8)


def add_float(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Differentiable x + delta for optimization on float images in [0, 1]."""
    return (x + delta).clamp(0, 1)


@dataclass
class Perturbation:
    delta: torch.Tensor  # (K, C, H, W) class-wise or (N, C, H, W) sample-wise, [0, 1] scale
    eps: float  # Linf budget on the [0, 1] scale
    kind: str = "classwise"
    method: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.delta.dim() != 4:
            raise ValueError(f"delta must have shape (K or N, C, H, W), got {tuple(self.delta.shape)}")
        if not 0 < self.eps <= 1:
            raise ValueError(f"eps must be in (0, 1], got {self.eps}")
        self.delta = self.delta.detach().float().cpu().clamp(-self.eps, self.eps).contiguous()

    def __len__(self) -> int:
        return self.delta.shape[0]

    def for_batch(self, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The delta of each image in a batch: by label (class-wise) or by sample index."""
        rows = labels if self.kind == "classwise" else indices
        return self.delta.to(labels.device)[rows]

    def check_fits(self, dataset) -> None:
        n, shape = len(self), tuple(self.delta.shape[1:])
        if shape != tuple(dataset.images.shape[1:]):
            raise ValueError(f"perturbation is {shape} per image but the images are {tuple(dataset.images.shape[1:])}")
        need = dataset.num_classes if self.kind == "classwise" else len(dataset)
        if n != need:
            what = "classes" if self.kind == "classwise" else "images"
            raise ValueError(f"{self.kind} perturbation has {n} entries but the dataset has {need} {what}")

    def apply(self, dataset):
        """Protected copy of `dataset` (uint8), quantized within the budget."""
        self.check_fits(dataset)
        idx = torch.arange(len(dataset))
        protected = quantize(dataset.images, self.for_batch(dataset.labels, idx), self.eps)
        return type(dataset)(protected, dataset.labels.clone(), list(dataset.classes),
                             list(dataset.files) if dataset.files is not None else None)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        info = {"eps": repr(self.eps), "kind": self.kind, "method": self.method, "meta": json.dumps(self.meta)}
        tmp = path.with_name(path.name + ".tmp")
        save_file({"delta": self.delta}, str(tmp), metadata=info)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "Perturbation":
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                info = f.metadata() or {}
            delta = load_file(str(path))["delta"]
            return cls(delta, float(info["eps"]), info.get("kind", "classwise"), info.get("method", ""),
                       json.loads(info.get("meta", "{}")))
        except Exception as e:  # safetensors raises its own error type for malformed files
            raise ValueError(f"{path}: not a perturbation file written by unlearnable ({e})") from e
