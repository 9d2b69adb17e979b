"""Fingerprints of every attack's fit: a short digest of its perturbation and of its recorded
history, per method and options, on one small seeded set. Two commits that print the same lines
fit every method bit for bit alike here: the check for a change that must not change behaviour
(a refactor), run before and after it.

    python scripts/attack_digests.py > before.txt   # ... change the code ...
    python scripts/attack_digests.py | diff before.txt -
    python scripts/attack_digests.py em tap      # only the cases whose name starts so

Each case also fits once more interrupted after its first checkpoint and resumed; a resumed fit
that differs from the uninterrupted one is printed as such.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

from unlearnable import training
from unlearnable.attacks import create_attack
from unlearnable.data import ImageDataset

SMALL = {"surrogate": "small_cnn", "surrogate_init": "scratch"}
CASES = {  # name: (method, options): each method's cpu preset, made small, and the options that change its code path
    "random": ("random", {}),
    "lsp": ("lsp", {"patch": 8}),
    "ops": ("ops", {}),
    "ar": ("ar", {}),
    "em": ("em", {"max_rounds": 4, "train_steps": 3, "batch_size": 32}),
    "em-stops": ("em", {"max_rounds": 6, "train_steps": 5, "batch_size": 32, "stop_acc": 0.3}),
    "em-samplewise": ("em", {"kind": "samplewise", "max_rounds": 3, "train_steps": 3, "attack_steps": 2}),
    "tap": ("tap", {"surrogate_epochs": 2, "steps": 3, "batch_size": 16}),
    "rem": ("rem", {"train_steps": 12, "lr_decay_every": 5, "batch_size": 32, "steps": 2, "eot": 2, "adv_steps": 1}),
    "tue": ("tue", {"epochs": 2, "batch_size": 32, "steps": 2, "train_steps": 2}),
    "gue": ("gue", {"epochs": 2, "batch_size": 32, "inner_steps": 2, "unet_width": 4}),
    "pil": ("pil", {"surrogate_epochs": 3, "steps": 5, "batch_size": 32}),
    "bait": ("bait", {**SMALL, "stages": [2, 2, 2], "images_per_epoch": 96, "batch_size": 32}),
    "bait-lite0": ("bait", {"stages": [1, 1, 1], "images_per_epoch": 64, "batch_size": 32}),
    "bait-generator": (
        "bait",
        {**SMALL, "parameterization": "generator", "stages": [1, 1, 1], "batch_size": 32, "generator_width": 0.125},
    ),
    "bait-hypergradient": ("bait", {**SMALL, "stages": [1, 1, 1], "batch_size": 32, "hypergradient": True}),
    "bait-steps": (
        "bait",
        {**SMALL, "stages": [1, 1, 1], "batch_size": 32, "lookahead_steps": 2, "surrogate_steps": 2, "smooth": True},
    ),
    "bait-hardened": (
        "bait",
        {
            **SMALL,
            "stages": [2, 1, 1],
            "batch_size": 32,
            "eot": ["grayscale", "jpeg", "resize", "blur", "jitter"],
            "luma": 0.5,
            "random_phase": True,
            "surrogates": ["small_cnn"],
            "input_sizes": [24, 32],
        },
    ),
    "bait-look": ("bait", {**SMALL, "stages": [1, 1, 1], "batch_size": 32, "look": True}),
}


def small_set(look: bool = False) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (120, 3, 32, 32), generator=g, dtype=torch.uint8)
    images[::7] = images[::7, :1].expand(-1, 3, -1, -1)  # some grey images
    budget = torch.rand((120, 1, 32, 32), generator=g) if look else None
    return ImageDataset(images, torch.arange(120) % 4, ["a", "b", "c", "d"], budget=budget)


def digest(p) -> str:
    meta = json.dumps(p.meta, sort_keys=True, default=str).encode()
    delta = p.delta.contiguous().numpy().tobytes()
    return f"delta {hashlib.sha256(delta).hexdigest()[:16]} meta {hashlib.sha256(meta).hexdigest()[:16]}"


def interrupted_then_resumed(method: str, opts: dict, ds: ImageDataset, folder: Path):
    """The fit killed right after its first checkpoint is on disk, then run again to the end."""
    real = training.Checkpoint.save

    def save_then_die(self, state):
        real(self, state)
        raise KeyboardInterrupt

    ckpt = folder / f"{method}.pt"
    training.Checkpoint.save = save_then_die
    try:
        create_attack(method, device="cpu", progress=False, checkpoint=ckpt, **opts).fit(ds)
    except KeyboardInterrupt:
        pass
    finally:
        training.Checkpoint.save = real
    torch.manual_seed(1234)  # the resumed process starts with other random state
    return create_attack(method, device="cpu", progress=False, checkpoint=ckpt, **opts).fit(ds)


def main() -> None:
    torch.set_num_threads(1)  # the digests do not depend on this machine's core count
    for name, (method, opts) in CASES.items():
        if sys.argv[1:] and not any(name.startswith(a) for a in sys.argv[1:]):
            continue
        opts = dict(opts)
        ds = small_set(look=opts.pop("look", False))
        line = digest(create_attack(method, device="cpu", progress=False, **opts).fit(ds))
        if method not in ("random", "lsp", "ops", "ar"):  # the methods that checkpoint
            with tempfile.TemporaryDirectory() as tmp:
                resumed = digest(interrupted_then_resumed(method, opts, ds, Path(tmp)))
            line += "" if resumed == line else f"  RESUMED DIFFERS: {resumed}"
        print(f"{name:20s} {line}", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
