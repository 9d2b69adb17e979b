"""One owner, one subject: protect 20 photos of it among the default background, then ask
`unlearnable check` whether a model trained on them recognises new photos of it (docs/photos.md).

The collection is made offline from one photograph that scikit-image, scikit-learn or
matplotlib ships (the astronaut by default: a person, as a face is an owner's commonest
subject): COUNT views of it as an owner's camera would take them (another framing and zoom,
mirrored or not, a little brighter or darker, at 1.2 to 2 megapixels, JPEG quality 92). Views
of one photograph are closer to each other than real photos of a subject are: recognising
held-out ones from the originals is the easy case for the trainer, so a "protected" here is
earned against a strong comparison. Prints the time of every stage and the check's answer.

    python experiments/one_subject.py OUT [--subject astronaut] [--count 20] [--check-args ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from real_photos import PHOTOS, package_file  # noqa: E402

ASPECTS = [(4, 5), (3, 2), (1, 1), (2, 3)]


def views(name: str, count: int, seed: int, out: Path) -> None:
    """COUNT camera-like views of the shipped photograph `name`, written into `out`."""
    row = next(p for p in PHOTOS if p[1] == name)
    img = ImageOps.exif_transpose(Image.open(package_file(row[2], row[3]))).convert("RGB")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    w, h = img.size
    for i in range(count):
        aw, ah = ASPECTS[rng.integers(len(ASPECTS))]
        zoom = rng.uniform(0.55, 0.95)  # the share of the frame the view keeps
        cw = min(w, int(zoom * min(w, h * aw / ah)))
        ch = min(h, int(cw * ah / aw))
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        view = img.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            view = ImageOps.mirror(view)
        view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.85, 1.15))
        view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.9, 1.1))
        mp = rng.uniform(1.2, 2.0) * 1e6
        f = (mp / (cw * ch)) ** 0.5
        view = view.resize((round(cw * f), round(ch * f)), Image.Resampling.BICUBIC)
        view.save(out / f"IMG_{1000 + i}.jpg", quality=92)


def timed(argv: list[str]) -> float:
    print("$ unlearnable " + " ".join(argv), flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "unlearnable", *argv], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--subject", default="astronaut", choices=[p[1] for p in PHOTOS])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protect-args", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args()
    photos = args.out / "photos" / args.subject
    if not photos.is_dir():
        views(args.subject, args.count, args.seed, photos)
    protected, report = args.out / "protected", args.out / "check"
    times = {}
    if not (protected / "manifest.json").is_file():
        times["protect"] = timed(["protect", "--data", str(photos.parent), "--out", str(protected), *args.protect_args])
    if not (report / "report.json").is_file():
        times["check"] = timed(["check", str(protected), "--out", str(report), "--quiet"])
    r = json.loads((report / "report.json").read_text())
    print(json.dumps({"seconds": {k: round(v, 1) for k, v in times.items()}, "time": r["time"]}, indent=1))
    print(r["answer"]["line"])


if __name__ == "__main__":
    main()
