"""Re-check a protected folder against its manifest: `unlearnable verify DIR`.

Checks, each reported as ok / FAILED / skipped with the reason:
  manifest      the manifest is this tool's, with every field verify relies on, of the right type,
                and its lists of images agree (files, sources, photo_files): every listed file is
                accounted for by the exact check;
  files         every image listed in the manifest is present with its sha256, and nothing else
                (of any kind, hidden files too) sits in the folder besides the manifest,
                perturbation and preview (a file browser's .DS_Store, Thumbs.db, desktop.ini aside);
  perturbation  perturbation.safetensors loads (safetensors, no pickle) with its sha256, and its
                budget, norm, kind, method and the method's settings are the manifest's;
  input         the input's checksums still match the manifest;
  budget        every protected image is within the budget of the clean image it came from, some
                image changed (protect never writes an empty protection), and the largest change
                is the one the manifest records;
  exact         every protected image equals the clean image plus the perturbation, quantized
                (the folder holds exactly what `protect` computed).
The last three rebuild the clean training set from the manifest's data, subset and image size
(or from --data). A check that cannot run (the input has moved) is "skipped", and the folder is
then not verified: only a folder whose every check passed is.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .outputs import PROTECT_FILES

CHECKS = ("manifest", "files", "perturbation", "input", "budget", "exact")


def _manifest_problems(m) -> list[str]:
    if not isinstance(m, dict):
        return [f"it is a JSON {type(m).__name__}, not an object"]
    problems = []
    want: dict[str, type | tuple[type, ...]] = {
        "method": str,
        "eps": (int, float),
        "norm": str,
        "kind": str,
        "seed": int,
        "data": str,
        "files": dict,
        "perturbation_sha256": str,
        "input_checksums": dict,
        "settings": dict,
    }
    for key, kind in want.items():
        if key not in m or m[key] is None:
            problems.append(f"no {key!r}")
        elif not isinstance(m[key], kind) or isinstance(m[key], bool):
            problems.append(f"{key!r} is a {type(m[key]).__name__}")
    for key, kinds in {"train_per_class": (int, dict), "image_size": (int,), "sources": (dict,)}.items():
        if m.get(key) is not None and (not isinstance(m[key], kinds) or isinstance(m[key], bool)):
            problems.append(f"{key!r} is a {type(m[key]).__name__}")
    files = m.get("files")
    if isinstance(files, dict):
        if not files:
            problems.append("'files' is empty")
        # a benchmark set's images lie under train/ (an ImageFolder); photos where they lay in the input
        where = "relative paths" if m.get("photos") else "train/ paths"
        bad = [
            n
            for n, h in files.items()
            if not isinstance(h, str)
            or not (m.get("photos") or n.startswith("train/"))
            or n in PROTECT_FILES
            or {"", ".", ".."} & set(n.split("/"))
            or n.startswith("/")
        ]
        if bad:
            problems.append(f"'files' has {len(bad)} entries that are not {where} with a sha256 (e.g. {bad[0]!r})")
        # every listed file is accounted for by one check: the images the exact check redraws are
        # the photos' (photo_files) or the sources' entries, and they must be the same list
        if m.get("photos") and not isinstance(m.get("photo_files"), dict):
            problems.append("no 'photo_files' (a folder of photos records every photo's source)")
        for other in ("sources", "photo_files"):
            entries = m.get(other)
            if isinstance(entries, dict) and set(entries) != set(files):
                odd = sorted(set(entries) ^ set(files))
                problems.append(f"'files' and {other!r} list different images (e.g. {odd[0]!r})")
    return problems


def verify_folder(folder: str | Path, data: str | None = None) -> list[tuple[str, str, str]]:
    """[(check, "ok" | "FAILED" | "skipped", detail)] for a protected folder, one row per check."""
    from .data import balanced_subset, load_dataset
    from .io import file_sha256, source_checksums
    from .look import look_from_record, with_look
    from .outputs import OS_LITTER
    from .perturbation import Perturbation, budget_levels, budget_limit, budget_used, budget_words

    folder = Path(folder)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: {folder} is not a folder written by `unlearnable protect`")
    results: list[tuple[str, str, str]] = []

    def rest(status: str, why: str) -> list[tuple[str, str, str]]:
        done = {c for c, _, _ in results}
        return results + [(c, status, why) for c in CHECKS if c not in done]

    try:
        manifest = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        results.append(("manifest", "FAILED", f"not valid JSON ({e})"))
        return rest("skipped", "needs a readable manifest")
    problems = _manifest_problems(manifest)
    if problems:
        results.append(("manifest", "FAILED", "; ".join(problems[:4])))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            return rest("skipped", "needs the manifest's file list")
    else:
        results.append(
            (
                "manifest",
                "ok",
                f"{manifest['method']}, {manifest['kind']}, budget {budget_words(manifest['eps'], manifest['norm'])} "
                f"({manifest['norm']}), seed {manifest['seed']}",
            )
        )
    listed: dict = manifest["files"]

    bad = []
    for n, h in listed.items():
        p = folder / n
        try:
            if not p.is_file() or p.is_symlink() or file_sha256(p) != h:
                bad.append(n)
        except OSError:
            bad.append(n)
    extra = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink())
        and p.relative_to(folder).as_posix() not in listed
        and p.relative_to(folder).as_posix() not in PROTECT_FILES
        and p.name not in OS_LITTER
    )
    if bad or extra:
        results.append(
            (
                "files",
                "FAILED",
                f"{len(bad)} missing or changed (e.g. {bad[0]})"
                if bad
                else f"{len(extra)} file(s) not in the manifest (e.g. {extra[0]})",
            )
        )
    else:
        results.append(("files", "ok", f"{len(listed)} images match their sha256, no other files"))

    ppath = folder / "perturbation.safetensors"
    perturbation = None
    try:
        perturbation = Perturbation.load(ppath)
        want = manifest.get("perturbation_sha256")
        differs = [
            k
            for k, mine in (
                ("eps", manifest.get("eps")),
                ("norm", manifest.get("norm")),
                ("kind", manifest.get("kind")),
            )
            if not (
                mine == getattr(perturbation, k)
                or (k == "eps" and isinstance(mine, (int, float)) and abs(mine - perturbation.eps) < 1e-9)
            )
        ]
        recorded = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
        if perturbation.method != manifest.get("method"):
            differs.append("method")
        meta = json.loads(json.dumps(perturbation.meta, default=str))
        differs += [f"settings.{k}" for k, v in sorted(recorded.items()) if k in meta and meta[k] != v]
        differs += [f"settings.{k}" for k in sorted(set(recorded) - set(meta))]
        if want is None or file_sha256(ppath) != want:
            results.append(
                (
                    "perturbation",
                    "FAILED",
                    "sha256 differs from the manifest" if want else "the manifest records no sha256 for it",
                )
            )
        elif differs:
            results.append(
                (
                    "perturbation",
                    "FAILED",
                    "the manifest and the perturbation file disagree on "
                    + ", ".join(
                        f"{k} ({manifest.get(k)!r} vs {getattr(perturbation, k)!r})" if "." not in k else k
                        for k in differs[:6]
                    ),
                )
            )
        else:
            results.append(
                (
                    "perturbation",
                    "ok",
                    f"{perturbation.kind}, budget {budget_words(perturbation.eps, perturbation.norm)}",
                )
            )
    except (ValueError, OSError) as e:
        results.append(("perturbation", "FAILED", str(e) if ppath.exists() else f"{ppath.name} is missing"))

    source = data or manifest.get("data")
    if not isinstance(source, str) or not source:
        return rest("FAILED", "the manifest names no input data (pass --data to name it)")
    recorded = manifest.get("input_checksums") or {}
    if not Path(source).exists():
        return rest("skipped", f"the input {source} is not there; pass --data with the clean input to check")
    now = source_checksums(source)
    if recorded and sorted(map(str, now.values())) == sorted(map(str, recorded.values())):  # by content, any name
        results.append(("input", "ok", "input checksums match"))
    else:
        results.append(
            (
                "input",
                "FAILED",
                f"input {source} changed since protection" if recorded else "the manifest records no input checksums",
            )
        )
    if perturbation is None:
        return rest("skipped", "needs a readable perturbation")
    if manifest.get("photos"):
        return results + _check_photos(folder, manifest, perturbation, data)
    try:
        clean = load_dataset(source, "train", image_size=manifest.get("image_size"), cache="read")  # reads only
        if manifest.get("train_per_class"):
            clean = balanced_subset(clean, manifest["train_per_class"], seed=manifest.get("seed", 0))
    except ValueError as e:
        return rest("FAILED", f"cannot rebuild the clean input: {e}")
    names = list(listed)
    if len(names) != len(clean):
        return rest("FAILED", f"the manifest lists {len(names)} images but the input has {len(clean)}")
    try:
        protected = _read_images(folder, names, clean)
    except ValueError as e:
        return rest("FAILED", str(e))
    eps = (
        min(perturbation.eps, float(manifest["eps"]))
        if isinstance(manifest.get("eps"), (int, float))
        else perturbation.eps
    )
    used = budget_used(clean.images, protected, perturbation.norm)
    ok = bool((used <= budget_limit(eps, perturbation.norm)).all())
    if perturbation.norm == "linf":  # in 8-bit levels, as the images hold it
        detail = f"largest change {round(used.max().item() * 255)}/255 (budget {budget_levels(eps)}/255)"
    else:
        detail = f"largest {perturbation.norm} change {used.max().item():.6g} (budget {eps:.6g})"
    results.append(budget_row(ok, detail, round(used.max().item() * 255), manifest))
    try:
        look = look_from_record(manifest.get("look"))
        same = torch.equal(perturbation.apply(with_look(clean, look)).images, protected)
    except ValueError as e:
        results.append(("exact", "FAILED", f"the perturbation does not fit the input: {e}"))
        return results
    results.append(
        (
            "exact",
            "ok" if same else "FAILED",
            "every image equals clean + perturbation, quantized"
            if same
            else "some images differ from clean + perturbation",
        )
    )
    return results


def _check_photos(folder: Path, manifest: dict, perturbation, data) -> list[tuple[str, str, str]]:
    """budget and exact for photos protected at full resolution: every photo is drawn again from
    its original (photos.render, as protect did) and must give the very bytes in the folder."""
    from .io import file_sha256
    from .look import look_from_record
    from .perturbation import budget_levels
    from .photos import originals_of, render

    try:
        originals, names = originals_of(manifest, data)
    except (ValueError, KeyError, OSError) as e:
        return [(c, "FAILED", f"cannot rebuild the originals: {e}") for c in ("budget", "exact")]
    recorded = manifest.get("eps")
    limit = min(perturbation.eps, recorded) if isinstance(recorded, (int, float)) else perturbation.eps
    levels = budget_levels(limit)  # the smaller of the manifest's and the perturbation's budgets
    labels = originals.labels.tolist()
    top, differ = 0, []
    for i, name in enumerate(names):
        row = labels[i] if perturbation.kind == "classwise" else i
        try:
            drawn = render(
                originals,
                i,
                perturbation.delta[row],
                perturbation.eps,
                manifest.get("format", "png"),
                manifest.get("quality") or 0,
                bool(manifest.get("strip_metadata")),
                look_from_record(manifest.get("look")),
            )
            encoded, change = drawn.data, drawn.top
        except (ValueError, OSError, KeyError) as e:
            return [(c, "FAILED", f"cannot redraw {name}: {e}") for c in ("budget", "exact")]
        try:
            on_disk = (folder / name).read_bytes()
        except OSError:
            differ.append(name)
            continue
        if file_sha256(on_disk) != file_sha256(encoded):  # not what protect made: measure what it holds
            differ.append(name)
            change = _file_change(on_disk, originals, i)
        top = max(top, change)
    lossy = manifest.get("format") == "jpeg" or any(
        e.get("decoded_max_change_0_255", 0) > e.get("max_change_0_255", 0) for e in manifest["photo_files"].values()
    )
    after = " before JPEG encoding (JPEG adds its own error; see the manifest)" if lossy else ""
    return [
        budget_row(top <= levels, f"largest change {top}/255{after} (budget {levels}/255)", top, manifest),
        (
            "exact",
            "FAILED" if differ else "ok",
            f"{len(differ)} photos differ from original + perturbation (e.g. {differ[0]})"
            if differ
            else "every photo equals its original + perturbation, drawn at its size and encoded as recorded",
        ),
    ]


def budget_row(within: bool, detail: str, top: int, manifest: dict) -> tuple[str, str, str]:
    """The budget check's row: within the budget, and not empty (protect never writes a folder
    whose images equal the clean ones), with the largest change the manifest records."""
    recorded = manifest.get("max_abs_change_0_255")
    if top == 0:
        return "budget", "FAILED", "no pixel of any image changed: an empty protection is not one `protect` writes"
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded != top:
        return "budget", "FAILED", f"{detail}, but the manifest records {recorded}/255"
    return "budget", "ok" if within else "FAILED", detail


def _file_change(data: bytes, originals, i: int) -> int:
    """The largest change, in 8-bit levels, between a photo file and its original (256 when it
    cannot be read or has another size)."""
    import io

    import numpy as np
    from PIL import Image

    from .photos import open_upright

    p = originals.photos[i]
    original, img = open_upright(originals.root / p.rel, p.rel)
    img.close()
    try:
        with Image.open(io.BytesIO(data)) as f:
            pixels = np.asarray(f.convert("RGB"))
    except Exception:
        return 256
    if pixels.shape != original.shape:
        return 256
    return int(np.abs(pixels.astype(np.int16) - original.astype(np.int16)).max())


def _read_images(folder: Path, names: list[str], clean) -> torch.Tensor:
    """The listed images, in the manifest's order (the training set's), as one uint8 tensor, read
    by the toolkit's one image decoder (as a victim reading the folder would)."""
    from .data.sources import decode_image

    out = torch.empty_like(clean.images)
    for i, n in enumerate(names):
        try:
            arr = decode_image((folder / n).read_bytes(), n)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read {n}: {e}") from None
        if arr.shape[:2] != tuple(clean.images.shape[2:]):
            raise ValueError(
                f"{n} is {arr.shape[1]}x{arr.shape[0]}, but its clean image is "
                f"{clean.images.shape[3]}x{clean.images.shape[2]}; is --data the input that was protected?"
            )
        out[i] = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    return out
