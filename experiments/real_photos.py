"""Assemble the real-photo set the visibility measurement runs on (docs/photos.md), offline.

The photographs that scikit-image, scikit-learn and matplotlib ship in their packages, cropped
to camera aspect ratios (3:2, 4:5), resized (most upscaled, with bicubic resampling) to camera
sizes of 1.5 to 24 megapixels and saved as JPEG quality 95 in three subject folders; one is
stored sideways with an EXIF orientation tag, one is black-and-white (mode L). Nothing made from
them is committed; the packages' own licence notes cover the images (public domain or CC0 for
these). Upscaled photos are smoother than a camera's: the harder case for hiding a change.

    python experiments/real_photos.py OUT
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image, ImageOps

ORIENTATION = 0x0112

# (folder, name, package, file, aspect (w, h), output size (w, h) upright, note)
PHOTOS = [
    ("people", "astronaut", "skimage", "astronaut.png", (4, 5), (2400, 3000), "portrait"),
    ("people", "grace_hopper", "matplotlib", "grace_hopper.jpg", (4, 5), (1080, 1350), "portrait, web size"),
    ("places", "china", "sklearn", "china.jpg", (3, 2), (6000, 4000), "24 MP, sky"),
    ("places", "rocket", "skimage", "rocket.jpg", (2, 3), (2000, 3000), "sky; stored sideways (EXIF 6)"),
    ("places", "motorcycle", "skimage", "motorcycle_left.png", (3, 2), (3000, 2000), "street"),
    ("things", "coffee", "skimage", "coffee.png", (3, 2), (4500, 3000), "13.5 MP"),
    ("things", "flower", "sklearn", "flower.jpg", (3, 2), (3000, 2000), "bokeh"),
    ("things", "chelsea", "skimage", "chelsea.png", (3, 2), (451, 300), "a cat, web copy as shipped"),
    ("things", "camera", "skimage", "camera.png", (4, 5), (1600, 2000), "black and white (mode L)"),
]
SIDEWAYS = {"rocket"}


def package_file(package: str, name: str) -> Path:
    if package == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data" / name
    if package == "sklearn":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images" / name
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


def crop_to(img: Image.Image, aspect: tuple[int, int]) -> Image.Image:
    """The largest central crop of `img` with the aspect ratio w:h."""
    w, h = img.size
    aw, ah = aspect
    if w * ah > h * aw:  # too wide
        nw = h * aw // ah
        return img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    nh = w * ah // aw
    return img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))


def build(out: Path) -> list[Path]:
    written = []
    for folder, name, package, file, aspect, size, _ in PHOTOS:
        with Image.open(package_file(package, file)) as src:
            img = src.convert("L" if src.mode in ("L", "I;16", "I") else "RGB")
        img = crop_to(img, aspect)
        if img.size != size:
            img = img.resize(size, Image.Resampling.BICUBIC)
        path = out / folder / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if name in SIDEWAYS:  # stored rotated; the tag says how to show it upright
            stored = img.transpose(Image.Transpose.ROTATE_90)
            exif = Image.Exif()
            exif[ORIENTATION] = 6
            stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
            with Image.open(path) as back:
                assert ImageOps.exif_transpose(back).size == img.size, "orientation tag does not restore the photo"
        else:
            img.save(path, "JPEG", quality=95)
        written.append(path)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="a new (or empty) folder")
    out = Path(ap.parse_args().out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; give a new folder")
    for path in build(out):
        with Image.open(path) as img:
            mb = os.path.getsize(path) / 1e6
            print(f"{path.relative_to(out)}  {img.size[0]} x {img.size[1]}  {img.mode}  {mb:.1f} MB")


if __name__ == "__main__":
    main()
