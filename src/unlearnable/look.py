"""The look: where and how a protection's change may sit on a photo so that it does not show.

The Linf budget (8/255) says how large a change may be, not whether it is seen. What makes a
change visible is its frequency, its colour, its edges and where it sits: a slowly varying
colour shift over a smooth area (sky, skin, a wall, bokeh) is seen far below the amplitude at
which change inside texture (foliage, fabric, hair) is (the just-noticeable-difference models
of Chou and Li, IEEE TCSVT 1995, and Yang et al., 2005: local activity masks change). A look
shapes every method's change the same way, after the method and before 8-bit rounding:

    budget map   a per-pixel share of the budget in [floor, 1] from the photo's own content:
                 the local standard deviation of its luma (Gaussian window, `window` px at the
                 photo's own pixels), full budget from `texture` levels up, `floor` on flat
                 areas, the map itself smoothed so that it adds no edge of its own;
    grey         a photo whose channels are all equal (a black-and-white photo) gets the mean of
                 the change over its channels in every channel, so it stays grey;
    smooth       methods with a `smooth` option (bait's direct grid) draw their pattern as a
                 smooth spline instead of constant cells: no block edges.

The map is computed where the change is drawn (at every photo's full resolution, in strips)
and, averaged over the area a working pixel covers, where the method is fitted (photos.py), so
the method sees the budget the photo will carry. Benchmark sets keep the paper's protocol (no
look) unless one is asked for. How each look scores (SSIMULACRA2 on real photos) and protects
is measured in docs/photos.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LUMA = (0.299, 0.587, 0.114)  # Rec. 601 luma weights (on 8-bit levels)
GREY_LEVELS = 2  # channels this close everywhere make a grey photo


@dataclass(frozen=True)
class Look:
    name: str
    floor: float  # share of the budget on perfectly flat areas, in (0, 1]
    texture: float  # local luma standard deviation (8-bit levels) from which the whole budget is used
    smooth: bool  # the method draws its pattern without block edges (where it can)
    summary: str
    window: float = 3.0  # Gaussian sigma (px) of the local-activity window
    blur: float = 6.0  # Gaussian sigma (px) that smooths the map

    def __post_init__(self):
        if not 0 < self.floor <= 1:
            raise ValueError(f"look {self.name}: floor must be in (0, 1], got {self.floor}")
        if not self.texture > 0 or not self.window > 0 or not self.blur > 0:
            raise ValueError(f"look {self.name}: texture, window and blur must be positive")

    def record(self) -> dict:
        """What a manifest says of the look (enough to draw every photo again)."""
        return {
            "name": self.name,
            "floor": self.floor,
            "texture": self.texture,
            "smooth": self.smooth,
            "window": self.window,
            "blur": self.blur,
            "grey_on_grey": True,
        }


LOOKS = {
    "invisible": Look(
        "invisible",
        floor=0.3,
        texture=20.0,
        smooth=True,
        summary="smooth patterns, 30% of the budget on flat areas, the whole budget only in texture "
        "(measured: SSIMULACRA2 83 on the worst real photo, 90 median; a pretrained victim kept 0.73 of its "
        "clean accuracy)",
    ),
    "subtle": Look(
        "subtle",
        floor=0.5,
        texture=10.0,
        smooth=True,
        summary="smooth patterns, half the budget on flat areas (measured: SSIMULACRA2 78 on the worst real "
        "photo, 89 median; a pretrained victim kept 0.60 of its clean accuracy)",
    ),
    "strong": Look(
        "strong",
        floor=1.0,
        texture=1.0,
        smooth=False,
        summary="the method's own patterns at the whole budget everywhere, visible on smooth areas (measured: "
        "SSIMULACRA2 34 on the worst real photo, 58 median; a pretrained victim kept 0.34 of its clean accuracy)",
    ),
}
DEFAULT_PHOTO_LOOK = "invisible"


def get_look(name: str | None) -> Look | None:
    """The look called `name` (None or "none": no look, the benchmark protocol), or a custom one
    written as KEY=VALUE pairs, e.g. "floor=1,smooth=yes" (keys floor, texture, smooth, window,
    blur; the rest as in strong): how the trade-off between the named looks is measured."""
    if name is None or name == "none":
        return None
    if name in LOOKS:
        return LOOKS[name]
    if "=" not in name:
        raise ValueError(f"--look must be one of {', '.join(LOOKS)}, none, or KEY=VALUE pairs, got {name!r}")
    fields: dict = {"floor": 1.0, "texture": 1.0, "smooth": False}
    for pair in name.split(","):
        key, _, value = pair.partition("=")
        key = key.strip()
        try:
            if key in ("floor", "texture", "window", "blur"):
                fields[key] = float(value)
            elif key == "smooth" and value.strip().lower() in ("yes", "true", "1", "no", "false", "0"):
                fields[key] = value.strip().lower() in ("yes", "true", "1")
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"--look {name!r}: {pair!r} is not one of floor=F, texture=T, smooth=yes|no, window=PX, blur=PX"
            ) from None
    summary = ", ".join(f"{k} {v}" for k, v in fields.items())
    return Look("custom", fields.pop("floor"), fields.pop("texture"), fields.pop("smooth"), summary, **fields)


def look_from_record(record: dict | None) -> Look | None:
    """The look a manifest recorded (its parameters, not only its name, so that a folder made with
    another version's look is drawn again exactly)."""
    if not record:
        return None
    return Look(
        record["name"],
        float(record["floor"]),
        float(record["texture"]),
        bool(record["smooth"]),
        LOOKS[record["name"]].summary if record["name"] in LOOKS else "",
        float(record.get("window", 3.0)),
        float(record.get("blur", 6.0)),
    )


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of the last two axes of a float tensor (radius ceil(3 sigma), edges
    replicated, any size of image): scipy's C loops, several times faster on a CPU than a
    one-channel convolution for a photo of many megapixels."""
    from scipy import ndimage

    arr = x.detach().cpu().float().numpy()
    for axis in (-1, -2):
        arr = ndimage.gaussian_filter1d(arr, sigma, axis=axis, mode="nearest", truncate=3.0)
    return torch.from_numpy(arr)


def halo(look: Look) -> int:
    """Rows of context a strip needs on each side so that its map equals the whole photo's."""
    return (math.ceil(3 * look.window) + 1) * 2 + math.ceil(3 * look.blur) + 1


@torch.no_grad()
def local_luma_std(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, 1, H, W) standard deviation of the luma (8-bit levels) of uint8 images (N, 3, H, W) in a
    Gaussian window of `sigma` px: how much texture surrounds every pixel."""
    w = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    y = (images.float() * w).sum(1, keepdim=True)
    mu = _gaussian(y, sigma)
    return (_gaussian(y * y, sigma) - mu * mu).clamp_(min=0).sqrt_()


@torch.no_grad()
def budget_map(images: torch.Tensor, look: Look) -> torch.Tensor:
    """(N, 1, H, W) float share of the budget in [floor, 1] for uint8 images (N, 3, H, W)."""
    std = local_luma_std(images, look.window)
    m = (look.floor + (1 - look.floor) * std / look.texture).clamp_(max=1)
    return _gaussian(m, look.blur).clamp_(look.floor, 1)


def with_look(ds, look: Look | None, chunk: int = 1024):
    """The ImageDataset `ds` with the look's budget map of every image, computed at the images' own
    size (a benchmark set under a look); `ds` itself without a look."""
    if look is None:
        return ds
    maps = [budget_map(ds.images[i : i + chunk], look) for i in range(0, len(ds), chunk)]
    budget = torch.cat(maps) if maps else torch.empty((0, 1, *ds.images.shape[2:]))
    return type(ds)(ds.images, ds.labels, list(ds.classes), ds.files, budget)


def is_grey(images: torch.Tensor) -> torch.Tensor:
    """(N,) bool: uint8 images whose three channels are equal at every pixel, within GREY_LEVELS
    (a black-and-white photo saved as colour JPEG can carry a level of chroma noise)."""
    x = images.to(torch.int16)
    spread = torch.maximum((x[:, 0] - x[:, 1]).abs(), (x[:, 1] - x[:, 2]).abs())
    return (spread <= GREY_LEVELS).flatten(1).all(1)


def shaped(delta: torch.Tensor, budget: torch.Tensor | None, grey: torch.Tensor | None) -> torch.Tensor:
    """The change a look allows: `delta` (N, C, H, W) scaled by its budget map (N, 1, H, W) and, for
    grey images, the mean over channels in every channel. Differentiable; |result| <= |delta|max."""
    out = delta if budget is None else delta * budget.to(delta.dtype)
    if grey is not None and bool(grey.any()):
        g = grey.to(out.device).view(-1, 1, 1, 1)
        out = torch.where(g, out.mean(1, keepdim=True).expand_as(out), out)
    return out


def periodic_spline(n_out: int, n_grid: int) -> torch.Tensor:
    """(n_out, n_grid) weights of a periodic cubic B-spline through a grid of n_grid control points
    spread evenly over n_out pixels: non-negative and summing to 1 on every row, so a pattern drawn
    with them stays within the grid's bound, and smooth (no edges, no creases)."""
    u = (torch.arange(n_out, dtype=torch.float64) + 0.5) * n_grid / n_out - 0.5
    w = torch.zeros(n_out, n_grid, dtype=torch.float64)
    base = torch.floor(u)
    for k in range(-1, 3):
        t = (u - (base + k)).abs()
        b = torch.where(t < 1, (4 - 6 * t**2 + 3 * t**3) / 6, torch.where(t < 2, (2 - t) ** 3 / 6, torch.zeros_like(t)))
        idx = ((base + k).long() % n_grid)[:, None]
        w.scatter_add_(1, idx, b[:, None])
    return w.float()
