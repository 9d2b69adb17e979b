"""Writing a protected dataset: PNG ImageFolder tree, perturbation, manifest and preview.

Layout of an output folder:
    train/<class>/<name>.png     protected training images (8-bit PNG, lossless)
    perturbation.safetensors     the float perturbation and its settings
    manifest.json                method, settings, seed, input checksums, versions, timing, budget check
    preview.png                  clean / protected / perturbation (magnified) for a few classes
Everything is written into a temporary sibling folder that is renamed into place at the end,
so an interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class OutputExistsError(FileExistsError):
    pass


def check_output(out: str | Path, inputs: list[str | Path] = (), force: bool = False) -> Path:
    """Refuse an existing output (unless force) and any output inside an input folder."""
    out = Path(out).resolve()
    for src in inputs:
        if src is None:
            continue
        src = Path(src).resolve()
        if out == src or (src.is_dir() and src in out.parents):
            raise ValueError(f"output {out} is inside the input {src}; choose an output folder outside the input")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    return out


@contextmanager
def atomic_dir(out: str | Path, force: bool = False):
    """Yield a temporary sibling folder; on success it replaces `out` in one rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        if not force:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OutputExistsError(f"{out} already exists; pass --force to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def source_checksums(source: str | Path) -> dict:
    """sha256 of an input archive, or of every file of an input folder (sorted by path)."""
    p = Path(source)
    if p.is_file():
        return {p.name: file_sha256(p)}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(p)).encode())
            h.update(file_sha256(f).encode())
        return {p.name + "/": h.hexdigest(), "files": len(files)}
    return {}


def check_class_names(classes) -> None:
    """Class names become folder names: refuse any that would leave the output folder."""
    for c in classes:
        if c in ("", ".", "..") or any(ch in c for ch in "/\\\0") or Path(c).is_absolute():
            raise ValueError(f"class name {c!r} cannot be a folder name inside the output (it is empty, '.', '..', "
                             "absolute, or holds a path separator); rename that class in the input")


def image_names(dataset) -> list[str]:
    """One relative PNG path per image: the source name where known, else the index."""
    if dataset.files is not None:
        names = [str(Path(f).with_suffix(".png")) for f in dataset.files]
        if len(set(names)) == len(names):
            return [f"{dataset.classes[int(y)]}/{Path(n).name}" for n, y in zip(names, dataset.labels)]
    return [f"{dataset.classes[int(y)]}/{i:05d}.png" for i, y in enumerate(dataset.labels)]


def write_image_folder(dataset, root: Path, progress: bool = True) -> list[str]:
    from tqdm.auto import tqdm

    check_class_names(dataset.classes)
    names = image_names(dataset)
    for c in dataset.classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    arr = dataset.images.permute(0, 2, 3, 1).numpy()
    for i in tqdm(range(len(names)), desc="write PNGs", disable=not progress, leave=False, unit="img"):
        Image.fromarray(arr[i]).save(root / names[i], compress_level=6)
    return names


def preview(clean, protected, path: Path, per_row: int = 10) -> None:
    """A 3-row strip: clean images, protected images, perturbation magnified to full range."""
    picks = []
    for c in range(clean.num_classes):
        hit = (clean.labels == c).nonzero()
        if len(hit):
            picks.append(int(hit[0]))
    picks = picks[:per_row]
    a = clean.images[picks].float()
    b = protected.images[picks].float()
    d = b - a
    scale = d.abs().amax().clamp(min=1)
    d = (d / scale * 127.5 + 127.5)
    rows = [torch.cat(list(t), dim=2) for t in (a, b, d)]
    grid = torch.cat(rows, dim=1).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    h, w = grid.shape[:2]
    zoom = max(1, 256 // h)
    Image.fromarray(np.ascontiguousarray(grid)).resize((w * zoom, h * zoom), Image.NEAREST).save(path)


def export_protected(out: str | Path, clean, protected, perturbation, manifest: dict, *, force: bool = False,
                     progress: bool = True) -> Path:
    """Write the whole output folder atomically; returns its path."""
    from .perturbation import budget_limit, budget_used

    p = perturbation
    used = budget_used(clean.images, protected.images, p.norm)
    if not bool((used <= budget_limit(p.eps, p.norm)).all()):
        raise RuntimeError(f"protected images exceed the {p.norm} budget {p.eps}; refusing to export")
    linf = used if p.norm == "linf" else budget_used(clean.images, protected.images, "linf")
    diff = round(linf.max().item() * 255)
    budget = {"norm": p.norm, "eps": p.eps, "max_used": used.max().item()}
    manifest = {**manifest, "max_abs_change_0_255": diff, "budget": budget, "images": len(protected),
                "classes": list(protected.classes)}
    check_class_names(protected.classes)
    with atomic_dir(out, force=force) as tmp:
        names = write_image_folder(protected, tmp / "train", progress)
        perturbation.save(tmp / "perturbation.safetensors")
        preview(clean, protected, tmp / "preview.png")
        # what `unlearnable verify` re-checks: every written file's sha256, in the training set's order
        manifest["files"] = {f"train/{n}": file_sha256(tmp / "train" / n) for n in names}
        manifest["perturbation_sha256"] = file_sha256(tmp / "perturbation.safetensors")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return Path(out)
