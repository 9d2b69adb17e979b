"""The line a person reads before a long protection starts: what was found, what will be done,
and about how long it takes and how much memory it needs on this machine.

Time: the method's work (Attack.passes: forward and backward passes of one image through its
surrogate) times the seconds one pass takes here, measured on a few random images at the working
size before the run; plus writing the photos at the rate measured for decoding, drawing and PNG
encoding (WRITE_SECONDS_PER_MEGAPIXEL). Memory: the largest photo's pixels a few times over (its
decoded copy, its protected copy, the encoder's buffer) plus the working set and the surrogate.
"""

from __future__ import annotations

import time

import torch

WRITE_SECONDS_PER_MEGAPIXEL = 0.15  # decode + draw + PNG encode of one megapixel, 2-core CPU (0.07 to 0.27 measured)
BYTES_PER_PIXEL = 12  # peak bytes per pixel of the largest photo while it is written (measured: 100 MP, 1.7 GB)
BASE_MEMORY = 0.6e9  # the surrogate, its optimizer and the interpreter


def seconds_per_pass(attack, size: int, num_classes: int) -> float | None:
    """Seconds of one forward + backward pass of one size x size image through the method's
    surrogate, timed on a random batch (untrained weights: the same arithmetic)."""
    if "surrogate" not in attack.options:
        return None
    from .attacks.base import build_surrogate

    torch.manual_seed(0)  # leaves no trace: the fit seeds itself
    model = build_surrogate(attack.surrogate, "scratch", max(2, num_classes)).to(attack.device).train()
    batch = min(int(attack.options.get("batch_size", 64)), 64)
    x = torch.rand(batch, 3, size, size, device=attack.device)
    y = torch.zeros(batch, dtype=torch.int64, device=attack.device)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        times.append(time.perf_counter() - t0)
    return min(times[1:]) / batch


def estimate(collection, attack, size: int, background=None) -> dict:
    """{"fit": seconds or None, "write": seconds, "memory": bytes} for protecting `collection`
    (fitted among the images of `background`, the loaded background set, when there is one)."""
    extra, classes = (0, 0) if background is None else (len(background), background.num_classes)
    passes = attack.passes(len(collection) + extra)
    per = seconds_per_pass(attack, size, len(collection.classes) + classes) if passes else None
    pixels = [p.width * p.height for p in collection.photos]
    return {
        "fit": passes * per if passes and per else None,
        "write": sum(pixels) / 1e6 * WRITE_SECONDS_PER_MEGAPIXEL,
        "memory": BASE_MEMORY + BYTES_PER_PIXEL * max(pixels) + (len(collection) + extra) * 3 * size * size,
    }


def physical_memory() -> int:
    """Bytes of memory this computer has (0 when it cannot be told)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_size(option: str, size: int, images: int = 1, batch: int = 1) -> None:
    """Refuse, before any work, a square size this computer cannot hold: at the least `images`
    decoded at size x size (uint8; a set beyond the memory-mapping threshold lives on disk) and
    one batch of `batch` at that size in float32 with its gradient. A lower bound: the model's
    own activations come on top."""
    from .data.cache import mmap_threshold

    ram = physical_memory()
    per = 3 * size * size
    data = images * per
    need = (data if data <= mmap_threshold() else 0) + 2 * 4 * per * max(1, batch)
    if ram and need > ram:
        raise ValueError(
            f"{option} {size} needs at least {need / 1e9:.1f} GB of memory ({images} image(s) of {size}x{size} "
            f"px and a batch of {batch}), more than this computer's {ram / 1e9:.1f} GB; choose a smaller {option}"
        )


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def describe_plan(
    collection, attack, size: int, method: str, est: dict | None = None, look=None, background=None
) -> str:
    """One line: photos found, classes, working size, method, look, estimated time and memory
    (`est`: an estimate already made, so that the line and the caller's numbers agree); with a
    `background` (its source and the loaded set), what the photos are protected against."""
    name, background = background or (None, None)
    counts = torch.bincount(collection.labels, minlength=len(collection.classes)).tolist()
    groups = ", ".join(f"{c} {n}" for c, n in zip(collection.classes, counts))
    if len(groups) > 120:
        groups = groups[:117] + "..."
    est = est or estimate(collection, attack, size, background)
    when = (
        f"about {duration(est['fit'] + est['write'])} (learning the pattern {duration(est['fit'])}, writing "
        f"{duration(est['write'])})"
        if est["fit"] is not None
        else f"writing about {duration(est['write'])} after the method's own time (no estimate for {method})"
    )
    mp = collection.megapixels()
    ignored = f"; {len(collection.ignored)} other files left alone" if collection.ignored else ""
    if background is None:
        what = f"in {len(collection.classes)} classes by {collection.label_mode} ({groups})"
    else:
        one = len(collection.classes) == 1
        subjects = "one subject" if one else f"{len(collection.classes)} subjects"
        what = (
            f"of {subjects} ({groups}), {'' if one else 'each '}protected as one class among {len(background)} "
            f"public images of {background.num_classes} other classes (background {name}, not written)"
        )
    return (
        f"{len(collection)} photos (largest {mp:.{0 if mp >= 10 else 1}f} MP) {what}{ignored}; working size "
        f"{size} px; {method} ({attack.preset} preset){'' if look is None else f'; look {look.name}: {look.summary}'}; "
        f"{when}; peak memory about {est['memory'] / 1e9:.1f} GB"
    )
