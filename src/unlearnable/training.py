"""One training loop for surrogates and victims.

Data stays a uint8 tensor in memory; each step gathers a batch by index, converts it to
float, augments it with batched tensor ops and takes an SGD step. Per-epoch test accuracy,
train accuracy and loss are recorded; the loop checkpoints every epoch and resumes from its
last checkpoint when asked.
"""

from __future__ import annotations

import errno
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data.augment import crop_flip, random_flip, random_resized_crop
from .distributed import barrier, epoch_shard, is_main, rank_and_world, sum_all
from .options import check_options, option


@dataclass(frozen=True)
class TrainConfig:
    """How a victim (or a surrogate) is trained; checked when built (options.check_options)."""

    epochs: int = option(10, positive=True)
    batch_size: int = option(128, positive=True)
    lr: float = option(0.1, positive=True)
    momentum: float = option(0.9, low=0)
    weight_decay: float = option(5e-4, low=0)
    nesterov: bool = False
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup: float = option(0.15, low=0, high=1)  # fraction of steps spent warming up (onecycle only)
    grad_clip: float | None = option(5.0, positive=True)
    augment: bool = True
    crop: Literal["pad", "rrc"] = "pad"  # pad (random crop of the zero-padded image, CIFAR) | rrc (RandomResizedCrop)
    head_lr_scale: float = option(1.0, positive=True)  # lr multiplier for the freshly initialized head
    label_smoothing: float = option(0.0, low=0, high=1)
    compile: bool = False  # torch.compile the model (worth it on a GPU for long runs; minutes of start-up)

    def __post_init__(self):
        check_options(self, "training")


def default_device() -> torch.device:
    """This process's GPU when there is one (under torchrun: the one LOCAL_RANK names), else the CPU."""
    from .distributed import local_device

    return local_device()


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float in [0,1] on `device`; a CPU batch bound for a GPU is pinned first,
    so that its copy runs asynchronously."""
    if device.type == "cuda" and images.device.type == "cpu":
        images = images.pin_memory()
    return images.to(device, non_blocking=True).float().div_(255)


def resident(images: torch.Tensor, device: torch.device, share: float = 0.25) -> torch.Tensor:
    """Where a loop gathers its batches from: on a GPU, the whole uint8 set moved there once when it
    takes at most `share` of the free memory (no transfer per step); otherwise (on the CPU, already on
    a GPU, or too large) the set as it is."""
    if device.type != "cuda" or images.is_cuda:
        return images
    free, _ = torch.cuda.mem_get_info(device)
    return images.to(device) if images.numel() * images.element_size() <= share * free else images


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision on CPU (bf16 convolutions are slow there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int | None = None,
    device: torch.device | None = None,
    transform=None,
    per_class: bool = False,
    predictions: bool = False,
):
    """Top-1 accuracy of `model` (eval mode) on uint8 images; `transform`, if given, maps each float
    batch before the model (what a defense does to inputs at inference). With `per_class`, also
    the accuracy of every class (a list, by label); with `predictions`, then every image's
    predicted label (a list, in order; one process only: a shard's would not be the set's)."""
    device = device or next(model.parameters()).device
    # Small batches stay in the CPU caches: at 64 px EfficientNet-Lite0 infers ~1.9x faster
    # with 64 images per batch than with 500.
    batch_size = batch_size or (64 if device.type == "cpu" else 500)
    was_training = model.training
    model.eval()
    rank, world = rank_and_world()
    if predictions and world > 1:
        raise ValueError("per-image predictions are for one process; run this without torchrun")
    k = int(labels.max()) + 1 if len(labels) else 1  # of the whole set: every process sums the same classes
    images, labels = images[rank::world], labels[rank::world]  # under torchrun each process tests a shard
    images = resident(images, device)
    hits = torch.zeros(k, dtype=torch.float64)
    predicted: list[int] = []
    for i in range(0, len(images), batch_size):
        x = to_float(images[i : i + batch_size], device)
        if transform is not None:
            x = transform(x)
        with autocast(device):
            pred = model(x).argmax(1)
        y = labels[i : i + batch_size]
        hits += torch.bincount(y[pred.cpu() == y], minlength=k).double()
        if predictions:
            predicted += pred.cpu().tolist()
    model.train(was_training)
    counts = torch.bincount(labels, minlength=k).double()
    *per, total = sum_all(*hits.tolist(), len(images))
    *shown, _ = sum_all(*counts.tolist(), 0)
    acc = sum(per) / max(1, total)
    classes = [h / max(1, c) for h, c in zip(per, shown)]
    if predictions:
        return (acc, classes, predicted) if per_class else (acc, predicted)
    return (acc, classes) if per_class else acc


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / total))
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def make_optimizer(model: nn.Module, cfg: TrainConfig, protocol: str) -> torch.optim.Optimizer:
    head_module = getattr(model, "head", None)
    head = list(head_module.parameters()) if isinstance(head_module, nn.Module) else []
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    if protocol == "linear":
        for p in body:
            p.requires_grad_(False)
        groups = [{"params": head, "lr": cfg.lr}]
    else:
        groups = [{"params": body, "lr": cfg.lr}, {"params": head, "lr": cfg.lr * cfg.head_lr_scale}]
        groups = [g for g in groups if g["params"]]
    for g in groups:
        g["base_lr"] = g["lr"]
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
    )


def set_train_mode(model: nn.Module, protocol: str) -> None:
    """Fine-tuning trains everything; a linear probe keeps the frozen backbone in eval mode."""
    model.train()
    features = getattr(model, "features", None)
    if protocol == "linear" and isinstance(features, nn.Module):
        features.eval()


def train_classifier(
    model: nn.Module,
    train_set,
    cfg: TrainConfig,
    *,
    test_set=None,
    protocol: str = "finetune",
    seed: int = 0,
    device: torch.device | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    desc: str = "train",
    defense=None,
    about: dict | None = None,
    predictions: bool = False,
) -> dict:
    """Train `model` on `train_set` (an ImageDataset), testing on `test_set` after every epoch.

    Under torchrun, the model trains as a DistributedDataParallel replica on this process's shard
    of every epoch with batch_size / world_size images per step (the same global batch), metrics
    are summed over processes and only rank 0 writes the checkpoint.

    Returns a history: one record per epoch (loss, train accuracy on the augmented batches,
    test accuracy, seconds) plus final and best test accuracy and the seconds of the whole
    training, those spent before a resume included. A `defense` (unlearnable.defenses)
    transforms each batch before and after the crop/flip, or replaces the loss; its `prepare`
    step belongs to the caller (evaluate.run), which owns the datasets. `about` adds what the
    caller knows of the run to the checkpoint's identity (the victim's name and initialization).
    With `predictions`, every epoch's record also holds each test image's predicted label
    (`test_pred`): what `unlearnable check` reports photo by photo.
    """
    if protocol not in ("finetune", "linear"):
        raise ValueError(f"protocol must be finetune or linear, got {protocol!r}")
    device = device or default_device()
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    opt = make_optimizer(model, cfg, protocol)
    images, labels = resident(train_set.images, device), train_set.labels
    n = len(images)
    rank, world = rank_and_world()
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} does not split over {world} processes")
    local_bs = cfg.batch_size // world
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)  # type: ignore[assignment]  # a callable module
    steps_per_epoch = max(1, n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    pad = max(1, images.shape[-1] // 8)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    start_epoch = 0
    identity = None
    if checkpoint:  # the run a checkpoint belongs to: data, recipe, seed, the model and what the caller adds
        model_desc = [type(model).__name__] + [f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items()]
        identity = run_identity(
            run="train",
            config=asdict(cfg),
            protocol=protocol,
            seed=seed,
            model=model_desc,
            train=train_set.digest(),
            test=test_set.digest() if test_set is not None else None,
            defense=defense.settings() if defense is not None else None,
            about=about,
        )
    ckpt = Checkpoint(checkpoint, identity)  # also restores torch's RNG: dropout / stochastic depth draws
    if (state := ckpt.load()) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, start_epoch = state["history"], state["epoch"]
    labels_dev = labels.to(device)
    test_images = resident(test_set.images, device) if test_set is not None else None  # moved once, not per epoch
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        set_train_mode(model, protocol)
        if world == 1:
            order = torch.randperm(n, generator=gen)
        else:  # a DistributedSampler shard; augmentation draws seeded per (seed, epoch, rank), so any
            order = epoch_shard(n, seed, epoch)  # world size can resume any checkpoint
            gen.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)
        loss_sum, correct, seen = 0.0, 0.0, 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{desc} {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not progress or not is_main(),
            unit="batch",
        )
        for i in bar:
            idx = order[i * local_bs : (i + 1) * local_bs]
            x = to_float(images[idx], device)
            if defense is not None:
                x = defense.pre_augment(x)
            if cfg.augment:
                x = crop_flip(x, pad, gen) if cfg.crop == "pad" else random_flip(random_resized_crop(x, gen), gen)
            y = labels_dev[idx.to(device)]
            factor = lr_factor(cfg, epoch * steps_per_epoch + i, total)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            with autocast(device):
                if defense is None:
                    out = net(x)
                    loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
                else:
                    loss, out = defense.loss(net, x, y, gen, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        loss_sum, correct, seen = sum_all(loss_sum, correct, seen)
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_acc": correct / seen,
            "seconds": time.perf_counter() - t0,
        }
        if test_set is not None and test_images is not None:
            record["test_acc"], record["test_class_acc"], *pred = accuracy(
                model,
                test_images,
                test_set.labels,
                device=device,
                transform=defense.pre_test if defense is not None else None,
                per_class=True,
                predictions=predictions,
            )
            if predictions:
                record["test_pred"] = pred[0]
        history.append(record)
        if progress and is_main():
            msg = f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.3f} train {record['train_acc']:.3f}"
            if "test_acc" in record:
                msg += f" test {record['test_acc']:.3f}"
            tqdm.write(msg)
        ckpt.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "generator": gen.get_state(),
                "history": history,
                "epoch": epoch + 1,
            }
        )
    result = {
        "history": history,
        "config": asdict(cfg),
        "protocol": protocol,
        "seed": seed,
        "seconds": ckpt.seconds(),
        "resumed_from_epoch": start_epoch,
    }
    tests = [h["test_acc"] for h in history if "test_acc" in h]
    if tests:
        result["final_test_acc"], result["best_test_acc"] = tests[-1], max(tests)
    result["final_train_acc"] = history[-1]["train_acc"]
    return result


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, or written by another run."""


def run_identity(**parts) -> str:
    """What a checkpoint belongs to (inputs, settings, seed, versions), as one canonical string."""
    import json

    from . import __version__

    return json.dumps(
        {**parts, "versions": {"unlearnable": __version__, "torch": torch.__version__}}, sort_keys=True, default=str
    )


class Checkpoint:
    """Atomic checkpoint of a long run's whole state (a training, an attack), loaded with
    weights_only=True, with torch's global RNG state. It carries the seconds spent up to each save,
    so that a resumed run reports the time of the whole run (`resumed_seconds`: the part done
    before this process started), and the `identity` of the run that wrote it (run_identity): a
    checkpoint resumes only the run that wrote it, any other is refused with a message naming the
    file. Without a path every method is a no-op."""

    def __init__(self, path: str | Path | None, identity: str | None = None):
        self.path = Path(path) if path else None
        self.identity = identity
        self.resumed_seconds = 0.0
        self._t0 = time.perf_counter()

    def seconds(self) -> float:
        """Seconds of the whole run so far, those before a resume included."""
        return self.resumed_seconds + time.perf_counter() - self._t0

    def load(self) -> dict | None:
        if not (self.path and self.path.exists()):
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "torch_rng" not in state:
                raise ValueError("it holds no run state")
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {self.path} cannot be read ({type(e).__name__}: {str(e)[:120]}); it is "
                "truncated or was not written by unlearnable: delete it to start this run over"
            ) from None
        if self.identity is not None and state.get("identity") != self.identity:
            import json

            def flat(d, prefix=""):  # {"settings": {"seed": 0}} -> {"settings.seed": 0}
                out = {}
                for k, v in d.items() if isinstance(d, dict) else ():
                    out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
                return out

            try:
                theirs, ours = flat(json.loads(state.get("identity") or "{}")), flat(json.loads(self.identity))
                differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
                differ = differ or ["(unrecorded)"] if theirs else ["(it records no run: written by an older version)"]
            except (TypeError, ValueError):
                differ = ["(unreadable)"]
            raise CheckpointError(
                f"checkpoint {self.path} belongs to another run (it differs in: {', '.join(differ[:6])}); "
                "run the command that made it to finish that run, or delete the checkpoint to start "
                "this one over"
            )
        torch.set_rng_state(state.pop("torch_rng"))
        self.resumed_seconds = float(state.pop("elapsed", 0.0))
        state.pop("identity", None)
        return state

    def save(self, state: dict) -> None:
        if self.path and is_main():  # under torchrun the state is identical everywhere; rank 0 writes it
            save_checkpoint(
                self.path,
                {**state, "torch_rng": torch.get_rng_state(), "elapsed": self.seconds(), "identity": self.identity},
            )

    def remove(self) -> None:
        barrier()  # no process may still be reading it
        if self.path and self.path.exists() and is_main():
            self.path.unlink()


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic torch.save (io.atomic_file: a temporary name of this write alone, then a rename)."""
    from .io import atomic_file

    with atomic_file(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # torch reports a failed write (a full disk) as a RuntimeError
            raise OSError(errno.EIO, f"cannot write the checkpoint ({str(e).splitlines()[0]})", str(path)) from e
