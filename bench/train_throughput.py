"""Victim training throughput: the toolkit's loop vs the bare model step on random tensors.

The bare step (forward + backward + SGD step on a fixed random float batch, same model, batch
and precision) is what the hardware allows for that model; the ratio toolkit / bare is the cost
of everything else (uint8 gathers, conversion, batched crop/flip, bookkeeping).

    python bench/train_throughput.py                  # the CPU-preset victims
    python bench/train_throughput.py --victim small_cnn --images 4096
"""

from __future__ import annotations

import argparse
import time

import torch

from common import bare_train_step, device_name, peak_memory_mb, sync, synthetic, timed
from unlearnable.evaluate import victim_recipe
from unlearnable.models import create_model
from unlearnable.training import TrainConfig, default_device, make_optimizer, train_classifier


def measure(init: str, victim: str | None, images: int, device: torch.device) -> dict:
    name, input_size, cfg = victim_recipe("cpu", init)
    name = victim or name
    bs = cfg.batch_size
    ds = synthetic(images, 32)

    # bare: the same model, batch, optimizer and precision on one random float batch
    model = create_model(name, 10, pretrained=init == "imagenet", input_size=input_size).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg, "finetune")
    x = torch.rand(bs, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    model.train()
    step = bare_train_step(model, opt, x, y, device)
    steps = images // bs
    bare = timed(lambda: [step() for _ in range(steps)], warmup=1, device=device) / (steps * bs)

    # the toolkit's loop: one epoch over uint8 data, no test set
    model = create_model(name, 10, pretrained=init == "imagenet", input_size=input_size)
    one_epoch = TrainConfig(**{**cfg.__dict__, "epochs": 1})
    train_classifier(model, synthetic(2 * bs, 32), one_epoch, device=device, progress=False)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    train_classifier(model, ds, one_epoch, device=device, progress=False)
    sync(device)
    loop = (time.perf_counter() - t0) / (steps * bs)
    return {"victim": f"{name} ({init}, {input_size or 32} px, batch {bs})", "bare": 1 / bare, "loop": 1 / loop}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--init", choices=["scratch", "imagenet", "both"], default="both")
    ap.add_argument("--victim", default=None)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    inits = ["scratch", "imagenet"] if args.init == "both" else [args.init]
    print(f"device: {device_name(device)}")
    for init in inits:
        r = measure(init, args.victim, args.images, device)
        print(f"{r['victim']}: loop {r['loop']:.0f} img/s, bare step {r['bare']:.0f} img/s, "
              f"ratio {r['loop'] / r['bare']:.2f}, peak memory {peak_memory_mb(device):.0f} MB")


if __name__ == "__main__":
    main()
