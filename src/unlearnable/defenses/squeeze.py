"""Image shortcut squeezing (ISS), Liu et al., "Image Shortcut Squeezing: Countering Perturbative
Availability Poisons with Compression", ICML 2023.

Simple compressions applied to the training images before training (before the standard
crop/flip; the clean test images stay as they are, the reference's default): grayscale removes
colour patterns, low-quality JPEG removes high-frequency detail, bit-depth reduction (2 bits, as
in the authors' APBench) removes small amplitude changes. Each works on the uint8 images, once.
A downscale (shrunk and enlarged back) is the same kind of loss: the copy a scraper or a
thumbnailer keeps.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..data.augment import luma, rescale
from ..data.dataset import ImageDataset
from ..options import option
from .base import Defense, register_defense


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma (PIL's 'L' conversion), rounded, replicated to 3 channels."""
    grey = luma(images.float()).round().clamp(0, 255).to(torch.uint8)
    return grey.expand(-1, images.shape[1], -1, -1).contiguous()


def jpeg(images: torch.Tensor, quality: int) -> tuple[torch.Tensor, int]:
    """JPEG-encode and decode every image with PIL; also returns the total encoded bytes."""
    out = torch.empty_like(images)
    arr = images.permute(0, 2, 3, 1).numpy()
    total = 0
    for i in range(len(arr)):  # one-time preprocessing of the training set, not a training hot path
        buf = io.BytesIO()
        Image.fromarray(arr[i]).save(buf, format="JPEG", quality=quality)
        total += buf.tell()
        buf.seek(0)
        out[i] = torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy()).permute(2, 0, 1)
    return out, total


def bit_depth(images: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the top `bits` bits of every 8-bit value (a posterize: the low bits are zeroed)."""
    shift = 8 - bits
    return (images >> shift) << shift


@dataclass(frozen=True)
class JPEGOptions:
    quality: int = option(10, low=1, high=95)


@dataclass(frozen=True)
class BitDepthOptions:
    bits: int = option(2, low=1, high=7)


@dataclass(frozen=True)
class DownscaleOptions:
    factor: float = option(0.5, positive=True)  # below 1


class _Squeeze(Defense):
    apply_to_test = False

    def squeeze(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prepare(
        self, train_set: ImageDataset, test_set: ImageDataset | None
    ) -> tuple[ImageDataset, ImageDataset | None]:
        train = train_set.with_images(self.squeeze(train_set.images))
        test = test_set.with_images(self.squeeze(test_set.images)) if self.apply_to_test and test_set else test_set
        return train, test


@register_defense
class Grayscale(_Squeeze):
    name = "grayscale"
    summary = "ISS grayscale (Liu et al. 2023): train on luma replicated to 3 channels"

    def squeeze(self, images: torch.Tensor) -> torch.Tensor:
        return grayscale(images)


@register_defense
class JPEG(_Squeeze):
    name = "jpeg"
    summary = "ISS JPEG (Liu et al. 2023): train on JPEG-compressed images (quality 10)"
    Options = JPEGOptions

    def squeeze(self, images: torch.Tensor) -> torch.Tensor:
        return jpeg(images, self.options.quality)[0]


@register_defense
class BitDepth(_Squeeze):
    name = "bitdepth"
    summary = "ISS bit-depth reduction (Liu et al. 2023): train on images with few bits per channel"
    Options = BitDepthOptions

    def squeeze(self, images: torch.Tensor) -> torch.Tensor:
        return bit_depth(images, self.options.bits)


@register_defense
class Downscale(_Squeeze):
    name = "downscale"
    summary = "train on images shrunk by a factor (0.5) and enlarged back, as a downscaled copy keeps them"
    Options = DownscaleOptions

    def validate(self) -> None:
        if not self.options.factor < 1:
            raise ValueError(f"defense downscale: option factor must be below 1, got {self.options.factor}")

    def squeeze(self, images: torch.Tensor) -> torch.Tensor:
        out = rescale(images.float() / 255, self.options.factor)
        return (out * 255).round().clamp(0, 255).to(torch.uint8)
