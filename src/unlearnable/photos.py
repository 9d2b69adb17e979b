"""Photo collections at full resolution: a folder of photos of any size, aspect ratio and layout.

A class-wise (or sample-wise) perturbation is optimized at a small square *working size* on the
photos' central squares, and then drawn onto every photo at its own size (draw), so the
protected photo keeps the input's width, height, orientation and name:

    working view   the photo's central square (short side x short side), resized to W x W: what a
                   trainer's "resize + centre crop" sees;
    drawing        the W x W perturbation scaled by short_side / W onto that central square and
                   continued periodically along the long side (bilinear, wrap-around), so every
                   crop a trainer takes (centre or RandomResizedCrop) lies on the pattern at the
                   scale it was optimized at.

The drawing is separable (one small interpolation matrix per axis) and computed in strips of
rows, so a 100-megapixel photo needs its own 8-bit pixels and a few strips of floats, never a
float copy of the photo. Changes are rounded to 8-bit levels and held within the budget
(perturbation.quantize), then the photo is encoded (PNG by default) with its EXIF (orientation
removed: the pixels are stored upright) and ICC profile unless metadata is stripped.

Labels (which photos belong together, for class-wise methods) come from `labels`:
    folders          <root>/<class>/<photo>: one level of class folders (the default); photos in
                     deeper folders or loose in the root stop the run with the options below
    top              the first folder under the root is the class, at any depth below it
    leaf             the folder that holds the photo (its whole relative path) is the class
    one              every photo, at any depth, is of one subject: one class named after the folder
                     (protected against a background, background.py)
    clusters[:K]     K groups of similar photos (k-means on frozen ImageNet features, seeded)
    <file>.csv       rows of file,label (file relative to the root); every photo listed once
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from .data.sources import (
    DataError,
    _scan_dir,
    _skipped,
    _strip_wrappers,
    check_frames,
    check_pixels,
    check_regular,
    exif_of,
    rgb_array,
    upright,
)

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp"}
UNREADABLE = {  # photos this tool cannot decode: say so instead of skipping them
    **dict.fromkeys((".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2", ".pef", ".srw"), "a RAW file"),
    **dict.fromkeys((".heic", ".heif", ".avif"), "an HEIF/AVIF file"),
}
FORMATS = ("png", "webp", "jpeg", "same")
KEEPS_ALPHA = {"PNG", "WEBP", "TIFF"}  # formats a transparent photo is written in with its transparency
WEBP_MAX_SIDE = 16383  # pixels: the largest width or height a WebP file holds
LOSSLESS = {"PNG": ".png", "TIFF": ".tif", "BMP": ".bmp"}  # formats `same` rewrites losslessly
ORIENTATION = 0x0112
GPS_IFD = 0x8825
STRIP_ROWS = 256


@dataclass(frozen=True)
class Photo:
    rel: str  # path relative to the collection's root, posix
    width: int  # as seen (EXIF orientation applied)
    height: int
    format: str  # PIL's name of the input's format: JPEG, PNG, ...
    gps: bool = False  # its EXIF holds a location (published with it unless metadata is stripped)
    alpha: bool = False  # it has transparent areas (kept in PNG, WebP and TIFF; JPEG flattens them onto white)


@dataclass
class Collection:
    """The photos of a folder with one label each, in a fixed order (sorted by path)."""

    root: Path
    photos: list[Photo]
    labels: torch.Tensor
    classes: list[str]
    label_mode: str
    ignored: list[str]  # files beside the photos that are not photos (notes.txt, sidecars)
    separation: float | None = None  # clusters: how clearly the photos fall into their groups (silhouette)

    def __len__(self) -> int:
        return len(self.photos)

    def megapixels(self) -> float:
        return max((p.width * p.height for p in self.photos), default=0) / 1e6


# --------------------------------------------------------------------------- finding photos


def _photo_root(top: Path) -> tuple[Path, str]:
    """The folder whose photos are protected, and its path below `top` as a prefix ("" or
    "portfolio/"): `top` itself, its train/ when it holds train/ (and test/), and through single
    wrapper folders (a ZIP made by Finder or Windows puts its whole folder inside:
    portfolio/anna/..., portfolio/ben/...)."""
    tree = _scan_dir(top)

    def holds_photos(level: str) -> bool:
        return any(f.rpartition("/")[0] == level and Path(f).suffix.lower() in PHOTO_SUFFIXES for f in tree.files)

    prefix = _strip_wrappers(tree, holds_photos)
    root = top / prefix if prefix else top
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not _skipped(p.name)}
    splits = subdirs & {"train", "test"}
    shown = f"{top / prefix}" if prefix else str(top)
    if splits and subdirs - splits:  # a class called "train" or "test" beside other classes
        raise DataError(
            f"{shown} holds both split folders ({', '.join(s + '/' for s in sorted(splits))}) and other folders; use "
            "either train/ and test/ with class folders inside, or class folders only (rename a class folder "
            "called train or test)"
        )
    prefix = f"{prefix}/" if prefix else ""
    if "train" in subdirs:
        return root / "train", f"{prefix}train/"
    return root, prefix


def _header(path: Path, display: str) -> Photo:
    try:
        with Image.open(path) as img:
            w, h, fmt = img.width, img.height, img.format or "?"
            exif = exif_of(img)
            orientation = exif.get(ORIENTATION, 1) if exif is not None else 1
            gps = exif is not None and bool(exif.get_ifd(GPS_IFD))
            alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
            check_frames(img, display)
    except DataError:
        raise
    except Image.UnidentifiedImageError:  # its message names the file's path, which `display` says better
        raise DataError(
            f"cannot read photo {display}: it is not an image file (or it is damaged beyond reading); remove or "
            "replace it"
        ) from None
    except Exception as exc:
        raise DataError(f"cannot read photo {display}: {type(exc).__name__}: {exc}; remove or replace it") from None
    check_pixels(w, h, display)
    if orientation in (5, 6, 7, 8):  # stored sideways
        w, h = h, w
    return Photo(display, w, h, fmt, gps, alpha)


def check_photo(path: Path, display: str) -> Photo:
    """The header as scan reads it, and every pixel decoded once: a damaged or cut-short file is
    refused where it comes in (an upload) rather than in the middle of a run."""
    photo = _header(path, display)
    try:
        with Image.open(path) as img:
            img.load()
    except Exception:
        raise DataError(
            f"cannot read photo {display}: the file is damaged or cut short; replace it with a complete copy"
        ) from None
    return photo


def parse_labels(text: str) -> tuple[str, int | None]:
    """'folders' | 'top' | 'leaf' | 'one' | 'clusters' | 'clusters:K' | a .csv path -> (mode, K)."""
    mode, _, k = text.partition(":")
    if mode == "clusters":
        if k and (not (k.isascii() and k.isdigit()) or int(k) < 2):
            raise ValueError(f"--labels clusters:K needs a whole number K >= 2, got {text!r}")
        return "clusters", int(k) if k else None
    if k or mode not in ("folders", "top", "leaf", "one"):
        if text.lower().endswith(".csv"):
            return "csv", None
        raise ValueError(
            f"--labels must be folders, top, leaf, one, clusters, clusters:K or a .csv file of file,label; got {text!r}"
        )
    return mode, None


def scan(source: str | Path, labels: str = "folders", seed: int = 0, progress: bool = True) -> Collection:
    """The photos under `source` with their labels (see the module doc); reads headers only
    (clusters: also small copies for the features). Every problem is a DataError naming the file."""
    mode, k = parse_labels(labels)
    top = Path(source).expanduser()
    if not top.is_dir():
        raise DataError(f"{source} is not a folder of photos")
    root, prefix = _photo_root(top.resolve())
    tree = _scan_dir(root)
    photos, ignored = [], []
    for rel in sorted(tree.files):
        suffix = Path(rel).suffix.lower()
        if suffix in UNREADABLE:
            raise DataError(
                f"{prefix}{rel} is {UNREADABLE[suffix]}, which this tool cannot read; export it as JPEG, PNG "
                "or TIFF first, or move it out of the folder"
            )
        if suffix not in PHOTO_SUFFIXES:
            ignored.append(prefix + rel)
            continue
        photos.append(_header(root / rel, rel))
    if not photos:
        raise DataError(f"{top} holds no photos (JPEG, PNG, TIFF, WebP or BMP files)")
    names = _labels(photos, mode, labels, top, root, prefix)
    if mode in ("folders", "top"):  # a class folder with no photo is refused, as a benchmark set's is
        empty = sorted(set(tree.top_dirs()) - set(names))
        if empty:
            raise DataError(
                f"class folder {prefix}{empty[0]} holds no photos (JPEG, PNG, TIFF, WebP or BMP files); remove it "
                "or add photos"
            )
    separation = None
    if mode == "clusters":
        classes, label_ids, separation = cluster_labels(root, photos, k, seed, progress)
    else:
        classes = sorted(set(names))
        where = {c: i for i, c in enumerate(classes)}
        label_ids = torch.tensor([where[n] for n in names], dtype=torch.int64)
    return Collection(root, photos, label_ids, classes, labels, ignored, separation)


def _labels(photos: list[Photo], mode: str, text: str, top: Path, root: Path, prefix: str) -> list[str]:
    parts = [p.rel.split("/") for p in photos]
    if mode == "clusters":
        return []
    if mode == "csv":
        return _csv_labels(Path(text).expanduser(), photos, prefix)
    if mode == "one":  # named after the folder the photos are in (a wrapper's, not train/)
        named = top / prefix.removesuffix("train/") if prefix.removesuffix("train/") else top
        return [named.resolve().name or "subject"] * len(photos)
    loose = [p for p in parts if len(p) == 1]
    if loose and mode in ("folders", "top", "leaf"):
        if len(loose) == len(parts):
            raise DataError(
                f"the {len(parts)} photos of {top} lie in one folder, with no class folders. Say which photos "
                "belong together: --labels one if they are all of one subject (your face, your work), one "
                "sub-folder per subject (e.g. anna/, ben/), --labels FILE.csv (rows of file,label), or "
                "--labels clusters to group similar photos automatically"
            )
        raise DataError(
            f"{len(loose)} {'photo lies' if len(loose) == 1 else 'photos lie'} directly in {root}, outside any class "
            f"folder (e.g. {loose[0][0]}); move {'it' if len(loose) == 1 else 'them'} into a class folder or remove "
            f"{'it' if len(loose) == 1 else 'them'}, or use --labels clusters or --labels FILE.csv"
        )
    if mode == "folders":
        deep = [p for p in parts if len(p) > 2]
        if deep:
            example = "/".join(deep[0])
            raise DataError(
                f"{len(deep)} photos sit in sub-folders of sub-folders (e.g. {prefix}{example}); say which "
                f"folders are the classes: --labels top (here {deep[0][0]!r}) or --labels leaf "
                f"(here {'/'.join(deep[0][:-1])!r})"
            )
    if mode == "leaf":
        return ["/".join(p[:-1]) for p in parts]
    return [p[0] for p in parts]


def _csv_labels(path: Path, photos: list[Photo], prefix: str) -> list[str]:
    if path.exists() and not path.is_dir():
        check_regular(path)
    if not path.is_file():
        raise DataError(f"--labels {path}: no such file; give a CSV of file,label rows")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"--labels {path}: cannot read it as UTF-8 CSV ({e})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if rows and _is_header(rows[0], {p.rel for p in photos}, prefix):
        rows = rows[1:]
    table: dict[str, str] = {}
    for n, r in enumerate(rows, 1):
        if len(r) < 2 or not r[0].strip() or not r[1].strip():
            raise DataError(f"--labels {path}: row {n} is {','.join(r)!r}; every row must be file,label")
        name = r[0].strip().replace("\\", "/").removeprefix("./").removeprefix(prefix)
        if name in table:
            raise DataError(f"--labels {path}: {name} is listed twice (rows for one photo must be unique)")
        table[name] = r[1].strip()
    known = {p.rel for p in photos}
    missing = [p.rel for p in photos if p.rel not in table]
    extra = [n for n in table if n not in known]
    if missing:
        raise DataError(
            f"--labels {path} gives no label for {len(missing)} photo(s) (e.g. {prefix}{missing[0]}); add a row "
            "file,label for each"
        )
    if extra:
        raise DataError(f"--labels {path} lists {extra[0]}, which is not a photo in the folder; remove that row")
    return [table[p.rel] for p in photos]


CSV_FILE_WORDS = {"file", "filename", "file name", "name", "photo", "image", "path", "picture"}
CSV_LABEL_WORDS = {"label", "group", "class", "subject", "category", "folder", "person"}


def _is_header(row: list[str], photos: set[str], prefix: str) -> bool:
    """Whether a CSV's first row names its columns (file,label; file,group; Photo,Subject; ...)
    rather than a photo: its first cell is a column word and no photo of the folder."""
    cells = [c.strip().lower() for c in row[:2]]
    if len(cells) < 2 or row[0].strip().removeprefix(prefix) in photos:
        return False
    return cells[0] in CSV_FILE_WORDS and cells[1] in CSV_LABEL_WORDS


def default_clusters(n: int) -> int:
    """About 10 photos per group, between 2 and 10 groups."""
    return max(2, min(10, round(n / 10)))


def cluster_labels(root: Path, photos: list[Photo], k: int | None, seed: int, progress: bool):
    """Pseudo-classes for a flat folder: k-means (k-means++ start, several seeded restarts) on the
    L2-normalized pooled features of a frozen ImageNet EfficientNet-Lite0 at 224 px (the
    label-agnostic setting of Unlearnable Clusters, Zhang et al., CVPR 2023), and how clearly the
    photos fall into those groups (`silhouette`)."""
    k = k or default_clusters(len(photos))
    if k > len(photos):
        raise DataError(f"--labels clusters:{k} asks for more groups than there are photos ({len(photos)})")
    views, _ = working_set_images(root, photos, 224, progress, "reading photos for grouping")
    features = image_features(views)
    labels = kmeans(features, k, seed)
    return [f"group{i + 1:02d}" for i in range(k)], labels, silhouette(features, labels)


# Kaufman & Rousseeuw (1990) read a mean silhouette of 0.5 or less as a weak structure that may be
# artificial (and 0.25 or less as none): groups a clustering made by force, not subjects.
SEPARATE_GROUPS = 0.5


def silhouette(x: torch.Tensor, labels: torch.Tensor) -> float:
    """The mean silhouette (Rousseeuw 1987) of a partition under cosine distance: for every photo,
    (b - a) / max(a, b) with a its mean distance to its own group's other photos and b that to the
    nearest other group; 0 for a photo alone in its group. Near 1: clear groups; near 0 or below:
    photos that do not fall into these groups (one subject, or a continuum) split by force."""
    x = torch.nn.functional.normalize(x.double(), dim=1)
    dist = (1 - x @ x.T).clamp_(min=0)
    member = torch.nn.functional.one_hot(labels, int(labels.max()) + 1).double()
    sizes = member.sum(0)
    sums = dist @ member  # (photos, groups): summed distance to each group's photos
    own = member.bool()
    own_size = sizes[labels] - 1
    a = sums[own] / own_size.clamp(min=1)
    other = torch.where(own | (sizes == 0), math.inf, sums / sizes.clamp(min=1)).amin(1)
    s = torch.where(own_size > 0, (other - a) / torch.maximum(a, other).clamp(min=1e-12), 0.0)
    return float(s.mean()) if member.shape[1] > 1 else 0.0


@torch.no_grad()
def image_features(images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Pooled features of a frozen ImageNet EfficientNet-Lite0 at 224 px, one row per uint8 image."""
    from .models import create_model

    model = create_model("efficientnet_lite0", 2, pretrained=True, input_size=224).eval()
    rows = [model.forward_features(images[i : i + batch].float() / 255) for i in range(0, len(images), batch)]
    return torch.cat(rows)


def kmeans(x: torch.Tensor, k: int, seed: int, restarts: int = 4, iters: int = 50) -> torch.Tensor:
    """Labels 0..k-1 of the rows of `x` (cosine k-means; the restart of least inertia wins).
    Clusters are numbered by their first member, so equal partitions give equal labels."""
    x = torch.nn.functional.normalize(x.float(), dim=1)
    gen = torch.Generator().manual_seed(seed)
    best, best_cost = None, math.inf
    for _ in range(restarts):
        centres = x[torch.randint(len(x), (1,), generator=gen)]
        for _ in range(1, k):  # k-means++: the next centre far from the chosen ones
            d = torch.cdist(x, centres).amin(1).pow(2)
            centres = torch.cat([centres, x[torch.multinomial(d + 1e-12, 1, generator=gen)]])
        for _ in range(iters):
            assign = torch.cdist(x, centres).argmin(1)
            new = torch.stack([x[assign == c].mean(0) if (assign == c).any() else centres[c] for c in range(k)])
            if torch.allclose(new, centres):
                break
            centres = new
        assign = torch.cdist(x, centres).argmin(1)
        cost = torch.cdist(x, centres).gather(1, assign[:, None]).pow(2).sum().item()
        if cost < best_cost - 1e-9:
            best, best_cost = assign, cost
    assert best is not None
    first = {int(c): i for i, c in reversed(list(enumerate(best.tolist())))}
    order = sorted(first, key=first.get)  # type: ignore[arg-type]
    remap = torch.zeros(k, dtype=torch.int64)
    for new_id, old in enumerate(order):
        remap[old] = new_id
    return remap[best]


# --------------------------------------------------------------------------- reading photos


def members(collection: Collection) -> dict[str, list[str]]:
    """Every group's photos (paths under the folder), in the collection's order."""
    out: dict[str, list[str]] = {c: [] for c in collection.classes}
    for p, label in zip(collection.photos, collection.labels.tolist()):
        out[collection.classes[label]].append(p.rel)
    return out


def grouping_words(collection: Collection, limit: int = 12) -> list[str]:
    """For groups the tool made itself (clusters): which photo went where, and a warning where the
    photos do not fall into clear groups, or a group is one photo: a trainer labels photos by what
    they show, so groups made by force are not the ones a protection has to hold against."""
    if collection.separation is None:
        return []
    lines = []
    groups = members(collection)
    for group, files in groups.items():
        shown = ", ".join(files[:limit]) + (f", ... ({len(files) - limit} more)" if len(files) > limit else "")
        lines.append(f"{group} ({len(files)}): {shown}")
    if collection.separation < SEPARATE_GROUPS:
        lines.append(
            f"warning: these photos do not fall into clearly separate groups (silhouette {collection.separation:.2f}; "
            f"at {SEPARATE_GROUPS} or less, groups are weak and may be made by force): a trainer labels photos by what "
            "they show, and would give "
            "photos of one subject one label. If they are all of one subject, protect them as one (--labels one); "
            "if they are of several, put each subject's photos in a folder of its own"
        )
    alone = [g for g, files in groups.items() if len(files) == 1]
    if alone:
        lines.append(
            f"warning: {', '.join(alone)} {'holds' if len(alone) == 1 else 'hold'} a single photo: a group of one is "
            "rarely a subject a trainer would name; fewer groups (--labels clusters:K) or your own folders fit better"
        )
    return lines


def open_upright(path: Path, display: str, draft: int | None = None) -> tuple[np.ndarray, Image.Image]:
    """(H, W, 3) uint8 pixels as seen (EXIF orientation applied) and the opened file (for its
    metadata). `draft`: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale while its short side stays
    >= draft (much faster for a small working view)."""
    try:
        img = Image.open(path)
        if draft and img.format == "JPEG":
            scale = draft / min(img.size)
            img.draft("RGB", (max(1, math.ceil(img.width * scale)), max(1, math.ceil(img.height * scale))))
        img.load()
        return rgb_array(upright(img)), img
    except Exception as exc:
        raise DataError(f"cannot decode photo {display}: {type(exc).__name__}: {exc}; remove or replace it") from None


def central_square(arr: np.ndarray, size: int) -> np.ndarray:
    """The photo's central square resized to size x size (what resize + centre crop gives)."""
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) / 2, (w - s) / 2
    img = Image.fromarray(arr)
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + s, top + s)))


def central_square_mean(values: np.ndarray, size: int) -> np.ndarray:
    """The mean of an (H, W) float map over the area of every pixel of the central square at
    size x size (what a trainer's resize averages a change by)."""
    h, w = values.shape
    s = min(h, w)
    top, left = (h - s) / 2, (w - s) / 2
    img = Image.fromarray(values.astype(np.float32), "F")
    return np.array(img.resize((size, size), Image.Resampling.BOX, box=(left, top, left + s, top + s)))


def by_strips(pixels: np.ndarray, pad: int, fn) -> np.ndarray:
    """The (H, W) float map `fn` makes of an (H, W, 3) uint8 photo, computed STRIP_ROWS rows at a
    time, each strip with `pad` rows of context above and below (fn takes and returns (1, C, h, W)
    tensors): with the reach of fn's filters as `pad`, the whole photo's map, in a fraction of its
    memory (a float copy of a whole 100 MP photo is 1.2 GB)."""
    h = pixels.shape[0]
    out = np.empty(pixels.shape[:2], np.float32)
    for r in range(0, h, STRIP_ROWS):
        lo, hi = max(0, r - pad), min(h, r + STRIP_ROWS + pad)
        part = torch.from_numpy(np.array(pixels[lo:hi])).permute(2, 0, 1)[None]
        out[r : r + STRIP_ROWS] = fn(part)[0, 0, r - lo : r - lo + min(STRIP_ROWS, h - r)].numpy()
    return out


def photo_budget(pixels: np.ndarray, look) -> np.ndarray:
    """The look's (H, W) budget map of an (H, W, 3) uint8 photo (by_strips: the whole photo's map)."""
    from .look import budget_map, halo

    return by_strips(pixels, halo(look), lambda part: budget_map(part, look))


def photo_is_grey(pixels: np.ndarray) -> bool:
    """A black-and-white photo: look.is_grey of its (H, W, 3) uint8 pixels, STRIP_ROWS rows at a time."""
    from .look import is_grey

    strips = (pixels[r : r + STRIP_ROWS] for r in range(0, pixels.shape[0], STRIP_ROWS))
    return all(bool(is_grey(torch.from_numpy(np.array(part)).permute(2, 0, 1)[None])) for part in strips)


def working_set_images(
    root: Path, photos: list[Photo], size: int, progress: bool, desc: str, transform=None, look=None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every photo's central square at size x size, and with a `look` its budget map (computed at
    full resolution, averaged over the area of each working pixel: the share of the budget the
    drawn photo carries there); `transform` first maps each photo at full resolution (what
    publishing does to it). Without either, a JPEG is decoded at a reduced scale."""
    from tqdm.auto import tqdm

    out = torch.empty((len(photos), 3, size, size), dtype=torch.uint8)
    budget = None if look is None else torch.empty((len(photos), 1, size, size))
    full = transform is not None or look is not None
    for i, p in enumerate(tqdm(photos, desc=desc, unit="photo", disable=not progress, leave=False)):
        arr, img = open_upright(root / p.rel, p.rel, draft=None if full else 2 * size)
        img.close()
        if transform is not None:
            arr = transform(arr)
        out[i] = torch.from_numpy(central_square(arr, size).transpose(2, 0, 1).copy())
        if budget is not None:
            budget[i, 0] = torch.from_numpy(central_square_mean(photo_budget(arr, look), size))
    return out, budget


def working_set(
    collection: Collection,
    size: int,
    progress: bool = True,
    transform=None,
    desc: str = "reading photos",
    look=None,
):
    """The ImageDataset a method is fitted on (and a trainer's view): every photo's central square
    at size x size, after `transform`, with the `look`'s budget map (see working_set_images)."""
    from .data import ImageDataset

    images, budget = working_set_images(collection.root, collection.photos, size, progress, desc, transform, look)
    files = [p.rel for p in collection.photos]
    return ImageDataset(images, collection.labels.clone(), list(collection.classes), files, budget)


def originals_of(manifest: dict, root: str | Path | None = None) -> tuple[Collection, list[str]]:
    """The original photos a `protect` output was made from, in its order and with the labels it was
    protected under (clusters and CSV labels included), and the output names (the manifest's).
    `root`: the input folder, when it has moved since."""
    entries = manifest["photo_files"]
    base = _photo_root(Path(root).expanduser().resolve())[0] if root else Path(manifest["photo_root"])
    names = list(entries)
    classes = list(manifest["classes"])
    photos = [_header(base / entries[n]["source"], entries[n]["source"]) for n in names]
    labels = torch.tensor([classes.index(entries[n]["label"]) for n in names], dtype=torch.int64)
    return Collection(base, photos, labels, classes, str(manifest.get("labels", "folders")), []), names


def protected_of(folder: Path, manifest: dict) -> Collection:
    """The protected photos of a `protect` output, in its order, with their labels (photos lie where
    they lay in the input; under train/ in an output of version 0.1's first layout)."""
    entries = manifest["photo_files"]
    classes = list(manifest["classes"])
    root = folder / "train" if all(n.startswith("train/") for n in entries) else folder
    photos = [_header(folder / n, (folder / n).relative_to(root).as_posix()) for n in entries]
    labels = torch.tensor([classes.index(e["label"]) for e in entries.values()], dtype=torch.int64)
    return Collection(root, photos, labels, classes, str(manifest.get("labels", "folders")), [])


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a `protect` output made from a folder of photos, or None."""
    import json

    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("photo_files"), dict) else None


def collection_for(source, split: str = "train", labels: str = "folders", seed: int = 0) -> Collection:
    """The photos of one split of a folder: a `protect` output (its own labels), or <source>/<split>
    when it exists, or (train) the folder itself."""
    folder = Path(source).expanduser()
    if split == "train" and (m := read_manifest(folder)) is not None:
        return protected_of(folder, m)
    if (folder / split).is_dir():
        return scan(folder / split, labels, seed=seed, progress=False)
    if split == "test":
        raise DataError(f"{folder} has no test/ folder: name the held-out photos with --data")
    return scan(folder, labels, seed=seed, progress=False)


def views(source, split: str, size: int, labels: str = "folders", progress: bool = True):
    """What a trainer makes of a folder of photos: every photo resized and centre-cropped to
    size x size (its central square, resized), labelled; see collection_for."""
    return working_set(collection_for(source, split, labels), size, progress)


def default_working_size(collection: Collection, cap: int) -> int:
    """The preset's working size, or the smallest photo's short side when that is smaller."""
    return max(8, min(cap, min(min(p.width, p.height) for p in collection.photos)))


# --------------------------------------------------------------------------- drawing the perturbation


def axis_weights(n_out: int, n_work: int, short: int) -> torch.Tensor:
    """(n_out, n_work) bilinear weights that draw a periodic pattern of n_work cells, scaled so
    that n_work cells span `short` output pixels and centred on the output axis."""
    scale = short / n_work
    x = torch.arange(n_out, dtype=torch.float64)
    u = (x - (n_out - short) / 2 + 0.5) / scale - 0.5
    i0 = torch.floor(u)
    f = (u - i0).float()
    i0 = i0.long()
    w = torch.zeros(n_out, n_work)
    rows = torch.arange(n_out)
    w.index_put_((rows, i0 % n_work), 1 - f, accumulate=True)
    w.index_put_((rows, (i0 + 1) % n_work), f, accumulate=True)
    return w


def draw(
    pixels: np.ndarray, delta: torch.Tensor, eps: float, norm: str = "linf", look=None, grey: bool | None = None
) -> tuple[np.ndarray, int]:
    """The protected copy of an (H, W, 3) uint8 photo and its largest change in 8-bit levels:
    `delta` (3, n, n) drawn at the photo's size (module doc), shaped by the `look` (its budget map
    of this photo, grey on a grey photo; look.py), rounded and held within the budget, STRIP_ROWS
    rows at a time."""
    from .look import budget_map, halo, shaped
    from .perturbation import quantize

    if norm != "linf":
        raise ValueError(f"photos at full resolution take an Linf budget; {norm} budgets need --image-size")
    h, w = pixels.shape[:2]
    n = delta.shape[-1]
    if grey is None:  # render() knows it already
        grey = look is not None and photo_is_grey(pixels)
    grey_row = torch.tensor([grey])
    pad = 0 if look is None else halo(look)

    def looked(change: torch.Tensor, r: int, rows: int) -> torch.Tensor:
        """The change of rows r..r+rows as the look allows it (the map from the rows around them)."""
        if look is None:
            return change
        lo, hi = max(0, r - pad), min(h, r + rows + pad)
        part = torch.from_numpy(np.array(pixels[lo:hi])).permute(2, 0, 1)[None]
        m = budget_map(part, look)[:, :, r - lo : r - lo + rows]
        return shaped(change[None], m, grey_row)[0]

    if (h, w) == tuple(delta.shape[-2:]):  # the photo is the working size: nothing to draw
        t = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None]
        same = quantize(t, looked(delta.float(), 0, h)[None], eps, norm)[0]
        return same.permute(1, 2, 0).numpy().copy(), int((same.int() - t[0].int()).abs().max())
    short = min(h, w)
    wy, wx = axis_weights(h, n, short), axis_weights(w, n, short)
    side = delta.float() @ wx.T  # (3, n, w)
    out = np.empty_like(pixels)
    top = 0
    for r in range(0, h, STRIP_ROWS):
        strip = torch.einsum("rn,cnw->crw", wy[r : r + STRIP_ROWS], side)
        clean = torch.from_numpy(np.array(pixels[r : r + STRIP_ROWS])).permute(2, 0, 1)
        prot = quantize(clean[None], looked(strip, r, strip.shape[1])[None], eps, norm)[0]
        top = max(top, int((prot.int() - clean.int()).abs().max()))
        out[r : r + STRIP_ROWS] = prot.permute(1, 2, 0).numpy()
    return out, top


# --------------------------------------------------------------------------- writing photos


def output_format(photo: Photo, fmt: str) -> tuple[str, str]:
    """(PIL format, file suffix) a photo is written in for --format png | webp | jpeg | same."""
    if fmt == "png":
        return "PNG", ".png"
    if fmt == "webp":
        if max(photo.width, photo.height) > WEBP_MAX_SIDE:
            raise ValueError(
                f"{photo.rel} is {photo.width} x {photo.height} pixels, and a WebP file holds at most "
                f"{WEBP_MAX_SIDE} on a side; use --format png for these photos"
            )
        return "WEBP", ".webp"
    if fmt == "jpeg":
        return "JPEG", ".jpg"
    if photo.format == "JPEG":
        return "JPEG", Path(photo.rel).suffix
    if photo.format in LOSSLESS:
        return photo.format, Path(photo.rel).suffix
    if photo.format == "WEBP":
        return "WEBP", Path(photo.rel).suffix
    raise ValueError(f"--format same cannot rewrite {photo.rel} ({photo.format}); use --format png or jpeg")


def metadata(img: Image.Image, strip: bool) -> dict:
    """What is carried to the output: EXIF without orientation (the pixels are stored upright)
    and without its embedded thumbnail (a small unprotected copy of the photo), the ICC profile
    and XMP, unless `strip`."""
    if strip:
        return {}
    keep: dict = {}
    exif = exif_of(img)
    if exif:
        exif.pop(ORIENTATION, None)
        if exif:
            keep["exif"] = exif.tobytes()  # the main directory with its Exif and GPS parts; no IFD1 (thumbnail)
    if img.info.get("icc_profile"):
        keep["icc_profile"] = img.info["icc_profile"]
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if xmp:
        keep["xmp"] = XMP_ORIENTATION.sub(b"", xmp if isinstance(xmp, bytes) else str(xmp).encode())
    return keep


# an XMP packet's orientation, as an attribute (tiff:Orientation="6") or an element: the pixels are
# stored upright, so a reader that honours it (Pillow, browsers, photo apps) would turn them again
XMP_ORIENTATION = re.compile(
    rb"""\s+tiff:Orientation\s*=\s*(?:"[^"]*"|'[^']*')|<tiff:Orientation\b[^>]*(?:/>|>[^<]*</tiff:Orientation>)"""
)


GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}  # a file stored with one channel


def encode(
    pixels: np.ndarray,
    fmt: str,
    quality: int,
    source: Image.Image,
    meta: dict,
    grey: bool = False,
    alpha: np.ndarray | None = None,
) -> bytes:
    """The encoded bytes of a protected photo; `same` JPEGs keep the input's quantization tables
    (its quality) and chroma subsampling. `grey`: the change is grey (three equal channels) and
    the file one channel, as a black-and-white file stored as such comes back (8 bits). `alpha`:
    the photo's own (H, W) transparency, stored beside the colours (PNG, WebP, TIFF)."""
    from PIL import JpegImagePlugin, PngImagePlugin

    if alpha is not None:
        channels = [pixels[..., :1]] if grey else [pixels]
        img = Image.fromarray(
            np.ascontiguousarray(np.concatenate([*channels, alpha[..., None]], 2)), "LA" if grey else "RGBA"
        )
    elif grey:
        img = Image.fromarray(np.ascontiguousarray(pixels[..., 0]), "L")
    else:
        img = Image.fromarray(pixels, "RGB")
    buf = io.BytesIO()
    extra = {k: v for k, v in meta.items() if k in ("exif", "icc_profile")}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if "xmp" in meta:
            info.add_itxt("XML:com.adobe.xmp", meta["xmp"].decode("utf-8", "replace"))
        img.save(buf, "PNG", compress_level=6, pnginfo=info, **extra)
    elif fmt == "JPEG":
        if quality == 0 and source.format == "JPEG" and getattr(source, "quantization", None):
            sampling = JpegImagePlugin.get_sampling(source)
            extra.update(qtables=source.quantization, subsampling=sampling if sampling != -1 else 0)  # type: ignore[attr-defined]
        else:
            extra.update(quality=quality or 95)
        if "xmp" in meta:
            extra["xmp"] = meta["xmp"]
        img.save(buf, "JPEG", optimize=True, **extra)
    elif fmt == "WEBP":
        if "xmp" in meta:
            extra["xmp"] = meta["xmp"]
        # effort 50, method 2: measured within 1% of the size of libwebp's default effort, in a third of the time
        img.save(buf, "WEBP", lossless=True, quality=50, method=2, exact=True, **extra)
    elif fmt == "TIFF":
        img.save(buf, "TIFF", compression="tiff_lzw", **extra)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def lossy(fmt: str) -> bool:
    return fmt == "JPEG"


class Rendered(NamedTuple):
    """A protected photo as render() makes it."""

    data: bytes  # the encoded file
    top: int  # the largest change before encoding, in 8-bit levels
    seen: int  # the largest change a viewer decodes (JPEG adds its own)
    kept: list[str]  # the metadata carried over
    grey: bool  # a black-and-white photo, given a grey change
    crops: tuple[np.ndarray, np.ndarray] | None  # (original, as saved) 100% crops of its smoothest area


def render(
    collection: Collection,
    i: int,
    delta: torch.Tensor,
    eps: float,
    fmt: str,
    quality: int,
    strip: bool,
    look=None,
    crop_side: int | None = None,
) -> Rendered:
    """Photo i protected with its `delta` under the `look` and encoded: the one function export and
    verify use. `crop_side`: also the 100% crops of its smoothest area (visibility.smoothest_box),
    taken from the pixels already here rather than decoding the photo twice more."""
    from .visibility import crop, smoothest_box

    p = collection.photos[i]
    pixels, img = open_upright(collection.root / p.rel, p.rel)
    viewed = pixels  # the original as a viewer sees it (transparency over white)
    try:
        meta = metadata(img, strip)
        grey = look is not None and photo_is_grey(pixels)
        prot, top = draw(pixels, delta, eps, look=look, grey=grey)
        pil_fmt, _ = output_format(p, fmt)
        alpha = None
        if p.alpha and pil_fmt in KEEPS_ALPHA:  # transparency kept: the change on the photo's own colours
            rgba = np.asarray(upright(img).convert("RGBA"))
            own, alpha = rgba[..., :3], np.ascontiguousarray(rgba[..., 3])
            prot = np.clip(own.astype(np.int16) + (prot.astype(np.int16) - pixels.astype(np.int16)), 0, 255)
            prot = prot.astype(np.uint8)
            top, pixels = int(np.abs(prot.astype(np.int16) - own.astype(np.int16)).max()), own
        data = encode(prot, pil_fmt, quality, img, meta, grey=grey and img.mode in GREY_MODES, alpha=alpha)
    finally:
        img.close()
    seen, saved = top, prot
    if lossy(pil_fmt) or (crop_side and alpha is not None):  # what a viewer decodes differs from prot
        with Image.open(io.BytesIO(data)) as back:
            saved = rgb_array(back)  # transparency over white, as the original is seen
        if lossy(pil_fmt):
            seen = int(np.abs(saved.astype(np.int16) - pixels.astype(np.int16)).max())
    crops = None
    if crop_side:
        box = smoothest_box(viewed, crop_side)
        crops = (crop(viewed, box).copy(), crop(saved, box).copy())
    return Rendered(data, top, seen, sorted(meta), grey, crops)


def output_names(collection: Collection, fmt: str) -> tuple[list[str], list[str]]:
    """(one output path per photo, relative to the output folder: the photo's own path with the
    output's suffix, so the folders come back as they were; notes for renamed photos): the export's
    one naming rule (export.unique_names) with each photo's output suffix, the output's own files
    (manifest.json, perturbation.safetensors, preview.png) never taken."""
    from .export import unique_names
    from .outputs import PROTECT_FILES

    rels = [p.rel for p in collection.photos]
    return unique_names(rels, [output_format(p, fmt)[1] for p in collection.photos], PROTECT_FILES)
