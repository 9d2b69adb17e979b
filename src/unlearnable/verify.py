"""Re-check a protected folder against its manifest: `unlearnable verify DIR`.

Checks, each reported as ok / FAILED / skipped with the reason:
  files         every image listed in the manifest is present with its sha256, and no other
                image sits under train/;
  perturbation  perturbation.safetensors loads (safetensors, no pickle) with its sha256;
  input         the input's checksums still match the manifest (when the input is reachable);
  budget        every protected image is within the budget of the clean image it came from;
  exact         every protected image equals the clean image plus the perturbation, quantized
                (the folder holds exactly what `protect` computed).
The last three rebuild the clean training set from the manifest's data, subset and image size
(or from --data).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _reorder(protected, names: list[str]):
    """The protected images in the manifest's order (the training set's order)."""
    index = {f"train/{Path(f).with_suffix('.png').as_posix()}": i for i, f in enumerate(protected.files or [])}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(f"{len(missing)} listed image(s) not found, e.g. {missing[0]}")
    return protected.subset([index[n] for n in names])


def verify_folder(folder: str | Path, data: str | None = None) -> list[tuple[str, str, str]]:
    """[(check, "ok" | "FAILED" | "skipped", detail)] for a protected folder."""
    from .data import balanced_subset, load_dataset
    from .export import file_sha256, source_checksums
    from .perturbation import Perturbation, budget_limit, budget_used

    folder = Path(folder)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: {folder} is not a folder written by `unlearnable protect`")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{mpath} is not valid JSON ({e})") from e
    results = []
    listed = manifest.get("files") or {}
    if not listed:
        results.append(("files", "skipped", "the manifest lists no file checksums (written by an older version)"))
    else:
        bad = [n for n, h in listed.items() if not (folder / n).is_file() or file_sha256(folder / n) != h]
        extra = sorted(str(p.relative_to(folder)) for p in (folder / "train").rglob("*.png")
                       if str(p.relative_to(folder)) not in listed)
        if bad or extra:
            results.append(("files", "FAILED", f"{len(bad)} missing or changed (e.g. {(bad or extra)[0]}), "
                                               f"{len(extra)} not in the manifest"))
        else:
            results.append(("files", "ok", f"{len(listed)} images match their sha256"))

    ppath = folder / "perturbation.safetensors"
    try:
        perturbation = Perturbation.load(ppath)
        want = manifest.get("perturbation_sha256")
        if want and file_sha256(ppath) != want:
            results.append(("perturbation", "FAILED", "sha256 differs from the manifest"))
        else:
            results.append(("perturbation", "ok", f"{perturbation.kind}, {perturbation.norm} eps {perturbation.eps:.6g}"))
    except (ValueError, FileNotFoundError) as e:
        results.append(("perturbation", "FAILED", str(e)))
        perturbation = None

    source = data or manifest.get("data")
    if source is None:
        for check in ("input", "budget", "exact"):
            results.append((check, "skipped", "the manifest names no input data; pass --data"))
        return results
    recorded = manifest.get("input_checksums") or {}
    if recorded and Path(source).exists():
        now = source_checksums(source)
        results.append(("input", "ok" if now == recorded else "FAILED",
                        "input checksums match" if now == recorded else f"input {source} changed since protection"))
    else:
        results.append(("input", "skipped", "no input checksums recorded" if not recorded else f"{source} not found"))
    if perturbation is None or not listed:
        for check in ("budget", "exact"):
            results.append((check, "skipped", "needs the perturbation and the file list"))
        return results
    clean = load_dataset(source, "train", image_size=manifest.get("image_size"))
    if manifest.get("train_per_class"):
        clean = balanced_subset(clean, manifest["train_per_class"], seed=manifest.get("seed", 0))
    protected = _reorder(load_dataset(folder, "train", cache=False), list(listed))
    if clean.images.shape != protected.images.shape:
        for check in ("budget", "exact"):
            results.append((check, "FAILED", f"clean data {tuple(clean.images.shape)} does not match the folder "
                                              f"{tuple(protected.images.shape)}; is --data the input that was protected?"))
        return results
    used = budget_used(clean.images, protected.images, perturbation.norm)
    ok = bool((used <= budget_limit(perturbation.eps, perturbation.norm)).all())
    used = used.max().item()
    results.append(("budget", "ok" if ok else "FAILED",
                    f"largest {perturbation.norm} change {used:.6g} (budget {perturbation.eps:.6g})"))
    same = torch.equal(perturbation.apply(clean).images, protected.images)
    results.append(("exact", "ok" if same else "FAILED",
                    "every image equals clean + perturbation, quantized" if same
                    else "some images differ from clean + perturbation"))
    return results
