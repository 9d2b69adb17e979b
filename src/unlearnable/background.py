"""A background: public labelled images an owner's subjects are protected among.

The threat an owner faces is a scraped training set in which their subject (their face, their
artworks) is one class among many others' (Fawkes, Shan et al., USENIX Security 2020, protects
faces against a set of public identities the same way). A class-wise method needs other classes
to bind the subject's pattern against (BAIT points each class at the class it is least like), so
one subject alone cannot be fitted. With a background, the method is fitted on the owner's
photos as one class (or one class per subject) among the background's classes, at the working
size; only the owner's part of the perturbation is kept and only the owner's photos are written.
The background's own images are never written, and a victim that later trains on the owner's
published photos meets them among clean images of other classes, as in a scraped set.

The default background is CIFAR-10's training split (found or downloaded as every named dataset
is), a class-balanced subset of `DEFAULT_PER_CLASS` images per class, resized to the working size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT = "cifar10"
DEFAULT_PER_CLASS = 100
PREFIX = "background:"  # the background's class names, kept apart from the owner's


@dataclass(frozen=True)
class Background:
    """The background a protection is fitted among: its source and how many images per class."""

    source: str
    per_class: int = DEFAULT_PER_CLASS

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("--background names a dataset (e.g. cifar10) or a folder of labelled images")
        if isinstance(self.per_class, bool) or not isinstance(self.per_class, int) or self.per_class < 1:
            raise ValueError(f"--background-per-class must be a whole number >= 1, got {self.per_class!r}")

    def record(self, loaded=None) -> dict:
        """What a manifest and a plan say of it; with its `loaded` set, how many classes and images."""
        counts = {} if loaded is None else {"classes": loaded.num_classes, "images": len(loaded)}
        return {"source": self.source, "per_class": self.per_class, **counts}


def check_options(source: str | None, per_class: int | None) -> None:
    """--background and --background-per-class checked before any work, as a Background checks them."""
    named = source is not None and not (isinstance(source, str) and source.strip().lower() == "none")
    given = DEFAULT if source is None or not named else source
    Background(given, DEFAULT_PER_CLASS if per_class is None else per_class)


def resolve(source: str | None, per_class: int | None, classes: int, needed: int) -> Background | None:
    """The background a photo protection takes: `source` as given ("none": no background), or,
    when none is named, the default one when the owner's photos have fewer classes than the method
    needs (one subject); several subjects are protected among each other unless a background is
    named."""
    if source is not None and source.strip().lower() == "none":
        if per_class is not None:
            raise ValueError("--background-per-class needs a background; drop it or name one with --background")
        return None
    if source is None and classes >= needed:
        if per_class is not None:
            raise ValueError("--background-per-class needs a background; name one with --background (e.g. cifar10)")
        return None
    return Background(source or DEFAULT, DEFAULT_PER_CLASS if per_class is None else per_class)


def load(
    background: Background,
    size: int,
    seed: int = 0,
    download: bool = False,
    *,
    draw: int = 0,
    split="train",
    upto=False,
):
    """The background's class-balanced subset of `split` at size x size (resized after the subset
    is drawn, so the whole set is never resized), its classes prefixed (PREFIX) so that none can
    meet an owner's class of the same name. `draw` 1 gives images disjoint from draw 0's (the
    fit's) with the same seed: the other people's photos of a check's test models. `upto`: at most
    per_class images of every class, as many as its smallest class has when that is fewer."""
    from .data import DataError, ImageDataset, balanced_subset, load_dataset

    try:
        full = load_dataset(background.source, split, download=download)
    except (DataError, FileNotFoundError) as e:
        raise DataError(f"--background {background.source}: {e}") from None
    n = background.per_class
    if upto:
        n = min(n, int(full.class_counts().min()))
    ds = balanced_subset(full, n, seed=seed, option="--background-per-class", skip=draw * n)
    images = ds.images
    if ds.image_size != size or images.shape[3] != size:
        x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True)
        images = x.round_().clamp_(0, 255).to(torch.uint8)
    return ImageDataset(images, ds.labels, [PREFIX + c for c in ds.classes], ds.files)


def among(owner, background):
    """One training set: the background's images first, then the owner's with their classes after
    the background's; with a budget map wherever the owner's set has one (ones on the background)."""
    from .data import ImageDataset

    if owner.images.shape[1:] != background.images.shape[1:]:
        raise ValueError(
            f"background images are {tuple(background.images.shape[1:])}, the photos' working views "
            f"{tuple(owner.images.shape[1:])}"
        )
    k = len(background.classes)
    budget = None
    if owner.budget is not None:
        ones = torch.ones((len(background), 1, *background.images.shape[2:]))
        budget = torch.cat([ones, owner.budget])
    files = [f"{PREFIX}{i}" for i in range(len(background))] + list(owner.files or [])
    return ImageDataset(
        torch.cat([background.images, owner.images]),
        torch.cat([background.labels, owner.labels + k]),
        list(background.classes) + list(owner.classes),
        files if owner.files is not None else None,
        budget,
    )


def owners_part(perturbation, background_classes: int, background_images: int, **extra):
    """The owner's rows of a perturbation fitted on `among(owner, background)`: its classes after
    the background's (class-wise) or its images after the background's (sample-wise)."""
    from dataclasses import replace

    skip = background_classes if perturbation.kind == "classwise" else background_images
    return replace(perturbation, delta=perturbation.delta[skip:].clone(), meta={**perturbation.meta, **extra})
