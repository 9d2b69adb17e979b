"""Expectation over transformation (EOT; Athalye et al., ICML 2018) for protections: differentiable
stand-ins for what a trainer may do to the images before training on them, so that a
perturbation optimized through them survives them.

    grayscale  luma replicated to 3 channels (ISS's grayscale)
    jpeg       JPEG at a random quality in [10, 90] per image, through kornia's differentiable
               codec (Reich et al., "Differentiable JPEG: The Devil is in the Details", WACV 2024)
    resize     shrunk by a random factor in [0.5, 0.9] and enlarged back (a downscaled copy)
    blur       Gaussian blur, sigma uniform in [0.3, 1.0] px
    jitter     colour jitter (brightness, contrast, saturation 0.4, hue 0.1)

`EOT(names)` draws, for each batch, the identity or one of the named transforms with equal
probability: the undefended trainer stays one of the cases the perturbation is optimized for.
A drawn transform takes its random parameters per image from the generator it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..data.augment import color_jitter, luma, rescale


def to_grey(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    return luma(x).expand_as(x)


def jpeg(
    x: torch.Tensor, gen: torch.Generator | None = None, quality: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Differentiable JPEG of a batch in [0, 1]; quality per image (random in [10, 90] when not given).
    kornia's codec works on sides that are multiples of 16: the batch is padded by edge
    replication to the next multiple and cropped back."""
    from kornia.enhance import jpeg_codec_differentiable

    n, _, h, w = x.shape
    if quality is None:
        quality = torch.empty(n).uniform_(10, 90, generator=gen)
    q = torch.as_tensor(quality, dtype=x.dtype).to(x.device).reshape(-1).expand(n)
    ph, pw = -h % 16, -w % 16
    padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    return jpeg_codec_differentiable(padded, q)[..., :h, :w].clamp(0, 1)


def resize(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    factor = float(torch.empty(1).uniform_(0.5, 0.9, generator=gen))
    return rescale(x, factor)


def blur(x: torch.Tensor, gen: torch.Generator | None = None, sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Separable Gaussian blur (5 taps, reflected borders), each image its own sigma."""
    n, c, h, w = x.shape
    if sigma is None:
        sigma = torch.empty(n).uniform_(0.3, 1.0, generator=gen)
    taps = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-(taps[None] ** 2) / (2 * sigma.to(x.dtype)[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).to(x.device)  # (n, 5)
    groups = x.reshape(1, n * c, h, w)
    kernel = k.repeat_interleave(c, 0)  # one kernel per (image, channel)
    groups = F.conv2d(F.pad(groups, (2, 2, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, 5), groups=n * c)
    groups = F.conv2d(F.pad(groups, (0, 0, 2, 2), mode="reflect"), kernel.view(n * c, 1, 5, 1), groups=n * c)
    return groups.view(n, c, h, w)


def jitter(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    return color_jitter(x, generator=gen)


TRANSFORMS = {"grayscale": to_grey, "jpeg": jpeg, "resize": resize, "blur": blur, "jitter": jitter}


def check_names(names: object, owner: str) -> None:
    if names is None:
        return
    if not isinstance(names, (list, tuple)) or not names or any(n not in TRANSFORMS for n in names):
        raise ValueError(
            f"{owner}: eot must be a non-empty list of transforms from {', '.join(TRANSFORMS)} (or null), got {names!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: eot names a transform twice: {names!r}")


class EOT:
    """One random transform per call: the identity or one of `names`, equally likely."""

    def __init__(self, names: Sequence[str]) -> None:
        check_names(names, "eot")
        self.names = list(names)

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        pick = int(torch.randint(len(self.names) + 1, (1,), generator=gen))
        return x if pick == 0 else TRANSFORMS[self.names[pick - 1]](x, gen)
