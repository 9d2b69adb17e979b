"""The Perturbation: what every attack returns, and the one way it is applied to images.

A perturbation is stored in float on the [0, 1] image scale, either one tensor per class
(class-wise, indexed by label) or one per image (sample-wise, indexed by position in the
training set). Its budget `eps` is measured in one of three norms, per image:
    linf  |delta| <= eps at every pixel and channel (EM, TAP, REM, BAIT, random; 8/255)
    l2    ||delta||_2 <= eps over the whole image (AR, LSP; e.g. 1.0)
    l0    at most eps pixel positions changed, by any amount (OPS; eps = 1)
Applying it always goes through `quantize`, so every exported image obeys its budget on
the 8-bit scale: changes are rounded (not truncated) to the nearest level with their sign
kept, and capped so that rounding never takes an image over the budget.
"""

from __future__ import annotations

import errno
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

KINDS = ("classwise", "samplewise")
NORMS = ("linf", "l2", "l0")


def check_eps(eps: float, norm: str = "linf") -> float:
    """The budget, validated for its norm; raises ValueError saying what is expected."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps != eps:
        raise ValueError(f"eps must be a number on the [0, 1] image scale (e.g. 8/255 = {8 / 255:.4f}), got {eps!r}")
    if norm == "linf" and not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1] on the [0,1] image scale (8/255 = {8 / 255:.4f}), got {eps}")
    if norm == "l2" and not eps > 0:
        raise ValueError(f"an L2 budget must be positive (e.g. 1.0 on the [0,1] scale), got {eps}")
    if norm == "l0" and not (eps >= 1 and float(eps).is_integer()):
        raise ValueError(f"an L0 budget is a whole number of pixels >= 1, got {eps}")
    return float(eps)


def budget_levels(eps: float) -> int:
    """Largest allowed |change| of an 8-bit pixel for an Linf budget eps on the [0, 1] scale."""
    return int(math.floor(eps * 255 + 1e-6))


def budget_words(eps: float, norm: str = "linf") -> str:
    """A budget as people read it: 8/255 for an Linf budget on the 8-bit scale, else its number."""
    levels = eps * 255
    if norm == "linf" and abs(levels - round(levels)) < 1e-6:
        return f"{round(levels)}/255"
    return f"{norm} {eps:.6g}"


def project(delta: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """Nearest-in-spirit float delta within the budget: clamp (linf), rescale (l2), keep the
    eps strongest pixel positions (l0). Changes never exceed the image range [-1, 1]."""
    d = delta.float().clamp(-1, 1)
    if norm == "linf":
        return d.clamp(-eps, eps)
    if norm == "l2":  # rescale only what is over (with float slack), so projecting twice changes nothing
        n = d.flatten(1).norm(dim=1).clamp(min=1e-12)
        scale = torch.where(n > eps * (1 + 1e-5), eps / n, torch.ones_like(n))
        return d * scale.view(-1, *[1] * (d.dim() - 1))
    k = int(eps)
    strength = d.abs().amax(1).flatten(1)  # (N, H*W): strongest channel per pixel position
    if strength.shape[1] <= k:
        return d
    keep = torch.zeros_like(strength, dtype=torch.bool).scatter_(1, strength.topk(k, dim=1).indices, True)
    return d * keep.view(d.shape[0], 1, *d.shape[2:])


def rounded_change(delta: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """delta on the 8-bit scale, rounded to whole levels and held within the budget."""
    change = torch.round(delta.float() * 255)
    if norm == "linf":
        return change.clamp_(-budget_levels(eps), budget_levels(eps))
    change.clamp_(-255, 255)
    if norm == "l0":  # rounding only removes changed pixels, never adds one
        return change
    # l2: rounding can push a norm just over the budget; shrink those images and round again
    budget, scaled = eps * 255, delta.float() * 255
    for _ in range(30):
        norms = change.flatten(1).norm(dim=1)
        over = norms > budget + 1e-4
        if not over.any():
            return change
        scaled[over] *= (budget / norms[over] * 0.999).view(-1, *[1] * (scaled.dim() - 1))
        change[over] = torch.round(scaled[over])
    return torch.trunc(scaled).clamp_(-255, 255)  # never reached in practice; |trunc| <= |x| holds the budget


def quantize(images: torch.Tensor, delta: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """uint8 images + float delta -> uint8 protected images within the budget.

    The change is rounded to the nearest 8-bit level (so small negative entries stay
    negative instead of being truncated towards zero), held within the budget, and the
    result clipped to the valid range (which only ever shrinks a change).
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    change = rounded_change(delta, eps, norm)
    return (images.float() + change).clamp_(0, 255).to(torch.uint8)


def budget_used(clean: torch.Tensor, protected: torch.Tensor, norm: str = "linf", chunk: int = 1024) -> torch.Tensor:
    """Per-image size of the real change between two uint8 sets, in the budget's norm: linf and
    l2 on the [0, 1] scale, l0 as a count of changed pixel positions. Computed `chunk` images at
    a time, so a large set is never copied as floats."""
    if len(clean) > chunk:
        return torch.cat(
            [
                budget_used(clean[i : i + chunk], protected[i : i + chunk], norm, chunk)
                for i in range(0, len(clean), chunk)
            ]
        )
    d = (protected.float() - clean.float()) / 255
    if norm == "linf":
        return d.abs().flatten(1).amax(1)
    if norm == "l2":
        return d.flatten(1).norm(dim=1)
    return (d != 0).any(1).flatten(1).sum(1).float()


def budget_limit(eps: float, norm: str = "linf") -> float:
    """The largest budget_used an exported image may show: whole 8-bit levels for linf, with a
    float tolerance."""
    return (budget_levels(eps) / 255 if norm == "linf" else eps) + 1e-6


def within_budget(clean: torch.Tensor, protected: torch.Tensor, eps: float, norm: str = "linf") -> bool:
    return bool((budget_used(clean, protected, norm) <= budget_limit(eps, norm)).all())


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
    norm: str = "linf"  # how eps is measured: linf | l2 | l0 (see the module docstring)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.delta.dim() != 4:
            raise ValueError(f"delta must have shape (K or N, C, H, W), got {tuple(self.delta.shape)}")
        self.eps = check_eps(self.eps, self.norm)
        self.delta = project(self.delta.detach().float().cpu(), self.eps, self.norm).contiguous()

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

    def apply(self, dataset, chunk: int = 1024):
        """Protected copy of `dataset` (uint8), quantized within the budget and shaped by the look of
        its budget map, if any; computed `chunk` images at a time, into a disk-backed array for sets
        larger than memory (data/cache.py)."""
        from .data.cache import disk_array, mmap_threshold
        from .look import is_grey, shaped

        self.check_fits(dataset)
        images = dataset.images
        big = images.numel() > mmap_threshold()
        protected = torch.from_numpy(disk_array(tuple(images.shape))) if big else torch.empty_like(images)
        for i in range(0, len(dataset), chunk):
            part = slice(i, i + chunk)
            rows = torch.arange(i, min(i + chunk, len(dataset)))
            delta = self.for_batch(dataset.labels[part], rows)
            if dataset.budget is not None:  # a look: the photo's own budget map, grey on grey (look.py)
                delta = shaped(delta, dataset.budget[part], is_grey(images[part]))
            protected[part] = quantize(images[part], delta, self.eps, self.norm)
        return type(dataset)(
            protected,
            dataset.labels.clone(),
            list(dataset.classes),
            list(dataset.files) if dataset.files is not None else None,
        )

    def save(self, path: str | Path) -> None:
        path = Path(path)
        info = {
            "eps": repr(self.eps),
            "norm": self.norm,
            "kind": self.kind,
            "method": self.method,
            "meta": json.dumps(self.meta),
        }
        from .io import atomic_file

        with atomic_file(path) as tmp:
            try:
                save_file({"delta": self.delta}, str(tmp), metadata=info)
            except OSError:
                raise
            except Exception as e:  # safetensors reports a full disk as its own error type
                code = errno.ENOSPC if "os error 28" in str(e) else errno.EIO
                raise OSError(code, f"{os.strerror(code)} ({e})", str(path)) from e

    @classmethod
    def load(cls, path: str | Path) -> Perturbation:
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                info = f.metadata() or {}
            delta = load_file(str(path))["delta"]
            return cls(
                delta,
                float(info["eps"]),
                info.get("kind", "classwise"),
                info.get("method", ""),
                json.loads(info.get("meta", "{}")),
                info.get("norm", "linf"),
            )
        except Exception as e:  # safetensors raises its own error type for malformed files
            raise ValueError(f"{path}: not a perturbation file written by unlearnable ({e})") from e
