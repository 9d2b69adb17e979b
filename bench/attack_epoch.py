"""Protection cost: one BAIT outer epoch and one EM round vs the bare model passes they must do.

BAIT (cpu preset, hard-target stage): per batch of the sweep, a no-grad forward of the
look-ahead surrogate (targets) and a forward + backward to the input (the perturbation's
gradient); per epoch, the look-ahead step and one real surrogate step. EM (cpu preset,
class-wise): `train_steps` surrogate steps, then a forward + backward to the input for every
batch of its sweep, then an inference pass over its probe images. Each pass is timed alone on
random tensors; the ratio measured / bare is the overhead of everything else.

    python bench/attack_epoch.py
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import bare_train_step, device_name, peak_memory_mb, sync, synthetic, timed

from unlearnable.attacks import create_attack
from unlearnable.attacks.base import build_surrogate
from unlearnable.training import autocast, default_device


def bare_passes(model, bs: int, size: int, device) -> dict:
    x = torch.rand(bs, 3, size, size, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    train_step = bare_train_step(model, opt, x, y, device)

    def no_grad_forward():
        with torch.no_grad(), autocast(device):
            model(x)

    def input_grad():
        xi = x.clone().requires_grad_(True)
        with autocast(device):
            loss = F.cross_entropy(model(xi), y)
        torch.autograd.grad(loss, xi)

    def infer():
        model.eval()
        with torch.inference_mode(), autocast(device):
            model(x[:64])
        model.train()

    return {
        k: timed(f, repeat=7, device=device)
        for k, f in {
            "train": train_step,
            "forward": no_grad_forward,
            "input_grad": input_grad,
            "infer64": infer,
        }.items()
    }


def time_fit(method: str, ds, device, **opts) -> float:
    sync(device)
    t0 = time.perf_counter()
    create_attack(method, preset="cpu", device=device, progress=False, **opts).fit(ds)
    sync(device)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    ds = synthetic(args.images, 32)
    print(f"device: {device_name(device)}")

    # One-time process costs (lazy imports on the first optimizer, allocator growth) out of the timings.
    time_fit("bait", synthetic(256, 32), device, stages=[1, 0, 0])

    # BAIT: one outer epoch = (fit with 3 epochs - fit with 1 epoch) / 2, setup excluded
    bait = create_attack("bait", preset="cpu")
    per_epoch = min(args.images, bait.options.images_per_epoch or args.images)
    bs = min(bait.options.batch_size, per_epoch)
    epoch = (time_fit("bait", ds, device, stages=[3, 0, 0]) - time_fit("bait", ds, device, stages=[1, 0, 0])) / 2
    model = build_surrogate(bait.options.surrogate, bait.options.surrogate_init, 10).to(device)
    p = bare_passes(model, bs, 32, device)
    batches = per_epoch // bs
    bare = batches * (p["forward"] + p["input_grad"]) + 2 * p["train"]
    print(
        f"bait outer epoch ({bait.options.surrogate}, {per_epoch} images, batch {bs}): {epoch:.2f} s, bare passes "
        f"{bare:.2f} s, ratio {epoch / bare:.2f}, peak memory {peak_memory_mb(device):.0f} MB"
    )

    # EM class-wise: one round = (fit with 3 rounds - fit with 1 round) / 2, never stopping early
    em = create_attack("em", preset="cpu")
    bs = min(em.options.batch_size, args.images)
    rnd = (
        time_fit("em", ds, device, max_rounds=3, stop_acc=2.0) - time_fit("em", ds, device, max_rounds=1, stop_acc=2.0)
    ) / 2
    model = build_surrogate(em.options.surrogate, em.options.surrogate_init, 10).to(device)
    p = bare_passes(model, bs, 32, device)
    sweep = min(args.images, max(bs, int(em.options.attack_fraction * args.images)))
    bare = (
        em.options.train_steps * p["train"]
        + -(-sweep // bs) * em.options.attack_steps * p["input_grad"]
        + -(-min(2000, args.images) // 64) * p["infer64"]
    )
    print(
        f"em round ({em.options.surrogate}, sweep {sweep} images, batch {bs}): {rnd:.2f} s, bare passes {bare:.2f} s, "
        f"ratio {rnd / bare:.2f}, peak memory {peak_memory_mb(device):.0f} MB"
    )


if __name__ == "__main__":
    main()
