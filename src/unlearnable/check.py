"""`unlearnable check`: am I protected? Measured on the owner's own photos, answered in words.

The question an owner asks is whether a model trained on the photos they publish recognises new
photos of their subject. The check answers it by cross-validation: the photos are dealt into
rounds (`rounds`) so that every photo is held out once; in each round a test model is trained on
the other photos (with a background's, the same public images of other classes a scraped set
would hold, drawn apart from those the protection was fitted among) and asked what each held-out
original shows. The same rounds are run on the owner's originals for comparison, and (on request)
on the protected photos after what publishing does to them (JPEG re-encoding, a 50% downscale, a
long side of 1080 px) or with a trainer's RandomResizedCrop. The first line of the report is the
answer with the interval its counts allow (`wilson`); the table, the photos one by one, the test
models and the time spent follow.

Given a test set instead (`--data`), or for a benchmark set, every model trains on all the
protected (or original) images and is tested on that set, as `unlearnable evaluate` would do;
every cell is one evaluate.run on the views a trainer makes (photos.views: resize and centre crop
at the model's input size), so `evaluate` on the same data gives the same numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import replace
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
FEW_TEST, FEW_PER_CLASS = 100, 20  # a benchmark test set below these: say the numbers mean little
DEFAULT_FOLDS = 5
BACKGROUND_TEST_PER_CLASS = 20  # background test images per class: do the test models learn at all?
PROTECTED_AT = 0.2  # "protected": at most this share of what a model trained on the originals recognises
CANNOT_TELL_AT = 0.5  # trained on the originals, a model recognising at most this share shows nothing
Z95 = 1.959964


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


def rounds(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Every photo's round (0 .. k-1): each class's photos shuffled (seeded) and dealt in turn,
    carrying on where the last class stopped, so every photo is held out exactly once, the rounds
    differ in size by at most one, and every round leaves at least one photo of every class to
    train on (a class needs two photos)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"--folds must be a whole number >= 2, got {k!r}")
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(len(labels), dtype=torch.int64)
    dealt = 0
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        if len(idx) < 2:
            raise ValueError(
                f"a group has {len(idx)} photo: the check holds each photo out in turn and needs at least 2 per "
                "group (one to learn from while the other is tested)"
            )
        out[idx[torch.randperm(len(idx), generator=gen)]] = (dealt + torch.arange(len(idx))) % k
        dealt += len(idx)
    return out


def wilson(hits: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion hits / n (Wilson 1927): honest at small n and
    at 0 or n hits, where the normal approximation gives an interval of width zero."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = hits / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share(hits: int, n: int, what: str = "") -> str:
    """'2 of 20 new photos (10%; 95% interval 3-30%)'."""
    lo, hi = wilson(hits, n)
    what = f" {what}" if what else ""
    return f"{hits} of {n}{what} ({100 * hits / max(1, n):.0f}%; 95% interval {100 * lo:.0f}-{100 * hi:.0f}%)"


def answer(protected: int, clean: int, n: int, what: str) -> dict:
    """The answer to "am I protected?" from two counts of n held-out originals recognised: by a
    model trained on the published photos and by one trained on the originals. Protected: the
    first recognises at most PROTECTED_AT as many, with the two intervals apart. Cannot tell: the
    originals' model itself recognises too few for the counts to show a difference."""
    p_hi, c_lo = wilson(protected, n)[1], wilson(clean, n)[0]
    said = (
        f"a model trained on your published photos recognised {share(protected, n, what)}; "
        f"trained on your originals, {share(clean, n)}"
    )
    if n == 0 or clean <= CANNOT_TELL_AT * n:
        verdict = "cannot tell"
        why = (
            "even trained on your originals, a model recognises too few of your photos for the check to show what "
            "protection changes: more photos (or more alike ones) would let it tell"
        )
    elif p_hi < c_lo and protected <= PROTECTED_AT * clean:
        verdict, why = "protected", ""
    else:
        verdict = "not protected"
        why = (
            "it recognised fewer than from your originals, but more than a fifth as many"
            if p_hi < c_lo
            else "as many as from your originals, within what the counts can tell"
        )
    line = f"{verdict.capitalize()}: {said}." + (f" {why[0].upper()}{why[1:]}." if why else "")
    return {"verdict": verdict, "line": line, "protected": protected, "clean": clean, "n": n}


def run_check(
    folder,
    out,
    *,
    test=None,
    folds: int = DEFAULT_FOLDS,
    test_per_class: int | None = None,
    inits=("scratch", "imagenet"),
    steps=(),
    rrc: bool = False,
    preset: str = "cpu",
    seed: int = 0,
    device=None,
    progress: bool = True,
    verbose: bool = False,
    force: bool = False,
    command: str | None = None,
    **overrides,
) -> dict:
    """Measure the protection of the `protect` output `folder`; writes report.md, report.json and
    accuracy.png into `out` (atomically) and returns the report. Every finished test model is kept
    in a checkpoint beside `out` (`.OUT.checkpoint.pt`): a stopped check resumes where it was.
    `progress`: one bar over the test models with its time left; `verbose`: every model's epochs."""
    from . import evaluate
    from .background import Background
    from .io import atomic_dir
    from .models import model_info
    from .outputs import check_output, claim, input_paths, marker
    from .training import Checkpoint, run_identity

    folder = Path(folder)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: {folder} is not a folder written by `unlearnable protect`")
    manifest = json.loads(mpath.read_text())
    photos = bool(manifest.get("photos"))
    if photos and test is None:
        rounds(torch.zeros(2, dtype=torch.int64), folds, 0)  # --folds checked before any work
    for s in steps:
        if s not in PUBLISHING:
            raise ValueError(f"unknown publishing step {s!r}; choose from {', '.join(PUBLISHING)}")
    victims = {}
    for init in inits:
        name, _, size, _ = evaluate.check_victim(init=init, preset=preset, **overrides)
        victims[init] = (name, size or model_info(name)["natural_input_size"])
    background = manifest.get("background") if photos else None
    back = None if not background else Background(background["source"], int(background["per_class"]))
    source = manifest["photo_root"] if photos else manifest["data"]
    if not photos:
        test = test or manifest.get("data_source") or manifest["data"]
    inputs = [folder.resolve(), *input_paths(source)] + (input_paths(test) if test else [])
    inputs += input_paths(back.source) if back is not None else []
    out = check_output(out, inputs, force, "check")
    run = {  # what a resume must repeat
        "command": "check",
        "folder": str(folder.resolve()),
        "protection": hashlib.sha256(mpath.read_bytes()).hexdigest(),  # a folder protected again is another check
        "inits": list(inits),
        "steps": list(steps),
        "rrc": rrc,
        "folds": folds if photos and test is None else None,
        "test": None if test is None else str(test),
        "test_per_class": test_per_class,
        "preset": preset,
        "seed": seed,
        "overrides": overrides,
    }
    notes: list[str] = []
    t_start = time.perf_counter()
    reading = 0.0
    ckpt = Checkpoint(out.with_name(f".{out.name}.checkpoint.pt"), run_identity(**run))
    with claim(out, run, command):
        done: dict[str, dict] = (ckpt.load() or {}).get("cells", {})
        cells: dict[str, dict] = {}
        bar = tqdm(total=None, desc="check: training test models", unit="model", disable=not progress)
        for init, (vname, size) in victims.items():
            t0 = time.perf_counter()
            if photos:
                data = _photo_data(manifest, folder, size, steps, test, folds, test_per_class, back, seed, notes)
            else:  # the model reads the set at its preset's size, as `unlearnable evaluate` does
                data, size = _benchmark_data(manifest, folder, steps, test, test_per_class, seed, notes), None
            reading += time.perf_counter() - t0
            names = list(data["rows"]) + ([f"{r}+rrc" for r in ("clean", "protected")] if rrc else [])
            if bar.total is None:  # every victim runs the same rows and rounds
                bar.total = len(victims) * len(names) * data["k"]
                bar.update(len(done))
            for row in names:
                for r in range(data["k"]):
                    key = f"{row}/{init}/{r}"
                    if key not in done:
                        train, tst, n_owner = _round(data, row.removesuffix("+rrc"), r)
                        extra = {**overrides, "crop": "rrc"} if row.endswith("+rrc") else overrides
                        rec = evaluate.run(
                            train,
                            tst,
                            victim=vname,
                            init=init,
                            preset=preset,
                            seed=seed,
                            input_size=size,
                            device=device,
                            progress=verbose,
                            predictions=photos,
                            **extra,
                        )
                        done[key] = _cell(rec, tst, n_owner, photos)
                        ckpt.save({"cells": done})
                        bar.update()
                    cells[key] = done[key]
            victims[init] = (vname, cells[f"clean/{init}/0"]["input_size"])
        bar.close()
        report = _report(manifest, folder, victims, data, cells, notes, photos, background, command)
        report.update(marker("check"))
        training = sum(c["seconds"] for c in cells.values())
        report["time"] = {
            "models": len(cells),
            "training_seconds": round(training, 1),
            "reading_seconds": round(reading, 1),
            "total_seconds": round(time.perf_counter() - t_start + ckpt.resumed_seconds, 1),
        }
        with atomic_dir(out, replace=force, kind="check") as tmp:
            (tmp / "report.json").write_text(json.dumps(report, indent=2))
            (tmp / "report.md").write_text(render_report(report))
            plot_report(report, tmp / "accuracy.png")
        ckpt.remove()
    return report


def _photo_data(manifest, folder, size, steps, test, folds, test_per_class, back, seed, notes) -> dict:
    """What the test models of one input size learn from and are tested on, for photos protected
    at full resolution: every row's views of all the owner's photos, the originals (or the given
    test set) to test on, every photo's round, and the background's images to train and test among."""
    from .photos import originals_of, protected_of, views, working_set

    originals, _ = originals_of(manifest)
    protected = protected_of(folder, manifest)
    clean_all = working_set(originals, size, False)
    if test is None:
        test_set, fold, held = clean_all, rounds(clean_all.labels, folds, seed), "held-out originals"
        k = min(folds, len(clean_all))
    else:
        test_set, fold, k = views(test, "test", size, progress=False).with_class_order(protected.classes), None, 1
        held = str(test)
        if test_per_class:
            test_set = balanced_subset(test_set, test_per_class, seed=seed, option="--test-per-class")
        notes += [n for n in seen_in_training(test_set, clean_all) if n not in notes]
    rows = {"clean": clean_all, "protected": working_set(protected, size, False)}
    for s in steps:
        if s == "long1080" and max(max(p.width, p.height) for p in protected.photos) <= 1080:
            note = "no photo is over 1080 px on its long side: that step changes nothing, not run"
            if note not in notes:
                notes.append(note)
            continue
        rows[s] = working_set(protected, size, False, partial(publish, step=s), PUBLISHING[s][0])
    bg_train = bg_test = None
    if back is not None:
        bg_train, bg_test = _background_sets(back, size, int(manifest.get("seed", 0)), notes)
    return {
        "rows": rows,
        "test": test_set,
        "fold": fold,
        "k": k,
        "held": held,
        "back": bg_train,
        "back_test": bg_test,
        "files": [p.rel for p in originals.photos],
    }


def _background_sets(back, size, seed, notes):
    """The background's training images for the test models, disjoint from those the protection
    was fitted among where the background has enough (draw 1), and a few of its test images."""
    from .background import load

    try:
        train = load(back, size, seed, draw=1)
    except ValueError:
        train = load(back, size, seed)
        note = (
            f"the background ({back.source}) has too few images for a second draw: the test models train on the same "
            "background images the protection was fitted among, where a scraped set would hold other people's"
        )
        if note not in notes:
            notes.append(note)
    try:
        test = load(replace(back, per_class=BACKGROUND_TEST_PER_CLASS), size, seed, split="test", upto=True)
        if test.classes != train.classes:
            raise ValueError("its test split has other classes")
    except (ValueError, FileNotFoundError) as e:
        why = str(e).splitlines()[0][:120]
        note = f"the background's test images are not read ({why}): no sign that the test models learned its classes"
        if note not in notes:
            notes.append(note)
        test = None
    return train, test


def _benchmark_data(manifest, folder, steps, test, test_per_class, seed, notes) -> dict:
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
    per_class = torch.bincount(test_set.labels, minlength=test_set.num_classes).min().item()
    if len(test_set) < FEW_TEST or per_class < FEW_PER_CLASS:
        notes.insert(
            0,
            f"only {len(test_set)} test images ({per_class} in the smallest class): one image moves the accuracy by "
            f"{100 / len(test_set):.1f} points, so read these numbers as a rough sign, not a measurement",
        )
    rows = {"clean": clean, "protected": protected}
    for s in steps:
        if s == "long1080":
            continue
        arr = protected.images.permute(0, 2, 3, 1).numpy()
        pub = [publish(np.ascontiguousarray(a), s) for a in arr]
        if s == "half":  # a benchmark set stays one size: back up to it, as a victim's resize would
            h, w = arr.shape[1:3]
            pub = [np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BICUBIC)) for a in pub]
        rows[s] = protected.with_images(torch.from_numpy(np.stack(pub)).permute(0, 3, 1, 2).contiguous())
    return {"rows": rows, "test": test_set, "fold": None, "k": 1, "held": str(test), "back": None, "back_test": None}


def _round(data: dict, row: str, r: int):
    """(training set, test set, how many of the test images are the owner's: the last ones) of
    round `r`: the row's photos outside the round among the background's, the round's originals
    after the background's test images, both with the background's classes first."""
    from .background import among

    train, test = data["rows"][row], data["test"]
    if data["fold"] is not None:
        train, test = train.subset(data["fold"] != r), test.subset(data["fold"] == r)
    back, back_test = data["back"], data["back_test"]
    if back is None:
        return train, test, len(test)
    if back_test is None:  # the owner's photos alone, labelled among the background's classes
        back_test = back.subset(torch.empty(0, dtype=torch.int64))
    return among(train, back), among(test, back_test), len(test)


def _cell(rec: dict, test, n_owner: int, photos: bool) -> dict:
    """What a report keeps of one test model: the owner's test images it recognised after every
    epoch, what it took each for at its last, how it did on the background's test images."""
    hist = rec["history"]
    n_back = len(test) - n_owner if photos else 0
    if photos:
        truth = test.labels[n_back:]
        hits = [int((torch.tensor(h["test_pred"][n_back:]) == truth).sum()) for h in hist]
        seen_as = [test.classes[i] for i in hist[-1]["test_pred"][n_back:]]
        back = None
        if n_back:
            pred = torch.tensor(hist[-1]["test_pred"][:n_back])
            back = float((pred == test.labels[:n_back]).float().mean())
    else:
        hits, seen_as, back = [round(h["test_acc"] * len(test)) for h in hist], [], None
    return {
        "hits": hits,
        "n": n_owner,
        "seen_as": seen_as,
        "background": back,
        "seconds": round(rec["seconds"], 1),
        "input_size": rec["input_size"] or test.image_size,  # None: the model reads the data's own size
        "epochs": rec["config"]["epochs"],
        "lr": rec["config"]["lr"],
    }


def seen_in_training(test_set, originals) -> list[str]:
    """A note when test images are pixel for pixel training originals: accuracy on them measures
    memory, not whether new photos are recognised."""

    def digests(ds) -> set[str]:
        return {hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in ds.images}

    shared = digests(test_set) & digests(originals)
    if not shared:
        return []
    return [
        f"{len(shared)} of the {len(test_set)} test images are the very photos protected (the training "
        "originals), so they are not held out: accuracy on them says little about new photos; give --data photos "
        "that were not protected, or leave --data out to hold each out in turn"
    ]


ROW_NAMES = {
    "clean": "your originals (what a trainer gets without protection)",
    "protected": "your published photos (protected)",
    "clean+rrc": "your originals, trainer uses RandomResizedCrop",
    "protected+rrc": "your published photos, trainer uses RandomResizedCrop",
    **{k: f"your published photos, then {v[0]}" for k, v in PUBLISHING.items()},
}
MODEL_WORDS = {"scratch": "trained from scratch", "imagenet": "ImageNet-pretrained, fine-tuned"}


def _report(manifest, folder, victims, data, cells, notes, photos, background, command) -> dict:
    """The report of a finished check (its rows summed over the rounds) with its answer."""
    from .background import PREFIX

    k = data["k"]
    rows: dict[str, dict] = {}
    for key, c in cells.items():
        row, init, _ = key.split("/")
        agg = rows.setdefault(row, {}).setdefault(
            init,
            {"hits": 0, "best_hits": 0, "n": 0, "seconds": 0.0, "background": [], "epochs": c["epochs"], "lr": c["lr"]},
        )
        agg["hits"] += c["hits"][-1]
        agg["best_hits"] += max(c["hits"])
        agg["n"] += c["n"]
        agg["seconds"] = round(agg["seconds"] + c["seconds"], 1)
        if c["background"] is not None:
            agg["background"].append(c["background"])
    for by_init in rows.values():
        for agg in by_init.values():
            agg["final"], agg["best"] = agg["hits"] / max(1, agg["n"]), agg["best_hits"] / max(1, agg["n"])
            b = agg.pop("background")
            agg["background"] = sum(b) / len(b) if b else None
    owners = list(data["test"].classes)
    if not photos:
        what = "of the test images (each in its right class)"
    elif len(owners) == 1:
        what = "new photos of your subject"
    elif background:
        what = "new photos of your subjects (each as its own)"
    else:
        what = "new photos (each in its own group)"
    answers = {
        i: answer(rows["protected"][i]["hits"], rows["clean"][i]["hits"], rows["clean"][i]["n"], what) for i in victims
    }
    # the answer is the worst case: the test model that recognised most of the published photos
    lead = max(victims, key=lambda i: (rows["protected"][i]["final"], i == "imagenet"))
    labels = str(manifest.get("labels", "folders"))
    if photos and labels.startswith("clusters"):
        notes.append(
            "your photos were grouped by similarity (clusters), not by what they show: a trainer labels photos by "
            "subject, so these numbers measure how well a model tells the similarity groups apart; photos of one "
            "subject are better protected as one (--labels one)"
        )
    per_photo = []
    if photos and data["fold"] is not None:
        seen: dict[int, int] = {}
        for j, (f, r) in enumerate(zip(data["files"], data["fold"].tolist())):
            pos = seen[r] = seen.get(r, -1) + 1  # its place among the round's test photos
            per_photo.append(
                {
                    "photo": f,
                    "subject": owners[int(data["test"].labels[j])],
                    "round": r + 1,
                    "seen_as": {
                        row: {i: cells[f"{row}/{i}/{r}"]["seen_as"][pos].removeprefix(PREFIX) for i in victims}
                        for row in rows
                    },
                }
            )
    return {
        "answer": answers[lead],
        "answers": answers,
        "lead": lead,
        "folder": str(folder.resolve()),
        "method": manifest.get("method"),
        "eps": manifest.get("eps"),
        "labels": ("one" if background and len(owners) == 1 else labels) if photos else None,
        "look": (manifest.get("look") or {}).get("name"),
        "background": background or None,
        "victims": {
            i: {
                "model": v[0],
                "init": i,
                "input_size": v[1],
                "epochs": rows["clean"][i]["epochs"],
                "lr": rows["clean"][i]["lr"],
            }
            for i, v in victims.items()
        },
        "rounds": k if data["fold"] is not None else None,
        "classes": len(owners) + (0 if data["back"] is None else data["back"].num_classes),
        "n_test": rows["clean"][lead]["n"],
        "test": data["held"],
        "rows": rows,
        "photos": per_photo,
        "notes": notes,
        "command": command,
    }


def render_report(r: dict) -> str:
    """report.md: the answer first, in words; then how it was measured, the table, the photos one
    by one, the test models and the time."""
    inits = list(r["victims"])
    a = r["answer"]
    lines = ["# Am I protected?", "", f"**{a['line']}**", ""]
    v = r["victims"][r["lead"]]
    if r.get("rounds"):
        n = r["n_test"]
        bg = r.get("background")
        among = (
            f" together with {bg.get('images', bg['per_class'] * bg.get('classes', 1))} public images of "
            f"{bg.get('classes', 'other')} other classes ({bg['source']}; other images than those the protection was "
            "fitted among, as a scraped set would hold other people's photos)"
            if bg
            else ""
        )
        lines.append(
            f"Every one of your {n} photos was held out once: in each of {r['rounds']} rounds a test model learned "
            f"from your other photos{among}, then was asked what each held-out original shows. The answer is the "
            f"test model that recognised most of them ({v['model']}, {MODEL_WORDS.get(v['init'], v['init'])}). "
            f"Protected means: at most {PROTECTED_AT:.0%} as many recognised as by a model trained on your "
            "originals, with the two 95% intervals apart."
        )
    else:
        lines.append(
            f"Every test model learned from all the images and was tested on {r['n_test']} others ({r['test']}). "
            f"The answer is the test model that did best on them ({v['model']}, "
            f"{MODEL_WORDS.get(v['init'], v['init'])})."
        )
    lines += ["", "## What each test model recognised", ""]
    lines.append("Final epoch, with the best epoch after the slash; lower is better protection.")
    lines += ["", "| trained on | " + " | ".join(_model(r["victims"][i]) for i in inits) + " |"]
    lines.append("|---|" + "---|" * len(inits))
    for name, by_init in r["rows"].items():
        parts = []
        for i in inits:
            c = by_init.get(i)
            parts.append(
                "-"
                if c is None
                else f"{c['hits']} of {c['n']} ({pct(c['final'])}%) / {c['best_hits']} ({pct(c['best'])}%)"
            )
        lines.append(f"| {ROW_NAMES.get(name, name)} | " + " | ".join(parts) + " |")
    back = {i: r["rows"]["clean"][i].get("background") for i in inits}
    if any(b is not None for b in back.values()):
        said = ", ".join(f"{_model(r['victims'][i])} {pct(b)}%" for i, b in back.items() if b is not None)
        lines += [
            "",
            f"On new images of the background's classes, the test models trained on your originals were right this "
            f"often ({said}; chance is {100 / max(2, r['classes']):.0f}%): the rest of what they learned.",
        ]
    if r["photos"]:
        rows = list(r["rows"])
        lines += ["", "## Your photos, one by one", ""]
        lines.append(
            "What each test model took every held-out original for, in its round"
            + (f" (models: {', '.join(_model(r['victims'][i]) for i in inits)})" if len(inits) > 1 else "")
            + "."
        )
        lines += ["", "| photo | subject | round | " + " | ".join(_short(x) for x in rows) + " |"]
        lines.append("|---|---|---|" + "---|" * len(rows))
        for p in r["photos"]:
            seen = [" / ".join(p["seen_as"][x][i] for i in inits) for x in rows]
            lines.append(f"| {p['photo']} | {p['subject']} | {p['round']} | " + " | ".join(seen) + " |")
    lines += ["", "## How it was measured", ""]
    for i in inits:
        vi = r["victims"][i]
        lines.append(
            f"- {_model(vi)}: {vi['model']} {MODEL_WORDS.get(i, i)}, {vi['input_size']} px, "
            f"{_n(vi['epochs'], 'epoch')}, lr {vi['lr']:g}; {r['answers'][i]['line']}"
        )
    t = r.get("time")
    if t:
        per = t["training_seconds"] / max(1, t["models"])
        lines.append(
            f"- Time: {_clock(t['total_seconds'])} in all; {t['models']} test models trained in "
            f"{_clock(t['training_seconds'])} ({per:.0f} s each on average), {_clock(t['reading_seconds'])} reading "
            "photos and background images."
        )
    lines.append(
        f"- Protection: {r['method']}, budget {round((r['eps'] or 0) * 255)}/255"
        + (f", look {r['look']}" if r.get("look") else "")
        + (
            f"; your photos {LABEL_WORDS.get(r['labels'].split(':')[0], 'grouped by ' + r['labels'])}"
            if r.get("labels")
            else ""
        )
        + "."
    )
    if r["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in r["notes"]]]
    if r.get("command"):
        lines += ["", f"Command: `{r['command']}`"]
    return "\n".join(lines) + "\n"


LABEL_WORDS = {
    "folders": "grouped by folder",
    "top": "grouped by top folder",
    "leaf": "grouped by innermost folder",
    "one": "taken as one subject",
    "clusters": "grouped by similarity (clusters)",
}


def _n(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _model(v: dict) -> str:
    return {"scratch": "from scratch", "imagenet": "pretrained"}.get(v["init"], v["init"])


def _short(row: str) -> str:
    return row.replace("clean", "originals").replace("protected", "published")


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


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
    ax.set_xticklabels([_short(n) for n in names], rotation=30, ha="right")
    ax.set_ylabel("recognised (%), final epoch")
    ax.set_title("am I protected? lower = better protected")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
