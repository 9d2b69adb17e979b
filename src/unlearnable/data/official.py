"""The benchmark datasets in their official distribution formats, found, checked and read by name.

Each dataset is one `OfficialDataset` entry of `DATASETS`: its class names, the files each split
needs, where they are downloaded from with their md5 as published, where they are looked for
on disk, the reader for the format, and the dataset's preset (classes, image size, the
per-channel normalization of its training set, and the BAIT paper's victim epochs).

  name             files                                         format
  cifar10          cifar10-jpg.tar.gz, cifar-10-python.tar.gz or  an ImageFolder tarball of the images,
                   cifar-10-batches-py/ (the first found)        or the official pickled batches
  cifar100         cifar-100-python.tar.gz (or cifar-100-python/) pickled dicts (fine labels)
  cifar100-coarse  the same                                      the 20 coarse superclasses
  svhn             train_32x32.mat, test_32x32.mat               MATLAB 5: X (32, 32, 3, N), y 1..10
  svhn-extra       the same, plus extra_32x32.mat (added to train)
  fashion-mnist    {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]  IDX (big-endian header)

CIFAR-10 is read through sources.py's fast path (both splits decoded in one pass and cached), and
UNLEARNABLE_DATA may name its file directly under any name. SVHN's label 10 is the digit 0, as in the
official files; it becomes class "0". Fashion-MNIST is grey: each image is lifted to three equal
channels when read, so every model and method sees the (N, 3, H, W) images they expect, and a
protected copy is written as RGB PNGs.

A dataset named without a path is looked for in this order, the first folder holding every file
the split needs wins: $UNLEARNABLE_DATA (a folder, or the folder of a file; an error if it is set
but does not exist), ./data, <cache>/data,
then the dataset's system folders (Debian's dataset-fashion-mnist package installs
/usr/share/datasets/fashion-mnist); in each folder also in a subfolder named after the dataset.
With download=True a dataset found nowhere is fetched into <cache>/data/<name>/, each file md5
checked before it is kept. Debian recompresses the Fashion-MNIST files, so their md5 differs from
the published one: local files are checked by their structure (magic numbers, shapes, label
range and count), downloads by md5 as well.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models.base import CIFAR10_MEAN, CIFAR10_STD
from .dataset import ImageDataset
from .sources import (
    CIFAR10_ARCHIVE,
    CIFAR10_CLASSES,
    CIFAR10_FOLDER,
    CIFAR10_JPEG_ARCHIVE,
    CIFAR10_MD5,
    DataError,
    _field,
    _file_md5,
    _unpickle,
    archive_members,
    default_data_dir,
    download_file,
)

__all__ = [
    "OfficialDataset",
    "DATASETS",
    "dataset_names",
    "dataset_preset",
    "get_dataset",
    "find_official",
    "find_file",
    "read_official",
    "read_cifar10",
    "read_cifar100_python",
    "read_svhn_mat",
    "read_idx",
    "read_fashion_mnist",
]


@dataclass(frozen=True)
class OfficialDataset:
    name: str
    summary: str
    classes: tuple[str, ...]
    split_files: dict[str, tuple[str, ...]]  # split -> the distributed files it needs
    url: str  # base URL of the files
    md5: dict[str, str]  # distributed file name -> published md5
    reader: Callable[..., ImageDataset]
    preset: dict = field(default_factory=dict)
    # file -> its equivalent local names, tried in order (the file's own name first unless listed)
    alternatives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    system_dirs: tuple[str, ...] = ()
    reader_options: dict = field(default_factory=dict)
    env_file: bool = False  # UNLEARNABLE_DATA may name this dataset's one file itself, under any name

    def files_for(self, split: str) -> tuple[str, ...]:
        if split not in self.split_files:
            raise ValueError(f"{self.name} has splits {sorted(self.split_files)}, not {split!r}")
        return self.split_files[split]

    def locate(self, folder: Path, name: str) -> Path | None:
        """The local copy of distributed file `name` in `folder` (or one of its equivalents)."""
        alternatives = self.alternatives.get(name, ())
        for candidate in alternatives if name in alternatives else (name, *alternatives):
            if (folder / candidate).exists():
                return folder / candidate
        return None


# --------------------------------------------------------------------------- readers


def read_cifar10(paths: list[Path], split: str) -> ImageDataset:
    """One split of CIFAR-10 from whichever local form holds it: the official python archive or
    its extracted folder, or a tarball of the images as an ImageFolder tree (cifar10-jpg.tar.gz)."""
    from .sources import read_cifar10_python, read_tarball

    path = Path(paths[0])
    if path.is_dir() or path.name == CIFAR10_ARCHIVE:
        return read_cifar10_python(path)[split]
    return read_tarball(path, want=split)[split]


def read_cifar100_python(paths: list[Path], split: str, labels: str = "fine") -> ImageDataset:
    """One split of cifar-100-python.tar.gz (or its extracted folder, as the one path in `paths`);
    `labels` fine (100 classes) or coarse (20 superclasses)."""
    path = Path(paths[0])
    blobs = archive_members(path, ("train", "test", "meta"))
    missing = [m for m in (split, "meta") if m not in blobs]
    if missing:
        raise DataError(
            f"{path} is missing {', '.join(missing)}; expected the official CIFAR-100 python archive "
            f"(cifar-100-python/train, test, meta)"
        )
    meta_where = f"{path}:meta"
    names = _field(_unpickle(blobs["meta"], meta_where), f"{labels}_label_names", meta_where)
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    where = f"{path}:{split}"
    batch = _unpickle(blobs[split], where)
    data = _field(batch, "data", where)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    y = np.asarray(_field(batch, f"{labels}_labels", where), dtype=np.int64).reshape(-1)
    _check_labels(y, data.shape[0], len(classes), where)
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageDataset(images, torch.from_numpy(y), classes)


def _check_labels(y: np.ndarray, n: int, k: int, where: str) -> None:
    if y.shape[0] != n:
        raise DataError(f"{where}: {n} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise DataError(f"{where}: labels must be in [0, {k - 1}], found {int(y.min())}..{int(y.max())}")


def read_svhn_mat(paths: list[Path], split: str) -> ImageDataset:
    """SVHN cropped digits from the official *_32x32.mat files (several are concatenated, e.g. train + extra)."""
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy is a dependency
        raise DataError("reading SVHN's .mat files needs scipy (pip install scipy)") from None
    images, labels = [], []
    for p in paths:
        try:
            mat = loadmat(p, variable_names=("X", "y"))
        except Exception as exc:
            raise DataError(
                f"cannot read {p} ({type(exc).__name__}: {exc}); expected an official SVHN "
                f"*_32x32.mat file (MATLAB 5 format with X and y)"
            ) from None
        x, y = mat.get("X"), mat.get("y")
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else "missing"
            raise DataError(f"{p}: X must be a uint8 array of shape (32, 32, 3, N), got {desc}")
        if not isinstance(y, np.ndarray):
            raise DataError(f"{p}: has no label array y")
        y = y.astype(np.int64).reshape(-1)
        if y.size and (y.min() < 1 or y.max() > 10):
            raise DataError(f"{p}: labels must be 1..10 (10 is the digit 0), found {int(y.min())}..{int(y.max())}")
        _check_labels(y % 10, x.shape[3], 10, str(p))
        images.append(torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1))))
        labels.append(torch.from_numpy(y % 10))
    return ImageDataset(torch.cat(images), torch.cat(labels), [str(d) for d in range(10)])


_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not: 2 zero bytes, a type code, the number of
    dimensions, one big-endian uint32 per dimension, then the data in row-major order."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"cannot decompress {path}: {exc}; the file is corrupt or truncated") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (expected two zero bytes and a type code 0x08-0x0E first)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the header says shape {shape} ({expected} bytes) but {len(raw) - header} bytes follow; "
            f"the file is truncated or not the official one"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def read_fashion_mnist(paths: list[Path], split: str) -> ImageDataset:
    """Fashion-MNIST from its images and labels IDX files; grey lifted to three equal channels."""
    img_path, lab_path = paths
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{img_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{lab_path}: expected labels of shape (N,), got {labels.shape}")
    y = labels.astype(np.int64)
    _check_labels(y, images.shape[0], 10, f"{img_path} and {lab_path}")
    grey = torch.from_numpy(images.copy())
    return ImageDataset(
        grey[:, None].expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(y), list(FASHION_MNIST_CLASSES)
    )


# --------------------------------------------------------------------------- the registry

# Per-channel mean and std of each training set on the [0, 1] scale (measured on the full sets;
# scratch models normalize with them).
CIFAR100_NORM = {"mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762)}
SVHN_NORM = {"mean": (0.4377, 0.4438, 0.4728), "std": (0.1980, 0.2010, 0.1970)}
FASHION_NORM = {"mean": (0.2860,) * 3, "std": (0.3530,) * 3}
FASHION_MNIST_CLASSES = (
    "T-shirt_top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle_boot",
)

_CIFAR100: dict = dict(
    split_files={"train": ("cifar-100-python.tar.gz",), "test": ("cifar-100-python.tar.gz",)},
    url="https://www.cs.toronto.edu/~kriz/",
    md5={"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    reader=read_cifar100_python,
    alternatives={"cifar-100-python.tar.gz": ("cifar-100-python",)},
)
_SVHN_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}
_FASHION_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

CIFAR10_PRESET = {"num_classes": 10, "image_size": 32, "mean": CIFAR10_MEAN, "std": CIFAR10_STD, "paper_epochs": 60}

DATASETS: dict[str, OfficialDataset] = {
    d.name: d
    for d in (
        OfficialDataset(
            "cifar10",
            "CIFAR-10, 10 classes, 50k train / 10k test, 32x32",
            CIFAR10_CLASSES,
            {"train": (CIFAR10_ARCHIVE,), "test": (CIFAR10_ARCHIVE,)},
            "https://www.cs.toronto.edu/~kriz/",
            {CIFAR10_ARCHIVE: CIFAR10_MD5},
            read_cifar10,
            alternatives={CIFAR10_ARCHIVE: (CIFAR10_JPEG_ARCHIVE, CIFAR10_ARCHIVE, CIFAR10_FOLDER)},
            preset=CIFAR10_PRESET,
            env_file=True,
        ),
        OfficialDataset(
            "cifar100",
            "CIFAR-100, 100 fine classes, 50k train / 10k test, 32x32",
            (),
            **_CIFAR100,
            preset={
                "num_classes": 100,
                "image_size": 32,
                **CIFAR100_NORM,
                "paper_epochs": 100,
                "paper_weight_decay": 5e-5,
            },
        ),
        OfficialDataset(
            "cifar100-coarse",
            "CIFAR-100 with its 20 coarse superclasses as labels",
            (),
            **_CIFAR100,
            reader_options={"labels": "coarse"},
            preset={
                "num_classes": 20,
                "image_size": 32,
                **CIFAR100_NORM,
                "paper_epochs": 100,
                "paper_weight_decay": 5e-5,
            },
        ),
        OfficialDataset(
            "svhn",
            "SVHN cropped digits, 73,257 train / 26,032 test, 32x32",
            tuple(map(str, range(10))),
            {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
            "http://ufldl.stanford.edu/housenumbers/",
            _SVHN_MD5,
            read_svhn_mat,
            preset={"num_classes": 10, "image_size": 32, **SVHN_NORM, "paper_epochs": 30},
        ),
        OfficialDataset(
            "svhn-extra",
            "SVHN with the 531,131 'extra' digits added to the training split",
            tuple(map(str, range(10))),
            {"train": ("train_32x32.mat", "extra_32x32.mat"), "test": ("test_32x32.mat",)},
            "http://ufldl.stanford.edu/housenumbers/",
            _SVHN_MD5,
            read_svhn_mat,
            preset={"num_classes": 10, "image_size": 32, **SVHN_NORM, "paper_epochs": 30},
        ),
        OfficialDataset(
            "fashion-mnist",
            "Fashion-MNIST, 10 clothing classes, 60k train / 10k test, 28x28 grey",
            FASHION_MNIST_CLASSES,
            _FASHION_FILES,
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            {
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12e480ee83cd310",
            },
            read_fashion_mnist,
            alternatives={f: (f[:-3],) for files in _FASHION_FILES.values() for f in files},
            system_dirs=("/usr/share/datasets/fashion-mnist",),
            preset={"num_classes": 10, "image_size": 28, **FASHION_NORM, "paper_epochs": 60},
        ),
    )
}


def dataset_preset(name) -> dict:
    """The preset of a named dataset (classes, image size, normalization, the paper's victim
    epochs); {} for anything that is not a dataset name (a path, None)."""
    if not isinstance(name, str):
        return {}
    key = name.strip().lower()
    return dict(DATASETS[key].preset) if key in DATASETS else {}


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_dataset(name: str) -> OfficialDataset | None:
    return DATASETS.get(name.strip().lower())


def _env_data() -> Path | None:
    env = os.environ.get("UNLEARNABLE_DATA")
    if not env:
        return None
    p = Path(env).expanduser()
    if not p.exists():
        raise DataError(
            f"UNLEARNABLE_DATA={env} does not exist; point it at a data folder or a dataset's file, or unset it"
        )
    return p


def _search_dirs(spec: OfficialDataset) -> list[Path]:
    env = _env_data()
    roots = [env if env.is_dir() else env.parent] if env is not None else []
    roots += [Path.cwd() / "data", default_data_dir()]
    dirs = [d for r in roots for d in (r, r / spec.name)]
    return dirs + [Path(d) for d in spec.system_dirs]


def holds(spec: OfficialDataset, folder: Path, split: str) -> bool:
    return folder.is_dir() and all(spec.locate(folder, f) is not None for f in spec.files_for(split))


def find_official(spec: OfficialDataset, split: str, download: bool = False) -> Path:
    """The folder holding every file `split` of `spec` needs (see the module doc for the order)."""
    searched = [] if os.environ.get("UNLEARNABLE_DATA") else ["$UNLEARNABLE_DATA: not set"]
    for d in _search_dirs(spec):
        if holds(spec, d, split):
            return d.resolve()
        searched.append(f"{d}/")
    dest = default_data_dir() / spec.name
    if download:
        download_official(spec, split, dest)
        return dest.resolve()
    need = ", ".join(" or ".join(spec.alternatives.get(f, (f,))) for f in spec.files_for(split))
    raise DataError(
        f"{spec.name} ({split}) was not found: it needs {need}; searched, in order: "
        f"{'; '.join(searched)}. To fix it: put the files in one of these folders (or set UNLEARNABLE_DATA to the "
        f"folder holding them), pass --data PATH, or pass --download to fetch them from {spec.url} into {dest}."
    )


def find_file(spec: OfficialDataset, split: str, download: bool = False) -> Path:
    """The one file (or extracted folder) of a single-file dataset: the file UNLEARNABLE_DATA
    names, where the dataset allows it, else the first of its local names in find_official's folder."""
    (name,) = spec.files_for(split)
    env = _env_data()
    if spec.env_file and env is not None and env.is_file():
        return env.resolve()
    found = spec.locate(find_official(spec, split, download), name)
    assert found is not None  # find_official returns only a folder that holds it
    return found.resolve()


def download_official(spec: OfficialDataset, split: str, dest: Path) -> None:
    for name in spec.files_for(split):
        if spec.locate(dest, name) is None:
            download_file(spec.url + name, dest, name, spec.md5[name])


def read_official(spec: OfficialDataset, folder: Path, split: str, verify: bool = False) -> ImageDataset:
    """Decode `split` of `spec` from the folder that holds its files; with verify=True every file
    must also have the published md5 (files as distributed, not extracted or recompressed)."""
    paths = [spec.locate(Path(folder), f) for f in spec.files_for(split)]
    missing = [f for f, p in zip(spec.files_for(split), paths) if p is None]
    if missing:
        raise DataError(f"{folder} has no {', '.join(missing)}, which {spec.name} ({split}) needs")
    for name, p in zip(spec.files_for(split), paths) if verify else ():
        got = _file_md5(p) if p is not None and p.is_file() else "(a folder)"
        if got != spec.md5[name]:
            raise DataError(
                f"{p}: md5 is {got} but the official {name} has {spec.md5[name]}; the file is corrupt, "
                f"repacked or not the official one. Delete it and download it again from {spec.url}{name} "
                f"(or use --download)."
            )
    ds = spec.reader(paths, split, **spec.reader_options)
    if list(spec.classes) and list(ds.classes) != list(spec.classes):
        raise DataError(f"{folder}: {spec.name} should have classes {list(spec.classes)}, found {ds.classes}")
    return ds
