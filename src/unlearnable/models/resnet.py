"""ResNet-18 in two flavours.

* ``resnet18``: the CIFAR variant used throughout the unlearnable-examples
  literature (3x3 stride-1 stem, no max-pool), trained from scratch.
* ``resnet18_imagenet``: the ImageNet architecture (7x7 stride-2 stem + max-pool)
  whose trunk uses exactly torchvision's parameter/buffer names, so
  torchvision-format state dicts (e.g. the official ``resnet18-f37072fd.pth``)
  load directly into ``model.features``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .base import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from .registry import register_model
from .weights import (
    check_state_dict,
    default_cache_dir,
    hash_prefix_from_filename,
    load_state_dict_file,
)

__all__ = [
    "BasicBlock",
    "ResNetTrunk",
    "RESNET18_IMAGENET_URL",
    "RESNET18_WEIGHTS_ENV",
    "load_torchvision_resnet_state_dict",
    "resnet18",
    "resnet18_imagenet",
]

RESNET18_IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_WEIGHTS_ENV = "UNLEARNABLE_RESNET18_WEIGHTS"
_RESNET18_FILENAME = os.path.basename(RESNET18_IMAGENET_URL)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetTrunk(nn.Module):
    """ResNet with BasicBlocks up to global average pooling; returns (N, 512).

    ``stem="imagenet"``: 7x7/2 conv + 3x3/2 max-pool (torchvision layout and names).
    ``stem="cifar"``: 3x3/1 conv, no max-pool. ``base_width``: the first stage's channels (64;
    the stages double it), smaller for a from-scratch victim that trains in minutes on a CPU.
    """

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), *, stem: str = "imagenet", base_width: int = 64) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.stem = stem
        b = base_width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, b, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, b, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(b)
        self.relu = nn.ReLU(inplace=True)
        # The max-pool has no parameters, so the CIFAR trunk simply skips it.
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        widths = (b, 2 * b, 4 * b, 8 * b)
        in_planes = b
        for i, (width, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(in_planes, width, stride)]
            stage += [BasicBlock(width, width, 1) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            in_planes = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.num_features = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.flatten(self.avgpool(x))


def load_torchvision_resnet_state_dict(
    trunk: ResNetTrunk, state_dict: dict[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load a torchvision-format ResNet state dict into ``trunk``.

    ``fc.*`` (the ImageNet classifier) is dropped. Every other trunk parameter and
    buffer must be present with the right shape (``num_batches_tracked`` may be
    absent), and no extra keys are allowed; offending keys are named in the error.
    """
    sd = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    check_state_dict(
        trunk.state_dict(),
        sd,
        source,
        "is not a torchvision-format ResNet-18 state dict",
        optional_suffix="num_batches_tracked",
    )
    trunk.load_state_dict(sd, strict=False)


def _resnet18_weights_source(weights: str | None) -> tuple[str, str | None]:
    """(path or URL, expected sha256 prefix) for resnet18_imagenet."""
    if weights is not None:
        src = os.fspath(weights)
        name = os.path.basename(src.split("?", 1)[0])
        # torchvision's convention: the hex suffix of its file names is a sha256 prefix.
        official = name == _RESNET18_FILENAME or src.startswith("https://download.pytorch.org/")
        return src, hash_prefix_from_filename(name) if official else None
    env = os.environ.get(RESNET18_WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{RESNET18_WEIGHTS_ENV}={env!r} does not point to a file; set it to the path "
                f"of a torchvision-format resnet18 state dict (e.g. {_RESNET18_FILENAME})"
            )
        prefix = hash_prefix_from_filename(path.name) if path.name == _RESNET18_FILENAME else None
        return str(path), prefix
    return RESNET18_IMAGENET_URL, hash_prefix_from_filename(_RESNET18_FILENAME)


def _resnet18_weights_local() -> bool:
    env = os.environ.get(RESNET18_WEIGHTS_ENV)
    if env:
        return Path(env).expanduser().is_file()
    return (default_cache_dir() / _RESNET18_FILENAME).is_file()


@register_model(
    "resnet18",
    description="CIFAR ResNet-18 (3x3 stride-1 stem, no max-pool), 11.2M params, from scratch",
    pretrained=False,
    natural_input_size=32,
    no_weights_hint="Use 'resnet18_imagenet' for an ImageNet-pretrained ResNet-18.",
)
def resnet18(
    num_classes: int = 10,
    pretrained: bool = False,
    weights: str | None = None,
    input_size: int | None = None,
) -> ImageClassifier:
    """CIFAR-style ResNet-18 trained from scratch, CIFAR-10 normalization."""
    return _cifar_resnet18("resnet18", 64, num_classes, pretrained, weights, input_size)


@register_model(
    "resnet18_w16",
    description="CIFAR ResNet-18 at a quarter of the width (16-32-64-128 channels), 0.7M params, from scratch",
    pretrained=False,
    natural_input_size=32,
    no_weights_hint="It is trained from scratch only.",
)
def resnet18_w16(
    num_classes: int = 10,
    pretrained: bool = False,
    weights: str | None = None,
    input_size: int | None = None,
) -> ImageClassifier:
    """The field's from-scratch victim (CIFAR ResNet-18) narrow enough to train in minutes on a CPU:
    the same depth, blocks and stem as `resnet18`, a quarter of its channels."""
    return _cifar_resnet18("resnet18_w16", 16, num_classes, pretrained, weights, input_size)


def _cifar_resnet18(name, base_width, num_classes, pretrained, weights, input_size) -> ImageClassifier:
    if pretrained or weights is not None:
        raise ValueError(
            f"{name} (CIFAR variant) has no pretrained weights; use 'resnet18_imagenet' "
            "for an ImageNet-pretrained ResNet-18"
        )
    trunk = ResNetTrunk((2, 2, 2, 2), stem="cifar", base_width=base_width)
    return ImageClassifier(
        trunk,
        trunk.num_features,
        num_classes,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        input_size=input_size,
        name=name,
    )


@register_model(
    "resnet18_imagenet",
    description="ImageNet ResNet-18 (7x7/2 stem + max-pool), torchvision weights, 11.2M params",
    pretrained=True,
    natural_input_size=224,
    weights_source=RESNET18_IMAGENET_URL,
    weights_local=_resnet18_weights_local,
)
def resnet18_imagenet(
    num_classes: int = 10,
    pretrained: bool = False,
    weights: str | None = None,
    input_size: int | None = None,
) -> ImageClassifier:
    """ImageNet ResNet-18 with torchvision names; ImageNet normalization.

    ``weights``: a local .pth/.pt/.safetensors file or an https URL holding a
    torchvision-format state dict. ``pretrained=True`` without ``weights`` uses
    ``$UNLEARNABLE_RESNET18_WEIGHTS`` if set, else downloads the official torchvision
    file (sha256-checked) into the weights cache. The 1000-way ``fc`` is dropped; the
    head is a fresh ``num_classes``-way linear layer.
    """
    trunk = ResNetTrunk((2, 2, 2, 2), stem="imagenet")
    if pretrained or weights is not None:
        src, prefix = _resnet18_weights_source(weights)
        state_dict = load_state_dict_file(
            src,
            sha256_prefix=prefix,
            download_hint=(f"Alternatively set {RESNET18_WEIGHTS_ENV}=/path/to/{_RESNET18_FILENAME}."),
        )
        load_torchvision_resnet_state_dict(trunk, state_dict, source=src)
    return ImageClassifier(
        trunk,
        trunk.num_features,
        num_classes,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        input_size=input_size,
        name="resnet18_imagenet",
    )
