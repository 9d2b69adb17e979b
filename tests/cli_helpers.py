"""Helpers shared by the command-line tests."""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def sets(**options) -> list[str]:
    """--set key=value arguments."""
    return [arg for k, v in options.items() for arg in ("--set", f"{k}={v}")]


def tree_hash(root: Path) -> str:
    """One sha256 over every path and file content below `root`."""
    h = hashlib.sha256()
    for f in sorted(Path(root).rglob("*")):
        h.update(str(f.relative_to(root)).encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def tiny_cifar_tarball(path: Path) -> None:
    """A CIFAR-10-like tarball (train/ and test/, 2 classes of 16x16 PNGs), as cifar10-jpg.tar.gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for split, n in (("train", 8), ("test", 4)):
            for k, c in enumerate(("cat", "dog")):
                for i in range(n):
                    buf = io.BytesIO()
                    arr = np.random.default_rng(100 * k + i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
                    Image.fromarray(arr).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"cifar10/{split}/{c}/{i}.png")
                    info.size = buf.tell()
                    buf.seek(0)
                    tf.addfile(info, buf)
