"""Decode once: decoded datasets are kept as safetensors files plus a JSON sidecar.

Layout under the cache root ($UNLEARNABLE_CACHE, default ~/.cache/unlearnable):

    datasets/<key>.safetensors   images (uint8, N x 3 x H x W) and labels (int64)
    datasets/<key>.json          classes, files, source description

The key is a sha256 over the source kind, its absolute path, a cheap fingerprint of its content
(size and mtime_ns of the file, or of every file under a source directory), the split, the
image size and FORMAT_VERSION. Changing the source file changes its size or mtime and so misses
the cache; no file content is hashed. Writes go to a temporary file in the same directory and
are moved into place with os.replace, so a reader never sees half a file. A cache entry that
cannot be read is reported with a warning, ignored and rebuilt.

Datasets larger than memory: images over $UNLEARNABLE_MMAP_BYTES (default 4 GiB) are decoded
straight into a disk-backed array and loaded memory-mapped from the cache file, so pages are read
from disk as batches touch them and the OS can drop them again; memory stays bounded by what
training touches, not by the size of the set.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from ..io import atomic_file, atomic_write_text, cache_root
from .dataset import ImageDataset

__all__ = [
    "FORMAT_VERSION",
    "cache_root",
    "dataset_cache_dir",
    "source_fingerprint",
    "cache_key",
    "load_cached",
    "save_cached",
    "mmap_threshold",
    "disk_array",
]

# Bump when decoding changes (colour conversion, resizing, ordering): old entries then miss.
FORMAT_VERSION = 2  # 2: EXIF orientation applied on decoding


def dataset_cache_dir() -> Path:
    return cache_root() / "datasets"


def mmap_threshold() -> int:
    """Image sets larger than this many bytes live on disk, memory-mapped ($UNLEARNABLE_MMAP_BYTES)."""
    value = os.environ.get("UNLEARNABLE_MMAP_BYTES", str(4 << 30))
    try:
        return max(0, int(value))
    except ValueError:
        raise ValueError(f"UNLEARNABLE_MMAP_BYTES must be a whole number of bytes, got {value!r}") from None


def disk_array(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array backed by an unlinked temporary file in the cache: decoding a set larger than
    memory writes into it, and the OS pages it out as needed."""
    d = dataset_cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=d, prefix=".decode-", suffix=".u8")
    try:
        os.ftruncate(fd, max(1, int(np.prod(shape))))
        arr = np.memmap(name, dtype=np.uint8, mode="r+", shape=shape)
    finally:
        os.close(fd)
        os.unlink(name)  # the mapping keeps the data alive; nothing is left behind on exit
    return arr


_DTYPES = {torch.uint8: "U8", torch.int64: "I64"}


def _write_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """The safetensors format, written in chunks so a memory-mapped tensor is never copied whole."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for t in tensors.values():
            flat = t.reshape(-1)
            step = max(1, (64 << 20) // t.element_size())
            for i in range(0, flat.numel(), step):
                f.write(flat[i : i + step].contiguous().numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())


def _mapped(path: Path, name: str) -> torch.Tensor:
    """Tensor `name` of a safetensors file, memory-mapped copy-on-write (the file is never changed)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        entry = json.loads(f.read(n))[name]
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    begin, end = entry["data_offsets"]
    dtype = {v: k for k, v in _DTYPES.items()}[entry["dtype"]]
    count = (end - begin) // torch.empty((), dtype=dtype).element_size()
    return torch.frombuffer(mm, dtype=dtype, count=count, offset=8 + n + begin).view(entry["shape"])


def source_fingerprint(path: str | os.PathLike) -> list:
    """Size and mtime_ns of a file, or (relative path, size, mtime_ns) of every file below a folder."""
    p = Path(path)
    if p.is_dir():
        rows = []
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                rows.append([os.path.relpath(full, p), st.st_size, st.st_mtime_ns])
        return rows
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def cache_key(
    kind: str, path: str | os.PathLike, split: str, image_size: int | None, fingerprint: list | None = None
) -> str:
    """Hex sha256 naming the cache entry; pass `fingerprint` to reuse one already computed."""
    p = Path(path).resolve()
    payload = json.dumps(
        {
            "kind": kind,
            "path": str(p),
            "fingerprint": fingerprint if fingerprint is not None else source_fingerprint(p),
            "split": split,
            "image_size": image_size,
            "version": FORMAT_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _paths(key: str, root: Path | None = None) -> tuple[Path, Path]:
    d = root if root is not None else dataset_cache_dir()
    return d / f"{key}.safetensors", d / f"{key}.json"


def load_cached(key: str, root: Path | None = None) -> ImageDataset | None:
    """The dataset stored under `key`, or None when there is none or it cannot be read."""
    tensors_path, meta_path = _paths(key, root)
    if not tensors_path.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        with safe_open(str(tensors_path), framework="pt") as f:
            token = (f.metadata() or {}).get("token")
            shape = f.get_slice("images").get_shape()
            big = int(np.prod(shape)) > mmap_threshold()
            images: torch.Tensor | None = None if big else f.get_tensor("images")
            labels = f.get_tensor("labels")
        if big:
            images = _mapped(tensors_path, "images")
        if meta.get("version") != FORMAT_VERSION or meta.get("key") != key:
            raise ValueError("sidecar belongs to another entry")
        if token is None or meta.get("token") != token:
            raise ValueError("tensor file and sidecar come from different writes")
        assert images is not None
        return ImageDataset(images, labels, list(meta["classes"]), meta.get("files"))
    except Exception as exc:  # any damage means: rebuild
        warnings.warn(
            f"ignoring unreadable dataset cache entry {tensors_path} ({exc}); decoding again",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def save_cached(key: str, ds: ImageDataset, source: dict, root: Path | None = None) -> Path | None:
    """Store `ds` under `key`; returns the tensor file, or None (with a warning) if it cannot be written."""
    tensors_path, meta_path = _paths(key, root)
    token = uuid.uuid4().hex
    meta = {
        "version": FORMAT_VERSION,
        "key": key,
        "token": token,
        "source": source,
        "num_images": len(ds),
        "classes": list(ds.classes),
        "files": list(ds.files) if ds.files is not None else None,
    }
    try:
        tensors_path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"images": ds.images.contiguous(), "labels": ds.labels.contiguous()}
        with atomic_file(tensors_path) as tmp:
            _write_safetensors(str(tmp), tensors, {"token": token})
        atomic_write_text(meta_path, json.dumps(meta))
    except OSError as exc:
        warnings.warn(
            f"could not write the dataset cache {tensors_path} ({exc}); continuing without it",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return tensors_path
