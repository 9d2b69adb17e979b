"""`unlearnable check`: am I protected? Measured on the owner's own photos.

A part of the photos is held out as originals (the test set a trainer would be judged on; or a
given test set, e.g. CIFAR-10's). A from-scratch and an ImageNet-pretrained victim are trained on
the rest, once on the clean originals and once on the protected copies, and again on the
protected copies after what publishing does to them (JPEG re-encoding at quality 90 and 75, a
50% downscale, a long side of 1080 px) and with RandomResizedCrop training. Every cell is one
evaluate.run on the same views a trainer makes (photos.views: resize + centre crop at the
victim's input size), so `unlearnable evaluate` on the same data gives the same numbers.
"""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data import balanced_subset
from .report import pct

PUBLISHING = {  # name -> (what it does, parameter)
    "jpeg90": ("JPEG quality 90", 90),
    "jpeg75": ("JPEG quality 75", 75),
    "half": ("downscaled to 50%", 0.5),
    "long1080": ("long side 1080 px", 1080),
}
FEW_TEST, FEW_PER_CLASS = 100, 20  # below these, say the numbers mean little


def publish(pixels: np.ndarray, step: str) -> np.ndarray:
    """A protected photo (H, W, 3 uint8) after one publishing step, at full resolution."""
    img = Image.fromarray(pixels)
    if step.startswith("jpeg"):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=PUBLISHING[step][1])
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if step == "half":
        w, h = img.size
        return np.asarray(img.resize((max(1, round(w / 2)), max(1, round(h / 2))), Image.Resampling.LANCZOS))
    long = max(img.size)
    if long <= 1080:
        return pixels
    f = 1080 / long
    return np.asarray(img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.LANCZOS))


def held_out(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask of the photos held out as the test set: `fraction` of every class (at least
    one, and at least one left to train on), drawn with `seed`."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        if len(idx) < 2:
            raise ValueError(f"class {c} has {len(idx)} photo: check needs at least 2 per class (one to test on)")
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        mask[idx[torch.randperm(len(idx), generator=gen)[:k]]] = True
    return mask


def run_check(
    folder,
    out,
    *,
    test=None,
    test_fraction: float = 0.2,
    test_per_class: int | None = None,
    inits=("scratch", "imagenet"),
    steps=("jpeg90", "jpeg75", "half", "long1080"),
    rrc: bool = True,
    preset: str = "cpu",
    seed: int = 0,
    device=None,
    progress: bool = True,
    force: bool = False,
    command: str | None = None,
    **overrides,
) -> dict:
    """Measure the protection of the `protect` output `folder`; writes report.md, report.json and
    accuracy.png into `out` (atomically) and returns the report."""
    from . import evaluate
    from .io import atomic_dir
    from .models import model_info
    from .outputs import check_output, claim, input_paths, marker

    folder = Path(folder)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: {folder} is not a folder written by `unlearnable protect`")
    manifest = json.loads(mpath.read_text())
    photos = bool(manifest.get("photos"))
    if not 0 < test_fraction < 1:
        raise ValueError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    for s in steps:
        if s not in PUBLISHING:
            raise ValueError(f"unknown publishing step {s!r}; choose from {', '.join(PUBLISHING)}")
    victims = {}
    for init in inits:
        name, _, size, _ = evaluate.check_victim(init=init, preset=preset, **overrides)
        victims[init] = (name, size or model_info(name)["natural_input_size"])
    source = manifest["photo_root"] if photos else manifest["data"]
    if not photos:
        test = test or manifest.get("data_source") or manifest["data"]
    inputs = [folder.resolve(), *input_paths(source)] + (input_paths(test) if test else [])
    out = check_output(out, inputs, force, "check")
    rows: dict[str, dict] = {}
    notes: list[str] = []
    per_victim = 2 + len(steps) + (2 if rrc else 0)  # clean, protected, published views, crops
    models = tqdm(
        total=len(victims) * per_victim, desc="check: training test models", unit="model", disable=not progress
    )
    run = {  # what a resume must repeat
        "command": "check",
        "folder": str(folder.resolve()),
        "inits": list(inits),
        "steps": list(steps),
        "test": None if test is None else str(test),
        "seed": seed,
    }
    with claim(out, run, command):
        bench = (
            None if photos else _benchmark_cells(manifest, folder, steps, test, test_per_class, seed, progress, notes)
        )
        for init, (vname, size) in victims.items():
            if photos:
                cells, test_set, n_train, held = _photo_cells(
                    manifest, folder, size, steps, test, test_fraction, test_per_class, seed, progress, notes
                )
            else:  # the victim reads the set at its preset's size, as `unlearnable evaluate` does
                (cells, test_set, n_train, held), size = bench, None  # type: ignore[misc]
            models.total = len(victims) * (len(cells) + (2 if rrc else 0))  # a step that changes nothing is not run
            models.refresh()
            for name, data in cells.items():
                rows.setdefault(name, {})[init] = _cell(
                    data, test_set, init, vname, size, preset, seed, device, progress, overrides
                )
                models.update()
            if rrc:
                for name in ("clean", "protected"):
                    rows.setdefault(f"{name}+rrc", {})[init] = _cell(
                        cells[name],
                        test_set,
                        init,
                        vname,
                        size,
                        preset,
                        seed,
                        device,
                        progress,
                        {**overrides, "crop": "rrc"},
                    )
                    models.update()
            victims[init] = (vname, rows["clean"][init]["input_size"])
        models.close()
        n_test = len(test_set)
        per_class = torch.bincount(test_set.labels, minlength=test_set.num_classes).min().item()
        if n_test < FEW_TEST or per_class < FEW_PER_CLASS:
            notes.insert(
                0,
                f"only {n_test} held-out photos ({per_class} in the smallest class) and {n_train} to train on: one "
                f"photo moves the accuracy by {100 / n_test:.1f} points and a victim this small learns little even "
                "from clean photos, so read these numbers as a rough sign, not a measurement; more photos per class "
                f"(>= {FEW_PER_CLASS} held out) give numbers that mean something",
            )
        report = {
            **marker("check"),
            "folder": str(folder.resolve()),
            "method": manifest.get("method"),
            "eps": manifest.get("eps"),
            "victims": {k: {"model": v[0], "input_size": v[1]} for k, v in victims.items()},
            "n_train": n_train,
            "n_test": n_test,
            "test": held,
            "rows": rows,
            "notes": notes,
            "command": command,
        }
        with atomic_dir(out, replace=force, kind="check") as tmp:
            (tmp / "report.json").write_text(json.dumps(report, indent=2))
            (tmp / "report.md").write_text(render_report(report))
            plot_report(report, tmp / "accuracy.png")
    return report


def _photo_cells(manifest, folder, size, steps, test, fraction, test_per_class, seed, progress, notes):
    """({row: training set}, test set, number of training photos, what the test set is) for photos
    protected at full resolution, every view at the victim's input size."""
    from .photos import originals_of, protected_of, views, working_set

    originals, _ = originals_of(manifest)
    protected = protected_of(folder, manifest)
    mask = held_out(protected.labels, fraction, seed) if test is None else torch.zeros(len(protected), dtype=bool)
    clean_all = working_set(originals, size, progress)
    if test is None:
        test_set, held = clean_all.subset(mask), f"{int(mask.sum())} held-out originals (seed {seed})"
    else:
        test_set, held = views(test, "test", size, progress=progress).with_class_order(protected.classes), str(test)
    if test_per_class:
        test_set = balanced_subset(test_set, test_per_class, seed=seed, option="--test-per-class")
    train = ~mask
    if test is not None:
        notes += [n for n in seen_in_training(test_set, clean_all) if n not in notes]
    cells = {"clean": clean_all.subset(train), "protected": working_set(protected, size, progress).subset(train)}
    for s in steps:
        if s == "long1080" and max(max(p.width, p.height) for p in protected.photos) <= 1080:
            note = "no photo is over 1080 px on its long side: that step changes nothing, not run"
            if note not in notes:
                notes.append(note)
            continue
        step = partial(publish, step=s)
        cells[s] = working_set(protected, size, progress, step, PUBLISHING[s][0]).subset(train)
    return cells, test_set, int(train.sum()), held


def seen_in_training(test_set, originals) -> list[str]:
    """A note when test images are pixel for pixel training originals: accuracy on them measures
    memory, not whether new photos are recognised."""
    import hashlib

    def digests(ds) -> set[str]:
        return {hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in ds.images}

    shared = digests(test_set) & digests(originals)
    if not shared:
        return []
    return [
        f"{len(shared)} of the {len(test_set)} test images are the very photos protected (the training "
        "originals), so they are not held out: accuracy on them says little about new photos; give --data photos "
        "that were not protected, or leave --data out to hold some out"
    ]


def _benchmark_cells(manifest, folder, steps, test, test_per_class, seed, progress, notes):
    """The same for a benchmark set: the protected folder against its clean input, tested on the
    named dataset's test split (CIFAR-10's for a CIFAR-10 subset)."""
    from .data import load_dataset
    from .protect import clean_input

    size = manifest.get("image_size")
    protected = load_dataset(folder, "train", image_size=size)
    clean = clean_input(folder, protected)
    test_set = load_dataset(test, "test", image_size=size)
    if test_per_class:
        test_set = balanced_subset(test_set, test_per_class, seed=seed, option="--test-per-class")
    notes += seen_in_training(test_set, clean)
    cells = {"clean": clean, "protected": protected}
    for s in steps:
        if s == "long1080":
            continue
        arr = protected.images.permute(0, 2, 3, 1).numpy()
        pub = [publish(np.ascontiguousarray(a), s) for a in arr]
        if s == "half":  # a benchmark set stays one size: back up to it, as a victim's resize would
            h, w = arr.shape[1:3]
            pub = [np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BICUBIC)) for a in pub]
        cells[s] = protected.with_images(torch.from_numpy(np.stack(pub)).permute(0, 3, 1, 2).contiguous())
    return cells, test_set, len(protected), str(test)


def _cell(train, test, init, victim, size, preset, seed, device, progress, overrides) -> dict:
    from . import evaluate

    rec = evaluate.run(
        train,
        test,
        victim=victim,
        init=init,
        preset=preset,
        seed=seed,
        input_size=size,
        device=device,
        progress=progress,
        **overrides,
    )
    return {
        "final": rec["final_test_acc"],
        "best": rec["best_test_acc"],
        "seconds": round(rec["seconds"], 1),
        "input_size": rec["input_size"] or train.image_size,  # None: the victim reads the data's own size
    }


ROW_NAMES = {
    "clean": "clean originals (what a trainer gets without protection)",
    "protected": "protected, as published",
    "clean+rrc": "clean, trainer uses RandomResizedCrop",
    "protected+rrc": "protected, trainer uses RandomResizedCrop",
    **{k: f"protected, then {v[0]}" for k, v in PUBLISHING.items()},
}


def render_report(r: dict) -> str:
    inits = list(r["victims"])
    head = " | ".join(
        f"{r['victims'][i]['model']} ({i}, {r['victims'][i]['input_size']} px) final / best" for i in inits
    )
    lines = [
        "# Am I protected?",
        "",
        f"Folder: `{r['folder']}` ({r['method']}, budget {round((r['eps'] or 0) * 255)}/255). Trained on "
        f"{r['n_train']} photos, tested on {r['n_test']} ({r['test']}). Test accuracy in %: lower is better "
        "protection; a victim that learns the photos scores near the clean row.",
        "",
        f"| training data | {head} |",
        "|---|" + "---|" * len(inits),
    ]
    clean = r["rows"].get("clean", {})
    for name, cells in r["rows"].items():
        parts = []
        for i in inits:
            c = cells.get(i)
            if c is None:
                parts.append("-")
                continue
            ratio = (
                f" ({c['final'] / clean[i]['final']:.2f} x clean)"
                if name != "clean" and clean.get(i, {}).get("final")
                else ""
            )
            parts.append(f"{pct(c['final'])} / {pct(c['best'])}{ratio}")
        lines.append(f"| {ROW_NAMES.get(name, name)} | " + " | ".join(parts) + " |")
    verdict = []
    for i in inits:
        c, p = clean.get(i), r["rows"].get("protected", {}).get(i)
        if c and p:
            drop = (c["final"] - p["final"]) * 100
            change = f"a drop of {drop:.1f} points" if drop >= 0 else f"no drop ({-drop:.1f} points higher)"
            verdict.append(
                f"- {r['victims'][i]['model']} ({i}): {pct(c['final'])}% on clean photos, {pct(p['final'])}% on the "
                f"protected ones: {change}."
            )
    lines += ["", *verdict]
    if r["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in r["notes"]]]
    if r.get("command"):
        lines += ["", f"Command: `{r['command']}`"]
    return "\n".join(lines) + "\n"


def plot_report(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(r["rows"])
    inits = list(r["victims"])
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    width = 0.8 / max(1, len(inits))
    for k, i in enumerate(inits):
        vals = [100 * r["rows"][n].get(i, {}).get("final", float("nan")) for n in names]
        ax.bar([j + k * width for j in range(len(names))], vals, width, label=f"{r['victims'][i]['model']} ({i})")
    ax.set_xticks([j + width * (len(inits) - 1) / 2 for j in range(len(names))])
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%), final epoch")
    ax.set_title("am I protected? lower = better protected")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
