"""Does the protection show? SSIMULACRA2 and CIEDE2000 of protected photos against their originals.

Scores every photo of one or more `unlearnable protect` outputs (one per look) against the
originals they were made from, at 100% and fit to screen (unlearnable.visibility), beside two
references on the same photos: JPEG quality 90 and uniform +-4 noise. Prints one table per
photo and a summary per variant; --gallery writes 100% crops of each photo's smoothest area
(original / protected / change magnified) for the docs.

    python experiments/real_photos.py PHOTOS
    unlearnable protect --data PHOTOS --look invisible --out OUT_INVISIBLE   (and subtle, strong)
    python experiments/visibility.py --protected invisible=OUT_INVISIBLE --protected strong=OUT_STRONG \\
        --results RESULTS.jsonl [--gallery docs/look]

Results are appended to --results one line per (variant, photo) and reused when present for the
same originals and the same protected file (their checksums), so an interrupted measurement
resumes and a folder made again is scored again. Needs pip install ssimulacra2 colour-science.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from unlearnable import visibility as vis
from unlearnable.photos import open_upright, read_manifest

REFERENCES = ("jpeg90", "noise4")


def changed_copy(variant: str, original: np.ndarray, folder: str | None, name: str | None) -> np.ndarray:
    if variant == "jpeg90":
        return vis.jpeg(original, 90)
    if variant == "noise4":
        return vis.uniform_noise(original, 4)
    assert folder is not None and name is not None
    return open_upright(Path(folder) / name, name)[0]


def one(job: tuple) -> dict:
    variant, source_root, source, folder, name, scored = job
    original = open_upright(Path(source_root) / source, source)[0]
    changed = changed_copy(variant, original, folder, name)
    grey_in = bool((original[..., 0] == original[..., 1]).all() and (original[..., 1] == original[..., 2]).all())
    grey_out = bool((changed[..., 0] == changed[..., 1]).all() and (changed[..., 1] == changed[..., 2]).all())
    return {
        "variant": variant,
        "photo": source,
        "size": [int(original.shape[1]), int(original.shape[0])],
        "grey_in": grey_in,
        "grey_out": grey_out,
        "max_change": int(np.abs(changed.astype(np.int16) - original.astype(np.int16)).max()),
        "scored": scored,
        **vis.score(original, changed),
    }


def gallery(out: Path, variants: dict, root: Path, sources: list[str], names: dict, size: int = 256) -> None:
    """One PNG per (photo, variant): original | protected | change magnified, 100% crops of the
    original's smoothest size x size area."""
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        original = open_upright(root / source, source)[0]
        box = vis.smoothest_box(original, size)
        stem = Path(source).stem
        for variant, folder in variants.items():
            name = names[variant][source]
            changed = open_upright(Path(folder) / name, name)[0]
            a, b = vis.crop(original, box), vis.crop(changed, box)
            strip = np.concatenate([a, b, vis.magnified(a, b, 8)], axis=1)
            Image.fromarray(strip).save(out / f"{stem}-{variant}.png", optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protected", action="append", required=True, metavar="NAME=FOLDER", help="a protect output")
    ap.add_argument("--results", required=True, help="JSON lines, appended and reused")
    ap.add_argument("--gallery", default=None, help="folder for the 100%% crops")
    ap.add_argument("--gallery-photos", default="astronaut,rocket,coffee,camera", help="photo stems for the gallery")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    variants = dict(p.split("=", 1) for p in a.protected)
    manifests = {}
    for v, folder in variants.items():
        m = read_manifest(Path(folder))
        if m is None:
            raise SystemExit(f"--protected {v}={folder}: not a folder of photos written by unlearnable protect")
        manifests[v] = m
    first = next(iter(manifests.values()))
    root = Path(first["photo_root"])
    by_source = {v: {e["source"]: n for n, e in m["photo_files"].items()} for v, m in manifests.items()}
    sources = sorted(by_source[next(iter(by_source))])
    for v, names in by_source.items():
        if sorted(names) != sources:
            raise SystemExit(f"--protected {v}: made from other photos than the first folder")
    results = Path(a.results)
    done = {}
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            done[r["variant"], r["photo"]] = r
    # a line is reused only for the same photos and the same protected file (sha256 from the manifests)
    originals = first["input_checksums"]
    jobs = [(v, str(root), s, None, None, originals) for v in REFERENCES for s in sources]
    jobs += [
        (v, str(root), s, variants[v], by_source[v][s], manifests[v]["files"][by_source[v][s]])
        for v in variants
        for s in sources
    ]
    todo = [j for j in jobs if done.get((j[0], j[2]), {}).get("scored") != j[5]]
    with ProcessPoolExecutor(a.jobs) as pool, results.open("a") as f:
        for r in pool.map(one, todo):
            done[r["variant"], r["photo"]] = r
            f.write(json.dumps(r) + "\n")
            f.flush()
            at100, screen = r["ssimulacra2_100"], r["ssimulacra2_screen"]
            print(f"{r['variant']:>10} {r['photo']:<28} 100% {at100:5.1f}  screen {screen:5.1f}")
    order = [*REFERENCES, *variants]
    print("\n| photo | size | " + " | ".join(f"{v} 100% / screen" for v in order) + " |")
    print("|---|---|" + "---|" * len(order))
    for s in sources:
        row = [done[v, s] for v in order]
        cells = [f"{r['ssimulacra2_100']:.1f} / {r['ssimulacra2_screen']:.1f}" for r in row]
        print(f"| {s} | {row[0]['size'][0]} x {row[0]['size'][1]} | " + " | ".join(cells) + " |")
    print(
        "\n| variant | SSIMULACRA2 100% | SSIMULACRA2 fit to screen | CIEDE2000 flat, 100% (median of means) | "
        "CIEDE2000 flat, screen (median of means) | grey photos grey |"
    )
    print("|---|---|---|---|---|---|")
    for v in order:
        rows = [done[v, s] for s in sources]
        de100 = [r["delta_e_flat_100"]["mean"] for r in rows if r["delta_e_flat_100"]["mean"] is not None]
        descreen = [r["delta_e_flat_screen"]["mean"] for r in rows if r["delta_e_flat_screen"]["mean"] is not None]
        grey = [r["grey_out"] for r in rows if r["grey_in"]]
        print(
            f"| {v} | {vis.summary([r['ssimulacra2_100'] for r in rows])} | "
            f"{vis.summary([r['ssimulacra2_screen'] for r in rows])} | {vis.median(de100):.2f} | "
            f"{vis.median(descreen):.2f} | {sum(grey)} of {len(grey)} |"
        )
    if a.gallery:
        keep = set(a.gallery_photos.split(","))
        gallery(Path(a.gallery), variants, root, [s for s in sources if Path(s).stem in keep], by_source)


if __name__ == "__main__":
    main()
