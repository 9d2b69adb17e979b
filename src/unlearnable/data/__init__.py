"""Data: loading image datasets (ImageFolder trees, tarballs, the official CIFAR-10, CIFAR-100,
SVHN and Fashion-MNIST files),
caching the decoded tensors, and picking balanced subsets."""

from .dataset import ImageDataset, balanced_subset
from .official import DATASETS, dataset_names, dataset_preset
from .sources import CIFAR10_CLASSES, DataError, download_cifar10, load_dataset, resolve_source

__all__ = [
    "ImageDataset",
    "balanced_subset",
    "load_dataset",
    "DataError",
    "download_cifar10",
    "CIFAR10_CLASSES",
    "resolve_source",
    "DATASETS",
    "dataset_names",
    "dataset_preset",
]
