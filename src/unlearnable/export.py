"""Writing a protected dataset: PNG ImageFolder tree, perturbation, manifest and preview.

Layout of an output folder:
    train/<class>/<path>.png     a benchmark set's protected training images (8-bit PNG, lossless),
                                 the input's relative paths with the suffix .png (see output_names)
    <path>.<format>              or a folder of photos: every photo where it lay in the input, in its
                                 own folders, with the output format's suffix (photos.output_names)
    perturbation.safetensors     the float perturbation and its settings
    manifest.json                method, settings, seed, input checksums, versions, timing, budget check,
                                 the sha256 of every file and the input name of every image
    preview.png                  clean / protected / perturbation (magnified) for a few classes
Everything is written into a temporary sibling folder that is renamed into place at the end,
so an interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def check_class_names(classes) -> None:
    """Class names become folder names: refuse any that would leave the output folder."""
    folded: dict[str, str] = {}
    for c in classes:
        if c.casefold() in folded:
            raise ValueError(
                f"classes {folded[c.casefold()]!r} and {c!r} differ only in case: on a case-insensitive disk they "
                "would be one folder (one class); rename one of them in the input"
            )
        folded[c.casefold()] = c
        if c in ("", ".", "..") or any(ch in c for ch in "/\\\0") or Path(c).is_absolute():
            raise ValueError(
                f"class name {c!r} cannot be a folder name inside the output (it is empty, '.', '..', "
                "absolute, or holds a path separator); rename that class in the input"
            )


NAME_MAX = 255  # bytes of one file or folder name on the usual file systems (ext4, APFS, NTFS)


def unique_names(rels: list[str], suffixes: list[str], reserved: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(one output path per input, notes for those written under another name than their own),
    the one naming rule of every export: an input keeps its relative path with the output's
    suffix; where two would meet (a.jpg beside a.png, as PNG) the one whose suffix changes keeps
    its own before the new one (a.jpg.png); a name still taken (by a third input a.jpg.png, twice
    in an archive, or one of the `reserved` names the output's own files take) is numbered
    (a.jpg.00002.png). Names are compared case-folded, so no two meet on a case-insensitive disk
    either. A name part over NAME_MAX bytes is refused, naming the input, before any work."""
    plain = [str(Path(r).with_suffix(s)) for r, s in zip(rels, suffixes)]
    reserved_folded = {n.casefold() for n in reserved}
    claims: dict[str, int] = dict.fromkeys(reserved_folded, 2)
    for n in plain:
        claims[n.casefold()] = claims.get(n.casefold(), 0) + 1
    wanted = [n if claims[n.casefold()] == 1 or n == r else r + s for n, r, s in zip(plain, rels, suffixes)]
    # who gets a wanted name: the output's own file, an input whose name it already is, else the
    # first input wanting it
    owner: dict[str, int] = dict.fromkeys(reserved_folded, -1)
    for i in sorted(range(len(rels)), key=lambda i: (wanted[i] != rels[i], i)):
        owner.setdefault(wanted[i].casefold(), i)
    taken = set(owner)
    names, notes = [], []
    for i, (n, r, s) in enumerate(zip(wanted, rels, suffixes)):
        if owner[n.casefold()] != i:  # numbered, with a number no other input holds or wants
            stem, k = n[: -len(s)] if s and n.endswith(s) else n, i
            while (n := f"{stem}.{k:05d}{s}").casefold() in taken:
                k += 1
            taken.add(n.casefold())
        names.append(n)
        if n != plain[i]:
            whose = "this tool's own file" if plain[i].casefold() in reserved_folded else "another input"
            notes.append(f"{r} is written as {n} ({plain[i]} is taken by {whose})")
        for part in n.split("/"):
            if len(part.encode()) > NAME_MAX:
                raise ValueError(
                    f"{r}: its output name {part[:40]}... is {len(part.encode())} bytes, over the {NAME_MAX} a file "
                    "system allows; rename it in the input (a shorter name)"
                )
    return names, notes


def output_names(dataset) -> list[str]:
    """One relative PNG path per image (under train/), unique (unique_names), so that every input
    gives exactly one output: the source's relative path (sub-folders kept, under its class
    folder); images with no known file name are numbered within their class. The manifest
    records every mapping."""
    classes = dataset.classes
    labels = dataset.labels.tolist()
    if dataset.files is None:
        return [f"{classes[y]}/{i:05d}.png" for i, y in enumerate(labels)]
    rels = []
    for f, y in zip(dataset.files, labels):
        parts = [p for p in Path(f).as_posix().split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise ValueError(f"image name {f!r} cannot be written inside the output; rename it in the input")
        if parts[0] != classes[y]:  # the class folder decides the label when the folder is read back
            parts = [classes[y], *parts]
        rels.append("/".join(parts))
    return unique_names(rels, [".png"] * len(rels))[0]


def write_new(root: Path, name: str, data: bytes) -> Path:
    """Write one output image under `root`, never over another: every image of an export goes
    through here, so two inputs that would meet on this disk (names differing only in case) stop
    the export instead of one replacing the other."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "xb") as f:  # "x": a second image never overwrites the first
            f.write(data)
    except FileExistsError:
        raise ValueError(
            f"two images would both be written as {name!r} on this disk (names that differ only in case?); "
            "rename one of them in the input"
        ) from None
    except OSError as e:  # name the file (a full disk reports none)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    return path


def write_image_folder(dataset, root: Path, names: list[str], progress: bool = True) -> None:
    from tqdm.auto import tqdm

    check_class_names(dataset.classes)
    arr = dataset.images.permute(0, 2, 3, 1).numpy()
    for i in tqdm(range(len(names)), desc="write PNGs", disable=not progress, leave=False, unit="img"):
        buf = io.BytesIO()
        Image.fromarray(arr[i]).save(buf, format="PNG", compress_level=6)
        write_new(root, names[i], buf.getvalue())
    written = sum(1 for p in root.rglob("*") if p.is_file())
    if written != len(names):
        raise RuntimeError(f"{len(names)} images to write but {written} files were written; nothing was exported")


def preview(clean, protected, path: Path, per_row: int = 10) -> None:
    """A 3-row strip: clean images, protected images, perturbation magnified to full range."""
    Image.fromarray(preview_strip(clean, protected, per_row)).save(path)


def preview_strip(clean, protected, per_row: int = 10) -> np.ndarray:
    """preview()'s strip as an (H, W, 3) uint8 array, enlarged to at least 256 px high."""
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
    d = d / scale * 127.5 + 127.5
    rows = [torch.cat(list(t), dim=2) for t in (a, b, d)]
    grid = torch.cat(rows, dim=1).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    h, w = grid.shape[:2]
    zoom = max(1, 256 // h)
    return np.ascontiguousarray(grid.repeat(zoom, axis=0).repeat(zoom, axis=1))


def photo_preview(clean, protected, crops: list[tuple[np.ndarray, np.ndarray]], levels: int, path: Path) -> None:
    """preview() of the working views, and below it, for a few photos, a 100% crop of the photo's
    smoothest area: original | protected | change magnified (where a change would show first)."""
    from .visibility import magnified

    top = preview_strip(clean, protected)
    rows = [np.concatenate([a, b, magnified(a, b, levels)], axis=1) for a, b in crops]
    if not rows:
        Image.fromarray(top).save(path)
        return
    width = max(top.shape[1], *(r.shape[1] for r in rows))
    pad = lambda x: np.pad(x, ((0, 8), (0, width - x.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    Image.fromarray(np.concatenate([pad(top), *map(pad, rows)])).save(path, optimize=True)


def change_summary(linf, perturbation) -> dict:
    """How much the exported images differ from the clean ones, on the 8-bit scale (from each
    image's largest change `linf`), and a warning when an Linf protection uses under a quarter of
    its budget."""
    from .perturbation import budget_levels

    top = round(linf.max().item() * 255) if len(linf) else 0
    levels = budget_levels(perturbation.eps)
    warnings = []
    if perturbation.norm == "linf" and 0 < top < levels / 4:
        warnings.append(
            f"the largest exported change is {top}/255, under a quarter of the budget {levels}/255: this "
            "protection is weak (more steps or rounds may help)"
        )
    summary = {
        "max_abs_change_0_255": top,
        "images_changed": int((linf > 0).sum()),
        "mean_max_change_0_255": round(linf.mean().item() * 255, 3) if len(linf) else 0.0,
        "warnings": warnings,
    }
    return summary


def export_protected(
    out: str | Path, clean, protected, perturbation, manifest: dict, *, replace: bool = False, progress: bool = True
) -> dict:
    """Write the whole output folder atomically (io.atomic_dir); returns the manifest written.

    Refused before anything is written: images over the budget, a protection that changed no
    pixel, names that would leave the folder or meet another image's."""
    from .io import atomic_dir, file_sha256
    from .outputs import marker
    from .perturbation import budget_limit, budget_used

    p = perturbation
    linf = budget_used(clean.images, protected.images, "linf")
    used = linf if p.norm == "linf" else budget_used(clean.images, protected.images, p.norm)
    if not bool((used <= budget_limit(p.eps, p.norm)).all()):
        raise RuntimeError(f"protected images exceed the {p.norm} budget {p.eps}; refusing to export")
    check_class_names(protected.classes)
    names = output_names(protected)
    summary = change_summary(linf, p)
    if len(protected) and summary["images_changed"] == 0:
        raise ValueError(
            "the protection changed no pixel of any image (its perturbation rounds to zero on the 8-bit "
            "scale), so nothing is protected and nothing was written; raise --eps or the method's steps"
        )
    budget = {"norm": p.norm, "eps": p.eps, "max_used": used.max().item() if len(used) else 0.0}
    manifest = {
        **marker("protect"),
        **manifest,
        **summary,
        "budget": budget,
        "images": len(protected),
        "classes": list(protected.classes),
    }
    if protected.files is not None:  # output -> input name, for every image (sub-folders and renames included)
        manifest["sources"] = {f"train/{n}": f for n, f in zip(names, protected.files)}
    with atomic_dir(out, replace=replace, kind="protect") as tmp:
        write_image_folder(protected, tmp / "train", names, progress)
        perturbation.save(tmp / "perturbation.safetensors")
        preview(clean, protected, tmp / "preview.png")
        # what `unlearnable verify` re-checks: every written file's sha256, in the training set's order
        manifest["files"] = {f"train/{n}": file_sha256(tmp / "train" / n) for n in names}
        manifest["perturbation_sha256"] = file_sha256(tmp / "perturbation.safetensors")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


PREVIEW_CROPS = 4  # photos whose 100% crop the preview shows
CROP_SIDE = 256


def export_photos(
    out,
    collection,
    working,
    perturbation,
    names,
    manifest: dict,
    fmt: str,
    quality,
    strip: bool,
    *,
    look=None,
    replace: bool = False,
    progress: bool = True,
    saved: Path | None = None,
) -> dict:
    """Write a folder of photos protected at full resolution (photos.render, one photo at a time)
    atomically; returns the manifest written. Every photo keeps its size, orientation and name
    (with the output format's suffix); its largest change is checked against the budget before
    encoding, and for a lossy format the change a viewer decodes is recorded too. `saved`: the
    perturbation's file, copied as it is (apply: the very file, so its digest stays the same)."""
    import time

    from tqdm.auto import tqdm

    from .io import atomic_dir, file_sha256
    from .outputs import marker
    from .perturbation import budget_levels
    from .photos import render

    p = perturbation
    levels = budget_levels(p.eps)
    t0 = time.perf_counter()
    labels = collection.labels.tolist()
    entries: dict[str, dict] = {}
    files: dict[str, str] = {}
    tops = []
    shown = {labels.index(c): None for c in sorted(set(labels))[:PREVIEW_CROPS]}  # a photo of each class
    crops = []
    with atomic_dir(out, replace=replace, kind="protect") as tmp:
        total = sum(ph.width * ph.height for ph in collection.photos) / 1e6
        bar = tqdm(
            total=round(total, 1),
            desc="writing protected photos",
            unit="MP",
            disable=not progress,
            leave=False,
            bar_format="{desc}: {percentage:3.0f}% | {remaining} left",
        )
        for i, (photo, name) in enumerate(zip(collection.photos, names)):
            delta = p.delta[labels[i] if p.kind == "classwise" else i]
            side = CROP_SIDE if i in shown else None
            data, top, seen, kept, grey, crop = render(
                collection, i, delta, p.eps, fmt, quality or 0, strip, look, side
            )
            if top > levels:
                raise RuntimeError(f"{photo.rel}: change {top}/255 over the budget {levels}/255; refusing to export")
            files[name] = file_sha256(write_new(tmp, name, data))
            entries[name] = {
                "source": photo.rel,
                "label": collection.classes[labels[i]],
                "width": photo.width,
                "height": photo.height,
                "max_change_0_255": top,
                "decoded_max_change_0_255": seen,
                "metadata": kept,
                "grey": grey,  # a black-and-white photo: given a grey change, written grey
            }
            tops.append(top)
            if crop is not None:
                crops.append(crop)
            bar.update(round(photo.width * photo.height / 1e6, 1))
        bar.close()
        linf = torch.tensor(tops, dtype=torch.float32) / 255
        summary = change_summary(linf, p)
        if summary["images_changed"] == 0:
            raise ValueError(
                "the protection changed no pixel of any photo (its perturbation rounds to zero on the 8-bit "
                "scale), so nothing is protected and nothing was written; raise --eps or the method's steps"
            )
        if saved is not None:
            shutil.copyfile(saved, tmp / "perturbation.safetensors")
        else:
            perturbation.save(tmp / "perturbation.safetensors")
        photo_preview(working, p.apply(working), crops, levels, tmp / "preview.png")
        export_seconds = time.perf_counter() - t0
        manifest = {
            **marker("protect"),
            **manifest,
            **summary,
            "budget": {"norm": p.norm, "eps": p.eps, "max_used": max(tops) / 255},
            "images": len(names),
            "classes": list(collection.classes),
            "sources": {n: e["source"] for n, e in entries.items()},
            "photo_files": entries,
            "ignored_files": collection.ignored,
            "export_seconds": round(export_seconds, 1),
            "seconds": round(manifest.get("fit_seconds", 0.0) + export_seconds, 1),
            "files": files,
            "perturbation_sha256": file_sha256(tmp / "perturbation.safetensors"),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest
