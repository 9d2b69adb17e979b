"""Shared helpers of the performance scripts: timing, peak memory, synthetic uint8 data."""

from __future__ import annotations

import resource
import statistics
import time

import torch
import torch.nn.functional as F

from unlearnable.data import ImageDataset
from unlearnable.training import autocast


def synthetic(n: int, size: int, classes: int = 10, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.randint(0, classes, (n,), generator=g), [f"c{i}" for i in range(classes)])


def timed(fn, *, repeat: int = 1, warmup: int = 1, device: torch.device) -> float:
    """Seconds per call of fn after warm-up calls: the median of `repeat` timed calls (synchronized
    on CUDA), which a single slow call from other work on the machine does not move."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA; peak resident memory of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def bare_train_step(model, opt, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """One forward + backward + optimizer step on a fixed batch: the hardware's cost of a step."""

    def step():
        with autocast(device):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step
