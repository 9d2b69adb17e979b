"""Victim training throughput: the toolkit's loop vs the bare model step on random tensors.

The bare step (forward + backward + SGD step on a fixed random float batch, same model, batch
and precision) is what the hardware allows for that model; the ratio toolkit / bare is the cost
of everything else (uint8 gathers, conversion, batched crop/flip, bookkeeping).

    python bench/train_throughput.py                  # the CPU-preset victims
    python bench/train_throughput.py --victim small_cnn --images 4096
    python bench/train_throughput.py --init imagenet --compile --device cuda
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import bare_train_step, device_name, peak_memory_mb, synthetic, timed

from unlearnable.evaluate import victim_recipe
from unlearnable.models import create_model
from unlearnable.training import TrainConfig, default_device, make_optimizer, train_classifier


def measure(
    init: str, victim: str | None, images: int, device: torch.device, repeat: int = 3, compile: bool = False
) -> dict:
    name, input_size, cfg = victim_recipe("cpu", init)
    name = victim or name
    if compile:  # the toolkit's loop compiles its model; the bare step compiles the same way
        cfg = TrainConfig(**{**cfg.__dict__, "compile": True})
    bs = cfg.batch_size
    ds = synthetic(images, 32)

    # bare: the same model, batch, optimizer and precision on one random float batch
    bare_model = create_model(name, 10, pretrained=init == "imagenet", input_size=input_size).to(device)
    if device.type == "cuda":
        bare_model.to(memory_format=torch.channels_last)
    opt = make_optimizer(bare_model, cfg, "finetune")
    x = torch.rand(bs, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    bare_model.train()
    step = bare_train_step(torch.compile(bare_model) if compile else bare_model, opt, x, y, device)
    steps = images // bs

    # the toolkit's loop: one epoch over uint8 data, no test set
    model = create_model(name, 10, pretrained=init == "imagenet", input_size=input_size)
    one_epoch = TrainConfig(**{**cfg.__dict__, "epochs": 1})
    train_classifier(model, synthetic(2 * bs, 32), one_epoch, device=device, progress=False)  # warm-up

    def loop_epoch():
        train_classifier(model, ds, one_epoch, device=device, progress=False)

    # interleaved, so that a slow spell of the machine hits both; the median of each
    for _ in range(steps):  # warm-up pass
        step()
    bare_s, loop_s = [], []
    for _ in range(repeat):
        bare_s.append(timed(lambda: [step() for _ in range(steps)], warmup=0, device=device))
        loop_s.append(timed(loop_epoch, warmup=0, device=device))
    bare, loop = statistics.median(bare_s) / (steps * bs), statistics.median(loop_s) / (steps * bs)
    what = f"{name} ({init}, {input_size or 32} px, batch {bs}{', compiled' if compile else ''})"
    return {"victim": what, "bare": 1 / bare, "loop": 1 / loop}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--init", choices=["scratch", "imagenet", "both"], default="both")
    ap.add_argument("--victim", default=None)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3, help="timed epochs of each (median reported)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile both (a GPU path: minutes of start-up)")
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    inits = ["scratch", "imagenet"] if args.init == "both" else [args.init]
    print(f"device: {device_name(device)}")
    for init in inits:
        r = measure(init, args.victim, args.images, device, args.repeat, args.compile)
        print(
            f"{r['victim']}: loop {r['loop']:.0f} img/s, bare step {r['bare']:.0f} img/s, "
            f"ratio {r['loop'] / r['bare']:.2f}, peak memory {peak_memory_mb(device):.0f} MB"
        )


if __name__ == "__main__":
    main()
