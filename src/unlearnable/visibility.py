"""Does a change show? Perceptual scores of a protected photo against its original.

The Linf budget does not say whether a change is seen (look.py); these measure it:

    SSIMULACRA2  (pip `ssimulacra2`; Cloudinary's metric in the XYB colour space, sensitive to
                 colour blotches and blocking): 100 identical, about 90 indistinguishable side by
                 side at 1:1, 70 high quality, 50 medium;
    CIEDE2000    colour difference (pip `colour-science`) on *flat* pixels, those whose luma has a
                 local standard deviation (Gaussian window, sigma 3 px) under FLAT_STD levels:
                 where a colour shift is easiest to see; about 2.3 is one just-noticeable
                 difference for solid patches.

Both at two views: 100% (the worse of the photo's central crop and its smoothest crop, CROP px
square) and fit to screen (the whole photo scaled to a long side of SCREEN px, as a viewer shows
it; smaller photos as they are). The metrics are optional extras (pip install
"unlearnable[visibility]"); the protection never depends on them.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from .look import LUMA

CROP = 768
SCREEN = 1920
FLAT_STD = 2.0  # luma levels: below this local standard deviation a pixel is on a flat area
MID_TONES = (24, 232)  # mean luma of a crop where a change is not clipped away


def need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        pip = {"ssimulacra2": "ssimulacra2", "colour": "colour-science"}[module]
        raise SystemExit(
            f"the visibility measurement needs {pip}: pip install {pip} (or unlearnable[visibility])"
        ) from None


def _png(arr: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=1)
    buf.seek(0)
    return buf


def ssimulacra2(original: np.ndarray, changed: np.ndarray) -> float:
    """SSIMULACRA2 of two (H, W, 3) uint8 images of one size."""
    if original.shape != changed.shape:
        raise ValueError(f"images differ in size: {original.shape} vs {changed.shape}")
    return float(need("ssimulacra2").compute_ssimulacra2(_png(original), _png(changed)))


def local_std(pixels: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """(H, W) local standard deviation of the luma of an (H, W, 3) uint8 image (look.local_luma_std),
    a strip at a time (photos.by_strips, with the Gaussian's reach as context)."""
    from .look import local_luma_std
    from .photos import by_strips

    return by_strips(pixels, math.ceil(3 * sigma) + 1, lambda part: local_luma_std(part, sigma))


def luma(pixels: np.ndarray) -> np.ndarray:
    """(H, W) float32 luma of an (H, W, 3) uint8 image, without a float copy of all three channels."""
    out = pixels[..., 0] * np.float32(LUMA[0])
    out += pixels[..., 1] * np.float32(LUMA[1])
    out += pixels[..., 2] * np.float32(LUMA[2])
    return out


def smoothest_box(pixels: np.ndarray, size: int = CROP) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the size x size square with the least texture (mean local
    luma standard deviation), on a grid of quarter-size steps: where a change shows first. Squares
    of near-black or near-white (mean luma outside MID_TONES), where a change is clipped away and
    hard to see, are taken only when there is no other."""
    h, w = pixels.shape[:2]
    s = min(size, h, w)
    act = torch.from_numpy(local_std(pixels))[None, None]
    grey = torch.from_numpy(luma(pixels))[None, None]
    stride = max(1, s // 4)
    means = torch.nn.functional.avg_pool2d(act, s, stride=stride)[0, 0]
    tone = torch.nn.functional.avg_pool2d(grey, s, stride=stride)[0, 0]
    means = means + 1e6 * ((tone < MID_TONES[0]) | (tone > MID_TONES[1]))
    i = int(means.flatten().argmin())
    top, left = (i // means.shape[1]) * stride, (i % means.shape[1]) * stride
    return left, top, left + s, top + s


def central_box(pixels: np.ndarray, size: int = CROP) -> tuple[int, int, int, int]:
    h, w = pixels.shape[:2]
    s = min(size, h, w)
    left, top = (w - s) // 2, (h - s) // 2
    return left, top, left + s, top + s


def crop(pixels: np.ndarray, box) -> np.ndarray:
    left, top, right, bottom = box
    return pixels[top:bottom, left:right]


def fit_to_screen(pixels: np.ndarray, long_side: int = SCREEN) -> np.ndarray:
    """The photo as a viewer shows it whole: scaled (Lanczos) to `long_side`, never enlarged."""
    h, w = pixels.shape[:2]
    if max(h, w) <= long_side:
        return pixels
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def delta_e_flat(original: np.ndarray, changed: np.ndarray) -> dict:
    """CIEDE2000 between the two images on the original's flat pixels: mean, 99th percentile and
    the flat share of the image (None where no pixel is flat)."""
    colour = need("colour")
    flat = local_std(original) < FLAT_STD
    share = float(flat.mean())
    if not flat.any():
        return {"flat_share": 0.0, "mean": None, "p99": None}
    a, b = original[flat].astype(np.float64) / 255, changed[flat].astype(np.float64) / 255
    lab = [colour.XYZ_to_Lab(colour.sRGB_to_XYZ(x)) for x in (a, b)]
    de = colour.delta_E(lab[0], lab[1], method="CIE 2000")
    return {"flat_share": round(share, 3), "mean": float(de.mean()), "p99": float(np.percentile(de, 99))}


def score(original: np.ndarray, changed: np.ndarray) -> dict:
    """Every score of one photo: SSIMULACRA2 at 100% (central and smoothest crop, and the worse of
    the two) and fit to screen, CIEDE2000 on flat pixels at both views."""
    boxes = {"central": central_box(original), "smoothest": smoothest_box(original)}
    at100 = {k: ssimulacra2(crop(original, b), crop(changed, b)) for k, b in boxes.items()}
    o, c = fit_to_screen(original), fit_to_screen(changed)
    worst = boxes[min(at100, key=at100.get)]  # type: ignore[arg-type]
    return {
        "ssimulacra2_100": min(at100.values()),
        "ssimulacra2_100_crops": at100,
        "ssimulacra2_screen": ssimulacra2(o, c),
        "delta_e_flat_100": delta_e_flat(crop(original, worst), crop(changed, worst)),
        "delta_e_flat_screen": delta_e_flat(o, c),
    }


def jpeg(pixels: np.ndarray, quality: int = 90) -> np.ndarray:
    """The photo after a JPEG round trip (reference: what publishers already accept)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        return np.asarray(img.convert("RGB"))


def uniform_noise(pixels: np.ndarray, levels: int = 4, seed: int = 0) -> np.ndarray:
    """The photo plus independent uniform integer noise in [-levels, levels] per pixel and channel."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-levels, levels + 1, pixels.shape, dtype=np.int16)
    return np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def magnified(original: np.ndarray, changed: np.ndarray, budget_levels: int) -> np.ndarray:
    """The change as a picture: mid-grey for none, the budget spanning the whole range."""
    gain = 127 / max(1, budget_levels)
    diff = changed.astype(np.int16) - original.astype(np.int16)
    return np.clip(128 + diff * gain, 0, 255).round().astype(np.uint8)


def median(values) -> float:
    v = sorted(values)
    return float("nan") if not v else (v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2)


def summary(rows: list[float]) -> str:
    ok = [r for r in rows if not math.isnan(r)]
    return f"min {min(ok):.1f}, median {median(ok):.1f}" if ok else "-"
