"""The one protect pipeline, used by `unlearnable protect`, `bench` and `demo`:

    check the output against the inputs -> build the method (options checked) -> load the data
    -> fit (checkpointed, resumable) -> apply -> export + manifest (atomic) -> remove the checkpoint

Everything that must hold for a protected folder holds here once: the output never touches an
input and replaces only this tool's own earlier output, a checkpoint resumes only the run that
wrote it and is removed only once the output is in place, the manifest always names the input
so that `unlearnable verify` can recompute every image, and a protection that changes nothing
is refused.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path

from tqdm.auto import tqdm


def load_training_set(source, *, image_size=None, train_per_class=None, seed: int = 0, download: bool = False):
    """(the training split, class-balanced subset applied, and the resolved path it was read from)."""
    from .data import balanced_subset, load_dataset, resolve_source

    ds = load_dataset(source, "train", image_size=image_size, download=download)
    if train_per_class:
        ds = balanced_subset(ds, train_per_class, seed=seed)
    return ds, resolve_source(source, download=False)[1]


def checkpoint_path(out: Path) -> Path:
    """Where an unfinished protection of `out` keeps its state: beside it, named after it."""
    return out.with_name(f".{out.name}.checkpoint.pt")


def protect(
    source,
    out,
    *,
    method: str = "bait",
    preset: str = "cpu",
    eps: float | None = None,
    options: dict | None = None,
    seed: int = 0,
    image_size: int | None = None,
    train_per_class: int | None = None,
    force: bool = False,
    device=None,
    progress: bool = True,
    download: bool = False,
    command: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Protect the training split of `source` with `method` and write the folder `out`; returns
    its manifest. `extra` adds keys to the manifest (a bench's dataset entry)."""
    from .attacks import create_attack
    from .distributed import barrier, is_main
    from .evaluate import versions
    from .export import export_protected
    from .io import source_checksums
    from .outputs import check_output, input_paths, run_lock

    out = check_output(out, input_paths(source, download), force, "protect")
    barrier()  # under torchrun: every process has checked the output before rank 0 may write it
    ckpt = checkpoint_path(out)
    attack = create_attack(
        method, eps=eps, seed=seed, preset=preset, device=device, progress=progress, checkpoint=ckpt, **(options or {})
    )
    with run_lock(out) if is_main() else nullcontext():
        ds, resolved = load_training_set(
            source, image_size=image_size, train_per_class=train_per_class, seed=seed, download=download
        )
        t0 = time.perf_counter()
        perturbation = attack.fit(ds)
        protected = perturbation.apply(ds)
        seconds = time.perf_counter() - t0 + attack.resumed_seconds  # a resumed run: the whole attack's time
        manifest = {
            "method": method,
            "settings": attack.settings(),
            "seed": seed,
            "eps": attack.eps,
            "norm": attack.norm,
            "kind": perturbation.kind,
            "data": str(resolved),
            "data_source": None if source is None else str(source),
            "train_per_class": train_per_class,
            "image_size": image_size,
            "input_checksums": source_checksums(resolved),
            "versions": versions(),
            "seconds": round(seconds, 1),
            **(extra or {}),
        }
        if command is not None:
            manifest["command"] = command
        if is_main():  # under torchrun every process holds the same perturbation; rank 0 writes it
            manifest = export_protected(out, ds, protected, perturbation, manifest, replace=force, progress=progress)
            for w in manifest["warnings"]:
                tqdm.write(f"warning: {w}", file=sys.stderr)
        barrier()
        attack.remove_checkpoint()  # only now: the output is in place
    return manifest
