"""Several processes, one result: the torch.distributed plumbing for runs under torchrun.

    torchrun --nproc_per_node=2 -m unlearnable evaluate ...        # gloo on CPU, nccl on CUDA
    torchrun --nnodes=2 --node_rank=R --rdzv_endpoint=HOST:29500 --nproc_per_node=8 -m unlearnable ...

Outside torchrun (no WORLD_SIZE in the environment) everything here is a no-op and the code
runs as one process. Under torchrun every process trains a DistributedDataParallel replica on
its own shard of each epoch (torch's DistributedSampler), metrics are summed over processes,
and only rank 0 writes files.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def busy_cores(seconds: float = 0.25) -> float | None:
    """Cores other programs keep busy right now: the non-idle share of all CPUs over `seconds`
    (/proc/stat; None where there is none)."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    spent = total1 - total0
    return 0.0 if spent <= 0 else (1 - (idle1 - idle0) / spent) * (os.cpu_count() or 1)


def free_threads(busy: float | None = None) -> int:
    """Threads a run here should use for its tensor work: no more than the cores other programs
    leave free, and never more than already chosen (OMP_NUM_THREADS, torch.set_num_threads, one
    per process under torchrun). Two programs with a thread per core each on the same cores wait
    on each other far more than twice as long (a protection measured 7x slower beside a 2-thread
    job on 2 cores; 1.7x with one thread). `busy`: busy_cores() already sampled, else sampled here."""
    chosen = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS") or chosen <= 1 or os.environ.get("WORLD_SIZE"):
        return chosen
    busy = busy_cores() if busy is None else busy
    if busy is None:
        return chosen
    return min(chosen, max(1, len(os.sched_getaffinity(0)) - round(busy)))


def share_cores() -> int:
    """Use free_threads() from now on in this process (a command's start)."""
    torch.set_num_threads(free_threads())
    return torch.get_num_threads()


def init_from_env(device: str | torch.device | None = None) -> bool:
    """Join the process group torchrun describes in the environment; False when not under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = torch.cuda.is_available() and parse_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def shutdown() -> None:
    """Leave the group together: a gloo process that tears down its group while another still has
    traffic in flight can abort ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_and_world()[0] == 0


def parse_device(device: str | torch.device | None) -> torch.device:
    """A --device value as a torch.device this machine has, or a one-line error saying what to pass."""
    if device is None or device == "":
        return local_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"--device {device!r} is not a device; use cpu, cuda or cuda:N (default: cuda if available)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: this torch build sees no CUDA GPU (CUDA build: "
                f"{torch.version.cuda is not None}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: only {torch.cuda.device_count()} GPU(s) are visible; use cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"--device {device}: the toolkit runs on cpu, cuda or cuda:N")
    return dev


def local_device() -> torch.device:
    """This process's device: its own GPU under torchrun on CUDA, else the CPU or the one GPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def sum_all(*values: float, device: torch.device | None = None) -> list[float]:
    """Sum numbers over all processes (identity in one process)."""
    if rank_and_world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device or "cpu")
    dist.all_reduce(t)
    return t.tolist()


def epoch_shard(n: int, seed: int, epoch: int) -> torch.Tensor:
    """This process's indices of an epoch's shuffled order (DistributedSampler; all of them in one process)."""
    from torch.utils.data import DistributedSampler

    rank, world = rank_and_world()
    positions: Any = range(n)  # any sized sequence is a dataset to the sampler
    sampler: DistributedSampler = DistributedSampler(
        positions, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(iter(sampler)), dtype=torch.int64)


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (identity in one process)."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(t)
    return t


def merge_rows_(full: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Every process computed `values` for its own, disjoint `rows` of `full`; writes all
    processes' rows into `full` in place, identical everywhere (one sum all-reduce), and returns it."""
    full[rows] = values.to(full.dtype)
    if rank_and_world()[1] == 1:
        return full
    mask = torch.zeros(len(full), dtype=full.dtype, device=full.device)
    mask[rows] = 1
    part = torch.zeros_like(full)
    part[rows] = values.to(full.dtype)
    dist.all_reduce(part)
    dist.all_reduce(mask)
    written = mask > 0
    full[written] = part[written]
    return full


def local_generator(shared: torch.Generator, seed: int, salt: int) -> torch.Generator:
    """The generator for draws that differ between processes (augmentation of a process's own
    images). In one process it is `shared` itself, so single-process runs draw exactly as before;
    under torchrun it is seeded from (seed, salt, rank) so that `shared` stays identical everywhere."""
    rank, world = rank_and_world()
    if world == 1:
        return shared
    return torch.Generator().manual_seed(seed * 1_000_003 + salt * 1_009 + rank)


def wrap_ddp(module: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel under torchrun (gradients averaged over processes), else the module."""
    if rank_and_world()[1] == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    dev = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)
