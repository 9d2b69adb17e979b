"""The one protect pipeline, used by `unlearnable protect`, `bench` and `demo`:

    check the output against the inputs -> build the method (options checked) -> load the data
    -> say the plan -> fit (checkpointed, resumable) -> apply -> export + manifest (atomic)
    -> remove the checkpoint

Two kinds of input go through it. A folder of photos (no --image-size) is protected at full
resolution: the method is fitted on a small working view of every photo and the perturbation
is drawn onto each photo at its own size (photos.py). A benchmark set (a named dataset, an
archive, a subset or any source with --image-size; bench's datasets) is one tensor of equal-size
images, protected as it is.

Everything that must hold for a protected folder holds here once: the output never touches an
input and replaces only this tool's own earlier output, a checkpoint resumes only the run that
wrote it and is removed only once the output is in place, the manifest always names the input
so that `unlearnable verify` can recompute every image, and a protection that changes nothing
is refused.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path

from tqdm.auto import tqdm

from .background import DEFAULT as BACKGROUND_DEFAULT
from .background import check_options as check_background_options


def load_training_set(source, *, image_size=None, train_per_class=None, seed: int = 0, download: bool = False):
    """(the training split, class-balanced subset applied, and the resolved path it was read from)."""
    from .data import balanced_subset, load_dataset, resolve_source

    ds = load_dataset(source, "train", image_size=image_size, download=download)
    if train_per_class:
        ds = balanced_subset(ds, train_per_class, seed=seed)
    return ds, resolve_source(source, download=False)[1]


def clean_input(folder, protected):
    """The clean images of a `protect` output, in the order its protected images were read (its
    manifest's data, subset, image size and seed; matched by the manifest's source names)."""
    import json

    m = json.loads((Path(folder) / "manifest.json").read_text())
    if m.get("photos"):  # equal-size photos read as one set: their originals at that size
        from .photos import originals_of, working_set

        originals, names = originals_of(m)
        clean = working_set(originals, protected.image_size, progress=False)
        where = {n.removeprefix("train/"): i for i, n in enumerate(names)}
        return clean.subset([where[f] for f in protected.files])
    clean, _ = load_training_set(
        m["data"], image_size=m.get("image_size"), train_per_class=m.get("train_per_class"), seed=m.get("seed", 0)
    )
    sources = m.get("sources")
    if sources and protected.files is not None and clean.files is not None:
        where = {f: i for i, f in enumerate(clean.files)}
        order = [where[sources[f"train/{f}"]] for f in protected.files]
        clean = clean.subset(order)
    return clean


def is_photo_folder(source, image_size) -> bool:
    """A folder read at full resolution: a directory of images (not a dataset's own files), with
    no --image-size asking for a square benchmark set."""
    from .data import resolve_source

    return image_size is None and source is not None and resolve_source(source)[0] == "imagefolder"


def checkpoint_path(out: Path) -> Path:
    """Where an unfinished protection of `out` keeps its state: beside it, named after it."""
    return out.with_name(f".{out.name}.checkpoint.pt")


def protect(
    source,
    out,
    *,
    method: str = "bait",
    preset: str = "cpu",
    eps: float | None = None,
    options: dict | None = None,
    seed: int = 0,
    image_size: int | None = None,
    train_per_class: int | dict[str, int] | None = None,  # a dict: per class (data.class_sizes)
    force: bool = False,
    device=None,
    progress: bool = True,
    download: bool = False,
    command: str | None = None,
    extra: dict | None = None,
    labels: str = "folders",
    working_size: int | None = None,
    fmt: str = "png",
    quality: int | None = None,
    strip_metadata: bool = False,
    photos: bool | None = None,
    look: str | None = None,
    background: str | None = None,
    background_per_class: int | None = None,
) -> dict:
    """Protect the training split of `source` with `method` and write the folder `out`; returns
    its manifest. `extra` adds keys to the manifest (a bench's dataset entry). For a folder of
    photos: `labels` (photos.py), `working_size`, `fmt` (png | jpeg | same), `quality` (JPEG,
    1-100) and `strip_metadata`. `photos`: whether `source` is a folder of photos protected at
    full resolution (None: a folder with no --image-size and no --train-per-class is; a bench
    says False, its datasets being benchmark sets). `look` (look.py): how the change sits on
    each image; None takes the photos' default (invisible) or, for a benchmark set, none (the
    paper's protocol: the whole budget everywhere). `background` (photos; background.py): the
    public labelled set the photos are fitted among ("none": no background; None: CIFAR-10 when
    the photos have fewer classes than the method needs, one subject), `background_per_class`
    images of each of its classes."""
    from .attacks import create_attack
    from .distributed import barrier, is_main
    from .outputs import check_output, claim, input_paths

    began = time.perf_counter()  # a photo run's start, timed for the estimate (plan.Timings)
    if photos is None:
        photos = is_photo_folder(source, image_size) and not train_per_class
    check_photo_options(photos, labels, working_size, fmt, quality, strip_metadata)
    check_method_options(options)
    chosen = resolve_look(look, photos)
    inputs = input_paths(source, download)
    if labels.lower().endswith(".csv"):
        inputs.append(Path(labels).expanduser().resolve())
    readable = list(inputs)
    if photos:
        check_background_options(background, background_per_class)
        if (background or "").lower() != "none":  # a set it may read (the run records its name): never written into
            readable += input_paths(background or BACKGROUND_DEFAULT, download)
    elif background is not None or background_per_class is not None:
        raise ValueError("--background is for a folder of photos; a benchmark set is protected as it is")
    out = check_output(out, readable, force, "protect")
    barrier()  # under torchrun: every process has checked the output before rank 0 may write it
    ckpt = checkpoint_path(out)
    attack = create_attack(
        method,
        eps=eps,
        seed=seed,
        preset=preset,
        device=device,
        progress=progress,
        checkpoint=ckpt,
        **look_options(method, chosen, options),
    )
    common = dict(method=method, seed=seed, force=force, progress=progress, command=command, extra=extra, look=chosen)
    if photos:
        common.update(background=background, background_per_class=background_per_class, download=download, began=began)
    run = {  # what a resume must repeat (the checkpoint then checks the data's pixels too)
        "command": "protect",
        "data": [str(p) for p in inputs],
        "settings": attack.settings(),
        "image_size": image_size,
        "train_per_class": train_per_class,
        "labels": labels,
        "working_size": working_size,
        "look": None if chosen is None else chosen.record(),
        "background": [background, background_per_class],
    }
    with claim(out, run, command) if is_main() else nullcontext():
        if photos:
            return _protect_photos(
                source,
                out,
                attack,
                labels,
                working_size,
                fmt,
                quality,
                strip_metadata,
                **common,
            )
        return _protect_set(source, out, attack, image_size, train_per_class, download, **common)


def resolve_look(name: str | None, photos: bool):
    """The Look a run uses: the named one, else the photos' default, or None for a benchmark set."""
    from .look import DEFAULT_PHOTO_LOOK, get_look

    if name is None:
        name = DEFAULT_PHOTO_LOOK if photos else "none"
    look = get_look(name)
    if look is None and photos:
        raise ValueError("--look none is the benchmark protocol; photos take invisible, subtle or strong")
    return look


def look_options(method: str, look, options: dict | None) -> dict:
    """The method's options with what the look asks of its pattern: a method with a `smooth` option
    (bait) draws without block edges under a smooth look, unless --set says otherwise."""
    from .attacks import ATTACKS

    options = dict(options or {})
    cls = ATTACKS.get(method.lower().replace("-", "_").rstrip("*"))  # an unknown name is refused when built
    if look is not None and look.smooth and cls is not None and "smooth" in cls.option_names():
        options.setdefault("smooth", True)
    return options


def photo_plan(
    source,
    *,
    method: str = "bait",
    preset: str = "cpu",
    eps: float | None = None,
    options: dict | None = None,
    seed: int = 0,
    labels: str = "folders",
    working_size: int | None = None,
    device=None,
    look: str | None = None,
    background: str | None = None,
    background_per_class: int | None = None,
    download: bool = False,
    strip_metadata: bool = False,
    fmt: str = "png",
) -> dict:
    """What protecting the folder of photos `source` would do, told before any work and writing
    nothing (`protect --plan`, the web page's plan): the photos and groups found, the working
    size, the estimated time and peak memory, and the one-line plan the run itself prints."""
    from .attacks import create_attack
    from .background import load as load_background
    from .photos import SEPARATE_GROUPS, default_working_size, grouping_words, members, scan
    from .plan import check_size, describe_plan, estimate

    check_photo_options(True, labels, working_size, fmt, None, False)
    check_method_options(options)
    check_background_options(background, background_per_class)
    chosen = resolve_look(look, True)
    attack = create_attack(
        method,
        eps=eps,
        seed=seed,
        preset=preset,
        device=device,
        progress=False,
        **look_options(method, chosen, options),
    )
    if attack.norm != "linf":
        raise ValueError(f"{method} has an {attack.norm} budget; photos are protected with an Linf method")
    collection = scan(source, labels, seed=seed, progress=False)
    among = background_of(collection, attack, background, background_per_class)
    size = working_size or default_working_size(collection, attack.working_size())
    back = None if among is None else load_background(among, size, seed=seed, download=download)
    against = None if among is None or back is None else (among.source, back)  # what the plan line names
    fitted = len(collection) + (0 if back is None else len(back))
    check_size("--working-size", size, fitted, int(getattr(attack.options, "batch_size", 1)))
    est = estimate(collection, attack, size, back, fmt=fmt)
    counts = collection.labels.bincount(minlength=len(collection.classes)).tolist()
    return {
        "text": describe_plan(collection, attack, size, method, est, chosen, against),
        "background": None if among is None else among.record(back),
        "look": chosen.name,
        "photos": len(collection),
        "groups": dict(zip(collection.classes, counts)),
        "grouping": None  # groups the tool made itself: which photo went where, and how clearly
        if collection.separation is None
        else {
            "separation": round(collection.separation, 3),
            "separate": collection.separation >= SEPARATE_GROUPS,
            "members": members(collection),
            "words": grouping_words(collection),
        },
        "ignored": collection.ignored,
        "largest_megapixels": round(collection.megapixels(), 2),
        "working_size": size,
        "seconds": None if est["total"] is None else round(est["total"], 1),
        "write_seconds": round(est["write"], 1),
        "stages": {k: None if est[k] is None else round(est[k], 1) for k in ("start", "read", "fit", "write")},
        "timed_runs": est["runs"],
        "memory_bytes": int(est["memory"]),
        "output_bytes": int(est["bytes"]),
        "original_bytes": int(est["original_bytes"]),
        "gps_photos": sum(p.gps for p in collection.photos),
        "notes": photo_notes(collection, strip_metadata, fmt),  # a location published, transparency not kept
    }


def photo_notes(collection, strip: bool, fmt: str) -> list[str]:
    """What a person should know before the photos are written: a location they would publish
    (EXIF GPS) and transparency the copies do not keep (JPEG has none; PNG, WebP and TIFF keep it)."""
    from .photos import KEEPS_ALPHA, output_format

    notes = []
    gps = sum(p.gps for p in collection.photos)
    if gps and not strip:
        notes.append(
            f"{gps} of the {len(collection)} photos hold a GPS location, published with the protected copies; "
            "--strip-metadata leaves it out (with the other metadata)"
        )
    clear = [p.rel for p in collection.photos if p.alpha and output_format(p, fmt)[0] not in KEEPS_ALPHA]
    if clear:
        notes.append(
            f"{len(clear)} photo{' has' if len(clear) == 1 else 's have'} transparent areas (e.g. {clear[0]}): as "
            "JPEG the protected copies are flattened onto white, without transparency (PNG or WebP keep it)"
        )
    return notes


RUN_OPTIONS = {  # what a method is given by the run, not by --set: where each is set instead
    "eps": "--eps",
    "seed": "--seed",
    "preset": "--preset",
    "device": "--device",
    "progress": "--quiet",
    "checkpoint": "--out (the checkpoint is kept beside it)",
}


def check_method_options(options: dict | None) -> None:
    """A method option that is the run's own (the budget, the seed, ...) is refused by name."""
    for key in options or {}:
        if key in RUN_OPTIONS:
            raise ValueError(f"--set {key}=... is not a method option; set it with {RUN_OPTIONS[key]}")


def background_of(collection, attack, background, per_class):
    """The Background the photos are fitted among (background.py), or None; without one, the
    photos' own classes must be enough for the method (refused before any work)."""
    from . import background as bg

    chosen = bg.resolve(background, per_class, len(collection.classes), attack.MIN_CLASSES)
    if chosen is None and len(collection.classes) < attack.MIN_CLASSES:
        raise ValueError(
            f"--background none: {attack.name} {attack.WHY_CLASSES}: it needs at least {attack.MIN_CLASSES} classes, "
            f"got {len(collection.classes)} ({', '.join(collection.classes)}); leave out --background none to protect "
            "one subject among public images, or put the photos into one sub-folder per subject"
        )
    return chosen


def fitted_among(attack, ds, chosen, back):
    """(the perturbation of the owner's photos `ds`, seconds, the background's record or None):
    fitted on the photos alone, or among the background's images `back` keeping only the photos'
    part (background.py)."""
    from . import background as bg

    if chosen is None:
        perturbation, seconds = fit(attack, ds)
        return perturbation, seconds, None
    record = chosen.record(back)
    perturbation, seconds = fit(attack, bg.among(ds, back))
    return bg.owners_part(perturbation, back.num_classes, len(back), background=record), seconds, record


def check_photo_options(photos, labels, working_size, fmt, quality, strip_metadata) -> None:
    """Options that only a folder of photos takes, checked before any work."""
    from .photos import FORMATS, parse_labels

    parse_labels(labels)
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if quality is not None and (fmt != "jpeg" or not 1 <= quality <= 100):
        raise ValueError("--quality Q (1-100) goes with --format jpeg")
    if working_size is not None and working_size < 8:
        raise ValueError(f"--working-size must be at least 8 pixels, got {working_size}")
    if photos:
        return
    given = [
        name
        for name, on in (
            ("--labels", labels != "folders"),
            ("--working-size", working_size is not None),
            ("--format", fmt != "png"),
            ("--strip-metadata", strip_metadata),
        )
        if on
    ]
    if given:
        raise ValueError(
            f"{', '.join(given)} apply to a folder of photos protected at full resolution; this input is a "
            "benchmark set (a named dataset, an archive, --image-size or --train-per-class), written as square PNGs"
        )


def fit(attack, ds):
    """(the method's perturbation of `ds`, the seconds it took; a resumed fit: the whole fit's)."""
    t0 = time.perf_counter()
    perturbation = attack.fit(ds)
    return perturbation, time.perf_counter() - t0 + attack.resumed_seconds


def about(method: str, attack, perturbation, seed: int) -> dict:
    """The manifest's record of the method: name, settings, seed and budget."""
    return {
        "method": method,
        "settings": attack.settings(),
        "seed": seed,
        "eps": attack.eps,
        "norm": attack.norm,
        "kind": perturbation.kind,
    }


def _protect_set(
    source, out, attack, image_size, train_per_class, download, *, method, seed, force, progress, command, extra, look
):
    from .distributed import barrier, is_main
    from .evaluate import versions
    from .export import export_protected, output_names
    from .io import source_checksums
    from .look import with_look
    from .plan import check_size

    if image_size is not None:
        fewest = min(train_per_class.values()) if isinstance(train_per_class, dict) else train_per_class or 1
        check_size("--image-size", image_size, fewest, int(getattr(attack.options, "batch_size", 1)))
    ds, resolved = load_training_set(
        source, image_size=image_size, train_per_class=train_per_class, seed=seed, download=download
    )
    ds = with_look(ds, look)
    output_names(ds)  # every output name is checked (length, uniqueness) before the fit
    perturbation, seconds = fit(attack, ds)
    protected = perturbation.apply(ds)
    manifest = {
        **about(method, attack, perturbation, seed),
        "look": None if look is None else look.record(),
        "data": str(resolved),
        "data_source": None if source is None else str(source),
        "train_per_class": train_per_class,
        "image_size": image_size,
        "input_checksums": source_checksums(resolved),
        "versions": versions(),
        "seconds": round(seconds, 1),
        **(extra or {}),
    }
    if command is not None:
        manifest["command"] = command
    if is_main():  # under torchrun every process holds the same perturbation; rank 0 writes it
        manifest = export_protected(out, ds, protected, perturbation, manifest, replace=force, progress=progress)
        for w in manifest["warnings"]:
            tqdm.write(f"warning: {w}", file=sys.stderr)
    barrier()
    attack.remove_checkpoint()  # only now: the output is in place
    return manifest


def _protect_photos(
    source,
    out,
    attack,
    labels,
    working_size,
    fmt,
    quality,
    strip,
    *,
    method,
    seed,
    force,
    progress,
    command,
    extra,
    look,
    background,
    background_per_class,
    download,
    began,
):
    from .background import load as load_background
    from .distributed import barrier, is_main
    from .evaluate import versions
    from .export import export_photos
    from .io import source_checksums
    from .photos import default_working_size, grouping_words, output_names, scan, working_set
    from .plan import Timings, calibrate, check_size, describe_plan, estimate, peak_memory

    if attack.norm != "linf":
        raise ValueError(
            f"{method} has an {attack.norm} budget, which depends on the image size; protect photos at full "
            "resolution with an Linf method (bait, em, tap, rem, random), or pass --image-size for square copies"
        )
    collection = scan(source, labels, seed=seed, progress=progress)
    chosen = background_of(collection, attack, background, background_per_class)
    if labels in ("folders", "top"):  # the classes are folder names, kept in the output
        from .export import check_class_names

        check_class_names(collection.classes)
    size = working_size or default_working_size(collection, attack.working_size())
    back = None if chosen is None else load_background(chosen, size, seed=seed, download=download)
    against = None if chosen is None or back is None else (chosen.source, back)  # what the plan line names
    fitted = len(collection) + (0 if back is None else len(back))
    check_size("--working-size", size, fitted, int(getattr(attack.options, "batch_size", 1)))
    names, renamed = output_names(collection, fmt)
    timings = Timings(attack)
    est = estimate(collection, attack, size, back, timings, fmt=fmt)  # the plan's own estimate, timed now
    if progress and is_main():
        tqdm.write(describe_plan(collection, attack, size, method, est, look=look, background=against), file=sys.stderr)
        for line in grouping_words(collection):
            tqdm.write(line, file=sys.stderr)
        for w in renamed:
            tqdm.write(f"note: {w}", file=sys.stderr)
        for note in photo_notes(collection, strip, fmt):
            tqdm.write(f"note: {note}", file=sys.stderr)
    reading = time.perf_counter()
    ds = working_set(collection, size, progress, look=look)
    read_seconds = time.perf_counter() - reading
    perturbation, seconds, fitted_with = fitted_among(attack, ds, chosen, back)
    manifest = {
        **about(method, attack, perturbation, seed),
        "look": look.record(),
        "data": str(Path(source).expanduser().resolve()),
        "data_source": str(source),
        "photos": True,
        "photo_root": str(collection.root),
        "labels": labels,
        "working_size": size,
        "format": fmt,
        "quality": quality,
        "strip_metadata": strip,
        "renamed": renamed,  # photos written under another name than their own, and why
        "background": fitted_with,  # the public images the photos were fitted among (not written), or None
        "input_checksums": source_checksums(Path(source).expanduser().resolve()),
        "versions": versions(),
        "fit_seconds": round(seconds, 1),
        **(extra or {}),
    }
    if command is not None:
        manifest["command"] = command
    if is_main():
        manifest = export_photos(
            out,
            collection,
            ds,
            perturbation,
            names,
            manifest,
            fmt,
            quality,
            strip,
            look=look,
            replace=force,
            progress=progress,
        )
        for w in manifest["warnings"]:
            tqdm.write(f"warning: {w}", file=sys.stderr)
        if attack.resumed_seconds == 0:  # a resumed fit did its work in stretches: not one run's time
            calibrate(
                est,
                timings,
                collection,
                start=reading - began,
                read=read_seconds,
                fit=seconds,
                write=manifest["export_seconds"],
                fmt=fmt,
                written_bytes=sum((Path(out) / n).stat().st_size for n in manifest["photo_files"]),
                peak_memory=peak_memory(),
            )
    barrier()
    attack.remove_checkpoint()
    return manifest
