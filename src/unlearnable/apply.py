"""`unlearnable apply`: a protection learned once, written again without learning it again.

A protected folder keeps the perturbation it drew (perturbation.safetensors, its digest in the
manifest). Drawing it onto photos is photos.render, the very step `protect` ends with, so
writing the same protection in another format (PNG, JPEG, each photo's own), with or without
metadata, costs the writing only (seconds, not the minutes of a fit); and photos added later
to a protected subject take that subject's pattern, which is what a class-wise protection is
(a sample-wise perturbation belongs to the photos it was fitted on, so it is not applied to new
ones). The output is a protect output like any other: `verify` redraws every photo from its
original and this perturbation, and `check` measures it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .evaluate import versions
from .export import export_photos
from .io import file_sha256, source_checksums
from .look import look_from_record
from .outputs import check_output, claim
from .perturbation import Perturbation
from .photos import (
    FORMATS,
    Collection,
    originals_of,
    output_names,
    parse_labels,
    read_manifest,
    scan,
    working_set,
)
from .protect import check_photo_options

REDONE = (  # what a new output says afresh; the rest of the manifest (method, look, background) is kept
    "data",
    "data_source",
    "photo_root",
    "labels",
    "format",
    "quality",
    "strip_metadata",
    "renamed",
    "input_checksums",
    "versions",
    "command",
    "fit_seconds",
    "warnings",
)


def protection_of(folder: str | Path) -> tuple[Path, dict, Perturbation]:
    """(the folder, its manifest, its perturbation) of a `protect` output of photos, each checked:
    the perturbation must be the very file the manifest records."""
    folder = Path(folder).expanduser().resolve()
    manifest = read_manifest(folder)
    if manifest is None:
        raise ValueError(f"{folder} is not a folder written by `unlearnable protect` (no manifest.json in it)")
    if not manifest.get("photos"):
        raise ValueError(
            f"{folder} holds a benchmark set (square images), not photos protected at full resolution; protect the "
            "set again with the options you want"
        )
    path = folder / "perturbation.safetensors"
    if not path.is_file():
        raise ValueError(f"{folder} has no perturbation.safetensors: it cannot be applied again; protect again")
    if file_sha256(path) != manifest.get("perturbation_sha256"):
        raise ValueError(
            f"{path} is not the perturbation its manifest records (it changed since `protect` wrote it); protect again"
        )
    return folder, manifest, Perturbation.load(path)


def new_photos(data: str | Path, labels: str | None, manifest: dict, perturbation: Perturbation) -> Collection:
    """Photos added since, labelled with the protected groups they belong to."""
    if perturbation.kind != "classwise":
        raise ValueError(
            f"the protection of {manifest['photo_root']} is sample-wise (one pattern per photo, {manifest['method']}): "
            "it has no pattern for new photos; protect them with `unlearnable protect`"
        )
    recorded = str(manifest.get("labels", "folders"))
    if labels is None:
        labels = recorded if parse_labels(recorded)[0] in ("folders", "top", "leaf", "one") else None
        if labels is None:
            raise ValueError(
                f"the photos were grouped {'by similarity' if recorded.startswith('clusters') else 'by a CSV'}: say "
                "which protected group each new photo belongs to with --labels FILE.csv (rows of file,group) or "
                "--labels one for one subject"
            )
    classes = list(manifest["classes"])
    found = scan(data, labels, progress=False)
    if parse_labels(labels)[0] == "one":  # one subject: the new photos are of it, whatever their folder is called
        if len(classes) != 1:
            raise ValueError(
                f"--labels one: the protection has {len(classes)} groups ({', '.join(classes)}); put the new photos "
                "into folders named after them instead"
            )
        names = [classes[0]] * len(found)
    else:
        names = [found.classes[i] for i in found.labels.tolist()]
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(
            f"{data}: group {unknown[0]!r} has no pattern in this protection (its groups: {', '.join(classes)}); "
            "put the photos into one of those folders, or protect a new group with `unlearnable protect`"
        )
    ids = torch.tensor([classes.index(n) for n in names], dtype=torch.int64)
    return Collection(found.root, found.photos, ids, classes, labels, found.ignored)


def apply(
    protected: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    labels: str | None = None,
    originals: str | Path | None = None,
    fmt: str | None = None,
    quality: int | None = None,
    strip_metadata: bool | None = None,
    force: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Write `out`: the protection of the folder `protected` drawn again onto its originals (found
    where its manifest says, or at `originals`) or onto the new photos `data`, in `fmt` (default:
    the protected folder's), with `quality` and `strip_metadata`; returns the new manifest."""
    folder, manifest, perturbation = protection_of(protected)
    fmt = fmt or manifest.get("format", "png")
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if quality is None and fmt == manifest.get("format"):
        quality = manifest.get("quality")
    strip = bool(manifest.get("strip_metadata")) if strip_metadata is None else strip_metadata
    check_photo_options(True, labels or "folders", None, fmt, quality, strip)
    if data is not None and originals is not None:
        raise ValueError(
            "--data (new photos) and --originals (where the protected photos' originals are now) exclude "
            "each other; give one"
        )
    if data is None:
        collection = originals_of(manifest, originals)[0]
        source = Path(originals).expanduser().resolve() if originals else Path(manifest["data"])
    else:
        collection = new_photos(data, labels, manifest, perturbation)
        source = Path(data).expanduser().resolve()
    out = check_output(out, [source, folder], force, "protect")
    look = look_from_record(manifest.get("look"))
    run = {"command": "apply", "from": str(folder), "data": str(source), "format": fmt, "quality": quality}
    with claim(out, run, command):
        names, renamed = output_names(collection, fmt)
        working = working_set(collection, int(manifest["working_size"]), progress, look=look)
        kept = {k: v for k, v in manifest.items() if k not in REDONE}
        record = {
            **kept,
            "data": str(source),
            "data_source": str(data if data is not None else source),
            "photo_root": str(collection.root),
            "labels": collection.label_mode if data is not None else manifest.get("labels", "folders"),
            "format": fmt,
            "quality": quality,
            "strip_metadata": strip,
            "renamed": renamed,
            "input_checksums": source_checksums(source),
            "versions": versions(),
            "fit_seconds": 0.0,  # nothing was learned: the protection is the one below
            "applied_from": {
                "folder": str(folder),
                "perturbation_sha256": manifest["perturbation_sha256"],
                "fit_seconds": manifest.get("fit_seconds"),
                "new_photos": data is not None,
            },
        }
        if command is not None:
            record["command"] = command
        return export_photos(
            out,
            collection,
            working,
            perturbation,
            names,
            record,
            fmt,
            quality,
            strip,
            look=look,
            replace=force,
            progress=progress,
            saved=folder / "perturbation.safetensors",
        )
