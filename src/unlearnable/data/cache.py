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
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
import warnings
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from .dataset import ImageDataset

__all__ = ["FORMAT_VERSION", "cache_root", "dataset_cache_dir", "source_fingerprint", "cache_key",
           "load_cached", "save_cached"]

# Bump when decoding changes (colour conversion, resizing, ordering): old entries then miss.
FORMAT_VERSION = 1


def cache_root() -> Path:
    """$UNLEARNABLE_CACHE, or ~/.cache/unlearnable when unset."""
    env = os.environ.get("UNLEARNABLE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unlearnable"


def dataset_cache_dir() -> Path:
    return cache_root() / "datasets"


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


def cache_key(kind: str, path: str | os.PathLike, split: str, image_size: int | None,
              fingerprint: list | None = None) -> str:
    """Hex sha256 naming the cache entry; pass `fingerprint` to reuse one already computed."""
    p = Path(path).resolve()
    payload = json.dumps({
        "kind": kind,
        "path": str(p),
        "fingerprint": fingerprint if fingerprint is not None else source_fingerprint(p),
        "split": split,
        "image_size": image_size,
        "version": FORMAT_VERSION,
    }, sort_keys=True)
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
            images = f.get_tensor("images")
            labels = f.get_tensor("labels")
        if meta.get("version") != FORMAT_VERSION or meta.get("key") != key:
            raise ValueError("sidecar belongs to another entry")
        if token is None or meta.get("token") != token:
            raise ValueError("tensor file and sidecar come from different writes")
        return ImageDataset(images, labels, list(meta["classes"]), meta.get("files"))
    except Exception as exc:  # any damage means: rebuild
        warnings.warn(f"ignoring unreadable dataset cache entry {tensors_path} ({exc}); decoding again",
                      RuntimeWarning, stacklevel=2)
        return None


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
        _atomic_write(tensors_path, lambda tmp: save_file(tensors, tmp, metadata={"token": token}))
        _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
    except OSError as exc:
        warnings.warn(f"could not write the dataset cache {tensors_path} ({exc}); continuing without it",
                      RuntimeWarning, stacklevel=2)
        return None
    return tensors_path

