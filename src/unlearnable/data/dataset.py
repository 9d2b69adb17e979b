"""The in-memory image dataset every part of the toolkit works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = ["ImageDataset", "balanced_subset"]


@dataclass
class ImageDataset:
    """A labelled image set held as one uint8 tensor.

    images: uint8, shape (N, 3, H, W), contiguous (made contiguous if it is not).
    labels: int64, shape (N,), each in [0, len(classes)).
    classes: class names; the label of an image is the index of its class here.
    files: the relative source path of every image (e.g. "cat/0001.jpg"), or None when unknown.
    budget: float (N, 1, H, W) share of the budget a look allows at every pixel (look.py), or None
        (the whole budget everywhere, the benchmark protocol).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    files: list[str] | None = None
    budget: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor, got {type(self.images).__name__}")
        if not isinstance(self.labels, torch.Tensor):
            raise ValueError(f"labels must be a torch.Tensor, got {type(self.labels).__name__}")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {self.images.dtype}")
        if self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64, got {self.labels.dtype}")
        if self.labels.dim() != 1:
            raise ValueError(f"labels must have shape (N,), got {tuple(self.labels.shape)}")
        n = self.images.shape[0]
        if self.labels.shape[0] != n:
            raise ValueError(f"{n} images but {self.labels.shape[0]} labels")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise ValueError("classes must name at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"class names must be unique, got {self.classes}")
        if n:
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= len(self.classes):
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"label {bad} is out of range for {len(self.classes)} classes "
                    f"(labels must be in [0, {len(self.classes) - 1}])"
                )
        if self.files is not None:
            self.files = [str(f) for f in self.files]
            if len(self.files) != n:
                raise ValueError(f"{n} images but {len(self.files)} file names")
        if not self.images.is_contiguous():
            self.images = self.images.contiguous()
        if self.budget is not None and (
            self.budget.shape != (n, 1, *self.images.shape[2:]) or not self.budget.is_floating_point()
        ):
            raise ValueError(f"budget must be float of shape ({n}, 1, H, W), got {tuple(self.budget.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        """Height of the images (the toolkit works on square images, so also the width)."""
        return int(self.images.shape[2])

    def subset(self, indices: torch.Tensor | list[int]) -> ImageDataset:
        """The images at `indices` (a list, an index tensor or a boolean mask), in that order."""
        idx = torch.as_tensor(indices)
        if idx.dtype == torch.bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean mask has shape {tuple(idx.shape)}, expected ({len(self)},)")
            idx = idx.nonzero().flatten()
        elif idx.numel() == 0:
            idx = idx.to(torch.int64).flatten()
        elif idx.is_floating_point() or idx.is_complex():
            raise ValueError(f"indices must be integers, got {idx.dtype}")
        idx = idx.to(torch.int64).flatten()
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} images")
        idx = torch.where(idx < 0, idx + len(self), idx)
        files = None
        if self.files is not None:
            files = [self.files[i] for i in idx.tolist()]
        budget = None if self.budget is None else self.budget[idx].contiguous()
        return ImageDataset(self.images[idx].contiguous(), self.labels[idx].clone(), list(self.classes), files, budget)

    def with_images(self, images: torch.Tensor) -> ImageDataset:
        """The same labelled set with other pixels (same shape), e.g. after a transformation."""
        if images.shape != self.images.shape:
            raise ValueError(f"new images have shape {tuple(images.shape)}, expected {tuple(self.images.shape)}")
        return ImageDataset(
            images, self.labels.clone(), list(self.classes), list(self.files) if self.files is not None else None
        )

    def with_class_order(self, classes: list[str]) -> ImageDataset:
        """The same images labelled by their class's index in `classes` (the same names in another
        order): a protected copy read back from folders lists classes alphabetically, while an
        official test set (Fashion-MNIST) keeps its own order."""
        if list(classes) == list(self.classes):
            return self
        if sorted(classes) != sorted(self.classes) or len(set(classes)) != len(classes):
            raise ValueError(f"class names differ: {list(self.classes)} vs {list(classes)}")
        where = {c: i for i, c in enumerate(classes)}
        mapping = torch.tensor([where[c] for c in self.classes], dtype=torch.int64)
        return ImageDataset(
            self.images, mapping[self.labels], list(classes), list(self.files) if self.files is not None else None
        )

    def digest(self) -> str:
        """sha256 over the pixels, labels, classes and file names (and a look's budget map): what a
        checkpoint records of its data (hashed in chunks, so a memory-mapped set is never copied
        whole)."""
        import hashlib

        return hashlib.sha256(repr(sorted(self.digests().items())).encode()).hexdigest()

    def digests(self) -> dict[str, str | None]:
        """One sha256 per part (names and shape, pixels, labels, budget map): a checkpoint that
        records them says which part of its data differs from a run's."""
        import hashlib

        def of(t: torch.Tensor) -> str:
            h = hashlib.sha256()
            flat = t.reshape(-1)
            step = 64 << 20
            for i in range(0, flat.numel(), step):
                h.update(flat[i : i + step].contiguous().cpu().numpy().tobytes())
            return h.hexdigest()

        names = repr((tuple(self.images.shape), self.classes, self.files)).encode()
        return {
            "names": hashlib.sha256(names).hexdigest(),
            "pixels": of(self.images),
            "labels": of(self.labels),
            "budget": None if self.budget is None else of(self.budget),  # a look's map is fitted on too
        }

    def class_counts(self) -> torch.Tensor:
        """Number of images of every class, int64 of shape (num_classes,)."""
        return torch.bincount(self.labels, minlength=self.num_classes)


def class_sizes(classes: list[str], per_class, option: str = "--train-per-class") -> list[int]:
    """How many images of every class a subset takes: `per_class` for each, or from a mapping of
    class names to numbers ("*": every class it does not name). A name that is no class, a missing
    "*" for classes left unnamed, or a number below 1 is an error naming `option`."""
    if isinstance(per_class, Mapping):
        unknown = sorted(set(per_class) - set(classes) - {"*"})
        if unknown:
            raise ValueError(f"{option}: {unknown[0]!r} is not a class of this set ({', '.join(classes)})")
        if "*" not in per_class and set(classes) - set(per_class):
            raise ValueError(f'{option} names no number for {sorted(set(classes) - set(per_class))[0]!r}; add "*": N')
        sizes = [per_class.get(c, per_class.get("*")) for c in classes]
    else:
        sizes = [per_class] * len(classes)
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{option}: images per class must be whole numbers >= 1, got {n!r}")
    return sizes


def balanced_subset(
    ds: ImageDataset,
    per_class: int | Mapping[str, int],
    seed: int = 0,
    *,
    option: str = "--train-per-class",
    skip: int = 0,
) -> ImageDataset:
    """`per_class` images of every class, drawn at random (seeded), in ascending original order.

    `per_class` is one number for every class, or a mapping of class names to numbers with "*"
    for the classes it does not name (`{"*": 500, "airplane": 50}`: a subject that is 1% of a
    set). The same dataset, per_class and seed always give the same images. `skip` draws the
    images that come after the first `skip` of every class's draw: with the same seed,
    `skip=per_class` gives a second subset disjoint from the first. `option` is the command-line
    option named in the error raised when a class has too few images.
    """
    sizes = class_sizes(ds.classes, per_class, option)
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    counts = ds.class_counts()
    for k, n in enumerate(sizes):
        if counts[k] < n + skip:
            more = f" besides the {skip} already drawn" if skip else ""
            raise ValueError(f"{option} {n}{more} but class '{ds.classes[k]}' has only {int(counts[k])} images")
    gen = torch.Generator().manual_seed(int(seed))
    # Stable sort by label: each class's indices form one contiguous, ascending block.
    order = torch.sort(ds.labels, stable=True).indices
    starts = torch.cumsum(counts, 0) - counts
    picks = []
    for k in range(ds.num_classes):
        chosen = torch.randperm(int(counts[k]), generator=gen)[skip : skip + sizes[k]]
        picks.append(order[starts[k] + chosen])
    idx = torch.sort(torch.cat(picks)).values
    return ds.subset(idx)
