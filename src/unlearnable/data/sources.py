"""Where images come from: ImageFolder trees, tarballs of them, the official CIFAR-10 archive, and
the other benchmark datasets by name (official.py: CIFAR-100, SVHN, Fashion-MNIST).

Every loader returns an ImageDataset of uint8 images. Three kinds of source are understood:

- "imagefolder": a directory laid out as root/<class>/<image files>, or one with train/ and
  test/ subfolders that are each laid out like that. Classes are the class folder names, sorted;
  files are sorted by path. Files below a class folder may sit in subfolders of it.
- "tarball": a .tar, .tar.gz or .tgz (also .tar.bz2/.tar.xz) archive holding such a tree, e.g.
  the CIFAR-10 JPEG tarball (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg). A single wrapper
  folder around the tree (archive/cifar10/train/...) is looked through. The archive is read
  in one streaming pass and decoded in memory; nothing is extracted to disk.
- "cifar10-python": the official cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/
  folder). Its pickled batches are read with a restricted unpickler that only lets the numpy
  array reconstruction functions through.

Loose files directly in the root of a tree (README, LICENSE) are ignored. Hidden files and
folders (names starting with "."), __MACOSX folders, Thumbs.db and desktop.ini are skipped. Every
other file inside a class folder must be a readable image, or a DataError names it.

Pixel conversion (decode_image): images are decoded with PIL. Images with transparency (RGBA,
LA, PA, palette or grey images with a transparent colour) are composited on a white background.
16-bit grey images (modes I;16*, and I, which is taken to hold 16-bit values) are scaled to 8 bit
with round(v * 255 / 65535). Float images (mode F) are taken as 0..255 and rounded. Every other
mode (L, 1, P, CMYK, YCbCr, ...) goes through PIL's convert("RGB"). A camera's EXIF orientation
is applied first, so a portrait photo stored sideways is read upright. With image_size set, every
image is then resized to image_size x image_size with PIL's bicubic filter (no cropping, aspect
ratio is not kept). Without it, all images must already share one size.

load_dataset(source) resolves `source` as follows:

- a path to a file: a tar archive (the official CIFAR-10 python archive is recognised by its name
  cifar-10-python.tar.gz or by its members) or a DataError;
- a path to a directory: if it holds cifar10-jpg.tar.gz, cifar-10-python.tar.gz or
  cifar-10-batches-py/ (first one found in this order), that; if it is itself a
  cifar-10-batches-py folder, that; otherwise the directory is an ImageFolder tree;
- None or a dataset name ("cifar10", always the name, never a folder called cifar10: use
  ./cifar10 for that; the others of official.py): found through the one registry of datasets
  (official.DATASETS), in this order, the first hit wins: $UNLEARNABLE_DATA (a folder, or for
  CIFAR-10 also the file itself; an error if it is set but does not exist), ./data/, then
  <cache>/data/ (<cache> = $UNLEARNABLE_CACHE or ~/.cache/unlearnable), each also in a sub-folder
  named after the dataset. CIFAR-10 is any of cifar10-jpg.tar.gz, cifar-10-python.tar.gz,
  cifar-10-batches-py/ (in that order). If nothing is found and download=True, the official
  files are downloaded into <cache>/data/<name>/ (md5 checked); otherwise a DataError lists
  every place searched and how to fix it.

Decoded datasets are cached (see cache.py), so a source is decoded only once. Tarballs and the
official archive are decoded whole in one pass, and both splits go into the cache.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import stat
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from ..io import cache_root
from .cache import cache_key, disk_array, load_cached, mmap_threshold, save_cached, source_fingerprint
from .dataset import ImageDataset

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "CIFAR10_ARCHIVE",
    "CIFAR10_JPEG_ARCHIVE",
    "CIFAR10_FOLDER",
    "DataError",
    "decode_image",
    "read_imagefolder",
    "read_tarball",
    "read_cifar10_python",
    "download_cifar10",
    "resolve_source",
    "load_dataset",
    "default_data_dir",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_JPEG_ARCHIVE = "cifar10-jpg.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_MEMBERS = (*_CIFAR10_TRAIN_BATCHES, "test_batch", "batches.meta")

SPLITS = ("train", "test")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_SKIP_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_LAYOUT_HINT = "an ImageFolder tree <root>/<class>/<image> (optionally under train/ and test/)"


class DataError(ValueError):
    """A data source is missing, malformed or holds something that is not what was expected."""


# --------------------------------------------------------------------------- image decoding


def _composite_on_white(img: Image.Image) -> np.ndarray:
    rgba = np.asarray(img.convert("RGBA")).astype(np.uint32)
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return np.asarray(img)
    if mode.startswith("I;16") or mode == "I":
        values = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        return _grey_to_rgb(((values * 255 + 32767) // 65535).astype(np.uint8))
    if mode == "F":
        values = np.asarray(img).astype(np.float64)
        return _grey_to_rgb(np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return _composite_on_white(img)
    return np.asarray(img.convert("RGB"))


def max_pixels() -> int:
    """Largest image (width x height) decoded: 200 megapixels (cameras shoot up to about 150) unless
    $UNLEARNABLE_MAX_PIXELS says otherwise. A guard against decompression bombs: a small file
    that decodes to gigabytes."""
    value = os.environ.get("UNLEARNABLE_MAX_PIXELS", "200000000")
    try:
        limit = int(value)
    except ValueError:
        raise DataError(f"UNLEARNABLE_MAX_PIXELS must be a whole number of pixels, got {value!r}") from None
    if limit < 1:
        raise DataError(f"UNLEARNABLE_MAX_PIXELS must be positive, got {limit}")
    return limit


# Every image the toolkit decodes is checked from its header first (check_pixels), so PIL's own
# guard, which stops at 89 megapixels and would refuse real camera photos, is left to that check.
Image.MAX_IMAGE_PIXELS = None


def check_pixels(width: int, height: int, name: str) -> None:
    """The decompression-bomb guard, from an image's header before it is decoded: a DataError
    naming the image and the setting that admits it."""
    limit = max_pixels()
    if width * height > limit:
        raise DataError(
            f"image {name} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), more than the "
            f"limit of {limit} pixels (a guard against decompression bombs); if it is a real image, raise the "
            f"limit with UNLEARNABLE_MAX_PIXELS={width * height}"
        )


def exif_of(img: Image.Image) -> Image.Exif | None:
    """The image's EXIF (Pillow also reads an XMP tiff:Orientation into it), or None when the
    block cannot be read (the pixels are then taken as stored)."""
    try:
        return img.getexif()
    except Exception:
        return None


def upright(img: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: a camera's orientation tag (EXIF or XMP: a portrait
    shot stored sideways) applied to the pixels."""
    exif = exif_of(img)
    orientation = exif.get(0x0112, 1) if exif is not None else 1  # an unreadable block: as stored
    return img if orientation in (None, 1) else ImageOps.exif_transpose(img)


def check_frames(img: Image.Image, name: str) -> None:
    """Only single images are protected: an animation or a multi-page file is refused by name (its
    other frames would be published unprotected, or lost)."""
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise DataError(
            f"{name} holds {frames} frames (an animation or a multi-page file), and only single images are "
            "protected; save the frame you publish as its own PNG or JPEG and use that"
        )


def decode_image(data: bytes, name: str, image_size: int | None = None) -> np.ndarray:
    """Decode encoded image bytes to an (H, W, 3) uint8 RGB array (see the module doc).

    `name` is only used in the error message: a DataError naming it is raised for anything that
    PIL cannot fully decode (not an image, corrupt or truncated) and for images larger than
    max_pixels() (checked from the header, before decoding).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            check_pixels(img.width, img.height, name)
            check_frames(img, name)
            img.load()
            arr = rgb_array(upright(img))
        if image_size is not None and arr.shape[:2] != (image_size, image_size):
            resized = Image.fromarray(np.ascontiguousarray(arr), "RGB").resize(
                (image_size, image_size), Image.Resampling.BICUBIC
            )
            arr = np.asarray(resized)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot decode image {name}: {type(exc).__name__}: {exc}. Expected a complete "
            f"image file (PNG, JPEG, BMP, ...) in {_LAYOUT_HINT}; remove or replace this file."
        ) from None
    return arr


# --------------------------------------------------------------------------- ImageFolder trees


def _skipped(part: str) -> bool:
    return part.startswith(".") or part in _SKIP_NAMES


class _Tree:
    """Relative posix paths of the folders and files of an ImageFolder source.

    files maps a relative path to (display name for messages, payload); the payload is the
    file's bytes (tarball) or its Path (directory).
    """

    def __init__(self, where: str):
        self.where = where
        self.dirs: set[str] = set()
        self.files: dict[str, tuple[str, bytes | Path]] = {}

    def add_dir(self, rel: str) -> None:
        while rel and rel not in self.dirs:
            self.dirs.add(rel)
            rel = rel.rpartition("/")[0]

    def add_file(self, rel: str, display: str, payload: bytes | Path) -> None:
        self.files[rel] = (display, payload)
        parent = rel.rpartition("/")[0]
        if parent:
            self.add_dir(parent)

    def top_dirs(self, prefix: str = "") -> list[str]:
        depth = prefix.count("/") + 1 if prefix else 0
        out = set()
        for d in self.dirs:
            parts = d.split("/")
            if len(parts) == depth + 1 and (not prefix or d.startswith(prefix + "/")):
                out.add(parts[-1])
        return sorted(out)

    def files_under(self, prefix: str) -> list[str]:
        start = prefix + "/"
        return sorted(f for f in self.files if f.startswith(start))


def _strip_wrappers(tree: _Tree, holds=lambda prefix: False) -> str:
    """Look through single wrapper folders (archive/cifar10/train/...): the prefix of the real root.

    A level is a wrapper when it holds one folder, that folder holds folders itself (else it is a
    single class folder), and `holds(level)` is false (a photo collection: no photo lies in it)."""
    prefix = ""
    while True:
        tops = tree.top_dirs(prefix)
        if any(t in SPLITS for t in tops) or len(tops) != 1 or holds(prefix):
            return prefix
        inner = f"{prefix}/{tops[0]}" if prefix else tops[0]
        if not tree.top_dirs(inner):
            return prefix
        prefix = inner


def _split_layout(tree: _Tree) -> dict[str, tuple[list[str], list[tuple[str, str, int]]]]:
    """Split name -> (classes, [(relative path in tree, file name in split, label)])."""
    root = _strip_wrappers(tree)

    def join(*parts: str) -> str:
        return "/".join(p for p in parts if p)

    def one_split(base: str, label_for: str) -> tuple[list[str], list[tuple[str, str, int]]]:
        classes = tree.top_dirs(base)
        if not classes:
            loose = [f for f in tree.files if f.rpartition("/")[0] == base]
            extra = f" ({len(loose)} files lie directly in it, outside any class folder)" if loose else ""
            raise DataError(f"{label_for} has no class folders{extra}; expected {_LAYOUT_HINT}")
        items: list[tuple[str, str, int]] = []
        for k, c in enumerate(classes):
            cdir = join(base, c)
            files = tree.files_under(cdir)
            if not files:
                raise DataError(f"class folder {tree.where}/{cdir} holds no image files; remove it or add images")
            base_len = len(base) + 1 if base else 0
            items.extend((f, f[base_len:], k) for f in files)
        return classes, items

    tops = tree.top_dirs(root)
    if not any(t in SPLITS for t in tops):
        return {"train": one_split(root, tree.where)}
    others = [t for t in tops if t not in SPLITS]
    if others:  # a class called "train" or "test" beside other classes: neither layout can be meant whole
        where = f"{tree.where}/{root}" if root else tree.where
        raise DataError(
            f"{where} holds both split folders ({', '.join(t + '/' for t in tops if t in SPLITS)}) and "
            f"other folders ({', '.join(t + '/' for t in others[:3])}{' ...' if len(others) > 3 else ''}); "
            "use either train/ and test/ with class folders inside, or class folders only (rename a "
            "class folder called train or test)"
        )
    layout = {}
    for s in SPLITS:
        if s in tops:
            layout[s] = one_split(join(root, s), f"{tree.where}/{join(root, s)}")
    if len(layout) == 2 and layout["train"][0] != layout["test"][0]:
        raise DataError(
            f"{tree.where}: train/ has classes {layout['train'][0]} but test/ has "
            f"{layout['test'][0]}; both splits need the same class folders"
        )
    return layout


def _missing_split(tree_where: str, layout: dict, split: str) -> DataError:
    if set(layout) == {"train"} and split == "test":
        return DataError(
            f"{tree_where} has no test split: it is a plain ImageFolder (<root>/<class>/<image>) "
            f"with no train/ and test/ subfolders. Use a source with both, or pass the test "
            f"images as a separate source."
        )
    return DataError(f"{tree_where} has no {split}/ folder (found: {', '.join(sorted(layout)) or 'nothing'})")


def _read_payload(display: str, payload: bytes | Path) -> bytes:
    if isinstance(payload, bytes):
        return payload
    try:
        return payload.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {display}: {exc}") from None


def _decode_items(
    tree: _Tree, classes: list[str], items: list[tuple[str, str, int]], image_size: int | None, desc: str
) -> ImageDataset:
    n = len(items)
    out: np.ndarray | None = None
    first = ""
    for i, (rel, _, _) in enumerate(tqdm(items, desc=desc, unit="img", disable=None, leave=False)):
        display, payload = tree.files[rel]
        arr = decode_image(_read_payload(display, payload), display, image_size)
        if out is None:
            shape = (n, arr.shape[2], arr.shape[0], arr.shape[1])
            # a set larger than memory is decoded into a disk-backed array (see cache.py)
            out = disk_array(shape) if int(np.prod(shape)) > mmap_threshold() else np.empty(shape, dtype=np.uint8)
            first = display
        elif arr.shape[:2] != out.shape[2:]:
            h, w = arr.shape[:2]
            raise DataError(
                f"image {display} is {w}x{h} but {first} is {out.shape[3]}x{out.shape[2]}: "
                f"without --image-size all images must have the same size. Pass "
                f"--image-size N (image_size=N) to resize every image to N x N."
            )
        out[i] = arr.transpose(2, 0, 1)
    assert out is not None
    labels = torch.tensor([k for _, _, k in items], dtype=torch.int64)
    return ImageDataset(torch.from_numpy(out), labels, list(classes), [f for _, f, _ in items])


def _inside(path: Path, real_root: Path) -> None:
    """Symbolic links may point anywhere inside the tree, never out of it."""
    if path.is_symlink():
        target = path.resolve()
        if target != real_root and real_root not in target.parents:
            raise DataError(
                f"{path} is a symbolic link to {target}, outside {real_root}; copy the file into the "
                "folder (or link to something inside it)"
            )


def not_a_file(path: Path) -> str | None:
    """What `path` is when it is neither a regular file nor a folder (a named pipe, a device, a
    socket, a broken link), or None: reading one could wait forever or read without end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "gone"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def check_regular(path: Path) -> None:
    """A one-line DataError for an input that is not a regular file or a folder, before any read."""
    if (what := not_a_file(path)) is not None:
        raise DataError(f"{path} is {what}, not a file: only regular files are read; move it out of the input")


def _scan_dir(root: Path) -> _Tree:
    tree = _Tree(str(root))
    real_root = root.resolve()
    seen = {real_root}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        for d in dirnames:
            _inside(Path(dirpath) / d, real_root)
            real = (Path(dirpath) / d).resolve()
            if real in seen:
                raise DataError(
                    f"{Path(dirpath) / d} leads back to a folder already read (a symbolic link loop "
                    "or a second link to one folder); remove the link"
                )
            seen.add(real)
            tree.add_dir(f"{rel_dir}/{d}" if rel_dir else d)
        for f in filenames:
            if not _skipped(f):
                _inside(Path(dirpath) / f, real_root)
                check_regular(Path(dirpath) / f)
                rel = f"{rel_dir}/{f}" if rel_dir else f
                tree.add_file(rel, str(root / rel), Path(dirpath) / f)
    return tree


def read_imagefolder(root: str | os.PathLike, split: str = "train", image_size: int | None = None) -> ImageDataset:
    """Decode one split of an ImageFolder directory (see the module doc for the layout)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; expected {_LAYOUT_HINT}")
    tree = _scan_dir(root)
    layout = _split_layout(tree)
    if split not in layout:
        raise _missing_split(str(root), layout, split)
    classes, items = layout[split]
    return _decode_items(tree, classes, items, image_size, f"decoding {root.name}/{split}")


def _open_tar_stream(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r|*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot open archive {path}: {exc}; expected a .tar, .tar.gz or .tgz archive") from None


def _norm_member(name: str) -> str | None:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(_skipped(p) or p == ".." for p in parts):
        return None
    return "/".join(parts)


def read_tarball(
    path: str | os.PathLike, image_size: int | None = None, want: str | None = None
) -> dict[str, ImageDataset]:
    """Decode every split of a tar archive holding an ImageFolder tree, in one pass over the archive.

    Returns split -> ImageDataset ("train" only for a tree without train/ and test/). With
    `want` set, a DataError is raised before decoding anything if that split is absent.
    """
    path = Path(path)
    tree = _Tree(str(path))
    tf = _open_tar_stream(path)
    try:
        with tf:
            for m in tqdm(tf, desc=f"reading {path.name}", unit=" files", disable=None, leave=False):
                rel = _norm_member(m.name)
                if rel is None:
                    continue
                if m.isdir():
                    tree.add_dir(rel)
                elif m.isfile():
                    f = tf.extractfile(m)
                    tree.add_file(rel, f"{path}:{m.name}", f.read() if f is not None else b"")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"cannot read archive {path}: {exc}; the file is corrupt or truncated "
            f"(expected a .tar/.tar.gz/.tgz holding {_LAYOUT_HINT})"
        ) from None
    if not tree.files:
        raise DataError(f"archive {path} holds no files; expected {_LAYOUT_HINT}")
    layout = _split_layout(tree)
    if want is not None and want not in layout:
        raise _missing_split(str(path), layout, want)
    return {
        s: _decode_items(tree, classes, items, image_size, f"decoding {path.name}:{s}")
        for s, (classes, items) in layout.items()
    }


# --------------------------------------------------------------------------- official CIFAR-10 archive


def _numpy_reconstruct():
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(mod)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy's array reconstruction function was not found")


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads dicts, lists, bytes, numbers and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def __init__(self, file, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise DataError(
                f"{self.where}: refusing to unpickle {module}.{name}; the official CIFAR-10 and "
                f"CIFAR-100 files hold only dicts, lists, bytes and numpy arrays, so this file is not "
                f"an official batch (and loading it could run code)"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype


def _unpickle(blob: bytes, where: str):
    try:
        return _RestrictedUnpickler(io.BytesIO(blob), where).load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{where}: cannot unpickle ({type(exc).__name__}: {exc}); expected an official "
            f"CIFAR-10 or CIFAR-100 python file"
        ) from None


def _field(d, key: str, where: str):
    if not isinstance(d, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataError(f"{where}: the pickled dict has no '{key}' entry (keys: {sorted(map(str, d))})")


def _file_md5(path: Path) -> str:
    from ..io import file_digest

    return file_digest(path, "md5")


def archive_members(path: Path, members: tuple[str, ...]) -> dict[str, bytes]:
    """The named files (matched by base name) of a tar archive, or of its extracted folder."""
    blobs: dict[str, bytes] = {}
    if path.is_dir():
        for name in members:
            p = path / name
            if p.is_file():
                blobs[name] = p.read_bytes()
        return blobs
    tf = _open_tar_stream(path)
    try:
        with tf:
            for m in tf:
                base = PurePosixPath(m.name).name
                if m.isfile() and base in members:
                    f = tf.extractfile(m)
                    blobs[base] = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"cannot read archive {path}: {exc}; the file is corrupt or truncated (download it again, see --download)"
        ) from None
    return blobs


def _resize_all(images: torch.Tensor, size: int, desc: str) -> torch.Tensor:
    arr = images.permute(0, 2, 3, 1).numpy()
    out = np.empty((arr.shape[0], size, size, 3), dtype=np.uint8)
    for i in tqdm(range(arr.shape[0]), desc=desc, unit="img", disable=None, leave=False):
        out[i] = np.asarray(Image.fromarray(arr[i], "RGB").resize((size, size), Image.Resampling.BICUBIC))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def read_cifar10_python(
    path: str | os.PathLike, image_size: int | None = None, *, verify: bool = False
) -> dict[str, ImageDataset]:
    """Both splits of the official CIFAR-10 python archive (or its extracted cifar-10-batches-py/).

    With verify=True and the archive named exactly cifar-10-python.tar.gz, its md5 is checked
    against the official one first.
    """
    path = Path(path)
    if verify and path.is_file() and path.name == CIFAR10_ARCHIVE:
        got = _file_md5(path)
        if got != CIFAR10_MD5:
            raise DataError(
                f"{path}: md5 is {got} but the official {CIFAR10_ARCHIVE} has {CIFAR10_MD5}; "
                f"the file is corrupt or not the official archive. Delete it and download it "
                f"again from {CIFAR10_URL} (or use --download)."
            )
    blobs = archive_members(path, _CIFAR10_MEMBERS)
    missing = [m for m in _CIFAR10_MEMBERS if m not in blobs]
    if missing:
        raise DataError(
            f"{path} is missing {', '.join(missing)}; expected the official CIFAR-10 python "
            f"archive ({CIFAR10_FOLDER}/data_batch_1..5, test_batch, batches.meta)"
        )
    meta_where = f"{path}:batches.meta"
    names = _field(_unpickle(blobs["batches.meta"], meta_where), "label_names", meta_where)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{meta_where}: label_names must be a non-empty list")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    out = {}
    for split, members in (("train", _CIFAR10_TRAIN_BATCHES), ("test", ("test_batch",))):
        datas: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        files: list[str] | None = []
        for member in members:
            where = f"{path}:{member}"
            batch = _unpickle(blobs[member], where)
            data = _field(batch, "data", where)
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
                raise DataError(f"{where}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
            try:
                y = np.asarray(_field(batch, "labels", where), dtype=np.int64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{where}: 'labels' must be a list of integers ({exc})") from None
            if y.shape[0] != data.shape[0]:
                raise DataError(f"{where}: {data.shape[0]} images but {y.shape[0]} labels")
            if y.size and (y.min() < 0 or y.max() >= len(classes)):
                raise DataError(f"{where}: labels must be in [0, {len(classes) - 1}]")
            datas.append(data)
            labels.append(y)
            names_ = None
            try:
                names_ = _field(batch, "filenames", where)
            except DataError:
                pass
            if files is not None and isinstance(names_, list) and len(names_) == len(y):
                files.extend(
                    f"{classes[k]}/{n.decode() if isinstance(n, bytes) else n}" for n, k in zip(names_, y.tolist())
                )
            else:
                files = None
        # Each row holds the R, G and B planes of a 32x32 image, row-major: that is (3, 32, 32).
        images = torch.from_numpy(np.concatenate(datas).reshape(-1, 3, 32, 32)).contiguous()
        if image_size is not None and image_size != 32:
            images = _resize_all(images, image_size, f"resizing CIFAR-10 {split}")
        out[split] = ImageDataset(images, torch.from_numpy(np.concatenate(labels)), classes, files)
    return out


def default_data_dir() -> Path:
    """<cache>/data: where downloads go and the last place CIFAR-10 is looked for."""
    return cache_root() / "data"


def download_cifar10(
    dest_dir: str | os.PathLike | None = None, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5
) -> Path:
    """Download the official CIFAR-10 python archive (md5 checked) into dest_dir (default
    <cache>/data/cifar10, where `--download` puts every named dataset)."""
    dest = Path(dest_dir) if dest_dir is not None else default_data_dir() / "cifar10"
    return download_file(url, dest, CIFAR10_ARCHIVE, md5)


def download_file(url: str, dest: Path, filename: str, md5: str) -> Path:
    """Download `url` to dest/filename (io.download: md5 checked before it is renamed into place).
    A file already there with the right md5 is reused."""
    from ..io import ChecksumMismatch, DownloadError, download

    target = dest / filename
    manual = (
        f"If this machine is offline, download {url} elsewhere and put it at {target}, or set "
        f"UNLEARNABLE_DATA to its folder."
    )
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if target.is_file() and _file_md5(target) == md5:
            return target
        return download(url, target, algorithm="md5", expected=md5)
    except ChecksumMismatch as exc:
        raise DataError(
            f"downloaded {url} but its md5 is {exc.digest}, expected {md5}; the download is "
            f"corrupt. Try again, or: {manual}"
        ) from None
    except DownloadError as exc:
        raise DataError(f"could not download {url}: {exc}. {manual}") from None
    except OSError as exc:
        raise DataError(f"cannot write to {dest}: {exc}. {manual}") from None


# --------------------------------------------------------------------------- resolving a source


def _is_tar_name(name: str) -> bool:
    return name.lower().endswith(_TAR_SUFFIXES)


def _looks_like_cifar_python(path: Path) -> bool:
    """Peek at the first members: the official archive starts with its batches."""
    try:
        with tarfile.open(path, "r|*") as tf:
            for i, m in enumerate(tf):
                if PurePosixPath(m.name).name in _CIFAR10_MEMBERS:
                    return True
                if i >= 8:
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        pass
    return False


def _known_in_dir(d: Path) -> Path | None:
    """The CIFAR-10 file or folder in `d`, by its known names (the registry's order)."""
    from .official import DATASETS

    return DATASETS["cifar10"].locate(d, CIFAR10_ARCHIVE)


def _resolve_path(p: Path) -> tuple[str, Path]:
    from .official import DATASETS, holds

    p = p.expanduser().resolve()
    if p.is_dir():
        if p.name == CIFAR10_FOLDER or (p / "batches.meta").is_file():
            return "cifar10-python", p
        if (hit := _known_in_dir(p)) is not None:
            return _resolve_path(hit)
        for spec in DATASETS.values():  # a folder of another dataset's official files
            if holds(spec, p, "train") or holds(spec, p, "test"):
                return f"official:{spec.name}", p
        return "imagefolder", p
    if p.is_file():
        if p.name == CIFAR10_ARCHIVE:
            return "cifar10-python", p
        if p.name == "cifar-100-python.tar.gz":
            return "official:cifar100", p.parent
        if _is_tar_name(p.name):
            return ("cifar10-python" if _looks_like_cifar_python(p) else "tarball"), p
        raise DataError(
            f"unsupported data file {p}: expected a .tar, .tar.gz or .tgz archive of "
            f"{_LAYOUT_HINT}, the official {CIFAR10_ARCHIVE} or cifar-100-python.tar.gz, or a "
            f"directory (an ImageFolder tree, or a folder of a dataset's official files)"
        )
    check_regular(p)
    raise DataError(f"data source {p} does not exist")


def resolve_source(
    source: str | os.PathLike | None = None, *, download: bool = False, split: str = "train"
) -> tuple[str, Path]:
    """(kind, path) of a data source; kind is "imagefolder", "tarball", "cifar10-python" or
    "official:<name>" (a dataset of official.py, path the folder of its files).

    None and the name "cifar10" search for CIFAR-10 (see the module doc for the order); the other
    dataset names (official.py) are searched for the files `split` needs.
    """
    from .official import dataset_names, find_file, find_official, get_dataset

    if source is None:
        source = "cifar10"
    if isinstance(source, str) and (spec := get_dataset(source)) is not None:
        if spec.name == "cifar10":  # its file is decoded whole, both splits at once (read_cifar10_python, read_tarball)
            return _resolve_path(find_file(spec, split, download))
        return f"official:{spec.name}", find_official(spec, split, download)
    p = Path(source).expanduser()
    if not p.exists():
        raise DataError(
            f"data source {source} does not exist; expected a directory holding {_LAYOUT_HINT}, "
            f"a .tar/.tar.gz/.tgz archive of one, a folder of a dataset's official files, or a "
            f"dataset name ({', '.join(dataset_names())})"
        )
    return _resolve_path(p)


def _decode_source(kind: str, path: Path, split: str, image_size: int | None, verify: bool) -> dict[str, ImageDataset]:
    if kind == "imagefolder":
        return {split: read_imagefolder(path, split, image_size)}
    if kind == "tarball":
        return read_tarball(path, image_size, want=split)
    if kind == "cifar10-python":
        return read_cifar10_python(path, image_size, verify=verify)
    if kind.startswith("official:"):
        from .official import DATASETS, read_official

        ds = read_official(DATASETS[kind.partition(":")[2]], path, split, verify)
        if image_size is not None and tuple(ds.images.shape[-2:]) != (image_size, image_size):
            ds = ImageDataset(
                _resize_all(ds.images, image_size, f"resizing {kind[9:]} {split}"), ds.labels, ds.classes, ds.files
            )
        return {split: ds}
    raise ValueError(f"unknown source kind {kind!r}")


def load_dataset(
    source: str | os.PathLike | None = None,
    split: str = "train",
    *,
    image_size: int | None = None,
    cache: bool | str = True,
    download: bool = False,
    verify: bool = False,
) -> ImageDataset:
    """Load one split ("train" or "test") of a data source as a uint8 ImageDataset.

    source: see the module doc (a path, None, "cifar10", or another dataset name of official.py:
    cifar100, cifar100-coarse, svhn, svhn-extra, fashion-mnist). image_size: resize every image to
    image_size x image_size; None keeps the size (all images must share it). cache: read and
    write the decoded-dataset cache (True), only read it ("read": a command that promises to only
    read, verify), or neither (False). download: fetch the official files of a named dataset when
    they are not found. verify: check the md5 of a local cifar-10-python.tar.gz or a named dataset's files.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    kind, path = resolve_source(source, download=download, split=split)
    fingerprint = None
    if cache:
        fingerprint = source_fingerprint(path)
        ds = load_cached(cache_key(kind, path, split, image_size, fingerprint))
        if ds is not None:
            return ds
    decoded = _decode_source(kind, path, split, image_size, verify)
    if split not in decoded:  # only reached for sources that do not check the split themselves
        raise DataError(f"{path} has no {split} split")
    if cache is True:
        keys = {s: cache_key(kind, path, s, image_size, fingerprint) for s in decoded}
        for s, ds in decoded.items():
            save_cached(keys[s], ds, {"kind": kind, "path": str(path), "split": s, "image_size": image_size})
        if decoded[split].images.numel() > mmap_threshold():  # hand back the memory-mapped cache file
            return load_cached(keys[split]) or decoded[split]
    return decoded[split]
