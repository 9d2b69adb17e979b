"""What each output format costs for one protection: the size the protected copies take, the
time to write them, and the largest change a viewer decodes (docs/photos.md, "Formats").

The protection is learned once (`unlearnable protect`, BAIT's cpu preset, PNG) and written again
in every format from its saved perturbation (`unlearnable apply`), so every format carries the
same change and every write is timed the same way; each output is checked with `unlearnable
verify`. Time nothing beside it.

    python experiments/format_sizes.py PHOTOS OUT        # e.g. the set experiments/real_photos.py makes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

FORMATS = [("png", []), ("webp", []), ("jpeg", ["--quality", "95"]), ("jpeg", ["--quality", "90"]), ("same", [])]


def run(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "unlearnable", *args], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--method", default="bait")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / "png"
    if not (base / "manifest.json").exists():
        run("protect", "--data", str(args.photos), "--method", args.method, "--out", str(base), "--quiet")
    originals = sum(p.stat().st_size for p in args.photos.rglob("*") if p.is_file())
    megapixels = (
        sum(e["width"] * e["height"] for e in json.loads((base / "manifest.json").read_text())["photo_files"].values())
        / 1e6
    )
    print(f"{megapixels:.1f} megapixels, originals {originals / 1e6:.1f} MB\n")
    print("| format | size MB | MB per MP | x originals | write s | largest change, saved / decoded |")
    print("|---|---|---|---|---|---|")
    for fmt, extra in FORMATS:
        name = fmt + "".join(extra[1:])
        folder = args.out / f"as-{name}"  # every format written the same way, PNG too, so their times compare
        run("apply", str(base), "--out", str(folder), "--format", fmt, *extra, "--quiet", "--force")
        seconds = json.loads((folder / "manifest.json").read_text())["export_seconds"]
        subprocess.run(
            [sys.executable, "-m", "unlearnable", "verify", str(folder)], check=True, stdout=subprocess.DEVNULL
        )
        m = json.loads((folder / "manifest.json").read_text())
        size = sum((folder / n).stat().st_size for n in m["photo_files"])
        saved = max(e["max_change_0_255"] for e in m["photo_files"].values())
        seen = max(e["decoded_max_change_0_255"] for e in m["photo_files"].values())
        print(
            f"| {name} | {size / 1e6:.1f} | {size / 1e6 / megapixels:.2f} | {size / originals:.2f} | {seconds:.0f} "
            f"| {saved}/255 / {seen}/255 |"
        )


if __name__ == "__main__":
    main()
